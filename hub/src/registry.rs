//! The registry: participants, their document-signing keys, corridors, the hub's receipt keys
//! and revoked TLS certificates, as operators manage them while the hub runs.
//!
//! The registry *is* the trust list: every change edits the current `caravan.v1.TrustList`,
//! bumps its version, signs it with the anchor key, and opens the signed list again with the
//! same code spokes use, so that the hub judges by exactly what it publishes. The new list,
//! with an exchange-log entry naming who made the change, is committed in one store
//! transaction and flushed before it takes effect; then every handler, delivery stream and
//! trust-list watcher sees it at once through a `watch` channel.

use std::{
    collections::{BTreeMap, HashSet},
    sync::Arc,
    time::Duration,
};

use prost::Message;
use tokio::sync::{Mutex, watch};
use tracing::info;

use caravan_common::{
    ParticipantId, Refusal, RefusalCode, Timestamp,
    signing::{PublicKey, SigningKey, sha256},
    trust::TrustSet,
};
use caravan_proto::{trust_list, v1};

use crate::{
    commit::GroupCommit,
    error::HubError,
    identity::{Caller, Peer},
    store::{
        Backend, CertificateRecord, ConformanceRecord, LogEntry, LogKind, RegistryRecord,
        RevokedCertificate, ScorecardRecord, Store, StoreError, TreeHead,
    },
};

/// How a change is logged: who made it and what it did, for people. The edit that makes the
/// change says it, since only it knows what it found (an onboarding rule it overrode).
#[derive(Debug, Clone)]
pub struct Logged {
    /// `operator:<name>`, `operator:<name> (override)` or `hub`.
    pub actor: String,
    pub detail: String,
}

/// Why the registry could not be opened. A store that cannot be read is told apart from a
/// trust list that does not hold: the first is the disk's or the store's fault (restore or
/// repair the store), the second the list's or the configuration's.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The store failed to give the registry back: an I/O error, a faulted store, or a stored
    /// record that does not decode.
    #[error("could not read the registry from the store")]
    Read(#[source] StoreError),
    /// The stored list was signed by another anchor than the configured one.
    #[error(
        "the registry's trust list is signed by anchor key {stored}, but anchor_key is {configured}; spokes pin the anchor, so it cannot change silently"
    )]
    AnchorChanged { stored: String, configured: String },
    /// The stored list does not open with the configured anchor.
    #[error("the stored trust list is invalid: {0}")]
    Invalid(Refusal),
    /// The list re-issued at start could not be stored.
    #[error("could not store the registry's new trust list")]
    Write(#[source] StoreError),
    /// The change made at start was refused (the list it would make does not hold).
    #[error("the registry's change at start was refused: {0}")]
    Refused(Refusal),
    /// No room to make the change at start.
    #[error("the registry's change at start could not be made: {0}")]
    Busy(String),
}

impl From<HubError> for RegistryError {
    fn from(e: HubError) -> Self {
        match e {
            HubError::Refused(r) => Self::Refused(r),
            HubError::Store(e) => Self::Write(e),
            HubError::Busy(why) => Self::Busy(why),
        }
    }
}

/// What every handler reads: the registry in force.
#[derive(Debug)]
pub struct Snapshot {
    /// The rules, as any verifier would build them from `signed`.
    pub trust: TrustSet,
    /// The decoded list (for editing and listing).
    pub list: v1::TrustList,
    pub signed: v1::SignedTrustList,
    /// Revoked TLS client certificates, by serial.
    pub revoked_certificates: BTreeMap<String, RevokedCertificate>,
}

impl Snapshot {
    /// The registry in `record` as stored (`None`: a new hub's, empty, version 0, never
    /// published), its trust list opened with the `anchor` key as a spoke would.
    pub fn open(
        record: Option<RegistryRecord>,
        anchor: &SigningKey,
    ) -> Result<Self, RegistryError> {
        let Some(record) = record else {
            // Version 0 is never published: the first change makes version 1.
            let list = v1::TrustList {
                anchor_key_id: anchor.key_id().to_string(),
                ..Default::default()
            };
            return Ok(Snapshot {
                trust: TrustSet::default(),
                signed: trust_list::sign(&list, anchor),
                list,
                revoked_certificates: BTreeMap::new(),
            });
        };
        let signed =
            v1::SignedTrustList::decode(record.signed_trust_list.as_slice()).map_err(|e| {
                RegistryError::Read(StoreError::Corrupt {
                    what: "registry",
                    detail: e.to_string(),
                })
            })?;
        let stored_anchor = signed
            .signature
            .as_ref()
            .map(|s| s.key_id.clone())
            .unwrap_or_default();
        if stored_anchor != anchor.key_id().to_string() {
            return Err(RegistryError::AnchorChanged {
                stored: stored_anchor,
                configured: anchor.key_id().to_string(),
            });
        }
        let (list, trust) =
            trust_list::open(&signed, anchor.public()).map_err(RegistryError::Invalid)?;
        Ok(Snapshot {
            trust,
            list,
            signed,
            revoked_certificates: record
                .revoked_certificates
                .into_iter()
                .map(|c| (c.serial.clone(), c))
                .collect(),
        })
    }

    /// Authorise a participant (a spoke): its certificate is not revoked, and it is registered and
    /// active. Operators are refused: they administer, they do not exchange.
    pub fn authorize_participant(&self, peer: Option<&Peer>) -> Result<ParticipantId, Refusal> {
        let peer = self.check_certificate(peer)?;
        match &peer.caller {
            Caller::Participant(p) => self.trust.check_active(*p, "caller").map(|_| *p),
            Caller::Operator(op) => Err(Refusal::new(
                RefusalCode::WrongRole,
                format!("operator {op} may not use this service; it is for participants"),
            )),
        }
    }

    /// Authorise an operator: a certificate with the operator role that is not revoked.
    pub fn authorize_operator(&self, peer: Option<&Peer>) -> Result<String, Refusal> {
        let peer = self.check_certificate(peer)?;
        match &peer.caller {
            Caller::Operator(op) => Ok(op.clone()),
            Caller::Participant(p) => Err(Refusal::new(
                RefusalCode::WrongRole,
                format!(
                    "participant {p} may not use the admin service; it needs an operator certificate"
                ),
            )),
        }
    }

    /// Authorise anyone with a Caravan certificate that is not revoked (the trust list is for all).
    pub fn authorize_any<'p>(&self, peer: Option<&'p Peer>) -> Result<&'p Peer, Refusal> {
        self.check_certificate(peer)
    }

    fn check_certificate<'p>(&self, peer: Option<&'p Peer>) -> Result<&'p Peer, Refusal> {
        let peer = peer.ok_or_else(|| {
            Refusal::new(
                RefusalCode::NoClientIdentity,
                "the client certificate carries no Caravan identity",
            )
        })?;
        if let Some(revoked) = self.revoked_certificates.get(&peer.serial) {
            return Err(Refusal::new(
                RefusalCode::CertificateRevoked,
                format!(
                    "certificate {} was revoked ({})",
                    peer.serial, revoked.reason
                ),
            ));
        }
        Ok(peer)
    }
}

/// The registry handle.
pub struct Registry {
    store: Store,
    commit: GroupCommit,
    anchor: SigningKey,
    validity: Duration,
    current: watch::Sender<Arc<Snapshot>>,
    /// Changes are made one at a time: each builds on the version before it.
    writer: Mutex<()>,
    /// Serials of the client certificates already recorded. A `std` mutex: held only to test
    /// and insert, never across an await.
    seen_certificates: std::sync::Mutex<HashSet<String>>,
}

impl Registry {
    /// Load the registry, or create an empty one; make sure the configured receipt key is in it.
    pub async fn open(
        store: Store,
        commit: GroupCommit,
        anchor: SigningKey,
        receipt_key: &PublicKey,
        validity: Duration,
    ) -> Result<Self, RegistryError> {
        let record = store
            .run(|b| b.registry())
            .await
            .map_err(RegistryError::Read)?;
        let snapshot = Snapshot::open(record, &anchor)?;
        // After a restore, the list must move beyond the version the replaced store had
        // published: spokes refuse a list older than the one they hold.
        let floor = store
            .run(|b| b.registry_version_floor())
            .await
            .map_err(RegistryError::Read)?;
        let mut snapshot = snapshot;
        let restored = floor > 0 && snapshot.list.version <= floor;
        if restored {
            snapshot.list.version = floor;
        }
        let seen = store
            .run(|b| b.certificates())
            .await
            .map_err(RegistryError::Read)?
            .into_iter()
            .map(|c| c.serial)
            .collect();
        let registry = Self {
            store,
            commit,
            anchor,
            validity,
            current: watch::channel(Arc::new(snapshot)).0,
            writer: Mutex::new(()),
            seen_certificates: std::sync::Mutex::new(seen),
        };
        if restored {
            registry
                .change(
                    "hub",
                    format!("re-issued after a restore from backup, beyond version {floor}"),
                    |_, _| Ok(()),
                )
                .await?;
        }
        let key_id = receipt_key.key_id().to_string();
        // Replicas starting together on a new database race to add the key: the one that
        // loses reads the winner's list (taken by `change`) and finds the key there.
        let mut attempts = 0;
        while !registry
            .snapshot()
            .list
            .hub_keys
            .iter()
            .any(|k| k.key_id == key_id)
        {
            let public_key = receipt_key.clone();
            let changed = registry
                .change(
                    "hub",
                    format!("hub receipt key {key_id} added"),
                    move |list, _| {
                        // The keys before it sign nothing more; their receipts stay verifiable.
                        let now = Timestamp::now().as_millis();
                        for previous in list.hub_keys.iter_mut().filter(|k| k.not_after_ms == 0) {
                            previous.not_after_ms = now;
                        }
                        list.hub_keys.push(v1::HubKey {
                            key_id: public_key.key_id().to_string(),
                            public_key: public_key.raw().to_vec(),
                            not_before_ms: now,
                            not_after_ms: 0,
                        });
                        Ok(())
                    },
                )
                .await;
            match changed {
                Err(HubError::Store(StoreError::Stale(_))) if attempts < 3 => attempts += 1,
                other => {
                    other?;
                }
            }
        }
        Ok(registry)
    }

    /// The registry in force.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.borrow().clone()
    }

    /// Record a caller's certificate the first time it is seen, for `cert list` and audits.
    pub fn note_certificate(&self, peer: &Peer) {
        let new = self
            .seen_certificates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(peer.serial.clone());
        if !new {
            return;
        }
        let record = CertificateRecord {
            serial: peer.serial.clone(),
            fingerprint: peer.fingerprint.clone(),
            subject: peer.caller.subject(),
            not_before_ms: peer.not_before_ms,
            not_after_ms: peer.not_after_ms,
            first_seen_ms: Timestamp::now().as_millis(),
        };
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.run(move |b| b.record_certificate(&record)).await {
                tracing::error!(cause = %e, "could not record a client certificate");
            }
        });
    }

    /// Every client certificate seen.
    pub async fn certificates(&self) -> Result<Vec<CertificateRecord>, StoreError> {
        self.store.run(|b| b.certificates()).await
    }

    /// Follow changes.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.current.subscribe()
    }

    /// Apply `edit` to a copy of the registry, publish it as the next trust-list version, and
    /// record the change by `actor` in the exchange log. Nothing changes if `edit` refuses.
    pub async fn change(
        &self,
        actor: &str,
        detail: String,
        edit: impl FnOnce(
            &mut v1::TrustList,
            &mut BTreeMap<String, RevokedCertificate>,
        ) -> Result<(), Refusal>,
    ) -> Result<u64, HubError> {
        self.change_valid_for(self.validity, actor, detail, edit)
            .await
    }

    /// [`Registry::change`], the new list fresh for `validity` instead of the configured
    /// life: the conformance kit's stand-in issues a list that is stale at once.
    pub(crate) async fn change_valid_for(
        &self,
        validity: Duration,
        actor: &str,
        detail: String,
        edit: impl FnOnce(
            &mut v1::TrustList,
            &mut BTreeMap<String, RevokedCertificate>,
        ) -> Result<(), Refusal>,
    ) -> Result<u64, HubError> {
        let actor = actor.to_owned();
        self.change_with(
            validity,
            |_| Ok(()),
            move |list, revoked, ()| {
                edit(list, revoked)?;
                Ok(Logged { actor, detail })
            },
        )
        .await
    }

    /// [`Self::change`] for an edit that judges by stored records too (the conformance
    /// reports): `read` runs first, under the same turn as the edit, so that no change or
    /// report recorded in between is missed; the edit says how the change is logged.
    pub async fn change_reading<R: Send + 'static>(
        &self,
        read: impl FnOnce(&dyn Backend) -> Result<R, StoreError> + Send + 'static,
        edit: impl FnOnce(
            &mut v1::TrustList,
            &mut BTreeMap<String, RevokedCertificate>,
            R,
        ) -> Result<Logged, Refusal>,
    ) -> Result<u64, HubError> {
        self.change_with(self.validity, read, edit).await
    }

    async fn change_with<R: Send + 'static>(
        &self,
        validity: Duration,
        read: impl FnOnce(&dyn Backend) -> Result<R, StoreError> + Send + 'static,
        edit: impl FnOnce(
            &mut v1::TrustList,
            &mut BTreeMap<String, RevokedCertificate>,
            R,
        ) -> Result<Logged, Refusal>,
    ) -> Result<u64, HubError> {
        let _writer = self.writer.lock().await;
        let read = self.store.run(read).await?;
        let current = self.snapshot();
        let mut list = current.list.clone();
        let mut revoked = current.revoked_certificates.clone();
        let Logged { actor, detail } = edit(&mut list, &mut revoked, read)?;
        let now = Timestamp::now();
        list.version = current.list.version + 1;
        list.issued_at_ms = now.as_millis();
        list.next_update_ms = now.as_millis().saturating_add(validity.as_millis() as i64);
        list.anchor_key_id = self.anchor.key_id().to_string();
        let signed = trust_list::sign(&list, &self.anchor);
        // Judge the new list as a spoke would; an edit that breaks it is refused whole.
        let (list, trust) = trust_list::open(&signed, self.anchor.public())
            .map_err(|r| HubError::refused(RefusalCode::MalformedRequest, r.detail))?;
        let record = RegistryRecord {
            signed_trust_list: signed.encode_to_vec(),
            revoked_certificates: revoked.values().cloned().collect(),
        };
        let entry = LogEntry {
            kind: LogKind::RegistryChange as i32,
            at_ms: now.as_millis(),
            evidence_sha256: sha256(&record.signed_trust_list).to_vec(),
            actor: actor.clone(),
            detail: detail.clone(),
            ..Default::default()
        };
        let saved = self
            .store
            .run(move |b| b.save_registry(&record, &entry))
            .await;
        if let Err(StoreError::Stale(what)) = saved {
            // Another replica changed the registry first: take its list, so that the caller's
            // retry builds on it.
            if let Err(e) = self.reload().await {
                tracing::error!(cause = %e, "could not read the registry again");
            }
            return Err(StoreError::Stale(what).into());
        }
        saved?;
        self.commit.wait().await?;
        let version = list.version;
        self.current.send_replace(Arc::new(Snapshot {
            trust,
            list,
            signed,
            revoked_certificates: revoked,
        }));
        info!(
            actor = actor.as_str(),
            version,
            detail = detail.as_str(),
            "registry changed; trust list issued"
        );
        Ok(version)
    }

    /// Record a conformance report with its exchange-log entry, through the write path, and
    /// answer once both are durable. Taken in turn with registry changes, so that a promotion
    /// judges by the newest report recorded before it. `make` builds the record and the entry
    /// from the report's id (see `Backend::record_conformance`).
    pub async fn record_conformance(
        &self,
        make: impl Fn(u64) -> (ConformanceRecord, LogEntry) + Send + 'static,
    ) -> Result<ConformanceRecord, HubError> {
        let _writer = self.writer.lock().await;
        let (record, _) = self
            .commit
            .write_durable(move |b| b.record_conformance(&make))
            .await?;
        info!(
            id = record.id,
            participant = %record.participant,
            passed = record.passed,
            actor = %record.recorded_by,
            "conformance report recorded"
        );
        Ok(record)
    }

    /// Record a Readiness Scorecard entry with its exchange-log entry, through the write path,
    /// and answer once both are durable, with the tree head that covers them. Taken in turn
    /// with registry changes: `prepare` judges the entry against the entries recorded so far
    /// (read in this turn, so that two closes of one round cannot both pass) and returns how
    /// to make the record from its id (see `Backend::record_scorecard`).
    pub async fn record_scorecard<M>(
        &self,
        prepare: impl FnOnce(&[ScorecardRecord]) -> Result<M, HubError>,
    ) -> Result<(ScorecardRecord, Arc<TreeHead>), HubError>
    where
        M: Fn(u64) -> (ScorecardRecord, LogEntry) + Send + 'static,
    {
        let _writer = self.writer.lock().await;
        let entries = self.store.run(|b| b.scorecard_entries()).await?;
        let make = prepare(&entries)?;
        let (record, head) = self
            .commit
            .write_durable(move |b| b.record_scorecard(&make))
            .await?;
        info!(
            id = record.id,
            log_index = record.log_index,
            actor = %record.recorded_by,
            "scorecard entry recorded"
        );
        Ok((record, head))
    }

    /// Re-issue the list (same content, next version) when half its life is gone, so that
    /// verifiers keep a fresh list while nothing changes. Runs until the sender side closes.
    /// Read the registry again, as another hub replica sharing the store left it: its list is
    /// taken if it is newer than the one held. Returns whether it was.
    pub async fn reload(&self) -> Result<bool, RegistryError> {
        let record = self
            .store
            .run(|b| b.registry())
            .await
            .map_err(RegistryError::Read)?;
        let snapshot = Snapshot::open(record, &self.anchor)?;
        let version = snapshot.list.version;
        let newer = self.current.send_if_modified(|current| {
            let newer = version > current.list.version;
            if newer {
                *current = Arc::new(snapshot);
            }
            newer
        });
        if newer {
            info!(
                version,
                "registry changed by another replica; trust list taken"
            );
        }
        Ok(newer)
    }

    pub async fn keep_fresh(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            let (issued, next_update) = {
                let list = &self.snapshot().list;
                (list.issued_at_ms, list.next_update_ms)
            };
            let due = reissue_due(issued, next_update, self.validity);
            let wait = u64::try_from(due - Timestamp::now().as_millis()).unwrap_or(0);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait.max(500))) => {}
                _ = stop.changed() => return,
            }
            if self.snapshot().list.issued_at_ms == issued {
                match self
                    .change("hub", "periodic re-issue".into(), |_, _| Ok(()))
                    .await
                {
                    Ok(_) => {}
                    // Another replica re-issued it first, and its list was taken.
                    Err(HubError::Store(StoreError::Stale(_))) => {}
                    Err(e) => tracing::error!(cause = %e, "could not re-issue the trust list"),
                }
            }
        }
    }
}

/// When a list issued at `issued` (ms) with its own `next_update` (ms) is re-issued: halfway
/// through its life, or through the configured `validity` if that is shorter. The list's own
/// time counts: a list issued under a shorter validity than configured now (the setting was
/// lowered, then raised) would otherwise go stale for the rest of the new validity.
fn reissue_due(issued: i64, next_update: i64, validity: Duration) -> i64 {
    let own_life = next_update.saturating_sub(issued).max(0);
    let life = own_life.min(validity.as_millis() as i64);
    issued.saturating_add(life / 2)
}

#[cfg(test)]
mod open_tests {
    use super::*;

    fn record(signed: &v1::SignedTrustList) -> RegistryRecord {
        RegistryRecord {
            signed_trust_list: signed.encode_to_vec(),
            revoked_certificates: Vec::new(),
        }
    }

    fn list(anchor: &SigningKey) -> v1::TrustList {
        v1::TrustList {
            version: 3,
            anchor_key_id: anchor.key_id().to_string(),
            ..Default::default()
        }
    }

    #[test]
    fn a_stored_registry_opens_with_its_anchor() {
        let anchor = SigningKey::generate();
        let signed = trust_list::sign(&list(&anchor), &anchor);
        let snapshot = Snapshot::open(Some(record(&signed)), &anchor).unwrap();
        assert_eq!(snapshot.list.version, 3);
        let empty = Snapshot::open(None, &anchor).unwrap();
        assert_eq!(empty.list.version, 0);
    }

    #[test]
    fn a_store_that_fails_is_not_an_invalid_trust_list() {
        let anchor = SigningKey::generate();
        // The store gives back bytes that do not decode: its fault, not the list's.
        let garbage = RegistryRecord {
            signed_trust_list: vec![0xff; 7],
            revoked_certificates: Vec::new(),
        };
        let e = Snapshot::open(Some(garbage), &anchor).unwrap_err();
        assert!(
            matches!(e, RegistryError::Read(StoreError::Corrupt { .. })),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(
            text.starts_with("could not read the registry from the store")
                && !text.contains("invalid"),
            "{text}"
        );
        assert!(
            std::error::Error::source(&e).is_some(),
            "the store's error is kept"
        );
        // A store that fails writing the list at start is a store failure too.
        let write = RegistryError::from(HubError::Store(StoreError::engine(
            std::io::Error::other("disk I/O error"),
        )));
        assert!(matches!(write, RegistryError::Write(_)), "{write:?}");
        assert!(!write.to_string().contains("invalid"), "{write}");
        assert!(std::error::Error::source(&write).is_some());
    }

    #[test]
    fn a_list_that_does_not_hold_is_invalid_and_another_anchor_is_refused() {
        let anchor = SigningKey::generate();
        let mut signed = trust_list::sign(&list(&anchor), &anchor);
        // Tampered after signing: decodes, names the anchor, fails the signature.
        let mut body = list(&anchor);
        body.version = 4;
        signed.body = body.encode_to_vec();
        let e = Snapshot::open(Some(record(&signed)), &anchor).unwrap_err();
        assert!(matches!(e, RegistryError::Invalid(_)), "{e:?}");
        let other = SigningKey::generate();
        let signed = trust_list::sign(&list(&other), &other);
        let e = Snapshot::open(Some(record(&signed)), &anchor).unwrap_err();
        assert!(matches!(e, RegistryError::AnchorChanged { .. }), "{e:?}");
    }
}

#[cfg(test)]
mod reissue_tests {
    use super::*;

    #[test]
    fn a_list_is_reissued_halfway_through_its_own_life_or_the_configured_one() {
        let day = Duration::from_secs(86_400);
        // Issued at 1,000 s for an hour, while the setting is a day now: due at 1,000 s + 30 min.
        assert_eq!(
            reissue_due(1_000_000, 1_000_000 + 3_600_000, day),
            1_000_000 + 1_800_000
        );
        // Issued for a day, the setting lowered to an hour: due in half an hour.
        assert_eq!(
            reissue_due(0, 86_400_000, Duration::from_secs(3_600)),
            1_800_000
        );
        // A list past its next update (or with none) is due at once.
        assert_eq!(reissue_due(5_000, 0, day), 5_000);
    }
}
