//! Onboarding: participants' stages and the conformance reports that let them advance.
//!
//! A participant is registered at stage *testing*: it can be driven by the conformance kit,
//! but no pilot or open corridor may join it. Why: a country's system that gets the protocol
//! wrong (accepts a tampered document, forges nothing but acknowledges before storing) harms
//! the other countries first, so the hub asks for evidence before it lets real documents flow.
//! The evidence is a conformance report ([`report`], the JSON the conformance kit writes), recorded by an
//! operator, signed by the hub with its receipt key (so that anyone holding the trust list can
//! check later that this hub recorded exactly this report) and logged in the exchange log.
//!
//! The rules, judged here over the trust list being edited and the recorded reports:
//! - promotion to pilot or production needs the participant's newest report to have passed;
//! - a pilot corridor needs both ends at pilot or production, an open one both at production,
//!   and for each end its newest report that ran the corridor's document type must have
//!   passed (it `covers` the participant and the type); a newer failing run of a type
//!   outweighs an older pass;
//! - demotion is refused while corridors above the new stage join the participant;
//! - closing a corridor is always allowed.
//!
//! An operator may override the first two with a reason (a pilot agreed between two
//! ministries before the kit existed, say); the override and its reason go into the change's
//! exchange-log entry, its actor marked `(override)`, so the exception is on the record for
//! good. Demotion cannot be overridden: a corridor above its ends' stages would contradict
//! the list itself.

pub mod report;

use caravan_common::{
    DocumentType, ParticipantId, Refusal, RefusalCode, Timestamp,
    signing::{Purpose, SigningKey, sha256},
    trust::{CorridorState, ParticipantStage, TrustSet},
};
use caravan_proto::{trust_list, v1};

use crate::{
    onboarding::report::{Outcome, Report},
    registry::Logged,
    store::{ConformanceRecord, LogEntry, LogKind},
};

/// The largest report JSON the hub records. A kit's report of a few dozen cases is a few
/// KiB; the limit keeps a mistaken upload (a log file, a whole archive) out of the store.
pub const MAX_REPORT_BYTES: usize = 1 << 20;

/// The longest override reason, in characters: a sentence or two for the record.
pub const MAX_OVERRIDE_CHARS: usize = 500;

fn refused(code: RefusalCode, detail: impl Into<String>) -> Refusal {
    Refusal::new(code, detail)
}

/// An override reason from a request: `None` when empty, trimmed; refused when too long or
/// with control characters (it goes into the exchange log, which is kept for good).
pub fn override_reason(text: &str) -> Result<Option<String>, Refusal> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.chars().any(char::is_control) {
        return Err(refused(
            RefusalCode::MalformedRequest,
            "the override reason contains a control character",
        ));
    }
    let chars = text.chars().count();
    if chars > MAX_OVERRIDE_CHARS {
        return Err(refused(
            RefusalCode::MalformedRequest,
            format!("the override reason is {chars} characters long; at most {MAX_OVERRIDE_CHARS}"),
        ));
    }
    Ok(Some(text.to_owned()))
}

/// A stage named in a request. `unspecified`: what an empty field means, if anything.
pub fn stage_from_request(
    stage: i32,
    unspecified: Option<ParticipantStage>,
) -> Result<ParticipantStage, Refusal> {
    let bad = || {
        refused(
            RefusalCode::MalformedRequest,
            "stage must be testing, pilot or production",
        )
    };
    match v1::ParticipantStage::try_from(stage).map_err(|_| bad())? {
        v1::ParticipantStage::Unspecified => unspecified.ok_or_else(bad),
        other => trust_list::stage_from_wire(other as i32).ok_or_else(bad),
    }
}

/// The recorded reports, as the rules read them (oldest first).
#[derive(Default)]
pub struct Evidence {
    reports: Vec<(ConformanceRecord, Report)>,
}

impl Evidence {
    /// From the stored records. A record whose JSON does not read is left out: the hub read
    /// it before recording it, so it was changed since, and vouches for nothing.
    pub fn new(records: Vec<ConformanceRecord>) -> Self {
        let reports = records
            .into_iter()
            .filter_map(|r| {
                let report = Report::from_json(&r.report_json).ok()?;
                Some((r, report))
            })
            .collect();
        Self { reports }
    }

    fn of(
        &self,
        id: ParticipantId,
    ) -> impl DoubleEndedIterator<Item = &(ConformanceRecord, Report)> {
        self.reports
            .iter()
            .filter(move |(r, _)| r.participant == id.as_str())
    }

    /// The participant's newest report.
    pub fn newest(&self, id: ParticipantId) -> Option<&(ConformanceRecord, Report)> {
        self.of(id).next_back()
    }

    /// The participant's newest report that ran `doc`.
    pub fn newest_for(
        &self,
        id: ParticipantId,
        doc: DocumentType,
    ) -> Option<&(ConformanceRecord, Report)> {
        self.of(id)
            .rev()
            .find(|(_, report)| report.document_types.contains(&doc))
    }
}

/// A participant's stage in the list being edited, or `NOT_REGISTERED`.
pub fn stage_in(list: &v1::TrustList, id: ParticipantId) -> Result<ParticipantStage, Refusal> {
    let p = list
        .participants
        .iter()
        .find(|p| p.id == id.as_str())
        .ok_or_else(|| {
            refused(
                RefusalCode::NotRegistered,
                format!("participant {id} is not registered"),
            )
        })?;
    trust_list::stage_from_wire(p.stage).ok_or_else(|| {
        refused(
            RefusalCode::MalformedRequest,
            format!("participant {id} has an unknown stage {}", p.stage),
        )
    })
}

/// A rule an onboarding change does not meet: its code, and a sentence naming the
/// participant and what is missing.
pub type Unmet = (RefusalCode, String);

/// What a promotion of `id` lacks: its newest report passed.
pub fn promotion_unmet(evidence: &Evidence, id: ParticipantId) -> Vec<Unmet> {
    match evidence.newest(id) {
        None => vec![(
            RefusalCode::ConformanceRequired,
            format!("{id} has no recorded conformance report"),
        )],
        Some((record, _)) if !record.passed => vec![(
            RefusalCode::ConformanceRequired,
            format!(
                "{id}'s newest conformance report (report {}) failed",
                record.id
            ),
        )],
        Some(_) => Vec::new(),
    }
}

/// What a corridor `from -> to` for `doc` in `state` lacks at either end: the stage its
/// state needs, a passing report covering `doc`. Nothing for a closed corridor.
pub fn corridor_unmet(
    list: &v1::TrustList,
    evidence: &Evidence,
    (from, to, doc): (ParticipantId, ParticipantId, DocumentType),
    state: CorridorState,
) -> Result<Vec<Unmet>, Refusal> {
    let Some(needed) = ParticipantStage::needed_for(state) else {
        return Ok(Vec::new());
    };
    // The stages first: they are the more basic rule, and a report alone cannot lift them.
    let mut unmet = Vec::new();
    for end in [from, to] {
        let stage = stage_in(list, end)?;
        if stage < needed {
            let allowed = match needed {
                ParticipantStage::Production => "production",
                _ => "pilot or production",
            };
            unmet.push((
                RefusalCode::StageTooLow,
                format!(
                    "{end} is at stage {stage}; a{} {} corridor needs both ends at {allowed}",
                    if state == CorridorState::Open {
                        "n"
                    } else {
                        ""
                    },
                    state.as_str()
                ),
            ));
        }
    }
    for end in [from, to] {
        match evidence.newest_for(end, doc) {
            Some((_, report)) if report.covers(end, doc) => {}
            Some((record, _)) => unmet.push((
                RefusalCode::ConformanceRequired,
                format!(
                    "{end}'s newest conformance report covering {doc} (report {}) failed",
                    record.id
                ),
            )),
            None => unmet.push((
                RefusalCode::ConformanceRequired,
                format!("{end} has no recorded conformance report covering {doc}"),
            )),
        }
    }
    Ok(unmet)
}

/// The corridors joining `id` that need a higher stage than `stage`, e.g.
/// `TJ -> KZ e-phyto (open)`.
pub fn corridors_above(
    list: &v1::TrustList,
    id: ParticipantId,
    stage: ParticipantStage,
) -> Vec<String> {
    list.corridors
        .iter()
        .filter(|c| c.sender == id.as_str() || c.recipient == id.as_str())
        .filter_map(|c| {
            let state = match v1::CorridorState::try_from(c.state).ok()? {
                v1::CorridorState::Open => CorridorState::Open,
                v1::CorridorState::Pilot => CorridorState::Pilot,
                _ => return None,
            };
            (ParticipantStage::needed_for(state)? > stage).then(|| {
                format!(
                    "{} -> {} {} ({})",
                    c.sender,
                    c.recipient,
                    c.document_type,
                    state.as_str()
                )
            })
        })
        .collect()
}

/// Judge a change: with nothing unmet it is logged as the operator's; with rules unmet it
/// is refused with the first one's code, every one named, unless the operator overrides
/// with a reason, which is then logged with what was overridden and the actor marked.
pub fn judge(
    operator_actor: &str,
    detail: String,
    unmet: Vec<Unmet>,
    override_reason: Option<&str>,
) -> Result<Logged, Refusal> {
    let Some((code, _)) = unmet.first() else {
        let detail = match override_reason {
            Some(reason) => format!("{detail}; override reason given but not needed: {reason}"),
            None => detail,
        };
        return Ok(Logged {
            actor: operator_actor.to_owned(),
            detail,
        });
    };
    let said: Vec<&str> = unmet.iter().map(|(_, s)| s.as_str()).collect();
    match override_reason {
        Some(reason) => Ok(Logged {
            actor: format!("{operator_actor} (override)"),
            detail: format!(
                "{detail}; OVERRIDE of onboarding rules ({}): {reason}",
                said.join("; ")
            ),
        }),
        None => Err(refused(
            *code,
            format!(
                "{}; record a passing conformance report and promote first, or give an override reason",
                said.join("; ")
            ),
        )),
    }
}

/// A report ready to record: read, checked, signed, and the way to build its record and log
/// entry once its id is known.
pub struct Prepared {
    pub report: Report,
    json: Vec<u8>,
    signature: [u8; 64],
    key_id: String,
    recorded_by: String,
    at: Timestamp,
}

impl Prepared {
    /// Read `json` as a report (`INVALID_CONFORMANCE_REPORT`, naming the rule, otherwise) and
    /// sign `PAE(REPORT_PAYLOAD_TYPE, json)` with the hub's receipt key.
    pub fn new(json: Vec<u8>, key: &SigningKey, recorded_by: &str) -> Result<Self, Refusal> {
        if json.len() > MAX_REPORT_BYTES {
            return Err(refused(
                RefusalCode::InvalidConformanceReport,
                format!(
                    "the report is {} bytes; at most {MAX_REPORT_BYTES}",
                    json.len()
                ),
            ));
        }
        let report = Report::from_json(&json)
            .map_err(|e| refused(RefusalCode::InvalidConformanceReport, e.to_string()))?;
        let signature = key.sign(Purpose::ConformanceReport, &json);
        Ok(Self {
            report,
            json,
            signature,
            key_id: key.key_id().to_string(),
            recorded_by: recorded_by.to_owned(),
            at: Timestamp::now(),
        })
    }

    /// The record and its exchange-log entry, for report `id`.
    pub fn record(&self, id: u64) -> (ConformanceRecord, LogEntry) {
        let report = &self.report;
        let types: Vec<String> = report
            .document_types
            .iter()
            .map(|t| t.to_string())
            .collect();
        let passed = report
            .cases
            .iter()
            .filter(|c| c.outcome == Outcome::Pass)
            .count();
        let detail = format!(
            "conformance report {id} for {}: {} ({}), {passed}/{} cases",
            report.participant,
            if report.passed { "PASS" } else { "FAIL" },
            types.join(", "),
            report.cases.len()
        );
        let record = ConformanceRecord {
            id,
            participant: report.participant.to_string(),
            passed: report.passed,
            document_types: types,
            recorded_at_ms: self.at.as_millis(),
            recorded_by: self.recorded_by.clone(),
            report_json: self.json.clone(),
            key_id: self.key_id.clone(),
            signature: self.signature.to_vec(),
            log_index: 0,
        };
        let entry = LogEntry {
            kind: LogKind::ConformanceReport as i32,
            at_ms: self.at.as_millis(),
            sender: report.participant.to_string(),
            evidence_sha256: sha256(&self.json).to_vec(),
            actor: self.recorded_by.clone(),
            detail,
            ..Default::default()
        };
        (record, entry)
    }
}

/// A recorded report as the Admin service answers it.
pub fn to_wire(r: &ConformanceRecord) -> v1::ConformanceReportRecord {
    v1::ConformanceReportRecord {
        id: r.id,
        participant: r.participant.clone(),
        passed: r.passed,
        document_types: r.document_types.clone(),
        recorded_at_ms: r.recorded_at_ms,
        recorded_by: r.recorded_by.clone(),
        report_json: r.report_json.clone(),
        signature: Some(v1::Signature {
            key_id: r.key_id.clone(),
            signature: r.signature.clone(),
        }),
    }
}

/// Why a recorded report's signature does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the record carries no signature")]
    Missing,
    #[error("key {0} is not a hub receipt key of the trust list")]
    UnknownKey(String),
    #[error("hub key {0} was not valid when the record was made")]
    NotValidThen(String),
    #[error("the signature does not verify with hub key {0}")]
    DoesNotVerify(String),
}

/// Check a recorded report's signature with the hub keys of a trust list: a hub receipt key,
/// valid when the report was recorded, over `PAE(REPORT_PAYLOAD_TYPE, report_json)`.
/// Returns the key id.
pub fn verify(
    record: &v1::ConformanceReportRecord,
    trust: &TrustSet,
) -> Result<String, SignatureError> {
    verify_hub_signature(
        Purpose::ConformanceReport,
        &record.report_json,
        record.signature.as_ref(),
        Timestamp::from_millis(record.recorded_at_ms),
        trust,
    )
}

/// Check what the hub signed with its receipt key at `at` (a conformance report, a scorecard
/// entry) with the hub keys of a trust list. Returns the key id.
pub fn verify_hub_signature(
    purpose: Purpose,
    body: &[u8],
    signature: Option<&v1::Signature>,
    at: Timestamp,
    trust: &TrustSet,
) -> Result<String, SignatureError> {
    let signature = signature.ok_or(SignatureError::Missing)?;
    let key_id = signature.key_id.clone();
    let key = key_id
        .parse()
        .ok()
        .and_then(|id| trust.hub_key(id))
        .ok_or_else(|| SignatureError::UnknownKey(key_id.clone()))?;
    if !key.valid_at(at) {
        return Err(SignatureError::NotValidThen(key_id));
    }
    key.public_key
        .verify(purpose, body, &signature.signature)
        .map_err(|_| SignatureError::DoesNotVerify(key_id.clone()))?;
    Ok(key_id)
}

#[cfg(test)]
mod tests;
