//! What travels with a document, as typed values: the header a sender signs, the receipt the
//! hub signs, and the acknowledgement a recipient signs. Their byte encodings, and the signing
//! and checking of those bytes, live in `caravan-proto`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{
    DocumentType, KeyId, MessageId, ParticipantId, Refusal, RefusalCode, RejectCode, Timestamp,
};

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

impl Header {
    /// Check the header's `created_at` against the clock reading `now`: it may be ahead by at
    /// most `skew` (clocks of two machines never agree exactly) and behind by at most
    /// `lifetime` (the document type's message lifetime: an older header would only be held
    /// to expire). Both bounds are included; beyond them the refusal names the bound, the
    /// times and the setting that sets it.
    pub fn check_created_at(
        &self,
        now: Timestamp,
        skew: Duration,
        lifetime: Duration,
    ) -> Result<(), Refusal> {
        let (created, clock) = (self.created_at.as_millis(), now.as_millis());
        // In i128: both times come from outside (any i64), so the difference cannot overflow.
        let ahead = i128::from(created) - i128::from(clock);
        let seconds =
            |ms: i128| Duration::from_millis(ms.unsigned_abs().min(u64::MAX as u128) as u64);
        if ahead > skew.as_millis() as i128 {
            return Err(Refusal::new(
                RefusalCode::CreatedAtFuture,
                format!(
                    "created_at {} is {} ahead of the hub's clock ({now}); at most {} of clock skew is allowed (created_at_skew_secs)",
                    self.created_at,
                    humantime::format_duration(whole_seconds(seconds(ahead))),
                    humantime::format_duration(skew),
                ),
            ));
        }
        if -ahead > lifetime.as_millis() as i128 {
            return Err(Refusal::new(
                RefusalCode::CreatedAtExpired,
                format!(
                    "created_at {} is {} old by the hub's clock ({now}); {} messages live {} (message_ttl_secs)",
                    self.created_at,
                    humantime::format_duration(whole_seconds(seconds(ahead))),
                    self.document_type,
                    humantime::format_duration(lifetime),
                ),
            ));
        }
        Ok(())
    }
}

/// `d` without its fraction of a second, for people.
fn whole_seconds(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
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
    /// Refused, for the reason given: a check of Caravan's that failed, or the recipient's own
    /// business reason.
    Rejected { code: RejectCode, reason: String },
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

    fn header(created_at_ms: i64) -> Header {
        Header {
            message_id: MessageId::generate(),
            sender: "KZ".parse().unwrap(),
            recipient: "CN".parse().unwrap(),
            document_type: DocumentType::Phytosanitary,
            document_id: "EPHYTO-1".into(),
            content_type: "application/xml".into(),
            payload_sha256: [0; 32],
            payload_length: 0,
            created_at: Timestamp::from_millis(created_at_ms),
            key_id: "0123456789abcdef".parse().unwrap(),
            supersedes: None,
            in_reply_to: None,
        }
    }

    #[test]
    fn created_at_is_held_to_the_skew_ahead_and_the_lifetime_behind_bounds_included() {
        let now = Timestamp::from_millis(1_800_000_000_000);
        let skew = Duration::from_secs(300);
        let lifetime = Duration::from_secs(7 * 86_400);
        let check = |ms: i64| header(ms).check_created_at(now, skew, lifetime);
        let code = |ms: i64| check(ms).unwrap_err().code;
        let at = now.as_millis();
        // The bounds themselves pass; one millisecond beyond either is refused.
        assert!(check(at).is_ok());
        assert!(check(at + 300_000).is_ok());
        assert_eq!(code(at + 300_001), RefusalCode::CreatedAtFuture);
        assert!(check(at - 7 * 86_400_000).is_ok());
        assert_eq!(code(at - 7 * 86_400_000 - 1), RefusalCode::CreatedAtExpired);
        // 1970 and 2100, and the ends of the wire's range, without overflow.
        assert_eq!(code(0), RefusalCode::CreatedAtExpired);
        assert_eq!(code(4_102_444_800_000), RefusalCode::CreatedAtFuture);
        assert_eq!(code(i64::MIN), RefusalCode::CreatedAtExpired);
        assert_eq!(code(i64::MAX), RefusalCode::CreatedAtFuture);
        // The refusal names the bound, the setting and the document type.
        let future = check(at + 3_600_000).unwrap_err().detail;
        assert!(
            future.contains("1h ahead")
                && future.contains("5m of clock skew")
                && future.contains("created_at_skew_secs"),
            "{future}"
        );
        let old = check(at - 8 * 86_400_000).unwrap_err().detail;
        assert!(
            old.contains("8days old")
                && old.contains("e-phyto messages live 7days")
                && old.contains("message_ttl_secs"),
            "{old}"
        );
        // No skew at all: one millisecond ahead is refused.
        assert_eq!(
            header(at + 1)
                .check_created_at(now, Duration::ZERO, lifetime)
                .unwrap_err()
                .code,
            RefusalCode::CreatedAtFuture
        );
    }

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
