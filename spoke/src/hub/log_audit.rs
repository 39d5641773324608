//! The spoke's watch over the hub's exchange log.
//!
//! The hub answers every submission, acknowledgement and status change with an inclusion
//! proof of the log entry that records it, in a signed tree head (under protocol v2 that proof
//! is also the receipt of a submission and of each delivery: [`LogAudit::receipt`]). A proof that fails, or an
//! entry that records something else, is an alarm at once. The heads that passed are then
//! checked against each other: now and then the spoke asks the hub for consistency proofs from
//! each head it received (and the last one it verified) to the largest, so that a hub that
//! rewrites its history, or shows different histories to different countries, is caught. The
//! last verified head is kept in the spoke's store, so a hub restored from an older state is
//! caught across restarts too.
//!
//! An alarm is logged at ERROR, counted in the metrics and kept (with the signed heads as
//! evidence) in the store, where `caravan-spoke log` and the control API show it. It does not
//! stop the exchange: documents are still verified end to end on their own signatures; the
//! alarm is for the people who hold the hub to account. After an alarm the spoke checks later
//! heads against the newest one, so a rewrite raises one alarm rather than one per document.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use prost::Message;
use tokio::sync::{Notify, watch};
use tonic::transport::Channel;
use tracing::{debug, error};

use caravan_common::{
    MessageId, Refusal, RefusalCode, Timestamp,
    envelope::{Receipt, from_hex32},
    merkle,
    trust::TrustSet,
};
use caravan_proto::{
    log::{self as log_proof, Expected, TreeHead, VerifiedHeads},
    receipt,
    v1::{self, exchange_client::ExchangeClient},
};

use crate::{
    rt::blocking,
    store::{LogAlarm, LogHeadRecord, SpokeStore},
};

/// The most consistency proofs asked for at once (the hub's limit).
const MAX_PROOFS: usize = 1024;
/// Time between consistency checks while heads keep arriving.
const AUDIT_INTERVAL: Duration = Duration::from_secs(1);

/// A verified head, and its record with the signed form as evidence.
#[derive(Debug, Clone)]
struct Candidate {
    head: TreeHead,
    record: LogHeadRecord,
}

impl Candidate {
    fn new(head: TreeHead, signed: &v1::SignedTreeHead) -> Self {
        let record = LogHeadRecord {
            size: head.size,
            root: hex::encode(head.root),
            signed_at: head.timestamp,
            key_id: head.key_id.to_string(),
            signed: BASE64.encode(signed.encode_to_vec()),
        };
        Self { head, record }
    }
}

#[derive(Default)]
struct Heads {
    /// The last head verified consistent with everything seen before.
    last: Option<LogHeadRecord>,
    /// Heads received since, by size.
    pending: BTreeMap<u64, Candidate>,
}

pub struct LogAudit {
    store: Arc<SpokeStore>,
    heads: Mutex<Heads>,
    wake: Notify,
    /// Heads whose signature verified: each checked once.
    verified: VerifiedHeads,
}

fn root_of(record: &LogHeadRecord) -> Option<merkle::Hash> {
    from_hex32(&record.root)
}

impl LogAudit {
    pub fn new(store: Arc<SpokeStore>) -> Self {
        let last = store.log_head().unwrap_or_else(|e| {
            error!(cause = %e, "cannot read the last verified log head; starting afresh");
            None
        });
        Self {
            store,
            heads: Mutex::new(Heads {
                last,
                pending: BTreeMap::new(),
            }),
            wake: Notify::new(),
            verified: VerifiedHeads::default(),
        }
    }

    fn heads(&self) -> std::sync::MutexGuard<'_, Heads> {
        // Held briefly, never across an await; the data stays consistent if a holder panicked.
        self.heads.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The last verified head.
    pub fn last(&self) -> Option<LogHeadRecord> {
        self.heads().last.clone()
    }

    /// Check the log proof that came with an event; an alarm if it fails.
    pub async fn check(
        &self,
        proof: Option<&v1::LogProof>,
        expected: &Expected,
        trust: &TrustSet,
        event: &str,
    ) {
        let checked = proof
            .ok_or_else(|| {
                Refusal::new(
                    RefusalCode::BadLogProof,
                    format!("the hub's {event} came without a log proof"),
                )
            })
            .and_then(|p| {
                let signed = log_proof::signed_head(p)?;
                let head = self.verified.verify(signed, trust)?;
                log_proof::check_inclusion(p, &head, expected)?;
                Ok((head, signed))
            });
        match checked {
            Ok((head, signed)) => self.audit_later(head, signed),
            Err(refusal) => {
                self.alarm(refusal, Some(expected.message_id), Vec::new())
                    .await
            }
        }
    }

    /// The receipt a log proof stands for (protocol v2, [`receipt::from_proof`]): the head's
    /// signature checked once per head, and the head kept for the consistency audit like any
    /// proof's. A proof that fails is no receipt (`BAD_RECEIPT`); the caller decides whether
    /// it is also an alarm ([`Self::alarm_about`]).
    pub fn receipt(&self, proof: &v1::LogProof, trust: &TrustSet) -> Result<Receipt, Refusal> {
        let bad =
            |r: Refusal| Refusal::new(RefusalCode::BadReceipt, format!("receipt: {}", r.detail));
        let signed = log_proof::signed_head(proof).map_err(bad)?;
        let head = self.verified.verify(signed, trust).map_err(bad)?;
        let receipt = receipt::from_proof(proof, &head)?;
        self.audit_later(head, signed);
        Ok(receipt)
    }

    /// Keep `head` for the next consistency check.
    fn audit_later(&self, head: TreeHead, signed: &v1::SignedTreeHead) {
        // Many proofs share a head: its record (with the encoded evidence) is made once.
        self.heads()
            .pending
            .entry(head.size)
            .or_insert_with(|| Candidate::new(head, signed));
        self.wake.notify_one();
    }

    /// Raise an alarm about a proof of `message_id` that failed outside [`Self::check`].
    pub async fn alarm_about(&self, refusal: Refusal, message_id: MessageId) {
        self.alarm(refusal, Some(message_id), Vec::new()).await
    }

    async fn alarm(
        &self,
        refusal: Refusal,
        message_id: Option<MessageId>,
        heads: Vec<LogHeadRecord>,
    ) {
        error!(alarm = "exchange_log", code = %refusal.code, detail = refusal.detail,
            message_id = message_id.map(|m| m.to_string()).unwrap_or_default(),
            "the hub's exchange log failed a check");
        self.keep_alarm(LogAlarm {
            at: Timestamp::now(),
            code: refusal.code.to_string(),
            detail: refusal.detail,
            message_id,
            heads,
        })
        .await;
    }

    /// Keep an alarm about the hub with the log's alarms (shown by `caravan-spoke log`,
    /// counted in `caravan_spoke_log_alarms`): one per incident.
    pub async fn keep_alarm(&self, alarm: LogAlarm) {
        let store = self.store.clone();
        if let Err(e) = blocking(move || store.add_log_alarm(&alarm)).await {
            error!(cause = %e, "cannot keep the log alarm");
        }
    }

    /// Check the heads received against each other and the last verified one, until
    /// `shutdown`.
    pub async fn run(
        self: Arc<Self>,
        client: ExchangeClient<Channel>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = shutdown.changed() => return,
            }
            self.audit(&client).await;
            tokio::select! {
                _ = tokio::time::sleep(AUDIT_INTERVAL) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// One round: prove every head received (and the last verified one) consistent with the
    /// largest of them, then keep the largest as the last verified head.
    async fn audit(&self, client: &ExchangeClient<Channel>) {
        let (last, mut pending) = {
            let mut heads = self.heads();
            let mut pending = std::mem::take(&mut heads.pending);
            // Beyond one request's worth, check the largest now and the rest next round.
            while pending.len() >= MAX_PROOFS
                && let Some((size, seen)) = pending.pop_first()
            {
                heads.pending.insert(size, seen);
            }
            (heads.last.clone(), pending)
        };
        if pending.is_empty() {
            return;
        }
        let last = last.and_then(|record| {
            Some(Candidate {
                head: TreeHead {
                    size: record.size,
                    root: root_of(&record)?,
                    timestamp: record.signed_at,
                    key_id: record.key_id.parse().ok()?,
                },
                record,
            })
        });
        // A head of the same size as the last verified one must have its root.
        if let Some(last) = &last
            && let Some(seen) = pending.remove(&last.head.size)
            && seen.head.root != last.head.root
        {
            self.alarm(
                Refusal::new(
                    RefusalCode::LogInconsistent,
                    format!(
                        "the hub signed two different logs of size {}: one verified before and one now",
                        last.head.size
                    ),
                ),
                None,
                vec![last.record.clone(), seen.record],
            )
            .await;
        }
        let mut candidates: Vec<Candidate> = pending.into_values().chain(last.clone()).collect();
        candidates.sort_by_key(|c| c.head.size);
        let Some(target) = candidates.pop() else {
            return;
        };
        if !candidates.is_empty() {
            let request = v1::LogConsistencyRequest {
                first: candidates.iter().map(|c| c.head.size).collect(),
                second: target.head.size,
            };
            let response = match client.clone().log_consistency(request).await {
                Ok(r) => r.into_inner(),
                Err(status) => match caravan_proto::status::from_status(&status) {
                    // The hub cannot prove a head it signed: it no longer has that log.
                    Some(refusal) => {
                        let refusal = Refusal::new(
                            RefusalCode::LogInconsistent,
                            format!(
                                "the hub cannot prove its own tree head of size {}: {refusal}",
                                target.head.size
                            ),
                        );
                        self.alarm(refusal, None, vec![target.record]).await;
                        return;
                    }
                    None => {
                        debug!(code = ?status.code(), "consistency check postponed: hub unreachable");
                        self.requeue(candidates.into_iter().chain([target]), last.as_ref());
                        return;
                    }
                },
            };
            if response.proofs.len() != candidates.len() {
                let refusal = Refusal::new(
                    RefusalCode::BadLogProof,
                    format!(
                        "asked for {} consistency proofs, the hub gave {}",
                        candidates.len(),
                        response.proofs.len()
                    ),
                );
                self.alarm(refusal, None, vec![target.record]).await;
                return;
            }
            // One rewrite makes every earlier head of the round inconsistent with the newest:
            // one incident, one alarm, which keeps every head involved as evidence.
            let mut failed =
                candidates
                    .iter()
                    .zip(&response.proofs)
                    .filter_map(|(earlier, proof)| {
                        log_proof::verify_consistency(&earlier.head, &target.head, &proof.hashes)
                            .err()
                            .map(|refusal| (refusal, earlier.record.clone()))
                    });
            if let Some((mut refusal, first)) = failed.next() {
                let mut heads = vec![first];
                heads.extend(failed.map(|(_, record)| record));
                if heads.len() > 1 {
                    refusal.detail = format!(
                        "{} ({} heads received before it fail alike; all are kept)",
                        refusal.detail,
                        heads.len()
                    );
                }
                heads.push(target.record.clone());
                self.alarm(refusal, None, heads).await;
            }
        }
        // After an alarm the spoke follows the hub's new history (the alarm keeps both heads),
        // so that one rewrite is one alarm and a further rewrite raises another.
        if last.is_some_and(|l| l.head.size >= target.head.size) {
            return;
        }
        let store = self.store.clone();
        let kept = target.record.clone();
        match blocking(move || store.set_log_head(&kept)).await {
            Ok(()) => {
                debug!(size = target.head.size, "log head verified");
                self.heads().last = Some(target.record);
            }
            Err(e) => error!(cause = %e, "cannot keep the verified log head"),
        }
    }

    /// Put heads back for the next round (all but the last verified one).
    fn requeue(&self, candidates: impl Iterator<Item = Candidate>, last: Option<&Candidate>) {
        let mut heads = self.heads();
        for c in candidates {
            if last.is_none_or(|l| l.head.size != c.head.size) {
                heads.pending.entry(c.head.size).or_insert(c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use caravan_common::{signing::SigningKey, trust::HubKey};

    use super::*;

    #[tokio::test]
    async fn a_missing_or_forged_proof_is_an_alarm_and_a_good_one_waits_for_the_audit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SpokeStore::open(dir.path(), Default::default(), 1 << 20).unwrap());
        let audit = LogAudit::new(store.clone());
        let hub = SigningKey::generate();
        let trust = TrustSet::new(
            Default::default(),
            [],
            [],
            [HubKey {
                public_key: hub.public().clone(),
                not_before: None,
                not_after: None,
            }],
            [],
        )
        .unwrap();
        let id = MessageId::generate();
        let expected = Expected {
            kind: v1::LogEntryKind::Accepted,
            message_id: id,
            sender: "KZ".parse().unwrap(),
            recipient: "CN".parse().unwrap(),
            header_sha256: Some([7; 32]),
            evidence_sha256: None,
        };
        let entry = v1::LogEntry {
            kind: v1::LogEntryKind::Accepted as i32,
            sender: "KZ".into(),
            recipient: "CN".into(),
            message_id: id.to_string(),
            header_sha256: vec![7; 32],
            ..Default::default()
        }
        .encode_to_vec();
        let root = merkle::leaf_hash(&entry);
        let good = v1::LogProof {
            leaf_index: 0,
            entry,
            tree_head: Some(log_proof::sign_head(1, &root, Timestamp::now(), &hub)),
            audit_path: Vec::new(),
        };
        audit.check(Some(&good), &expected, &trust, "receipt").await;
        assert_eq!(store.log_alarms().unwrap().1, 0);
        assert_eq!(audit.heads().pending.len(), 1);

        audit.check(None, &expected, &trust, "receipt").await;
        let mut forged = good.clone();
        forged.tree_head = Some(log_proof::sign_head(
            1,
            &root,
            Timestamp::now(),
            &SigningKey::generate(),
        ));
        audit
            .check(Some(&forged), &expected, &trust, "receipt")
            .await;
        let (alarms, total) = store.log_alarms().unwrap();
        assert_eq!(total, 2);
        assert!(alarms.iter().all(|a| a.code == "BAD_LOG_PROOF"));
        assert!(alarms[0].detail.contains("without a log proof"));
        assert_eq!(alarms[1].message_id, Some(id));
        // Alarms survive a restart.
        drop(audit);
        assert_eq!(store.log_alarms().unwrap().1, 2);
    }
}
