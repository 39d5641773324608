//! What the secretariat and operators record into the scorecard: assessments, overrides of
//! measured scores, and rounds closed, each checked against the framework, made into JSON by
//! the hub and signed with its receipt key, kept under an id and logged in the exchange log.
//!
//! Why entries and not editable scores: a score that could be changed in place could not be
//! relied on in a policy discussion, and could not be compared with the round before. So an
//! entry is never changed; a newer entry for the same round, country and KPI stands over an
//! older one (both are kept and shown), and a closed round takes no entry at all. The JSON is
//! the hub's own, signed with the record's id, the operator and the time, so that an exported
//! entry can be checked without the hub (its signature, and its exchange-log entry, whose
//! evidence is the SHA-256 of these bytes).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use caravan_common::{
    CountryCode, Refusal, RefusalCode, Timestamp,
    signing::{Purpose, SigningKey, sha256},
    trust::shortened,
};
use caravan_proto::v1;

use super::{Framework, measured};
use crate::store::{LogEntry, LogKind, ScorecardRecord};

/// The format of an entry's JSON.
pub const FORMAT: &str = "caravan.scorecard-entry.v1";

/// The longest evidence note or reason kept, in characters.
const MAX_NOTE: usize = 4000;
/// The longest assessor kept, in characters.
const MAX_ASSESSOR: usize = 200;

/// Per country, per measured KPI, a score (`None`: not measurable).
pub type MeasuredScores = BTreeMap<CountryCode, BTreeMap<String, Option<u8>>>;

/// An entry as recorded and signed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub format: String,
    pub id: u64,
    #[serde(flatten)]
    pub what: What,
    /// `operator:<name>`.
    pub recorded_by: String,
    pub recorded_at: Timestamp,
    /// The framework's name, as loaded when the entry was recorded.
    pub framework: String,
}

/// What an entry says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum What {
    /// A score for an assessed KPI, and the evidence it rests on.
    Assessment {
        round: String,
        country: CountryCode,
        kpi: String,
        score: u8,
        evidence: String,
        assessor: String,
        assessed_on: String,
    },
    /// A score that stands over a measured one in a round, and why.
    Override {
        round: String,
        country: CountryCode,
        kpi: String,
        score: u8,
        reason: String,
        assessor: String,
        assessed_on: String,
    },
    /// The round is closed: its entries stand, with the measured scores of this moment.
    CloseRound {
        round: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        note: String,
        /// Per country, per measured KPI, the score when the round closed (`None`: not
        /// measurable then).
        measured: MeasuredScores,
    },
}

impl What {
    pub fn round(&self) -> &str {
        match self {
            Self::Assessment { round, .. }
            | Self::Override { round, .. }
            | Self::CloseRound { round, .. } => round,
        }
    }

    /// The country an assessment or override is about.
    pub fn country(&self) -> Option<CountryCode> {
        match self {
            Self::Assessment { country, .. } | Self::Override { country, .. } => Some(*country),
            Self::CloseRound { .. } => None,
        }
    }

    /// One line for people: the log entry's detail, the CLI's answer.
    pub fn describe(&self) -> String {
        match self {
            Self::Assessment {
                round,
                country,
                kpi,
                score,
                assessor,
                assessed_on,
                ..
            } => format!(
                "round {round}: {country} {kpi} assessed {score} by {assessor} on {assessed_on}"
            ),
            Self::Override {
                round,
                country,
                kpi,
                score,
                reason,
                assessor,
                ..
            } => format!(
                "round {round}: {country} {kpi} measured score overridden with {score} by {assessor}: {reason}"
            ),
            Self::CloseRound { round, .. } => format!("round {round} closed"),
        }
    }
}

impl Entry {
    /// Read a recorded entry's JSON.
    pub fn from_json(json: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(json)
    }
}

/// The rounds as the recorded entries leave them: each round by name, in the order its first
/// entry was recorded, and whether it is closed.
#[derive(Debug, Default)]
pub struct Rounds {
    pub order: Vec<String>,
    pub closed: BTreeSet<String>,
}

impl Rounds {
    pub fn of<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Self {
        let mut rounds = Self::default();
        for e in entries {
            let round = e.what.round();
            if !rounds.order.iter().any(|r| r == round) {
                rounds.order.push(round.to_owned());
            }
            if matches!(e.what, What::CloseRound { .. }) {
                rounds.closed.insert(round.to_owned());
            }
        }
        rounds
    }
}

fn invalid(detail: impl Into<String>) -> Refusal {
    Refusal::new(RefusalCode::InvalidScorecardEntry, detail)
}

/// A request checked against the framework and the rounds so far: what the entry will say
/// (a close's measured scores are added by the caller, who measures), or the refusal naming
/// the broken rule. `today` is the hub's day (UTC), `YYYY-MM-DD`.
pub fn check(
    r: &v1::RecordScorecardEntryRequest,
    framework: &Framework,
    rounds: &Rounds,
    today: &str,
) -> Result<What, Refusal> {
    let round = r.round.trim();
    if round.is_empty()
        || round.len() > 32
        || !round
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(invalid(
            "round: 1-32 of A-Z a-z 0-9 . _ - (for example 2026-H2)",
        ));
    }
    if rounds.closed.contains(round) {
        return Err(Refusal::new(
            RefusalCode::RoundClosed,
            format!(
                "round {round} is closed; its entries stand as they are: record into a new round"
            ),
        ));
    }
    let kind = v1::ScorecardEntryKind::try_from(r.kind).unwrap_or_default();
    if kind == v1::ScorecardEntryKind::CloseRound {
        if !rounds.order.iter().any(|o| o == round) {
            return Err(invalid(format!("round {round} has no entry to close")));
        }
        return Ok(What::CloseRound {
            round: round.to_owned(),
            note: bounded(&r.note, MAX_NOTE, "note")?.to_owned(),
            measured: BTreeMap::new(),
        });
    }
    let country = CountryCode::assigned(r.country.trim())
        .ok()
        .filter(|c| framework.countries.contains(c))
        .ok_or_else(|| {
            invalid(format!(
                "country {:?} is not one the framework scores ({})",
                shortened(&r.country),
                framework
                    .countries
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
    let kpi = r.kpi.trim();
    if framework.kpi(kpi).is_none() {
        return Err(invalid(format!(
            "kpi {:?} is not in the framework (see `admin scorecard show --json` for the ids)",
            shortened(kpi)
        )));
    }
    let score = u8::try_from(r.score)
        .ok()
        .filter(|s| (1..=5).contains(s))
        .ok_or_else(|| invalid(format!("score {} is not 1 to 5", r.score)))?;
    let assessor = bounded(&r.assessor, MAX_ASSESSOR, "assessor")?;
    if assessor.is_empty() {
        return Err(invalid(
            "assessor: say who assessed (a name and an organisation)",
        ));
    }
    let note = bounded(&r.note, MAX_NOTE, "note")?;
    let assessed_on = match r.assessed_on.trim() {
        "" => today.to_owned(),
        day => {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            time::Date::parse(day, format).map_err(|_| {
                invalid(format!(
                    "assessed_on {:?} is not a day YYYY-MM-DD",
                    shortened(day)
                ))
            })?;
            // ISO days compare as text.
            if day > today {
                return Err(invalid(format!(
                    "assessed_on {day} is after today ({today}, UTC)"
                )));
            }
            day.to_owned()
        }
    };
    let measured = measured::is_measured(kpi);
    let (round, kpi, assessor) = (round.to_owned(), kpi.to_owned(), assessor.to_owned());
    match kind {
        v1::ScorecardEntryKind::Assessment => {
            if measured {
                return Err(invalid(format!(
                    "kpi {kpi} is measured from the exchange; record an override with a reason to replace its score"
                )));
            }
            if note.is_empty() {
                return Err(invalid(
                    "an assessment needs the evidence it rests on (note)",
                ));
            }
            Ok(What::Assessment {
                round,
                country,
                kpi,
                score,
                evidence: note.to_owned(),
                assessor,
                assessed_on,
            })
        }
        v1::ScorecardEntryKind::Override => {
            if !measured {
                return Err(invalid(format!(
                    "kpi {kpi} is assessed, not measured; record an assessment instead"
                )));
            }
            if note.is_empty() {
                return Err(invalid("an override needs its reason (note)"));
            }
            Ok(What::Override {
                round,
                country,
                kpi,
                score,
                reason: note.to_owned(),
                assessor,
                assessed_on,
            })
        }
        _ => Err(invalid("kind: assessment, override or close-round")),
    }
}

/// `text` trimmed, refused when longer than `max` characters.
fn bounded<'a>(text: &'a str, max: usize, what: &str) -> Result<&'a str, Refusal> {
    let text = text.trim();
    if text.chars().count() > max {
        return Err(invalid(format!("{what}: at most {max} characters")));
    }
    Ok(text)
}

/// The record and its exchange-log entry for entry `id`: the JSON made and signed here, with
/// the id, so that the signature binds the entry to its place.
pub fn record(
    what: &What,
    id: u64,
    framework: &Framework,
    key: &SigningKey,
    recorded_by: &str,
    at: Timestamp,
) -> (ScorecardRecord, LogEntry) {
    let entry = Entry {
        format: FORMAT.into(),
        id,
        what: what.clone(),
        recorded_by: recorded_by.to_owned(),
        recorded_at: at,
        framework: framework.name.clone(),
    };
    let json = serde_json::to_vec(&entry).expect("an entry serializes");
    let log = LogEntry {
        kind: LogKind::ScorecardEntry as i32,
        at_ms: at.as_millis(),
        sender: what.country().map(|c| c.to_string()).unwrap_or_default(),
        evidence_sha256: sha256(&json).to_vec(),
        actor: recorded_by.to_owned(),
        detail: format!("scorecard entry {id}: {}", what.describe()),
        ..Default::default()
    };
    let record = ScorecardRecord {
        id,
        recorded_at_ms: at.as_millis(),
        recorded_by: recorded_by.to_owned(),
        signature: key.sign(Purpose::ScorecardEntry, &json).to_vec(),
        entry_json: json,
        key_id: key.key_id().to_string(),
        log_index: 0,
    };
    (record, log)
}

/// A record as the Admin service answers it.
pub fn to_wire(r: &ScorecardRecord) -> v1::ScorecardEntryRecord {
    v1::ScorecardEntryRecord {
        id: r.id,
        recorded_at_ms: r.recorded_at_ms,
        recorded_by: r.recorded_by.clone(),
        entry_json: r.entry_json.clone(),
        signature: Some(v1::Signature {
            key_id: r.key_id.clone(),
            signature: r.signature.clone(),
        }),
        log_index: r.log_index,
    }
}

/// What checking a recorded entry found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The hub receipt key whose signature verified.
    pub key_id: String,
    /// The size of the signed tree head the entry was proven under, if a proof came with it.
    pub tree_size: Option<u64>,
}

/// Check a recorded entry as anyone holding the trust list can: the hub's signature over its
/// JSON (a hub receipt key valid when it was recorded) and, given its log proof, that the
/// exchange log holds it: the tree head's signature, the inclusion path to its root, and an
/// entry of kind SCORECARD_ENTRY at the record's index whose evidence is the SHA-256 of the
/// JSON. Says what failed otherwise.
pub fn verify(
    record: &v1::ScorecardEntryRecord,
    proof: Option<&v1::LogProof>,
    trust: &caravan_common::trust::TrustSet,
) -> Result<Verified, String> {
    use prost::Message;
    let key_id = crate::onboarding::verify_hub_signature(
        Purpose::ScorecardEntry,
        &record.entry_json,
        record.signature.as_ref(),
        Timestamp::from_millis(record.recorded_at_ms),
        trust,
    )
    .map_err(|e| format!("the hub's signature: {e}"))?;
    let Some(proof) = proof else {
        return Ok(Verified {
            key_id,
            tree_size: None,
        });
    };
    let head = caravan_proto::log::signed_head(proof)
        .and_then(|signed| caravan_proto::log::verify_head(signed, trust))
        .map_err(|r| format!("the tree head: {}", r.detail))?;
    let path: Vec<caravan_common::merkle::Hash> = proof
        .audit_path
        .iter()
        .map(|h| h.as_slice().try_into())
        .collect::<Result<_, _>>()
        .map_err(|_| "the inclusion path holds a hash that is not 32 bytes".to_owned())?;
    let leaf = caravan_common::merkle::leaf_hash(&proof.entry);
    if !caravan_common::merkle::verify_inclusion(
        proof.leaf_index,
        head.size,
        &leaf,
        &path,
        &head.root,
    ) {
        return Err(format!(
            "entry {} is not in the tree head of size {}: its inclusion path does not lead to the signed root",
            proof.leaf_index + 1,
            head.size
        ));
    }
    let entry = LogEntry::decode(proof.entry.as_slice())
        .map_err(|e| format!("the log entry does not decode: {e}"))?;
    if proof.leaf_index + 1 != record.log_index
        || entry.kind != LogKind::ScorecardEntry as i32
        || entry.evidence_sha256 != sha256(&record.entry_json)
    {
        return Err(format!(
            "log entry {} does not record this scorecard entry",
            proof.leaf_index + 1
        ));
    }
    Ok(Verified {
        key_id,
        tree_size: Some(head.size),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(
        kind: v1::ScorecardEntryKind,
        kpi: &str,
        score: u32,
    ) -> v1::RecordScorecardEntryRequest {
        v1::RecordScorecardEntryRequest {
            kind: kind as i32,
            round: "2026-H2".into(),
            country: "KZ".into(),
            kpi: kpi.into(),
            score,
            note: "Law No. 370-V on electronic documents".into(),
            assessor: "A. Nurlanova, CAREC secretariat".into(),
            assessed_on: "2026-11-30".into(),
        }
    }

    fn refusal(r: &v1::RecordScorecardEntryRequest, rounds: &Rounds) -> (RefusalCode, String) {
        let e = check(r, &Framework::carec(), rounds, "2026-12-07").unwrap_err();
        (e.code, e.detail)
    }

    #[test]
    fn an_assessment_is_checked_and_signed_with_its_id() {
        use v1::ScorecardEntryKind::Assessment;
        let f = Framework::carec();
        let what = check(
            &request(Assessment, "legal-coverage", 4),
            &f,
            &Rounds::default(),
            "2026-12-07",
        )
        .unwrap();
        let key = SigningKey::generate();
        let (record, log) = record(
            &what,
            7,
            &f,
            &key,
            "operator:alice",
            Timestamp::from_millis(1_765_000_000_000),
        );
        let entry = Entry::from_json(&record.entry_json).unwrap();
        assert_eq!(entry.id, 7);
        assert_eq!(entry.what, what);
        assert_eq!(log.evidence_sha256, sha256(&record.entry_json).to_vec());
        assert_eq!(log.sender, "KZ");
        assert!(
            log.detail.contains("KZ legal-coverage assessed 4"),
            "{}",
            log.detail
        );
        key.public()
            .verify(
                Purpose::ScorecardEntry,
                &record.entry_json,
                &record.signature,
            )
            .unwrap();
    }

    #[test]
    fn every_broken_rule_is_named() {
        use v1::ScorecardEntryKind::{Assessment, CloseRound, Override};
        let none = Rounds::default();
        let cases: Vec<(v1::RecordScorecardEntryRequest, &str)> = vec![
            (
                request(Assessment, "legal-coverage", 6),
                "score 6 is not 1 to 5",
            ),
            (
                request(Assessment, "legal-coverage", 0),
                "score 0 is not 1 to 5",
            ),
            (
                request(Assessment, "no-such-kpi", 3),
                "is not in the framework",
            ),
            (
                request(Assessment, "data-exchange-capability", 3),
                "measured from the exchange",
            ),
            (
                request(Override, "legal-coverage", 3),
                "assessed, not measured",
            ),
            (
                v1::RecordScorecardEntryRequest {
                    country: "FR".into(),
                    ..request(Assessment, "legal-coverage", 3)
                },
                "country \"FR\" is not one the framework scores",
            ),
            (
                v1::RecordScorecardEntryRequest {
                    note: " ".into(),
                    ..request(Assessment, "legal-coverage", 3)
                },
                "needs the evidence",
            ),
            (
                v1::RecordScorecardEntryRequest {
                    note: String::new(),
                    ..request(Override, "system-reliability", 3)
                },
                "needs its reason",
            ),
            (
                v1::RecordScorecardEntryRequest {
                    assessor: String::new(),
                    ..request(Assessment, "legal-coverage", 3)
                },
                "say who assessed",
            ),
            (
                v1::RecordScorecardEntryRequest {
                    assessed_on: "2026-12-08".into(),
                    ..request(Assessment, "legal-coverage", 3)
                },
                "after today",
            ),
            (
                v1::RecordScorecardEntryRequest {
                    assessed_on: "30.11.2026".into(),
                    ..request(Assessment, "legal-coverage", 3)
                },
                "not a day YYYY-MM-DD",
            ),
            (
                v1::RecordScorecardEntryRequest {
                    round: "2026 H2".into(),
                    ..request(Assessment, "legal-coverage", 3)
                },
                "round: 1-32",
            ),
            (request(CloseRound, "", 0), "has no entry to close"),
        ];
        for (r, says) in cases {
            let (code, detail) = refusal(&r, &none);
            assert_eq!(code, RefusalCode::InvalidScorecardEntry, "{detail}");
            assert!(detail.contains(says), "{detail:?} does not say {says:?}");
        }
        let closed = Rounds {
            order: vec!["2026-H2".into()],
            closed: ["2026-H2".to_owned()].into(),
        };
        let (code, detail) = refusal(&request(Assessment, "legal-coverage", 3), &closed);
        assert_eq!(code, RefusalCode::RoundClosed);
        assert!(detail.contains("round 2026-H2 is closed"), "{detail}");
    }
}
