//! Identifiers of participants, messages and keys, parsed once at the boundary so the rest of
//! the code never handles an unchecked string.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// A participant id is an ISO 3166-1 alpha-2 code: two uppercase ASCII letters.
    #[error(
        "participant id {0:?} is not an ISO 3166-1 alpha-2 code (two uppercase letters, e.g. KZ)"
    )]
    Participant(String),
    /// A message id is a UUID version 7 in canonical hyphenated form.
    #[error("message id {0:?} is not a UUIDv7 in canonical hyphenated form")]
    Message(String),
    /// A key id is 16 lowercase hex digits.
    #[error("key id {0:?} is not 16 lowercase hex digits")]
    Key(String),
}

/// A participant of the network, named by its ISO 3166-1 alpha-2 country code (`KZ`, `CN` ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ParticipantId([u8; 2]);

impl ParticipantId {
    /// `ZZ`, the conformance kit's own identity: a code ISO 3166-1 leaves to users and assigns
    /// to no country.
    pub const CONFORMANCE: ParticipantId = ParticipantId(*b"ZZ");

    pub fn as_str(&self) -> &str {
        // Only ever built from two ASCII uppercase letters, so this cannot fail.
        std::str::from_utf8(&self.0).expect("participant id is ASCII")
    }
}

impl FromStr for ParticipantId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        match s.as_bytes() {
            [a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => Ok(Self([*a, *b])),
            _ => Err(IdError::Participant(s.to_owned())),
        }
    }
}

impl TryFrom<String> for ParticipantId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        s.parse()
    }
}

impl From<ParticipantId> for String {
    fn from(id: ParticipantId) -> String {
        id.as_str().to_owned()
    }
}

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message id: a UUIDv7, unique per sender, sortable by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MessageId(uuid::Uuid);

impl MessageId {
    /// A fresh id for a message created now.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7())
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

impl FromStr for MessageId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let err = || IdError::Message(s.to_owned());
        // Only the canonical lowercase hyphenated form is accepted, so that one message has one
        // spelling, in dedup keys as everywhere else.
        let uuid = uuid::Uuid::try_parse(s).map_err(|_| err())?;
        if uuid.get_version_num() != 7 || uuid.hyphenated().to_string() != s {
            return Err(err());
        }
        Ok(Self(uuid))
    }
}

impl TryFrom<String> for MessageId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        s.parse()
    }
}

impl From<MessageId> for String {
    fn from(id: MessageId) -> String {
        id.to_string()
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Names a document-signing key: the first 8 bytes of SHA-256 over the raw public key, in hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyId([u8; 8]);

impl KeyId {
    pub fn from_bytes(bytes: [u8; 8]) -> Self {
        Self(bytes)
    }
}

impl FromStr for KeyId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let err = || IdError::Key(s.to_owned());
        // Lowercase only: a key id is written one way, so it compares as text too.
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(err());
        }
        let mut out = [0u8; 8];
        hex::decode_to_slice(s, &mut out).map_err(|_| err())?;
        Ok(Self(out))
    }
}

impl TryFrom<String> for KeyId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        s.parse()
    }
}

impl From<KeyId> for String {
    fn from(id: KeyId) -> String {
        id.to_string()
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn participant_ids() {
        assert_eq!("KZ".parse::<ParticipantId>().unwrap().as_str(), "KZ");
        for bad in ["kz", "K", "KZA", "", "K1", "ÄZ"] {
            assert!(bad.parse::<ParticipantId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn message_ids_are_canonical_v7() {
        let id = MessageId::generate();
        assert_eq!(id.to_string().parse::<MessageId>().unwrap(), id);
        assert!(id.to_string().to_uppercase().parse::<MessageId>().is_err());
        // A version 4 UUID is refused.
        assert!(
            "0b1e4a4e-5a8c-4d3b-9f43-3f2b4e2a9f10"
                .parse::<MessageId>()
                .is_err()
        );
        assert!("not-a-uuid".parse::<MessageId>().is_err());
    }

    #[test]
    fn key_ids_round_trip() {
        let id: KeyId = "0123456789abcdef".parse().unwrap();
        assert_eq!(id.to_string(), "0123456789abcdef");
        for bad in [
            "0123456789ABCDEF",
            "0123",
            "0123456789abcdeg",
            "0123456789abcdef0",
        ] {
            assert!(bad.parse::<KeyId>().is_err(), "{bad}");
        }
    }
}
