//! A conformance report: what the kit found when it drove a candidate participant through its
//! cases. The kit writes it as JSON; the hub records it (`Admin.RecordConformanceReport`),
//! signs it with its receipt key and keeps it, and corridors open to production only for
//! participants whose recorded reports passed for the corridor's document type.
//!
//! The JSON is the contract between the kit and the hub (and whoever reads reports later), so
//! its fields only grow: `format` names the version.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use caravan_common::{DocumentType, ParticipantId};

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
