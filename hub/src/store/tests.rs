//! The hub store's suite, run on every engine.

use caravan_common::{DocumentType, MessageId, ParticipantId, Timestamp, merkle};

use super::*;
use caravan_common::store::EngineKind;

const ENGINES: [EngineKind; 2] = [EngineKind::Sled, EngineKind::Redb];

fn open(path: &std::path::Path, engine: EngineKind) -> Embedded {
    Embedded::open(path, Some(engine), 8 << 20).unwrap()
}

/// Stores made before there was a choice of engine are sled stores.
fn sled(path: &std::path::Path) -> Embedded {
    open(path, EngineKind::Sled)
}

fn pid(s: &str) -> ParticipantId {
    s.parse().unwrap()
}

fn incoming(sender: &str, recipient: &str, header: &[u8]) -> Incoming {
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

fn receipt_for(sequence: u64) -> Vec<u8> {
    format!("receipt-{sequence}").into_bytes()
}

fn accept(b: &dyn Backend, m: &Incoming) -> Acceptance {
    b.accept(m, &receipt_for).unwrap()
}

fn ack(m: &Incoming, state: MessageState) -> AckUpdate {
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

/// Runs every rule against a fresh, empty backend.
fn suite(b: &dyn Backend) {
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

    // The sender follows each transition as an event, resumable from a cursor.
    let kz = b.events(pid("KZ"), 0, 100).unwrap();
    let states: Vec<i32> = kz
        .iter()
        .filter(|(_, e)| e.sequence == 1)
        .map(|(_, e)| e.state)
        .collect();
    assert_eq!(
        states,
        vec![
            MessageState::Accepted as i32,
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

#[test]
fn every_engine_conforms() {
    for engine in ENGINES {
        let dir = tempfile::tempdir().unwrap();
        suite(&open(dir.path(), engine));
    }
}

#[test]
fn flushed_state_survives_a_reopen() {
    for engine in ENGINES {
        let dir = tempfile::tempdir().unwrap();
        let m = incoming("KZ", "CN", b"h1");
        {
            let b = open(dir.path(), engine);
            accept(&b, &m);
            b.flush().unwrap();
        }
        let b = open(dir.path(), engine);
        assert_eq!(
            accept(&b, &m),
            Acceptance::Duplicate {
                sequence: 1,
                receipt: receipt_for(1),
                log_index: 1
            }
        );
        assert_eq!(b.pending(pid("CN"), 0, 10).unwrap().len(), 1);
        // Sequence numbers, log indices and event cursors continue after a restart (they are
        // kept in memory and derived from the data at open).
        assert!(matches!(
            accept(&b, &incoming("KZ", "CN", b"h2")),
            Acceptance::Accepted {
                sequence: 2,
                log_index: 2,
                ..
            }
        ));
        accept(&b, &incoming("UZ", "CN", b"h3"));
        assert!(b.mark_delivered(1, Timestamp::now()).unwrap());
        b.flush().unwrap();
        drop(b);
        let b = open(dir.path(), engine);
        assert_eq!(b.log_size().unwrap(), 4);
        assert!(matches!(
            accept(&b, &incoming("KZ", "CN", b"h4")),
            Acceptance::Accepted {
                sequence: 4,
                log_index: 5,
                ..
            }
        ));
        let cursors: Vec<u64> = [pid("KZ"), pid("UZ")]
            .iter()
            .flat_map(|s| b.events(*s, 0, 100).unwrap())
            .map(|(c, _)| c)
            .collect();
        let mut sorted = cursors.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            cursors.len(),
            "no event cursor is reused: {cursors:?}"
        );
        assert_eq!(sorted.last(), Some(&5));
    }
}

#[test]
fn the_registry_is_saved_with_a_log_entry() {
    for engine in ENGINES {
        let dir = tempfile::tempdir().unwrap();
        let record = RegistryRecord {
            signed_trust_list: b"list v2".to_vec(),
            revoked_certificates: vec![RevokedCertificate {
                serial: "01ab".into(),
                at_ms: 5,
                reason: "lost laptop".into(),
                by: "operator:alice".into(),
            }],
        };
        {
            let b = open(dir.path(), engine);
            assert_eq!(b.registry().unwrap(), None);
            let entry = LogEntry {
                kind: LogKind::RegistryChange as i32,
                actor: "operator:alice".into(),
                ..Default::default()
            };
            b.save_registry(&record, &entry).unwrap();
            b.flush().unwrap();
        }
        let b = open(dir.path(), engine);
        assert_eq!(b.registry().unwrap(), Some(record));
    }
}

#[test]
fn the_first_sighting_of_a_certificate_stands() {
    for engine in ENGINES {
        let dir = tempfile::tempdir().unwrap();
        let b = open(dir.path(), engine);
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
    }
}

#[test]
fn large_payloads_are_read_in_chunks() {
    for engine in ENGINES {
        let dir = tempfile::tempdir().unwrap();
        let b = open(dir.path(), engine);
        let mut m = incoming("KZ", "CN", b"big");
        m.payload = (0..(2 * super::PAYLOAD_CHUNK + 10))
            .map(|i| (i % 251) as u8)
            .collect();
        accept(&b, &m);
        let pending = b.pending(pid("CN"), 0, 1).unwrap();
        assert_eq!(pending[0].payload_chunks, 3);
        assert_eq!(pending[0].payload_length, m.payload.len() as u64);
        let joined: Vec<u8> = (0..3)
            .flat_map(|i| b.payload_chunk(1, i).unwrap().unwrap())
            .collect();
        assert_eq!(joined, m.payload);
    }
}

#[test]
fn a_store_without_log_nodes_gets_them_computed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let root = |b: &dyn Backend| {
        let leaves: Vec<merkle::Hash> = b
            .log_entries(1, 100)
            .unwrap()
            .iter()
            .map(|(_, e)| merkle::leaf_hash(e))
            .collect();
        (leaves.len(), merkle::root(&leaves))
    };
    let expected = {
        let b = sled(dir.path());
        for h in [b"h1", b"h2", b"h3", b"h4", b"h5"] {
            accept(&b, &incoming("KZ", "CN", h));
        }
        b.flush().unwrap();
        root(&b)
    };
    // A store from before log proofs: entries, no nodes.
    {
        let db = ::sled::open(dir.path()).unwrap();
        db.drop_tree("log_nodes").unwrap();
        db.flush().unwrap();
    }
    let b = sled(dir.path());
    assert_eq!(root(&b), expected);
    assert_eq!(
        b.log_node(0, 4).unwrap(),
        merkle::leaf_hash(&b.log_entries(5, 1).unwrap()[0].1)
    );
    // Appending goes on from the computed nodes.
    accept(&b, &incoming("KZ", "CN", b"h6"));
    assert_eq!(
        b.log_node(1, 2).unwrap(),
        merkle::node_hash(&b.log_node(0, 4).unwrap(), &b.log_node(0, 5).unwrap())
    );
}

#[test]
fn a_store_from_a_newer_caravan_is_refused_and_an_older_one_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    drop(sled(dir.path()));
    {
        let db = ::sled::open(dir.path()).unwrap();
        let meta = db.open_tree("meta").unwrap();
        assert_eq!(
            meta.get("format_version").unwrap().unwrap().as_ref(),
            FORMAT_VERSION.to_be_bytes(),
            "a new store records its format"
        );
        meta.insert("format_version", &(FORMAT_VERSION + 1).to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let err = Embedded::open(dir.path(), Some(EngineKind::Sled), 8 << 20)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("written by a newer Caravan"), "{err}");
    {
        let db = ::sled::open(dir.path()).unwrap();
        db.open_tree("meta")
            .unwrap()
            .remove("format_version")
            .unwrap();
        db.flush().unwrap();
    }
    Embedded::open(dir.path(), Some(EngineKind::Sled), 8 << 20)
        .expect("a store without a version is upgraded");
}

#[test]
fn an_online_backup_is_a_whole_store() {
    for engine in ENGINES {
        let dir = tempfile::tempdir().unwrap();
        let b = open(&dir.path().join("live"), engine);
        for h in [b"h1", b"h2", b"h3"] {
            accept(&b, &incoming("KZ", "CN", h));
        }
        let summary = b.backup(&dir.path().join("copy")).unwrap();
        assert_eq!(summary.log_entries, 3);
        assert!(summary.records > 10 && summary.bytes > 0, "{summary:?}");
        assert!(
            b.backup(&dir.path().join("copy")).is_err(),
            "a backup never overwrites another"
        );
        // The live store goes on; the copy opens as a store of its own with the same content.
        accept(&b, &incoming("KZ", "CN", b"h4"));
        drop(b);
        let copy = open(&dir.path().join("copy"), engine);
        assert_eq!(copy.log_size().unwrap(), 3);
        assert_eq!(copy.pending(pid("CN"), 0, 10).unwrap().len(), 3);
    }
}

#[test]
fn small_payloads_are_kept_with_their_record_where_the_engine_allows() {
    for engine in ENGINES {
        let dir = tempfile::tempdir().unwrap();
        let limit = open(dir.path(), engine).engine_inline_payload_limit();
        assert_eq!(
            limit,
            if engine == EngineKind::Redb {
                8 * 1024
            } else {
                0
            }
        );
        let at_limit = vec![1u8; limit.max(1)];
        let above = vec![2u8; limit + 1];
        {
            let b = open(dir.path(), engine);
            for (header, payload) in [(b"h1", &at_limit), (b"h2", &above)] {
                let mut m = incoming("KZ", "CN", header);
                m.payload = payload.clone();
                accept(&b, &m);
            }
            b.flush().unwrap();
        }
        let in_segments = caravan_common::segments::Segments::open(dir.path())
            .unwrap()
            .size()
            .unwrap();
        let expected = if limit > 0 {
            above.len()
        } else {
            at_limit.len() + above.len()
        };
        assert_eq!(in_segments, expected as u64, "{engine}");
        let b = open(dir.path(), engine);
        assert_eq!(b.payload_chunk(1, 0).unwrap().unwrap(), at_limit);
        assert_eq!(b.payload_chunk(1, 1).unwrap(), None);
        assert_eq!(b.payload_chunk(2, 0).unwrap().unwrap(), above);
    }
}

#[test]
fn payloads_live_in_segments_and_format_1_payloads_stay_readable() {
    use prost::Message;
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..(2 * super::PAYLOAD_CHUNK + 10))
        .map(|i| (i % 251) as u8)
        .collect();
    {
        let b = sled(dir.path());
        let mut m = incoming("KZ", "CN", b"h1");
        m.payload = big.clone();
        accept(&b, &m);
        accept(&b, &incoming("KZ", "CN", b"h2"));
        b.flush().unwrap();
        assert!(
            dir.path()
                .join("payload-segments")
                .join("seg-000001.bin")
                .exists()
        );
    }
    // Message 2 as a format-1 store held it: no segment, the payload in sled's tree.
    {
        let db = ::sled::open(dir.path()).unwrap();
        let messages = db.open_tree("messages").unwrap();
        let key = 2u64.to_be_bytes();
        let mut record =
            <super::records::MessageRecord as caravan_common::store::record::Record>::decode(
                messages.get(key).unwrap().unwrap().as_ref(),
            )
            .unwrap();
        record.payload_segment = 0;
        messages.insert(key, record.encode_to_vec()).unwrap();
        let mut chunk_key = key.to_vec();
        chunk_key.extend_from_slice(&0u32.to_be_bytes());
        db.open_tree("payloads")
            .unwrap()
            .insert(chunk_key, b"from format 1".as_slice())
            .unwrap();
        db.flush().unwrap();
    }
    let b = sled(dir.path());
    let mut read = Vec::new();
    let mut index = 0;
    while let Some(chunk) = b.payload_chunk(1, index).unwrap() {
        read.extend(chunk);
        index += 1;
    }
    assert_eq!(index, 3);
    assert_eq!(read, big);
    assert_eq!(b.payload_chunk(2, 0).unwrap().unwrap(), b"from format 1");
}

#[test]
fn a_payload_chunk_that_fails_its_checksum_is_refused_and_old_payloads_stay_unchecked() {
    use prost::Message;
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..(2 * super::PAYLOAD_CHUNK + 10))
        .map(|i| (i % 251) as u8)
        .collect();
    {
        let b = sled(dir.path());
        for header in [b"h1", b"h2"] {
            let mut m = incoming("KZ", "CN", header);
            m.payload = big.clone();
            accept(&b, &m);
        }
        b.flush().unwrap();
        let report = b.check();
        assert!(report.is_sound(), "{:?}", report.problems);
        assert_eq!(report.payloads.checked, 2);
    }
    // Message 2 as a store from before checksums wrote it: no checksums.
    {
        let db = ::sled::open(dir.path()).unwrap();
        let messages = db.open_tree("messages").unwrap();
        let key = 2u64.to_be_bytes();
        let mut record =
            <super::records::MessageRecord as caravan_common::store::record::Record>::decode(
                messages.get(key).unwrap().unwrap().as_ref(),
            )
            .unwrap();
        record.payload_crc32.clear();
        messages.insert(key, record.encode_to_vec()).unwrap();
        db.flush().unwrap();
    }
    // A bit flips in the second chunk of message 1 (the segment's second MiB).
    let file = dir.path().join("payload-segments").join("seg-000001.bin");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[super::PAYLOAD_CHUNK + 3] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    let b = sled(dir.path());
    assert_eq!(
        b.payload_chunk(1, 0).unwrap().unwrap(),
        big[..super::PAYLOAD_CHUNK]
    );
    for _ in 0..2 {
        match b.payload_chunk(1, 1) {
            Err(StoreError::PayloadCorrupt { document, source }) => {
                let detail = source.to_string();
                assert!(document.starts_with("KZ/"), "{document}");
                assert!(
                    detail.contains("seg-000001.bin") && detail.contains("block 1"),
                    "{detail}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(b.payload_damaged(1) && !b.payload_damaged(2));
    assert_eq!(b.damaged_payloads(), 1, "counted once");
    assert_eq!(
        b.payload_chunk(2, 1).unwrap().unwrap().len(),
        super::PAYLOAD_CHUNK
    );
    let report = b.check();
    assert_eq!(report.payloads.checked, 0);
    assert_eq!(
        report.payloads.unchecked, 1,
        "the old one is read unchecked"
    );
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].record.contains("sequence 1"));
    assert!(
        b.check_at_start().is_sound(),
        "the quick check reads no payload"
    );
}

#[test]
fn records_written_before_record_versions_still_decode() {
    use caravan_common::store::record::Record;
    let dir = tempfile::tempdir().unwrap();
    let m = incoming("KZ", "CN", b"header");
    {
        let b = sled(dir.path());
        accept(&b, &m);
        b.flush().unwrap();
    }
    // Rewritten as a store from before versions held them: the bare protobuf body.
    {
        let db = ::sled::open(dir.path()).unwrap();
        for table in ["messages", "status"] {
            let tree = db.open_tree(table).unwrap();
            let stored = tree.get(1u64.to_be_bytes()).unwrap().unwrap();
            assert_eq!(
                &stored[..2],
                &[0, 1],
                "{table}: a record carries its version"
            );
            let body = caravan_common::store::record::split(&stored).1.to_vec();
            tree.insert(1u64.to_be_bytes(), body).unwrap();
        }
        db.flush().unwrap();
    }
    let b = sled(dir.path());
    let pending = b.pending(m.recipient, 0, 10).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].message_id, m.message_id);
    let status = b.status(m.sender, m.message_id).unwrap().unwrap();
    assert_eq!(status.current(), MessageState::Accepted);
    assert!(b.check().is_sound(), "{:?}", b.check().problems);
    // A record from a newer binary is refused, not misread.
    let newer = [&[0u8, 9][..], b"body"].concat();
    assert!(<super::records::StatusRecord as Record>::decode(&newer).is_err());
}

#[test]
fn a_dedup_index_in_the_old_key_order_is_rewritten_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let m = incoming("KZ", "CN", b"header");
    {
        let b = sled(dir.path());
        assert!(matches!(accept(&b, &m), Acceptance::Accepted { .. }));
        b.flush().unwrap();
    }
    // As a store of format 2 held it: sender, then id.
    {
        let db = ::sled::open(dir.path()).unwrap();
        let dedup = db.open_tree("dedup").unwrap();
        let (key, value) = dedup.iter().next().unwrap().unwrap();
        assert_eq!(&key[..16], m.message_id.as_bytes(), "id, then sender");
        let mut old = m.sender.as_str().as_bytes().to_vec();
        old.extend_from_slice(m.message_id.as_bytes());
        dedup.remove(&key).unwrap();
        dedup.insert(old, value).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert("format_version", &2u64.to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let b = sled(dir.path());
    // The resend is recognised, and the status found, through the rewritten index.
    assert!(matches!(
        accept(&b, &m),
        Acceptance::Duplicate { sequence: 1, .. }
    ));
    assert!(b.status(m.sender, m.message_id).unwrap().is_some());
    assert!(b.check().is_sound(), "{:?}", b.check().problems);
}
