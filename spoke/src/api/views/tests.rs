//! The views' JSON shapes, and what they read back.

use serde_json::json;

use crate::store::{HubState, Lifecycle, fixtures::inbox_record};

use super::*;

/// The inbox item as the NSW API, the webhook and `inbox --json` have always shown it.
#[test]
fn an_inbox_item_keeps_its_json() {
    let record = inbox_record("KZ");
    let id = record.message_id;
    let mut item = InboxItem::from(&record);
    item.cursor = 4;
    assert_eq!(
        serde_json::to_value(&item).unwrap(),
        json!({
            "cursor": 4,
            "message_id": id.to_string(),
            "sender": "KZ",
            "document_type": "e-co",
            "document_id": "KZ-CO-1",
            "verified": false,
            "verification": {"status": "rejected", "code": "KEY_REVOKED", "reason": "lost"},
            "received_at": "1970-01-01T00:00:02.000Z",
            "accepted_at": "1970-01-01T00:00:01.000Z",
            "payload_length": 3,
            "supersedes": null,
            "in_reply_to": null,
            "response": null,
            "summary": null,
        })
    );
}

/// The answer to a send, and the same answer read back by the client.
#[test]
fn a_sent_view_keeps_its_json_and_reads_back() {
    let id = MessageId::generate();
    let sent = SentView::from(Sent {
        message_id: id,
        document_id: "KZ-CO-1".into(),
        state: SentState::Accepted,
        receipt: Some(ReceiptInfo {
            hub_sequence: 9,
            accepted_at: Timestamp::from_millis(1_000),
            key_id: "abcd".into(),
            signed: "c2ln".into(),
            log_proof: None,
        }),
        checks: Vec::new(),
    });
    let value = serde_json::to_value(&sent).unwrap();
    assert_eq!(
        value,
        json!({
            "message_id": id.to_string(),
            "document_id": "KZ-CO-1",
            "state": "ACCEPTED",
            "receipt": {
                "hub_sequence": 9,
                "accepted_at": "1970-01-01T00:00:01.000Z",
                "key_id": "abcd",
                "signed": "c2ln",
            },
        })
    );
    let back: SentView = serde_json::from_value(value).unwrap();
    assert_eq!(back.receipt.unwrap().hub_sequence, 9);
}

/// A fixed id, so that the expected JSON can be written out.
const ID: &str = "01890a5d-ac96-774b-bcce-b302099a8057";
const REPLY: &str = "01890a5d-ac96-774b-bcce-b302099a8058";

/// `GET /v1/inbox/{id}` (and the NSW API's) exactly as it answered while it was the stored
/// record flattened, with every field set.
#[test]
fn the_verdict_is_consistent_only_when_every_check_passes() {
    let c = |check, outcome, rule: &str| Check {
        check,
        outcome,
        rule: rule.into(),
        message_key: checks::message_key(rule),
        params: BTreeMap::new(),
    };
    use checks::CheckName::*;
    let verified = |checks: Vec<Check>| InboxRecord {
        verification: Verification::Verified { notes: Vec::new() },
        checks,
        ..inbox_record("KZ")
    };
    let pass = c(Header, Outcome::Pass, "HEADER_CONSISTENT");
    let warn = c(Dates, Outcome::Warn, "ISSUE_DATE_OLD");
    let fail = c(Duplicate, Outcome::Fail, "DUPLICATE_NUMBER");
    let v = VerdictView::of(&verified(vec![pass.clone()])).unwrap();
    assert_eq!(
        (v.status.as_str(), v.headline),
        ("GENUINE_AND_CONSISTENT", None)
    );
    let v = VerdictView::of(&verified(vec![pass.clone(), warn.clone()])).unwrap();
    assert_eq!(v.status, "GENUINE_WITH_WARNINGS");
    assert_eq!(v.headline.unwrap().rule, "ISSUE_DATE_OLD");
    let v = VerdictView::of(&verified(vec![warn, pass.clone(), fail])).unwrap();
    assert_eq!(v.status, "GENUINE_BUT_INCONSISTENT");
    let headline = v.headline.unwrap();
    assert_eq!(
        (
            headline.check.as_str(),
            headline.outcome,
            headline.message_key.as_str()
        ),
        ("duplicate", Outcome::Fail, "content_check.duplicate_number")
    );
    // No checks (not understood, or older records), or not genuine: no content verdict.
    assert_eq!(VerdictView::of(&verified(Vec::new())), None);
    let marked_unchecked = verified(vec![checks::replaced_by(MessageId::generate())]);
    assert_eq!(VerdictView::of(&marked_unchecked), None);
    let rejected = InboxRecord {
        checks: vec![pass],
        ..inbox_record("KZ")
    };
    assert_eq!(VerdictView::of(&rejected), None);
    let item = InboxItem::from(&rejected);
    assert_eq!(item.verdict, None);
    assert_eq!(item.checks.len(), 1);
}

#[test]
fn an_inbox_detail_keeps_its_json() {
    let reply: MessageId = REPLY.parse().unwrap();
    let record = InboxRecord {
        message_id: ID.parse().unwrap(),
        supersedes: Some(reply),
        in_reply_to: Some(reply),
        response: Some(ResponseBody {
            decision: Decision::Rejected,
            reason: Some("late".into()),
        }),
        summary: Some(Summary {
            document_number: Some("KZ-CO-1".into()),
            issue_date: Some("2026-01-02".into()),
            parties: vec!["Exporter LLP".into()],
            ..Summary::default()
        }),
        created_at: Some(Timestamp::from_millis(500)),
        key_id: Some("0011223344556677".into()),
        verification: Verification::Verified {
            notes: vec![Note::new("PILOT_CORRIDOR", "pilot".into())],
        },
        evidence: Evidence {
            header: "aGVhZGVy".into(),
            signature: "c2ln".into(),
            signature_key_id: "0011223344556677".into(),
            receipt: "cmVj".into(),
            accepted_proof: None,
            ack: Some("YWNr".into()),
        },
        ..inbox_record("KZ")
    };
    let fields = vec![
        Field {
            label: "Number".into(),
            value: "KZ-CO-1".into(),
            language: None,
        },
        Field {
            label: "Goods".into(),
            value: "wheat".into(),
            language: Some("en".into()),
        },
    ];
    let detail = InboxDetail::new(&record, fields);
    let value = serde_json::to_value(&detail).unwrap();
    assert_eq!(
        value,
        json!({
            "message_id": "01890a5d-ac96-774b-bcce-b302099a8057",
            "sender": "KZ",
            "document_type": "e-co",
            "document_id": "KZ-CO-1",
            "content_type": "application/xml",
            "supersedes": "01890a5d-ac96-774b-bcce-b302099a8058",
            "in_reply_to": "01890a5d-ac96-774b-bcce-b302099a8058",
            "response": {
                "decision": "rejected",
                "reason": "late"
            },
            "summary": {
                "document_number": "KZ-CO-1",
                "issue_date": "2026-01-02",
                "parties": [
                    "Exporter LLP"
                ]
            },
            "created_at": "1970-01-01T00:00:00.500Z",
            "key_id": "0011223344556677",
            "payload_length": 3,
            "payload_sha256": "00",
            "hub_sequence": 7,
            "accepted_at": "1970-01-01T00:00:01.000Z",
            "received_at": "1970-01-01T00:00:02.000Z",
            "verification": {
                "status": "verified",
                "notes": [
                    {
                        "code": "PILOT_CORRIDOR",
                        "message": "pilot"
                    }
                ]
            },
            "evidence": {
                "header": "aGVhZGVy",
                "signature": "c2ln",
                "signature_key_id": "0011223344556677",
                "receipt": "cmVj",
                "ack": "YWNr"
            },
            "fields": [
                {
                    "label": "Number",
                    "value": "KZ-CO-1"
                },
                {
                    "label": "Goods",
                    "value": "wheat",
                    "language": "en"
                }
            ]
        })
    );
    // The client reads it back.
    let back: InboxDetail = serde_json::from_value(value).unwrap();
    assert_eq!(back.evidence, EvidenceView::from(&record.evidence));
    assert!(back.verification.is_verified());
}

/// A sent document the recipient acknowledged and answered, after two attempts.
fn acknowledged() -> SentRecord {
    let id: MessageId = ID.parse().unwrap();
    SentRecord {
        message_id: id,
        recipient: "CN".parse().unwrap(),
        document_type: DocumentType::Invoice,
        document_id: "INV-1".into(),
        payload_length: 3,
        header_sha256: "ab".into(),
        queued_at: Timestamp::from_millis(100),
        lifecycle: Lifecycle::AtHub {
            state: HubState::Acknowledged,
            receipt: Some(ReceiptInfo {
                hub_sequence: 9,
                accepted_at: Timestamp::from_millis(1_000),
                key_id: "abcd".into(),
                signed: "c2ln".into(),
                log_proof: None,
            }),
        },
        attempts: 2,
        last_error: Some("Unavailable: down".into()),
        transitions: vec![
            StateChange {
                state: HubState::Accepted,
                at: Timestamp::from_millis(1_000),
            },
            StateChange {
                state: HubState::Acknowledged,
                at: Timestamp::from_millis(3_000),
            },
        ],
        acknowledgement: Some(AckRecord {
            check: AckCheck::Verified(json!({"outcome": "accepted"})),
            signed: "YWNr".into(),
        }),
        responses: vec![AnswerRecord {
            message_id: REPLY.parse().unwrap(),
            decision: Decision::Accepted,
            reason: None,
            received_at: Timestamp::from_millis(4_000),
        }],
    }
}

/// A sent document the hub refused.
fn refused() -> SentRecord {
    SentRecord {
        lifecycle: Lifecycle::Refused {
            refusal: Refusal::new(RefusalCode::UnknownParticipant, "who?"),
        },
        transitions: Vec::new(),
        acknowledgement: None,
        responses: Vec::new(),
        ..acknowledged()
    }
}

/// `GET /v1/sent/{id}/status` (and the NSW API's `/documents/{id}`) exactly as it answered
/// while it embedded the stored record: acknowledged, then refused.
#[test]
fn a_status_view_keeps_its_json() {
    let value = serde_json::to_value(StatusView::from(&acknowledged())).unwrap();
    assert_eq!(
        value,
        json!({
            "message_id": "01890a5d-ac96-774b-bcce-b302099a8057",
            "state": "ACKNOWLEDGED",
            "transitions": [
                {
                    "state": "QUEUED",
                    "at": "1970-01-01T00:00:00.100Z"
                },
                {
                    "state": "ACCEPTED",
                    "at": "1970-01-01T00:00:01.000Z"
                },
                {
                    "state": "ACKNOWLEDGED",
                    "at": "1970-01-01T00:00:03.000Z"
                }
            ],
            "acknowledgement": {
                "verified": true,
                "ack": {
                    "outcome": "accepted"
                },
                "problem": null,
                "signed": "YWNr"
            },
            "responses": [
                {
                    "message_id": "01890a5d-ac96-774b-bcce-b302099a8058",
                    "decision": "accepted",
                    "reason": null,
                    "received_at": "1970-01-01T00:00:04.000Z"
                }
            ],
            "sent": {
                "message_id": "01890a5d-ac96-774b-bcce-b302099a8057",
                "recipient": "CN",
                "document_type": "e-invoice",
                "document_id": "INV-1",
                "payload_length": 3,
                "header_sha256": "ab",
                "queued_at": "1970-01-01T00:00:00.100Z",
                "state": "ACKNOWLEDGED",
                "receipt": {
                    "hub_sequence": 9,
                    "accepted_at": "1970-01-01T00:00:01.000Z",
                    "key_id": "abcd",
                    "signed": "c2ln"
                },
                "refusal": null,
                "attempts": 2,
                "last_error": "Unavailable: down",
                "transitions": [
                    {
                        "state": "ACCEPTED",
                        "at": "1970-01-01T00:00:01.000Z"
                    },
                    {
                        "state": "ACKNOWLEDGED",
                        "at": "1970-01-01T00:00:03.000Z"
                    }
                ],
                "acknowledgement": {
                    "verified": true,
                    "ack": {
                        "outcome": "accepted"
                    },
                    "problem": null,
                    "signed": "YWNr"
                },
                "responses": [
                    {
                        "message_id": "01890a5d-ac96-774b-bcce-b302099a8058",
                        "decision": "accepted",
                        "reason": null,
                        "received_at": "1970-01-01T00:00:04.000Z"
                    }
                ]
            }
        })
    );
    let back: StatusView = serde_json::from_value(value).unwrap();
    assert_eq!(back.sent.receipt.unwrap().hub_sequence, 9);
    assert!(back.acknowledgement.unwrap().verified);

    let value = serde_json::to_value(StatusView::from(&refused())).unwrap();
    assert_eq!(
        value,
        json!({
            "message_id": "01890a5d-ac96-774b-bcce-b302099a8057",
            "state": "REFUSED",
            "transitions": [
                {
                    "state": "QUEUED",
                    "at": "1970-01-01T00:00:00.100Z"
                },
                {
                    "state": "REFUSED",
                    "at": "1970-01-01T00:00:00.100Z"
                }
            ],
            "acknowledgement": null,
            "responses": [],
            "sent": {
                "message_id": "01890a5d-ac96-774b-bcce-b302099a8057",
                "recipient": "CN",
                "document_type": "e-invoice",
                "document_id": "INV-1",
                "payload_length": 3,
                "header_sha256": "ab",
                "queued_at": "1970-01-01T00:00:00.100Z",
                "state": "REFUSED",
                "receipt": null,
                "refusal": {
                    "code": "UNKNOWN_PARTICIPANT",
                    "detail": "who?"
                },
                "attempts": 2,
                "last_error": "Unavailable: down",
                "transitions": [],
                "acknowledgement": null,
                "responses": []
            }
        })
    );
}

/// `GET /v1/log`: as it answered while it embedded the stored head and alarms.
#[test]
fn a_log_view_keeps_its_json() {
    let head = LogHeadRecord {
        size: 12,
        root: "ab".into(),
        signed_at: Timestamp::from_millis(1_000),
        key_id: "k1".into(),
        signed: "c2ln".into(),
    };
    let alarms = [
        LogAlarm {
            at: Timestamp::from_millis(2_000),
            code: "LOG_INCONSISTENT".into(),
            detail: "forked".into(),
            message_id: Some(ID.parse().unwrap()),
            heads: vec![head.clone()],
        },
        LogAlarm {
            at: Timestamp::from_millis(3_000),
            code: "HUB_LOST_DOCUMENTS".into(),
            detail: "lost".into(),
            message_id: None,
            heads: Vec::new(),
        },
    ];
    let view = serde_json::to_value(LogView::new(Some(&head), &alarms, 5)).unwrap();
    let head_json = json!({
        "size": 12,
        "root": "ab",
        "signed_at": "1970-01-01T00:00:01.000Z",
        "key_id": "k1",
        "signed": "c2ln",
    });
    assert_eq!(
        view,
        json!({
            "last_verified_head": head_json,
            "alarms_total": 5,
            "alarms": [
                {
                    "at": "1970-01-01T00:00:02.000Z",
                    "code": "LOG_INCONSISTENT",
                    "detail": "forked",
                    "message_id": ID,
                    "heads": [head_json],
                },
                {
                    "at": "1970-01-01T00:00:03.000Z",
                    "code": "HUB_LOST_DOCUMENTS",
                    "detail": "lost",
                    "heads": [],
                },
            ],
        })
    );
    let back: LogView = serde_json::from_value(view).unwrap();
    assert_eq!(back.alarms[0].heads[0].size, 12);
}
