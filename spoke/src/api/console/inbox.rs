//! The inbox page: the filtered, paged list of received documents with their flags.

use crate::checks::{self, CheckName, Outcome};

use super::{super::views::VerdictView, *};

#[derive(Deserialize, serde::Serialize, Default, Clone)]
pub(super) struct Filters {
    #[serde(default)]
    pub(super) q: String,
    #[serde(default, rename = "type")]
    pub(super) document_type: String,
    #[serde(default)]
    pub(super) country: String,
    #[serde(default)]
    pub(super) status: String,
    #[serde(default)]
    pub(super) from: String,
    #[serde(default)]
    pub(super) to: String,
    /// The page: documents that arrived before this cursor (the newest first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) before: Option<u64>,
    /// The page: the documents just after this cursor (the previous page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) after: Option<u64>,
}

/// Documents the inbox page lists at a time.
pub(super) const INBOX_PAGE: usize = 100;

impl Filters {
    pub(super) fn keep(&self, r: &InboxRecord) -> bool {
        let received = r.received_at.to_string();
        let date = received.get(..10).unwrap_or(&received);
        r.matches_text(&self.q)
            && (self.document_type.trim().is_empty()
                || r.document_type
                    .is_some_and(|t| t.as_str().eq_ignore_ascii_case(self.document_type.trim())))
            && (self.country.trim().is_empty()
                || r.sender.as_str().eq_ignore_ascii_case(self.country.trim()))
            && self.result_matches(r)
            && (self.from.is_empty() || date >= self.from.as_str())
            && (self.to.is_empty() || date <= self.to.as_str())
    }

    /// The result filter, in any case: the signature's verdict (`verified`, `rejected`), or
    /// what the content checks found (`consistent`, `warnings`, `inconsistent`; a document
    /// whose content was not checked matches none of these).
    fn result_matches(&self, r: &InboxRecord) -> bool {
        let content = |status: &str| VerdictView::of(r).is_some_and(|v| v.status == status);
        match self.status.trim().to_ascii_lowercase().as_str() {
            "verified" => matches!(r.verification, Verification::Verified { .. }),
            "rejected" => matches!(r.verification, Verification::Rejected { .. }),
            "consistent" => content("GENUINE_AND_CONSISTENT"),
            "warnings" => content("GENUINE_WITH_WARNINGS"),
            "inconsistent" => content("GENUINE_BUT_INCONSISTENT"),
            _ => true,
        }
    }
}

/// The verification column of the inbox list.
pub(super) fn verdict_cell(lang: Lang, v: &Verification) -> Markup {
    html! {
        @match v {
            Verification::Verified { notes } => {
                span.ok { (lang.t("verdict.verified")) }
                @if !notes.is_empty() {
                    " "
                    span.warn {
                        "("
                        @for (i, n) in notes.iter().enumerate() {
                            @if i > 0 { ", " }
                            (n.code)
                        }
                        ")"
                    }
                }
            }
            Verification::Rejected { code, .. } => {
                span.fail { (lang.f("verdict.not_genuine", &[("code", &code.as_str())])) }
            }
        }
    }
}

/// The inbox list's flags for what the content checks found: DUPLICATE (the number came
/// before), REPLACED (with a link to the replacement), and FAIL or WARN for any other failing
/// or warning check; each flag's title says why, in words.
pub(super) fn content_flags(lang: Lang, r: &InboxRecord) -> Markup {
    let says = |c: &checks::Check| lang.message(&c.message_key, &c.params);
    let duplicate = r
        .checks
        .iter()
        .find(|c| c.check == CheckName::Duplicate && c.rule == "DUPLICATE_NUMBER");
    let replaced = r.replaced_by();
    let other = |outcome: Outcome| {
        r.checks
            .iter()
            .find(|c| c.outcome == outcome && c.rule != "DUPLICATE_NUMBER" && c.rule != "REPLACED")
    };
    html! {
        @if let Some(c) = other(Outcome::Fail) {
            span.flag.fail title=(says(c)) { (lang.t("inbox.flag_fail")) }
        }
        @if let Some(c) = other(Outcome::Warn) {
            span.flag.warn title=(says(c)) { (lang.t("inbox.flag_warn")) }
        }
        @if let Some(c) = duplicate {
            span.flag.fail title=(says(c)) { (lang.t("inbox.flag_duplicate")) }
        }
        @if let Some(by) = replaced {
            a.flag.warn href={ "/console/documents/" (by) }
                title=(lang.f("inbox.replaced_by", &[("message", &by)])) {
                (lang.t("inbox.flag_replaced"))
            }
        }
    }
}

/// A `select` of the filter form, `current` selected.
pub(super) fn select(name: &str, current: &str, options: &[(&str, &str)]) -> Markup {
    html! {
        select name=(name) {
            @for (value, label) in options {
                option value=(value) selected[*value == current] { (label) }
            }
        }
    }
}

/// The inbox page's body: the filter form as the officer filled it, how many documents the
/// inbox holds and how many match, one page (newest first) and the links to the newer and
/// older pages, when there are any (each keeps the filters).
pub(super) fn inbox_body(
    lang: Lang,
    clock: &Clock,
    f: &Filters,
    total: u64,
    listed: &InboxPage,
) -> Markup {
    let link = |before: Option<u64>, after: Option<u64>| {
        serde_urlencoded::to_string(Filters {
            before,
            after,
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
        h1 { (lang.t("inbox.title")) }
        form.filters method="get" action="/console" {
            input name="q" placeholder=(lang.t("inbox.search")) value=(f.q);
            (select("type", &f.document_type, &[
                ("", lang.t("doctype.any")),
                ("e-co", lang.t("doctype.e-co")),
                ("e-phyto", lang.t("doctype.e-phyto")),
                ("e-invoice", lang.t("doctype.e-invoice")),
            ]))
            input name="country" placeholder=(lang.t("inbox.country")) size="8" value=(f.country);
            (select("status", &f.status.trim().to_ascii_lowercase(), &[
                ("", lang.t("inbox.any_result")),
                ("verified", lang.t("inbox.verified")),
                ("rejected", lang.t("inbox.rejected")),
                ("consistent", lang.t("inbox.consistent")),
                ("warnings", lang.t("inbox.warnings")),
                ("inconsistent", lang.t("inbox.inconsistent")),
            ]))
            label { (lang.t("inbox.from")) " " input type="date" name="from" value=(f.from); }
            label { (lang.t("inbox.to")) " " input type="date" name="to" value=(f.to); }
            button { (lang.t("inbox.filter")) }
        }
        p {
            (lang.f("inbox.count", &[("count", &total)]))
            @if f.before.is_some() { (lang.t("inbox.older_ones")) }
            "."
            @if !records.is_empty() {
                (lang.f("inbox.showing", &[
                    ("first", &first),
                    ("last", &last),
                    ("matching", &listed.matching),
                    ("page", &INBOX_PAGE),
                ]))
            }
        }
        table {
            thead {
                tr {
                    th { (lang.t("inbox.number")) } th { (lang.t("inbox.type")) }
                    th { (lang.t("inbox.sender")) }
                    th { (lang.f("inbox.received", &[("zone", &clock.name())])) }
                    th { (lang.t("inbox.verification")) }
                }
            }
            tbody {
                // Newest first, which is what an officer at a border post looks for; a page at
                // a time.
                @for (_, r) in records {
                    tr {
                        td {
                            a href={ "/console/documents/" (r.message_id) } {
                                (r.document_id.as_deref().unwrap_or(lang.t("inbox.unreadable")))
                            }
                        }
                        td { (type_name(lang, r.document_type)) }
                        td { (r.sender.as_str()) }
                        td { (clock.format_short(r.received_at)) }
                        td { (verdict_cell(lang, &r.verification)) (content_flags(lang, r)) }
                    }
                }
                @if records.is_empty() {
                    tr { td colspan="5" { (lang.t("inbox.none")) } }
                }
            }
        }
        p.pages {
            @if let Some(query) = newer {
                a href={ "/console?" (query) } { (lang.t("inbox.newer")) }
                " "
            }
            @if let Some(query) = older {
                a href={ "/console?" (query) } { (lang.t("inbox.older")) }
            }
        }
    }
}

pub(super) async fn inbox(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    uri: Uri,
    Query(f): Query<Filters>,
) -> Response {
    let Some((user, csrf, lang)) = c.session(&headers) else {
        return to_login(&uri);
    };
    let store = c.api.store.clone();
    let filters = f.clone();
    let at = match (f.after, f.before) {
        (Some(after), _) => PageAt::After(after),
        (None, Some(before)) => PageAt::Before(before),
        (None, None) => PageAt::Newest,
    };
    let listed = blocking(move || {
        let total = store.inbox_len()?;
        let listed = store.inbox_page(at, INBOX_PAGE, |r| filters.keep(r))?;
        Ok((total, listed))
    })
    .await;
    let (total, listed) = match listed {
        Ok(listed) => listed,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                lang.f("error.store", &[("error", &e)]),
            )
                .into_response();
        }
    };
    page(
        lang,
        lang.t("inbox.title"),
        Some((&user, &csrf)),
        inbox_body(lang, &c.clock, &f, total, &listed),
    )
    .into_response()
}
