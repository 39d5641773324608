//! What travels with a document, as typed values: the header a sender signs, the receipt the
//! hub signs, and the acknowledgement a recipient signs. Their byte encodings, and the signing
//! and checking of those bytes, live in `caravan-proto`.

use serde::{Deserialize, Serialize};

use crate::{DocumentType, KeyId, MessageId, ParticipantId, RefusalCode, Timestamp};

/// The signed statement a sender makes about a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Header {
    pub message_id: MessageId,
    pub sender: ParticipantId,
    pub recipient: ParticipantId,
    pub document_type: DocumentType,
    /// Certificate or invoice number.
    pub document_id: String,
    /// Media type of the payload.
    pub content_type: String,
    #[serde(serialize_with = "hex")]
    pub payload_sha256: [u8; 32],
    pub payload_length: u64,
    pub created_at: Timestamp,
    pub key_id: KeyId,
    /// The message (from the same sender) this document replaces or withdraws.
    pub supersedes: Option<MessageId>,
    /// The message (from the recipient) this document answers.
    pub in_reply_to: Option<MessageId>,
}

/// The hub's signed proof that it durably accepted a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    pub message_id: MessageId,
    pub sender: ParticipantId,
    pub recipient: ParticipantId,
    /// SHA-256 of the exact header bytes the hub accepted.
    #[serde(serialize_with = "hex")]
    pub header_sha256: [u8; 32],
    /// Position in the hub's total order of accepted messages, from 1.
    pub hub_sequence: u64,
    pub accepted_at: Timestamp,
    /// The hub key that signed the receipt.
    pub key_id: KeyId,
}

/// What a recipient decided about a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum AckOutcome {
    /// Verified end to end and stored.
    Accepted,
    /// Refused, for the reason given.
    Rejected { code: RefusalCode, reason: String },
}

/// A recipient's signed acknowledgement of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ack {
    pub message_id: MessageId,
    pub sender: ParticipantId,
    pub recipient: ParticipantId,
    #[serde(serialize_with = "hex")]
    pub header_sha256: [u8; 32],
    #[serde(flatten)]
    pub outcome: AckOutcome,
    pub acknowledged_at: Timestamp,
    pub key_id: KeyId,
}

/// Lowercase hex, for digests shown to people and in JSON.
pub fn to_hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// A 32-byte digest from lowercase or uppercase hex; `None` if it is not one.
pub fn from_hex32(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

fn hex<S: serde::Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&to_hex(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_in_hex_round_trip_and_refuse_what_is_not_one() {
        let digest: [u8; 32] = std::array::from_fn(|i| i as u8 * 7);
        let text = to_hex(&digest);
        assert_eq!(&text[..8], "00070e15");
        assert_eq!(from_hex32(&text), Some(digest));
        assert_eq!(from_hex32(&text.to_uppercase()), Some(digest));
        for bad in [
            &text[..62],
            "zz",
            "",
            &format!("{text}00"),
            &format!("é{}", &text[2..]),
        ] {
            assert_eq!(from_hex32(bad), None, "{bad}");
        }
    }
}
