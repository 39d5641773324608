//! The Regional Readiness Scorecard on the operators' dashboard (issue 17): the regional heat
//! map (`/scorecard`), a country's page with the evidence under every score and the form that
//! records an assessment or an override (`/scorecard/country/{CC}`, posting to
//! `/scorecard/entries`), the paperless corridors (`/scorecard/corridors`) and the report as
//! JSON for scripts (`/scorecard.json`).
//!
//! Every page reads one [`Report`], built afresh per request by `scorecard::report` (the same
//! the Admin service and the CLI answer), so what an operator sees here is what `admin
//! scorecard show` prints. The pages are server-rendered with `maud` (every value escaped),
//! carry no script at all (the Content-Security-Policy allows none), are never stored by the
//! browser, never refresh themselves and print with their charts (inline SVG).
//!
//! Who may look and record is decided exactly as for `/dashboard`: an operator certificate
//! that is not revoked; anything else is refused with the same 403 answer. Recording goes
//! through `scorecard::record`, the one path the Admin service uses too, as
//! `operator:<name>`: checked against the framework and the rounds, signed, kept and logged
//! before the browser is sent on to the country page (303) showing the new entry; a refusal
//! is shown with its code and detail (400, or 409 for a closed round) and changes nothing.
//! Because a browser presents its client certificate to any site's form posted here, a post is
//! taken only from this origin and with the operator's form token (`csrf`), and its body is
//! bounded.

pub mod charts;
mod corridors;
mod country;
mod csrf;
mod heatmap;
pub mod layout;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::{
    Form, Json, Router,
    extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State, rejection::FormRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use maud::html;
use serde::Deserialize;
use tracing::{error, info, warn};

use caravan_common::{CountryCode, Refusal, RefusalCode};
use caravan_proto::v1;

use super::{Dash, Visitor};
use crate::{
    error::HubError,
    scorecard::{self as card, Report, Scorecard},
};
use layout::Here;

/// The words of the pages this file answers with itself (a country not scored, a refusal
/// that has no country page to show it on), in one place.
mod text {
    pub const NOT_FOUND_TITLE: &str = "Not in the scorecard";
    pub const NOT_FOUND: &str = "No country ";
    pub const NOT_FOUND_END: &str = " in the scorecard";
    pub const SCORED: &str = "The framework scores these countries (ISO 3166-1 alpha-2 codes):";
    pub const REFUSED_TITLE: &str = "Not recorded";
    pub const REFUSED: &str = "Not recorded: ";
    pub const NOTHING_CHANGED: &str = " Nothing was changed.";
    pub const BACK: &str = "Back to the scorecard";
    pub const STORE: &str = "the hub's store is unavailable; retry later";
    pub const TOKEN: &str = "the form's token is missing or not this operator's (was the hub restarted?); reload the page and send it again";
}

/// The most a posted form may hold: an evidence note of 4,000 characters, encoded, and the
/// other fields, with room to spare.
const FORM_LIMIT: usize = 16 * 1024;

/// What the scorecard's pages need beyond what the dashboard observes: the scorecard the
/// Admin service uses too (its framework, recording, the newest report).
pub struct Setup {
    pub scorecard: Arc<Scorecard>,
}

/// The scorecard pages' share of the dashboard's state.
pub struct Context {
    card: Arc<Scorecard>,
    csrf: csrf::Csrf,
}

impl Context {
    pub fn new(setup: Setup) -> Self {
        Self {
            card: setup.scorecard,
            csrf: csrf::Csrf::new(),
        }
    }
}

/// The scorecard's routes, under the dashboard's state.
pub fn routes() -> Router<Dash> {
    Router::new()
        .route("/scorecard", get(heat_map))
        .route("/scorecard.json", get(json))
        .route(
            "/scorecard/style.css",
            get(|| async { layout::stylesheet() }),
        )
        .route("/scorecard/corridors", get(corridors))
        .route("/scorecard/country/{country}", get(country))
        .route(
            "/scorecard/entries",
            post(record).layer(DefaultBodyLimit::max(FORM_LIMIT)),
        )
}

/// The form's fields, as posted (all text: each is judged by `scorecard::record`, or here when
/// it is not a number, so that every mistake is answered the same way).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct EntryForm {
    pub token: String,
    pub kind: String,
    pub round: String,
    pub country: String,
    pub kpi: String,
    pub score: String,
    pub note: String,
    pub assessor: String,
    pub assessed_on: String,
}

fn invalid(detail: String) -> Refusal {
    Refusal::new(RefusalCode::InvalidScorecardEntry, detail)
}

impl EntryForm {
    /// The request the Admin service would get for the same entry.
    fn request(&self) -> Result<v1::RecordScorecardEntryRequest, Refusal> {
        let kind = match self.kind.as_str() {
            "assessment" => v1::ScorecardEntryKind::Assessment,
            "override" => v1::ScorecardEntryKind::Override,
            other => {
                return Err(invalid(format!(
                    "kind {other:?}: assessment or override (rounds are closed with `caravan-hub admin scorecard`)"
                )));
            }
        };
        let score = self
            .score
            .trim()
            .parse::<u32>()
            .map_err(|_| invalid(format!("score {:?} is not 1 to 5", self.score.trim())))?;
        Ok(v1::RecordScorecardEntryRequest {
            kind: kind as i32,
            round: self.round.clone(),
            country: self.country.clone(),
            kpi: self.kpi.clone(),
            score,
            note: self.note.clone(),
            assessor: self.assessor.clone(),
            assessed_on: self.assessed_on.clone(),
        })
    }
}

/// The refusal of a visitor who may not see the scorecard: the same answer as `/dashboard`'s.
fn refused(status: StatusCode, text: &str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        format!("{text}\n"),
    )
        .into_response()
}

fn store_unavailable(e: &dyn std::fmt::Display) -> Response {
    error!(cause = %e, "the dashboard could not read the scorecard");
    refused(StatusCode::SERVICE_UNAVAILABLE, text::STORE)
}

/// Why a page is not shown.
enum Denied {
    /// Not an operator (or a revoked certificate): 403, as `/dashboard` answers.
    Refused(Refusal),
    /// The store could not give the report.
    Store(String),
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Self::Refused(r) => refused(StatusCode::FORBIDDEN, &r.to_string()),
            Self::Store(e) => store_unavailable(&e),
        }
    }
}

/// The operator, or why the visitor is refused.
fn operator(dash: &Dash, visitor: &Visitor) -> Result<String, Refusal> {
    dash.observed
        .registry
        .snapshot()
        .authorize_operator(visitor.peer.as_ref())
}

/// The newest report (at most [`card::REPORT_MAX_AGE`] old; the pages say when it was made).
async fn report(dash: &Dash) -> Result<Arc<Report>, Denied> {
    dash.scorecard
        .card
        .report(0, card::REPORT_MAX_AGE)
        .await
        .map_err(|e| Denied::Store(e.to_string()))
}

/// The operator and the report now, or why not.
async fn gather(dash: &Dash, visitor: &Visitor) -> Result<(String, Arc<Report>), Denied> {
    let operator = operator(dash, visitor).map_err(Denied::Refused)?;
    Ok((operator, report(dash).await?))
}

async fn heat_map(
    State(dash): State<Dash>,
    ConnectInfo(visitor): ConnectInfo<Visitor>,
) -> Response {
    match gather(&dash, &visitor).await {
        Ok((operator, r)) => layout::html(StatusCode::OK, heatmap::render(&r, &operator)),
        Err(denied) => denied.into_response(),
    }
}

async fn corridors(
    State(dash): State<Dash>,
    ConnectInfo(visitor): ConnectInfo<Visitor>,
) -> Response {
    match gather(&dash, &visitor).await {
        Ok((operator, r)) => layout::html(StatusCode::OK, corridors::render(&r, &operator)),
        Err(denied) => denied.into_response(),
    }
}

async fn json(State(dash): State<Dash>, ConnectInfo(visitor): ConnectInfo<Visitor>) -> Response {
    match gather(&dash, &visitor).await {
        Ok((_, r)) => ([(header::CACHE_CONTROL, "no-store")], Json(&*r)).into_response(),
        Err(denied) => denied.into_response(),
    }
}

/// `?recorded=ID`: the entry just recorded, to show.
#[derive(Debug, Default, Deserialize)]
struct CountryQuery {
    recorded: Option<String>,
}

/// The country `code` names in the report, if the framework scores it.
fn find<'r>(r: &'r Report, code: &str) -> Option<&'r card::report::CountryReport> {
    let code = CountryCode::assigned(code).ok()?;
    r.countries.iter().find(|c| c.country == code)
}

/// The page of a country the scorecard does not cover, naming what was asked and what it does.
fn not_found(r: &Report, operator: &str, code: &str) -> Response {
    let page = layout::page(
        text::NOT_FOUND_TITLE,
        operator,
        Here::Country,
        html! {
            h1 { (text::NOT_FOUND) q { (code) } (text::NOT_FOUND_END) }
            p { (text::SCORED) }
            ul {
                @for c in &r.countries {
                    li { a href=(format!("/scorecard/country/{}", c.country)) { (c.name) } " (" (c.country.as_str()) ")" }
                }
            }
        },
    );
    layout::html(StatusCode::NOT_FOUND, page)
}

async fn country(
    State(dash): State<Dash>,
    ConnectInfo(visitor): ConnectInfo<Visitor>,
    Path(code): Path<String>,
    Query(query): Query<CountryQuery>,
) -> Response {
    let (operator, r) = match gather(&dash, &visitor).await {
        Ok(found) => found,
        Err(denied) => return denied.into_response(),
    };
    let Some(c) = find(&r, &code) else {
        return not_found(&r, &operator, &code);
    };
    let token = dash.scorecard.csrf.token(&operator);
    let form = country::FormView {
        token: &token,
        values: &EntryForm::default(),
        refusal: None,
        recorded: query.recorded.and_then(|id| id.parse().ok()),
    };
    layout::html(StatusCode::OK, country::render(&r, c, &operator, &form))
}

/// The status of a refused entry: a closed round is a conflict with what was recorded before,
/// anything else a request to correct.
fn refusal_status(code: RefusalCode) -> StatusCode {
    match code {
        RefusalCode::RoundClosed => StatusCode::CONFLICT,
        _ => StatusCode::BAD_REQUEST,
    }
}

async fn record(
    State(dash): State<Dash>,
    ConnectInfo(visitor): ConnectInfo<Visitor>,
    headers: HeaderMap,
    form: Result<Form<EntryForm>, FormRejection>,
) -> Response {
    let operator = match operator(&dash, &visitor) {
        Ok(operator) => operator,
        Err(refusal) => return Denied::Refused(refusal).into_response(),
    };
    if let Some(why) = csrf::cross_site(&headers) {
        warn!(operator, "scorecard form refused: {why}");
        return refused(StatusCode::FORBIDDEN, &why);
    }
    let Form(form) = match form {
        Ok(form) => form,
        Err(e) => return refused(e.status(), &e.body_text()),
    };
    if !dash.scorecard.csrf.verify(&operator, &form.token) {
        warn!(operator, "scorecard form refused: no valid form token");
        return refused(StatusCode::FORBIDDEN, text::TOKEN);
    }
    if let Some(peer) = &visitor.peer {
        dash.observed.registry.note_certificate(peer);
    }
    let o = &dash.observed;
    let result = match form.request() {
        Ok(request) => dash
            .scorecard
            .card
            .record(format!("operator:{operator}"), request)
            .await
            .map(|(record, _)| record),
        Err(refusal) => Err(HubError::Refused(refusal)),
    };
    match result {
        Ok(record) => {
            info!(
                operator,
                id = record.id,
                log_index = record.log_index,
                "scorecard entry recorded through the dashboard"
            );
            // The country was judged valid by the record: its code as the framework spells it.
            let country = CountryCode::assigned(form.country.trim())
                .map(|c| c.to_string())
                .unwrap_or_default();
            Redirect::to(&format!(
                "/scorecard/country/{country}?recorded={id}#entry-{id}",
                id = record.id
            ))
            .into_response()
        }
        Err(HubError::Refused(refusal)) => {
            let total = o
                .metrics
                .refused("dashboard_scorecard_entry", None, &refusal);
            warn!(operator, code = %refusal.code, detail = %refusal.detail, total, "refused");
            refused_entry(&dash, &operator, &form, &refusal).await
        }
        Err(HubError::Store(e)) => store_unavailable(&e),
        Err(HubError::Busy(why)) => refused(StatusCode::SERVICE_UNAVAILABLE, &why),
    }
}

/// The country page again, with the refusal above and the form as it was sent; a country the
/// scorecard does not cover gets the refusal alone.
async fn refused_entry(
    dash: &Dash,
    operator: &str,
    form: &EntryForm,
    refusal: &Refusal,
) -> Response {
    let status = refusal_status(refusal.code);
    let r = match report(dash).await {
        Ok(r) => r,
        Err(denied) => return denied.into_response(),
    };
    let token = dash.scorecard.csrf.token(operator);
    match find(&r, form.country.trim()) {
        Some(c) => {
            let view = country::FormView {
                token: &token,
                values: form,
                refusal: Some(refusal),
                recorded: None,
            };
            layout::html(status, country::render(&r, c, operator, &view))
        }
        None => layout::html(
            status,
            layout::page(
                text::REFUSED_TITLE,
                operator,
                Here::Country,
                html! {
                    p class="refusal" role="alert" id="refusal" {
                        (text::REFUSED) b { (refusal.code.as_str()) } " " (refusal.detail) (text::NOTHING_CHANGED)
                    }
                    p { a href="/scorecard" { (text::BACK) } }
                },
            ),
        ),
    }
}
