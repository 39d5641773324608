//! How the hub's records are encoded at rest: protobuf messages (with prost), so that fields
//! can be added without rewriting stored data. These types are the store's own and never go on
//! the wire.

use caravan_common::Timestamp;

/// Where a message is in its life; the numbering matches `caravan.v1.MessageState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MessageState {
    Unspecified = 0,
    Accepted = 1,
    Delivered = 2,
    Acknowledged = 3,
    Rejected = 4,
    Expired = 5,
}

impl MessageState {
    /// Whether the recipient has settled the message for good.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Acknowledged | Self::Rejected | Self::Expired)
    }
}

/// A stored message, without its payload (kept apart so that scans stay cheap).
#[derive(Clone, PartialEq, prost::Message)]
pub struct MessageRecord {
    #[prost(string, tag = "1")]
    pub sender: String,
    #[prost(string, tag = "2")]
    pub message_id: String,
    #[prost(string, tag = "3")]
    pub recipient: String,
    #[prost(string, tag = "4")]
    pub document_type: String,
    #[prost(bytes = "vec", tag = "5")]
    pub header_sha256: Vec<u8>,
    #[prost(bytes = "vec", tag = "6")]
    pub header: Vec<u8>,
    #[prost(string, tag = "7")]
    pub key_id: String,
    #[prost(bytes = "vec", tag = "8")]
    pub signature: Vec<u8>,
    #[prost(bytes = "vec", tag = "9")]
    pub receipt: Vec<u8>,
    #[prost(int64, tag = "10")]
    pub accepted_at_ms: i64,
    #[prost(uint64, tag = "11")]
    pub payload_length: u64,
    /// How many chunks the payload is stored in (0 for an empty payload).
    #[prost(uint32, tag = "12")]
    pub payload_chunks: u32,
    /// Index (from 1) of the ACCEPTED entry in the exchange log; 0 in stores older than the
    /// log's proofs.
    #[prost(uint64, tag = "13")]
    pub log_index: u64,
    /// The payload segment file (from 1) and offset the payload was appended at; segment 0:
    /// the payload is in sled's `payloads` tree (stores of format 1).
    #[prost(uint32, tag = "14")]
    pub payload_segment: u32,
    #[prost(uint64, tag = "15")]
    pub payload_offset: u64,
    /// CRC-32 of each 1 MiB block of a payload in a segment (`caravan_common::segments`),
    /// checked on every read; empty for a payload written before checksums (read unchecked)
    /// and for one kept in the engine (its own checksums guard it).
    #[prost(fixed32, repeated, tag = "16")]
    pub payload_crc32: Vec<u32>,
}

/// One state change of a message.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Transition {
    #[prost(enumeration = "MessageState", tag = "1")]
    pub state: i32,
    #[prost(int64, tag = "2")]
    pub at_ms: i64,
}

impl Transition {
    pub fn new(state: MessageState, at: Timestamp) -> Self {
        Self {
            state: state as i32,
            at_ms: at.as_millis(),
        }
    }
}

/// The state of a message and how it got there.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusRecord {
    #[prost(enumeration = "MessageState", tag = "1")]
    pub state: i32,
    #[prost(message, repeated, tag = "2")]
    pub transitions: Vec<Transition>,
    /// The encoded signed acknowledgement, once there is one.
    #[prost(bytes = "vec", tag = "3")]
    pub ack: Vec<u8>,
    /// The encoded signed receipt.
    #[prost(bytes = "vec", tag = "4")]
    pub receipt: Vec<u8>,
    /// Index (from 1) of the log entry that recorded the acknowledgement; 0 before one.
    #[prost(uint64, tag = "5")]
    pub ack_log_index: u64,
    /// Index (from 1) of the log entry that recorded the acceptance, when `receipt` is empty
    /// (the sender took its log proof as the receipt); filled when read, never stored.
    #[prost(uint64, tag = "6")]
    pub accepted_log_index: u64,
}

impl StatusRecord {
    pub fn current(&self) -> MessageState {
        MessageState::try_from(self.state).unwrap_or(MessageState::Unspecified)
    }

    pub fn advance(&mut self, state: MessageState, at: Timestamp) {
        self.state = state as i32;
        self.transitions.push(Transition::new(state, at));
    }
}

/// The exchange log's entries are a wire type: participants check proofs over their exact
/// bytes (`caravan.v1.LogEntry`), so the store keeps them in that encoding.
pub use caravan_proto::v1::{LogEntry, LogEntryKind as LogKind};

/// A TLS client certificate the hub refuses.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RevokedCertificate {
    /// Serial number, lowercase hex.
    #[prost(string, tag = "1")]
    pub serial: String,
    #[prost(int64, tag = "2")]
    pub at_ms: i64,
    #[prost(string, tag = "3")]
    pub reason: String,
    #[prost(string, tag = "4")]
    pub by: String,
}

/// The registry: the current signed trust list (which holds participants, keys, corridors and
/// hub keys) and what only the hub needs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RegistryRecord {
    /// The encoded `caravan.v1.SignedTrustList` in force.
    #[prost(bytes = "vec", tag = "1")]
    pub signed_trust_list: Vec<u8>,
    #[prost(message, repeated, tag = "2")]
    pub revoked_certificates: Vec<RevokedCertificate>,
}

/// A signed tree head of the exchange log: the Merkle root of its first `tree_size` entries.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TreeHead {
    #[prost(uint64, tag = "1")]
    pub tree_size: u64,
    #[prost(bytes = "vec", tag = "2")]
    pub root_hash: Vec<u8>,
    #[prost(int64, tag = "3")]
    pub timestamp_ms: i64,
    #[prost(string, tag = "4")]
    pub key_id: String,
    /// The hub's signature over PAE("application/vnd.caravan.treehead.v1", body), where body
    /// is the encoded `caravan.v1.TreeHeadBody` (size, root, timestamp).
    #[prost(bytes = "vec", tag = "5")]
    pub signature: Vec<u8>,
}

impl TreeHead {
    /// The bytes the signature covers: the wire's `TreeHeadBody`.
    pub fn signed_bytes(&self) -> Vec<u8> {
        use prost::Message;
        caravan_proto::v1::TreeHeadBody {
            tree_size: self.tree_size,
            root_hash: self.root_hash.clone(),
            timestamp_ms: self.timestamp_ms,
        }
        .encode_to_vec()
    }

    /// As participants receive it.
    pub fn to_wire(&self) -> caravan_proto::v1::SignedTreeHead {
        caravan_proto::v1::SignedTreeHead {
            body: self.signed_bytes(),
            signature: Some(caravan_proto::v1::Signature {
                key_id: self.key_id.clone(),
                signature: self.signature.clone(),
            }),
        }
    }
}

/// A client certificate the hub has seen.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CertificateRecord {
    /// Serial number, lowercase hex.
    #[prost(string, tag = "1")]
    pub serial: String,
    /// SHA-256 of the DER certificate, lowercase hex.
    #[prost(string, tag = "2")]
    pub fingerprint: String,
    /// `participant:KZ` or `operator:alice`.
    #[prost(string, tag = "3")]
    pub subject: String,
    #[prost(int64, tag = "4")]
    pub not_before_ms: i64,
    #[prost(int64, tag = "5")]
    pub not_after_ms: i64,
    #[prost(int64, tag = "6")]
    pub first_seen_ms: i64,
}

/// A conformance report as the hub recorded it (`Admin.RecordConformanceReport`): the kit's
/// JSON exactly as given, what the hub read from it, and the hub's signature over it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConformanceRecord {
    /// From 1, in the order reports were recorded.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(string, tag = "2")]
    pub participant: String,
    #[prost(bool, tag = "3")]
    pub passed: bool,
    #[prost(string, repeated, tag = "4")]
    pub document_types: Vec<String>,
    #[prost(int64, tag = "5")]
    pub recorded_at_ms: i64,
    /// `operator:<name>`.
    #[prost(string, tag = "6")]
    pub recorded_by: String,
    /// The report's JSON, as recorded and signed.
    #[prost(bytes = "vec", tag = "7")]
    pub report_json: Vec<u8>,
    /// The hub receipt key that signed it.
    #[prost(string, tag = "8")]
    pub key_id: String,
    /// Over PAE(`REPORT_PAYLOAD_TYPE`, report_json).
    #[prost(bytes = "vec", tag = "9")]
    pub signature: Vec<u8>,
    /// Index (from 1) of the exchange-log entry that recorded it.
    #[prost(uint64, tag = "10")]
    pub log_index: u64,
}

/// A Readiness Scorecard entry as the hub recorded it (`Admin.RecordScorecardEntry`): an
/// assessment, an override of a measured score, or a round closed (`crate::scorecard::entry`),
/// as the JSON the hub made of it and signed.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScorecardRecord {
    /// From 1, in the order entries were recorded.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "2")]
    pub recorded_at_ms: i64,
    /// `operator:<name>`.
    #[prost(string, tag = "3")]
    pub recorded_by: String,
    /// The entry's JSON, as recorded and signed.
    #[prost(bytes = "vec", tag = "4")]
    pub entry_json: Vec<u8>,
    /// The hub receipt key that signed it.
    #[prost(string, tag = "5")]
    pub key_id: String,
    /// Over PAE("application/vnd.caravan.scorecard-entry.v1+json", entry_json).
    #[prost(bytes = "vec", tag = "6")]
    pub signature: Vec<u8>,
    /// Index (from 1) of the exchange-log entry that recorded it.
    #[prost(uint64, tag = "7")]
    pub log_index: u64,
}

/// A change of a message's state, as its sender follows it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusEvent {
    #[prost(uint64, tag = "1")]
    pub sequence: u64,
    #[prost(string, tag = "2")]
    pub message_id: String,
    #[prost(enumeration = "MessageState", tag = "3")]
    pub state: i32,
    #[prost(int64, tag = "4")]
    pub at_ms: i64,
    /// The recipient's encoded signed acknowledgement, with ACKNOWLEDGED or REJECTED.
    #[prost(bytes = "vec", tag = "5")]
    pub ack: Vec<u8>,
    /// Index (from 1) of the log entry that recorded this change.
    #[prost(uint64, tag = "6")]
    pub log_index: u64,
}

/// Every hub record is stored with its version (`caravan_common::store::record`): version 1 is
/// its protobuf body, which version 0 (written before records carried versions) is too.
/// Exchange-log entries are not records: their bytes are the Merkle tree's leaves, and travel.
macro_rules! protobuf_records {
    ($($record:ty => $what:literal),* $(,)?) => {$(
        impl caravan_common::store::record::Record for $record {
            const WHAT: &'static str = $what;
            const VERSION: u8 = 1;

            fn encode_body(&self) -> Vec<u8> {
                prost::Message::encode_to_vec(self)
            }

            fn decode_version(
                _version: u8,
                body: &[u8],
            ) -> Result<Self, caravan_common::store::StoreError> {
                <$record as prost::Message>::decode(body)
                    .map_err(|e| caravan_common::store::StoreError::corrupt($what, e))
            }
        }
    )*};
}

protobuf_records! {
    MessageRecord => "message",
    StatusRecord => "status",
    RegistryRecord => "registry",
    TreeHead => "tree head",
    CertificateRecord => "certificate",
    StatusEvent => "event",
    ConformanceRecord => "conformance report",
    ScorecardRecord => "scorecard entry",
}
