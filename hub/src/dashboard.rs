//! The operator's dashboard: participants online (with their onboarding stage and last
//! conformance report), the corridor matrix with volumes and
//! latencies per document type, queue depths and recent refusals, as an HTML page and as JSON.
//!
//! It is served over HTTPS with the hub's own certificate and asks for a client certificate
//! from the hub's CA, like the Admin service: an operator certificate that is not revoked gets
//! the page; a participant's gets 403 (`WRONG_ROLE`), a revoked one 403
//! (`CERTIFICATE_REVOKED`), and a client without a certificate does not complete the
//! handshake. Operators import their certificate in the browser (see the runbook).
//!
//! Connections go through `caravan_common::net` like every listener's: TLS handshakes beside
//! the accept loop, each with a time limit, a bounded number at once, the oldest giving way to
//! a new connection, so a client that connects and says nothing never holds up the operators
//! behind it.
//!
//! The Readiness Scorecard's pages (`scorecard`) are served beside it, under the same
//! authorization.

pub mod scorecard;

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Json, Router,
    extract::{ConnectInfo, FromRef, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use maud::{DOCTYPE, PreEscaped, html};
use serde::Serialize;
use tokio_rustls::server::TlsStream;

use caravan_common::{
    Refusal, Timestamp,
    net::Conn,
    trust::{CorridorState, view},
};

use crate::{
    identity::{self, Peer},
    metrics::RecentRefusal,
    observed::Observed,
};

/// Who connected: the address and the identity in the client certificate.
#[derive(Debug, Clone)]
pub struct Visitor {
    pub addr: SocketAddr,
    pub peer: Option<Peer>,
}

impl Visitor {
    /// The visitor on a connection through its TLS handshake.
    pub fn of(stream: &TlsStream<Conn>) -> Self {
        let (conn, session) = stream.get_ref();
        let peer = session
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(|leaf| identity::peer_from_der(leaf.as_ref()));
        Self {
            addr: conn.peer_addr(),
            peer,
        }
    }
}

/// What the dashboard's pages read: what the hub observes, and what the scorecard's pages
/// need besides.
#[derive(Clone)]
pub struct Dash {
    pub observed: Observed,
    pub scorecard: Arc<scorecard::Context>,
}

impl FromRef<Dash> for Observed {
    fn from_ref(dash: &Dash) -> Observed {
        dash.observed.clone()
    }
}

/// The dashboard's routes, the scorecard's among them; serve with the [`Visitor`] of each
/// connection as `ConnectInfo`.
pub fn router(observed: Observed, scorecard: scorecard::Setup) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { axum::response::Redirect::to("/dashboard") }),
        )
        .route("/dashboard", get(page))
        .route("/dashboard.json", get(json))
        .merge(scorecard::routes())
        .with_state(Dash {
            observed,
            scorecard: Arc::new(scorecard::Context::new(scorecard)),
        })
}

/// A participant as the dashboard lists it.
#[derive(Debug, Serialize)]
pub struct ParticipantRow {
    pub id: String,
    pub name: String,
    pub status: String,
    /// The country it stands for (ISO 3166-1 alpha-2), if recorded.
    pub country: Option<String>,
    /// The authorities whose documents it signs.
    pub issuing_authorities: Vec<view::AuthorityView>,
    /// Its onboarding stage: `testing`, `pilot` or `production`.
    pub stage: String,
    /// Its newest recorded conformance report, if any.
    pub last_report: Option<ReportRow>,
    /// A delivery stream is open now.
    pub online: bool,
    /// Documents waiting for it at the hub.
    pub queued: u64,
}

/// A conformance report as the dashboard lists it.
#[derive(Debug, Serialize)]
pub struct ReportRow {
    pub id: u64,
    pub passed: bool,
    pub document_types: Vec<String>,
    pub recorded_at: Timestamp,
}

/// One corridor and document type.
#[derive(Debug, Serialize)]
pub struct CorridorRow {
    pub sender: String,
    pub recipient: String,
    pub document_type: String,
    /// `open`, `pilot` or `closed` in the trust list in force.
    pub state: String,
    pub accepted: u64,
    pub delivered: u64,
    pub acknowledged: u64,
    pub rejected: u64,
    pub expired: u64,
    /// Upper bounds of the latency buckets holding the median and the 95th percentile, from
    /// acceptance to acknowledgement, in milliseconds (`None`: nothing acknowledged yet).
    pub ack_p50_ms: Option<f64>,
    pub ack_p95_ms: Option<f64>,
}

/// Everything the dashboard shows.
#[derive(Debug, Serialize)]
pub struct Dashboard {
    pub operator: String,
    pub generated_at: Timestamp,
    pub participants: Vec<ParticipantRow>,
    pub corridors: Vec<CorridorRow>,
    pub queued_total: u64,
    pub store_bytes: u64,
    pub log_entries: u64,
    pub trust_list_version: u64,
    pub trust_list_age_secs: i64,
    pub recent_refusals: Vec<RecentRefusal>,
}

fn refused(refusal: &Refusal) -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{refusal}\n"),
    )
        .into_response()
}

async fn gather(observed: &Observed, visitor: &Visitor) -> Result<Dashboard, Refusal> {
    let snapshot = observed.registry.snapshot();
    let operator = snapshot.authorize_operator(visitor.peer.as_ref())?;
    let gauges = observed.gauges().await;
    let online = observed.metrics.connected();
    let now = Timestamp::now();
    let list = view::view(&snapshot.trust, now);
    let queued = |p: &str| {
        gauges
            .queue_depths
            .iter()
            .find(|(r, _)| r.as_str() == p)
            .map_or(0, |(_, n)| *n)
    };
    // A store that cannot give the reports leaves them out (logged), as the gauges do.
    let reports = observed
        .store
        .read(|b| b.conformance_reports())
        .await
        .unwrap_or_else(|e| {
            tracing::error!(cause = %e, "the dashboard could not read the conformance reports");
            Vec::new()
        });
    let last_report = |id: &str| {
        reports
            .iter()
            .rev()
            .find(|r| r.participant == id)
            .map(|r| ReportRow {
                id: r.id,
                passed: r.passed,
                document_types: r.document_types.clone(),
                recorded_at: Timestamp::from_millis(r.recorded_at_ms),
            })
    };
    let participants = list
        .participants
        .iter()
        .map(|p| ParticipantRow {
            stage: p.stage.clone(),
            last_report: last_report(&p.id),
            id: p.id.clone(),
            name: p.name.clone(),
            status: p.status.to_owned(),
            country: p.country.clone(),
            issuing_authorities: p.issuing_authorities.clone(),
            online: online.iter().any(|o| o.as_str() == p.id),
            queued: queued(&p.id),
        })
        .collect();
    let ms = |bound: Option<f64>| bound.map(|s| s * 1000.0);
    let corridors = observed
        .metrics
        .corridors()
        .into_iter()
        .map(|(c, stats)| {
            let state = c
                .document_type
                .parse()
                .map(|t| snapshot.trust.corridor(c.sender, c.recipient, t))
                .unwrap_or(CorridorState::Closed);
            CorridorRow {
                sender: c.sender.to_string(),
                recipient: c.recipient.to_string(),
                document_type: c.document_type.clone(),
                state: state.as_str().to_owned(),
                accepted: stats.accepted.get(),
                delivered: stats.delivered.get(),
                acknowledged: stats.acknowledged.get(),
                rejected: stats.rejected.get(),
                expired: stats.expired.get(),
                ack_p50_ms: ms(stats.acknowledgement.quantile_bound(0.5)),
                ack_p95_ms: ms(stats.acknowledgement.quantile_bound(0.95)),
            }
        })
        .collect();
    Ok(Dashboard {
        operator,
        generated_at: now,
        participants,
        corridors,
        queued_total: gauges.queue_depths.iter().map(|(_, n)| n).sum(),
        store_bytes: gauges.store_bytes,
        log_entries: gauges.log_entries,
        trust_list_version: gauges.trust_list_version,
        trust_list_age_secs: gauges.trust_list_age_secs,
        recent_refusals: observed.metrics.recent_refusals(),
    })
}

async fn json(
    State(observed): State<Observed>,
    ConnectInfo(visitor): ConnectInfo<Visitor>,
) -> Response {
    match gather(&observed, &visitor).await {
        Ok(d) => Json(d).into_response(),
        Err(r) => refused(&r),
    }
}

async fn page(
    State(observed): State<Observed>,
    ConnectInfo(visitor): ConnectInfo<Visitor>,
) -> Response {
    match gather(&observed, &visitor).await {
        Ok(d) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            render(&d),
        )
            .into_response(),
        Err(r) => refused(&r),
    }
}

fn latency(ms: Option<f64>) -> String {
    match ms {
        None => "–".into(),
        Some(ms) if ms.is_infinite() => "> 1 h".into(),
        Some(ms) if ms < 1000.0 => format!("≤ {ms} ms"),
        Some(ms) => format!("≤ {} s", ms / 1000.0),
    }
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em}\
    table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #bbb;padding:.3em .6em;text-align:left}\
    .off{color:#a00}.on{color:#070}.num{text-align:right}";

/// The page: server-rendered, refreshed by the browser every 10 seconds, no script. Every
/// value is escaped by `maud` when the page is built.
fn render(d: &Dashboard) -> String {
    let mut types: Vec<&str> = d
        .corridors
        .iter()
        .map(|c| c.document_type.as_str())
        .collect();
    types.sort_unstable();
    types.dedup();
    let ids: Vec<&str> = d.participants.iter().map(|p| p.id.as_str()).collect();
    let cell = |t: &str, from: &str, to: &str| {
        d.corridors
            .iter()
            .find(|c| c.document_type == t && c.sender == from && c.recipient == to)
    };
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content="10";
                title { "Caravan hub" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "Caravan hub" }
                p {
                    "Signed in as operator " b { (d.operator) } ". "
                    (d.generated_at) " · trust list v" (d.trust_list_version)
                    " (issued " (d.trust_list_age_secs) " s ago) · "
                    (d.log_entries) " log entries · store "
                    (format!("{:.1}", d.store_bytes as f64 / (1024.0 * 1024.0))) " MiB · "
                    (d.queued_total) " documents queued"
                }
                p {
                    a href="/scorecard" { "Regional Readiness Scorecard" }
                    " · "
                    a href="/scorecard/corridors" { "Paperless corridors" }
                }
                h2 { "Participants" }
                table id="participants" {
                    tr { th { "Id" } th { "Name" } th { "Country" } th { "Issuing authorities" } th { "Status" } th { "Stage" } th { "Last conformance report" } th { "Online" } th { "Queued for it" } }
                    @for p in &d.participants {
                        tr {
                            td { (p.id) }
                            td { (p.name) }
                            td { (p.country.as_deref().unwrap_or("not recorded")) }
                            td {
                                @if p.issuing_authorities.is_empty() {
                                    "none recorded"
                                }
                                @for a in &p.issuing_authorities {
                                    div class="authority" {
                                        (a.name)
                                        @for i in &a.identifiers {
                                            " · " code { (i.scheme) "=" (i.value) }
                                        }
                                    }
                                }
                            }
                            td { (p.status) }
                            td class="stage" { (p.stage) }
                            td {
                                @match &p.last_report {
                                    None => "none recorded",
                                    Some(r) => {
                                        "#" (r.id) " "
                                        b { (if r.passed { "PASS" } else { "FAIL" }) }
                                        " " (r.document_types.join(", "))
                                        " · " (r.recorded_at.to_string().get(..10).unwrap_or_default())
                                    }
                                }
                            }
                            td class=(if p.online { "on" } else { "off" }) {
                                (if p.online { "online" } else { "offline" })
                            }
                            td class="num" { (p.queued) }
                        }
                    }
                }
                h2 { "Corridors" }
                @if types.is_empty() {
                    p { "No document has passed yet." }
                }
                @for t in &types {
                    h3 { (t) }
                    p { "Each cell: acknowledged / accepted (rejected, expired), and the time from acceptance to acknowledgement for half and for 95% of them." }
                    table class="matrix" {
                        tr {
                            th { "from \\ to" }
                            @for to in &ids { th { (to) } }
                        }
                        @for from in &ids {
                            tr {
                                th { (from) }
                                @for to in &ids {
                                    @if let Some(c) = cell(t, from, to) {
                                        td {
                                            (c.acknowledged) " / " (c.accepted) " (" (c.rejected) ", " (c.expired) ")"
                                            br;
                                            "p50 " (latency(c.ack_p50_ms)) " · p95 " (latency(c.ack_p95_ms))
                                            br;
                                            small { (c.state) }
                                        }
                                    } @else {
                                        td {}
                                    }
                                }
                            }
                        }
                    }
                }
                h2 { "Recent refusals" }
                table id="refusals" {
                    tr { th { "When" } th { "Operation" } th { "Caller" } th { "Reason" } th { "Detail" } }
                    @for r in &d.recent_refusals {
                        tr {
                            td { (r.at) }
                            td { (r.op) }
                            td { (r.caller) }
                            td { (r.code) }
                            td { (r.detail) }
                        }
                    }
                }
            }
        }
    };
    page.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped() {
        let d = Dashboard {
            operator: "ops".into(),
            generated_at: Timestamp::now(),
            participants: vec![ParticipantRow {
                id: "KZ".into(),
                name: "<b>Kazakhstan</b>".into(),
                status: "active".into(),
                country: Some("KZ".into()),
                issuing_authorities: vec![view::AuthorityView {
                    name: "Plant <Quarantine> Service".into(),
                    identifiers: vec![view::IdentifierView {
                        scheme: "ippc".into(),
                        value: "KZ-NPPO".into(),
                    }],
                }],
                stage: "pilot".into(),
                last_report: Some(ReportRow {
                    id: 3,
                    passed: true,
                    document_types: vec!["e-co".into(), "e-phyto".into()],
                    recorded_at: Timestamp::from_millis(1_764_000_000_000),
                }),
                online: true,
                queued: 2,
            }],
            corridors: vec![CorridorRow {
                sender: "KZ".into(),
                recipient: "KZ".into(),
                document_type: "e-co".into(),
                state: "<open>".into(),
                accepted: 1,
                delivered: 1,
                acknowledged: 1,
                rejected: 0,
                expired: 0,
                ack_p50_ms: Some(f64::INFINITY),
                ack_p95_ms: None,
            }],
            queued_total: 2,
            store_bytes: 0,
            log_entries: 0,
            trust_list_version: 1,
            trust_list_age_secs: 0,
            recent_refusals: Vec::new(),
        };
        let page = render(&d);
        assert!(page.contains("&lt;b&gt;Kazakhstan&lt;/b&gt;"));
        assert!(!page.contains("<b>Kazakhstan"));
        assert!(page.contains("Signed in as operator <b>ops</b>"), "{page}");
        for text in [
            "<h3>e-co</h3>",
            "1 / 1 (0, 0)",
            "p50 &gt; 1 h",
            "&lt;open&gt;",
            "<td>KZ</td>",
            "Plant &lt;Quarantine&gt; Service · <code>ippc=KZ-NPPO</code>",
            "<td class=\"stage\">pilot</td>",
            "#3 <b>PASS</b> e-co, e-phyto · 2025-11-24",
            "<a href=\"/scorecard\">Regional Readiness Scorecard</a>",
        ] {
            assert!(page.contains(text), "{text} missing:\n{page}");
        }
    }
}
