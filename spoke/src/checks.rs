//! Content checks: whether what a document says fits who signed it, whom it is sent to, its
//! header, the clock, and the documents received before it. Signatures prove who signed the
//! bytes; these checks judge the words, so an officer is told when a KZ-signed e-Phyto names
//! Argentina's plant-health service, or when a certificate number arrives twice.
//!
//! Pure functions over what the caller gathered ([`Facts`]): the document's [`Content`], the
//! signed header's claims, the registry's word on sender and recipient (country, issuing
//! authorities), the clock and limits ([`CheckRules`]), and, on receipt, what the inbox knows
//! ([`Known`]). Each result line ([`Check`]) names its check, its outcome, a stable rule and a
//! message key with parameters: officer-visible text is rendered from the key by the console's
//! catalogues, never baked in here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use caravan_common::{
    DocumentType, MessageId, ParticipantId, Timestamp,
    trust::{IssuingAuthority, TrustSet},
};

pub use crate::config::CheckRules;
use crate::document::{Content, Party};

/// Which check a line belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckName {
    /// The issuing authority, export and import countries (e-Phyto, e-CO), or the parties'
    /// countries (e-invoice) fit the sender and the recipient.
    Issuer,
    /// The header's `document_id` and `document_type` are the document's own number and kind.
    Header,
    /// The issue date is not in the future and not older than its type's age.
    Dates,
    /// The same issuer and number were not received before under another message id.
    Duplicate,
    /// No later document replaced this one.
    Replaced,
}

impl CheckName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issuer => "issuer",
            Self::Header => "header",
            Self::Dates => "dates",
            Self::Duplicate => "duplicate",
            Self::Replaced => "replaced",
        }
    }
}

/// How a check came out. Ordered: `Pass < Warn < Fail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    Pass,
    Warn,
    Fail,
}

impl Outcome {
    /// As the APIs write it: `PASS`, `WARN`, `FAIL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Warn => "WARN",
            Self::Fail => "FAIL",
        }
    }
}

/// One line of the checks: which check, how it came out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub check: CheckName,
    pub outcome: Outcome,
    /// Stable rule name, e.g. `ISSUER_COUNTRY_MISMATCH`, `DUPLICATE_NUMBER`, `REPLACED`.
    pub rule: String,
    /// The translatable message's key in the console's catalogues: `content_check.<rule lowercase>`.
    pub message_key: String,
    /// The message's parameters, by name (`found`, `expected`, `replacement`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
}

impl Check {
    fn new(check: CheckName, outcome: Outcome, rule: &str, params: &[(&str, &str)]) -> Self {
        Self {
            check,
            outcome,
            rule: rule.to_owned(),
            message_key: message_key(rule),
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), clip(v)))
                .collect(),
        }
    }

    /// The line in plain English for logs and problem lists: rule and parameters, no document
    /// body beyond the short values the rule names.
    pub fn describe(&self) -> String {
        let params: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        format!(
            "{} {:?} {}{}{}",
            self.check.as_str(),
            self.outcome,
            self.rule,
            if params.is_empty() { "" } else { ": " },
            params.join(", ")
        )
    }
}

/// The catalogue key of a rule's message.
pub fn message_key(rule: &str) -> String {
    format!("content_check.{}", rule.to_ascii_lowercase())
}

/// Every rule a check can name, for the catalogues' completeness test.
pub const RULES: &[&str] = &[
    "ISSUER_CONSISTENT",
    "ISSUER_COUNTRY_CONSISTENT",
    "ISSUER_COUNTRY_MISMATCH",
    "ISSUER_COUNTRY_MISSING",
    "ISSUER_NOT_REGISTERED",
    "EXPORT_COUNTRY_MISMATCH",
    "IMPORT_COUNTRY_MISMATCH",
    "IMPORT_COUNTRY_MISSING",
    "INVOICE_PARTIES_CONSISTENT",
    "INVOICE_PARTIES_ELSEWHERE",
    "HEADER_CONSISTENT",
    "DOCUMENT_ID_MISMATCH",
    "DOCUMENT_TYPE_MISMATCH",
    "ISSUE_DATE_OK",
    "ISSUE_DATE_MISSING",
    "ISSUE_DATE_UNREADABLE",
    "ISSUE_DATE_FUTURE",
    "ISSUE_DATE_OLD",
    "NUMBER_UNIQUE",
    "DUPLICATE_NUMBER",
    "NOT_REPLACED",
    "REPLACED",
];

/// Values quoted from a document are kept short.
const PARAM_CHARS: usize = 120;

fn clip(v: &str) -> String {
    v.chars().take(PARAM_CHARS).collect()
}

/// `names` joined with "; ", whole names only, as many as fit in [`PARAM_CHARS`] (at least
/// one), the rest counted: "A; B; … (+3)". Clipping the joined text would cut a name in two.
fn name_list<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> String {
    let total = names.len();
    let mut out = String::new();
    let mut shown = 0;
    for name in names {
        let len = out.chars().count() + name.chars().count() + 2;
        if shown > 0 && len > PARAM_CHARS {
            break;
        }
        if shown > 0 {
            out.push_str("; ");
        }
        out.push_str(name);
        shown += 1;
    }
    if shown < total {
        out.push_str(&format!("; … (+{})", total - shown));
    }
    out
}

/// What the registry says about a participant: its country and the issuing authorities it
/// signs for (empty: none recorded, so only the country is judged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub id: ParticipantId,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    pub authorities: Vec<IssuingAuthority>,
}

/// Whether a document's issuer is one of the registered authority's: by a name it goes by
/// (case and runs of whitespace aside), or by an identifier the registry records for it.
fn is_authority(party: &Party, registered: &IssuingAuthority) -> bool {
    party.names().any(|name| name_eq(name, &registered.name))
        || party.ids.iter().any(|id| {
            registered
                .identifiers
                .iter()
                .any(|r| identifies(id, &r.scheme, &r.value))
        })
}

/// Whether an identifier as a document states it (`value`, or `SCHEME:value` when the document
/// names its scheme) is `value` in `scheme`: the value exactly, the scheme in any case.
fn identifies(stated: &str, scheme: &str, value: &str) -> bool {
    let stated = stated.trim();
    stated == value
        || stated
            .strip_suffix(value)
            .and_then(|s| s.strip_suffix(':'))
            .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
}

impl Registered {
    /// What the trust set says about a participant: its recorded country (else its id,
    /// participants being named by their country code) and the issuing authorities recorded
    /// for it (none recorded: only countries are judged).
    pub fn of(trust: &TrustSet, id: ParticipantId) -> Self {
        let p = trust.participant(id);
        Self {
            id,
            country: p
                .and_then(|p| p.country.as_ref())
                .map_or_else(|| id.as_str().to_owned(), |c| c.as_str().to_owned()),
            authorities: p.map(|p| p.issuing_authorities.clone()).unwrap_or_default(),
        }
    }

    /// A participant of which the registry records nothing more: participants are named by
    /// their country code, and no issuing authority is recorded.
    pub fn by_id(id: ParticipantId) -> Self {
        Self {
            id,
            country: id.as_str().to_owned(),
            authorities: Vec::new(),
        }
    }
}

/// The signed header's claims the checks compare with the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderClaims {
    pub message_id: MessageId,
    pub document_id: String,
    pub document_type: DocumentType,
    pub supersedes: Option<MessageId>,
}

impl From<&caravan_common::envelope::Header> for HeaderClaims {
    fn from(h: &caravan_common::envelope::Header) -> Self {
        Self {
            message_id: h.message_id,
            document_id: h.document_id.clone(),
            document_type: h.document_type,
            supersedes: h.supersedes,
        }
    }
}

/// An earlier inbox document from the same sender with the same number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Earlier {
    pub message_id: MessageId,
    /// The later document that replaced it, if one did.
    pub replaced_by: Option<MessageId>,
}

/// What the inbox knows about a received document's number and its fate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    /// Documents received before from the same sender with the same number.
    pub earlier: Vec<Earlier>,
    /// The later document that replaces this one.
    pub replaced_by: Option<MessageId>,
}

/// Everything the checks judge.
pub struct Facts<'a> {
    pub content: &'a Content,
    pub header: &'a HeaderClaims,
    pub sender: &'a Registered,
    pub recipient: &'a Registered,
    pub now: Timestamp,
    pub rules: &'a CheckRules,
    /// On receipt, what the inbox knows; `None` before sending (duplicates and replacement are
    /// the recipient's to judge).
    pub known: Option<&'a Known>,
}

/// Run every check that applies: issuer, header and dates always; duplicate and replaced on
/// receipt.
pub fn run(f: &Facts<'_>) -> Vec<Check> {
    let mut out = Vec::new();
    out.extend(issuer(f.content, f.sender, f.recipient));
    out.extend(header(f.content, f.header));
    out.push(dates(f.content, f.header.document_type, f.now, f.rules));
    if let Some(known) = f.known {
        out.push(duplicate(f.header, known));
        out.push(replaced(known));
    }
    out
}

/// The worst outcome among `checks` (`Pass` when empty).
pub fn worst(checks: &[Check]) -> Outcome {
    checks
        .iter()
        .map(|c| c.outcome)
        .max()
        .unwrap_or(Outcome::Pass)
}

/// The line that heads the verdict when not every check passes: the first failing one, else
/// the first warning.
pub fn headline(checks: &[Check]) -> Option<&Check> {
    checks
        .iter()
        .find(|c| c.outcome == Outcome::Fail)
        .or_else(|| checks.iter().find(|c| c.outcome == Outcome::Warn))
}

fn country_eq(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// Names compared as people read them: case and runs of whitespace do not matter.
fn name_eq(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    norm(a) == norm(b)
}

/// The issuer check.
pub fn issuer(c: &Content, sender: &Registered, recipient: &Registered) -> Vec<Check> {
    use Outcome::*;
    let n = CheckName::Issuer;
    let mut out = Vec::new();
    if c.format.document_type() == DocumentType::Invoice {
        let parties: Vec<&str> = [&c.seller, &c.buyer]
            .into_iter()
            .flatten()
            .filter_map(|p| p.country.as_deref())
            .collect();
        let fits = parties
            .iter()
            .any(|p| country_eq(p, &sender.country) || country_eq(p, &recipient.country));
        out.push(match fits {
            true => Check::new(n, Pass, "INVOICE_PARTIES_CONSISTENT", &[]),
            false => Check::new(
                n,
                Warn,
                "INVOICE_PARTIES_ELSEWHERE",
                &[
                    ("found", &parties.join(", ")),
                    ("sender", &sender.country),
                    ("recipient", &recipient.country),
                ],
            ),
        });
        return out;
    }
    // e-Phyto and e-CO: the issuing authority is the sender's.
    let authority = c.issuer.as_ref();
    match authority.and_then(|a| a.country.as_deref()) {
        // An SPS certificate names its authority's country only as the export country,
        // which is judged below.
        None if c.export_country.is_some() => {}
        None => out.push(Check::new(
            n,
            Warn,
            "ISSUER_COUNTRY_MISSING",
            &[("expected", &sender.country)],
        )),
        Some(found) if !country_eq(found, &sender.country) => out.push(Check::new(
            n,
            Fail,
            "ISSUER_COUNTRY_MISMATCH",
            &[("found", found), ("expected", &sender.country)],
        )),
        Some(_) => {}
    }
    let registered =
        authority.is_some_and(|a| sender.authorities.iter().any(|r| is_authority(a, r)));
    if !sender.authorities.is_empty() && !registered {
        let found = authority.and_then(|a| a.name.as_deref()).unwrap_or("");
        out.push(Check::new(
            n,
            Fail,
            "ISSUER_NOT_REGISTERED",
            &[
                ("found", found),
                ("participant", sender.id.as_str()),
                (
                    "registered",
                    &name_list(sender.authorities.iter().map(|a| a.name.as_str())),
                ),
            ],
        ));
    }
    if let Some(found) = c.export_country.as_deref()
        && !country_eq(found, &sender.country)
    {
        out.push(Check::new(
            n,
            Fail,
            "EXPORT_COUNTRY_MISMATCH",
            &[("found", found), ("expected", &sender.country)],
        ));
    }
    match c.import_country.as_deref() {
        None => out.push(Check::new(
            n,
            Warn,
            "IMPORT_COUNTRY_MISSING",
            &[("expected", &recipient.country)],
        )),
        Some(found) if !country_eq(found, &recipient.country) => out.push(Check::new(
            n,
            Fail,
            "IMPORT_COUNTRY_MISMATCH",
            &[("found", found), ("expected", &recipient.country)],
        )),
        Some(_) => {}
    }
    if out.is_empty() {
        let rule = match sender.authorities.is_empty() {
            // No authority recorded for the sender: its country is all that could be judged.
            true => "ISSUER_COUNTRY_CONSISTENT",
            false => "ISSUER_CONSISTENT",
        };
        out.push(Check::new(
            n,
            Pass,
            rule,
            &[("participant", sender.id.as_str())],
        ));
    }
    out
}

/// The header check: `document_id` is the document's number, `document_type` its kind.
pub fn header(c: &Content, h: &HeaderClaims) -> Vec<Check> {
    let n = CheckName::Header;
    let mut out = Vec::new();
    let number = c.document_number.as_deref().unwrap_or("");
    if number.trim() != h.document_id.trim() {
        out.push(Check::new(
            n,
            Outcome::Fail,
            "DOCUMENT_ID_MISMATCH",
            &[("header", &h.document_id), ("document", number)],
        ));
    }
    let kind = c.format.document_type();
    if kind != h.document_type {
        out.push(Check::new(
            n,
            Outcome::Fail,
            "DOCUMENT_TYPE_MISMATCH",
            &[
                ("header", h.document_type.as_str()),
                ("document", kind.as_str()),
            ],
        ));
    }
    if out.is_empty() {
        out.push(Check::new(n, Outcome::Pass, "HEADER_CONSISTENT", &[]));
    }
    out
}

const DAY_MS: i64 = 86_400_000;
/// The earliest time zone is 14 hours ahead of UTC: a date (or a time without an offset) is
/// judged as if written there.
const EARLIEST_ZONE_MS: i64 = 14 * 3_600_000;

/// The dates check.
pub fn dates(c: &Content, kind: DocumentType, now: Timestamp, rules: &CheckRules) -> Check {
    let n = CheckName::Dates;
    let Some(written) = c.issue_date.as_deref() else {
        return Check::new(n, Outcome::Warn, "ISSUE_DATE_MISSING", &[]);
    };
    let Some(issued) = parse_issue_date(written) else {
        return Check::new(
            n,
            Outcome::Warn,
            "ISSUE_DATE_UNREADABLE",
            &[("found", written)],
        );
    };
    let skew = i64::try_from(rules.clock_skew_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let now_ms = now.as_millis();
    // The latest instant the written value can stand for.
    let latest = match issued {
        Issued::Instant(ms) => ms,
        Issued::Local(ms) => ms.saturating_sub(EARLIEST_ZONE_MS),
        Issued::Day(ms) => ms.saturating_sub(EARLIEST_ZONE_MS),
    };
    if latest > now_ms.saturating_add(skew) {
        return Check::new(
            n,
            Outcome::Fail,
            "ISSUE_DATE_FUTURE",
            &[
                ("found", written),
                ("skew_secs", &rules.clock_skew_secs.to_string()),
            ],
        );
    }
    let max_days = rules.max_age_days(kind);
    let earliest = match issued {
        Issued::Instant(ms) | Issued::Local(ms) => ms,
        // The day ends a day after it starts.
        Issued::Day(ms) => ms.saturating_add(DAY_MS),
    };
    let age_days = now_ms.saturating_sub(earliest) / DAY_MS;
    if age_days > i64::try_from(max_days).unwrap_or(i64::MAX) {
        return Check::new(
            n,
            Outcome::Warn,
            "ISSUE_DATE_OLD",
            &[
                ("found", written),
                ("age_days", &age_days.to_string()),
                ("max_days", &max_days.to_string()),
            ],
        );
    }
    Check::new(n, Outcome::Pass, "ISSUE_DATE_OK", &[("found", written)])
}

/// The duplicates check: an earlier document from the same sender with the same number,
/// under another message id, neither replaced nor replaced by this one.
pub fn duplicate(h: &HeaderClaims, known: &Known) -> Check {
    let n = CheckName::Duplicate;
    let earlier = known.earlier.iter().find(|e| {
        e.message_id != h.message_id
            && e.replaced_by.is_none()
            && h.supersedes != Some(e.message_id)
    });
    match earlier {
        Some(e) => Check::new(
            n,
            Outcome::Fail,
            "DUPLICATE_NUMBER",
            &[
                ("number", &h.document_id),
                ("earlier", &e.message_id.to_string()),
            ],
        ),
        None => Check::new(n, Outcome::Pass, "NUMBER_UNIQUE", &[]),
    }
}

/// The replaced check.
pub fn replaced(known: &Known) -> Check {
    match known.replaced_by {
        Some(by) => replaced_by(by),
        None => Check::new(CheckName::Replaced, Outcome::Pass, "NOT_REPLACED", &[]),
    }
}

/// The line of a document replaced by message `by`.
pub fn replaced_by(by: MessageId) -> Check {
    Check::new(
        CheckName::Replaced,
        Outcome::Warn,
        "REPLACED",
        &[("replacement", &by.to_string())],
    )
}

/// An issue date as written: an instant (with offset or `Z`), a local date-time (no offset),
/// or a day; each as milliseconds of its start read as UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Issued {
    Instant(i64),
    Local(i64),
    Day(i64),
}

/// `YYYY-MM-DD`, `YYYYMMDD` (UN/CEFACT format 102), or `YYYY-MM-DDTHH:MM[:SS[.f]]` with an
/// optional `Z` or `±HH:MM` offset.
fn parse_issue_date(s: &str) -> Option<Issued> {
    let s = s.trim();
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, m, d, rest) = if b.len() == 8 && b.iter().all(u8::is_ascii_digit) {
        (num(0..4)?, num(4..6)?, num(6..8)?, "")
    } else {
        if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        (num(0..4)?, num(5..7)?, num(8..10)?, &s[10..])
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let day = days_from_civil(y, m, d).checked_mul(DAY_MS)?;
    if rest.is_empty() {
        return Some(Issued::Day(day));
    }
    let rest = rest.strip_prefix(['T', ' '])?;
    let t = rest.as_bytes();
    if t.len() < 5 || t[2] != b':' {
        return None;
    }
    let hh: i64 = rest.get(0..2)?.parse().ok()?;
    let mm: i64 = rest.get(3..5)?.parse().ok()?;
    let mut i = 5;
    let mut ss = 0;
    if t.get(i) == Some(&b':') {
        ss = rest.get(i + 1..i + 3)?.parse().ok()?;
        i += 3;
        if t.get(i) == Some(&b'.') {
            i += 1;
            while t.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
    }
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let at = day + ((hh * 60 + mm) * 60 + ss) * 1000;
    let zone = &rest[i..];
    if zone.is_empty() {
        return Some(Issued::Local(at));
    }
    if zone == "Z" || zone == "z" {
        return Some(Issued::Instant(at));
    }
    let sign = match zone.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let z = &zone[1..];
    let (zh, zm): (i64, i64) = match z.len() {
        5 if z.as_bytes()[2] == b':' => (z[0..2].parse().ok()?, z[3..5].parse().ok()?),
        4 => (z[0..2].parse().ok()?, z[2..4].parse().ok()?),
        2 => (z.parse().ok()?, 0),
        _ => return None,
    };
    if zh > 14 || zm > 59 {
        return None;
    }
    Some(Issued::Instant(at - sign * (zh * 60 + zm) * 60_000))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests;
