//! The certificates this spoke makes itself (issue 18: a country without a national single
//! window issues from the console): each from its first draft to its sending, with every step
//! and the officer who took it, and the exporters' templates.
//!
//! Why one record per certificate, rewritten at each step, and not the steps apart: a
//! certificate's state and its history must never disagree (an approval with no approver, a
//! sent certificate still marked a draft), and each step is one transaction over the record,
//! its public-token index and, for a correction, the record it replaces. The steps are only
//! ever appended.

use serde::{Deserialize, Serialize};

use caravan_common::{DocumentType, MessageId, ParticipantId, Timestamp, store::StoreError};

use super::{
    SpokeStore,
    records::{JsonRecord, decode, encode},
    tables::{CERTIFICATE_TOKENS, CERTIFICATES, META, NEXT_CERTIFICATE_NUMBER, TEMPLATES},
};

/// A certificate this spoke makes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertificateRecord {
    /// The certificate's own id (also the id of the message that carries it, once sent).
    pub id: MessageId,
    pub document_type: DocumentType,
    /// The participant it is for.
    pub to: ParticipantId,
    /// The exporter (or consignor) it is issued for, as the form names it: templates and
    /// listings are by exporter.
    pub exporter: String,
    /// The form as the officers filled it (`crate::issuing::Form`, as JSON).
    pub form: serde_json::Value,
    pub state: CertificateState,
    /// Given when it is approved.
    pub document_number: Option<String>,
    /// The certificate this one corrects (it replaces it once sent).
    pub supersedes: Option<MessageId>,
    /// The certificate that replaced this one.
    pub replaced_by: Option<MessageId>,
    /// The secret in the printed QR code's address: whoever holds the paper may ask whether
    /// the certificate exists and is current, nobody can guess it.
    pub public_token: String,
    /// Every step, oldest first; never rewritten.
    pub steps: Vec<Step>,
}

impl JsonRecord for CertificateRecord {}

/// Where a certificate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateState {
    /// Being prepared; may be changed.
    Draft,
    /// Prepared and submitted: waits for an approving officer.
    AwaitingApproval,
    /// Approved, signed with the country's key and in the outbox (or beyond).
    Issued,
    /// Issued, then withdrawn: no longer to be relied on.
    Withdrawn,
    /// Issued, then replaced by a correction.
    Replaced,
}

impl CertificateState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::AwaitingApproval => "awaiting_approval",
            Self::Issued => "issued",
            Self::Withdrawn => "withdrawn",
            Self::Replaced => "replaced",
        }
    }
}

/// One step of a certificate's life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub at: Timestamp,
    /// The officer's user name.
    pub officer: String,
    pub action: Action,
    /// A reason (a return, a withdrawal), the certificate copied from, or empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// What a step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Created,
    Saved,
    Submitted,
    /// Sent back to its preparer by an approving officer.
    Returned,
    /// Approved: signed and queued for sending.
    Approved,
    Withdrawn,
    /// Replaced by a correction that was approved.
    Replaced,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Saved => "saved",
            Self::Submitted => "submitted",
            Self::Returned => "returned",
            Self::Approved => "approved",
            Self::Withdrawn => "withdrawn",
            Self::Replaced => "replaced",
        }
    }
}

/// An exporter's saved form, to start the next certificate from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateRecord {
    pub document_type: DocumentType,
    pub exporter: String,
    pub form: serde_json::Value,
    pub saved_by: String,
    pub saved_at: Timestamp,
}

impl JsonRecord for TemplateRecord {}

/// A template's key: the document type, then the exporter's name (lower-cased).
fn template_key(document_type: DocumentType, exporter: &str) -> Vec<u8> {
    let mut key = document_type.to_string().into_bytes();
    key.push(0);
    key.extend_from_slice(exporter.trim().to_lowercase().as_bytes());
    key
}

impl SpokeStore {
    /// A certificate by its id.
    pub fn certificate(&self, id: MessageId) -> Result<Option<CertificateRecord>, StoreError> {
        self.get(CERTIFICATES, id.as_bytes())
    }

    /// A certificate by the token of its printed QR code.
    pub fn certificate_by_token(
        &self,
        token: &str,
    ) -> Result<Option<CertificateRecord>, StoreError> {
        match self.db.get(CERTIFICATE_TOKENS, token.as_bytes())? {
            None => Ok(None),
            Some(id) => {
                let id: [u8; 16] = id.try_into().map_err(|_| {
                    StoreError::corrupt("certificate token", "not a certificate id")
                })?;
                self.get(CERTIFICATES, &id)
            }
        }
    }

    /// Every certificate, newest first (ids are UUIDv7: their order is their creation's).
    pub fn certificates(&self) -> Result<Vec<CertificateRecord>, StoreError> {
        self.db
            .range(CERTIFICATES, &[], None, usize::MAX, true)?
            .into_iter()
            .map(|(_, v)| decode(&v, "certificate"))
            .collect()
    }

    /// Keep `records` (a certificate, and the one it replaces when a correction is issued) in
    /// one transaction, with their tokens, durably. `change` is given the records as stored
    /// now (by id; `None` for a new one) and returns them as they must become, or refuses:
    /// the state a step judges is the one it writes over (it may be called again if the
    /// engine retries the transaction).
    pub fn change_certificates<E: From<StoreError>>(
        &self,
        ids: &[MessageId],
        mut change: impl FnMut(Vec<Option<CertificateRecord>>) -> Result<Vec<CertificateRecord>, E>,
    ) -> Result<Vec<CertificateRecord>, E> {
        let mut outcome = None;
        self.db.update(|tx| {
            let mut now = Vec::with_capacity(ids.len());
            for id in ids {
                now.push(
                    tx.get(CERTIFICATES, id.as_bytes())?
                        .map(|v| decode::<CertificateRecord>(&v, "certificate"))
                        .transpose()?,
                );
            }
            // A refusal leaves the transaction with nothing written.
            let changed = match change(now) {
                Ok(changed) => changed,
                Err(e) => {
                    outcome = Some(Err(e));
                    return Ok(());
                }
            };
            for c in &changed {
                tx.insert(CERTIFICATES, c.id.as_bytes(), &encode(c))?;
                tx.insert(
                    CERTIFICATE_TOKENS,
                    c.public_token.as_bytes(),
                    c.id.as_bytes(),
                )?;
            }
            outcome = Some(Ok(changed));
            Ok(())
        })?;
        self.flush()?;
        outcome.expect("the transaction ran")
    }

    /// The next certificate number of this spoke for `year` (from 1), taken durably.
    pub fn next_certificate_number(&self, year: i32) -> Result<u64, StoreError> {
        let key = format!("{}{year}", String::from_utf8_lossy(NEXT_CERTIFICATE_NUMBER));
        let mut taken = 0;
        self.db.update(|tx| {
            let next = tx
                .get(META, key.as_bytes())?
                .as_deref()
                .and_then(caravan_common::store::keys::u64_of)
                .unwrap_or(1);
            tx.insert(META, key.as_bytes(), &(next + 1).to_be_bytes())?;
            taken = next;
            Ok(())
        })?;
        self.flush()?;
        Ok(taken)
    }

    /// Save an exporter's template (replacing the one of the same type and exporter).
    pub fn save_template(&self, t: &TemplateRecord) -> Result<(), StoreError> {
        self.put(
            TEMPLATES,
            &template_key(t.document_type, &t.exporter),
            &encode(t),
        )?;
        self.flush()
    }

    /// Every template, by type and exporter.
    pub fn templates(&self) -> Result<Vec<TemplateRecord>, StoreError> {
        self.db
            .range(TEMPLATES, &[], None, usize::MAX, false)?
            .into_iter()
            .map(|(_, v)| decode(&v, "template"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixtures::ENGINES;

    fn draft(officer: &str) -> CertificateRecord {
        CertificateRecord {
            id: MessageId::generate(),
            document_type: DocumentType::Phytosanitary,
            to: "CN".parse().unwrap(),
            exporter: "Zhetysu Agro LLP".into(),
            form: serde_json::json!({"kind": "e-phyto"}),
            state: CertificateState::Draft,
            document_number: None,
            supersedes: None,
            replaced_by: None,
            public_token: hex::encode(rand_token()),
            steps: vec![Step {
                at: Timestamp::now(),
                officer: officer.into(),
                action: Action::Created,
                note: String::new(),
            }],
        }
    }

    fn rand_token() -> [u8; 16] {
        *MessageId::generate().as_bytes()
    }

    #[derive(Debug)]
    enum Refused {
        No,
        Store,
    }

    impl From<StoreError> for Refused {
        fn from(_: StoreError) -> Self {
            Self::Store
        }
    }

    #[test]
    fn a_step_writes_every_record_it_changes_or_none() {
        for engine in ENGINES {
            let dir = tempfile::tempdir().unwrap();
            let store = SpokeStore::open(dir.path(), Some(engine), 4 << 20).unwrap();
            let old = draft("ana");
            store
                .change_certificates::<Refused>(&[old.id], |now| {
                    assert_eq!(now, vec![None]);
                    Ok(vec![old.clone()])
                })
                .unwrap();
            assert_eq!(store.certificate(old.id).unwrap(), Some(old.clone()));
            assert_eq!(
                store.certificate_by_token(&old.public_token).unwrap(),
                Some(old.clone())
            );
            assert_eq!(store.certificate_by_token("nope").unwrap(), None);
            // A correction and the certificate it replaces change together.
            let mut new = draft("ana");
            new.supersedes = Some(old.id);
            let changed = store
                .change_certificates::<Refused>(&[new.id, old.id], |now| {
                    let mut replaced = now[1].clone().unwrap();
                    replaced.state = CertificateState::Replaced;
                    replaced.replaced_by = Some(new.id);
                    Ok(vec![new.clone(), replaced])
                })
                .unwrap();
            assert_eq!(changed.len(), 2);
            assert_eq!(
                store.certificate(old.id).unwrap().unwrap().state,
                CertificateState::Replaced
            );
            // A refused step writes nothing.
            let refused = store.change_certificates(&[new.id], |_| Err(Refused::No));
            assert!(matches!(refused, Err(Refused::No)));
            assert_eq!(store.certificate(new.id).unwrap(), Some(new.clone()));
            // Newest first.
            let all: Vec<MessageId> = store.certificates().unwrap().iter().map(|c| c.id).collect();
            assert_eq!(all, vec![new.id, old.id]);
            assert!(store.check().is_sound(), "{:?}", store.check().problems);
            // Numbers per year, from 1, never twice.
            assert_eq!(store.next_certificate_number(2026).unwrap(), 1);
            assert_eq!(store.next_certificate_number(2026).unwrap(), 2);
            assert_eq!(store.next_certificate_number(2027).unwrap(), 1);
            // Templates by type and exporter, the newest kept.
            let template = |form: serde_json::Value| TemplateRecord {
                document_type: DocumentType::Phytosanitary,
                exporter: " Zhetysu Agro LLP".into(),
                form,
                saved_by: "ana".into(),
                saved_at: Timestamp::now(),
            };
            store
                .save_template(&template(serde_json::json!(1)))
                .unwrap();
            store
                .save_template(&template(serde_json::json!(2)))
                .unwrap();
            let templates = store.templates().unwrap();
            assert_eq!(templates.len(), 1);
            assert_eq!(templates[0].form, serde_json::json!(2));
        }
    }
}
