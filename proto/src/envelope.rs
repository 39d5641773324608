//! Sealing a document into a signed envelope, and opening one: every check a receiver makes
//! before it may believe the header, in a fixed order so that each refusal names the first
//! rule broken.

use caravan_common::{
    Refusal, RefusalCode, Timestamp,
    envelope::Header,
    signing::{Purpose, SigningKey, sha256},
    trust::{SigningKeyEntry, TrustSet},
};
use prost::Message;

use crate::{digest32, signature_of, signature_parts, v1};

/// Encode `header`, sign it with `key` and wrap it with `payload`.
pub fn seal(header: &Header, payload: Vec<u8>, key: &SigningKey) -> v1::Envelope {
    let bytes = v1::Header::from(header).encode_to_vec();
    let signature = key.sign(Purpose::Header, &bytes);
    v1::Envelope {
        header: bytes,
        signature: Some(signature_of(key.key_id(), signature)),
        payload,
    }
}

impl From<&Header> for v1::Header {
    fn from(h: &Header) -> Self {
        Self {
            message_id: h.message_id.to_string(),
            sender: h.sender.to_string(),
            recipient: h.recipient.to_string(),
            document_type: h.document_type.to_string(),
            document_id: h.document_id.clone(),
            content_type: h.content_type.clone(),
            payload_sha256: h.payload_sha256.to_vec(),
            payload_length: h.payload_length,
            created_at_ms: h.created_at.as_millis(),
            key_id: h.key_id.to_string(),
            supersedes: h.supersedes.map(|id| id.to_string()).unwrap_or_default(),
            in_reply_to: h.in_reply_to.map(|id| id.to_string()).unwrap_or_default(),
        }
    }
}

impl TryFrom<v1::Header> for Header {
    type Error = Refusal;
    fn try_from(h: v1::Header) -> Result<Self, Refusal> {
        fn field<T, E: std::fmt::Display>(name: &str, r: Result<T, E>) -> Result<T, Refusal> {
            r.map_err(|e| Refusal::new(RefusalCode::InvalidHeader, format!("header {name}: {e}")))
        }
        let document_id = h.document_id.trim();
        if document_id.is_empty() || document_id.len() > 256 || document_id != h.document_id {
            return Err(Refusal::new(
                RefusalCode::InvalidHeader,
                "header document_id: must be 1 to 256 bytes without surrounding spaces",
            ));
        }
        if h.content_type.is_empty() || h.content_type.len() > 128 {
            return Err(Refusal::new(
                RefusalCode::InvalidHeader,
                "header content_type: must be a media type of 1 to 128 bytes",
            ));
        }
        Ok(Header {
            message_id: field("message_id", h.message_id.parse())?,
            sender: field("sender", h.sender.parse())?,
            recipient: field("recipient", h.recipient.parse())?,
            document_type: field("document_type", h.document_type.parse())?,
            document_id: h.document_id,
            content_type: h.content_type,
            payload_sha256: digest32(&h.payload_sha256).ok_or_else(|| {
                Refusal::new(
                    RefusalCode::InvalidHeader,
                    "header payload_sha256: must be 32 bytes",
                )
            })?,
            payload_length: h.payload_length,
            created_at: Timestamp::from_millis(h.created_at_ms),
            key_id: field("key_id", h.key_id.parse())?,
            in_reply_to: match h.in_reply_to.as_str() {
                "" => None,
                id => Some(field("in_reply_to", id.parse())?),
            },
            supersedes: match h.supersedes.as_str() {
                "" => None,
                id => Some(field("supersedes", id.parse())?),
            },
        })
    }
}

/// A verified envelope: its decoded header, the digest of the header bytes, and the key that
/// signed it.
#[derive(Debug, Clone)]
pub struct Opened {
    pub header: Header,
    pub header_sha256: [u8; 32],
    pub signer: SigningKeyEntry,
}

/// Check `envelope` end to end against `trust`, judging the signing key at time `at`:
///
/// 1. the signature names a registered key, owned by `expected_signer` when one is given (the
///    participant in the caller's certificate, at the hub), valid at `at`;
/// 2. the signature verifies over the header bytes, as they arrived;
/// 3. only then the header is decoded and its fields checked; its key id must be the
///    signature's, its sender the key's owner, and the key must be allowed its document type;
/// 4. the payload has the length and SHA-256 the header states.
///
/// The recipient is not judged here: the hub and the receiving spoke each have their own rule.
pub fn open(
    envelope: &v1::Envelope,
    trust: &TrustSet,
    expected_signer: Option<caravan_common::ParticipantId>,
    at: Timestamp,
) -> Result<Opened, Refusal> {
    let opened = open_header(envelope, trust, expected_signer, at)?;
    check_payload(&opened.header, &envelope.payload)?;
    Ok(opened)
}

/// Steps 1 to 3 of [`open`]: everything but the payload, so that a large document can be
/// judged (and refused) before its payload is read.
pub fn open_header(
    envelope: &v1::Envelope,
    trust: &TrustSet,
    expected_signer: Option<caravan_common::ParticipantId>,
    at: Timestamp,
) -> Result<Opened, Refusal> {
    let (key_id, signature) = signature_parts(envelope.signature.as_ref(), "envelope")?;
    let owner = trust.registered_key(key_id)?.participant;
    let signer = trust
        .signer_key(key_id, expected_signer.unwrap_or(owner), at)?
        .clone();
    signer
        .public_key
        .verify(Purpose::Header, &envelope.header, signature)
        .map_err(|_| {
            Refusal::new(
                RefusalCode::BadSignature,
                format!("header signature does not verify with key {key_id}"),
            )
        })?;

    let decoded = v1::Header::decode(envelope.header.as_slice()).map_err(|e| {
        Refusal::new(
            RefusalCode::MalformedHeader,
            format!("signed header does not decode: {e}"),
        )
    })?;
    let header = Header::try_from(decoded)?;
    if header.key_id != key_id {
        return Err(Refusal::new(
            RefusalCode::InvalidHeader,
            format!(
                "header key_id {} differs from the signature's key {key_id}",
                header.key_id
            ),
        ));
    }
    if header.sender != owner {
        return Err(Refusal::new(
            RefusalCode::SenderMismatch,
            format!(
                "header names sender {}, but key {key_id} belongs to {owner}",
                header.sender
            ),
        ));
    }
    TrustSet::check_document_type(&signer, header.document_type)?;
    Ok(Opened {
        header_sha256: sha256(&envelope.header),
        header,
        signer,
    })
}

/// Step 4 of [`open`]: the payload has the length and SHA-256 the header states.
pub fn check_payload(header: &Header, payload: &[u8]) -> Result<(), Refusal> {
    let length = payload.len() as u64;
    if length != header.payload_length {
        return Err(Refusal::new(
            RefusalCode::PayloadLengthMismatch,
            format!(
                "payload is {length} bytes, header states {}",
                header.payload_length
            ),
        ));
    }
    if sha256(payload) != header.payload_sha256 {
        return Err(Refusal::new(
            RefusalCode::PayloadHashMismatch,
            "payload SHA-256 differs from the one in the signed header",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use caravan_common::{
        DocumentType, MessageId, ParticipantId,
        trust::{Participant, ParticipantStatus, SigningKeyEntry},
    };

    use super::*;

    struct World {
        kz: SigningKey,
        cn: SigningKey,
        trust: TrustSet,
    }

    fn pid(s: &str) -> ParticipantId {
        s.parse().unwrap()
    }

    fn world() -> World {
        let kz = SigningKey::generate();
        let cn = SigningKey::generate();
        let entry = |p: &str, k: &SigningKey| SigningKeyEntry {
            participant: pid(p),
            public_key: k.public().clone(),
            document_types: vec![
                DocumentType::Phytosanitary,
                DocumentType::CertificateOfOrigin,
            ],
            not_before: None,
            not_after: None,
            revoked: None,
        };
        let participant = |id: &str| Participant {
            id: pid(id),
            name: id.into(),
            contact: String::new(),
            status: ParticipantStatus::Active,
            country: None,
            issuing_authorities: Vec::new(),
            stage: caravan_common::trust::ParticipantStage::Production,
        };
        let trust = TrustSet::new(
            Default::default(),
            [participant("KZ"), participant("CN")],
            [entry("KZ", &kz), entry("CN", &cn)],
            [],
            [],
        )
        .unwrap();
        World { kz, cn, trust }
    }

    fn header(key: &SigningKey, sender: &str, payload: &[u8]) -> Header {
        Header {
            message_id: MessageId::generate(),
            sender: pid(sender),
            recipient: pid("CN"),
            document_type: DocumentType::Phytosanitary,
            document_id: "123ABC".into(),
            content_type: "application/xml".into(),
            payload_sha256: sha256(payload),
            payload_length: payload.len() as u64,
            created_at: Timestamp::now(),
            key_id: key.key_id(),
            supersedes: None,
            in_reply_to: None,
        }
    }

    fn code(r: Result<Opened, Refusal>) -> RefusalCode {
        r.unwrap_err().code
    }

    const PAYLOAD: &[u8] = b"<SPSCertificate/>";

    #[test]
    fn opens_a_sealed_envelope() {
        let w = world();
        let h = header(&w.kz, "KZ", PAYLOAD);
        let env = seal(&h, PAYLOAD.to_vec(), &w.kz);
        let opened = open(&env, &w.trust, Some(pid("KZ")), Timestamp::now()).unwrap();
        assert_eq!(opened.header, h);
        assert_eq!(opened.header_sha256, sha256(&env.header));
        // A verifier that does not know the sender in advance accepts it too.
        assert!(open(&env, &w.trust, None, Timestamp::now()).is_ok());
    }

    #[test]
    fn tampered_header_is_refused() {
        let w = world();
        let mut env = seal(&header(&w.kz, "KZ", PAYLOAD), PAYLOAD.to_vec(), &w.kz);
        let last = env.header.len() - 1;
        env.header[last] ^= 1;
        assert_eq!(
            code(open(&env, &w.trust, Some(pid("KZ")), Timestamp::now())),
            RefusalCode::BadSignature
        );
    }

    #[test]
    fn tampered_payload_is_refused() {
        let w = world();
        let mut env = seal(&header(&w.kz, "KZ", PAYLOAD), PAYLOAD.to_vec(), &w.kz);
        env.payload[1] = b'X';
        assert_eq!(
            code(open(&env, &w.trust, None, Timestamp::now())),
            RefusalCode::PayloadHashMismatch
        );
        env.payload.push(b' ');
        assert_eq!(
            code(open(&env, &w.trust, None, Timestamp::now())),
            RefusalCode::PayloadLengthMismatch
        );
    }

    #[test]
    fn wrong_key_is_refused() {
        let w = world();
        // Signed by an unregistered key.
        let stranger = SigningKey::generate();
        let env = seal(
            &header(&stranger, "KZ", PAYLOAD),
            PAYLOAD.to_vec(),
            &stranger,
        );
        assert_eq!(
            code(open(&env, &w.trust, None, Timestamp::now())),
            RefusalCode::UnknownKey
        );
        // Signed by KZ's key but claiming CN's key id: the signature does not verify.
        let mut env = seal(&header(&w.cn, "CN", PAYLOAD), PAYLOAD.to_vec(), &w.kz);
        env.signature.as_mut().unwrap().key_id = w.cn.key_id().to_string();
        assert_eq!(
            code(open(&env, &w.trust, None, Timestamp::now())),
            RefusalCode::BadSignature
        );
    }

    #[test]
    fn key_of_another_participant_is_refused() {
        let w = world();
        // CN's key, presented by a caller whose certificate says KZ.
        let env = seal(&header(&w.cn, "CN", PAYLOAD), PAYLOAD.to_vec(), &w.cn);
        assert_eq!(
            code(open(&env, &w.trust, Some(pid("KZ")), Timestamp::now())),
            RefusalCode::SenderMismatch
        );
        // KZ's key signing a header that claims CN as the sender.
        let env = seal(&header(&w.kz, "CN", PAYLOAD), PAYLOAD.to_vec(), &w.kz);
        assert_eq!(
            code(open(&env, &w.trust, None, Timestamp::now())),
            RefusalCode::SenderMismatch
        );
    }

    #[test]
    fn wrong_domain_separation_is_refused() {
        let w = world();
        let h = header(&w.kz, "KZ", PAYLOAD);
        let mut env = seal(&h, PAYLOAD.to_vec(), &w.kz);
        // The same header bytes signed as if they were a receipt.
        let sig = w.kz.sign(Purpose::Receipt, &env.header);
        env.signature.as_mut().unwrap().signature = sig.to_vec();
        assert_eq!(
            code(open(&env, &w.trust, None, Timestamp::now())),
            RefusalCode::BadSignature
        );
    }

    #[test]
    fn undecodable_and_invalid_headers_are_refused_after_verification() {
        let w = world();
        let garbage = vec![0xff, 0xff, 0xff];
        let sig = w.kz.sign(Purpose::Header, &garbage);
        let env = v1::Envelope {
            header: garbage,
            signature: Some(signature_of(w.kz.key_id(), sig)),
            payload: PAYLOAD.to_vec(),
        };
        assert_eq!(
            code(open(&env, &w.trust, None, Timestamp::now())),
            RefusalCode::MalformedHeader
        );

        let mut h = v1::Header::from(&header(&w.kz, "KZ", PAYLOAD));
        h.document_type = "e-cert".into();
        let bytes = h.encode_to_vec();
        let sig = w.kz.sign(Purpose::Header, &bytes);
        let env = v1::Envelope {
            header: bytes,
            signature: Some(signature_of(w.kz.key_id(), sig)),
            payload: PAYLOAD.to_vec(),
        };
        let refusal = open(&env, &w.trust, None, Timestamp::now()).unwrap_err();
        assert_eq!(refusal.code, RefusalCode::InvalidHeader);
        assert!(
            refusal.detail.contains("document_type"),
            "{}",
            refusal.detail
        );
    }

    #[test]
    fn document_type_must_be_allowed() {
        let w = world();
        let mut h = header(&w.kz, "KZ", PAYLOAD);
        h.document_type = DocumentType::Invoice;
        let env = seal(&h, PAYLOAD.to_vec(), &w.kz);
        assert_eq!(
            code(open(&env, &w.trust, None, Timestamp::now())),
            RefusalCode::DocumentTypeNotAllowed
        );
    }
}
