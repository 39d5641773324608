//! What a Readiness Scorecard report costs the hub: reading what it measures of every message
//! of the last twelve months from a redb store (`Backend::exchange_facts`), alone and counted
//! into a whole report. `cargo bench -p caravan-hub --bench scorecard`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

use caravan_common::{
    CountryCode, DocumentType, MessageId, ParticipantId, Timestamp,
    signing::sha256,
    store::EngineKind,
    trust::{CorridorState, Participant, ParticipantStage, ParticipantStatus, TrustSet},
};
use caravan_hub::{
    scorecard::{
        Framework,
        measured::State,
        report::{self, Inputs},
    },
    store::{AckUpdate, Backend, Embedded, Incoming, MessageState},
};

/// Messages in the store: a busy year for a few corridors.
const MESSAGES: usize = 100_000;

fn pid(s: &str) -> ParticipantId {
    s.parse().unwrap()
}

fn trust() -> TrustSet {
    let participant = |id: &str| Participant {
        id: pid(id),
        name: id.into(),
        contact: String::new(),
        status: ParticipantStatus::Active,
        country: Some(CountryCode::assigned(id).unwrap()),
        issuing_authorities: Vec::new(),
        stage: ParticipantStage::Production,
    };
    TrustSet::new(
        Default::default(),
        ["KZ", "CN", "UZ"].map(participant),
        [],
        [],
        [(
            (pid("KZ"), pid("CN"), DocumentType::CertificateOfOrigin),
            CorridorState::Open,
        )],
    )
    .unwrap()
}

fn scorecard(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Embedded::open(dir.path(), Some(EngineKind::Redb), 64 << 20).unwrap();
    let payload = vec![b'x'; 512];
    let (from, to) = (pid("KZ"), pid("CN"));
    let start = Timestamp::now().as_millis() - 300 * 86_400_000;
    for i in 0..MESSAGES {
        let m = Incoming {
            sender: from,
            message_id: MessageId::generate(),
            recipient: to,
            document_type: DocumentType::CertificateOfOrigin,
            header_sha256: sha256(&(i as u64).to_be_bytes()),
            header: vec![7; 200],
            key_id: "0123456789abcdef".into(),
            signature: vec![1; 64],
            payload: payload.clone(),
            accepted_at: Timestamp::from_millis(start + i as i64 * 250_000),
        };
        let accepted = store.accept(&m, &|_| vec![9; 180]).unwrap();
        let caravan_hub::store::Acceptance::Accepted { sequence, .. } = accepted else {
            unreachable!()
        };
        store
            .mark_delivered(
                sequence,
                Timestamp::from_millis(m.accepted_at.as_millis() + 900),
            )
            .unwrap();
        store
            .acknowledge(&AckUpdate {
                recipient: to,
                sender: from,
                message_id: m.message_id,
                header_sha256: m.header_sha256,
                state: MessageState::Acknowledged,
                ack: vec![3; 150],
                at: Timestamp::from_millis(m.accepted_at.as_millis() + 2000),
            })
            .unwrap();
    }
    store.flush().unwrap();
    let trust = trust();
    let framework = Framework::carec();
    let state = || State {
        trust: &trust,
        certificates: &[],
        reports: &[],
        now: Timestamp::now(),
    };
    let since = report::Exchange::new(&state(), 0).since();
    let mut group = c.benchmark_group("scorecard");
    group.sample_size(10);
    group.bench_function("exchange_facts of 100k messages (redb)", |b| {
        b.iter(|| {
            let mut n = 0;
            store.exchange_facts(since, &mut |_| n += 1).unwrap();
            black_box(n)
        })
    });
    group.bench_function("report of 100k messages, read and counted (redb)", |b| {
        b.iter(|| {
            let mut exchange = report::Exchange::new(&state(), 0);
            store
                .exchange_facts(since, &mut |f| exchange.add(&f, &trust))
                .unwrap();
            black_box(report::build(&Inputs {
                framework: &framework,
                entries: &[],
                exchange: &exchange,
                state: state(),
            }))
        })
    });
    group.finish();
}

criterion_group!(benches, scorecard);
criterion_main!(benches);
