//! The spoke store's layout: its tables, each at its slot, the keys kept in `meta`, the
//! counters, the format version, and how keys are made of ids.

use caravan_common::{
    MessageId, ParticipantId,
    store::{Counter, StoreError, Table, keys::message_key},
};

/// The store's layout version, in `meta` (absent in stores from before it: version 1 too).
/// Opening a store of a later version is refused; payload locations with checksums are read
/// by earlier spokes as before (they ignore the checksums). Version 2: records carry their
/// own version ([`super::RECORD_VERSION`]); those written before read as version 0. Version
/// 3: sent records in their lifecycle form ([`super::SENT_RECORD_VERSION`]), which a spoke of
/// version 2 could not read (it refuses the store whole instead); older sent records still
/// decode. Version 4: the `numbers` and `replacements` indexes hold every inbox document,
/// those received before them included (built when an older store is opened); a spoke of
/// version 3 would not keep `replacements`, so it refuses the store. Version 5: the
/// acknowledgement sent for an inbox document is kept in `acks`, not written into its inbox
/// record again (records from before keep theirs); a spoke of version 4 would not read them, so
/// it refuses the store. The same version keys `numbers` by the number itself instead of its
/// hash ([`number_prefix`]): the index is built again when an older store opens.
pub const FORMAT_VERSION: u64 = 5;
pub(super) const FORMAT_KEY: &[u8] = b"format_version";

pub(super) const INBOX: Table = Table::new(0, "inbox");
pub(super) const PAYLOADS: Table = Table::new(1, "payloads");
pub(super) const PAYLOAD_AT: Table = Table::new(2, "payload_at");
pub(super) const ARRIVALS: Table = Table::new(3, "arrivals");
pub(super) const SENT: Table = Table::new(4, "sent");
pub(super) const OUTBOX: Table = Table::new(5, "outbox");
pub(super) const QUEUED: Table = Table::new(6, "queued");
pub(super) const OUTBOX_PAYLOADS: Table = Table::new(7, "outbox_payloads");
pub(super) const RECEIPTED: Table = Table::new(8, "receipted");
pub(super) const RECEIPTED_PAYLOADS: Table = Table::new(9, "receipted_payloads");
pub(super) const TRUST: Table = Table::new(10, "trust");
pub(super) const META: Table = Table::new(11, "meta");
/// Inbox documents by sender and document number ([`number_key`]), for the duplicate check;
/// empty values.
pub(super) const NUMBERS: Table = Table::new(12, "numbers");
/// The document that replaces another, by the replaced one's inbox key (its message id and
/// sender), whether or not the replaced one has arrived: a replacement may come first.
/// Values: the replacement's message id (16 bytes).
pub(super) const REPLACEMENTS: Table = Table::new(13, "replacements");
/// The certificates this spoke makes (`certificates.rs`), by id.
pub(super) const CERTIFICATES: Table = Table::new(14, "certificates");
/// A certificate's id by the token in its printed QR code.
pub(super) const CERTIFICATE_TOKENS: Table = Table::new(15, "certificate_tokens");
/// Exporters' templates, by document type and exporter.
pub(super) const TEMPLATES: Table = Table::new(16, "templates");
/// The acknowledgement this spoke sent for an inbox document, once the hub took it, by the
/// document's inbox key: the signed acknowledgement encoded (base64), its evidence. Apart from
/// the inbox record so that keeping it adds a small entry instead of rewriting the record (the
/// record's page was made durable a moment before, and would be copied again).
pub(super) const ACKS: Table = Table::new(17, "acks");
/// The spoke store's tables, each at its slot (for `store migrate`, which copies them all).
pub const TABLES: &[Table] = &[
    INBOX,
    PAYLOADS,
    PAYLOAD_AT,
    ARRIVALS,
    SENT,
    OUTBOX,
    QUEUED,
    OUTBOX_PAYLOADS,
    RECEIPTED,
    RECEIPTED_PAYLOADS,
    TRUST,
    META,
    NUMBERS,
    REPLACEMENTS,
    CERTIFICATES,
    CERTIFICATE_TOKENS,
    TEMPLATES,
    ACKS,
];

pub(super) const CURRENT_TRUST_LIST: &[u8] = b"current";
pub(super) const STATUS_CURSOR: &[u8] = b"status_cursor";
pub(super) const STATUS_EPOCH: &[u8] = b"status_epoch";
pub(super) const WEBHOOK_CURSOR: &[u8] = b"webhook_cursor";
pub(super) const LOG_HEAD: &[u8] = b"log_head";
pub(super) const LOG_ALARMS: &[u8] = b"log_alarms";
/// Alarms kept (the newest); the total count is kept apart.
pub(super) const LOG_ALARMS_KEPT: usize = 100;
pub(super) const LOG_ALARMS_TOTAL: &[u8] = b"log_alarms_total";
/// The next arrival number (the inbox's order) and outbox queue number. Stores made before
/// the store foundation numbered from 0 and go on from where they are; new ones from 1.
pub(super) const NEXT_ARRIVAL: Counter = Counter::new(META, b"next_arrival");
pub(super) const NEXT_QUEUED: Counter = Counter::new(META, b"next_queued");
/// The prefix of the meta keys of the next certificate number of each year
/// (`next_certificate_number2026`).
pub(super) const NEXT_CERTIFICATE_NUMBER: &[u8] = b"next_certificate_number";

/// The inbox's key of a document: message id, then sender.
pub(super) fn inbox_key(id: MessageId, sender: ParticipantId) -> [u8; 18] {
    message_key(id, sender)
}

/// The longest document number a `numbers` key holds as it is; a longer one is held by the
/// first 16 bytes of its SHA-256.
const NUMBER_AS_IS: usize = 128;
/// In a `numbers` key, where a length is for a number held as it is: the mark of a hashed one
/// (no length of one held as it is takes it).
const NUMBER_HASHED: u8 = 0xff;

/// The `numbers` key prefix of a sender's document number: sender, then the number's length
/// (one byte) and the number itself, so that an issuer's numbers, usually in sequence, lie side
/// by side (a new document touches the index's last page, not a random one); a number over
/// [`NUMBER_AS_IS`] bytes by [`NUMBER_HASHED`] and the first 16 bytes of its SHA-256. Before
/// store format 5 every number was hashed (the index is built again when such a store opens).
pub(super) fn number_prefix(sender: ParticipantId, number: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + 1 + NUMBER_AS_IS + 16);
    key.extend_from_slice(sender.as_str().as_bytes());
    if number.len() <= NUMBER_AS_IS {
        key.push(number.len() as u8);
        key.extend_from_slice(number.as_bytes());
    } else {
        key.push(NUMBER_HASHED);
        key.extend_from_slice(&caravan_common::signing::sha256(number.as_bytes())[..16]);
    }
    key
}

/// The `numbers` key of a document: its number's prefix, then its message id (the key's last 16
/// bytes).
pub(super) fn number_key(sender: ParticipantId, number: &str, id: MessageId) -> Vec<u8> {
    let mut key = number_prefix(sender, number);
    key.extend_from_slice(id.as_bytes());
    key
}

/// The message id in an outbox or `receipted` key, or a `replacements` value.
pub(super) fn uuid_message_id(bytes: [u8; 16]) -> Result<MessageId, StoreError> {
    uuid::Uuid::from_bytes(bytes)
        .hyphenated()
        .to_string()
        .parse()
        .map_err(|e| StoreError::corrupt("outbox key", e))
}
