//! The rules every engine of the hub's store keeps, as a suite any engine runs: the embedded
//! engines in this crate's unit tests, PostgreSQL in `tests/tests/postgres.rs` (on a cluster
//! of the test's own, which this crate's tests have no way to start). Built for tests only
//! (`cfg(test)`, or the `store-suite` feature the test crate turns on).

use caravan_common::{
    DocumentType, MessageId, ParticipantId, Timestamp, merkle, signing::SigningKey,
};
use caravan_proto::{trust_list, v1};
use prost::Message;

use super::{
    Acceptance, AckResult, AckUpdate, Backend, CertificateRecord, ExchangeFact, Incoming, LogEntry,
    LogKind, MessageState, PAYLOAD_CHUNK, RegistryRecord, RevokedCertificate, ScorecardRecord,
    Settled, StoreError,
};

pub fn pid(s: &str) -> ParticipantId {
    s.parse().unwrap()
}

pub fn incoming(sender: &str, recipient: &str, header: &[u8]) -> Incoming {
    Incoming {
        sender: pid(sender),
        message_id: MessageId::generate(),
        recipient: pid(recipient),
        document_type: DocumentType::Phytosanitary,
        header_sha256: caravan_common::signing::sha256(header),
        header: header.to_vec(),
        key_id: "0123456789abcdef".into(),
        signature: vec![1; 64],
        payload: b"<xml/>".to_vec(),
        accepted_at: Timestamp::now(),
    }
}

pub fn receipt_for(sequence: u64) -> Vec<u8> {
    format!("receipt-{sequence}").into_bytes()
}

pub fn accept(b: &dyn Backend, m: &Incoming) -> Acceptance {
    b.accept(m, &receipt_for).unwrap()
}

pub fn ack(m: &Incoming, state: MessageState) -> AckUpdate {
    AckUpdate {
        recipient: m.recipient,
        sender: m.sender,
        message_id: m.message_id,
        header_sha256: m.header_sha256,
        state,
        ack: b"signed ack".to_vec(),
        at: Timestamp::now(),
    }
}

/// Runs every rule of the exchange against a fresh, empty backend.
pub fn exchange(b: &dyn Backend) {
    // Sequence numbers start at 1 and increase.
    let first = incoming("KZ", "CN", b"h1");
    let second = incoming("UZ", "CN", b"h2");
    let other = incoming("CN", "KZ", b"h3");
    assert_eq!(
        accept(b, &first),
        Acceptance::Accepted {
            sequence: 1,
            receipt: receipt_for(1),
            log_index: 1
        }
    );
    assert_eq!(
        accept(b, &second),
        Acceptance::Accepted {
            sequence: 2,
            receipt: receipt_for(2),
            log_index: 2
        }
    );
    assert_eq!(
        accept(b, &other),
        Acceptance::Accepted {
            sequence: 3,
            receipt: receipt_for(3),
            log_index: 3
        }
    );

    // Same sender and id with the same header: the original receipt, nothing new stored.
    assert_eq!(
        accept(b, &first),
        Acceptance::Duplicate {
            sequence: 1,
            receipt: receipt_for(1),
            log_index: 1
        }
    );
    // Same sender and id, different header: conflict.
    let mut changed = first.clone();
    changed.header_sha256 = [9; 32];
    assert_eq!(accept(b, &changed), Acceptance::Conflict);
    // The same message id from another sender is a different message.
    let mut same_id_other_sender = first.clone();
    same_id_other_sender.sender = pid("TJ");
    assert!(matches!(
        accept(b, &same_id_other_sender),
        Acceptance::Accepted { sequence: 4, .. }
    ));

    // An acceptance appends no status event: the sender has it in its answer (the receipt or
    // the log proof). Its stream starts with the changes after acceptance.
    for sender in ["KZ", "UZ", "CN", "TJ"] {
        assert!(
            b.events(pid(sender), 0, 100).unwrap().is_empty(),
            "{sender}'s events after acceptance"
        );
    }

    // Pending is per recipient, oldest first, and resumes after a cursor.
    let pending = b.pending(pid("CN"), 0, 10).unwrap();
    assert_eq!(
        pending.iter().map(|p| p.sequence).collect::<Vec<_>>(),
        vec![1, 2, 4]
    );
    assert_eq!(pending[0].message_id, first.message_id);
    assert_eq!(pending[0].payload_chunks, 1);
    assert_eq!(b.payload_chunk(1, 0).unwrap().unwrap(), first.payload);
    assert_eq!(b.payload_chunk(1, 1).unwrap(), None);
    assert_eq!(pending[0].header, first.header);
    assert_eq!(pending[0].receipt, receipt_for(1));
    assert_eq!(b.pending(pid("CN"), 1, 10).unwrap().len(), 2);
    assert_eq!(b.pending(pid("CN"), 0, 1).unwrap().len(), 1);
    assert_eq!(b.pending(pid("KZ"), 0, 10).unwrap().len(), 1);
    assert!(b.pending(pid("AF"), 0, 10).unwrap().is_empty());

    // Status follows the message.
    let status = |m: &Incoming| b.status(m.sender, m.message_id).unwrap().unwrap();
    assert_eq!(status(&first).current(), MessageState::Accepted);
    assert_eq!(
        status(&first).receipt,
        receipt_for(1),
        "status carries the receipt"
    );
    assert_eq!(
        b.queue_depths().unwrap(),
        vec![(pid("CN"), 3), (pid("KZ"), 1)]
    );
    assert!(b.mark_delivered(1, Timestamp::now()).unwrap());
    assert!(
        !b.mark_delivered(1, Timestamp::now()).unwrap(),
        "a redelivery is not a new delivery"
    );
    assert_eq!(status(&first).current(), MessageState::Delivered);
    let delivered = b.events(pid("KZ"), 0, 100).unwrap();
    assert_eq!(
        delivered
            .iter()
            .map(|(_, e)| (e.sequence, e.state, e.log_index))
            .collect::<Vec<_>>(),
        vec![(1, MessageState::Delivered as i32, 5)],
        "the delivery is the sender's first event"
    );
    assert_eq!(b.status(pid("KZ"), MessageId::generate()).unwrap(), None);

    // Acknowledgements: only the recipient, only the right header, idempotent.
    let mut wrong_recipient = ack(&first, MessageState::Acknowledged);
    wrong_recipient.recipient = pid("UZ");
    assert_eq!(
        b.acknowledge(&wrong_recipient).unwrap(),
        AckResult::UnknownMessage
    );
    let mut wrong_digest = ack(&first, MessageState::Acknowledged);
    wrong_digest.header_sha256 = [0; 32];
    assert_eq!(
        b.acknowledge(&wrong_digest).unwrap(),
        AckResult::DigestMismatch
    );
    assert_eq!(
        b.acknowledge(&ack(&first, MessageState::Acknowledged))
            .unwrap(),
        AckResult::Recorded {
            state: MessageState::Acknowledged,
            log_index: 6,
            now: Some(Settled {
                sender: pid("KZ"),
                recipient: pid("CN"),
                document_type: "e-phyto".into(),
                accepted_at: first.accepted_at,
            })
        }
    );
    assert_eq!(
        b.acknowledge(&ack(&first, MessageState::Rejected)).unwrap(),
        AckResult::Recorded {
            state: MessageState::Acknowledged,
            log_index: 6,
            now: None
        },
        "a second acknowledgement does not change the first"
    );
    let settled = status(&first);
    assert_eq!(settled.ack, b"signed ack".to_vec());
    let states: Vec<i32> = settled.transitions.iter().map(|t| t.state).collect();
    assert_eq!(
        states,
        vec![
            MessageState::Accepted as i32,
            MessageState::Delivered as i32,
            MessageState::Acknowledged as i32
        ]
    );
    assert_eq!(
        b.pending(pid("CN"), 0, 10)
            .unwrap()
            .iter()
            .map(|p| p.sequence)
            .collect::<Vec<_>>(),
        vec![2, 4]
    );

    // A rejection settles the message too.
    assert_eq!(
        b.acknowledge(&ack(&second, MessageState::Rejected))
            .unwrap(),
        AckResult::Recorded {
            state: MessageState::Rejected,
            log_index: 7,
            now: Some(Settled {
                sender: pid("UZ"),
                recipient: pid("CN"),
                document_type: "e-phyto".into(),
                accepted_at: second.accepted_at,
            })
        }
    );
    assert_eq!(status(&second).current(), MessageState::Rejected);
    // Delivery after settlement does not move the state back.
    assert!(!b.mark_delivered(2, Timestamp::now()).unwrap());
    assert_eq!(status(&second).current(), MessageState::Rejected);

    // The sender follows each transition after acceptance as an event, resumable from a
    // cursor.
    let kz = b.events(pid("KZ"), 0, 100).unwrap();
    let states: Vec<i32> = kz
        .iter()
        .filter(|(_, e)| e.sequence == 1)
        .map(|(_, e)| e.state)
        .collect();
    assert_eq!(
        states,
        vec![
            MessageState::Delivered as i32,
            MessageState::Acknowledged as i32
        ]
    );
    assert_eq!(kz.last().unwrap().1.ack, b"signed ack".to_vec());
    let cursor = kz[0].0;
    assert_eq!(
        b.events(pid("KZ"), cursor, 100).unwrap().len(),
        kz.len() - 1
    );
    assert!(
        b.events(pid("UZ"), 0, 100)
            .unwrap()
            .iter()
            .all(|(_, e)| e.sequence == 2)
    );

    // Expiry settles what waited too long, and only that.
    let ttl = |doc: &str| (doc == "e-phyto").then_some(0u64);
    let later = Timestamp::from_millis(Timestamp::now().as_millis() + 10);
    let mut senders: Vec<ParticipantId> = b
        .expire(later, &ttl)
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m.document_type, "e-phyto");
            m.sender
        })
        .collect();
    senders.sort();
    assert_eq!(senders, vec![pid("CN"), pid("TJ")]);
    assert_eq!(
        b.queue_depths().unwrap(),
        Vec::new(),
        "the expired left the queues"
    );
    assert_eq!(status(&other).current(), MessageState::Expired);
    assert!(b.pending(pid("CN"), 0, 10).unwrap().is_empty());
    assert!(b.pending(pid("KZ"), 0, 10).unwrap().is_empty());
    assert!(
        b.expire(later, &ttl).unwrap().is_empty(),
        "expiring twice changes nothing"
    );

    // Each event names its log entry, and the stored Merkle nodes are the tree of the entries.
    assert!(kz.iter().all(|(_, e)| e.log_index > 0));
    let entries = b.log_entries(1, 1000).unwrap();
    assert_eq!(b.log_size().unwrap(), entries.len() as u64);
    let leaves: Vec<merkle::Hash> = entries.iter().map(|(_, e)| merkle::leaf_hash(e)).collect();
    struct Stored<'a>(&'a dyn Backend);
    impl merkle::Nodes for Stored<'_> {
        type Error = StoreError;
        fn perfect(&self, level: u32, index: u64) -> Result<merkle::Hash, StoreError> {
            self.0.log_node(level, index)
        }
    }
    for size in 1..=leaves.len() {
        assert_eq!(
            merkle::root_of(&Stored(b), size as u64).unwrap(),
            merkle::root(&leaves[..size])
        );
    }
    b.flush().unwrap();
}

/// A registry record holding a trust list of `version`, signed by `anchor`.
pub fn registry_record(version: u64, anchor: &SigningKey) -> RegistryRecord {
    let list = v1::TrustList {
        version,
        anchor_key_id: anchor.key_id().to_string(),
        ..Default::default()
    };
    RegistryRecord {
        signed_trust_list: trust_list::sign(&list, anchor).encode_to_vec(),
        revoked_certificates: vec![RevokedCertificate {
            serial: "01ab".into(),
            at_ms: 5,
            reason: "lost laptop".into(),
            by: "operator:alice".into(),
        }],
    }
}

/// The registry is saved whole with its log entry; a client certificate's first sighting
/// stands; a large payload is kept in chunks.
pub fn records(b: &dyn Backend) {
    let anchor = SigningKey::generate();
    assert_eq!(b.registry().unwrap(), None);
    let record = registry_record(2, &anchor);
    let entry = LogEntry {
        kind: LogKind::RegistryChange as i32,
        actor: "operator:alice".into(),
        ..Default::default()
    };
    let before = b.log_size().unwrap();
    b.save_registry(&record, &entry).unwrap();
    b.flush().unwrap();
    assert_eq!(b.registry().unwrap(), Some(record));
    assert_eq!(b.log_size().unwrap(), before + 1);

    let first = CertificateRecord {
        serial: "0a".into(),
        subject: "participant:KZ".into(),
        first_seen_ms: 1,
        ..Default::default()
    };
    b.record_certificate(&first).unwrap();
    b.record_certificate(&CertificateRecord {
        first_seen_ms: 2,
        ..first.clone()
    })
    .unwrap();
    b.record_certificate(&CertificateRecord {
        serial: "0b".into(),
        ..first.clone()
    })
    .unwrap();
    let all = b.certificates().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0], first);

    let mut m = incoming("KZ", "CN", b"big");
    m.payload = (0..(2 * PAYLOAD_CHUNK + 10))
        .map(|i| (i % 251) as u8)
        .collect();
    let Acceptance::Accepted { sequence, .. } = accept(b, &m) else {
        panic!("a new message is accepted");
    };
    let pending = b.pending(pid("CN"), 0, 1).unwrap();
    assert_eq!(pending[0].payload_chunks, 3);
    assert_eq!(pending[0].payload_length, m.payload.len() as u64);
    let mut reader = b.payload_reader(sequence).unwrap();
    let joined: Vec<u8> = (0..3)
        .flat_map(|i| reader.chunk(i).unwrap().unwrap())
        .collect();
    assert_eq!(joined, m.payload);
    assert_eq!(reader.chunk(3).unwrap(), None);
}

/// Deliveries and acknowledgements recorded many at a time answer as one at a time would,
/// in order, duplicates and strangers included.
pub fn many(b: &dyn Backend) {
    let (first, second) = (incoming("KZ", "CN", b"m1"), incoming("UZ", "CN", b"m2"));
    let sequence = |m: &Incoming| match accept(b, m) {
        Acceptance::Accepted { sequence, .. } => sequence,
        other => panic!("{other:?}"),
    };
    let (s1, s2) = (sequence(&first), sequence(&second));
    let at = Timestamp::now();
    let moved: Vec<bool> = b
        .mark_delivered_many(&[s1, s2, s1], at)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(moved, vec![true, true, false]);
    let mut stranger = ack(&first, MessageState::Acknowledged);
    stranger.recipient = pid("UZ");
    let mut forged = ack(&second, MessageState::Acknowledged);
    forged.header_sha256 = [0; 32];
    let unknown = ack(&incoming("KZ", "CN", b"never"), MessageState::Acknowledged);
    let results: Vec<AckResult> = b
        .acknowledge_many(&[
            ack(&first, MessageState::Acknowledged),
            ack(&first, MessageState::Rejected),
            stranger,
            forged,
            unknown,
            ack(&second, MessageState::Rejected),
        ])
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let log_size = b.log_size().unwrap();
    assert_eq!(
        results,
        vec![
            AckResult::Recorded {
                state: MessageState::Acknowledged,
                log_index: log_size - 1,
                now: Some(Settled {
                    sender: pid("KZ"),
                    recipient: pid("CN"),
                    document_type: "e-phyto".into(),
                    accepted_at: first.accepted_at,
                }),
            },
            AckResult::Recorded {
                state: MessageState::Acknowledged,
                log_index: log_size - 1,
                now: None,
            },
            AckResult::UnknownMessage,
            AckResult::DigestMismatch,
            AckResult::UnknownMessage,
            AckResult::Recorded {
                state: MessageState::Rejected,
                log_index: log_size,
                now: Some(Settled {
                    sender: pid("UZ"),
                    recipient: pid("CN"),
                    document_type: "e-phyto".into(),
                    accepted_at: second.accepted_at,
                }),
            },
        ]
    );
    // Accepted twice, delivered twice, acknowledged twice: six entries, and the statuses say so.
    assert_eq!(log_size, 6);
    let states: Vec<i32> = b
        .status(first.sender, first.message_id)
        .unwrap()
        .unwrap()
        .transitions
        .iter()
        .map(|t| t.state)
        .collect();
    assert_eq!(
        states,
        vec![
            MessageState::Accepted as i32,
            MessageState::Delivered as i32,
            MessageState::Acknowledged as i32
        ]
    );
    assert!(b.pending(pid("CN"), 0, 10).unwrap().is_empty());
    b.flush().unwrap();
}

/// What the suite records as scorecard entry `id`: made from the id alone, so that the record
/// and log entry the store was handed can be made again to compare with.
fn scorecard_entry(id: u64) -> (ScorecardRecord, LogEntry) {
    let json = format!(r#"{{"format":"caravan.scorecard-entry.v1","id":{id}}}"#).into_bytes();
    let at_ms = 1_765_000_000_000 + id as i64;
    let entry = LogEntry {
        kind: LogKind::ScorecardEntry as i32,
        at_ms,
        sender: "KZ".into(),
        evidence_sha256: caravan_common::signing::sha256(&json).to_vec(),
        actor: "operator:alice".into(),
        detail: format!("scorecard entry {id}"),
        ..Default::default()
    };
    let record = ScorecardRecord {
        id,
        recorded_at_ms: at_ms,
        recorded_by: "operator:alice".into(),
        entry_json: json,
        key_id: "0123456789abcdef".into(),
        signature: vec![id as u8; 64],
        log_index: 0,
    };
    (record, entry)
}

/// Scorecard entries are numbered from 1 and logged with the entry they were made with; the
/// exchange's facts are every message accepted since a moment, once each, with when it was
/// first delivered and when it settled.
pub fn scorecard(b: &dyn Backend) {
    // The facts: one message in each state, and one accepted before `since`.
    let base = Timestamp::now().as_millis();
    let since = base - 10_000;
    let at = |offset: i64| Timestamp::from_millis(since + offset);
    let message = |sender: &str, recipient: &str, kind: DocumentType, accepted: i64| {
        let mut m = incoming(sender, recipient, format!("facts {accepted}").as_bytes());
        m.document_type = kind;
        m.accepted_at = at(accepted);
        m
    };
    let sequence = |m: &Incoming| match accept(b, m) {
        Acceptance::Accepted { sequence, .. } => sequence,
        other => panic!("{other:?}"),
    };
    let settle = |m: &Incoming, state: MessageState, offset: i64, bytes: &[u8]| {
        let mut update = ack(m, state);
        update.at = at(offset);
        update.ack = bytes.to_vec();
        assert!(matches!(
            b.acknowledge(&update).unwrap(),
            AckResult::Recorded { now: Some(_), .. }
        ));
    };
    let before = message("KZ", "CN", DocumentType::Phytosanitary, -1);
    let waiting = message("UZ", "CN", DocumentType::Phytosanitary, 0);
    // Answered before its DELIVERED was recorded (the hub records it only for a document
    // still unsettled a moment after streaming): delivered by the answer's time.
    let answered = message("UZ", "KZ", DocumentType::Invoice, 800);
    let acknowledged = message("KZ", "CN", DocumentType::Phytosanitary, 1_000);
    let rejected = message("CN", "UZ", DocumentType::Invoice, 2_000);
    let expired = message("TJ", "KZ", DocumentType::CertificateOfOrigin, 3_000);
    let delivered = message("CN", "KZ", DocumentType::Phytosanitary, 3_500);
    let before_sequence = sequence(&before);
    assert!(b.mark_delivered(before_sequence, at(100)).unwrap());
    settle(
        &before,
        MessageState::Rejected,
        200,
        b"signed rejection, before",
    );
    sequence(&waiting);
    sequence(&answered);
    settle(&answered, MessageState::Acknowledged, 900, b"signed ack");
    let s = sequence(&acknowledged);
    assert!(b.mark_delivered(s, at(1_100)).unwrap());
    assert!(
        !b.mark_delivered(s, at(1_200)).unwrap(),
        "a redelivery is not a new delivery"
    );
    settle(
        &acknowledged,
        MessageState::Acknowledged,
        1_500,
        b"signed ack",
    );
    let s = sequence(&rejected);
    assert!(b.mark_delivered(s, at(2_100)).unwrap());
    settle(
        &rejected,
        MessageState::Rejected,
        2_600,
        b"signed rejection",
    );
    let s = sequence(&expired);
    assert!(b.mark_delivered(s, at(3_100)).unwrap());
    let s = sequence(&delivered);
    assert!(b.mark_delivered(s, at(3_600)).unwrap());
    let ttl = |doc: &str| (doc == "e-co").then_some(500u64);
    let settled: Vec<ParticipantId> = b
        .expire(at(4_000), &ttl)
        .unwrap()
        .iter()
        .map(|m| m.sender)
        .collect();
    assert_eq!(settled, vec![pid("TJ")], "only the e-CO was due");

    let fact = |m: &Incoming,
                state: MessageState,
                delivered_at: Option<i64>,
                settled_at: Option<i64>,
                rejection: &[u8]| ExchangeFact {
        sender: m.sender.to_string(),
        recipient: m.recipient.to_string(),
        document_type: m.document_type.to_string(),
        accepted_at_ms: m.accepted_at.as_millis(),
        state,
        delivered_at_ms: delivered_at.map(|o| since + o),
        settled_at_ms: settled_at.map(|o| since + o),
        rejection: rejection.to_vec(),
    };
    let expected = vec![
        fact(&waiting, MessageState::Accepted, None, None, b""),
        fact(
            &answered,
            MessageState::Acknowledged,
            Some(900),
            Some(900),
            b"",
        ),
        fact(
            &acknowledged,
            MessageState::Acknowledged,
            Some(1_100),
            Some(1_500),
            b"",
        ),
        fact(
            &rejected,
            MessageState::Rejected,
            Some(2_100),
            Some(2_600),
            b"signed rejection",
        ),
        fact(
            &expired,
            MessageState::Expired,
            Some(3_100),
            Some(4_000),
            b"",
        ),
        fact(&delivered, MessageState::Delivered, Some(3_600), None, b""),
    ];
    let facts = |from: i64| {
        let mut visited = Vec::new();
        b.exchange_facts(Timestamp::from_millis(from), &mut |f| visited.push(f))
            .unwrap();
        visited.sort_by_key(|f| f.accepted_at_ms);
        visited
    };
    assert_eq!(
        facts(since),
        expected,
        "each message accepted at or after `since`, once; none before"
    );
    assert_eq!(facts(since + 3_000), expected[4..].to_vec());
    assert!(facts(since + 3_501).is_empty());
    assert_eq!(facts(since - 1).len(), expected.len() + 1);

    // Scorecard entries: numbered from 1, each with its log entry, kept as made.
    assert!(b.scorecard_entries().unwrap().is_empty());
    let mut kept = Vec::new();
    for id in 1..=3 {
        let size = b.log_size().unwrap();
        let record = b.record_scorecard(&scorecard_entry).unwrap();
        let (mut made, entry) = scorecard_entry(id);
        made.log_index = size + 1;
        assert_eq!(
            record, made,
            "entry {id}: its id, and the log index it was given"
        );
        assert_eq!(b.log_size().unwrap(), size + 1, "one log entry per entry");
        assert_eq!(
            b.log_entries(size + 1, 10).unwrap(),
            vec![(size + 1, entry.encode_to_vec())],
            "the log entry is the one made with the record"
        );
        kept.push(made);
    }
    assert_eq!(
        b.scorecard_entries().unwrap(),
        kept,
        "oldest first, unchanged"
    );
    b.flush().unwrap();
    assert_eq!(b.scorecard_entries().unwrap(), kept);
}
