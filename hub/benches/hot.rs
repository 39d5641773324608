//! Micro-benchmarks of the hub's hot pieces, one document at a time: sealing and opening an
//! envelope (what a sender and the hub do), the store's commit of an accepted document (with
//! and without its flush), appending to the exchange log's Merkle tree, and an inclusion proof.
//! `cargo bench -p caravan-hub`; the end-to-end figures come from `caravan-bench`.

use std::{collections::HashMap, hint::black_box};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

use caravan_common::store::EngineKind;
use caravan_common::{
    DocumentType, MessageId, ParticipantId, Timestamp,
    envelope::Header,
    merkle::{self, Hash, Nodes},
    signing::{SigningKey, sha256},
    trust::{Participant, ParticipantStatus, SigningKeyEntry, TrustSet},
};
use caravan_hub::store::{Backend, Embedded, Incoming};
use caravan_proto::envelope;

fn pid(s: &str) -> ParticipantId {
    s.parse().unwrap()
}

fn header(key: &SigningKey, payload: &[u8]) -> Header {
    Header {
        message_id: MessageId::generate(),
        sender: pid("KZ"),
        recipient: pid("CN"),
        document_type: DocumentType::CertificateOfOrigin,
        document_id: "KZ-CO-1".into(),
        content_type: "application/xml".into(),
        payload_sha256: sha256(payload),
        payload_length: payload.len() as u64,
        created_at: Timestamp::now(),
        key_id: key.key_id(),
        supersedes: None,
        in_reply_to: None,
    }
}

fn trust(key: &SigningKey) -> TrustSet {
    let participant = |id: &str| Participant {
        id: pid(id),
        name: id.into(),
        contact: String::new(),
        status: ParticipantStatus::Active,
        country: None,
        issuing_authorities: Vec::new(),
        stage: caravan_common::trust::ParticipantStage::Production,
    };
    TrustSet::new(
        Default::default(),
        [participant("KZ"), participant("CN")],
        [SigningKeyEntry {
            participant: pid("KZ"),
            public_key: key.public().clone(),
            document_types: vec![DocumentType::CertificateOfOrigin],
            not_before: None,
            not_after: None,
            revoked: None,
        }],
        [],
        [],
    )
    .unwrap()
}

fn envelopes(c: &mut Criterion) {
    let key = SigningKey::generate();
    let trust = trust(&key);
    let payload = vec![b'x'; 4096];
    c.bench_function("envelope/seal 4 KiB", |b| {
        b.iter(|| envelope::seal(&header(&key, &payload), payload.clone(), &key))
    });
    let sealed = envelope::seal(&header(&key, &payload), payload.clone(), &key);
    c.bench_function(
        "envelope/open 4 KiB (signature, header, payload hash)",
        |b| {
            b.iter(|| {
                envelope::open(
                    black_box(&sealed),
                    &trust,
                    Some(pid("KZ")),
                    Timestamp::now(),
                )
                .unwrap()
            })
        },
    );
}

fn incoming(payload: &[u8]) -> Incoming {
    Incoming {
        sender: pid("KZ"),
        message_id: MessageId::generate(),
        recipient: pid("CN"),
        document_type: DocumentType::CertificateOfOrigin,
        header_sha256: sha256(payload),
        header: vec![7; 200],
        key_id: "0123456789abcdef".into(),
        signature: vec![1; 64],
        payload: payload.to_vec(),
        accepted_at: Timestamp::now(),
    }
}

fn store(c: &mut Criterion) {
    for engine in [EngineKind::Sled, EngineKind::Redb] {
        let dir = tempfile::tempdir().unwrap();
        let store = Embedded::open(dir.path(), Some(engine), 64 << 20).unwrap();
        let payload = vec![b'x'; 4096];
        let receipt = vec![9u8; 180];
        let name = |what: &str| format!("store/{}/{what}", engine.as_str());
        c.bench_function(&name("accept 4 KiB (one transaction, no flush)"), |b| {
            b.iter_batched(
                || incoming(&payload),
                |m| store.accept(&m, &|_| receipt.clone()).unwrap(),
                BatchSize::SmallInput,
            )
        });
        c.bench_function(&name("accept 4 KiB + flush (a flush per document)"), |b| {
            b.iter_batched(
                || incoming(&payload),
                |m| {
                    store.accept(&m, &|_| receipt.clone()).unwrap();
                    store.flush().unwrap();
                },
                BatchSize::SmallInput,
            )
        });
        c.bench_function(
            &name("64 accepts of 4 KiB in one batch + one flush (the writer thread)"),
            |b| {
                b.iter_batched(
                    || (0..64).map(|_| incoming(&payload)).collect::<Vec<_>>(),
                    |batch| {
                        store
                            .batch(&mut || {
                                for m in &batch {
                                    store.accept(m, &|_| receipt.clone()).unwrap();
                                }
                                store.flush().unwrap();
                            })
                            .unwrap();
                    },
                    BatchSize::SmallInput,
                )
            },
        );
        c.bench_function(
            &name("64 accepts of 4 KiB + one flush (group commit)"),
            |b| {
                b.iter_batched(
                    || (0..64).map(|_| incoming(&payload)).collect::<Vec<_>>(),
                    |batch| {
                        for m in &batch {
                            store.accept(m, &|_| receipt.clone()).unwrap();
                        }
                        store.flush().unwrap();
                    },
                    BatchSize::SmallInput,
                )
            },
        );
    }
}

/// A Merkle tree held in memory, as the hub's node cache holds it.
#[derive(Default)]
struct Tree(HashMap<(u32, u64), Hash>, u64);

impl Tree {
    fn append(&mut self, entry: &[u8]) {
        let nodes = merkle::appended_nodes(self.1, merkle::leaf_hash(entry), |l, i| {
            Ok::<_, ()>(self.0[&(l, i)])
        })
        .unwrap();
        for (l, i, h) in nodes {
            self.0.insert((l, i), h);
        }
        self.1 += 1;
    }
}

impl Nodes for Tree {
    type Error = ();
    fn perfect(&self, level: u32, index: u64) -> Result<Hash, ()> {
        self.0.get(&(level, index)).copied().ok_or(())
    }
}

fn log(c: &mut Criterion) {
    let mut tree = Tree::default();
    let entry = vec![5u8; 160];
    for _ in 0..1_000_000 {
        tree.append(&entry);
    }
    c.bench_function("log/append an entry (leaf and completed nodes)", |b| {
        b.iter(|| tree.append(black_box(&entry)))
    });
    let size = tree.1;
    c.bench_function("log/inclusion proof in a 1M-entry tree", |b| {
        b.iter(|| merkle::inclusion_path(&tree, black_box(size - 17), size).unwrap())
    });
    c.bench_function("log/root of a 1M-entry tree", |b| {
        b.iter(|| merkle::root_of(&tree, black_box(size)).unwrap())
    });
}

criterion_group!(benches, envelopes, store, log);
criterion_main!(benches);
