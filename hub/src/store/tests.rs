//! The hub store's suite, run on every engine.

use caravan_common::{Timestamp, merkle};

use super::{
    suite::{accept, incoming, pid, receipt_for},
    *,
};
use caravan_common::store::EngineKind;

const ENGINES: [EngineKind; 2] = [EngineKind::Sled, EngineKind::Redb];

fn open(path: &std::path::Path, engine: EngineKind) -> Embedded {
    Embedded::open(path, Some(engine), 8 << 20).unwrap()
}

/// The sled database in `path`, opened directly (to write what an older store wrote, or to
/// damage it), once the store that had it open has let go of its file lock: sled releases it
/// from a thread of its own a moment after the last handle is dropped, so an open at once can
/// find it still held. Waits for the lock, at most 10 s.
pub(crate) fn raw_sled(path: &std::path::Path) -> ::sled::Db {
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match ::sled::open(path) {
            Ok(db) => return db,
            Err(::sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < give_up =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Err(e) => panic!("sled {}: {e}", path.display()),
        }
    }
}

/// Stores made before there was a choice of engine are sled stores.
fn sled(path: &std::path::Path) -> Embedded {
    open(path, EngineKind::Sled)
}

#[test]
fn every_engine_conforms() {
    for engine in ENGINES {
        let dir = tempfile::tempdir().unwrap();
        suite::exchange(&open(dir.path(), engine));
        let dir = tempfile::tempdir().unwrap();
        suite::records(&open(dir.path(), engine));
        let dir = tempfile::tempdir().unwrap();
        suite::many(&open(dir.path(), engine));
        let dir = tempfile::tempdir().unwrap();
        suite::scorecard(&open(dir.path(), engine));
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
        // (Acceptances append no status event: the one delivery before the restart holds
        // cursor 1, and the deliveries after it take the next ones, never 1 again.)
        assert!(b.mark_delivered(2, Timestamp::now()).unwrap());
        assert!(b.mark_delivered(3, Timestamp::now()).unwrap());
        let cursors = |s: &str| -> Vec<(u64, u64)> {
            b.events(pid(s), 0, 100)
                .unwrap()
                .into_iter()
                .map(|(c, e)| (c, e.sequence))
                .collect()
        };
        assert_eq!(
            cursors("KZ"),
            vec![(1, 1), (2, 2)],
            "no event cursor is reused"
        );
        assert_eq!(cursors("UZ"), vec![(3, 3)]);
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
        let db = raw_sled(dir.path());
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
        let db = raw_sled(dir.path());
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
        let db = raw_sled(dir.path());
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
        let db = raw_sled(dir.path());
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
        let db = raw_sled(dir.path());
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
        let db = raw_sled(dir.path());
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
        let db = raw_sled(dir.path());
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
