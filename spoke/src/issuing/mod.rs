//! Issuing standard documents at the spoke, for countries with no national single window.
//!
//! Several CAREC members still issue phytosanitary certificates and certificates of origin on
//! paper and have no national single window to call the spoke's API. So that such a country can
//! join on day one (as the IPPC's GeNS lets plant-health services issue e-Phytos in a browser),
//! its officers fill a [`Form`] in the spoke's console, and the spoke makes the standard
//! document itself: an e-Phyto as a UN/CEFACT SPS certificate (the SPSCertificate:17 schema the
//! IPPC ePhyto Hub exchanges), an e-CO as an OASIS UBL 2.1 CertificateOfOrigin.
//!
//! A document made here meets the same rules as one received: [`build`] runs the field checks
//! ([`check`], every problem naming its form field), writes the XML, and then judges the bytes
//! with the spoke's own document rules ([`crate::document::judge`]), the very function that
//! judges documents arriving from other spokes; a document that would be refused on arrival is
//! never made. Its tests also validate what it makes against the schemas shipped in
//! `samples/xsd/` with a real XML schema validator (xmllint).
//!
//! What it does not do: drafts, approval, signing and sending are the console's and the
//! outbox's; this module turns an approved form into bytes and nothing else.
//!
//! Files: `form` (the forms), `check` (the field checks), `sps` (the e-Phyto writer), `ubl_co`
//! (the e-CO writer), `xml` (the escaping XML writer they share).

mod check;
mod form;
mod sps;
mod ubl_co;
mod xml;

pub use check::{FieldProblem, MAX_ENTRIES, MAX_LINES, MAX_LONG_TEXT, MAX_NUMBER, MAX_TEXT, check};
pub use form::{
    Authority, Conveyance, EPhytoForm, EcoForm, EcoLine, EcoTransport, Form, Issue, PhytoLine,
    Place, TradeParty, Treatment,
};

use std::time::{Duration, UNIX_EPOCH};

use caravan_common::Timestamp;

/// The standard document `form` describes, issued as `issue` says: UTF-8 XML that the spoke's
/// own document rules accept as `form.document_type()` sent as `form.media_type()`. Refused,
/// with every problem naming its field, when the form or the issue does not pass [`check`],
/// or (which the tests hold never to happen) when the made document would not pass the rules
/// received documents meet: those problems name the field `document`.
pub fn build(form: &Form, issue: &Issue) -> Result<Vec<u8>, Vec<FieldProblem>> {
    let mut problems = check(form);
    problems.extend(check::check_issue(issue));
    if !problems.is_empty() {
        return Err(problems);
    }
    let xml = match form {
        Form::EPhyto(f) => sps::write(f, issue),
        Form::Eco(f) => ubl_co::write(f, issue),
    }
    .map_err(|e| {
        vec![FieldProblem::new(
            "document",
            "document",
            "xml_not_written",
            &[("error", &e.to_string())],
        )]
    })?;
    crate::document::judge(&xml, form.document_type(), Some(form.media_type())).map_err(
        |problems| {
            problems
                .into_iter()
                .map(|p| {
                    FieldProblem::new(
                        "document",
                        "document",
                        "document_rule",
                        &[
                            ("rule", &p.rule),
                            ("field", &p.field),
                            ("message", &p.message),
                        ],
                    )
                })
                .collect::<Vec<_>>()
        },
    )?;
    Ok(xml)
}

/// `t` as RFC 3339 in UTC to the second (`2026-11-27T05:15:00Z`), if it is between 1970 and
/// the end of 9999.
pub(crate) fn rfc3339_seconds(t: Timestamp) -> Option<String> {
    const END_OF_9999_MS: u64 = 253_402_300_799_999;
    let ms = u64::try_from(t.as_millis())
        .ok()
        .filter(|ms| *ms <= END_OF_9999_MS)?;
    let time = UNIX_EPOCH.checked_add(Duration::from_millis(ms))?;
    Some(humantime::format_rfc3339_seconds(time).to_string())
}

/// A form's text as written into a document: trimmed, line ends as `\n`.
pub(crate) fn clean(value: &str) -> String {
    value.trim().replace("\r\n", "\n").replace('\r', "\n")
}

/// The non-blank lines of a multi-line text, each trimmed.
pub(crate) fn lines(value: &str) -> Vec<String> {
    clean(value)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// An HS code as written into a document: its digits, without dots.
pub(crate) fn hs_digits(value: &str) -> String {
    value.trim().chars().filter(char::is_ascii_digit).collect()
}

/// The forms the tests fill (full and minimal, of each kind), for other modules' tests too.
#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod tests_xsd;
