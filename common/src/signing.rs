//! ed25519 signatures over domain-separated bytes.
//!
//! Every signature in Caravan is made over DSSE's pre-authentication encoding (PAE) of the
//! exact bytes that travel, with a payload type naming what kind of object they are. A header
//! signature can therefore never be passed off as a receipt or an acknowledgement, and nothing
//! has to be re-encoded (or canonicalised) before it is checked.

use std::{fmt, fs, io::Write, os::unix::fs::OpenOptionsExt, path::Path};

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use ed25519_dalek::{
    Signer,
    pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding},
};
use sha2::{Digest, Sha256};

use crate::KeyId;

/// What a signature vouches for. Each purpose has its own DSSE payload type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A document header, signed by the sending participant.
    Header,
    /// A hub receipt, signed by the hub.
    Receipt,
    /// An acknowledgement, signed by the receiving participant.
    Ack,
    /// The Merkle root of a batch of acknowledgements, signed by the receiving participant.
    AckBatch,
    /// A trust list, signed by the hub's anchor key.
    TrustList,
    /// A signed tree head of the exchange log, signed by the hub.
    TreeHead,
    /// A conformance report's JSON as the hub recorded it, signed with its receipt key.
    ConformanceReport,
    /// A Readiness Scorecard entry's JSON as the hub recorded it, signed with its receipt key.
    ScorecardEntry,
}

impl Purpose {
    /// The DSSE payload type bound into the signature.
    pub fn payload_type(&self) -> &'static str {
        match self {
            Self::Header => "application/vnd.caravan.header.v1+protobuf",
            Self::Receipt => "application/vnd.caravan.receipt.v1+protobuf",
            Self::Ack => "application/vnd.caravan.ack.v1+protobuf",
            Self::AckBatch => "application/vnd.caravan.ack-batch.v1+protobuf",
            Self::TrustList => "application/vnd.caravan.trustlist.v1+protobuf",
            Self::TreeHead => "application/vnd.caravan.treehead.v1",
            Self::ConformanceReport => "application/vnd.caravan.conformance-report.v1+json",
            Self::ScorecardEntry => "application/vnd.caravan.scorecard-entry.v1+json",
        }
    }
}

/// DSSE v1 pre-authentication encoding:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + payload_type.len() + 32);
    write!(
        out,
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        body.len()
    )
    .expect("writing to a Vec cannot fail");
    out.extend_from_slice(body);
    out
}

/// SHA-256 of some bytes.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Problems with key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The key file exists already; keys are never overwritten.
    #[error("key file {0} exists already; refusing to overwrite a key")]
    Exists(String),
    /// The key file is not a PKCS#8 ed25519 private key in PEM form (or the key cannot be
    /// written as one); the PKCS#8 decoder's error is the source.
    #[error("key file {path} is not a PKCS#8 PEM ed25519 private key")]
    Malformed {
        path: String,
        #[source]
        source: ed25519_dalek::pkcs8::Error,
    },
    /// A public key is not 32 bytes of base64 forming a valid ed25519 point.
    #[error("public key {0:?} is not a base64 ed25519 public key (32 bytes)")]
    BadPublicKey(String),
}

/// A private ed25519 key that signs on behalf of a participant or of the hub.
#[derive(Clone)]
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    public: PublicKey,
}

impl SigningKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Self {
        Self::from_dalek(ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng))
    }

    fn from_dalek(key: ed25519_dalek::SigningKey) -> Self {
        let public = PublicKey::from_dalek(key.verifying_key());
        Self { key, public }
    }

    /// Read a PKCS#8 PEM key file: v1 (RFC 5208, the seed only, as [`save`](Self::save)
    /// writes) or v2 (RFC 5958, with the public key, as earlier versions wrote).
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&text).map_err(|source| {
            KeyError::Malformed {
                path: path.display().to_string(),
                source,
            }
        })?;
        Ok(Self::from_dalek(key))
    }

    /// Write the key as a PKCS#8 v1 PEM file (RFC 8410's `PRIVATE KEY`, the seed only, which
    /// OpenSSL, Python's `cryptography` and Go read; v2 with the public key inside is refused
    /// by OpenSSL 3.0) readable by its owner only (mode 0600). An existing file is never
    /// overwritten.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let seed = ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: self.key.to_bytes(),
            public_key: None,
        };
        let pem = seed
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|source| KeyError::Malformed {
                path: path.display().to_string(),
                source,
            })?;
        write_secret_file(path, pem.as_bytes())
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    pub fn key_id(&self) -> KeyId {
        self.public.key_id()
    }

    /// Sign `body` for `purpose`.
    pub fn sign(&self, purpose: Purpose, body: &[u8]) -> [u8; 64] {
        self.key.sign(&pae(purpose.payload_type(), body)).to_bytes()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

/// Create `path` with mode 0600 and write `contents`; fails if the file exists.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> Result<(), KeyError> {
    let shown = || path.display().to_string();
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => KeyError::Exists(shown()),
            _ => KeyError::Io {
                path: shown(),
                source,
            },
        })?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|source| KeyError::Io {
            path: shown(),
            source,
        })
}

/// A public ed25519 key, decoded once (decoding costs more than a hash lookup).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: ed25519_dalek::VerifyingKey,
    id: KeyId,
}

/// A signature did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("signature does not verify")]
pub struct BadSignature;

impl PublicKey {
    fn from_dalek(key: ed25519_dalek::VerifyingKey) -> Self {
        let digest = sha256(key.as_bytes());
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        Self {
            key,
            id: KeyId::from_bytes(id),
        }
    }

    pub fn from_bytes(bytes: &[u8; 32]) -> Option<Self> {
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .ok()
            .map(Self::from_dalek)
    }

    /// Parse the base64 form used in configs and the trust list.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bad = || KeyError::BadPublicKey(text.to_owned());
        let bytes: [u8; 32] = BASE64
            .decode(text.trim())
            .map_err(|_| bad())?
            .try_into()
            .map_err(|_| bad())?;
        Self::from_bytes(&bytes).ok_or_else(bad)
    }

    pub fn to_base64(&self) -> String {
        BASE64.encode(self.key.as_bytes())
    }

    /// The raw 32 bytes.
    pub fn raw(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    pub fn key_id(&self) -> KeyId {
        self.id
    }

    /// Check `signature` over `body` for `purpose`. Uses strict verification, which refuses
    /// weak keys and malleable signatures.
    pub fn verify(
        &self,
        purpose: Purpose,
        body: &[u8],
        signature: &[u8],
    ) -> Result<(), BadSignature> {
        let signature: [u8; 64] = signature.try_into().map_err(|_| BadSignature)?;
        let signature = ed25519_dalek::Signature::from_bytes(&signature);
        self.key
            .verify_strict(&pae(purpose.payload_type(), body), &signature)
            .map_err(|_| BadSignature)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn pae_matches_the_dsse_specification() {
        // The DSSE v1 specification's worked example.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    /// New key files are PKCS#8 v1, which OpenSSL 3.0 reads (it refuses v2); v2 files written
    /// by earlier versions still load.
    #[test]
    fn key_files_are_pkcs8_v1_and_v2_files_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate();
        let path = dir.path().join("signing.key");
        key.save(&path).unwrap();
        let pem = fs::read_to_string(&path).unwrap();
        let der = ed25519_dalek::pkcs8::spki::der::pem::decode_vec(pem.as_bytes())
            .unwrap()
            .1;
        // SEQUENCE { INTEGER 0 (v1), AlgorithmIdentifier { 1.3.101.112 }, OCTET STRING } and
        // nothing after: 48 bytes.
        assert_eq!(der.len(), 48, "{der:02x?}");
        assert_eq!(&der[2..5], &[0x02, 0x01, 0x00]);
        assert_eq!(SigningKey::load(&path).unwrap().key_id(), key.key_id());

        let v2 = dir.path().join("v2.key");
        let pem = key.key.to_pkcs8_pem(LineEnding::LF).unwrap();
        assert!(
            ed25519_dalek::pkcs8::spki::der::pem::decode_vec(pem.as_bytes())
                .unwrap()
                .1
                .len()
                > 48
        );
        fs::write(&v2, pem.as_bytes()).unwrap();
        assert_eq!(SigningKey::load(&v2).unwrap().key_id(), key.key_id());

        // OpenSSL reads it and finds the same public key, where it is installed.
        match std::process::Command::new("openssl")
            .args(["pkey", "-pubout", "-outform", "DER", "-in"])
            .arg(&path)
            .output()
        {
            Ok(out) => {
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert_eq!(&out.stdout[out.stdout.len() - 32..], key.public().raw());
            }
            Err(e) => eprintln!("openssl not run ({e}): only the DER was checked"),
        }
    }

    #[test]
    fn sign_and_verify() {
        let key = SigningKey::generate();
        let sig = key.sign(Purpose::Header, b"header bytes");
        assert_eq!(
            key.public().verify(Purpose::Header, b"header bytes", &sig),
            Ok(())
        );
    }

    #[test]
    fn tampered_bytes_fail() {
        let key = SigningKey::generate();
        let sig = key.sign(Purpose::Header, b"header bytes");
        assert_eq!(
            key.public().verify(Purpose::Header, b"header byteS", &sig),
            Err(BadSignature)
        );
        let mut bad = sig;
        bad[10] ^= 1;
        assert_eq!(
            key.public().verify(Purpose::Header, b"header bytes", &bad),
            Err(BadSignature)
        );
        assert_eq!(
            key.public()
                .verify(Purpose::Header, b"header bytes", &sig[..63]),
            Err(BadSignature)
        );
    }

    #[test]
    fn wrong_key_fails() {
        let key = SigningKey::generate();
        let other = SigningKey::generate();
        let sig = key.sign(Purpose::Header, b"header bytes");
        assert_eq!(
            other
                .public()
                .verify(Purpose::Header, b"header bytes", &sig),
            Err(BadSignature)
        );
    }

    #[test]
    fn domain_separation_binds_the_purpose() {
        let key = SigningKey::generate();
        let sig = key.sign(Purpose::Header, b"same bytes");
        assert_eq!(
            key.public().verify(Purpose::Receipt, b"same bytes", &sig),
            Err(BadSignature)
        );
        assert_eq!(
            key.public().verify(Purpose::Ack, b"same bytes", &sig),
            Err(BadSignature)
        );
        // A raw signature over the bytes without PAE framing does not verify either.
        let raw = ed25519_dalek::Signer::sign(&key.key, b"same bytes").to_bytes();
        assert_eq!(
            key.public().verify(Purpose::Header, b"same bytes", &raw),
            Err(BadSignature)
        );
    }

    #[test]
    fn key_files_are_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        let key = SigningKey::generate();
        key.save(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = SigningKey::load(&path).unwrap();
        assert_eq!(loaded.key_id(), key.key_id());
        assert!(matches!(
            SigningKey::generate().save(&path),
            Err(KeyError::Exists(_))
        ));
        assert_eq!(SigningKey::load(&path).unwrap().key_id(), key.key_id());
    }

    #[test]
    fn a_key_file_that_is_no_key_is_named_with_the_decoder_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        fs::write(
            &path,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = SigningKey::load(&path).err().unwrap();
        assert!(
            matches!(&e, KeyError::Malformed { path: p, .. } if p.ends_with("signing.key")),
            "{e}"
        );
        assert!(std::error::Error::source(&e).is_some(), "{e}");
    }

    #[test]
    fn public_keys_parse_from_base64() {
        let key = SigningKey::generate();
        let parsed = PublicKey::from_base64(&key.public().to_base64()).unwrap();
        assert_eq!(&parsed, key.public());
        assert!(PublicKey::from_base64("AAAA").is_err());
        assert!(PublicKey::from_base64("not base64!").is_err());
    }
}
