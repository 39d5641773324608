//! Stored records carry their format's version, so that a record written in an older format
//! still decodes after the format changes.
//!
//! A versioned record is a mark byte, 0, then its version (one byte), then its body in the
//! record type's own encoding (protobuf at the hub, JSON at a spoke). Neither encoding can
//! start with a 0 byte (protobuf has no field 0; JSON starts with `{` or another printable
//! character), so a record written before versions, which has no mark, is read as version 0,
//! whose body is the whole value. Each record type says which versions it reads
//! ([`Record::decode_version`]); one from a newer binary is refused, never misread.
//!
//! Not every stored value is a record: bytes that travel or are signed or hashed (envelopes,
//! exchange-log entries, whose hash is the Merkle tree's leaf) are stored exactly as they are.

use super::StoreError;

/// The first byte of a versioned record.
const MARK: u8 = 0;

/// A record type stored with its version.
pub trait Record: Sized {
    /// Names the record in errors and reports.
    const WHAT: &'static str;
    /// The version this binary writes.
    const VERSION: u8;

    /// The body in the current version's encoding.
    fn encode_body(&self) -> Vec<u8>;

    /// Decode a body of version `version` (0: written before records carried versions), at
    /// most [`Self::VERSION`].
    fn decode_version(version: u8, body: &[u8]) -> Result<Self, StoreError>;

    /// The record as stored: mark, version, body.
    fn encode(&self) -> Vec<u8> {
        let body = self.encode_body();
        let mut out = Vec::with_capacity(body.len() + 2);
        out.extend_from_slice(&[MARK, Self::VERSION]);
        out.extend_from_slice(&body);
        out
    }

    /// A stored record of any version this binary reads.
    fn decode(stored: &[u8]) -> Result<Self, StoreError> {
        let (version, body) = split(stored);
        if version > Self::VERSION {
            return Err(StoreError::corrupt(
                Self::WHAT,
                format!(
                    "record version {version}, written by a newer Caravan (this one reads up to {})",
                    Self::VERSION
                ),
            ));
        }
        Self::decode_version(version, body)
    }
}

/// The version of a stored value and its body (version 0: no mark, the whole value).
pub fn split(stored: &[u8]) -> (u8, &[u8]) {
    match stored {
        [MARK, version, body @ ..] => (*version, body),
        _ => (0, stored),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Note(String);

    impl Record for Note {
        const WHAT: &'static str = "note";
        const VERSION: u8 = 2;
        fn encode_body(&self) -> Vec<u8> {
            format!("v2:{}", self.0).into_bytes()
        }
        fn decode_version(version: u8, body: &[u8]) -> Result<Self, StoreError> {
            let text = String::from_utf8_lossy(body);
            match version {
                0 | 1 => Ok(Note(text.into_owned())),
                _ => text
                    .strip_prefix("v2:")
                    .map(|t| Note(t.to_owned()))
                    .ok_or_else(|| StoreError::corrupt(Self::WHAT, "no prefix")),
            }
        }
    }

    #[test]
    fn records_carry_their_version_and_old_ones_still_decode() {
        let stored = Note("hello".into()).encode();
        assert_eq!(&stored[..2], &[0, 2]);
        assert_eq!(Note::decode(&stored).unwrap(), Note("hello".into()));
        // Written before versions: no mark.
        assert_eq!(Note::decode(b"{old}").unwrap(), Note("{old}".into()));
        assert_eq!(split(b""), (0, &b""[..]));
        // Version 1, an older format.
        assert_eq!(Note::decode(&[0, 1, b'x']).unwrap(), Note("x".into()));
        // From a newer binary: refused.
        let err = Note::decode(&[0, 3, b'x']).unwrap_err();
        assert!(err.to_string().contains("newer Caravan"), "{err}");
    }
}
