//! Keys of stored records, one convention for every store: numbers big-endian (byte order is
//! numeric order), a message as its id then its sender, and counters that hand out 1 first.

use crate::{MessageId, ParticipantId};

use super::{Db, StoreError, Table, Tx};

/// A number as a key: big-endian, so that keys sort as the numbers do.
pub fn u64_key(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// The number at the start of `bytes` (8 bytes, big-endian).
pub fn u64_of(bytes: &[u8]) -> Option<u64> {
    bytes.get(..8)?.try_into().ok().map(u64::from_be_bytes)
}

/// A stored number that must be exactly 8 bytes; `what` names it if it is not.
pub fn u64_value(bytes: &[u8], what: &'static str) -> Result<u64, StoreError> {
    bytes
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::corrupt(what, "not 8 bytes"))
}

/// A message's key: its id (16 bytes), then its sender (2), so that the messages with one id
/// (normally one) are a key range.
pub fn message_key(id: MessageId, sender: ParticipantId) -> [u8; 18] {
    let mut key = [0u8; 18];
    key[..16].copy_from_slice(id.as_bytes());
    key[16..].copy_from_slice(sender.as_str().as_bytes());
    key
}

/// The end of the key range of the messages with id `id` (exclusive): past every sender.
pub fn message_range_end(id: MessageId) -> [u8; 19] {
    let mut end = [0xffu8; 19];
    end[..16].copy_from_slice(id.as_bytes());
    end
}

/// The id and sender a [`message_key`] names.
pub fn split_message_key(key: &[u8]) -> Option<(MessageId, ParticipantId)> {
    let id: [u8; 16] = key.get(..16)?.try_into().ok()?;
    let id = message_id(id)?;
    let sender = std::str::from_utf8(key.get(16..18)?).ok()?.parse().ok()?;
    (key.len() == 18).then_some((id, sender))
}

/// A message id from its 16 bytes, if they are a UUIDv7.
pub fn message_id(bytes: [u8; 16]) -> Option<MessageId> {
    uuid::Uuid::from_bytes(bytes)
        .hyphenated()
        .to_string()
        .parse()
        .ok()
}

/// A participant's numbered item (a queue entry, a status event): the participant (2 bytes),
/// then the number.
pub fn participant_key(participant: ParticipantId, n: u64) -> [u8; 10] {
    let mut key = [0u8; 10];
    key[..2].copy_from_slice(participant.as_str().as_bytes());
    key[2..].copy_from_slice(&n.to_be_bytes());
    key
}

/// A counter kept under `key` in a store's `meta` table: it holds the next number to hand
/// out. A counter never taken hands out [`Counter::FIRST`], 1, in both stores (0 stays free
/// for "before the first" in cursors); a store whose counter exists goes on from its value,
/// whatever it started at.
#[derive(Debug, Clone, Copy)]
pub struct Counter {
    table: Table,
    key: &'static [u8],
}

impl Counter {
    /// What a new counter hands out first.
    pub const FIRST: u64 = 1;

    pub const fn new(table: Table, key: &'static [u8]) -> Self {
        Self { table, key }
    }

    pub const fn key(self) -> &'static [u8] {
        self.key
    }

    /// Take the next number, in a transaction.
    pub fn take(self, tx: &mut dyn Tx) -> Result<u64, StoreError> {
        let current = match tx.get(self.table, self.key)? {
            Some(v) => u64_value(&v, "counter")?,
            None => Self::FIRST,
        };
        tx.insert(self.table, self.key, &(current + 1).to_be_bytes())?;
        Ok(current)
    }

    /// The number the next [`Counter::take`] hands out (`None`: never set).
    pub fn next(self, db: &Db) -> Result<Option<u64>, StoreError> {
        db.get(self.table, self.key)?
            .map(|v| u64_value(&v, "counter"))
            .transpose()
    }

    /// Make `next` the number the next [`Counter::take`] hands out.
    pub fn set_next(self, tx: &mut dyn Tx, next: u64) -> Result<(), StoreError> {
        tx.insert(self.table, self.key, &next.to_be_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_keys_round_trip_and_sort_by_id() {
        let a = MessageId::generate();
        let b = MessageId::generate();
        let kz: ParticipantId = "KZ".parse().unwrap();
        let uz: ParticipantId = "UZ".parse().unwrap();
        let key = message_key(a, uz);
        assert_eq!(split_message_key(&key), Some((a, uz)));
        assert!(
            message_key(a, uz) < message_key(b, kz),
            "the id sorts first"
        );
        assert!(key.as_slice() < message_range_end(a).as_slice());
        assert!(message_key(b, kz).as_slice() > message_range_end(a).as_slice());
        assert_eq!(split_message_key(&key[..17]), None);
        assert_eq!(u64_of(&u64_key(7)), Some(7));
        assert!(u64_key(255) < u64_key(256));
        assert!(u64_value(&[1, 2], "x").is_err());
    }
}
