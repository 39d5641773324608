use caravan_common::{
    check::Report as CheckReport, signing::SigningKey, store::EngineKind, trust::HubKey,
    trust::ListInfo,
};
use prost::Message;

use super::*;
use crate::{
    onboarding::report::{CaseResult, FORMAT},
    registry::Snapshot,
    store::{Backend, Embedded, RegistryRecord},
};

fn pid(s: &str) -> ParticipantId {
    s.parse().unwrap()
}

fn report_json(participant: &str, types: &[DocumentType], passed: bool) -> Vec<u8> {
    Report {
        format: FORMAT.into(),
        participant: pid(participant),
        conformance_identity: pid("ZZ"),
        document_types: types.iter().copied().collect(),
        sends: types.iter().copied().collect(),
        started_at_ms: 1_764_000_000_000,
        finished_at_ms: 1_764_000_060_000,
        kit_version: "test".into(),
        passed,
        cases: vec![
            CaseResult {
                id: "receive-valid".into(),
                title: "a valid document is acknowledged".into(),
                rule: "§7".into(),
                outcome: Outcome::Pass,
                evidence: "ACCEPTED".into(),
            },
            CaseResult {
                id: "tampered-payload".into(),
                title: "a tampered payload is rejected".into(),
                rule: "§7".into(),
                outcome: if passed { Outcome::Pass } else { Outcome::Fail },
                evidence: "REJECTED PAYLOAD_HASH_MISMATCH".into(),
            },
        ],
    }
    .to_json()
}

/// Records as the store would hold them, ids from 1 in the order given.
fn evidence(reports: &[(&str, &[DocumentType], bool)]) -> Evidence {
    let key = SigningKey::generate();
    Evidence::new(
        reports
            .iter()
            .enumerate()
            .map(|(i, (p, types, passed))| {
                Prepared::new(report_json(p, types, *passed), &key, "operator:ops")
                    .unwrap()
                    .record(i as u64 + 1)
                    .0
            })
            .collect(),
    )
}

fn participant(id: &str, stage: ParticipantStage) -> v1::TrustedParticipant {
    v1::TrustedParticipant {
        id: id.into(),
        name: id.into(),
        status: v1::ParticipantStatus::Active as i32,
        stage: trust_list::stage_to_wire(stage) as i32,
        ..Default::default()
    }
}

fn corridor(from: &str, to: &str, doc: &str, state: v1::CorridorState) -> v1::Corridor {
    v1::Corridor {
        sender: from.into(),
        recipient: to.into(),
        document_type: doc.into(),
        state: state as i32,
    }
}

const PHYTO: DocumentType = DocumentType::Phytosanitary;
const ECO: DocumentType = DocumentType::CertificateOfOrigin;

fn codes(unmet: &[Unmet]) -> Vec<RefusalCode> {
    unmet.iter().map(|(c, _)| *c).collect()
}

#[test]
fn a_corridor_needs_both_ends_at_its_stage_with_reports_covering_its_type() {
    let list = v1::TrustList {
        participants: vec![
            participant("KZ", ParticipantStage::Production),
            participant("TJ", ParticipantStage::Testing),
            participant("UZ", ParticipantStage::Pilot),
        ],
        ..Default::default()
    };
    let none = Evidence::default();
    // A testing participant: its stage and its missing report, each named.
    let unmet = corridor_unmet(
        &list,
        &none,
        (pid("KZ"), pid("TJ"), PHYTO),
        CorridorState::Pilot,
    )
    .unwrap();
    assert_eq!(
        codes(&unmet),
        [
            RefusalCode::StageTooLow,
            RefusalCode::ConformanceRequired,
            RefusalCode::ConformanceRequired
        ]
    );
    assert!(
        unmet[0].1.contains(
            "TJ is at stage testing; a pilot corridor needs both ends at pilot or production"
        ),
        "{unmet:?}"
    );
    assert!(
        unmet[1]
            .1
            .contains("KZ has no recorded conformance report covering e-phyto"),
        "{unmet:?}"
    );

    let passing = evidence(&[("KZ", &[PHYTO, ECO], true), ("UZ", &[PHYTO], true)]);
    assert!(
        corridor_unmet(
            &list,
            &passing,
            (pid("KZ"), pid("UZ"), PHYTO),
            CorridorState::Pilot
        )
        .unwrap()
        .is_empty()
    );
    // Open needs production at both ends: UZ is at pilot.
    let unmet = corridor_unmet(
        &list,
        &passing,
        (pid("KZ"), pid("UZ"), PHYTO),
        CorridorState::Open,
    )
    .unwrap();
    assert_eq!(codes(&unmet), [RefusalCode::StageTooLow]);
    assert!(
        unmet[0]
            .1
            .contains("UZ is at stage pilot; an open corridor needs both ends at production"),
        "{unmet:?}"
    );
    // UZ's report does not cover e-co.
    let unmet = corridor_unmet(
        &list,
        &passing,
        (pid("UZ"), pid("KZ"), ECO),
        CorridorState::Pilot,
    )
    .unwrap();
    assert_eq!(codes(&unmet), [RefusalCode::ConformanceRequired]);
    assert!(
        unmet[0]
            .1
            .contains("UZ has no recorded conformance report covering e-co"),
        "{unmet:?}"
    );
    // A newer failing run of a type outweighs an older pass; another type's pass stands.
    let regressed = evidence(&[
        ("KZ", &[PHYTO, ECO], true),
        ("UZ", &[PHYTO, ECO], true),
        ("UZ", &[PHYTO], false),
    ]);
    let unmet = corridor_unmet(
        &list,
        &regressed,
        (pid("KZ"), pid("UZ"), PHYTO),
        CorridorState::Pilot,
    )
    .unwrap();
    assert_eq!(codes(&unmet), [RefusalCode::ConformanceRequired]);
    assert!(
        unmet[0]
            .1
            .contains("UZ's newest conformance report covering e-phyto (report 3) failed"),
        "{unmet:?}"
    );
    assert!(
        corridor_unmet(
            &list,
            &regressed,
            (pid("KZ"), pid("UZ"), ECO),
            CorridorState::Pilot
        )
        .unwrap()
        .is_empty()
    );
    // Closing is always allowed; an unregistered end is named.
    assert!(
        corridor_unmet(
            &list,
            &none,
            (pid("KZ"), pid("TJ"), PHYTO),
            CorridorState::Closed
        )
        .unwrap()
        .is_empty()
    );
    assert_eq!(
        corridor_unmet(
            &list,
            &none,
            (pid("KZ"), pid("TM"), PHYTO),
            CorridorState::Open
        )
        .unwrap_err()
        .code,
        RefusalCode::NotRegistered
    );
}

#[test]
fn promotion_needs_the_newest_report_passed() {
    let tj = pid("TJ");
    assert_eq!(
        codes(&promotion_unmet(&Evidence::default(), tj)),
        [RefusalCode::ConformanceRequired]
    );
    assert!(promotion_unmet(&evidence(&[("TJ", &[PHYTO], true)]), tj).is_empty());
    let failed_since = evidence(&[("TJ", &[PHYTO], true), ("TJ", &[ECO], false)]);
    let unmet = promotion_unmet(&failed_since, tj);
    assert!(
        unmet[0]
            .1
            .contains("TJ's newest conformance report (report 2) failed"),
        "{unmet:?}"
    );
    // Another participant's reports are not TJ's.
    assert!(!promotion_unmet(&evidence(&[("KZ", &[PHYTO], true)]), tj).is_empty());
}

#[test]
fn demotion_names_the_corridors_above_the_new_stage() {
    let list = v1::TrustList {
        corridors: vec![
            corridor("TJ", "KZ", "e-phyto", v1::CorridorState::Open),
            corridor("KZ", "TJ", "e-co", v1::CorridorState::Pilot),
            corridor("KZ", "TJ", "e-invoice", v1::CorridorState::Closed),
            corridor("KZ", "UZ", "e-co", v1::CorridorState::Open),
        ],
        ..Default::default()
    };
    let tj = pid("TJ");
    assert_eq!(
        corridors_above(&list, tj, ParticipantStage::Pilot),
        ["TJ -> KZ e-phyto (open)"]
    );
    assert_eq!(
        corridors_above(&list, tj, ParticipantStage::Testing),
        ["TJ -> KZ e-phyto (open)", "KZ -> TJ e-co (pilot)"]
    );
    assert!(corridors_above(&list, tj, ParticipantStage::Production).is_empty());
}

#[test]
fn an_override_is_logged_with_its_reason_and_what_it_overrode() {
    let unmet = vec![
        (
            RefusalCode::StageTooLow,
            "TJ is at stage testing".to_owned(),
        ),
        (
            RefusalCode::ConformanceRequired,
            "TJ has no report".to_owned(),
        ),
    ];
    let refusal = judge("operator:ops", "corridor".into(), unmet.clone(), None).unwrap_err();
    assert_eq!(refusal.code, RefusalCode::StageTooLow);
    assert!(
        refusal
            .detail
            .contains("TJ is at stage testing; TJ has no report"),
        "{refusal}"
    );
    let logged = judge(
        "operator:ops",
        "corridor".into(),
        unmet,
        Some("ministers agreed"),
    )
    .unwrap();
    assert_eq!(logged.actor, "operator:ops (override)");
    assert_eq!(
        logged.detail,
        "corridor; OVERRIDE of onboarding rules (TJ is at stage testing; TJ has no report): ministers agreed"
    );
    let plain = judge("operator:ops", "corridor".into(), Vec::new(), None).unwrap();
    assert_eq!(
        (plain.actor.as_str(), plain.detail.as_str()),
        ("operator:ops", "corridor")
    );
    let unneeded = judge("operator:ops", "corridor".into(), Vec::new(), Some("why")).unwrap();
    assert_eq!(unneeded.actor, "operator:ops");
    assert!(
        unneeded
            .detail
            .ends_with("override reason given but not needed: why")
    );

    assert_eq!(override_reason("  ").unwrap(), None);
    assert_eq!(
        override_reason(" a pilot ").unwrap().as_deref(),
        Some("a pilot")
    );
    for bad in ["two\nlines".to_owned(), "x".repeat(MAX_OVERRIDE_CHARS + 1)] {
        assert_eq!(
            override_reason(&bad).unwrap_err().code,
            RefusalCode::MalformedRequest
        );
    }
    assert_eq!(
        stage_from_request(0, Some(ParticipantStage::Testing)),
        Ok(ParticipantStage::Testing)
    );
    assert_eq!(
        stage_from_request(0, None).unwrap_err().code,
        RefusalCode::MalformedRequest
    );
    assert_eq!(
        stage_from_request(7, None).unwrap_err().code,
        RefusalCode::MalformedRequest
    );
    assert_eq!(stage_from_request(2, None), Ok(ParticipantStage::Pilot));
}

#[test]
fn a_report_is_checked_signed_logged_and_its_signature_verifies() {
    let key = SigningKey::generate();
    let json = report_json("TJ", &[PHYTO, ECO], true);
    let prepared = Prepared::new(json.clone(), &key, "operator:ops").unwrap();
    let (record, entry) = prepared.record(3);
    assert_eq!(
        entry.detail,
        "conformance report 3 for TJ: PASS (e-co, e-phyto), 2/2 cases"
    );
    assert_eq!(entry.kind, LogKind::ConformanceReport as i32);
    assert_eq!(entry.actor, "operator:ops");
    assert_eq!(entry.sender, "TJ");
    assert_eq!(entry.evidence_sha256, sha256(&json).to_vec());
    assert_eq!((record.id, record.passed), (3, true));
    assert_eq!(record.document_types, ["e-co", "e-phyto"]);

    // The signature is over PAE(REPORT_PAYLOAD_TYPE, the JSON): any verifier with the hub
    // key checks it, and the kit's constant names the same payload type.
    assert_eq!(
        Purpose::ConformanceReport.payload_type(),
        crate::onboarding::report::REPORT_PAYLOAD_TYPE
    );
    assert!(
        key.public()
            .verify(Purpose::ConformanceReport, &json, &record.signature)
            .is_ok()
    );
    let trust = TrustSet::new(
        ListInfo::default(),
        [],
        [],
        [HubKey {
            public_key: key.public().clone(),
            not_before: None,
            not_after: None,
        }],
        [],
    )
    .unwrap();
    let wire = to_wire(&record);
    assert_eq!(verify(&wire, &trust), Ok(key.key_id().to_string()));
    let mut tampered = wire.clone();
    tampered.report_json = report_json("TJ", &[PHYTO], true);
    assert!(matches!(
        verify(&tampered, &trust),
        Err(SignatureError::DoesNotVerify(_))
    ));
    let other = TrustSet::default();
    assert!(matches!(
        verify(&wire, &other),
        Err(SignatureError::UnknownKey(_))
    ));

    // Refusals name the rule.
    for (bad, says) in [
        (
            b"not json".to_vec(),
            "not JSON of the conformance report format",
        ),
        (
            String::from_utf8(json.clone())
                .unwrap()
                .replace(FORMAT, "caravan.conformance-report.v9")
                .into_bytes(),
            "format is \"caravan.conformance-report.v9\"",
        ),
        (report_json("TJ", &[], true), "covers no document type"),
        (
            String::from_utf8(json.clone())
                .unwrap()
                .replacen("\"passed\": true", "\"passed\": false", 1)
                .into_bytes(),
            "says passed=false but 0 of its cases failed",
        ),
        (vec![b' '; MAX_REPORT_BYTES + 1], "at most"),
    ] {
        let refusal = Prepared::new(bad, &key, "operator:ops").err().unwrap();
        assert_eq!(refusal.code, RefusalCode::InvalidConformanceReport);
        assert!(refusal.detail.contains(says), "{says}: {refusal}");
    }
}

#[test]
fn reports_are_stored_with_their_log_entry_numbered_from_one_and_checked() {
    for engine in [EngineKind::Redb, EngineKind::Sled] {
        let dir = tempfile::tempdir().unwrap();
        let store = Embedded::open(dir.path(), Some(engine), 8 << 20).unwrap();
        let key = SigningKey::generate();
        for passed in [false, true] {
            let prepared =
                Prepared::new(report_json("TJ", &[PHYTO], passed), &key, "operator:ops").unwrap();
            store.record_conformance(&|id| prepared.record(id)).unwrap();
        }
        let records = store.conformance_reports().unwrap();
        assert_eq!(records.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(
            records.iter().map(|r| r.log_index).collect::<Vec<_>>(),
            [1, 2]
        );
        let entries = store.log_entries(1, 10).unwrap();
        let second = LogEntry::decode(entries[1].1.as_slice()).unwrap();
        assert_eq!(
            second.detail,
            "conformance report 2 for TJ: PASS (e-phyto), 2/2 cases"
        );
        let check: CheckReport = store.check();
        assert!(check.is_sound(), "{engine}: {check:?}");
        let evidence = Evidence::new(records);
        assert!(promotion_unmet(&evidence, pid("TJ")).is_empty());
    }
}

#[test]
fn a_stored_list_from_before_stages_reads_as_production() {
    let anchor = SigningKey::generate();
    // As a hub from before stages stored it: no stage field at all.
    let list = v1::TrustList {
        version: 4,
        anchor_key_id: anchor.key_id().to_string(),
        participants: vec![v1::TrustedParticipant {
            id: "KZ".into(),
            name: "Kazakhstan".into(),
            status: v1::ParticipantStatus::Active as i32,
            ..Default::default()
        }],
        ..Default::default()
    };
    let record = RegistryRecord {
        signed_trust_list: trust_list::sign(&list, &anchor).encode_to_vec(),
        revoked_certificates: Vec::new(),
    };
    let snapshot = Snapshot::open(Some(record), &anchor).unwrap();
    assert_eq!(
        snapshot.trust.participant(pid("KZ")).unwrap().stage,
        ParticipantStage::Production
    );
    assert_eq!(
        stage_in(&snapshot.list, pid("KZ")),
        Ok(ParticipantStage::Production)
    );
    // So its open corridors need no new evidence of stage, only of conformance.
    let unmet = corridor_unmet(
        &snapshot.list,
        &evidence(&[("KZ", &[PHYTO], true)]),
        (pid("KZ"), pid("KZ"), PHYTO),
        CorridorState::Open,
    )
    .unwrap();
    assert!(unmet.is_empty(), "{unmet:?}");
}
