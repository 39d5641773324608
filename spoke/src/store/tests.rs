//! The store's tests: the inbox, damage, record versions and numbering.

use caravan_common::store::{Counter, EngineKind, segments};

use super::{
    fixtures::{ENGINES, inbox_record as record},
    tables::*,
    *,
};

#[test]
fn inbox_keeps_each_document_once_in_arrival_order() {
    for engine in ENGINES {
        let dir = tempfile::tempdir().unwrap();
        let store = SpokeStore::open(dir.path(), Some(engine), 4 << 20).unwrap();
        let a = record("KZ");
        let b = record("UZ");
        assert!(store.inbox_insert(&a, b"abc").unwrap());
        assert!(store.inbox_insert(&b, b"xyz").unwrap());
        assert!(
            !store.inbox_insert(&a, b"other").unwrap(),
            "a redelivery is not stored again"
        );
        let list: Vec<InboxRecord> = store
            .inbox_since(None, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        assert_eq!(
            list.iter().map(|r| r.message_id).collect::<Vec<_>>(),
            vec![a.message_id, b.message_id]
        );
        assert_eq!(
            store.payload(a.sender, a.message_id).unwrap().unwrap(),
            b"abc"
        );
        assert_eq!(store.inbox_find(b.message_id).unwrap(), vec![b.clone()]);
        store
            .inbox_set_ack(a.sender, a.message_id, "ack".into())
            .unwrap();
        assert_eq!(
            store
                .inbox_entry(a.sender, a.message_id)
                .unwrap()
                .unwrap()
                .evidence
                .ack
                .as_deref(),
            Some("ack")
        );
        // Payloads up to the engine's inline limit are kept in the engine, larger ones in
        // segment files; both survive a reopen, and a payload stored by a spoke from before
        // segments (in sled's `payloads` tree) is still read.
        let big = record("TJ");
        let big_payload = vec![7u8; 64 * 1024 + 1];
        assert!(store.inbox_insert(&big, &big_payload).unwrap());
        let kept_inline = |r: &InboxRecord| {
            let key = inbox_key(r.message_id, r.sender);
            let inline = store.db.get(PAYLOADS, &key).unwrap().is_some();
            let in_segment = store.db.get(PAYLOAD_AT, &key).unwrap().is_some();
            assert_ne!(inline, in_segment, "a payload is kept in one place");
            inline
        };
        assert_eq!(kept_inline(&b), engine == EngineKind::Redb);
        assert!(!kept_inline(&big));
        assert_eq!(
            store.payload(b.sender, b.message_id).unwrap().unwrap(),
            b"xyz"
        );
        let key = inbox_key(a.message_id, a.sender);
        store
            .db
            .update(|tx| {
                tx.remove(PAYLOAD_AT, &key)?;
                tx.insert(PAYLOADS, &key, b"old format")
            })
            .unwrap();
        store.flush().unwrap();
        drop(store);
        let store = SpokeStore::open(dir.path(), Some(engine), 1 << 20).unwrap();
        assert_eq!(
            store.payload(b.sender, b.message_id).unwrap().unwrap(),
            b"xyz"
        );
        assert_eq!(
            store.payload(a.sender, a.message_id).unwrap().unwrap(),
            b"old format"
        );
        assert_eq!(
            store.payload(big.sender, big.message_id).unwrap().unwrap(),
            big_payload
        );
    }
}
#[test]
fn damage_is_refused_reported_and_marks_the_store_unhealthy() {
    for engine in ENGINES {
        let dir = tempfile::tempdir().unwrap();
        let store = SpokeStore::open(dir.path(), Some(engine), 4 << 20).unwrap();
        let (a, b) = (record("KZ"), record("UZ"));
        let big = vec![5u8; segments::CHECK_BLOCK + 100];
        store.inbox_insert(&a, &big).unwrap();
        store.inbox_insert(&b, b"small").unwrap();
        store.flush().unwrap();
        let report = store.check();
        // The records say 3 bytes: the check compares.
        assert_eq!(report.problems.len(), 2, "{engine}: {:?}", report.problems);
        let dir2 = tempfile::tempdir().unwrap();
        let store = SpokeStore::open(dir2.path(), Some(engine), 4 << 20).unwrap();
        let mut a = record("KZ");
        a.payload_length = big.len() as u64;
        let mut b = record("UZ");
        b.payload_length = 5;
        store.inbox_insert(&a, &big).unwrap();
        store.inbox_insert(&b, b"small").unwrap();
        store.flush().unwrap();
        let report = store.check();
        assert!(report.is_sound(), "{engine}: {:?}", report.problems);
        // On sled even the small one is in a segment; redb keeps it in its own pages.
        let in_engine = u64::from(engine == EngineKind::Redb);
        assert_eq!(report.payloads.checked, 2 - in_engine);
        assert_eq!(report.payloads.in_engine, in_engine);
        assert!(store.check_at_start().is_sound());
        assert_eq!(store.damage(), None);

        // A flipped bit in the segment: never served, named, counted once.
        let file = dir2.path().join("payload-segments").join("seg-000001.bin");
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[segments::CHECK_BLOCK + 1] ^= 8;
        std::fs::write(&file, bytes).unwrap();
        for _ in 0..2 {
            match store.payload(a.sender, a.message_id) {
                Err(StoreError::PayloadCorrupt { document, source }) => {
                    let detail = source.to_string();
                    assert!(document.contains(&a.message_id.to_string()), "{document}");
                    assert!(detail.contains("block 1"), "{detail}");
                }
                other => panic!("{engine}: {other:?}"),
            }
        }
        assert_eq!(store.damaged_payloads(), 1);
        assert!(store.damage().is_some());
        assert_eq!(
            store.payload(b.sender, b.message_id).unwrap().unwrap(),
            b"small"
        );
        let report = store.check();
        assert_eq!(report.problems.len(), 1, "{engine}: {:?}", report.problems);
        assert!(
            report.problems[0]
                .record
                .contains(&a.message_id.to_string())
        );

        // A record that no longer decodes breaks the inbox listing: said, and remembered.
        let dir3 = tempfile::tempdir().unwrap();
        let store = SpokeStore::open(dir3.path(), Some(engine), 4 << 20).unwrap();
        store.inbox_insert(&b, b"small").unwrap();
        let key = inbox_key(b.message_id, b.sender);
        store.put(INBOX, &key, b"{not json").unwrap();
        store.flush().unwrap();
        assert!(
            store
                .check_at_start()
                .problems
                .iter()
                .any(|p| p.place == INBOX.name())
        );
        assert!(store.inbox_since(None, 100).is_err());
        assert!(store.damage().unwrap().contains("inbox"));
        // Counters that went back since they were noted: committed data was lost.
        store.note_floors().unwrap();
        assert!(
            store
                .check_at_start()
                .problems
                .iter()
                .all(|p| p.place == INBOX.name())
        );
        store
            .put(META, NEXT_ARRIVAL.key(), &0u64.to_be_bytes())
            .unwrap();
        let report = store.check_at_start();
        // Arrivals number from 1 (`Counter::FIRST`): after one, the next is 2.
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.record == "next_arrival" && p.detail.contains("is at 0 but was at 2")),
            "{engine}: {:?}",
            report.problems
        );
        let report = store.check();
        assert!(!report.is_sound());
    }
}

#[test]
fn the_acknowledgement_sent_is_kept_beside_its_record_not_in_it() {
    for engine in ENGINES {
        let dir = tempfile::tempdir().unwrap();
        let store = SpokeStore::open(dir.path(), Some(engine), 4 << 20).unwrap();
        let a = record("KZ");
        store.inbox_insert(&a, b"abc").unwrap();
        let key = inbox_key(a.message_id, a.sender);
        let stored = store.db.get(INBOX, &key).unwrap().unwrap();
        store
            .inbox_set_ack(a.sender, a.message_id, "ack-1".into())
            .unwrap();
        assert_eq!(
            store.db.get(INBOX, &key).unwrap().unwrap(),
            stored,
            "{engine}: the inbox record is not written again"
        );
        let ack_of = |r: &InboxRecord| {
            store
                .inbox_entry(r.sender, r.message_id)
                .unwrap()
                .unwrap()
                .evidence
                .ack
        };
        assert_eq!(ack_of(&a).as_deref(), Some("ack-1"));
        // Every listing reads it too.
        assert_eq!(
            store.inbox_find(a.message_id).unwrap()[0]
                .evidence
                .ack
                .as_deref(),
            Some("ack-1")
        );
        assert_eq!(
            store.inbox_since(None, 10).unwrap()[0]
                .1
                .evidence
                .ack
                .as_deref(),
            Some("ack-1")
        );
        // An acknowledgement for a document not in the inbox is not kept.
        let stranger = record("UZ");
        store
            .inbox_set_ack(stranger.sender, stranger.message_id, "ack".into())
            .unwrap();
        assert_eq!(store.db.len(ACKS).unwrap(), 1);
        assert!(store.check().is_sound(), "{engine}");

        // A record from before format 5 holds its acknowledgement itself: still read, and a
        // later one sent again (a redelivery) is the one shown.
        let b = record("CN");
        let mut held = b.clone();
        held.evidence.ack = Some("old".into());
        store.inbox_insert(&held, b"xyz").unwrap();
        assert_eq!(ack_of(&b).as_deref(), Some("old"));
        store
            .inbox_set_ack(b.sender, b.message_id, "new".into())
            .unwrap();
        assert_eq!(ack_of(&b).as_deref(), Some("new"));

        // An acknowledgement kept for no inbox entry is damage `store check` names.
        store
            .put(
                ACKS,
                &inbox_key(stranger.message_id, stranger.sender),
                b"ack",
            )
            .unwrap();
        let report = store.check();
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.place == ACKS.name() && p.detail == "no inbox entry names it"),
            "{engine}: {:?}",
            report.problems
        );
    }
}

#[test]
fn records_written_before_record_versions_still_decode() {
    for engine in ENGINES {
        let dir = tempfile::tempdir().unwrap();
        let store = SpokeStore::open(dir.path(), Some(engine), 4 << 20).unwrap();
        let a = record("KZ");
        store.inbox_insert(&a, b"abc").unwrap();
        let key = inbox_key(a.message_id, a.sender);
        let stored = store.db.get(INBOX, &key).unwrap().unwrap();
        assert_eq!(
            &stored[..2],
            &[0, RECORD_VERSION],
            "a record carries its version"
        );
        // As a spoke from before versions wrote it: the bare JSON.
        store
            .put(INBOX, &key, &serde_json::to_vec(&a).unwrap())
            .unwrap();
        assert_eq!(
            store.inbox_entry(a.sender, a.message_id).unwrap(),
            Some(a.clone())
        );
        assert!(store.check().is_sound(), "{engine}");
        // One from a newer spoke is refused, not misread.
        let newer = [
            &[0u8, RECORD_VERSION + 1][..],
            &serde_json::to_vec(&a).unwrap(),
        ]
        .concat();
        store.put(INBOX, &key, &newer).unwrap();
        let err = store.inbox_entry(a.sender, a.message_id).unwrap_err();
        assert!(err.to_string().contains("newer Caravan"), "{err}");
    }
}

#[test]
fn numbering_goes_on_after_a_store_numbered_by_sled() {
    // Stores from before the counters in `meta` numbered arrivals with sled's ids.
    let dir = tempfile::tempdir().unwrap();
    let a = record("KZ");
    {
        let store = SpokeStore::open(dir.path(), Some(EngineKind::Sled), 1 << 20).unwrap();
        store.inbox_insert(&a, b"abc").unwrap();
        let key = inbox_key(a.message_id, a.sender);
        store
            .db
            .update(|tx| {
                tx.remove(ARRIVALS, &Counter::FIRST.to_be_bytes())?;
                tx.insert(ARRIVALS, &41u64.to_be_bytes(), &key)?;
                tx.remove(META, NEXT_ARRIVAL.key())
            })
            .unwrap();
        store.flush().unwrap();
    }
    let store = SpokeStore::open(dir.path(), Some(EngineKind::Sled), 1 << 20).unwrap();
    let b = record("UZ");
    store.inbox_insert(&b, b"xyz").unwrap();
    let cursors: Vec<u64> = store
        .inbox_since(None, usize::MAX)
        .unwrap()
        .iter()
        .map(|(c, _)| *c)
        .collect();
    assert_eq!(cursors, [41, 42]);
    assert_eq!(store.inbox_len().unwrap(), 2);
}

#[test]
fn the_inbox_is_read_a_page_at_a_time() {
    for engine in ENGINES {
        let dir = tempfile::tempdir().unwrap();
        let store = SpokeStore::open(dir.path(), Some(engine), 4 << 20).unwrap();
        // 600 documents: more than one page of the scan; every third from UZ.
        for i in 0..600 {
            let sender = if i % 3 == 0 { "UZ" } else { "KZ" };
            store.inbox_insert(&record(sender), b"xyz").unwrap();
        }
        let first = store.inbox_since(None, 250).unwrap();
        assert_eq!(first.len(), 250);
        let next = store.inbox_since(Some(first[249].0), 1000).unwrap();
        assert_eq!(next.len(), 350, "{engine}");
        assert_eq!(next[0].0, first[249].0 + 1);
        // Newest first, filtered, a page at a time, and on from where a page ended.
        let uz = |r: &InboxRecord| r.sender.as_str() == "UZ";
        let (page, older) = store.inbox_matching(None, 150, uz).unwrap();
        assert_eq!(page.len(), 150);
        assert!(page.windows(2).all(|w| w[0].0 > w[1].0), "newest first");
        assert!(page.iter().all(|(_, r)| uz(r)));
        let (rest, none) = store.inbox_matching(older, 150, uz).unwrap();
        assert_eq!(rest.len(), 50, "{engine}: 200 from UZ in all");
        assert_eq!(none, None);
        assert!(rest[0].0 < page[149].0);
    }
}

#[test]
fn an_inbox_list_pages_both_ways_with_its_count() {
    for engine in ENGINES {
        let dir = tempfile::tempdir().unwrap();
        let store = SpokeStore::open(dir.path(), Some(engine), 4 << 20).unwrap();
        // 600 documents: more than two chunks of the scan; every third from UZ (200).
        for i in 0..600 {
            let sender = if i % 3 == 0 { "UZ" } else { "KZ" };
            store.inbox_insert(&record(sender), b"xyz").unwrap();
        }
        let uz = |r: &InboxRecord| r.sender.as_str() == "UZ";
        let first = store.inbox_page(PageAt::Newest, 75, uz).unwrap();
        assert_eq!((first.matching, first.newer), (200, 0), "{engine}");
        assert_eq!(first.records.len(), 75);
        assert!(first.records.iter().all(|(_, r)| uz(r)));
        assert!(
            first.records.windows(2).all(|w| w[0].0 > w[1].0),
            "newest first"
        );
        assert_eq!(first.newer_from, None, "nothing newer than the first page");
        let second = store
            .inbox_page(PageAt::Before(first.older_from.unwrap()), 75, uz)
            .unwrap();
        assert_eq!((second.matching, second.newer), (200, 75));
        assert_eq!(second.records.len(), 75);
        assert!(second.records[0].0 < first.records[74].0);
        let third = store
            .inbox_page(PageAt::Before(second.older_from.unwrap()), 75, uz)
            .unwrap();
        assert_eq!((third.newer, third.records.len()), (150, 50));
        assert_eq!(third.older_from, None, "the last page");
        // Back: the previous page of the third is the second, exactly.
        let back = store
            .inbox_page(PageAt::After(third.newer_from.unwrap()), 75, uz)
            .unwrap();
        assert_eq!(back.records, second.records);
        assert_eq!(back.newer, 75);
        let back = store
            .inbox_page(PageAt::After(back.newer_from.unwrap()), 75, uz)
            .unwrap();
        assert_eq!(back.records, first.records);
        assert_eq!(back.newer_from, None);
        // A cursor in the middle of the first page: the previous page is the newest page.
        let near_top = store
            .inbox_page(PageAt::After(first.records[10].0), 75, uz)
            .unwrap();
        assert_eq!(near_top.records, first.records);
        // Nothing matches: an empty page, no links.
        let none = store.inbox_page(PageAt::Newest, 75, |_| false).unwrap();
        assert_eq!((none.matching, none.records.len()), (0, 0));
        assert_eq!((none.older_from, none.newer_from), (None, None));
    }
}

#[test]
fn inbox_search_finds_goods_and_hs_codes_in_stored_summaries() {
    let dir = tempfile::tempdir().unwrap();
    let store = SpokeStore::open(dir.path(), None, 4 << 20).unwrap();
    let mut r = record("KZ");
    r.summary = crate::document::summary(include_bytes!(
        "../../../samples/eco/carec-KZ-CN-certificate-of-origin.xml"
    ));
    assert!(store.inbox_insert(&r, b"abc").unwrap());
    let stored = store.inbox_entry(r.sender, r.message_id).unwrap().unwrap();
    for q in [
        "",
        "kz-co-1",
        "kz",
        "DALA UN",
        "wheat FLOUR",
        "110311",
        "1103",
        "  Semolina ",
    ] {
        assert!(stored.matches_text(q), "{q:?}");
    }
    for q in ["xyz", "rice", "1006", "CN-CO"] {
        assert!(!stored.matches_text(q), "{q:?}");
    }
}

#[test]
fn documents_are_found_by_sender_and_number_and_marked_replaced() {
    for engine in ENGINES {
        let dir = tempfile::tempdir().unwrap();
        let store = SpokeStore::open(dir.path(), Some(engine), 4 << 20).unwrap();
        let numbered = |sender: &str, number: &str| InboxRecord {
            summary: Some(crate::document::Summary {
                document_number: Some(number.into()),
                ..Default::default()
            }),
            ..record(sender)
        };
        let first = numbered("KZ", "KZ-CO-1");
        let again = numbered("KZ", "KZ-CO-1");
        let other_sender = numbered("UZ", "KZ-CO-1");
        let other_number = numbered("KZ", "KZ-CO-2");
        for r in [&first, &again, &other_sender, &other_number] {
            assert!(store.inbox_insert(r, b"x").unwrap());
        }
        let kz: caravan_common::ParticipantId = "KZ".parse().unwrap();
        let found: Vec<_> = store
            .inbox_same_number(kz, "KZ-CO-1")
            .unwrap()
            .into_iter()
            .map(|r| r.message_id)
            .collect();
        assert_eq!(found, [first.message_id, again.message_id]);
        assert!(store.inbox_same_number(kz, "KZ-CO-3").unwrap().is_empty());
        // Marked replaced: the `replaced` line names the replacement, once however often.
        assert_eq!(first.replaced_by(), None);
        let checked = InboxRecord {
            checks: vec![crate::checks::replaced(&crate::checks::Known::default())],
            ..numbered("KZ", "KZ-CO-4")
        };
        assert!(store.inbox_insert(&checked, b"x").unwrap());
        for _ in 0..2 {
            assert!(
                store
                    .inbox_mark_replaced(checked.message_id, kz, again.message_id)
                    .unwrap()
            );
        }
        let marked = store.inbox_entry(kz, checked.message_id).unwrap().unwrap();
        assert_eq!(marked.replaced_by(), Some(again.message_id));
        assert_eq!(marked.checks.len(), 1);
        assert_eq!(marked.checks[0].rule, "REPLACED");
        // A document whose content was never checked (not understood, or from before content
        // checks) records its replacement without gaining a check line: no content verdict on
        // what was never judged.
        assert!(
            store
                .inbox_mark_replaced(first.message_id, kz, again.message_id)
                .unwrap()
        );
        let unchecked = store.inbox_entry(kz, first.message_id).unwrap().unwrap();
        assert_eq!(unchecked.replaced_by(), Some(again.message_id));
        assert!(unchecked.checks.is_empty(), "{:?}", unchecked.checks);
        assert_eq!(crate::api::views::VerdictView::of(&unchecked), None);
        // Records from before the replacement field read it from their `replaced` line.
        let mut json = serde_json::to_value(&marked).unwrap();
        json.as_object_mut().unwrap().remove("replacement");
        let older: InboxRecord = serde_json::from_value(json).unwrap();
        assert_eq!(older.replaced_by(), Some(again.message_id));
        // Unknown to the inbox: nothing to mark.
        assert!(
            !store
                .inbox_mark_replaced(caravan_common::MessageId::generate(), kz, again.message_id)
                .unwrap()
        );
        // Records from before content checks decode with none.
        let mut json = serde_json::to_value(&marked).unwrap();
        json.as_object_mut().unwrap().remove("checks");
        let old: InboxRecord = serde_json::from_value(json).unwrap();
        assert!(old.checks.is_empty());
    }
}

#[test]
fn a_replacement_is_found_whether_it_came_before_or_after() {
    for engine in ENGINES {
        let dir = tempfile::tempdir().unwrap();
        let store = SpokeStore::open(dir.path(), Some(engine), 4 << 20).unwrap();
        let original = record("KZ");
        let replacement = InboxRecord {
            supersedes: Some(original.message_id),
            ..record("KZ")
        };
        let kz = original.sender;
        // The replacement first: the original, arriving later, is found replaced.
        assert!(store.inbox_insert(&replacement, b"new").unwrap());
        assert_eq!(
            store.inbox_replacement_of(kz, original.message_id).unwrap(),
            Some(replacement.message_id)
        );
        // Only for its sender, and nothing for a document nobody replaced.
        let uz: caravan_common::ParticipantId = "UZ".parse().unwrap();
        assert_eq!(
            store.inbox_replacement_of(uz, original.message_id).unwrap(),
            None
        );
        assert_eq!(
            store
                .inbox_replacement_of(kz, replacement.message_id)
                .unwrap(),
            None
        );
    }
}

#[test]
fn opening_a_store_from_before_the_indexes_builds_them() {
    for engine in ENGINES {
        let dir = tempfile::tempdir().unwrap();
        let numbered = |number: &str| InboxRecord {
            summary: Some(crate::document::Summary {
                document_number: Some(number.into()),
                ..Default::default()
            }),
            ..record("KZ")
        };
        let first = numbered("KZ-CO-1");
        let replacement = InboxRecord {
            supersedes: Some(first.message_id),
            ..numbered("KZ-CO-1")
        };
        let kz = first.sender;
        {
            let store = SpokeStore::open(dir.path(), Some(engine), 4 << 20).unwrap();
            store.inbox_insert(&first, b"a").unwrap();
            store.inbox_insert(&replacement, b"b").unwrap();
            // As a store of version 3 was: no index entries, its version recorded.
            store
                .db
                .update(|tx| {
                    for (table, key) in [
                        (NUMBERS, &number_key(kz, "KZ-CO-1", first.message_id)[..]),
                        (
                            NUMBERS,
                            &number_key(kz, "KZ-CO-1", replacement.message_id)[..],
                        ),
                        (REPLACEMENTS, &inbox_key(first.message_id, kz)[..]),
                    ] {
                        tx.remove(table, key)?;
                    }
                    tx.insert(META, FORMAT_KEY, &3u64.to_be_bytes())
                })
                .unwrap();
            store.flush().unwrap();
            assert!(store.inbox_same_number(kz, "KZ-CO-1").unwrap().is_empty());
        }
        let store = SpokeStore::open(dir.path(), Some(engine), 4 << 20).unwrap();
        assert_eq!(store.meta_u64(FORMAT_KEY).unwrap(), Some(FORMAT_VERSION));
        assert_eq!(store.inbox_same_number(kz, "KZ-CO-1").unwrap().len(), 2);
        assert_eq!(
            store.inbox_replacement_of(kz, first.message_id).unwrap(),
            Some(replacement.message_id)
        );
    }
}

#[test]
fn document_numbers_are_indexed_in_order_and_rebuilt_from_hashed_keys() {
    let numbered = |sender: &str, number: &str| InboxRecord {
        summary: Some(crate::document::Summary {
            document_number: Some(number.into()),
            ..Default::default()
        }),
        ..record(sender)
    };
    let kz: caravan_common::ParticipantId = "KZ".parse().unwrap();
    // An issuer's numbers in sequence are neighbours in the index (a new document touches its
    // last page); a number of the same length from another sender is not mixed in.
    let (one, two) = (numbered("KZ", "KZ-CO-1"), numbered("KZ", "KZ-CO-2"));
    let key = |r: &InboxRecord| number_key(r.sender, r.number().unwrap(), r.message_id);
    assert!(key(&one) < key(&two));
    // One number is never taken for the start of another.
    assert!(!key(&numbered("KZ", "KZ-CO-10")).starts_with(&number_prefix(kz, "KZ-CO-1")));
    let long = "N".repeat(300);
    for engine in ENGINES {
        let dir = tempfile::tempdir().unwrap();
        let other = numbered("UZ", "KZ-CO-1");
        let first_long = numbered("KZ", &long);
        let second_long = numbered("KZ", &long);
        {
            let store = SpokeStore::open(dir.path(), Some(engine), 4 << 20).unwrap();
            for r in [&one, &two, &other, &first_long, &second_long] {
                store.inbox_insert(r, b"abc").unwrap();
            }
            let ids = |number: &str| -> Vec<caravan_common::MessageId> {
                let mut ids: Vec<_> = store
                    .inbox_same_number(kz, number)
                    .unwrap()
                    .into_iter()
                    .map(|r| r.message_id)
                    .collect();
                ids.sort();
                ids
            };
            assert_eq!(ids("KZ-CO-1"), vec![one.message_id]);
            assert_eq!(ids("KZ-CO-10"), Vec::<caravan_common::MessageId>::new());
            let mut longs = vec![first_long.message_id, second_long.message_id];
            longs.sort();
            assert_eq!(ids(&long), longs, "{engine}: a long number by its hash");
            // As a store of format 4 keyed them: the number's hash, every number.
            let hashed = |r: &InboxRecord| {
                let mut k = r.sender.as_str().as_bytes().to_vec();
                k.extend_from_slice(
                    &caravan_common::signing::sha256(r.number().unwrap().as_bytes())[..16],
                );
                k.extend_from_slice(r.message_id.as_bytes());
                k
            };
            store
                .db
                .update(|tx| {
                    for r in [&one, &two, &other] {
                        tx.remove(NUMBERS, &key(r))?;
                        tx.insert(NUMBERS, &hashed(r), &[])?;
                    }
                    tx.insert(META, FORMAT_KEY, &4u64.to_be_bytes())
                })
                .unwrap();
            store.flush().unwrap();
            assert!(store.inbox_same_number(kz, "KZ-CO-1").unwrap().is_empty());
        }
        let store = SpokeStore::open(dir.path(), Some(engine), 4 << 20).unwrap();
        assert_eq!(store.meta_u64(FORMAT_KEY).unwrap(), Some(FORMAT_VERSION));
        let found = store.inbox_same_number(kz, "KZ-CO-1").unwrap();
        assert_eq!(found.len(), 1, "{engine}");
        assert_eq!(found[0].message_id, one.message_id);
        assert_eq!(
            store.db.len(NUMBERS).unwrap(),
            5,
            "{engine}: the hashed keys are gone, every document indexed once"
        );
        let report = store.check();
        assert!(report.is_sound(), "{engine}: {:?}", report.problems);
    }
}
