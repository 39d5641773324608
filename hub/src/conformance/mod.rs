//! The conformance kit: proof that a candidate participant (Caravan's spoke or another
//! implementation of docs/protocol.md) keeps the protocol's rules before its corridors open.
//!
//! The kit runs a **stand-in hub** ([`standin`], in the hub's wiring): the hub's own code on its own listener, with
//! its own store, log, receipt key and trust-list anchor, all kept in the kit's folder (by
//! default `<data_dir>/conformance`). Production spokes pin the hub's anchor, not the kit's, so
//! nothing the stand-in signs can reach them. The candidate points a test instance of its
//! spoke at the stand-in (its own TLS certificate, the kit's anchor public key) and the kit,
//! as the conformance identity `ZZ`, drives it through the scripted [`cases`]: valid documents
//! of each type, tampered ones, forged signatures and receipts, a redelivery, a supersession,
//! a delivery cut midway, a new key, a rolled-back and a stale trust list, and the candidate's
//! own documents judged by the document rules ([`documents`]). The result is a [`report`],
//! which the hub records, signs and keeps.
//!
//! The hub never reads payloads; the kit does, as any recipient would, and it runs in its own
//! process (`caravan-hub conformance run`), never inside a serving hub.

pub mod cases;
pub mod documents;

/// The report, which the onboarding rules judge (kept there, beside them).
pub use crate::onboarding::report;
/// The stand-in hub's script, part of the hub's wiring (`server::run_with`).
pub use crate::server::standin::{self, StandIn};
pub use cases::IDENTITY;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use tokio::net::TcpListener;

use caravan_common::{
    DocumentType, ParticipantId, Timestamp,
    signing::{KeyError, SigningKey},
};
use caravan_proto::v1;

use crate::{Config, server::RunError};
use report::{FORMAT, Outcome, Report};

/// What a run covers and how long it waits.
pub struct Options {
    /// The document types the candidate exchanges: each is sent to it.
    pub types: BTreeSet<DocumentType>,
    /// The types it issues (a subset of `types`): it must send one of each.
    pub sends: BTreeSet<DocumentType>,
    /// For the candidate to connect to the stand-in.
    pub connect_timeout: Duration,
    /// For each answer of the candidate.
    pub case_timeout: Duration,
    /// For the candidate's own documents, all types together.
    pub send_timeout: Duration,
}

/// Why a run could not be made (a run that was made gives a report, passed or not).
#[derive(Debug, thiserror::Error)]
pub enum KitError {
    #[error("the kit's key file {path}")]
    Key {
        path: String,
        #[source]
        source: KeyError,
    },
    #[error("cannot write {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{0} is not registered at the hub: register it and its signing keys first (`caravan-hub admin participant add`, `admin key register`)"
    )]
    NotRegistered(ParticipantId),
    #[error("{0} has no document-signing key registered at the hub")]
    NoKeys(ParticipantId),
    #[error("the stand-in hub did not start")]
    StandIn(#[source] RunError),
    #[error("the stand-in hub stopped: {0}")]
    StandInStopped(String),
    #[error("the stand-in hub's trust list could not be prepared: {0}")]
    Prepare(String),
}

/// The kit's keys, kept in its folder so that a candidate's test spoke keeps trusting the same
/// anchor from one run to the next.
pub struct KitKeys {
    /// Signs the stand-in's trust lists; candidates pin its public key (`anchor.pub`).
    pub anchor: SigningKey,
    /// Signs the stand-in's receipts and tree heads.
    pub receipt: SigningKey,
    /// The conformance identity's document-signing key.
    pub identity: SigningKey,
}

impl KitKeys {
    /// Read the keys in `dir`, making (0600) those missing; write `anchor.pub`.
    pub fn open_or_create(dir: &Path) -> Result<Self, KitError> {
        std::fs::create_dir_all(dir).map_err(|source| KitError::Write {
            path: dir.display().to_string(),
            source,
        })?;
        let key = |name: &str| -> Result<SigningKey, KitError> {
            let path = dir.join(name);
            let err = |source| KitError::Key {
                path: path.display().to_string(),
                source,
            };
            if path.exists() {
                SigningKey::load(&path).map_err(err)
            } else {
                let key = SigningKey::generate();
                key.save(&path).map_err(err)?;
                Ok(key)
            }
        };
        let keys = Self {
            anchor: key("anchor.key")?,
            receipt: key("receipt.key")?,
            identity: key("identity.key")?,
        };
        let public = anchor_public_path(dir);
        std::fs::write(&public, format!("{}\n", keys.anchor.public().to_base64())).map_err(
            |source| KitError::Write {
                path: public.display().to_string(),
                source,
            },
        )?;
        Ok(keys)
    }
}

/// The kit's folder for a hub: `<data_dir>/conformance`.
pub fn default_dir(config: &Config) -> PathBuf {
    config.data_dir.join("conformance")
}

/// Where the kit's anchor public key is written: what a candidate's test spoke pins.
pub fn anchor_public_path(dir: &Path) -> PathBuf {
    dir.join("anchor.pub")
}

/// The stand-in's data folder (its store, and the `listening.json` with its address).
pub fn stand_in_dir(dir: &Path) -> PathBuf {
    dir.join("standin")
}

/// Run the kit against `candidate` as the hub's trust list `registry` (verified by the caller)
/// records it: serve the stand-in on `listener`, play every case, and stop the stand-in.
/// `progress` hears each step and each case's result as it is known.
pub async fn run(
    hub: Config,
    dir: &Path,
    listener: TcpListener,
    registry: &v1::TrustList,
    candidate: ParticipantId,
    options: Options,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Report, KitError> {
    let started = Timestamp::now();
    let keys = KitKeys::open_or_create(dir)?;
    let entry = registry
        .participants
        .iter()
        .find(|p| p.id == candidate.as_str())
        .cloned()
        .ok_or(KitError::NotRegistered(candidate))?;
    let candidate_keys: Vec<v1::TrustedKey> = registry
        .keys
        .iter()
        .filter(|k| k.participant == candidate.as_str())
        .cloned()
        .collect();
    if candidate_keys.is_empty() {
        return Err(KitError::NoKeys(candidate));
    }
    let data_dir = stand_in_dir(dir);
    let config = Config {
        listen: listener.local_addr().unwrap_or(hub.listen),
        backup_dir: data_dir.join("backups"),
        data_dir,
        receipt_key: keys.receipt.clone(),
        anchor_key: keys.anchor.clone(),
        metrics_listen: None,
        dashboard_listen: None,
        ..hub
    };
    let kit = StandIn::new(candidate);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(crate::server::run_with(
        config,
        listener,
        async move {
            let _ = stopped.await;
        },
        Some(kit.clone()),
    ));
    let parts = tokio::select! {
        parts = kit.wait_for(Duration::from_secs(60), |k| k.parts()) => parts,
        ended = &mut server => return Err(match ended {
            Ok(Err(e)) => KitError::StandIn(e),
            Ok(Ok(())) => KitError::StandInStopped("it ended before it served".to_owned()),
            Err(e) => KitError::StandInStopped(e.to_string()),
        }),
    };
    let Some((exchange, registry)) = parts else {
        return Err(KitError::StandInStopped(
            "it did not open its store within 60 s".to_owned(),
        ));
    };
    let prepared = prepare(
        &registry,
        &keys.identity,
        entry,
        candidate_keys,
        &options.types,
    )
    .await
    .map_err(KitError::Prepare)?;
    let received = Arc::new(cases::Received::default());
    let receiver = tokio::spawn(cases::receive(
        exchange.clone(),
        registry.clone(),
        keys.identity.clone(),
        received.clone(),
    ));
    kit.forge_next_receipt();
    let mut run = cases::Run {
        kit: kit.clone(),
        exchange,
        registry,
        key: keys.identity.clone(),
        options: &options,
        label: started.as_millis().to_string(),
        prepared,
        numbered: 0,
        cases: Vec::new(),
        progress,
    };
    if run.connect().await {
        run.receiving().await;
        run.sending(&received).await;
    } else {
        run.not_run();
    }
    let cases = run.cases;
    receiver.abort();
    let _ = stop.send(());
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => progress(&format!("the stand-in hub stopped with an error: {e:#}")),
        Err(e) => progress(&format!("the stand-in hub stopped with an error: {e}")),
    }
    let passed = cases.iter().all(|c| c.outcome == Outcome::Pass);
    Ok(Report {
        format: FORMAT.to_owned(),
        participant: candidate,
        conformance_identity: IDENTITY,
        document_types: options.types.clone(),
        sends: options.sends.clone(),
        started_at_ms: started.as_millis(),
        finished_at_ms: Timestamp::now().as_millis(),
        kit_version: env!("CARGO_PKG_VERSION").to_owned(),
        passed,
        cases,
    })
}

/// Make the stand-in's trust list the run's: the conformance identity and its key, the
/// candidate as the hub records it (name, country, authorities, keys), and corridors both ways
/// for the run's types. Whatever earlier runs left is replaced. The list's version.
async fn prepare(
    registry: &crate::registry::Registry,
    identity: &SigningKey,
    candidate: v1::TrustedParticipant,
    candidate_keys: Vec<v1::TrustedKey>,
    types: &BTreeSet<DocumentType>,
) -> Result<u64, String> {
    let zz = IDENTITY.to_string();
    let id = candidate.id.clone();
    let identity_key = v1::TrustedKey {
        key_id: identity.key_id().to_string(),
        participant: zz.clone(),
        public_key: identity.public().raw().to_vec(),
        document_types: DocumentType::ALL.iter().map(|t| t.to_string()).collect(),
        ..Default::default()
    };
    let corridors: Vec<v1::Corridor> = types
        .iter()
        .flat_map(|t| {
            [(zz.clone(), id.clone()), (id.clone(), zz.clone())].map(|(sender, recipient)| {
                v1::Corridor {
                    sender,
                    recipient,
                    document_type: t.to_string(),
                    state: v1::CorridorState::Open as i32,
                }
            })
        })
        .collect();
    registry
        .change(
            "conformance-kit",
            format!("prepared for a conformance run of {id}"),
            move |list, _| {
                list.participants.clear();
                list.participants.push(v1::TrustedParticipant {
                    id: zz,
                    name: "Caravan conformance kit".to_owned(),
                    status: v1::ParticipantStatus::Active as i32,
                    ..Default::default()
                });
                list.participants.push(v1::TrustedParticipant {
                    status: v1::ParticipantStatus::Active as i32,
                    ..candidate
                });
                list.keys = vec![identity_key];
                list.keys.extend(candidate_keys);
                list.corridors = corridors;
                Ok(())
            },
        )
        .await
        .map_err(|e| e.to_string())
}
