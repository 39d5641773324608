//! The signed trust list: signing it with the anchor key, and opening it (verify, then decode,
//! then check every entry) into a [`TrustSet`].

use caravan_common::{
    CountryCode, DocumentType, Refusal, RefusalCode, Timestamp,
    signing::{PublicKey, Purpose, SigningKey},
    trust::{
        AuthorityIdentifier, CorridorState, HubKey, IssuingAuthority, ListInfo, Participant,
        ParticipantStage, ParticipantStatus, Revocation, SigningKeyEntry, TrustSet,
    },
};
use prost::Message;

use crate::{signature_of, signature_parts, v1};

/// Encode and sign `list` with the anchor key.
pub fn sign(list: &v1::TrustList, anchor: &SigningKey) -> v1::SignedTrustList {
    let body = list.encode_to_vec();
    let signature = anchor.sign(Purpose::TrustList, &body);
    v1::SignedTrustList {
        body,
        signature: Some(signature_of(anchor.key_id(), signature)),
    }
}

fn invalid(detail: impl Into<String>) -> Refusal {
    Refusal::new(RefusalCode::InvalidTrustList, detail)
}

/// Verify `signed` with the pinned `anchor` key, then decode it into the list and its trust set.
pub fn open(
    signed: &v1::SignedTrustList,
    anchor: &PublicKey,
) -> Result<(v1::TrustList, TrustSet), Refusal> {
    let (key_id, signature) =
        signature_parts(signed.signature.as_ref(), "trust list").map_err(|r| invalid(r.detail))?;
    if key_id != anchor.key_id() {
        return Err(invalid(format!(
            "signed by key {key_id}, not by the pinned anchor {}",
            anchor.key_id()
        )));
    }
    anchor
        .verify(Purpose::TrustList, &signed.body, signature)
        .map_err(|_| {
            invalid(format!(
                "signature does not verify with the anchor key {key_id}"
            ))
        })?;
    let list = v1::TrustList::decode(signed.body.as_slice())
        .map_err(|e| invalid(format!("does not decode: {e}")))?;
    // The body names its signer too (empty only in lists of tests that build one by hand).
    if !list.anchor_key_id.is_empty() && list.anchor_key_id != key_id.to_string() {
        return Err(invalid(format!(
            "the list names anchor key {}, but key {key_id} signed it",
            list.anchor_key_id
        )));
    }
    let set = trust_set(&list)?;
    Ok((list, set))
}

fn time(ms: i64) -> Option<Timestamp> {
    (ms != 0).then(|| Timestamp::from_millis(ms))
}

fn public_key(bytes: &[u8], what: &str) -> Result<PublicKey, Refusal> {
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| invalid(format!("{what}: public key is not 32 bytes")))?;
    PublicKey::from_bytes(&bytes)
        .ok_or_else(|| invalid(format!("{what}: not an ed25519 public key")))
}

/// Check every entry of a decoded list and build the trust set.
pub fn trust_set(list: &v1::TrustList) -> Result<TrustSet, Refusal> {
    let field =
        |what: String| move |e: caravan_common::ids::IdError| invalid(format!("{what}: {e}"));
    let mut participants = Vec::new();
    for p in &list.participants {
        let status = match v1::ParticipantStatus::try_from(p.status) {
            Ok(v1::ParticipantStatus::Active) => ParticipantStatus::Active,
            Ok(v1::ParticipantStatus::Suspended) => ParticipantStatus::Suspended,
            _ => {
                return Err(invalid(format!(
                    "participant {}: unknown status {}",
                    p.id, p.status
                )));
            }
        };
        let country = match p.country.as_str() {
            "" => None,
            code => Some(
                code.parse::<CountryCode>()
                    .map_err(|e| invalid(format!("participant {}: {e}", p.id)))?,
            ),
        };
        let stage = stage_from_wire(p.stage)
            .ok_or_else(|| invalid(format!("participant {}: unknown stage {}", p.id, p.stage)))?;
        participants.push(Participant {
            stage,
            id: p.id.parse().map_err(field("participant".into()))?,
            name: p.name.clone(),
            contact: p.contact.clone(),
            status,
            country,
            issuing_authorities: p
                .issuing_authorities
                .iter()
                .map(authority_from_wire)
                .collect(),
        });
    }
    let mut keys = Vec::new();
    for k in &list.keys {
        let what = format!("key {}", k.key_id);
        let public_key = public_key(&k.public_key, &what)?;
        if public_key.key_id().to_string() != k.key_id {
            return Err(invalid(format!("{what}: id does not match the public key")));
        }
        let document_types = k
            .document_types
            .iter()
            .map(|t| {
                t.parse::<DocumentType>()
                    .map_err(|e| invalid(format!("{what}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        keys.push(SigningKeyEntry {
            participant: k.participant.parse().map_err(field(what.clone()))?,
            public_key,
            document_types,
            not_before: time(k.not_before_ms),
            not_after: time(k.not_after_ms),
            revoked: time(k.revoked_at_ms).map(|at| Revocation {
                at,
                reason: k.revocation_reason.clone(),
            }),
        });
    }
    let hub_keys = list
        .hub_keys
        .iter()
        .map(|k| {
            let what = format!("hub key {}", k.key_id);
            let public_key = public_key(&k.public_key, &what)?;
            if public_key.key_id().to_string() != k.key_id {
                return Err(invalid(format!("{what}: id does not match the public key")));
            }
            Ok(HubKey {
                public_key,
                not_before: time(k.not_before_ms),
                not_after: time(k.not_after_ms),
            })
        })
        .collect::<Result<Vec<_>, Refusal>>()?;
    let mut corridors = Vec::new();
    for c in &list.corridors {
        let what = format!("corridor {}->{} {}", c.sender, c.recipient, c.document_type);
        let state = match v1::CorridorState::try_from(c.state) {
            Ok(v1::CorridorState::Open) => CorridorState::Open,
            Ok(v1::CorridorState::Pilot) => CorridorState::Pilot,
            Ok(v1::CorridorState::Closed) => CorridorState::Closed,
            _ => return Err(invalid(format!("{what}: unknown state {}", c.state))),
        };
        let key = (
            c.sender.parse().map_err(field(what.clone()))?,
            c.recipient.parse().map_err(field(what.clone()))?,
            c.document_type
                .parse::<DocumentType>()
                .map_err(|e| invalid(format!("{what}: {e}")))?,
        );
        corridors.push((key, state));
    }
    let info = ListInfo {
        version: list.version,
        issued_at: time(list.issued_at_ms),
        next_update: time(list.next_update_ms),
    };
    TrustSet::new(info, participants, keys, hub_keys, corridors).map_err(|e| invalid(e.to_string()))
}

/// An issuing authority as the signed list gives it. The hub checked it when it was recorded;
/// a verifier takes it as it is (a limit raised later must not make older spokes refuse the
/// whole list).
pub fn authority_from_wire(a: &v1::IssuingAuthority) -> IssuingAuthority {
    IssuingAuthority {
        name: a.name.clone(),
        identifiers: a
            .identifiers
            .iter()
            .map(|i| AuthorityIdentifier {
                scheme: i.scheme.clone(),
                value: i.value.clone(),
            })
            .collect(),
    }
}

/// The wire form of an issuing authority.
pub fn authority_to_wire(a: &IssuingAuthority) -> v1::IssuingAuthority {
    v1::IssuingAuthority {
        name: a.name.clone(),
        identifiers: a
            .identifiers
            .iter()
            .map(|i| v1::AuthorityIdentifier {
                scheme: i.scheme.clone(),
                value: i.value.clone(),
            })
            .collect(),
    }
}

/// A participant's stage as the list gives it: UNSPECIFIED (lists from before stages) is
/// production, so that an upgrade never cuts a corridor; `None` for a value not defined.
pub fn stage_from_wire(stage: i32) -> Option<ParticipantStage> {
    match v1::ParticipantStage::try_from(stage).ok()? {
        v1::ParticipantStage::Unspecified | v1::ParticipantStage::Production => {
            Some(ParticipantStage::Production)
        }
        v1::ParticipantStage::Testing => Some(ParticipantStage::Testing),
        v1::ParticipantStage::Pilot => Some(ParticipantStage::Pilot),
    }
}

/// The wire form of a stage.
pub fn stage_to_wire(stage: ParticipantStage) -> v1::ParticipantStage {
    match stage {
        ParticipantStage::Testing => v1::ParticipantStage::Testing,
        ParticipantStage::Pilot => v1::ParticipantStage::Pilot,
        ParticipantStage::Production => v1::ParticipantStage::Production,
    }
}

/// The wire form of a corridor state.
pub fn corridor_state(state: CorridorState) -> v1::CorridorState {
    match state {
        CorridorState::Open => v1::CorridorState::Open,
        CorridorState::Pilot => v1::CorridorState::Pilot,
        CorridorState::Closed => v1::CorridorState::Closed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(kz: &SigningKey) -> v1::TrustList {
        v1::TrustList {
            version: 3,
            issued_at_ms: 1_000,
            next_update_ms: 2_000,
            anchor_key_id: String::new(),
            participants: vec![v1::TrustedParticipant {
                id: "KZ".into(),
                name: "Kazakhstan".into(),
                status: v1::ParticipantStatus::Active as i32,
                contact: "ops@example.kz".into(),
                ..Default::default()
            }],
            keys: vec![v1::TrustedKey {
                key_id: kz.key_id().to_string(),
                participant: "KZ".into(),
                public_key: kz.public().to_base64().into_bytes(),
                document_types: vec!["e-co".into()],
                ..Default::default()
            }],
            corridors: vec![v1::Corridor {
                sender: "KZ".into(),
                recipient: "KZ".into(),
                document_type: "e-co".into(),
                state: v1::CorridorState::Pilot as i32,
            }],
            hub_keys: vec![],
        }
    }

    fn raw(key: &SigningKey) -> Vec<u8> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(key.public().to_base64())
            .unwrap()
    }

    #[test]
    fn signed_lists_open_and_forgeries_do_not() {
        let anchor = SigningKey::generate();
        let kz = SigningKey::generate();
        let mut l = list(&kz);
        l.keys[0].public_key = raw(&kz);
        let signed = sign(&l, &anchor);
        let (decoded, set) = open(&signed, anchor.public()).unwrap();
        assert_eq!(decoded, l);
        assert_eq!(set.info.version, 3);
        assert!(set.key(kz.key_id()).is_some());

        // Signed by another key than the pinned anchor.
        let impostor = SigningKey::generate();
        let forged = sign(&l, &impostor);
        assert_eq!(
            open(&forged, anchor.public()).unwrap_err().code,
            RefusalCode::InvalidTrustList
        );
        // The impostor claims the anchor's key id.
        let mut forged = forged;
        forged.signature.as_mut().unwrap().key_id = anchor.key_id().to_string();
        assert_eq!(
            open(&forged, anchor.public()).unwrap_err().code,
            RefusalCode::InvalidTrustList
        );
        // A tampered body.
        let mut tampered = signed.clone();
        tampered.body[2] ^= 1;
        assert_eq!(
            open(&tampered, anchor.public()).unwrap_err().code,
            RefusalCode::InvalidTrustList
        );
        // A validly signed list with an inconsistent entry is refused as a whole: a key, or
        // a hub key, whose id is not its public key's, or a body naming another anchor.
        let mut bad = l.clone();
        bad.keys[0].key_id = "0000000000000000".into();
        let hub = SigningKey::generate();
        let mut bad_hub = l.clone();
        bad_hub.hub_keys = vec![v1::HubKey {
            key_id: kz.key_id().to_string(),
            public_key: raw(&hub),
            ..Default::default()
        }];
        let mut other_anchor = l.clone();
        other_anchor.anchor_key_id = impostor.key_id().to_string();
        for (list, says) in [
            (bad, "key 0000000000000000: id does not match"),
            (bad_hub, "id does not match the public key"),
            (other_anchor, "the list names anchor key"),
        ] {
            let refused = open(&sign(&list, &anchor), anchor.public()).unwrap_err();
            assert_eq!(refused.code, RefusalCode::InvalidTrustList);
            assert!(refused.detail.contains(says), "{refused}");
        }
        let mut good_hub = l.clone();
        good_hub.anchor_key_id = anchor.key_id().to_string();
        good_hub.hub_keys = vec![v1::HubKey {
            key_id: hub.key_id().to_string(),
            public_key: raw(&hub),
            ..Default::default()
        }];
        assert!(open(&sign(&good_hub, &anchor), anchor.public()).is_ok());
    }

    #[test]
    fn stages_travel_and_an_unknown_one_is_refused() {
        let anchor = SigningKey::generate();
        let kz = SigningKey::generate();
        let mut l = list(&kz);
        l.keys[0].public_key = raw(&kz);
        for stage in ParticipantStage::ALL {
            l.participants[0].stage = stage_to_wire(stage) as i32;
            let (_, set) = open(&sign(&l, &anchor), anchor.public()).unwrap();
            assert_eq!(set.participant("KZ".parse().unwrap()).unwrap().stage, stage);
        }
        l.participants[0].stage = 0;
        let (_, set) = open(&sign(&l, &anchor), anchor.public()).unwrap();
        assert_eq!(
            set.participant("KZ".parse().unwrap()).unwrap().stage,
            ParticipantStage::Production,
            "a list from before stages"
        );
        l.participants[0].stage = 9;
        let refusal = open(&sign(&l, &anchor), anchor.public()).unwrap_err();
        assert_eq!(refusal.code, RefusalCode::InvalidTrustList);
        assert!(
            refusal.detail.contains("participant KZ: unknown stage 9"),
            "{refusal}"
        );
    }

    /// `TrustedParticipant` and `TrustList` as spokes from before countries and issuing
    /// authorities know them (only the fields they had).
    mod before {
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct TrustedParticipant {
            #[prost(string, tag = "1")]
            pub id: String,
            #[prost(string, tag = "2")]
            pub name: String,
            #[prost(int32, tag = "3")]
            pub status: i32,
            #[prost(string, tag = "4")]
            pub contact: String,
        }

        #[derive(Clone, PartialEq, prost::Message)]
        pub struct TrustList {
            #[prost(uint64, tag = "1")]
            pub version: u64,
            #[prost(message, repeated, tag = "5")]
            pub participants: Vec<TrustedParticipant>,
        }
    }

    #[test]
    fn countries_and_authorities_travel_and_lists_with_or_without_them_open() {
        let anchor = SigningKey::generate();
        let kz = SigningKey::generate();
        let mut l = list(&kz);
        l.keys[0].public_key = raw(&kz);
        l.participants[0].country = "KZ".into();
        l.participants[0].issuing_authorities = vec![v1::IssuingAuthority {
            name: "State Inspection of Plant Quarantine".into(),
            identifiers: vec![v1::AuthorityIdentifier {
                scheme: "ippc".into(),
                value: "KZ-NPPO".into(),
            }],
        }];
        let signed = sign(&l, &anchor);
        let (_, set) = open(&signed, anchor.public()).unwrap();
        let p = set.participant("KZ".parse().unwrap()).unwrap();
        assert_eq!(p.country.map(|c| c.to_string()).as_deref(), Some("KZ"));
        assert_eq!(
            p.authority_identified("ippc", "KZ-NPPO")
                .map(|a| a.name.as_str()),
            Some("State Inspection of Plant Quarantine")
        );
        assert_eq!(
            authority_to_wire(&p.issuing_authorities[0]),
            l.participants[0].issuing_authorities[0]
        );

        // A spoke from before them decodes the same signed bytes, skipping the new fields.
        let old = before::TrustList::decode(signed.body.as_slice()).unwrap();
        assert_eq!(old.version, 3);
        assert_eq!(old.participants[0].id, "KZ");
        assert_eq!(old.participants[0].name, "Kazakhstan");

        // A list from before them opens: no country, no authorities.
        let old_body = before::TrustList {
            version: 2,
            participants: vec![before::TrustedParticipant {
                id: "CN".into(),
                name: "China".into(),
                status: v1::ParticipantStatus::Active as i32,
                contact: String::new(),
            }],
        }
        .encode_to_vec();
        let old_signed = v1::SignedTrustList {
            signature: Some(signature_of(
                anchor.key_id(),
                anchor.sign(Purpose::TrustList, &old_body),
            )),
            body: old_body,
        };
        let (_, set) = open(&old_signed, anchor.public()).unwrap();
        let cn = set.participant("CN".parse().unwrap()).unwrap();
        assert_eq!(cn.country, None);
        assert!(cn.issuing_authorities.is_empty());
        // ... and from before stages: production, so that its open corridors stay open.
        assert_eq!(cn.stage, ParticipantStage::Production);

        // A verifier takes any well-formed code (ISO may assign more later), not a malformed one.
        l.participants[0].country = "XK".into();
        assert!(open(&sign(&l, &anchor), anchor.public()).is_ok());
        l.participants[0].country = "kz".into();
        let refusal = open(&sign(&l, &anchor), anchor.public()).unwrap_err();
        assert_eq!(refusal.code, RefusalCode::InvalidTrustList);
        assert!(
            refusal.detail.contains("participant KZ"),
            "{}",
            refusal.detail
        );
    }
}
