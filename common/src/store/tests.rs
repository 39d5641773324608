//! The engines' conformance: every test runs on sled and on redb.

use super::*;

const A: Table = Table::new(0, "a");
const B: Table = Table::new(1, "b");
const TABLES: &[Table] = &[A, B];

const KINDS: [EngineKind; 2] = [EngineKind::Sled, EngineKind::Redb];

fn open(path: &Path, kind: EngineKind) -> Db {
    Db::open(path, Some(kind), TABLES, 8 << 20).unwrap()
}

fn keys(p: Pairs) -> Vec<u8> {
    p.into_iter().map(|(k, _)| k[0]).collect()
}

#[derive(Debug, PartialEq)]
struct Refused;

#[test]
fn transactions_are_atomic_return_values_and_ranges_are_ordered() {
    let dir = tempfile::tempdir().unwrap();
    for kind in KINDS {
        let e = open(&dir.path().join(kind.as_str()), kind);
        assert_eq!(e.kind(), kind);
        let wrote = e
            .update(|tx| {
                for i in 0u8..5 {
                    tx.insert(A, &[i], &[i * 2])?;
                }
                tx.insert(B, b"k", b"v")?;
                Ok(5)
            })
            .unwrap();
        assert_eq!(wrote, 5);
        // A body that aborts leaves nothing behind, even the writes it made first, and its
        // reason comes back as it was.
        let err = e
            .transact(|tx| {
                tx.insert(B, b"k", b"changed")?;
                tx.remove(A, &[0])?;
                assert_eq!(tx.get(B, b"k")?.as_deref(), Some(&b"changed"[..]));
                Err::<(), _>(TxError::Abort(Refused))
            })
            .unwrap_err();
        assert!(matches!(err, TxError::Abort(Refused)), "{err:?}");
        // A store error from the body aborts it as well.
        let err = e
            .update(|tx| {
                tx.insert(B, b"k", b"changed")?;
                Err::<(), _>(StoreError::corrupt("test", "refused"))
            })
            .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { what: "test", .. }));
        assert_eq!(e.get(B, b"k").unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(e.get(A, &[0]).unwrap().as_deref(), Some(&[0u8][..]));
        assert_eq!(
            keys(e.range(A, &[1], Some(&[4]), 10, false).unwrap()),
            [1, 2, 3]
        );
        assert_eq!(keys(e.range(A, &[1], None, 2, true).unwrap()), [4, 3]);
        assert_eq!(keys(e.range(A, &[], None, 2, false).unwrap()), [0, 1]);
        assert_eq!(e.len(A).unwrap(), 5);
        e.flush().unwrap();
        assert!(e.size_on_disk().unwrap() > 0);
        // A table of another store is refused, not confused with one of this store's.
        let stranger = Table::new(1, "c");
        assert!(matches!(
            e.get(stranger, b"k"),
            Err(StoreError::UnknownTable("c"))
        ));
    }
}

#[test]
fn counters_hand_out_one_first_and_go_on_from_a_stored_value() {
    let dir = tempfile::tempdir().unwrap();
    for kind in KINDS {
        let e = open(&dir.path().join(kind.as_str()), kind);
        let c = Counter::new(A, b"next");
        assert_eq!(c.next(&e).unwrap(), None);
        assert_eq!(e.update(|tx| c.take(tx)).unwrap(), Counter::FIRST);
        assert_eq!(e.update(|tx| c.take(tx)).unwrap(), 2);
        // A store that started its counter at 0 goes on from where it is.
        e.update(|tx| c.set_next(tx, 0)).unwrap();
        assert_eq!(e.update(|tx| c.take(tx)).unwrap(), 0);
        assert_eq!(c.next(&e).unwrap(), Some(1));
    }
}

#[test]
fn a_batch_keeps_each_transaction_whole_and_shows_its_writes_when_done() {
    let dir = tempfile::tempdir().unwrap();
    for kind in KINDS {
        let e = Arc::new(open(&dir.path().join(kind.as_str()), kind));
        let mut seen_inside = None;
        let mut seen_elsewhere = None;
        e.batch(&mut || {
            e.put(A, b"1", b"one").unwrap();
            let failed = e.update(|tx| {
                tx.insert(A, b"2", b"two")?;
                Err::<(), _>(StoreError::corrupt("test", "refused"))
            });
            assert!(failed.is_err());
            e.update(|tx| {
                // A transaction sees the batch's earlier writes.
                let one = tx.get(A, b"1")?.unwrap();
                tx.insert(B, b"copy", &one)
            })
            .unwrap();
            seen_inside = Some(e.range(A, &[], None, 10, false).unwrap().len());
            let other = e.clone();
            seen_elsewhere = Some(
                std::thread::spawn(move || other.get(A, b"1").unwrap())
                    .join()
                    .unwrap(),
            );
            e.flush().unwrap();
            e.put(A, b"3", b"three").unwrap();
        })
        .unwrap();
        assert_eq!(seen_inside, Some(1), "the failed transaction left nothing");
        // redb holds a batch's writes back from other threads until it ends; sled commits
        // each transaction by itself.
        let expected = (kind == EngineKind::Sled).then(|| b"one".to_vec());
        assert_eq!(seen_elsewhere, Some(expected));
        let stored: Vec<Vec<u8>> = e
            .range(A, &[], None, 10, false)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(stored, [b"1".to_vec(), b"3".to_vec()]);
        assert_eq!(e.get(B, b"copy").unwrap().as_deref(), Some(&b"one"[..]));
    }
}

#[test]
fn a_store_keeps_its_engine_and_copies_itself() {
    let dir = tempfile::tempdir().unwrap();
    for kind in KINDS {
        let path = dir.path().join(kind.as_str());
        {
            let e = open(&path, kind);
            e.put(A, b"x", b"1").unwrap();
            e.flush().unwrap();
            let copy = dir.path().join(format!("{}-copy", kind.as_str()));
            assert_eq!(e.copy_to(&copy).unwrap().0.records, 1);
            let copied = Db::open_found(&copy, TABLES, 8 << 20).unwrap().unwrap();
            assert_eq!(copied.get(A, b"x").unwrap().as_deref(), Some(&b"1"[..]));
        }
        assert_eq!(EngineKind::detect(&path), Some(kind));
        let err = Db::open(&path, Some(kind.other()), TABLES, 8 << 20)
            .err()
            .unwrap();
        assert!(
            matches!(err, StoreError::OtherEngine { found, configured, .. } if found == kind && configured == kind.other())
        );
        assert!(err.to_string().contains("store migrate"), "{err}");
        // Unset: the engine found.
        let reopened = Db::open(&path, None, TABLES, 8 << 20).unwrap();
        assert_eq!(reopened.kind(), kind);
        assert_eq!(reopened.get(A, b"x").unwrap().as_deref(), Some(&b"1"[..]));
    }
    assert!(
        Db::open_found(&dir.path().join("none"), TABLES, 8 << 20)
            .unwrap()
            .is_none()
    );
    // A new store without a setting is on redb.
    let new = Db::open(&dir.path().join("new"), None, TABLES, 8 << 20).unwrap();
    assert_eq!(new.kind(), EngineKind::Redb);
}

#[test]
fn migrate_copies_every_table_and_payload_to_the_other_engine_and_back() {
    let dir = tempfile::tempdir().unwrap();
    for kind in KINDS {
        let from = dir.path().join(format!("{kind}-from"));
        let placed;
        {
            let e = open(&from, kind);
            e.update(|tx| {
                for i in 0..3000u32 {
                    tx.insert(A, &i.to_be_bytes(), &i.to_le_bytes())?;
                }
                tx.insert(B, b"k", b"v")
            })
            .unwrap();
            placed = e.append_payload(b"a payload in a segment").unwrap();
            e.flush().unwrap();
        }
        let to = dir.path().join(format!("{kind}-to"));
        let migrated = migrate(&from, &to, kind.other(), TABLES).unwrap();
        assert_eq!(migrated.records, 3001);
        assert_eq!(migrated.to, kind.other());
        let moved = Db::open(&to, None, TABLES, 8 << 20).unwrap();
        assert_eq!(moved.kind(), kind.other());
        assert_eq!(moved.len(A).unwrap(), 3000);
        assert_eq!(
            moved.get(A, &2999u32.to_be_bytes()).unwrap(),
            Some(2999u32.to_le_bytes().to_vec())
        );
        let len = b"a payload in a segment".len();
        assert_eq!(
            moved
                .segments()
                .read(placed.at, 0, len, &placed.checksums)
                .unwrap(),
            b"a payload in a segment"
        );
        drop(moved);
        // The old store is untouched, and a target that holds anything is refused.
        assert_eq!(EngineKind::detect(&from), Some(kind));
        assert!(matches!(
            migrate(&from, &to, kind.other(), TABLES),
            Err(StoreError::NotEmpty(_))
        ));
        // And back.
        let back = dir.path().join(format!("{kind}-back"));
        migrate(&to, &back, kind, TABLES).unwrap();
        let back = Db::open(&back, Some(kind), TABLES, 8 << 20).unwrap();
        assert_eq!(back.get(B, b"k").unwrap().as_deref(), Some(&b"v"[..]));
    }
}
