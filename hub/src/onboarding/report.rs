//! A conformance report: what the kit found when it drove a candidate participant through its
//! cases. The kit writes it as JSON; the hub records it (`Admin.RecordConformanceReport`),
//! signs it with its receipt key and keeps it, and corridors open to production only for
//! participants whose recorded reports passed for the corridor's document type.
//!
//! The JSON is the contract between the kit and the hub (and whoever reads reports later), so
//! its fields only grow: `format` names the version.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use caravan_common::{DocumentType, ParticipantId, Timestamp};

/// The `format` of reports this hub writes and reads.
pub const FORMAT: &str = "caravan.conformance-report.v1";

/// The DSSE payload type of a report's signature: the hub signs
/// `PAE(REPORT_PAYLOAD_TYPE, report JSON bytes)`.
pub const REPORT_PAYLOAD_TYPE: &str = "application/vnd.caravan.conformance-report.v1+json";

/// A whole run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`FORMAT`].
    pub format: String,
    /// The candidate.
    pub participant: ParticipantId,
    /// The identity the kit exchanged with the candidate as.
    pub conformance_identity: ParticipantId,
    /// The document types the run covered; a passing report vouches for these only.
    pub document_types: BTreeSet<DocumentType>,
    /// Of those, the types the candidate sent and had judged by the document rules (the
    /// types it issues); the others it only received.
    pub sends: BTreeSet<DocumentType>,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    /// The version of `caravan-hub` that ran the kit.
    pub kit_version: String,
    /// True when every case passed.
    pub passed: bool,
    pub cases: Vec<CaseResult>,
}

/// One scripted case and what happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseResult {
    /// Stable, e.g. `receive-valid-e-phyto`, `tampered-payload`, `forged-receipt`.
    pub id: String,
    /// What the case checks, for people.
    pub title: String,
    /// The rule of docs/protocol.md the case holds the candidate to, e.g. "§7 receiving".
    pub rule: String,
    pub outcome: Outcome,
    /// What the kit saw: the acknowledgement's outcome and code, the resubmission, the refusal.
    pub evidence: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Outcome {
    Pass,
    Fail,
}

/// Why a report cannot be recorded: each names the broken rule.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReportError {
    #[error("the report is not JSON of the conformance report format: {0}")]
    Malformed(String),
    #[error("the report's format is {0:?}, expected {FORMAT:?}")]
    Format(String),
    #[error("the report has no cases")]
    NoCases,
    #[error("the report covers no document type")]
    NoTypes,
    #[error("the report says the candidate sends {0}, a type it does not cover")]
    SendsUncovered(DocumentType),
    #[error("the report says passed={said} but {failed} of its cases failed")]
    Inconsistent { said: bool, failed: usize },
}

impl Report {
    /// Read a report from its JSON and check that it holds together.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ReportError> {
        let report: Report =
            serde_json::from_slice(bytes).map_err(|e| ReportError::Malformed(e.to_string()))?;
        if report.format != FORMAT {
            return Err(ReportError::Format(report.format));
        }
        if report.cases.is_empty() {
            return Err(ReportError::NoCases);
        }
        if report.document_types.is_empty() {
            return Err(ReportError::NoTypes);
        }
        if let Some(t) = report
            .sends
            .iter()
            .find(|t| !report.document_types.contains(t))
        {
            return Err(ReportError::SendsUncovered(*t));
        }
        let failed = report
            .cases
            .iter()
            .filter(|c| c.outcome == Outcome::Fail)
            .count();
        if report.passed != (failed == 0) {
            return Err(ReportError::Inconsistent {
                said: report.passed,
                failed,
            });
        }
        Ok(report)
    }

    /// The JSON the kit writes and the hub signs (pretty, so a person can read the file).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a report always serializes")
    }

    /// Whether this report vouches for `participant` exchanging `document_type`.
    pub fn covers(&self, participant: ParticipantId, document_type: DocumentType) -> bool {
        self.passed
            && self.participant == participant
            && self.document_types.contains(&document_type)
    }
}

/// What the hub recorded about a report, for its page ([`Report::to_html`]).
#[derive(Debug, Clone, Copy)]
pub struct Recorded<'a> {
    /// The record's id at the hub.
    pub id: u64,
    pub recorded_at: Timestamp,
    /// `operator:<name>`.
    pub recorded_by: &'a str,
    /// What the check of the hub's signature found, e.g. "verified with hub receipt key
    /// 1a2b3c4d5e6f7a8b".
    pub signature: &'a str,
}

impl Report {
    /// A page a person can read (and print) of the report as recorded: who and what it is
    /// about, when it ran and was recorded, the verdict, then each case with its rule, outcome
    /// and evidence. Every text is escaped by `maud` (case titles and evidence come from the
    /// kit, which quoted what a candidate answered).
    pub fn to_html(&self, recorded: &Recorded<'_>) -> String {
        use maud::{DOCTYPE, html};
        let verdict = if self.passed { "PASS" } else { "FAIL" };
        let passed = self
            .cases
            .iter()
            .filter(|c| c.outcome == Outcome::Pass)
            .count();
        let types: Vec<String> = self.document_types.iter().map(|t| t.to_string()).collect();
        let time = |ms: i64| Timestamp::from_millis(ms).to_string();
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    title { "Conformance report " (recorded.id) " for " (self.participant) ": " (verdict) }
                    style {
                        "body{font-family:sans-serif;margin:2em}"
                        "table{border-collapse:collapse}"
                        "td,th{border:1px solid #999;padding:.3em .6em;text-align:left;vertical-align:top}"
                        ".PASS{color:#060}.FAIL{color:#a00;font-weight:bold}"
                    }
                }
                body {
                    h1 { "Conformance report " (recorded.id) " for " (self.participant) }
                    p class=(verdict) { "Verdict: " (verdict) " (" (passed) "/" (self.cases.len()) " cases passed)" }
                    table id="summary" {
                        tr { th { "Participant" } td { (self.participant) } }
                        tr { th { "Exchanged with, as" } td { (self.conformance_identity) } }
                        tr { th { "Document types" } td { (types.join(", ")) } }
                        tr { th { "Run" } td { (time(self.started_at_ms)) " to " (time(self.finished_at_ms)) } }
                        tr { th { "Kit version" } td { (self.kit_version) } }
                        tr { th { "Recorded" } td { (recorded.recorded_at) " by " (recorded.recorded_by) } }
                        tr { th { "Hub signature" } td { (recorded.signature) } }
                        tr { th { "Format" } td { (self.format) } }
                    }
                    h2 { "Cases" }
                    table id="cases" {
                        tr { th { "Case" } th { "What it checks" } th { "Rule" } th { "Outcome" } th { "Evidence" } }
                        @for case in &self.cases {
                            @let outcome = match case.outcome { Outcome::Pass => "PASS", Outcome::Fail => "FAIL" };
                            tr {
                                td { code { (case.id) } }
                                td { (case.title) }
                                td { (case.rule) }
                                td class=(outcome) { (outcome) }
                                td { (case.evidence) }
                            }
                        }
                    }
                }
            }
        }
        .into_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            format: FORMAT.into(),
            participant: "TJ".parse().unwrap(),
            conformance_identity: "ZZ".parse().unwrap(),
            document_types: [DocumentType::Phytosanitary].into(),
            sends: [DocumentType::Phytosanitary].into(),
            started_at_ms: 1_764_000_000_000,
            finished_at_ms: 1_764_000_060_000,
            kit_version: "0.1.0".into(),
            passed: false,
            cases: vec![
                CaseResult {
                    id: "receive-valid-e-phyto".into(),
                    title: "A valid e-Phyto is acknowledged".into(),
                    rule: "§7 receiving".into(),
                    outcome: Outcome::Pass,
                    evidence: "ACCEPTED".into(),
                },
                CaseResult {
                    id: "tampered-payload".into(),
                    title: "A tampered payload is rejected".into(),
                    rule: "§7 receiving".into(),
                    outcome: Outcome::Fail,
                    evidence: "acknowledged <script>alert(1)</script> & more".into(),
                },
            ],
        }
    }

    #[test]
    fn the_page_shows_every_case_escaped() {
        let recorded = Recorded {
            id: 3,
            recorded_at: Timestamp::from_millis(1_764_000_100_000),
            recorded_by: "operator:ops",
            signature: "verified with hub receipt key 0011223344556677",
        };
        let page = report().to_html(&recorded);
        for text in [
            "Conformance report 3 for TJ",
            "Verdict: FAIL (1/2 cases passed)",
            "receive-valid-e-phyto",
            "tampered-payload",
            "§7 receiving",
            "e-phyto",
            "operator:ops",
            "verified with hub receipt key 0011223344556677",
            "acknowledged &lt;script&gt;alert(1)&lt;/script&gt; &amp; more",
        ] {
            assert!(page.contains(text), "{text} missing:\n{page}");
        }
        assert!(!page.contains("<script>"), "{page}");
    }
}
