//! What this spoke sent, as its officers see it: the list of sent documents (`/console/sent`)
//! and a sent document's page (`/console/sent/{message_id}`).
//!
//! Why it is here: a recipient that refuses a document says why in its signed
//! acknowledgement, with one of Caravan's codes or a business code of its own system
//! (`namespace:CODE`, docs/protocol.md section 8). The NSW API and `caravan-spoke status`
//! showed that to the sender's systems; the officer who issued the certificate needs to see it
//! too, in their language, without reading JSON. So the list shows every document's state and,
//! for a rejection, its code and reason; the page shows the hub's receipt, the history and the
//! rejection in full.
//!
//! A business code is shown exactly as the recipient wrote it, its namespace and code set apart
//! and labelled as the recipient system's own: Caravan never interprets it, as it cannot know
//! what another country's customs means by it. A Caravan code is shown with its explanation
//! from the catalogue (`refusal.<CODE>`). What the acknowledgement says is shown only when its
//! signature verified; otherwise the page says that it did not, and why, and nothing of what it
//! claims. The reason text comes from another country's system: maud escapes it like every
//! other value. Nothing here logs what a document or an acknowledgement says.

use std::collections::HashMap;

use caravan_common::{ParticipantId, Refusal, RejectCode};

use crate::store::{
    AckCheck, AckRecord, AnswerRecord, Decision, HubState, SentPage, SentRecord, SentState,
};

use super::{inbox::select, *};

#[cfg(test)]
mod tests;

/// The list's filters as the officer chose them, and the page's cursor.
#[derive(Deserialize, serde::Serialize, Default, Clone)]
pub(super) struct SentFilters {
    /// Part of the document number, or the recipient's participant id, in any case.
    #[serde(default)]
    pub(super) q: String,
    /// `failed` (rejected, refused or expired), `waiting` (queued, at the hub, delivered),
    /// `acknowledged`; anything else: every state.
    #[serde(default)]
    pub(super) state: String,
    /// The page: documents queued before this message id (the newest first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) before: Option<String>,
    /// The page: the documents queued just after this message id (the previous page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) after: Option<String>,
}

/// Sent documents the list shows at a time.
pub(super) const SENT_PAGE: usize = 100;

impl SentFilters {
    /// Whether `r` matches the filters.
    pub(super) fn keep(&self, r: &SentRecord) -> bool {
        let q = self.q.trim();
        let text = q.is_empty()
            || r.recipient.as_str().eq_ignore_ascii_case(q)
            || r.document_id.to_lowercase().contains(&q.to_lowercase());
        let state = r.state();
        text && match self.state.trim().to_ascii_lowercase().as_str() {
            "failed" => matches!(
                state,
                SentState::Rejected | SentState::Refused | SentState::Expired
            ),
            "waiting" => matches!(
                state,
                SentState::Queued | SentState::Accepted | SentState::Delivered
            ),
            "acknowledged" => state == SentState::Acknowledged,
            _ => true,
        }
    }

    /// Where the page starts; `None` if a cursor is not a message id.
    pub(super) fn at(&self) -> Option<PageAt<MessageId>> {
        let id = |s: &str| s.parse::<MessageId>().ok();
        Some(match (&self.after, &self.before) {
            (Some(after), _) => PageAt::After(id(after)?),
            (None, Some(before)) => PageAt::Before(id(before)?),
            (None, None) => PageAt::Newest,
        })
    }
}

/// A state's name for the officer, and the class it is shown in (`ok`, `fail`, or `waiting`
/// for a document still on its way).
pub(super) fn state_label(lang: Lang, state: SentState) -> (&'static str, &'static str) {
    match state {
        SentState::Queued => (lang.t("sent_state.queued"), "waiting"),
        SentState::Refused => (lang.t("sent_state.refused"), "fail"),
        SentState::Accepted => (lang.t("sent_state.accepted"), "waiting"),
        SentState::Delivered => (lang.t("sent_state.delivered"), "waiting"),
        SentState::Acknowledged => (lang.t("sent_state.acknowledged"), "ok"),
        SentState::Rejected => (lang.t("sent_state.rejected"), "fail"),
        SentState::Expired => (lang.t("sent_state.expired"), "fail"),
    }
}

fn hub_state(state: HubState) -> SentState {
    state.into()
}

/// What a verified acknowledgement says (`caravan_common::envelope::Ack` as JSON).
#[derive(Debug, Clone, Deserialize)]
pub(super) struct AckContent {
    /// `accepted` or `rejected`.
    pub(super) outcome: String,
    #[serde(default)]
    pub(super) code: Option<String>,
    #[serde(default)]
    pub(super) reason: Option<String>,
    #[serde(default)]
    pub(super) acknowledged_at: Option<Timestamp>,
}

/// The recipient's acknowledgement as the console can show it.
#[derive(Debug, Clone)]
pub(super) enum AckSeen {
    /// Its signature verified: what it says.
    Verified(AckContent),
    /// Its signature verified, but its content is not in the form this spoke reads (kept by
    /// a spoke of another version).
    Unreadable,
    /// Its signature did not verify: why (what it says is not shown).
    Failed(String),
}

impl AckSeen {
    pub(super) fn of(record: &AckRecord) -> Self {
        match &record.check {
            AckCheck::Verified(content) => serde_json::from_value(content.clone())
                .map(Self::Verified)
                .unwrap_or(Self::Unreadable),
            AckCheck::Failed(problem) => Self::Failed(problem.clone()),
        }
    }

    /// The rejection's code and reason, when a verified acknowledgement rejects.
    pub(super) fn rejection(&self) -> Option<(&str, &str)> {
        match self {
            Self::Verified(a) if a.outcome.eq_ignore_ascii_case("rejected") => Some((
                a.code.as_deref().unwrap_or_default(),
                a.reason.as_deref().unwrap_or_default(),
            )),
            _ => None,
        }
    }
}

/// A rejection's reason code exactly as the recipient gave it: a Caravan code, its
/// explanation after it when `explain` and the catalogue has one; a business code with its
/// namespace and code set apart and labelled as the recipient system's (never interpreted);
/// anything else (which a verified acknowledgement cannot carry) as written, marked.
pub(super) fn reject_code(lang: Lang, code: &str, explain: bool) -> Markup {
    html! {
        @match code.parse::<RejectCode>() {
            Ok(RejectCode::Caravan(c)) => {
                code { (c.as_str()) }
                " " small { "(" (lang.t("sent.caravan_code")) ")" }
                @if explain {
                    @if let Some(text) = lang.lookup(&format!("refusal.{}", c.as_str())) {
                        br; (text)
                    }
                }
            }
            Ok(RejectCode::Business(b)) => {
                @let (namespace, local) = b.as_str().split_once(':').unwrap_or(("", b.as_str()));
                code.business {
                    span.namespace title=(lang.t("sent.namespace")) { (namespace) }
                    span.colon { ":" }
                    span.local title=(lang.t("sent.code")) { (local) }
                }
                " " small.business_label { "(" (lang.t("sent.business_code")) ")" }
                @if explain {
                    br;
                    small {
                        (lang.f("sent.business_parts", &[("namespace", &namespace), ("code", &local)]))
                    }
                }
            }
            Err(_) => {
                code { (code) }
                " " small.warn { "(" (lang.t("sent.code_unrecognised")) ")" }
            }
        }
    }
}

/// The hub's refusal: its code, with its explanation when `explain`, and its detail.
pub(super) fn hub_refusal(lang: Lang, refusal: &Refusal, explain: bool) -> Markup {
    html! {
        code { (refusal.code.as_str()) }
        @if explain {
            @if let Some(text) = lang.lookup(&format!("refusal.{}", refusal.code.as_str())) {
                br; (text)
            }
            br;
        } @else {
            ": "
        }
        (refusal.detail)
    }
}

/// The list's last column: why a document did not arrive, in short.
fn reason_cell(lang: Lang, r: &SentRecord) -> Markup {
    let ack = r.acknowledgement.as_ref().map(AckSeen::of);
    html! {
        @match r.state() {
            SentState::Rejected => {
                @match ack.as_ref().map(|a| (a, a.rejection())) {
                    Some((_, Some((code, reason)))) => {
                        (reject_code(lang, code, false)) br; (reason)
                    }
                    Some((AckSeen::Failed(_), _)) => {
                        span.fail { (lang.t("sent.ack_not_verified_short")) }
                    }
                    _ => { span.warn { (lang.t("sent.ack_awaited_short")) } }
                }
            }
            SentState::Refused => {
                @if let Some(refusal) = r.lifecycle.refusal() {
                    (hub_refusal(lang, refusal, false))
                }
            }
            SentState::Expired => { (lang.t("sent.expired_short")) }
            SentState::Queued => {
                @if let Some(error) = &r.last_error {
                    small { (lang.f("sent.last_error", &[("attempts", &r.attempts), ("error", error)])) }
                }
            }
            _ => {}
        }
    }
}

/// The recipient as the officer reads it: its participant id and its country's name. The
/// country is the one the trust list held records for it, else its id, participants being
/// named by their country code (as `crate::checks::Registered` takes it); a code that is not a
/// country is shown as written and marked.
pub(super) fn recipient_cell(
    lang: Lang,
    id: ParticipantId,
    countries: &HashMap<ParticipantId, String>,
) -> Markup {
    let country = countries.get(&id).map_or(id.as_str(), String::as_str);
    html! {
        b { (id.as_str()) } " — " (code_value(lang, List::Country, country))
    }
}

/// The countries of every participant in the trust list held (for the recipient column).
fn countries(c: &Console) -> HashMap<ParticipantId, String> {
    c.api
        .hub
        .trust()
        .current()
        .map(|held| {
            held.set
                .participants()
                .filter_map(|p| Some((p.id, p.country?.as_str().to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// The list page's body: the filters, the count, one page (newest first) and the links to the
/// newer and older pages (each keeping the filters).
pub(super) fn sent_body(
    lang: Lang,
    clock: &Clock,
    f: &SentFilters,
    total: u64,
    listed: &SentPage,
    countries: &HashMap<ParticipantId, String>,
) -> Markup {
    let link = |before: Option<MessageId>, after: Option<MessageId>| {
        serde_urlencoded::to_string(SentFilters {
            before: before.map(|c| c.to_string()),
            after: after.map(|c| c.to_string()),
            ..f.clone()
        })
        .unwrap_or_default()
    };
    let older = listed.older_from.map(|c| link(Some(c), None));
    let newer = listed.newer_from.map(|c| link(None, Some(c)));
    let records = &listed.records;
    let first = listed.newer + 1;
    let last = listed.newer + records.len() as u64;
    html! {
        h1 { (lang.t("sent.title")) }
        form.filters method="get" action="/console/sent" {
            input name="q" placeholder=(lang.t("sent.search")) value=(f.q);
            (select("state", &f.state.trim().to_ascii_lowercase(), &[
                ("", lang.t("sent.any_state")),
                ("failed", lang.t("sent.failed")),
                ("waiting", lang.t("sent.waiting")),
                ("acknowledged", lang.t("sent.acknowledged")),
            ]))
            button { (lang.t("inbox.filter")) }
        }
        p {
            (lang.f("sent.count", &[("count", &total)]))
            "."
            @if !records.is_empty() {
                (lang.f("inbox.showing", &[
                    ("first", &first),
                    ("last", &last),
                    ("matching", &listed.matching),
                    ("page", &SENT_PAGE),
                ]))
            }
        }
        table {
            thead {
                tr {
                    th { (lang.f("sent.sent_at", &[("zone", &clock.name())])) }
                    th { (lang.t("sent.recipient")) }
                    th { (lang.t("inbox.type")) }
                    th { (lang.t("inbox.number")) }
                    th { (lang.t("sent.state")) }
                    th { (lang.t("sent.reason")) }
                }
            }
            tbody {
                @for (_, r) in records {
                    @let (state, class) = state_label(lang, r.state());
                    tr {
                        td { (clock.format_short(r.queued_at)) }
                        td { (recipient_cell(lang, r.recipient, countries)) }
                        td { (type_name(lang, Some(r.document_type))) }
                        td { a href={ "/console/sent/" (r.message_id) } { (r.document_id) } }
                        td { span class=(class) { (state) } }
                        td { (reason_cell(lang, r)) }
                    }
                }
                @if records.is_empty() {
                    tr { td colspan="6" { (lang.t("inbox.none")) } }
                }
            }
        }
        p.pages {
            @if let Some(query) = newer {
                a href={ "/console/sent?" (query) } { (lang.t("sent.newer")) }
                " "
            }
            @if let Some(query) = older {
                a href={ "/console/sent?" (query) } { (lang.t("sent.older")) }
            }
        }
    }
}

/// A page of the console with an error, in the shell (the officer stays logged in).
fn error_page(lang: Lang, status: StatusCode, officer: (&str, &str), message: &str) -> Response {
    let body = html! {
        p.fail { (message) }
        p { a href="/console/sent" { (lang.t("sent.back")) } }
    };
    (
        status,
        page(lang, lang.t("sent.title"), Some(officer), body),
    )
        .into_response()
}

pub(super) async fn sent_list(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    uri: Uri,
    Query(f): Query<SentFilters>,
) -> Response {
    let Some((user, csrf, lang)) = c.session(&headers) else {
        return to_login(&uri);
    };
    let Some(at) = f.at() else {
        return error_page(
            lang,
            StatusCode::BAD_REQUEST,
            (&user, &csrf),
            lang.t("error.bad_cursor"),
        );
    };
    let store = c.api.store.clone();
    let filters = f.clone();
    let listed = blocking(move || {
        let total = store.sent_len()?;
        let listed = store.sent_page(at, SENT_PAGE, |r| filters.keep(r))?;
        Ok((total, listed))
    })
    .await;
    let (total, listed) = match listed {
        Ok(listed) => listed,
        Err(e) => {
            return error_page(
                lang,
                StatusCode::INTERNAL_SERVER_ERROR,
                (&user, &csrf),
                &lang.f("error.store", &[("error", &e)]),
            );
        }
    };
    page(
        lang,
        lang.t("sent.title"),
        Some((&user, &csrf)),
        sent_body(lang, &c.clock, &f, total, &listed, &countries(&c)),
    )
    .into_response()
}

/// The headline of a sent document's page: where it is, in words.
fn headline(lang: Lang, r: &SentRecord) -> Markup {
    let (state, class) = state_label(lang, r.state());
    let explained = match r.state() {
        SentState::Queued => lang.t("sent.says_queued"),
        SentState::Refused => lang.t("sent.says_refused"),
        SentState::Accepted => lang.t("sent.says_accepted"),
        SentState::Delivered => lang.t("sent.says_delivered"),
        SentState::Acknowledged => lang.t("sent.says_acknowledged"),
        SentState::Rejected => lang.t("sent.says_rejected"),
        SentState::Expired => lang.t("sent.says_expired"),
    };
    html! {
        p class={ "headline " (class) } { (state) ": " (explained) }
    }
}

/// The recipient's answer: outcome, code, reason, when, and whether its signature verified.
fn answer_panel(lang: Lang, clock: &Clock, r: &SentRecord) -> Markup {
    let seen = r.acknowledgement.as_ref().map(AckSeen::of);
    html! {
        @if seen.is_some() || r.state() == SentState::Rejected {
            div.panel.answer {
                h2 { (lang.t("sent.answer")) }
                table.facts {
                    @match &seen {
                        None => tr { td colspan="2" { span.warn { (lang.t("sent.ack_awaited")) } } },
                        Some(AckSeen::Failed(problem)) => tr {
                            th { (lang.t("sent.signature")) }
                            td { span.fail { (lang.f("sent.ack_not_verified", &[("problem", problem)])) } }
                        },
                        Some(AckSeen::Unreadable) => tr {
                            th { (lang.t("sent.signature")) }
                            td {
                                span.ok { (lang.t("sent.ack_verified")) }
                                br; span.warn { (lang.t("sent.ack_unreadable")) }
                            }
                        },
                        Some(seen @ AckSeen::Verified(a)) => {
                            tr {
                                th { (lang.t("sent.outcome")) }
                                td {
                                    @if seen.rejection().is_some() {
                                        span.fail { (lang.t("sent.outcome_rejected")) }
                                    } @else {
                                        span.ok { (lang.t("sent.outcome_accepted")) }
                                    }
                                }
                            }
                            @if let Some((code, reason)) = seen.rejection() {
                                tr { th { (lang.t("sent.reason_code")) } td { (reject_code(lang, code, true)) } }
                                tr { th { (lang.t("sent.reason")) } td.reason { (reason) } }
                            }
                            @if let Some(at) = a.acknowledged_at {
                                tr { th { (lang.t("sent.acknowledged_at")) } td { (clock.format(at)) } }
                            }
                            tr {
                                th { (lang.t("sent.signature")) }
                                td { span.ok { (lang.t("sent.ack_verified")) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The hub's part: its receipt, or its refusal.
fn hub_panel(lang: Lang, clock: &Clock, r: &SentRecord) -> Markup {
    html! {
        div.panel {
            h2 { (lang.t("sent.hub")) }
            table.facts {
                @if let Some(refusal) = r.lifecycle.refusal() {
                    tr {
                        th { (lang.t("sent.hub_refusal")) }
                        td { span.fail { (hub_refusal(lang, refusal, true)) } }
                    }
                }
                @match r.lifecycle.receipt() {
                    Some(receipt) => tr {
                        th { (lang.t("check.hub_receipt")) }
                        td {
                            (lang.f("detail.receipt_ok", &[
                                ("accepted", &clock.format(receipt.accepted_at)),
                                ("sequence", &receipt.hub_sequence),
                            ]))
                        }
                    },
                    None if r.lifecycle.refusal().is_none() => tr {
                        th { (lang.t("check.hub_receipt")) }
                        td { (lang.t("sent.no_receipt")) }
                    },
                    None => {}
                }
                @if r.lifecycle.is_queued() {
                    tr {
                        th { (lang.t("sent.attempts")) }
                        td {
                            (r.attempts)
                            @if let Some(error) = &r.last_error {
                                br; small { (error) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The document's history: queued, then every state the hub reported, with local times.
fn history_panel(lang: Lang, clock: &Clock, r: &SentRecord) -> Markup {
    let queued = state_label(lang, SentState::Queued).0;
    html! {
        div.panel {
            h2 { (lang.t("sent.history")) }
            table.history {
                tr { td { (clock.format(r.queued_at)) } td { (queued) } }
                @for change in &r.transitions {
                    @let (state, class) = state_label(lang, hub_state(change.state));
                    tr { td { (clock.format(change.at)) } td { span class=(class) { (state) } } }
                }
                @if let Some(refusal) = r.lifecycle.refusal() {
                    tr {
                        td { "—" }
                        td { span.fail { (state_label(lang, SentState::Refused).0) } " " code { (refusal.code.as_str()) } }
                    }
                }
            }
        }
    }
}

/// Business responses the recipient sent back about the document, linked to the inbox.
fn responses_panel(lang: Lang, clock: &Clock, responses: &[AnswerRecord]) -> Markup {
    html! {
        @if !responses.is_empty() {
            div.panel {
                h2 { (lang.t("sent.responses")) }
                table {
                    @for a in responses {
                        tr {
                            td { (clock.format(a.received_at)) }
                            td {
                                a href={ "/console/documents/" (a.message_id) } {
                                    @match a.decision {
                                        Decision::Accepted => span.ok { (lang.t("sent.response_accepted")) },
                                        Decision::Rejected => span.fail { (lang.t("sent.response_rejected")) },
                                    }
                                }
                            }
                            td { (a.reason.as_deref().unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    }
}

/// A sent document's page: what and to whom, where it is, the recipient's answer, the hub's
/// receipt or refusal, its history and its hashes.
pub(super) fn sent_document_body(
    lang: Lang,
    clock: &Clock,
    r: &SentRecord,
    countries: &HashMap<ParticipantId, String>,
) -> Markup {
    html! {
        h1 { (r.document_id) }
        p {
            (type_name(lang, Some(r.document_type)))
            " → " (recipient_cell(lang, r.recipient, countries))
            " · " (lang.f("sent.queued_at", &[("at", &clock.format(r.queued_at))]))
        }
        (headline(lang, r))
        (answer_panel(lang, clock, r))
        (hub_panel(lang, clock, r))
        (history_panel(lang, clock, r))
        (responses_panel(lang, clock, &r.responses))
        details.panel {
            summary { (lang.t("document.details")) }
            table.facts {
                tr { th { (lang.t("document.message_id")) } td { code { (r.message_id) } } }
                tr { th { (lang.t("sent.header_sha256")) } td { code { (r.header_sha256) } } }
                tr { th { (lang.t("sent.payload_length")) } td { (r.payload_length) } }
                @if let Some(receipt) = r.lifecycle.receipt() {
                    tr { th { (lang.t("sent.receipt_key")) } td { code { (receipt.key_id) } } }
                }
            }
        }
        p { a href="/console/sent" { (lang.t("sent.back")) } }
        p { small { (lang.f("page.times", &[("zone", &clock.name())])) } }
    }
}

pub(super) async fn sent_document(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    uri: Uri,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let Some((user, csrf, lang)) = c.session(&headers) else {
        return to_login(&uri);
    };
    let officer = (user.as_str(), csrf.as_str());
    let not_found = || {
        error_page(
            lang,
            StatusCode::NOT_FOUND,
            officer,
            lang.t("error.no_such_sent"),
        )
    };
    let Ok(id) = id.parse::<MessageId>() else {
        return not_found();
    };
    let store = c.api.store.clone();
    let record = match blocking(move || store.sent_entry(id)).await {
        Ok(Some(record)) => record,
        Ok(None) => return not_found(),
        Err(e) => {
            return error_page(
                lang,
                StatusCode::INTERNAL_SERVER_ERROR,
                officer,
                &lang.f("error.store", &[("error", &e)]),
            );
        }
    };
    page(
        lang,
        &record.document_id,
        Some(officer),
        sent_document_body(lang, &c.clock, &record, &countries(&c)),
    )
    .into_response()
}
