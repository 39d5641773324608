//! The issuing workflow on a real store, with a stand-in for the outbound stage that keeps
//! what it was given queued as the outbox would: roles, four eyes, states, numbers,
//! corrections, withdrawal, the public status, and an approval interrupted after queueing.

use std::sync::Mutex;

use super::*;
use crate::{
    issuing::tests::full_ephyto,
    store::{Lifecycle, SentRecord},
};

/// Keeps each queued document, and its sent record in the store, as `Outbound::send` does
/// (the console's tests use it too).
pub(crate) struct Kept {
    store: Arc<SpokeStore>,
    pub(crate) queued: Mutex<Vec<Outgoing>>,
}

impl Kept {
    pub(crate) fn new(store: Arc<SpokeStore>) -> Arc<Self> {
        Arc::new(Self {
            store,
            queued: Mutex::new(Vec::new()),
        })
    }
}

impl Queue for Kept {
    async fn queue(&self, out: Outgoing) -> Result<(), SendError> {
        let record = SentRecord {
            message_id: out.message_id.expect("a certificate gives its id"),
            recipient: out.to,
            document_type: out.document_type,
            document_id: out.document_id.clone().unwrap_or_default(),
            payload_length: 0,
            header_sha256: String::new(),
            queued_at: Timestamp::now(),
            lifecycle: Lifecycle::QUEUED,
            attempts: 0,
            last_error: None,
            transitions: Vec::new(),
            acknowledgement: None,
            responses: Vec::new(),
        };
        self.store.enqueue(&record, b"envelope", b"payload")?;
        self.queued.lock().unwrap().push(out);
        Ok(())
    }
}

pub(crate) fn officer(user: &str, roles: &[Role]) -> Officer {
    Officer {
        user: user.into(),
        password_hash: String::new(),
        language: None,
        roles: roles.to_vec(),
    }
}

fn setup() -> (tempfile::TempDir, Arc<Kept>, Issuance<Kept>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SpokeStore::open(dir.path(), None, 4 << 20).unwrap());
    let kept = Kept::new(store.clone());
    let issuance = Issuance::new("KZ".parse().unwrap(), store, kept.clone());
    (dir, kept, issuance)
}

/// The recipient.
fn cn() -> ParticipantId {
    "CN".parse().unwrap()
}

#[tokio::test]
async fn one_officer_prepares_another_approves_and_every_step_is_kept() {
    let (_dir, kept, issuance) = setup();
    let ana = officer("ana", &[Role::Issuing]);
    let bo = officer("bo", &[Role::Approving]);
    let both = officer("cy", &[Role::Issuing, Role::Approving]);
    let viewer = officer("di", &[Role::Viewing]);

    // A viewing officer prepares nothing.
    let e = issuance
        .create(&viewer, cn(), Form::EPhyto(full_ephyto()), None)
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("needs the issuing role, which officer di does not have"),
        "{e}"
    );

    // A draft with a required field missing is saved, but not submitted: the field is named.
    let mut incomplete = full_ephyto();
    incomplete.consignee.name.clear();
    let c = issuance
        .create(&ana, cn(), Form::EPhyto(incomplete), None)
        .await
        .unwrap();
    assert_eq!(c.state, CertificateState::Draft);
    match issuance.submit(&ana, c.id).await.unwrap_err() {
        IssueError::Form(problems) => {
            assert!(
                problems.iter().any(|p| p.field == "consignee.name"),
                "{problems:?}"
            )
        }
        other => panic!("{other}"),
    }
    // Issued in another country's name: refused at submission, the field named.
    let mut foreign = full_ephyto();
    foreign.issuing_authority.country = "UZ".into();
    issuance
        .save(&ana, c.id, Form::EPhyto(foreign))
        .await
        .unwrap();
    match issuance.submit(&ana, c.id).await.unwrap_err() {
        IssueError::Form(problems) => assert_eq!(
            (problems[0].field.as_str(), problems[0].rule.as_str()),
            ("issuing_authority.country", "own-country")
        ),
        other => panic!("{other}"),
    }
    // Completed and submitted.
    issuance
        .save(&ana, c.id, Form::EPhyto(full_ephyto()))
        .await
        .unwrap();
    issuance.submit(&ana, c.id).await.unwrap();
    // An officer without the approving role cannot approve; nor can the preparer who has it.
    let e = issuance.approve(&ana, c.id).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("needs the approving role, which officer ana does not have"),
        "{e}"
    );
    let cy_prepared = issuance
        .create(&both, cn(), Form::EPhyto(full_ephyto()), None)
        .await
        .unwrap();
    issuance.submit(&both, cy_prepared.id).await.unwrap();
    let e = issuance.approve(&both, cy_prepared.id).await.unwrap_err();
    assert!(
        e.to_string().contains("officer cy prepared this certificate (created), so another officer must approve it (four eyes)"),
        "{e}"
    );
    assert!(kept.queued.lock().unwrap().is_empty());
    // Another officer approves: numbered, made into its document and queued under its id.
    let issued = issuance.approve(&bo, c.id).await.unwrap();
    assert_eq!(issued.state, CertificateState::Issued);
    let year = &Timestamp::now().to_string()[..4];
    assert_eq!(
        issued.document_number.as_deref(),
        Some(format!("KZ-PHY-{year}-000001").as_str())
    );
    {
        let queued = kept.queued.lock().unwrap();
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].message_id, Some(c.id));
        assert_eq!(queued[0].to, cn());
        let Content::Document(xml) = &queued[0].content else {
            panic!("a document")
        };
        let recognised = crate::document::recognise(xml).unwrap();
        assert_eq!(
            recognised.document_id.as_deref(),
            issued.document_number.as_deref()
        );
    }
    let actions: Vec<(String, Action)> = issued
        .steps
        .iter()
        .map(|s| (s.officer.clone(), s.action))
        .collect();
    assert_eq!(
        actions,
        [
            ("ana".to_owned(), Action::Created),
            ("ana".to_owned(), Action::Saved),
            ("ana".to_owned(), Action::Saved),
            ("ana".to_owned(), Action::Submitted),
            ("bo".to_owned(), Action::Approved),
        ]
    );
    // Approved once only.
    assert!(matches!(
        issuance.approve(&bo, c.id).await.unwrap_err(),
        IssueError::WrongState {
            state: CertificateState::Issued,
            ..
        }
    ));
    // An issued certificate is no longer edited.
    assert!(matches!(
        issuance
            .save(&ana, c.id, Form::EPhyto(full_ephyto()))
            .await
            .unwrap_err(),
        IssueError::WrongState { .. }
    ));

    // The public page: it exists, who issued it, current; a draft's token says nothing.
    let status = issuance
        .public_status(&issued.public_token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.state, CertificateState::Issued);
    assert_eq!(
        status.authority,
        "Committee of State Inspection in the Agro-Industrial Complex"
    );
    assert_eq!(status.issuer.as_str(), "KZ");
    assert_eq!(
        issuance
            .public_status(&cy_prepared.public_token)
            .await
            .unwrap(),
        None
    );
    assert_eq!(issuance.public_status("0000").await.unwrap(), None);

    // A correction: a new certificate that supersedes the old, which is replaced once approved.
    let correction = issuance.correct(&ana, c.id).await.unwrap();
    assert_eq!(correction.supersedes, Some(c.id));
    issuance.submit(&ana, correction.id).await.unwrap();
    let corrected = issuance.approve(&bo, correction.id).await.unwrap();
    assert_eq!(
        corrected.document_number.as_deref(),
        Some(format!("KZ-PHY-{year}-000002").as_str())
    );
    assert_eq!(
        kept.queued.lock().unwrap()[1].supersedes,
        Some(c.id),
        "the header supersedes the old certificate's message"
    );
    let old = issuance.certificate(c.id).await.unwrap();
    assert_eq!(old.state, CertificateState::Replaced);
    assert_eq!(old.replaced_by, Some(correction.id));
    let status = issuance
        .public_status(&old.public_token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.state, CertificateState::Replaced);
    assert_eq!(status.replaced_by, corrected.document_number);

    // Withdrawn, with the reason, by an approving officer.
    assert!(matches!(
        issuance
            .withdraw(&bo, correction.id, " ")
            .await
            .unwrap_err(),
        IssueError::NoteNeeded(_)
    ));
    assert!(matches!(
        issuance
            .withdraw(&ana, correction.id, "wrong consignee")
            .await
            .unwrap_err(),
        IssueError::RoleMissing {
            role: Role::Approving,
            ..
        }
    ));
    let withdrawn = issuance
        .withdraw(&bo, correction.id, "the consignment was not shipped")
        .await
        .unwrap();
    assert_eq!(withdrawn.state, CertificateState::Withdrawn);
    assert_eq!(
        withdrawn.steps.last().unwrap().note,
        "the consignment was not shipped"
    );

    // A template per exporter, from a certificate.
    let template = issuance.save_template(&ana, c.id).await.unwrap();
    assert_eq!(template.exporter, "Zhetysu Agro LLP");
}

#[tokio::test]
async fn an_approval_interrupted_after_queueing_is_finished_not_sent_again() {
    let (_dir, kept, issuance) = setup();
    let ana = officer("ana", &[Role::Issuing]);
    let bo = officer("bo", &[Role::Approving]);
    let c = issuance
        .create(&ana, cn(), Form::EPhyto(full_ephyto()), None)
        .await
        .unwrap();
    issuance.submit(&ana, c.id).await.unwrap();
    // The document reached the outbox; the spoke stopped before the certificate said so.
    kept.queue(Outgoing {
        message_id: Some(c.id),
        to: cn(),
        document_type: DocumentType::Phytosanitary,
        document_id: Some("KZ-PHY-2026-000009".into()),
        supersedes: None,
        in_reply_to: None,
        content: Content::Document(Vec::new()),
        room: None,
    })
    .await
    .unwrap();
    let found = issuance.certificate(c.id).await.unwrap();
    assert_eq!(found.state, CertificateState::Issued);
    assert_eq!(found.document_number.as_deref(), Some("KZ-PHY-2026-000009"));
    assert_eq!(found.steps.last().unwrap().officer, "spoke");
    // Approving again sends nothing more.
    assert!(issuance.approve(&bo, c.id).await.is_err());
    assert_eq!(kept.queued.lock().unwrap().len(), 1);
}
