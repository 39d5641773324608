//! The outbox: sealed envelopes waiting for the hub (`queued` with their payloads in
//! `outbox_payloads`, and whole envelopes an older spoke queued in `outbox`), settled with the
//! hub's answer, and those with a receipt kept (`receipted`) until they reach a final state.

use caravan_common::{MessageId, store::StoreError};

use super::{
    SpokeStore,
    records::{decode, encode},
    sent::{HubState, Lifecycle, SentRecord, StateChange},
    tables::{
        NEXT_QUEUED, OUTBOX, OUTBOX_PAYLOADS, QUEUED, RECEIPTED, RECEIPTED_PAYLOADS, SENT,
        uuid_message_id,
    },
};

/// An envelope waiting in the outbox.
#[derive(Debug, Clone)]
pub struct Queued {
    key: Vec<u8>,
    /// In `outbox`, with its payload inside the envelope.
    whole: bool,
    pub message_id: MessageId,
    /// The encoded, sealed `caravan.v1.Envelope`, without its payload (see
    /// [`SpokeStore::queued_payload`]): resent byte for byte on every attempt.
    pub envelope: Vec<u8>,
}

impl SpokeStore {
    /// Put a sealed envelope in the outbox together with its record, atomically: `envelope`
    /// encoded without its payload, and `payload`, which is kept apart like an inbox entry's
    /// (in a segment above the engine's inline limit: sled would keep a large value in
    /// memory until the process ends). Durable after [`Self::flush`].
    pub fn enqueue(
        &self,
        record: &SentRecord,
        envelope: &[u8],
        payload: &[u8],
    ) -> Result<(), StoreError> {
        let kept = match self.place_payload(payload)? {
            None => [&[0u8][..], payload].concat(),
            Some(pointer) => [&[1u8][..], &pointer].concat(),
        };
        let value = encode(record);
        self.db.update(|tx| {
            let mut key = NEXT_QUEUED.take(tx)?.to_be_bytes().to_vec();
            key.extend_from_slice(record.message_id.as_bytes());
            tx.insert(SENT, record.message_id.as_bytes(), &value)?;
            tx.insert(QUEUED, &key, envelope)?;
            tx.insert(OUTBOX_PAYLOADS, &key, &kept)
        })
    }

    /// The payload of a queued envelope; `None` for an envelope queued with its payload inside
    /// (by a spoke from before `queued`).
    pub fn queued_payload(&self, queued: &Queued) -> Result<Option<Vec<u8>>, StoreError> {
        if queued.whole {
            return Ok(None);
        }
        self.watched((|| {
            let kept = self
                .db
                .get(OUTBOX_PAYLOADS, &queued.key)?
                .ok_or_else(|| StoreError::corrupt("outbox payload", "missing"))?;
            match kept.split_first() {
                Some((0, payload)) => Ok(Some(payload.to_vec())),
                Some((1, pointer)) => {
                    let document = format!("outbox message {}", queued.message_id);
                    self.read_placed(pointer, &queued.key, &document).map(Some)
                }
                _ => Err(StoreError::corrupt("outbox payload", "unknown kind")),
            }
        })())
    }

    /// The oldest `limit` envelopes in the outbox (both tables share the queue numbers).
    pub fn outbox(&self, limit: usize) -> Result<Vec<Queued>, StoreError> {
        let mut oldest = Vec::new();
        for (table, whole) in [(QUEUED, false), (OUTBOX, true)] {
            for (key, envelope) in self.db.range(table, &[], None, limit, false)? {
                let id: [u8; 16] = key
                    .get(8..24)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| StoreError::corrupt("outbox key", "not number + id"))?;
                oldest.push(Queued {
                    message_id: uuid_message_id(id)?,
                    key,
                    whole,
                    envelope,
                });
            }
        }
        oldest.sort_by(|a, b| a.key.cmp(&b.key));
        oldest.truncate(limit);
        Ok(oldest)
    }

    /// How many envelopes wait in the outbox.
    pub fn outbox_len(&self) -> Result<u64, StoreError> {
        Ok(self.db.len(QUEUED)? + self.db.len(OUTBOX)?)
    }

    /// Take `queued` out of the outbox and record the hub's answer (receipt or refusal),
    /// atomically. State changes the hub already reported are kept; a receipt adds the
    /// acceptance to the history.
    pub fn settle(&self, queued: &Queued, answer: &SentRecord) -> Result<(), StoreError> {
        let key = answer.message_id.as_bytes();
        self.db.update(|tx| {
            let mut record: SentRecord = match tx.get(SENT, key)? {
                Some(v) => decode(&v, "sent record")?,
                None => answer.clone(),
            };
            record.lifecycle = record.lifecycle.settled_by(answer.lifecycle.clone());
            // The acceptance is in the history from the receipt: hubs stream only the changes
            // after it (an older hub's ACCEPTED event, with the same time, is not added twice).
            if let Lifecycle::AtHub {
                receipt: Some(receipt),
                ..
            } = &answer.lifecycle
            {
                record.note(StateChange {
                    state: HubState::Accepted,
                    at: receipt.accepted_at,
                });
            }
            record.attempts = answer.attempts;
            record.last_error = answer.last_error.clone();
            tx.insert(SENT, key, &encode(&record))?;
            // Receipted and not settled for good: the envelope is kept until it is (see
            // `receipted`), for a hub that loses it in a restore.
            let keep = record.lifecycle.receipt().is_some() && !record.lifecycle.is_final();
            let table = if queued.whole { OUTBOX } else { QUEUED };
            if keep {
                let envelope = tx.get(table, &queued.key)?.ok_or_else(|| {
                    StoreError::corrupt("outbox entry", "missing while it is settled")
                })?;
                tx.insert(RECEIPTED, key, &envelope)?;
            }
            if !queued.whole {
                if keep && let Some(payload) = tx.get(OUTBOX_PAYLOADS, &queued.key)? {
                    tx.insert(RECEIPTED_PAYLOADS, key, &payload)?;
                }
                tx.remove(OUTBOX_PAYLOADS, &queued.key)?;
            }
            tx.remove(table, &queued.key)
        })
    }

    /// Documents the hub gave a receipt for that have not reached a final state yet, up to
    /// `limit`.
    pub fn receipted(&self, limit: usize) -> Result<Vec<MessageId>, StoreError> {
        self.db
            .range(RECEIPTED, &[], None, limit, false)?
            .into_iter()
            .map(|(key, _)| {
                let id: [u8; 16] = key
                    .as_slice()
                    .try_into()
                    .map_err(|_| StoreError::corrupt("receipted key", "not an id"))?;
                uuid_message_id(id)
            })
            .collect()
    }

    /// Put a receipted document the hub no longer knows back in the outbox, byte for byte,
    /// under its message id, with `why` as its last error; false if it is not kept (settled
    /// meanwhile). Durable after [`Self::flush`].
    pub fn requeue(&self, message_id: MessageId, why: &str) -> Result<bool, StoreError> {
        let id = message_id.as_bytes();
        self.db.update(|tx| {
            let (Some(envelope), Some(v)) = (tx.get(RECEIPTED, id)?, tx.get(SENT, id)?) else {
                return Ok(false);
            };
            let mut record: SentRecord = decode(&v, "sent record")?;
            let mut key = NEXT_QUEUED.take(tx)?.to_be_bytes().to_vec();
            key.extend_from_slice(id);
            match tx.get(RECEIPTED_PAYLOADS, id)? {
                Some(payload) => {
                    tx.insert(QUEUED, &key, &envelope)?;
                    tx.insert(OUTBOX_PAYLOADS, &key, &payload)?;
                    tx.remove(RECEIPTED_PAYLOADS, id)?;
                }
                None => tx.insert(OUTBOX, &key, &envelope)?,
            }
            tx.remove(RECEIPTED, id)?;
            record.lifecycle = Lifecycle::Queued {
                lost_receipt: record.lifecycle.receipt().cloned(),
            };
            record.last_error = Some(why.to_owned());
            tx.insert(SENT, id, &encode(&record))?;
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use caravan_common::{DocumentType, Timestamp, store::EngineKind};

    use super::*;
    use crate::store::{HubState, SentState, StateChange, fixtures::ENGINES};

    /// The outbox worker's answer for an accepted document whose receipt it has not kept.
    fn accepted() -> Lifecycle {
        Lifecycle::AtHub {
            state: HubState::Accepted,
            receipt: None,
        }
    }

    fn record() -> SentRecord {
        SentRecord {
            message_id: MessageId::generate(),
            recipient: "CN".parse().unwrap(),
            document_type: DocumentType::Invoice,
            document_id: "INV-1".into(),
            payload_length: 3,
            header_sha256: "00".into(),
            queued_at: Timestamp::now(),
            lifecycle: Lifecycle::QUEUED,
            attempts: 0,
            last_error: None,
            transitions: Vec::new(),
            acknowledgement: None,
            responses: Vec::new(),
        }
    }

    #[test]
    fn status_events_and_the_outbox_answer_merge_in_any_order() {
        for engine in ENGINES {
            let dir = tempfile::tempdir().unwrap();
            let store = SpokeStore::open(dir.path(), Some(engine), 4 << 20).unwrap();
            let a = record();
            store.enqueue(&a, b"envelope", b"abc").unwrap();
            // The hub's events overtake the outbox worker's own answer.
            let at = Timestamp::now();
            store
                .apply_status(
                    a.message_id,
                    StateChange {
                        state: HubState::Accepted,
                        at,
                    },
                    None,
                    1,
                    "epoch-1",
                )
                .unwrap();
            store
                .apply_status(
                    a.message_id,
                    StateChange {
                        state: HubState::Acknowledged,
                        at,
                    },
                    None,
                    2,
                    "epoch-1",
                )
                .unwrap();
            let queued = store.outbox(1).unwrap().remove(0);
            let mut answer = a.clone();
            answer.lifecycle = accepted();
            answer.attempts = 1;
            store.settle(&queued, &answer).unwrap();
            let now = store.sent_entry(a.message_id).unwrap().unwrap();
            assert_eq!(
                now.state(),
                SentState::Acknowledged,
                "the later state stands"
            );
            assert_eq!(now.transitions.len(), 2);
            assert_eq!(now.attempts, 1);
            assert_eq!(store.status_cursor().unwrap(), (2, "epoch-1".to_owned()));
            assert_eq!(store.outbox_len().unwrap(), 0);
        }
    }

    #[test]
    fn a_receipt_puts_the_acceptance_in_the_history_once_and_in_time_order() {
        for engine in ENGINES {
            let dir = tempfile::tempdir().unwrap();
            let store = SpokeStore::open(dir.path(), Some(engine), 4 << 20).unwrap();
            let a = record();
            store.enqueue(&a, b"envelope", b"abc").unwrap();
            let accepted_at = Timestamp::from_millis(1_000);
            let delivered = StateChange {
                state: HubState::Delivered,
                at: Timestamp::from_millis(2_000),
            };
            // The delivery's event overtakes the submission's answer.
            store
                .apply_status(a.message_id, delivered.clone(), None, 1, "epoch-1")
                .unwrap();
            let queued = store.outbox(1).unwrap().remove(0);
            let mut answer = a.clone();
            answer.lifecycle = Lifecycle::AtHub {
                state: HubState::Accepted,
                receipt: Some(crate::store::ReceiptInfo {
                    hub_sequence: 7,
                    accepted_at,
                    key_id: "hub-1".into(),
                    signed: String::new(),
                    log_proof: Some("proof".into()),
                }),
            };
            store.settle(&queued, &answer).unwrap();
            let acceptance = StateChange {
                state: HubState::Accepted,
                at: accepted_at,
            };
            let now = store.sent_entry(a.message_id).unwrap().unwrap();
            assert_eq!(now.transitions, [acceptance.clone(), delivered.clone()]);
            assert_eq!(now.state(), SentState::Delivered);
            // An older hub streams the acceptance too, at the receipt's time: not added twice,
            // and the later state stands.
            store
                .apply_status(a.message_id, acceptance.clone(), None, 2, "epoch-1")
                .unwrap();
            let now = store.sent_entry(a.message_id).unwrap().unwrap();
            assert_eq!(now.transitions, [acceptance, delivered], "{engine}");
            assert_eq!(now.state(), SentState::Delivered);
        }
    }

    #[test]
    fn the_outbox_survives_a_reopen_and_settles_atomically() {
        for engine in ENGINES {
            let dir = tempfile::tempdir().unwrap();
            let (a, b) = (record(), record());
            // Over the inline limit of either engine: kept in a segment, not in the engine.
            let big = vec![9u8; 64 * 1024 + 1];
            {
                let store = SpokeStore::open(dir.path(), Some(engine), 4 << 20).unwrap();
                store.enqueue(&a, b"envelope a", b"small").unwrap();
                store.enqueue(&b, b"envelope b", &big).unwrap();
                store.flush().unwrap();
            }
            let store = SpokeStore::open(dir.path(), Some(engine), 4 << 20).unwrap();
            let queued = store.outbox(10).unwrap();
            assert_eq!(
                queued.iter().map(|q| q.message_id).collect::<Vec<_>>(),
                vec![a.message_id, b.message_id]
            );
            assert_eq!(queued[0].envelope, b"envelope a");
            assert_eq!(store.queued_payload(&queued[0]).unwrap().unwrap(), b"small");
            assert_eq!(store.queued_payload(&queued[1]).unwrap().unwrap(), big);
            let in_segments = store.db.segments().size().unwrap();
            let small_outside = if engine == EngineKind::Sled { 5 } else { 0 };
            assert_eq!(in_segments, (big.len() + small_outside) as u64, "{engine}");
            let mut settled = a.clone();
            settled.lifecycle = accepted();
            store.settle(&queued[0], &settled).unwrap();
            assert_eq!(store.outbox_len().unwrap(), 1);
            assert_eq!(store.db.len(OUTBOX_PAYLOADS).unwrap(), 1, "settled with it");
            assert_eq!(
                store.sent_entry(a.message_id).unwrap().unwrap().state(),
                SentState::Accepted
            );
            assert_eq!(
                store.sent_entry(b.message_id).unwrap().unwrap().state(),
                SentState::Queued
            );
        }
    }

    #[test]
    fn envelopes_queued_whole_by_an_older_spoke_go_out_in_turn_as_they_were() {
        // Spokes from before `queued` kept the whole envelope in `outbox`.
        for engine in ENGINES {
            let dir = tempfile::tempdir().unwrap();
            let store = SpokeStore::open(dir.path(), Some(engine), 4 << 20).unwrap();
            let (a, b, c) = (record(), record(), record());
            store.enqueue(&a, b"envelope a", b"payload a").unwrap();
            store
                .db
                .update(|tx| {
                    let mut key = NEXT_QUEUED.take(tx)?.to_be_bytes().to_vec();
                    key.extend_from_slice(b.message_id.as_bytes());
                    tx.insert(SENT, b.message_id.as_bytes(), &encode(&b))?;
                    tx.insert(OUTBOX, &key, b"whole envelope b")
                })
                .unwrap();
            store.enqueue(&c, b"envelope c", b"payload c").unwrap();
            let queued = store.outbox(10).unwrap();
            assert_eq!(
                queued.iter().map(|q| q.message_id).collect::<Vec<_>>(),
                vec![a.message_id, b.message_id, c.message_id],
                "in the order they were queued"
            );
            assert_eq!(store.outbox_len().unwrap(), 3);
            assert_eq!(queued[1].envelope, b"whole envelope b");
            assert_eq!(store.queued_payload(&queued[1]).unwrap(), None);
            assert_eq!(
                store.queued_payload(&queued[2]).unwrap().unwrap(),
                b"payload c"
            );
            let mut settled = b.clone();
            settled.lifecycle = accepted();
            store.settle(&queued[1], &settled).unwrap();
            assert_eq!(
                store
                    .outbox(10)
                    .unwrap()
                    .iter()
                    .map(|q| q.message_id)
                    .collect::<Vec<_>>(),
                vec![a.message_id, c.message_id]
            );
        }
    }
}
