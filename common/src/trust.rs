//! The participants and keys a verifier trusts, and the rules that judge a signing key.
//!
//! Today the set is read from configuration; the signed trust list published by the hub will
//! fill the same structure, so the rules below do not change when the source does.

use std::collections::{BTreeMap, HashMap};

use crate::{
    DocumentType, KeyId, ParticipantId, Refusal, RefusalCode, Timestamp, signing::PublicKey,
};

/// A participant of the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub id: ParticipantId,
    /// Display name, e.g. "Kazakhstan".
    pub name: String,
}

/// A participant's document-signing key and what it may sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyEntry {
    pub participant: ParticipantId,
    pub public_key: PublicKey,
    /// Document types this key may sign.
    pub document_types: Vec<DocumentType>,
    /// Start of validity; `None` for "since always".
    pub not_before: Option<Timestamp>,
    /// End of validity; `None` for "until revoked".
    pub not_after: Option<Timestamp>,
}

impl SigningKeyEntry {
    pub fn key_id(&self) -> KeyId {
        self.public_key.key_id()
    }
}

/// Why a trust set could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustSetError {
    #[error("participant {0} is listed twice")]
    DuplicateParticipant(ParticipantId),
    #[error("key {0} is listed twice")]
    DuplicateKey(KeyId),
    #[error("key {key} belongs to {participant}, which is not a listed participant")]
    KeyWithoutParticipant {
        key: KeyId,
        participant: ParticipantId,
    },
}

/// Everything needed to judge signatures: participants, their keys, and the hub's keys.
#[derive(Debug, Clone, Default)]
pub struct TrustSet {
    participants: BTreeMap<ParticipantId, Participant>,
    keys: HashMap<KeyId, SigningKeyEntry>,
    hub_keys: HashMap<KeyId, PublicKey>,
}

impl TrustSet {
    pub fn new(
        participants: impl IntoIterator<Item = Participant>,
        keys: impl IntoIterator<Item = SigningKeyEntry>,
        hub_keys: impl IntoIterator<Item = PublicKey>,
    ) -> Result<Self, TrustSetError> {
        let mut set = Self::default();
        for p in participants {
            if set.participants.insert(p.id, p.clone()).is_some() {
                return Err(TrustSetError::DuplicateParticipant(p.id));
            }
        }
        for k in keys {
            let key = k.key_id();
            if !set.participants.contains_key(&k.participant) {
                return Err(TrustSetError::KeyWithoutParticipant {
                    key,
                    participant: k.participant,
                });
            }
            if set.keys.insert(key, k).is_some() {
                return Err(TrustSetError::DuplicateKey(key));
            }
        }
        set.hub_keys = hub_keys.into_iter().map(|k| (k.key_id(), k)).collect();
        Ok(set)
    }

    pub fn participant(&self, id: ParticipantId) -> Option<&Participant> {
        self.participants.get(&id)
    }

    pub fn participants(&self) -> impl Iterator<Item = &Participant> {
        self.participants.values()
    }

    pub fn key(&self, id: KeyId) -> Option<&SigningKeyEntry> {
        self.keys.get(&id)
    }

    pub fn hub_key(&self, id: KeyId) -> Option<&PublicKey> {
        self.hub_keys.get(&id)
    }

    /// Find the key `key_id` and check that `signer` owns it and that it was valid at `at`.
    /// Whether it may sign a given document type is checked by [`Self::check_document_type`]
    /// once the signed header has been verified and decoded.
    pub fn signer_key(
        &self,
        key_id: KeyId,
        signer: ParticipantId,
        at: Timestamp,
    ) -> Result<&SigningKeyEntry, Refusal> {
        let entry = self.key(key_id).ok_or_else(|| {
            Refusal::new(
                RefusalCode::UnknownKey,
                format!("key {key_id} is not registered"),
            )
        })?;
        if entry.participant != signer {
            return Err(Refusal::new(
                RefusalCode::SenderMismatch,
                format!(
                    "key {key_id} belongs to {}, not to {signer}",
                    entry.participant
                ),
            ));
        }
        if let Some(nb) = entry.not_before.filter(|nb| at < *nb) {
            return Err(Refusal::new(
                RefusalCode::KeyNotYetValid,
                format!("key {key_id} is valid from {nb}, checked at {at}"),
            ));
        }
        if let Some(na) = entry.not_after.filter(|na| at > *na) {
            return Err(Refusal::new(
                RefusalCode::KeyExpired,
                format!("key {key_id} expired at {na}, checked at {at}"),
            ));
        }
        Ok(entry)
    }

    /// Check that `key` may sign documents of type `document_type`.
    pub fn check_document_type(
        key: &SigningKeyEntry,
        document_type: DocumentType,
    ) -> Result<(), Refusal> {
        if key.document_types.contains(&document_type) {
            Ok(())
        } else {
            Err(Refusal::new(
                RefusalCode::DocumentTypeNotAllowed,
                format!(
                    "key {} of {} may not sign {document_type}",
                    key.key_id(),
                    key.participant
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::SigningKey;

    fn pid(s: &str) -> ParticipantId {
        s.parse().unwrap()
    }

    fn set(key: &SigningKey, not_before: Option<i64>, not_after: Option<i64>) -> TrustSet {
        TrustSet::new(
            [
                Participant {
                    id: pid("KZ"),
                    name: "Kazakhstan".into(),
                },
                Participant {
                    id: pid("CN"),
                    name: "China".into(),
                },
            ],
            [SigningKeyEntry {
                participant: pid("KZ"),
                public_key: key.public().clone(),
                document_types: vec![DocumentType::Phytosanitary],
                not_before: not_before.map(Timestamp::from_millis),
                not_after: not_after.map(Timestamp::from_millis),
            }],
            [],
        )
        .unwrap()
    }

    #[test]
    fn judges_owner_validity_and_type() {
        let key = SigningKey::generate();
        let trust = set(&key, Some(1_000), Some(2_000));
        let at = Timestamp::from_millis(1_500);
        let entry = trust.signer_key(key.key_id(), pid("KZ"), at).unwrap();
        assert!(TrustSet::check_document_type(entry, DocumentType::Phytosanitary).is_ok());
        let code = |r: Result<&SigningKeyEntry, Refusal>| r.unwrap_err().code;
        assert_eq!(
            code(trust.signer_key(key.key_id(), pid("CN"), at)),
            RefusalCode::SenderMismatch
        );
        let early = Timestamp::from_millis(999);
        assert_eq!(
            code(trust.signer_key(key.key_id(), pid("KZ"), early)),
            RefusalCode::KeyNotYetValid
        );
        let late = Timestamp::from_millis(2_001);
        assert_eq!(
            code(trust.signer_key(key.key_id(), pid("KZ"), late)),
            RefusalCode::KeyExpired
        );
        let other = SigningKey::generate();
        assert_eq!(
            code(trust.signer_key(other.key_id(), pid("KZ"), at)),
            RefusalCode::UnknownKey
        );
        assert_eq!(
            TrustSet::check_document_type(entry, DocumentType::Invoice)
                .unwrap_err()
                .code,
            RefusalCode::DocumentTypeNotAllowed
        );
    }

    #[test]
    fn refuses_inconsistent_sets() {
        let key = SigningKey::generate();
        let entry = SigningKeyEntry {
            participant: pid("UZ"),
            public_key: key.public().clone(),
            document_types: vec![],
            not_before: None,
            not_after: None,
        };
        let err = TrustSet::new([], [entry], []).unwrap_err();
        assert!(matches!(err, TrustSetError::KeyWithoutParticipant { .. }));
    }
}
