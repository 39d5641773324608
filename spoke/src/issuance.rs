//! Issuing certificates from the console (issue 18), for a country with no national single
//! window: an issuing officer prepares a certificate (a form, `crate::issuing`), saves drafts,
//! starts from a previous certificate or an exporter's template, and submits it; a different
//! officer with the approving role approves it, and only then is it made into the standard
//! document, signed with the country's key and queued (`crate::outbound`). A correction is a
//! new certificate that supersedes the old one; an issued certificate can be withdrawn.
//!
//! Why four eyes here and not in the officers' habits: what a border relies on is that no one
//! officer alone could issue a certificate. So every step is judged against the certificate as
//! stored and written in the same transaction (`SpokeStore::change_certificates`), every step
//! is kept with the officer's name, and the approver may be none of the officers who prepared
//! the certificate.
//!
//! Approval queues the document under the certificate's own id as its message id, before the
//! certificate is marked issued: if the spoke stops between the two, the next look at the
//! certificate finds the document in the outbox and finishes the step, never sending twice.

use std::sync::Arc;

use caravan_common::{DocumentType, MessageId, ParticipantId, Timestamp};

use crate::{
    config::{Officer, Role},
    issuing::{self, FieldProblem, Form, Issue},
    outbound::{Content, Outbound, Outgoing, SendError},
    rt::blocking,
    store::{
        Action, CertificateRecord, CertificateState, SpokeStore, Step, StoreError, TemplateRecord,
    },
};

/// Why a step was not taken; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The officer's account does not have the role the step needs.
    #[error("{step} needs the {} role, which officer {officer} does not have", role.as_str())]
    RoleMissing {
        role: Role,
        officer: String,
        step: &'static str,
    },
    /// The approver took part in preparing the certificate: another officer must approve it.
    #[error("officer {officer} prepared this certificate ({}), so another officer must approve it (four eyes)", action.as_str())]
    FourEyes { officer: String, action: Action },
    /// A draft's form was replaced by a form of another kind of certificate.
    #[error("a {0} stays a {0}; start a new certificate for another kind")]
    KindChanged(DocumentType),
    #[error("no certificate {0}")]
    NotFound(MessageId),
    /// The certificate is not in the state the step applies to (another officer took a step
    /// first, or the page was old).
    #[error("the certificate is {}: {step} applies to {}", state.as_str(), applies.as_str())]
    WrongState {
        state: CertificateState,
        step: &'static str,
        applies: CertificateState,
    },
    /// The form breaks a rule; each problem names its field.
    #[error("{}", .0.iter().map(|p| format!("{}: {}", p.field, p.message)).collect::<Vec<_>>().join("; "))]
    Form(Vec<FieldProblem>),
    /// A reason is needed (a return's or a withdrawal's).
    #[error("{0}")]
    NoteNeeded(&'static str),
    /// The document was not queued (the recipient, the corridor, a content check).
    #[error(transparent)]
    Send(#[from] SendError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a public verification page may show of a certificate: that it exists, who issued it
/// and whether it stands, never what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicStatus {
    pub document_type: DocumentType,
    pub document_number: String,
    /// The issuing country (this spoke) and authority.
    pub issuer: ParticipantId,
    pub authority: String,
    pub issued_at: Timestamp,
    /// `issued` (current), `replaced` or `withdrawn`.
    pub state: CertificateState,
    /// The number of the certificate that replaced it.
    pub replaced_by: Option<String>,
}

/// Where an approved certificate's document goes: the outbound stage (signed with the
/// country's key and queued durably), or a stand-in in the tests.
pub trait Queue: Send + Sync + 'static {
    /// Sign and queue `out`; done once it is in the outbox.
    fn queue(
        &self,
        out: Outgoing,
    ) -> impl std::future::Future<Output = Result<(), SendError>> + Send;
}

impl Queue for Outbound {
    async fn queue(&self, out: Outgoing) -> Result<(), SendError> {
        self.send(out, None).await.map(drop)
    }
}

/// The console's issuing: what it reads and writes of certificates.
pub struct Issuance<Q: Queue = Outbound> {
    me: ParticipantId,
    store: Arc<SpokeStore>,
    outbound: Arc<Q>,
}

/// The longest return or withdrawal note, in characters.
const MAX_NOTE: usize = 2000;

fn exporter_of(form: &Form) -> String {
    match form {
        Form::EPhyto(f) => f.consignor.name.trim().to_owned(),
        Form::Eco(f) => f.exporter.name.trim().to_owned(),
    }
}

fn authority_of(form: &Form) -> String {
    match form {
        Form::EPhyto(f) => f.issuing_authority.name.trim().to_owned(),
        Form::Eco(f) => f.issuing_authority.name.trim().to_owned(),
    }
}

fn require(officer: &Officer, role: Role, step: &'static str) -> Result<(), IssueError> {
    if officer.may(role) {
        Ok(())
    } else {
        Err(IssueError::RoleMissing {
            role,
            officer: officer.user.clone(),
            step,
        })
    }
}

fn step(officer: &Officer, action: Action, note: &str) -> Step {
    Step {
        at: Timestamp::now(),
        officer: officer.user.clone(),
        action,
        note: note.to_owned(),
    }
}

fn in_state(
    c: &CertificateRecord,
    wanted: CertificateState,
    step: &'static str,
) -> Result<(), IssueError> {
    if c.state == wanted {
        Ok(())
    } else {
        Err(IssueError::WrongState {
            state: c.state,
            step,
            applies: wanted,
        })
    }
}

/// The form a certificate holds.
pub fn form_of(c: &CertificateRecord) -> Result<Form, StoreError> {
    serde_json::from_value(c.form.clone()).map_err(|e| StoreError::corrupt("certificate form", e))
}

fn form_json(form: &Form) -> serde_json::Value {
    serde_json::to_value(form).expect("a form serialises")
}

/// A secret no one can guess, for the printed QR code's address.
fn public_token() -> String {
    let mut bytes = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

use rand_core::RngCore as _;

/// The certificate number: the country, the kind, the year and a number of the year.
fn number(me: ParticipantId, document_type: DocumentType, year: i32, n: u64) -> String {
    let kind = match document_type {
        DocumentType::Phytosanitary => "PHY",
        DocumentType::CertificateOfOrigin => "CO",
        DocumentType::Invoice => "INV",
    };
    format!("{me}-{kind}-{year}-{n:06}")
}

impl<Q: Queue> Issuance<Q> {
    pub fn new(me: ParticipantId, store: Arc<SpokeStore>, outbound: Arc<Q>) -> Self {
        Self {
            me,
            store,
            outbound,
        }
    }

    /// Run a step on the stored certificates `ids` (see `SpokeStore::change_certificates`) on
    /// a blocking thread.
    async fn change(
        &self,
        ids: Vec<MessageId>,
        change: impl FnMut(Vec<Option<CertificateRecord>>) -> Result<Vec<CertificateRecord>, IssueError>
        + Send
        + 'static,
    ) -> Result<Vec<CertificateRecord>, IssueError> {
        let store = self.store.clone();
        blocking(move || Ok(store.change_certificates(&ids, change))).await?
    }

    /// The certificate `id`, with an approval interrupted after its document was queued
    /// finished first.
    pub async fn certificate(&self, id: MessageId) -> Result<CertificateRecord, IssueError> {
        let store = self.store.clone();
        let (found, queued) =
            blocking(move || Ok((store.certificate(id)?, store.sent_entry(id)?))).await?;
        let c = found.ok_or(IssueError::NotFound(id))?;
        match queued {
            Some(sent) if c.state == CertificateState::AwaitingApproval => {
                self.finish_approval(id, sent.document_id, None).await
            }
            _ => Ok(c),
        }
    }

    /// Every certificate, newest first.
    pub async fn certificates(&self) -> Result<Vec<CertificateRecord>, IssueError> {
        let store = self.store.clone();
        Ok(blocking(move || store.certificates()).await?)
    }

    /// A new draft for `to`, prepared by `officer` (issuing role): from a blank or filled form,
    /// or a copy of an earlier certificate (`copied_from`, noted in its first step).
    pub async fn create(
        &self,
        officer: &Officer,
        to: ParticipantId,
        form: Form,
        copied_from: Option<MessageId>,
    ) -> Result<CertificateRecord, IssueError> {
        require(officer, Role::Issuing, "preparing a certificate")?;
        let record = CertificateRecord {
            id: MessageId::generate(),
            document_type: form.document_type(),
            to,
            exporter: exporter_of(&form),
            form: form_json(&form),
            state: CertificateState::Draft,
            document_number: None,
            supersedes: None,
            replaced_by: None,
            public_token: public_token(),
            steps: vec![step(
                officer,
                Action::Created,
                &copied_from.map_or(String::new(), |id| format!("copied from {id}")),
            )],
        };
        let new = record.clone();
        let mut created = self
            .change(vec![record.id], move |_| Ok(vec![new.clone()]))
            .await?;
        Ok(created.remove(0))
    }

    /// Save a draft's form (issuing role; drafts only).
    pub async fn save(
        &self,
        officer: &Officer,
        id: MessageId,
        form: Form,
    ) -> Result<CertificateRecord, IssueError> {
        require(officer, Role::Issuing, "saving a certificate")?;
        let saved = step(officer, Action::Saved, "");
        let mut changed = self
            .change(vec![id], move |now| {
                let mut c = now[0].clone().ok_or(IssueError::NotFound(id))?;
                in_state(&c, CertificateState::Draft, "saving")?;
                if c.document_type != form.document_type() {
                    return Err(IssueError::KindChanged(c.document_type));
                }
                c.exporter = exporter_of(&form);
                c.form = form_json(&form);
                c.steps.push(saved.clone());
                Ok(vec![c])
            })
            .await?;
        Ok(changed.remove(0))
    }

    /// Submit a draft for approval (issuing role): refused, every problem naming its field,
    /// unless the form is complete and passes the document rules.
    pub async fn submit(
        &self,
        officer: &Officer,
        id: MessageId,
    ) -> Result<CertificateRecord, IssueError> {
        require(officer, Role::Issuing, "submitting a certificate")?;
        let submitted = step(officer, Action::Submitted, "");
        let me = self.me;
        let mut changed = self
            .change(vec![id], move |now| {
                let mut c = now[0].clone().ok_or(IssueError::NotFound(id))?;
                in_state(&c, CertificateState::Draft, "submitting")?;
                let form = form_of(&c)?;
                let mut problems = issuing::check(&form);
                // Signed with this country's key: issued in its name only.
                let country = match &form {
                    Form::EPhyto(f) => &f.issuing_authority.country,
                    Form::Eco(f) => &f.issuing_authority.country,
                };
                if !country.trim().eq_ignore_ascii_case(me.as_str()) {
                    problems.insert(
                        0,
                        FieldProblem::new(
                            "issuing_authority.country",
                            "own-country",
                            "own_country",
                            &[
                                ("own", me.as_str()),
                                ("value", &caravan_common::trust::shortened(country.trim())),
                            ],
                        ),
                    );
                }
                if !problems.is_empty() {
                    return Err(IssueError::Form(problems));
                }
                c.state = CertificateState::AwaitingApproval;
                c.steps.push(submitted.clone());
                Ok(vec![c])
            })
            .await?;
        Ok(changed.remove(0))
    }

    /// Send a submitted certificate back to its preparer, with the reason (approving role).
    pub async fn return_to_draft(
        &self,
        officer: &Officer,
        id: MessageId,
        note: &str,
    ) -> Result<CertificateRecord, IssueError> {
        require(officer, Role::Approving, "returning a certificate")?;
        let note = bounded_note(note, "a return needs the reason, for the preparer")?;
        let returned = step(officer, Action::Returned, &note);
        let mut changed = self
            .change(vec![id], move |now| {
                let mut c = now[0].clone().ok_or(IssueError::NotFound(id))?;
                in_state(&c, CertificateState::AwaitingApproval, "returning")?;
                c.state = CertificateState::Draft;
                c.steps.push(returned.clone());
                Ok(vec![c])
            })
            .await?;
        Ok(changed.remove(0))
    }

    /// Approve a submitted certificate (approving role, and none of the officers who prepared
    /// it): it is numbered, made into its standard document, signed with the country's key and
    /// queued for its recipient; a correction replaces the certificate it supersedes.
    pub async fn approve(
        &self,
        officer: &Officer,
        id: MessageId,
    ) -> Result<CertificateRecord, IssueError> {
        require(officer, Role::Approving, "approving a certificate")?;
        let c = self.certificate(id).await?;
        in_state(&c, CertificateState::AwaitingApproval, "approving")?;
        if let Some(preparer) = c
            .steps
            .iter()
            .find(|s| s.officer == officer.user && s.action != Action::Returned)
        {
            return Err(IssueError::FourEyes {
                officer: officer.user.clone(),
                action: preparer.action,
            });
        }
        let form = form_of(&c)?;
        let replaced = match c.supersedes {
            None => None,
            Some(old) => {
                let store = self.store.clone();
                let old = blocking(move || store.certificate(old))
                    .await?
                    .ok_or(IssueError::NotFound(old))?;
                Some(old)
            }
        };
        let issued_at = Timestamp::now();
        let year = issued_at
            .to_string()
            .get(..4)
            .and_then(|y| y.parse().ok())
            .unwrap_or(1970);
        let store = self.store.clone();
        let n = blocking(move || store.next_certificate_number(year)).await?;
        let document_number = number(self.me, c.document_type, year, n);
        let xml = issuing::build(
            &form,
            &Issue {
                document_number: document_number.clone(),
                issued_at,
                supersedes: replaced.as_ref().and_then(|r| r.document_number.clone()),
            },
        )
        .map_err(IssueError::Form)?;
        // Queued under the certificate's id: a repeat finds it (`certificate`) and only
        // finishes the step.
        self.outbound
            .queue(Outgoing {
                message_id: Some(c.id),
                to: c.to,
                document_type: c.document_type,
                document_id: Some(document_number.clone()),
                supersedes: replaced.as_ref().map(|r| r.id),
                in_reply_to: None,
                content: Content::Document(xml),
                room: None,
            })
            .await?;
        self.finish_approval(id, document_number, Some(officer))
            .await
    }

    /// Mark an approved certificate issued once its document is queued (and the one it
    /// corrects replaced). `officer`: the approver; `None` when a later look finishes an
    /// approval the spoke was stopped in (the step is then noted as finished by the spoke).
    async fn finish_approval(
        &self,
        id: MessageId,
        document_number: String,
        officer: Option<&Officer>,
    ) -> Result<CertificateRecord, IssueError> {
        let approved = match officer {
            Some(o) => step(o, Action::Approved, ""),
            None => Step {
                at: Timestamp::now(),
                officer: "spoke".into(),
                action: Action::Approved,
                note: "the approval was interrupted after the document was queued; finished".into(),
            },
        };
        let store = self.store.clone();
        let supersedes = blocking(move || store.certificate(id))
            .await?
            .ok_or(IssueError::NotFound(id))?
            .supersedes;
        let ids: Vec<MessageId> = std::iter::once(id).chain(supersedes).collect();
        let mut changed = self
            .change(ids, move |now| {
                let mut c = now[0].clone().ok_or(IssueError::NotFound(id))?;
                if c.state == CertificateState::Issued {
                    return Ok(vec![c]);
                }
                in_state(&c, CertificateState::AwaitingApproval, "approving")?;
                c.state = CertificateState::Issued;
                c.document_number = Some(document_number.clone());
                c.steps.push(approved.clone());
                let mut out = vec![c];
                if let Some(Some(old)) = now.get(1) {
                    let mut old = old.clone();
                    old.state = CertificateState::Replaced;
                    old.replaced_by = Some(id);
                    old.steps.push(Step {
                        action: Action::Replaced,
                        note: format!("replaced by {document_number}"),
                        ..approved.clone()
                    });
                    out.push(old);
                }
                Ok(out)
            })
            .await?;
        Ok(changed.remove(0))
    }

    /// Withdraw an issued certificate, with the reason (approving role): the public page then
    /// says it is not to be relied on.
    pub async fn withdraw(
        &self,
        officer: &Officer,
        id: MessageId,
        note: &str,
    ) -> Result<CertificateRecord, IssueError> {
        require(officer, Role::Approving, "withdrawing a certificate")?;
        let note = bounded_note(note, "a withdrawal needs the reason")?;
        let withdrawn = step(officer, Action::Withdrawn, &note);
        let mut changed = self
            .change(vec![id], move |now| {
                let mut c = now[0].clone().ok_or(IssueError::NotFound(id))?;
                in_state(&c, CertificateState::Issued, "withdrawing")?;
                c.state = CertificateState::Withdrawn;
                c.steps.push(withdrawn.clone());
                Ok(vec![c])
            })
            .await?;
        Ok(changed.remove(0))
    }

    /// A correction of an issued certificate: a new draft with its form, which replaces it
    /// once approved (issuing role).
    pub async fn correct(
        &self,
        officer: &Officer,
        id: MessageId,
    ) -> Result<CertificateRecord, IssueError> {
        require(officer, Role::Issuing, "correcting a certificate")?;
        let old = self.certificate(id).await?;
        in_state(&old, CertificateState::Issued, "correcting")?;
        let mut draft = self
            .create(officer, old.to, form_of(&old)?, Some(old.id))
            .await?;
        let supersedes = old.id;
        let mut changed = self
            .change(vec![draft.id], move |now| {
                let mut c = now[0].clone().ok_or(IssueError::NotFound(supersedes))?;
                c.supersedes = Some(supersedes);
                Ok(vec![c])
            })
            .await?;
        draft = changed.remove(0);
        Ok(draft)
    }

    /// Keep a certificate's form as its exporter's template (issuing role).
    pub async fn save_template(
        &self,
        officer: &Officer,
        id: MessageId,
    ) -> Result<TemplateRecord, IssueError> {
        require(officer, Role::Issuing, "saving a template")?;
        let c = self.certificate(id).await?;
        let template = TemplateRecord {
            document_type: c.document_type,
            exporter: c.exporter.clone(),
            form: c.form.clone(),
            saved_by: officer.user.clone(),
            saved_at: Timestamp::now(),
        };
        let (store, kept) = (self.store.clone(), template.clone());
        blocking(move || store.save_template(&kept)).await?;
        Ok(template)
    }

    /// What the public page shows for the token of a printed QR code: `None` for a token of
    /// no issued certificate (a draft's, or none at all: the page says only that it is not
    /// known).
    pub async fn public_status(&self, token: &str) -> Result<Option<PublicStatus>, IssueError> {
        let (store, token) = (self.store.clone(), token.to_owned());
        let found = blocking(move || {
            let Some(c) = store.certificate_by_token(&token)? else {
                return Ok(None);
            };
            let replaced_by = match c.replaced_by {
                Some(id) => store.certificate(id)?.and_then(|r| r.document_number),
                None => None,
            };
            Ok(Some((c, replaced_by)))
        })
        .await?;
        let Some((c, replaced_by)) = found else {
            return Ok(None);
        };
        let (Some(number), Some(issued)) = (
            c.document_number.clone(),
            c.steps.iter().find(|s| s.action == Action::Approved),
        ) else {
            return Ok(None);
        };
        Ok(Some(PublicStatus {
            document_type: c.document_type,
            document_number: number,
            issuer: self.me,
            authority: form_of(&c).map(|f| authority_of(&f)).unwrap_or_default(),
            issued_at: issued.at,
            state: c.state,
            replaced_by,
        }))
    }
}

fn bounded_note(note: &str, missing: &'static str) -> Result<String, IssueError> {
    let note = note.trim();
    if note.is_empty() {
        return Err(IssueError::NoteNeeded(missing));
    }
    Ok(note.chars().take(MAX_NOTE).collect())
}

#[cfg(test)]
pub(crate) mod tests;
