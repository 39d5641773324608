//! The measured rules at their thresholds and the report's combination rules, on records made
//! by hand (the end-to-end test, `tests/tests/scorecard.rs`, runs them on a real exchange).

use prost::Message;

use caravan_common::{
    CountryCode, ParticipantId, Timestamp,
    signing::SigningKey,
    trust::{
        CorridorState, ListInfo, Participant, ParticipantStage, ParticipantStatus, Revocation,
        SigningKeyEntry, TrustSet,
    },
};
use caravan_proto::v1;

use super::{
    Framework,
    entry::{self, What},
    measured::{self, State},
    report::{self, Inputs, Source},
};
use crate::store::{CertificateRecord, ExchangeFact, MessageState, ScorecardRecord};

const NOW: i64 = 1_765_000_000_000; // 2025-12-06
const DAY: i64 = 86_400_000;

fn id(s: &str) -> ParticipantId {
    s.parse().unwrap()
}

fn participant(s: &str) -> Participant {
    Participant {
        id: id(s),
        name: s.into(),
        contact: String::new(),
        status: ParticipantStatus::Active,
        country: Some(CountryCode::assigned(s).unwrap()),
        issuing_authorities: Vec::new(),
        stage: ParticipantStage::Production,
    }
}

fn key(owner: &str, not_before: Option<i64>, revoked: bool) -> SigningKeyEntry {
    SigningKeyEntry {
        participant: id(owner),
        public_key: SigningKey::generate().public().clone(),
        document_types: vec!["e-co".parse().unwrap()],
        not_before: not_before.map(Timestamp::from_millis),
        not_after: None,
        revoked: revoked.then(|| Revocation {
            at: Timestamp::from_millis(NOW - DAY),
            reason: "rotated".into(),
        }),
    }
}

/// KZ, CN and UZ; KZ -> CN e-co open, KZ -> UZ e-phyto pilot.
fn trust(keys: Vec<SigningKeyEntry>) -> TrustSet {
    TrustSet::new(
        ListInfo::default(),
        ["KZ", "CN", "UZ"].map(participant),
        keys,
        [],
        [
            (
                (id("KZ"), id("CN"), "e-co".parse().unwrap()),
                CorridorState::Open,
            ),
            (
                (id("KZ"), id("UZ"), "e-phyto".parse().unwrap()),
                CorridorState::Pilot,
            ),
        ],
    )
    .unwrap()
}

/// A message accepted `ago` ms before now, taken after 1 s, settled as `state` after
/// `settle_ms`.
fn fact(
    from: &str,
    to: &str,
    doc: &str,
    ago: i64,
    state: MessageState,
    settle_ms: i64,
) -> ExchangeFact {
    let accepted = NOW - ago;
    let rejection = if state == MessageState::Rejected {
        v1::SignedAck {
            body: v1::AckBody {
                reason_code: "INVALID_DOCUMENT".into(),
                ..Default::default()
            }
            .encode_to_vec(),
            ..Default::default()
        }
        .encode_to_vec()
    } else {
        Vec::new()
    };
    ExchangeFact {
        sender: from.into(),
        recipient: to.into(),
        document_type: doc.into(),
        accepted_at_ms: accepted,
        state,
        delivered_at_ms: (state != MessageState::Expired).then_some(accepted + 1000),
        settled_at_ms: state.is_final().then_some(accepted + settle_ms),
        rejection,
    }
}

fn facts() -> Vec<ExchangeFact> {
    let mut facts: Vec<ExchangeFact> = (0..12)
        .map(|i| {
            fact(
                "KZ",
                "CN",
                "e-co",
                DAY + i,
                MessageState::Acknowledged,
                2000,
            )
        })
        .collect();
    facts.push(fact(
        "KZ",
        "UZ",
        "e-phyto",
        DAY,
        MessageState::Acknowledged,
        2000,
    ));
    facts.push(fact("KZ", "CN", "e-co", DAY, MessageState::Rejected, 2000));
    // Acknowledged, but after an hour.
    facts.push(fact(
        "KZ",
        "CN",
        "e-co",
        DAY,
        MessageState::Acknowledged,
        3_600_000,
    ));
    facts.push(fact(
        "CN",
        "KZ",
        "e-co",
        DAY,
        MessageState::Expired,
        10 * DAY,
    ));
    facts
}

fn scores(
    country: &str,
    trust: &TrustSet,
    certificates: &[CertificateRecord],
) -> std::collections::BTreeMap<String, Option<u8>> {
    let state = State {
        trust,
        certificates,
        reports: &[],
        now: Timestamp::from_millis(NOW),
    };
    let c = CountryCode::assigned(country).unwrap();
    let tallies = measured::tally(&facts(), &state.countries(), trust);
    measured::measure(
        c,
        &tallies.get(&c).cloned().unwrap_or_default(),
        &state,
        false,
    )
    .into_iter()
    .map(|(k, m)| (k, m.score))
    .collect()
}

#[test]
fn each_measured_rule_gives_the_score_its_figures_reach() {
    let trust = trust(vec![key("KZ", None, false)]);
    let kz = scores("KZ", &trust, &[]);
    // 16 documents, 13 acknowledged within 5 minutes (81%): n >= 10 and q >= 50%, not n >= 100.
    assert_eq!(kz["data-exchange-capability"], Some(3));
    // CN over an open corridor, UZ over a pilot one.
    assert_eq!(kz["cross-border-exchange-capability"], Some(3));
    // e-co in production; e-phyto in pilot only.
    assert_eq!(kz["priority-use-cases"], Some(3));
    // 15 settled, one rejected INVALID_DOCUMENT: 93% recognised whole, >= 80%, < 95%.
    assert_eq!(kz["data-standards-alignment"], Some(3));
    // The one document addressed to KZ expired untaken.
    assert_eq!(kz["system-reliability"], Some(1));
    // No conformance report, but pilot and open corridors.
    assert_eq!(kz["participation-in-pilots"], Some(2));
    // An active key, but no certificate seen.
    assert_eq!(kz["security-trust-frameworks"], Some(2));

    let cn = scores("CN", &trust, &[]);
    // 14 addressed to CN, every one taken within a second, none expired.
    assert_eq!(cn["system-reliability"], Some(5));
    // CN sent one document, which expired: nothing of its settled, nothing to judge.
    assert_eq!(cn["data-standards-alignment"], None);
    // No key of CN's.
    assert_eq!(cn["security-trust-frameworks"], Some(1));

    // UZ: a pilot corridor only.
    let uz = scores("UZ", &trust, &[]);
    assert_eq!(uz["cross-border-exchange-capability"], Some(2));
    assert_eq!(uz["priority-use-cases"], Some(2));
}

#[test]
fn keys_and_certificates_raise_security_step_by_step() {
    let certificate = |days: i64| CertificateRecord {
        serial: "01".into(),
        subject: "participant:KZ".into(),
        not_after_ms: NOW + days * DAY,
        ..Default::default()
    };
    let young = Some(NOW - 10 * DAY);
    let old = Some(NOW - 1000 * DAY);
    for (keys, certificates, expected) in [
        (vec![key("KZ", old, false)], vec![certificate(10)], 2),
        (vec![key("KZ", old, false)], vec![certificate(100)], 3),
        (vec![key("KZ", young, false)], vec![certificate(100)], 4),
        (
            vec![key("KZ", old, false), key("KZ", old, true)],
            vec![certificate(100)],
            4,
        ),
        (
            vec![key("KZ", young, false), key("KZ", old, true)],
            vec![certificate(100)],
            5,
        ),
        (vec![key("KZ", young, true)], vec![certificate(100)], 1),
    ] {
        let s = scores("KZ", &trust(keys), &certificates);
        assert_eq!(
            s["security-trust-frameworks"],
            Some(expected),
            "{certificates:?}"
        );
    }
}

/// An entry as the hub would record it, with id `id` at `at`.
fn recorded(what: What, id: u64, key: &SigningKey) -> ScorecardRecord {
    let (mut record, _) = entry::record(
        &what,
        id,
        &Framework::carec(),
        key,
        "operator:ops",
        Timestamp::from_millis(NOW - 1000 + id as i64),
    );
    record.log_index = id * 10;
    record
}

fn assessment(round: &str, kpi: &str, score: u8) -> What {
    What::Assessment {
        round: round.into(),
        country: CountryCode::assigned("KZ").unwrap(),
        kpi: kpi.into(),
        score,
        evidence: "evidence".into(),
        assessor: "S".into(),
        assessed_on: "2025-12-01".into(),
    }
}

fn build(entries: &[ScorecardRecord]) -> report::Report {
    let trust = trust(vec![key("KZ", None, false)]);
    let state = State {
        trust: &trust,
        certificates: &[],
        reports: &[],
        now: Timestamp::from_millis(NOW),
    };
    let mut exchange = report::Exchange::new(&state, 0);
    for f in facts() {
        exchange.add(&f, &trust);
    }
    report::build(&Inputs {
        framework: &Framework::carec(),
        entries,
        exchange: &exchange,
        state,
    })
}

#[test]
fn the_report_weighs_what_is_scored_and_says_how_much_that_is() {
    let key = SigningKey::generate();
    let f = Framework::carec();
    let entries = vec![
        recorded(assessment("R1", "legal-coverage", 4), 1, &key),
        recorded(assessment("R1", "legal-coverage", 5), 2, &key),
        recorded(
            What::Override {
                round: "R1".into(),
                country: CountryCode::assigned("KZ").unwrap(),
                kpi: "system-reliability".into(),
                score: 3,
                reason: "the expired document was a test".into(),
                assessor: "S".into(),
                assessed_on: "2025-12-01".into(),
            },
            3,
            &key,
        ),
    ];
    let r = build(&entries);
    assert_eq!(r.round.as_deref(), Some("R1"));
    let kz = r
        .countries
        .iter()
        .find(|c| c.country.as_str() == "KZ")
        .unwrap();
    let kpi = |id: &str| kz.kpis.iter().find(|k| k.kpi == id).unwrap();
    // The newest assessment stands; both are kept.
    assert_eq!(kpi("legal-coverage").score, Some(5));
    assert_eq!(kpi("legal-coverage").source, Source::Assessed);
    assert_eq!(kpi("legal-coverage").history.len(), 2);
    // The override stands over the measurement, which is still shown.
    let reliability = kpi("system-reliability");
    assert_eq!(
        (reliability.score, reliability.source),
        (Some(3), Source::Overridden)
    );
    assert_eq!(reliability.measured.as_ref().unwrap().score, Some(1));
    // An assessed KPI nobody assessed has no score.
    assert_eq!(kpi("institutional-clarity").source, Source::None);
    // The index: the weighted mean over what is scored, and the weight that is.
    let scored: Vec<(f64, f64)> = kz
        .kpis
        .iter()
        .filter_map(|k| Some((f64::from(k.score?), f.kpi(&k.kpi).unwrap().1.weight)))
        .collect();
    let weights: f64 = scored.iter().map(|(_, w)| w).sum();
    let expected = scored.iter().map(|(s, w)| s * w).sum::<f64>() / weights;
    assert!((kz.index.unwrap() - expected).abs() < 1e-9);
    assert!((kz.coverage - weights).abs() < 1e-9);
    // Seven measured KPIs (two at 5%, five at 4%) and one assessed (5%).
    assert!((kz.coverage - 35.0).abs() < 1e-9, "{}", kz.coverage);
    assert_eq!(kz.level.as_deref(), Some(f.level(expected).name.as_str()));
    // Legal Maturity is legal-coverage alone.
    let legal = kz.dimensions.iter().find(|d| d.id == "legal").unwrap();
    assert_eq!(legal.score, Some(5.0));
    let institutional = kz
        .dimensions
        .iter()
        .find(|d| d.id == "institutional")
        .unwrap();
    assert_eq!(institutional.score, None);
    // A country with no participant: the hub measures nothing of it, so nothing is scored.
    let af = r
        .countries
        .iter()
        .find(|c| c.country.as_str() == "AF")
        .unwrap();
    let exchange = af
        .kpis
        .iter()
        .find(|k| k.kpi == "data-exchange-capability")
        .unwrap();
    assert_eq!((exchange.score, exchange.source), (None, Source::None));
    assert_eq!(af.index, None);
    assert_eq!(r.region.countries_scored, 3);
    // The corridors: KZ -> CN e-co, in this month.
    let corridor = r
        .corridors
        .iter()
        .find(|c| c.from.as_str() == "KZ" && c.to.as_str() == "CN" && c.document_type == "e-co")
        .unwrap();
    let month = corridor.months.iter().find(|m| m.documents > 0).unwrap();
    assert_eq!(
        (month.documents, month.acknowledged, month.rejected),
        (14, 13, 1)
    );
    assert_eq!(month.median_ack_ms, Some(2000));
    assert_eq!(r.months.len(), report::MONTHS);
}

#[test]
fn a_closed_round_keeps_its_measurements_and_the_trend_compares_rounds() {
    let key = SigningKey::generate();
    let kz = CountryCode::assigned("KZ").unwrap();
    let frozen = [(
        kz,
        [("data-exchange-capability".to_owned(), Some(5))].into(),
    )]
    .into();
    let entries = vec![
        recorded(assessment("R1", "legal-coverage", 2), 1, &key),
        recorded(
            What::CloseRound {
                round: "R1".into(),
                note: String::new(),
                measured: frozen,
            },
            2,
            &key,
        ),
    ];
    let r = build(&entries);
    let c = r.countries.iter().find(|c| c.country == kz).unwrap();
    let exchange = c
        .kpis
        .iter()
        .find(|k| k.kpi == "data-exchange-capability")
        .unwrap();
    assert_eq!(
        (exchange.score, exchange.source),
        (Some(5), Source::MeasuredAtClose)
    );
    assert_eq!(
        exchange.measured.as_ref().unwrap().score,
        Some(3),
        "live, shown beside"
    );
    assert!(r.rounds[0].closed_at.is_some());

    let mut more = entries.clone();
    more.push(recorded(assessment("R2", "legal-coverage", 4), 3, &key));
    let r = build(&more);
    let c = r.countries.iter().find(|c| c.country == kz).unwrap();
    assert_eq!(c.trend.len(), 2);
    assert!(c.trend[0].closed && !c.trend[1].closed);
    // In R2 the measurement is live again (3, not the frozen 5).
    let exchange = c
        .kpis
        .iter()
        .find(|k| k.kpi == "data-exchange-capability")
        .unwrap();
    assert_eq!(
        (exchange.score, exchange.source),
        (Some(3), Source::Measured)
    );
    assert_ne!(c.trend[0].index, c.trend[1].index);
}

/// Recorded on the embedded engines (the store suite runs the same on PostgreSQL), numbered
/// from 1 with their log entries, and checked by `store check`.
#[test]
fn scorecard_entries_are_stored_with_their_log_entry_numbered_from_one_and_checked() {
    use caravan_common::store::{EngineKind, record::Record};
    use caravan_proto::v1;
    use prost::Message;

    use crate::store::{Backend, Embedded, LogEntry, LogKind};

    let framework = Framework::carec();
    let key = SigningKey::generate();
    for engine in [EngineKind::Sled, EngineKind::Redb] {
        let dir = tempfile::tempdir().unwrap();
        {
            let b = Embedded::open(dir.path(), Some(engine), 8 << 20).unwrap();
            for (country, score) in [("KZ", 4), ("TJ", 1)] {
                let request = v1::RecordScorecardEntryRequest {
                    kind: v1::ScorecardEntryKind::Assessment as i32,
                    round: "2026-H2".into(),
                    country: country.into(),
                    kpi: "legal-coverage".into(),
                    score,
                    note: "the law on electronic documents".into(),
                    assessor: "CAREC secretariat".into(),
                    assessed_on: "2026-11-30".into(),
                };
                let what = entry::check(
                    &request,
                    &framework,
                    &entry::Rounds::default(),
                    "2026-12-07",
                )
                .unwrap();
                b.record_scorecard(&|id| {
                    entry::record(
                        &what,
                        id,
                        &framework,
                        &key,
                        "operator:alice",
                        Timestamp::now(),
                    )
                })
                .unwrap();
            }
            let records = b.scorecard_entries().unwrap();
            assert_eq!(records.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 2]);
            assert_eq!(
                records.iter().map(|r| r.log_index).collect::<Vec<_>>(),
                [1, 2]
            );
            let second = LogEntry::decode(b.log_entries(2, 1).unwrap()[0].1.as_slice()).unwrap();
            assert_eq!(second.kind, LogKind::ScorecardEntry as i32);
            assert_eq!(
                second.detail,
                "scorecard entry 2: round 2026-H2: TJ legal-coverage assessed 1 by CAREC secretariat on 2026-11-30"
            );
            assert_eq!(
                second.evidence_sha256,
                caravan_common::signing::sha256(&records[1].entry_json).to_vec()
            );
            let check = b.check();
            assert!(check.is_sound(), "{engine}: {:?}", check.problems);
            assert_eq!(check.records.get("scorecard"), Some(&2), "{engine}");
            b.flush().unwrap();
        }
        if engine != EngineKind::Sled {
            continue;
        }
        // An entry under an id the store never gave, naming a log entry the log does not
        // hold, without its signature: each is reported.
        {
            let db = crate::store::tests::raw_sled(dir.path());
            let forged = ScorecardRecord {
                id: 3,
                entry_json: b"{}".to_vec(),
                log_index: 9,
                ..Default::default()
            };
            db.open_tree("scorecard")
                .unwrap()
                .insert(3u64.to_be_bytes(), Record::encode(&forged))
                .unwrap();
            db.flush().unwrap();
        }
        let problems: Vec<String> = Embedded::open(dir.path(), Some(EngineKind::Sled), 8 << 20)
            .unwrap()
            .check()
            .problems
            .into_iter()
            .map(|p| format!("{} {}: {}", p.place, p.record, p.detail))
            .collect();
        assert_eq!(
            problems,
            [
                "scorecard scorecard entry 3: beyond the next scorecard entry id 3",
                "scorecard scorecard entry 3: names log entry 9 of a log of 2",
                "scorecard scorecard entry 3: its scorecard entry or the hub's signature is missing",
            ]
        );
    }
}
