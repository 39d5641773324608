//! End-to-end verification of a delivered document with the trust set this spoke holds:
//! signature, signing key at the hub's acceptance time, receipt, recipient; and the notes an
//! officer should see.

use caravan_common::{
    ParticipantId, Refusal, RefusalCode, Timestamp, envelope::Receipt, trust::CorridorState,
};
use caravan_proto::{envelope, v1};

use crate::store::Note;

/// End-to-end verification, by spoke `me` at time `now`, of a delivered envelope and the hub's
/// receipt for it, with the spoke's own trust set. A verified document may carry notes an
/// officer should see.
pub fn verify_delivery(
    trust: &caravan_common::trust::TrustSet,
    me: ParticipantId,
    env: &v1::Envelope,
    receipt: Result<&Receipt, &Refusal>,
    now: Timestamp,
) -> Result<(envelope::Opened, Vec<Note>), Refusal> {
    let receipt = receipt.map_err(|r| r.clone())?;
    // The signing key is judged at the time the hub accepted the document.
    let opened = envelope::open(env, trust, None, receipt.accepted_at)?;
    let h = &opened.header;
    if receipt.message_id != h.message_id
        || receipt.sender != h.sender
        || receipt.recipient != h.recipient
        || receipt.header_sha256 != opened.header_sha256
    {
        return Err(Refusal::new(
            RefusalCode::BadReceipt,
            "the hub's receipt is for another message or header",
        ));
    }
    if h.recipient != me {
        return Err(Refusal::new(
            RefusalCode::WrongRecipient,
            format!(
                "the document is addressed to {}, not to {}",
                h.recipient, me
            ),
        ));
    }
    let mut notes = Vec::new();
    if let Some(r) = opened.signer.revoked.as_ref() {
        notes.push(Note::new(
            "KEY_SINCE_REVOKED",
            format!(
                "key {} was revoked at {} ({}), after the hub accepted this document at {}",
                opened.signer.key_id(),
                r.at,
                r.reason,
                receipt.accepted_at
            ),
        ));
    }
    if trust.corridor(h.sender, h.recipient, h.document_type) == CorridorState::Pilot {
        notes.push(Note::new(
            "PILOT_CORRIDOR",
            format!(
                "{} -> {} for {} is a pilot corridor",
                h.sender, h.recipient, h.document_type
            ),
        ));
    }
    if !trust.info.is_fresh(now) {
        notes.push(Note::new(
            "TRUST_LIST_STALE",
            format!(
                "verified with trust list version {}, whose next update was due at {}",
                trust.info.version,
                trust
                    .info
                    .next_update
                    .map(|t| t.to_string())
                    .unwrap_or_default()
            ),
        ));
    }
    Ok((opened, notes))
}

#[cfg(test)]
mod tests {
    use caravan_common::{
        DocumentType, MessageId,
        trust::{
            CorridorState, HubKey, ListInfo, Participant, ParticipantStatus, Revocation,
            SigningKeyEntry, TrustSet,
        },
    };

    use caravan_common::{envelope::Header, signing::SigningKey, signing::sha256};

    use crate::document::XML;

    use super::*;

    const PAYLOAD: &[u8] = b"<CertificateOfOrigin/>";

    struct World {
        kz: SigningKey,
        hub: SigningKey,
    }

    fn pid(s: &str) -> ParticipantId {
        s.parse().unwrap()
    }

    fn trust(
        w: &World,
        corridor: CorridorState,
        revoked_at: Option<i64>,
        next_update: i64,
    ) -> TrustSet {
        let participant = |id: &str| Participant {
            id: pid(id),
            name: id.into(),
            contact: String::new(),
            status: ParticipantStatus::Active,
            country: None,
            issuing_authorities: Vec::new(),
            stage: caravan_common::trust::ParticipantStage::Production,
        };
        TrustSet::new(
            ListInfo {
                version: 7,
                issued_at: None,
                next_update: Some(Timestamp::from_millis(next_update)),
            },
            [participant("KZ"), participant("CN")],
            [SigningKeyEntry {
                participant: pid("KZ"),
                public_key: w.kz.public().clone(),
                document_types: vec![DocumentType::CertificateOfOrigin],
                not_before: None,
                not_after: None,
                revoked: revoked_at.map(|ms| Revocation {
                    at: Timestamp::from_millis(ms),
                    reason: "lost".into(),
                }),
            }],
            [HubKey {
                public_key: w.hub.public().clone(),
                not_before: None,
                not_after: None,
            }],
            [(
                (pid("KZ"), pid("CN"), DocumentType::CertificateOfOrigin),
                corridor,
            )],
        )
        .unwrap()
    }

    /// A sealed document from KZ to `to`, and the hub's receipt for it, accepted at 1000 ms.
    fn delivery(w: &World, to: &str) -> (v1::Envelope, Receipt) {
        let header = Header {
            message_id: MessageId::generate(),
            sender: pid("KZ"),
            recipient: pid(to),
            document_type: DocumentType::CertificateOfOrigin,
            document_id: "KZ-CO-1".into(),
            content_type: XML.into(),
            payload_sha256: sha256(PAYLOAD),
            payload_length: PAYLOAD.len() as u64,
            created_at: Timestamp::from_millis(900),
            key_id: w.kz.key_id(),
            supersedes: None,
            in_reply_to: None,
        };
        let env = envelope::seal(&header, PAYLOAD.to_vec(), &w.kz);
        let receipt = Receipt {
            message_id: header.message_id,
            sender: header.sender,
            recipient: header.recipient,
            header_sha256: sha256(&env.header),
            hub_sequence: 1,
            accepted_at: Timestamp::from_millis(1_000),
            key_id: w.hub.key_id(),
        };
        (env, receipt)
    }

    fn world() -> World {
        World {
            kz: SigningKey::generate(),
            hub: SigningKey::generate(),
        }
    }

    fn codes(notes: &[Note]) -> Vec<&str> {
        notes.iter().map(|n| n.code.as_str()).collect()
    }

    #[test]
    fn a_clean_delivery_verifies_without_notes() {
        let w = world();
        let (env, receipt) = delivery(&w, "CN");
        let trust = trust(&w, CorridorState::Open, None, 5_000);
        let (_, notes) = verify_delivery(
            &trust,
            pid("CN"),
            &env,
            Ok(&receipt),
            Timestamp::from_millis(2_000),
        )
        .unwrap();
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn notes_for_revoked_since_pilot_and_stale() {
        let w = world();
        let (env, receipt) = delivery(&w, "CN");
        // Revoked at 1500, after the hub accepted at 1000; pilot corridor; list stale at 6000.
        let trust = trust(&w, CorridorState::Pilot, Some(1_500), 5_000);
        let (_, notes) = verify_delivery(
            &trust,
            pid("CN"),
            &env,
            Ok(&receipt),
            Timestamp::from_millis(6_000),
        )
        .unwrap();
        assert_eq!(
            codes(&notes),
            ["KEY_SINCE_REVOKED", "PILOT_CORRIDOR", "TRUST_LIST_STALE"]
        );
    }

    #[test]
    fn refusals_at_the_recipient() {
        let w = world();
        let now = Timestamp::from_millis(2_000);
        // The key was revoked before the hub accepted the document.
        let (env, receipt) = delivery(&w, "CN");
        let revoked = trust(&w, CorridorState::Open, Some(999), 5_000);
        let code = |r: Result<(envelope::Opened, Vec<Note>), Refusal>| r.unwrap_err().code;
        assert_eq!(
            code(verify_delivery(
                &revoked,
                pid("CN"),
                &env,
                Ok(&receipt),
                now
            )),
            RefusalCode::KeyRevoked
        );
        // Delivered to the wrong spoke.
        let ok = trust(&w, CorridorState::Open, None, 5_000);
        assert_eq!(
            code(verify_delivery(&ok, pid("KZ"), &env, Ok(&receipt), now)),
            RefusalCode::WrongRecipient
        );
        // A receipt for another message.
        let mut other = receipt.clone();
        other.message_id = MessageId::generate();
        assert_eq!(
            code(verify_delivery(&ok, pid("CN"), &env, Ok(&other), now)),
            RefusalCode::BadReceipt
        );
        // A receipt that did not verify.
        let bad = Refusal::new(RefusalCode::BadReceipt, "forged");
        assert_eq!(
            code(verify_delivery(&ok, pid("CN"), &env, Err(&bad), now)),
            RefusalCode::BadReceipt
        );
        // A payload altered on the way.
        let mut altered = env.clone();
        altered.payload[1] = b'X';
        assert_eq!(
            code(verify_delivery(&ok, pid("CN"), &altered, Ok(&receipt), now)),
            RefusalCode::PayloadHashMismatch
        );
    }
}
