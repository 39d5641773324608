//! Records for tests: one of each kind, shared by the store's tests and the APIs'.

use caravan_common::{DocumentType, MessageId, RefusalCode, Timestamp, store::EngineKind};

use super::records::{Evidence, InboxRecord, Verification};

/// The engines the tests run on.
pub const ENGINES: [EngineKind; 2] = [EngineKind::Sled, EngineKind::Redb];

/// A document from `sender` (a new message id each time), as the inbox keeps it: an e-CO
/// with a 3-byte payload, accepted by the hub at 1 s and received at 2 s, rejected for a
/// revoked key.
pub fn inbox_record(sender: &str) -> InboxRecord {
    InboxRecord {
        message_id: MessageId::generate(),
        sender: sender.parse().unwrap(),
        document_type: Some(DocumentType::CertificateOfOrigin),
        document_id: Some("KZ-CO-1".into()),
        content_type: Some("application/xml".into()),
        supersedes: None,
        in_reply_to: None,
        response: None,
        summary: None,
        created_at: None,
        key_id: None,
        payload_length: 3,
        payload_sha256: "00".into(),
        hub_sequence: Some(7),
        accepted_at: Some(Timestamp::from_millis(1_000)),
        received_at: Timestamp::from_millis(2_000),
        verification: Verification::Rejected {
            code: RefusalCode::KeyRevoked,
            reason: "lost".into(),
        },
        evidence: Evidence {
            header: String::new(),
            signature: String::new(),
            signature_key_id: String::new(),
            receipt: String::new(),
            accepted_proof: None,
            ack: None,
        },
        checks: Vec::new(),
        replacement: None,
    }
}
