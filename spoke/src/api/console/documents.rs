//! A document's page and its printout: the verdict, the verification panel, the summary,
//! the fields, the attachments and the XML.

use crate::checks::{CheckName, Outcome};

use super::{super::views::VerdictView, *};

/// How a line of the verification panel came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mark {
    Pass,
    Warn,
    Fail,
    /// Information, neither passed nor failed.
    Info,
}

impl Mark {
    fn of(passed: bool) -> Self {
        if passed { Self::Pass } else { Self::Fail }
    }
}

impl From<Outcome> for Mark {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Pass => Self::Pass,
            Outcome::Warn => Self::Warn,
            Outcome::Fail => Self::Fail,
        }
    }
}

/// One line of the verification panel: how it came out and why, and the document it names
/// (a replacement, an earlier copy), linked.
pub(super) struct CheckLine {
    pub(super) name: &'static str,
    pub(super) mark: Mark,
    pub(super) detail: String,
    pub(super) link: Option<MessageId>,
    /// A content check's line (what the document says), not the signature's or the hub's.
    pub(super) content: bool,
}

/// A key's status in words.
pub(super) fn key_status(lang: Lang, status: KeyStatus) -> &'static str {
    match status {
        KeyStatus::Active => lang.t("key_status.active"),
        KeyStatus::NotYetValid => lang.t("key_status.not_yet_valid"),
        KeyStatus::Expired => lang.t("key_status.expired"),
        KeyStatus::Revoked => lang.t("key_status.revoked"),
    }
}

/// The verification panel: each check, and why it passed or failed, in `lang`, times on
/// `clock`; `replacement` the document that replaced this one, if one arrived.
pub(super) fn checks(
    c: &Console,
    lang: Lang,
    r: &InboxRecord,
    replacement: Option<&InboxRecord>,
) -> Vec<CheckLine> {
    let clock = &c.clock;
    let mut lines = Vec::new();
    let held = c.api.hub.trust().current();
    match &r.verification {
        Verification::Verified { notes } => {
            lines.push(CheckLine {
                name: lang.t("check.signature"),
                mark: Mark::Pass,
                link: None,
                content: false,
                detail: lang.f("detail.signature_ok", &[("sha256", &r.payload_sha256)]),
            });
            for n in notes {
                lines.push(CheckLine {
                    name: lang.t("check.note"),
                    mark: Mark::Info,
                    link: None,
                    content: false,
                    detail: lang.f("detail.note", &[("code", &n.code), ("message", &n.message)]),
                });
            }
        }
        Verification::Rejected { code, reason } => lines.push(CheckLine {
            name: lang.t("check.signature"),
            mark: Mark::Fail,
            link: None,
            content: false,
            detail: lang.f("detail.rejected", &[("code", code), ("reason", reason)]),
        }),
    }
    let key = r.key_id.as_deref().and_then(|k| k.parse().ok());
    match (key, &held, r.accepted_at) {
        (Some(key), Some(h), Some(at)) => match h.set.key(key) {
            Some(entry) => {
                let status = entry.status(at);
                lines.push(CheckLine {
                    name: lang.t("check.signing_key"),
                    mark: Mark::of(
                        status == KeyStatus::Active
                            || entry.revoked.as_ref().is_some_and(|rv| rv.at > at),
                    ),
                    link: None,
                    content: false,
                    detail: lang.f(
                        "detail.key",
                        &[
                            ("key", &key),
                            ("participant", &entry.participant),
                            ("status", &key_status(lang, status)),
                            ("accepted", &clock.format(at)),
                            ("now", &key_status(lang, entry.status(Timestamp::now()))),
                        ],
                    ),
                });
                if let Some(t) = r.document_type {
                    let allowed = entry.document_types.contains(&t);
                    lines.push(CheckLine {
                        name: lang.t("check.issuer_allowed"),
                        mark: Mark::of(allowed),
                        link: None,
                        content: false,
                        detail: lang.f(
                            "detail.issuer_allowed",
                            &[
                                ("participant", &entry.participant),
                                ("type", &type_name(lang, Some(t))),
                                (
                                    "answer",
                                    &lang.t(if allowed { "detail.yes" } else { "detail.no" }),
                                ),
                            ],
                        ),
                    });
                }
            }
            None => lines.push(CheckLine {
                name: lang.t("check.signing_key"),
                mark: Mark::Fail,
                link: None,
                content: false,
                detail: lang.f("detail.key_not_listed", &[("key", &key)]),
            }),
        },
        _ => lines.push(CheckLine {
            name: lang.t("check.signing_key"),
            mark: Mark::Fail,
            link: None,
            content: false,
            detail: lang.t("detail.key_unknown").into(),
        }),
    }
    lines.push(match (r.hub_sequence, r.accepted_at) {
        (Some(seq), Some(at)) => CheckLine {
            name: lang.t("check.hub_receipt"),
            mark: Mark::Pass,
            link: None,
            content: false,
            detail: lang.f(
                "detail.receipt_ok",
                &[("accepted", &clock.format(at)), ("sequence", &seq)],
            ),
        },
        _ => CheckLine {
            name: lang.t("check.hub_receipt"),
            mark: Mark::Fail,
            link: None,
            content: false,
            detail: lang.t("detail.receipt_missing").into(),
        },
    });
    lines.push(match &r.evidence.ack {
        Some(_) => CheckLine {
            name: lang.t("check.acknowledgement"),
            mark: Mark::Pass,
            link: None,
            content: false,
            detail: lang.t("detail.ack_sent").into(),
        },
        None => CheckLine {
            name: lang.t("check.acknowledgement"),
            mark: Mark::Info,
            link: None,
            content: false,
            detail: lang.t("detail.ack_pending").into(),
        },
    });
    lines.push(match &held {
        Some(h) if h.set.info.is_fresh(Timestamp::now()) => CheckLine {
            name: lang.t("check.trust_list"),
            mark: Mark::Pass,
            link: None,
            content: false,
            detail: lang.f("detail.trust_fresh", &[("version", &h.set.info.version)]),
        },
        Some(h) => CheckLine {
            name: lang.t("check.trust_list"),
            mark: Mark::Fail,
            link: None,
            content: false,
            detail: lang.f(
                "detail.trust_stale",
                &[
                    ("version", &h.set.info.version),
                    (
                        "due",
                        &h.set
                            .info
                            .next_update
                            .map(|t| clock.format(t))
                            .unwrap_or_default(),
                    ),
                ],
            ),
        },
        None => CheckLine {
            name: lang.t("check.trust_list"),
            mark: Mark::Fail,
            link: None,
            content: false,
            detail: lang.t("detail.trust_none").into(),
        },
    });
    // What the document says (the content checks, when it verified and was understood); the
    // `replaced` check is the "current" line below, which every document has.
    for check in r.checks.iter().filter(|c| c.check != CheckName::Replaced) {
        lines.push(CheckLine {
            name: lang
                .lookup(&format!("content_check.name_{}", check.check.as_str()))
                .unwrap_or(check.check.as_str()),
            mark: check.outcome.into(),
            detail: lang.message(&check.message_key, &check.params),
            link: (check.rule == "DUPLICATE_NUMBER")
                .then(|| check.params.get("earlier")?.parse().ok())
                .flatten(),
            content: true,
        });
    }
    let replaced_by = replacement.map(|n| n.message_id).or(r.replaced_by());
    lines.push(match (replaced_by, replacement) {
        (Some(_), Some(n)) => CheckLine {
            name: lang.t("check.current"),
            mark: Mark::Warn,
            detail: lang.f(
                "detail.replaced",
                &[
                    ("number", &n.document_id.as_deref().unwrap_or("?")),
                    ("message", &n.message_id),
                    ("received", &clock.format(n.received_at)),
                ],
            ),
            link: Some(n.message_id),
            content: false,
        },
        (Some(by), None) => CheckLine {
            name: lang.t("check.current"),
            mark: Mark::Warn,
            detail: lang.f("content_check.replaced", &[("replacement", &by)]),
            link: Some(by),
            content: false,
        },
        (None, _) => CheckLine {
            name: lang.t("check.current"),
            mark: Mark::Pass,
            detail: lang.t("detail.not_replaced").into(),
            link: None,
            content: false,
        },
    });
    if let Some(old) = r.supersedes {
        lines.push(CheckLine {
            name: lang.t("check.replaces"),
            mark: Mark::Info,
            link: None,
            content: false,
            detail: lang.f("detail.replaces", &[("message", &old)]),
        });
    }
    lines
}

/// A document of the inbox by its message id, the document that replaced it (if one
/// arrived), and its payload.
pub(super) async fn load(
    c: &Console,
    lang: Lang,
    id: &str,
) -> Result<(InboxRecord, Option<InboxRecord>, Vec<u8>), Response> {
    let not_found = || (StatusCode::NOT_FOUND, lang.t("error.no_such_document")).into_response();
    let id: MessageId = id.parse().map_err(|_| not_found())?;
    let store = c.api.store.clone();
    let result = blocking(move || {
        let Some(r) = store.inbox_find(id)?.into_iter().next() else {
            return Ok(None);
        };
        let payload = store.payload(r.sender, r.message_id)?.unwrap_or_default();
        // The replacements index knows every replacement, whichever arrived first; the record
        // names the one marked on it.
        let by = match store.inbox_replacement_of(r.sender, r.message_id)? {
            Some(by) => Some(by),
            None => r.replaced_by(),
        };
        let replacement = match by {
            Some(by) => store.inbox_entry(r.sender, by)?,
            None => None,
        };
        Ok(Some((r, replacement, payload)))
    })
    .await
    .map_err(|e| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            lang.f("error.store", &[("error", &e)]),
        )
            .into_response()
    })?;
    result.ok_or_else(not_found)
}

/// What the document says, when it verified and is a document the spoke reads.
pub(super) fn content_of(r: &InboxRecord, payload: &[u8]) -> Option<document::Content> {
    matches!(r.verification, Verification::Verified { .. })
        .then(|| document::content(payload).ok())
        .flatten()
}

/// The document's fields, when it verified and is a document the spoke reads.
pub(super) fn fields_table(lang: Lang, content: Option<&document::Content>) -> Markup {
    match content {
        Some(c) => field_rows(lang, Some(c.format), &c.fields),
        None => html! {
            p.warn { (lang.t("document.not_shown")) }
        },
    }
}

/// The catalogue key of a field's label: "Export country" → "field.export_country".
pub(super) fn field_key(label: &str) -> String {
    let slug: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let words: Vec<&str> = slug.split('_').filter(|w| !w.is_empty()).collect();
    format!("field.{}", words.join("_"))
}

/// The code list a field's value comes from, by its label and the document's format: an
/// e-Phyto's certificate type and status are UN/CEFACT codes, an e-CO's are words.
pub(super) fn field_list(format: Option<document::Format>, label: &str) -> Option<List> {
    let sps = format == Some(document::Format::SpsCertificate);
    match label {
        "Certificate type" if sps => Some(List::DocumentName),
        "Status" if sps => Some(List::DocumentStatus),
        "Type" => Some(List::DocumentName),
        "Transport mode" => Some(List::TransportMode),
        "Export country" | "Import country" | "Transit country" | "Origin" | "Issuing country"
        | "Seller country" | "Buyer country" => Some(List::Country),
        _ => None,
    }
}

/// The document's fields, as the sender wrote them (labels in the officer's language, codes
/// decoded, values and their languages the sender's).
pub(super) fn field_rows(
    lang: Lang,
    format: Option<document::Format>,
    fields: &[document::Field],
) -> Markup {
    html! {
        table {
            @for f in fields {
                tr {
                    th { (lang.lookup(&field_key(&f.label)).unwrap_or(&f.label)) }
                    td {
                        @match field_list(format, &f.label) {
                            Some(list) => (code_value(lang, list, &f.value)),
                            None if f.label == "HS code" => (hs_value(lang, &f.value)),
                            None => (f.value),
                        }
                        @if let Some(language) = &f.language {
                            " " small { "[" (language) "]" }
                        }
                    }
                }
            }
        }
    }
}

/// The verification panel's rows: each check, passed, failed or information, and why.
pub(super) fn check_rows(lang: Lang, lines: &[CheckLine]) -> Markup {
    html! {
        @for l in lines {
            tr {
                td {
                    @match l.mark {
                        Mark::Pass => span.ok { (lang.t("verdict.pass")) },
                        Mark::Warn => span.warn { (lang.t("verdict.warn")) },
                        Mark::Fail => span.fail { (lang.t("verdict.fail")) },
                        Mark::Info => span.warn { (lang.t("verdict.info")) },
                    }
                }
                th { (l.name) }
                td {
                    @match l.link {
                        Some(id) => a href={ "/console/documents/" (id) } { (l.detail) },
                        None => (l.detail),
                    }
                }
            }
        }
    }
}

/// The hashes and key ids an officer rarely needs, folded away.
pub(super) fn details_block(lang: Lang, r: &InboxRecord) -> Markup {
    html! {
        details.panel {
            summary { (lang.t("document.details")) }
            table {
                tr { th { (lang.t("document.message_id")) } td { code { (r.message_id) } } }
                tr { th { (lang.t("document.payload_sha256")) } td { code { (r.payload_sha256) } } }
                @if let Some(key) = &r.key_id {
                    tr { th { (lang.t("document.key_id")) } td { code { (key) } } }
                }
            }
        }
    }
}

/// The line under a document's title on its page and its printout: its kind, its sender and
/// when it was received.
pub(super) fn document_from(lang: Lang, clock: &Clock, r: &InboxRecord) -> String {
    lang.f(
        "document.from",
        &[
            ("type", &type_name(lang, r.document_type)),
            ("sender", &r.sender.as_str()),
            ("received", &clock.format(r.received_at)),
        ],
    )
}

/// The verdict at the top of a document's page and its printout: a failed panel check (the
/// signature, its key, the receipt, the trust list) first; else, for a document whose content
/// was checked, genuine and consistent only when every content check passed, otherwise the
/// failing (else warning) check in words; else, for a document never checked, genuine, with
/// the replacement as a warning if one arrived.
pub(super) fn verdict_line(
    lang: Lang,
    r: &InboxRecord,
    lines: &[CheckLine],
    print: bool,
) -> Markup {
    let headline = |v: &VerdictView| {
        v.headline
            .as_ref()
            .map(|h| lang.message(&h.message_key, &h.params))
            .unwrap_or_default()
    };
    let warned = lines.iter().find(|l| l.mark == Mark::Warn);
    html! {
        @if lines.iter().any(|l| l.mark == Mark::Fail && !l.content) {
            p.fail { (lang.t(if print { "verdict.failed_print" } else { "verdict.failed" })) }
        } @else if let Some(v) = VerdictView::of(r) {
            @match v.status.as_str() {
                "GENUINE_AND_CONSISTENT" => p.ok { (lang.t("verdict.consistent")) },
                "GENUINE_WITH_WARNINGS" => p.warn {
                    (lang.f("verdict.with_warnings", &[("message", &headline(&v))]))
                },
                _ => p.fail { (lang.f("verdict.inconsistent", &[("message", &headline(&v))])) },
            }
        } @else if let Some(l) = warned {
            p.warn { (lang.f("verdict.with_warnings", &[("message", &l.detail)])) }
        } @else {
            p.ok { (lang.t("verdict.genuine")) }
        }
    }
}

/// The document page's body: what it is, the verdict, each check, its fields, and the XML.
pub(super) fn document_body(
    lang: Lang,
    clock: &Clock,
    r: &InboxRecord,
    lines: &[CheckLine],
    payload: &[u8],
) -> Markup {
    let content = content_of(r, payload);
    let xml = String::from_utf8_lossy(payload);
    let shown: String = xml.chars().take(200_000).collect();
    html! {
        h1 { (r.document_id.as_deref().unwrap_or(lang.t("inbox.unreadable"))) }
        p {
            (document_from(lang, clock, r))
            " · "
            a href={ "/console/documents/" (r.message_id) "/print" } { (lang.t("document.printable")) }
        }
        (verdict_line(lang, r, lines, false))
        @if let Some(c) = &content {
            (summary_block(lang, clock, r.message_id, c))
        }
        div.panel {
            h2 { (lang.t("document.verification")) }
            table { (check_rows(lang, lines)) }
        }
        div.panel {
            h2 { (lang.t("document.says")) }
            (fields_table(lang, content.as_ref()))
        }
        (details_block(lang, r))
        div.panel {
            h2 { (lang.t("document.as_received")) }
            pre { (shown) }
        }
        p { small { (lang.f("page.times", &[("zone", &clock.name())])) } }
    }
}

pub(super) async fn document_page(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    uri: Uri,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let Some((user, csrf, lang)) = c.session(&headers) else {
        return to_login(&uri);
    };
    let (r, replacement, payload) = match load(&c, lang, &id).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    let lines = checks(&c, lang, &r, replacement.as_ref());
    page(
        lang,
        r.document_id
            .as_deref()
            .unwrap_or(lang.t("inbox.unreadable")),
        Some((&user, &csrf)),
        document_body(lang, &c.clock, &r, &lines, &payload),
    )
    .into_response()
}

/// A party as the summary shows it: its name, its other names, and its country decoded.
pub(super) fn party_cell(lang: Lang, party: &document::Party) -> Markup {
    html! {
        @if let Some(name) = &party.name { (name) }
        @for other in &party.other_names {
            br; small { (other) }
        }
        @if let Some(country) = &party.country {
            " — " (code_value(lang, List::Country, country))
        }
    }
}

/// A value of a numeric code list (UNTDID 1001, 1373) decoded; a value in words (a UBL
/// certificate of origin's "Non-preferential", "ORIGINAL") is the document's own and shown as
/// written, not marked as an unknown code.
pub(super) fn numeric_code(lang: Lang, list: List, value: &str) -> Markup {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        code_value(lang, list, value)
    } else {
        html! { (value) }
    }
}

/// A measure as the officer reads it: the number grouped, the unit's symbol or name.
pub(super) fn measure(lang: Lang, m: &Option<document::Measure>) -> String {
    m.as_ref()
        .map(|m| codes::quantity(&m.value, m.unit.as_deref(), lang))
        .unwrap_or_default()
}

/// The summary block at the top of the document page: who, from where to where, what goods
/// (each line with its HS code, quantity and weights with their units), issued by whom and
/// when, how it travels, and the files it carries.
pub(super) fn summary_block(
    lang: Lang,
    clock: &Clock,
    id: MessageId,
    c: &document::Content,
) -> Markup {
    let exporter = c
        .consignor
        .as_ref()
        .or(c.exporter.as_ref())
        .or(c.seller.as_ref());
    let consignee = c
        .consignee
        .as_ref()
        .or(c.importer.as_ref())
        .or(c.buyer.as_ref());
    let mut origins: Vec<&str> = Vec::new();
    for o in c.goods.iter().filter_map(|g| g.origin_country.as_deref()) {
        if !origins.contains(&o) {
            origins.push(o);
        }
    }
    html! {
        div.panel.summary {
            h2 { (lang.t("summary.title")) }
            table {
                @if let Some(n) = &c.document_number {
                    tr { th { (lang.t("summary.number")) } td { (n) } }
                }
                @if let Some(t) = &c.type_code {
                    tr { th { (lang.t("summary.kind")) } td { (numeric_code(lang, List::DocumentName, t)) } }
                }
                @if let Some(s) = &c.status_code {
                    tr { th { (lang.t("summary.status")) } td { (numeric_code(lang, List::DocumentStatus, s)) } }
                }
                @if let Some(d) = &c.issue_date {
                    tr { th { (lang.t("summary.issued")) } td { (clock.document_time(d)) } }
                }
                @if let Some(p) = &c.issuer {
                    tr { th { (lang.t("summary.authority")) } td { (party_cell(lang, p)) } }
                }
                @if let Some(p) = exporter {
                    tr { th { (lang.t("summary.exporter")) } td { (party_cell(lang, p)) } }
                }
                @if let Some(p) = consignee {
                    tr { th { (lang.t("summary.consignee")) } td { (party_cell(lang, p)) } }
                }
                @if !origins.is_empty() {
                    tr {
                        th { (lang.t("summary.origin")) }
                        td {
                            @for (i, o) in origins.iter().enumerate() {
                                @if i > 0 { ", " }
                                (code_value(lang, List::Country, o))
                            }
                        }
                    }
                }
                @if let Some(e) = &c.export_country {
                    tr { th { (lang.t("summary.export_country")) } td { (code_value(lang, List::Country, e)) } }
                }
                @if let Some(d) = &c.import_country {
                    tr { th { (lang.t("summary.destination")) } td { (code_value(lang, List::Country, d)) } }
                }
                @if let Some(t) = &c.transport {
                    tr {
                        th { (lang.t("summary.transport")) }
                        td {
                            @if let Some(mode) = &t.mode_code {
                                (code_value(lang, List::TransportMode, mode))
                            }
                            @if let Some(means) = &t.conveyance {
                                @if t.mode_code.is_some() { " — " }
                                (means)
                            }
                        }
                    }
                }
            }
            @if !c.goods.is_empty() {
                h3 { (lang.t("summary.goods")) }
                table.goods {
                    thead {
                        tr {
                            th { (lang.t("summary.description")) }
                            th { (lang.t("summary.hs_code")) }
                            th { (lang.t("summary.quantity")) }
                            th { (lang.t("summary.net_weight")) }
                            th { (lang.t("summary.gross_weight")) }
                        }
                    }
                    tbody {
                        @for g in &c.goods {
                            tr {
                                td {
                                    (g.description.as_deref().unwrap_or_default())
                                    @if let Some(b) = &g.botanical_name {
                                        br; small { i { (b) } }
                                    }
                                }
                                td {
                                    @if let Some(hs) = g.hs_code.as_deref().filter(|h| !h.trim().is_empty()) {
                                        (hs_value(lang, hs))
                                    }
                                }
                                td { (measure(lang, &g.quantity)) }
                                td { (measure(lang, &g.net_weight)) }
                                td { (measure(lang, &g.gross_weight)) }
                            }
                        }
                    }
                }
            }
            @if !c.attachments.is_empty() {
                h3 { (lang.t("attachment.title")) }
                ul {
                    @for a in &c.attachments {
                        li {
                            a href={ "/console/documents/" (id) "/attachments/" (a.index) } download {
                                (a.name.clone().unwrap_or_else(|| lang.f("attachment.unnamed", &[("index", &(a.index + 1))])))
                            }
                            @if let Some(t) = &a.media_type { " " small { "(" (t) ")" } }
                        }
                    }
                }
            }
        }
    }
}

/// A media type as the document states it, if it is a plain `type/subtype` (no parameters, no
/// spaces, no line breaks): anything else is served as `application/octet-stream`.
pub(super) fn safe_media_type(stated: Option<&str>) -> &str {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    stated
        .map(str::trim)
        .filter(|t| t.len() <= 127)
        .filter(|t| t.split_once('/').is_some_and(|(a, b)| token(a) && token(b)))
        .unwrap_or("application/octet-stream")
}

/// `Content-Disposition: attachment` with the file's name (RFC 6266): an ASCII fallback with
/// anything unsafe replaced, and the name itself UTF-8 percent-encoded.
pub(super) fn disposition(name: Option<&str>, index: usize) -> String {
    let fallback_name = format!("attachment-{}", index + 1);
    let name = name
        .map(|n| n.rsplit(['/', '\\']).next().unwrap_or(n).trim())
        .filter(|n| !n.is_empty())
        .unwrap_or(&fallback_name);
    let ascii: String = name
        .chars()
        .take(200)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._- ()".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// An attachment embedded in a verified document, downloaded: its bytes decoded from the
/// document, its stated media type when it is a plain one, never sniffed or shown inline.
pub(super) async fn attachment(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    UrlPath((id, index)): UrlPath<(String, usize)>,
) -> Response {
    let Some((_, _, lang)) = c.session(&headers) else {
        return Redirect::to("/console/login").into_response();
    };
    let (r, _, payload) = match load(&c, lang, &id).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    if !matches!(r.verification, Verification::Verified { .. }) {
        return (StatusCode::FORBIDDEN, lang.t("attachment.not_verified")).into_response();
    }
    let found = document::content(&payload)
        .ok()
        .and_then(|content| content.attachments.into_iter().nth(index));
    let Some(file) = found else {
        return (StatusCode::NOT_FOUND, lang.t("attachment.none")).into_response();
    };
    let Some(bytes) = file.bytes() else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            lang.t("attachment.unreadable"),
        )
            .into_response();
    };
    (
        [
            (
                header::CONTENT_TYPE,
                safe_media_type(file.media_type.as_deref()).to_owned(),
            ),
            (
                header::CONTENT_DISPOSITION,
                disposition(file.name.as_deref(), index),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (
                header::CONTENT_SECURITY_POLICY,
                "sandbox; default-src 'none'".to_owned(),
            ),
        ],
        bytes,
    )
        .into_response()
}

pub(super) async fn print_page(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    uri: Uri,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let Some((user, csrf, lang)) = c.session(&headers) else {
        return to_login(&uri);
    };
    let (r, replacement, payload) = match load(&c, lang, &id).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    let lines = checks(&c, lang, &r, replacement.as_ref());
    let printed = Printed {
        at: SystemTime::now(),
        spoke: c.api.me.as_str(),
        officer: &user,
        public_url: c.public_url.as_deref(),
    };
    page(
        lang,
        lang.t("document.printable"),
        Some((&user, &csrf)),
        print_body(lang, &c.clock, &r, &lines, &payload, &printed),
    )
    .into_response()
}

/// Who printed a document, where and when.
pub(super) struct Printed<'a> {
    pub(super) at: SystemTime,
    /// This spoke's participant id: the spoke that received and checked the document.
    pub(super) spoke: &'a str,
    pub(super) officer: &'a str,
    /// `console.public_url`: the QR code leads there, or there is none.
    pub(super) public_url: Option<&'a str>,
}

/// The printable view, in `lang` with times on `clock`: the verdict, the summary, each check,
/// what the document says, who printed it when, and a QR code leading to this document's page
/// at the console's configured public address (none without one: never an address taken from
/// the request).
pub(super) fn print_body(
    lang: Lang,
    clock: &Clock,
    r: &InboxRecord,
    lines: &[CheckLine],
    payload: &[u8],
    printed: &Printed,
) -> Markup {
    let content = content_of(r, payload);
    let url = printed
        .public_url
        .map(|base| format!("{base}/console/documents/{}", r.message_id));
    let qr = url.as_ref().and_then(|url| {
        qrcode::QrCode::new(url.as_bytes()).ok().map(|code| {
            code.render::<qrcode::render::svg::Color>()
                .min_dimensions(160, 160)
                .build()
        })
    });
    html! {
        h1 { (r.document_id.as_deref().unwrap_or(lang.t("inbox.unreadable"))) }
        p {
            (document_from(lang, clock, r))
        }
        (verdict_line(lang, r, lines, true))
        p.printed {
            (lang.f("print.printed", &[
                ("at", &clock_minute(clock, printed.at)),
                ("officer", &printed.officer),
            ]))
            " " b { (printed.spoke) } (lang.t("print.printed_end"))
        }
        div.qr {
            @match (&qr, &url) {
                (Some(svg), Some(url)) => {
                    // The SVG is the qrcode crate's own drawing: the URL is in it as modules,
                    // not text.
                    (PreEscaped(svg))
                    br;
                    small { (url) }
                }
                _ => {
                    small.warn { (lang.t("print.no_qr")) }
                }
            }
        }
        @if let Some(c) = &content {
            (summary_block(lang, clock, r.message_id, c))
        }
        table { (check_rows(lang, lines)) }
        h2 { (lang.t("document.says")) }
        (fields_table(lang, content.as_ref()))
    }
}
