//! Issuing from the console (issue 18): the certificates this spoke makes, from the first draft
//! to the sent document, for a country with no national single window.
//!
//! Pages: the list (`/console/certificates`), the choice of a new certificate
//! (`/console/certificates/new`), a certificate's page with its form, its buttons and its
//! history (`/console/certificates/{id}`), its printout (`…/print`, [`print`]) and the public
//! verification page a printed QR code leads to (`/verify/{token}`, [`print`]).
//!
//! Why the console decides nothing itself: every step is the workflow's
//! ([`crate::issuance::Issuance`]), which judges roles, four eyes and states against the
//! certificate as stored. The console only offers the buttons the officer's roles and the
//! certificate's state allow, checks the role first to refuse in the officer's language, and
//! shows what the workflow refused: a form's problems beside the fields they name, with what
//! the officer typed kept. Every change is a POST with the session's CSRF token, as logout is;
//! nothing here uses script (the console's Content-Security-Policy allows none), so adding a
//! goods line is a submit button that saves the form and shows it again with a blank line.

use caravan_common::{DocumentType, ParticipantId};

use crate::{
    checks::Outcome,
    config::Role,
    issuance::{IssueError, form_of},
    issuing::{Authority, EPhytoForm, EcoForm, FieldProblem, Form as IssueForm, TradeParty},
    outbound::SendError,
    store::{Action, CertificateRecord, CertificateState, TemplateRecord},
};

use super::*;

pub(super) mod fields;
mod hs;
mod listing;
pub(super) mod print;
#[cfg(test)]
mod tests;

use fields::Posted;
pub(super) use hs::hs_page;
pub(super) use listing::{create, list, new_page};

/// The largest form a certificate page posts (500 goods lines fit).
pub(super) const MAX_CERTIFICATE_FORM_BYTES: usize = 256 * 1024;

/// The logged-in officer of a request.
pub(super) struct Me {
    pub(super) officer: Officer,
    pub(super) csrf: String,
    pub(super) lang: Lang,
}

impl Console {
    /// The session's officer, with their roles from the config (viewing only if the account
    /// is no longer configured).
    pub(super) fn me(&self, headers: &HeaderMap) -> Option<Me> {
        let (user, csrf, lang) = self.session(headers)?;
        let officer = self
            .officers
            .iter()
            .find(|o| o.user == user)
            .cloned()
            .unwrap_or(Officer {
                user,
                password_hash: String::new(),
                language: None,
                roles: vec![Role::Viewing],
            });
        Some(Me {
            officer,
            csrf,
            lang,
        })
    }
}

/// A step an officer asks for on a certificate's page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Act {
    Save,
    AddLine,
    Submit,
    Approve,
    Return,
    Withdraw,
    Correct,
    Template,
    Copy,
}

impl Act {
    pub(super) const ALL: [Act; 9] = [
        Act::Save,
        Act::AddLine,
        Act::Submit,
        Act::Approve,
        Act::Return,
        Act::Withdraw,
        Act::Correct,
        Act::Template,
        Act::Copy,
    ];

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Act::Save => "save",
            Act::AddLine => "add_line",
            Act::Submit => "submit",
            Act::Approve => "approve",
            Act::Return => "return",
            Act::Withdraw => "withdraw",
            Act::Correct => "correct",
            Act::Template => "template",
            Act::Copy => "copy",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// The role it needs.
    pub(super) fn role(self) -> Role {
        match self {
            Act::Approve | Act::Return | Act::Withdraw => Role::Approving,
            _ => Role::Issuing,
        }
    }

    /// Whether it applies to a certificate in `state`.
    pub(super) fn applies(self, state: CertificateState) -> bool {
        match self {
            Act::Save | Act::AddLine | Act::Submit => state == CertificateState::Draft,
            Act::Approve | Act::Return => state == CertificateState::AwaitingApproval,
            Act::Withdraw | Act::Correct => state == CertificateState::Issued,
            Act::Template | Act::Copy => true,
        }
    }

    /// The button's words.
    fn button(self, lang: Lang) -> &'static str {
        match self {
            Act::Save => lang.t("cert_button.save"),
            Act::AddLine => lang.t("certificates.add_line"),
            Act::Submit => lang.t("cert_button.submit"),
            Act::Approve => lang.t("cert_button.approve"),
            Act::Return => lang.t("cert_button.return"),
            Act::Withdraw => lang.t("cert_button.withdraw"),
            Act::Correct => lang.t("cert_button.correct"),
            Act::Template => lang.t("cert_button.template"),
            Act::Copy => lang.t("cert_button.copy"),
        }
    }
}

/// The steps `officer` may take on `c` now: their roles allow them and they apply to its
/// state (the workflow still judges each; four eyes is shown apart).
pub(super) fn offered(officer: &Officer, c: &CertificateRecord) -> Vec<Act> {
    Act::ALL
        .into_iter()
        .filter(|a| officer.may(a.role()) && a.applies(c.state))
        .collect()
}

/// Whether `officer` took part in preparing `c` (so may not approve it).
pub(super) fn prepared_by(officer: &Officer, c: &CertificateRecord) -> bool {
    c.steps
        .iter()
        .any(|s| s.officer == officer.user && s.action != Action::Returned)
}

/// A role's refusal in words.
fn needs_role(lang: Lang, role: Role) -> &'static str {
    match role {
        Role::Approving => lang.t("certificates.needs_approving"),
        _ => lang.t("certificates.needs_issuing"),
    }
}

pub(super) fn state_name(lang: Lang, state: CertificateState) -> &'static str {
    match state {
        CertificateState::Draft => lang.t("cert_state.draft"),
        CertificateState::AwaitingApproval => lang.t("cert_state.awaiting_approval"),
        CertificateState::Issued => lang.t("cert_state.issued"),
        CertificateState::Withdrawn => lang.t("cert_state.withdrawn"),
        CertificateState::Replaced => lang.t("cert_state.replaced"),
    }
}

fn action_name(lang: Lang, action: Action) -> &'static str {
    match action {
        Action::Created => lang.t("cert_action.created"),
        Action::Saved => lang.t("cert_action.saved"),
        Action::Submitted => lang.t("cert_action.submitted"),
        Action::Returned => lang.t("cert_action.returned"),
        Action::Approved => lang.t("cert_action.approved"),
        Action::Withdrawn => lang.t("cert_action.withdrawn"),
        Action::Replaced => lang.t("cert_action.replaced"),
    }
}

/// The HTTP status of a refused step.
pub(super) fn status_of(e: &IssueError) -> StatusCode {
    match e {
        IssueError::RoleMissing { .. } | IssueError::FourEyes { .. } => StatusCode::FORBIDDEN,
        IssueError::NotFound(_) => StatusCode::NOT_FOUND,
        IssueError::WrongState { .. } => StatusCode::CONFLICT,
        IssueError::Form(_) | IssueError::NoteNeeded(_) | IssueError::KindChanged(_) => {
            StatusCode::BAD_REQUEST
        }
        IssueError::Send(SendError::Store(_)) | IssueError::Store(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        IssueError::Send(_) => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// What the officer reads of a refused step, in `lang`: every refusal has its text in the
/// catalogues; only a rule id, a code or the hub's detail is shown as written.
fn refusal_text(lang: Lang, e: &IssueError) -> String {
    match e {
        IssueError::RoleMissing { role, .. } => needs_role(lang, *role).to_owned(),
        IssueError::FourEyes { .. } => lang.t("certificates.four_eyes").to_owned(),
        IssueError::KindChanged(_) => lang.t("certificates.kind_changed").to_owned(),
        IssueError::NotFound(_) => lang.t("certificates.not_found").to_owned(),
        IssueError::WrongState { state, .. } => lang.f(
            "certificates.wrong_state",
            &[("state", &state_name(lang, *state))],
        ),
        IssueError::Form(_) => lang.t("certificates.form_problems").to_owned(),
        IssueError::NoteNeeded(_) => lang.t("certificates.reason_needed").to_owned(),
        IssueError::Send(SendError::Refused(refusal)) => {
            let code = refusal.code.as_str();
            let explained = lang.lookup(&format!("refusal.{code}")).unwrap_or(code);
            lang.f(
                "certificates.send_refused",
                &[
                    ("code", &code),
                    ("explained", &explained),
                    ("detail", &refusal.detail),
                ],
            )
        }
        IssueError::Send(SendError::Inconsistent(checks)) => {
            let failed = checks
                .iter()
                .filter(|c| c.outcome == Outcome::Fail)
                .map(|c| lang.message(&c.message_key, &c.params))
                .collect::<Vec<_>>()
                .join(" ");
            lang.f("certificates.content_failed", &[("checks", &failed)])
        }
        IssueError::Send(SendError::Invalid(problems)) => {
            // The form's checks passed, so the made document should pass too: a fault of the
            // spoke, named by the broken rules for the operator.
            warn!(cause = %e, "a certificate's document broke a document rule its form passed");
            let rules = problems
                .iter()
                .map(|p| p.rule.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            lang.f("certificates.document_invalid", &[("rules", &rules)])
        }
        IssueError::Store(_) | IssueError::Send(SendError::Store(_)) => {
            warn!(cause = %e, "a certificate step failed on the store");
            lang.t("certificates.store_failed").to_owned()
        }
    }
}

/// A page that only says why not, with its status.
fn refused_page(c: &Console, me: &Me, status: StatusCode, message: &str) -> Response {
    let lang = me.lang;
    let _ = c;
    let body = html! {
        p.fail role="alert" { (message) }
        p { a href="/console/certificates" { (lang.t("certificates.back")) } }
    };
    (
        status,
        page(
            lang,
            lang.t("certificates.title"),
            Some((&me.officer.user, &me.csrf)),
            body,
        ),
    )
        .into_response()
}

/// The page for a certificate id that names none.
pub(super) fn not_found(c: &Console, me: &Me) -> Response {
    refused_page(
        c,
        me,
        StatusCode::NOT_FOUND,
        me.lang.t("certificates.not_found"),
    )
}

fn csrf_ok(me: &Me, posted: &Posted) -> bool {
    bool::from(me.csrf.as_bytes().ct_eq(posted.get("csrf").as_bytes()))
}

fn kind_of(s: &str) -> Option<DocumentType> {
    match s {
        "e-phyto" => Some(DocumentType::Phytosanitary),
        "e-co" => Some(DocumentType::CertificateOfOrigin),
        _ => None,
    }
}

pub(super) fn kind_name(lang: Lang, t: DocumentType) -> &'static str {
    type_name(lang, Some(t))
}

/// What a certificate's page shows beyond the stored record: the form as typed (kept when a
/// step was refused), the problems and why the step was refused.
#[derive(Default)]
pub(super) struct View<'a> {
    pub(super) typed: Option<&'a IssueForm>,
    pub(super) problems: &'a [FieldProblem],
    pub(super) message: Option<String>,
}

fn step_form(id: MessageId, csrf: &str, act: Act, lang: Lang, note: Option<&str>) -> Markup {
    html! {
        form.step method="post" action=(format!("/console/certificates/{id}")) {
            input type="hidden" name="csrf" value=(csrf);
            @if let Some(label) = note {
                label { (label) " " textarea name="note" rows="2" required {} }
                " "
            }
            button name="action" value=(act.as_str()) { (act.button(lang)) }
        }
    }
}

/// A certificate's page: its state in words, the form (editable for an issuing officer while
/// it is a draft), the buttons the officer's roles and its state allow, and its history.
pub(super) fn certificate_body(
    lang: Lang,
    clock: &Clock,
    officer: &Officer,
    csrf: &str,
    c: &CertificateRecord,
    view: &View,
) -> Markup {
    let spec = fields::spec(c.document_type);
    let form = match view.typed {
        Some(f) => serde_json::to_value(f).unwrap_or_default(),
        None => c.form.clone(),
    };
    let offered = offered(officer, c);
    let editable = offered.contains(&Act::Save);
    let problems = fields::by_input(view.problems);
    let action = format!("/console/certificates/{}", c.id);
    let numbered = c.document_number.is_some();
    html! {
        h1 {
            (kind_name(lang, c.document_type)) " "
            (c.document_number.as_deref().unwrap_or(lang.t("certificates.unnumbered")))
        }
        p.headline {
            (lang.t("certificates.state")) ": " b { (state_name(lang, c.state)) } ". "
            (lang.t(match c.state {
                CertificateState::Draft => "cert_state_help.draft",
                CertificateState::AwaitingApproval => "cert_state_help.awaiting_approval",
                CertificateState::Issued => "cert_state_help.issued",
                CertificateState::Withdrawn => "cert_state_help.withdrawn",
                CertificateState::Replaced => "cert_state_help.replaced",
            }))
        }
        table.facts {
            tr { th { (lang.t("certificates.recipient")) } td { (code_value(lang, List::Country, c.to.as_str())) } }
            tr { th { (lang.t("certificates.exporter")) } td { (c.exporter) } }
            @if let Some(old) = c.supersedes {
                tr { th { (lang.t("certificates.corrects")) } td { a href=(format!("/console/certificates/{old}")) { (old) } } }
            }
            @if let Some(new) = c.replaced_by {
                tr { th { (lang.t("certificates.replaced_by")) } td { a href=(format!("/console/certificates/{new}")) { (new) } } }
            }
        }
        p.noprint {
            @if numbered {
                a href=(format!("/console/sent/{}", c.id)) { (lang.t("certificates.sent_page")) }
                " · "
            }
            a href=(format!("/console/certificates/{}/print", c.id)) { (lang.t("certificates.printable")) }
        }
        @if let Some(message) = &view.message {
            p.fail role="alert" { (message) }
        }
        @if !view.problems.is_empty() {
            ul.problems role="alert" {
                @for p in view.problems {
                    li { b { (fields::field_name(lang, &p.field)) } ": " (p.message_in(lang)) }
                }
            }
        }
        @if editable {
            form.certificate method="post" action=(action) {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="edited" value="1";
                (fields::edit(lang, spec, &form, &problems))
                p.buttons {
                    @for act in [Act::Save, Act::Submit, Act::Template] {
                        @if offered.contains(&act) {
                            button name="action" value=(act.as_str()) { (act.button(lang)) } " "
                        }
                    }
                }
            }
        } @else {
            (fields::read(lang, spec, &form))
        }
        div.noprint {
            @if offered.contains(&Act::Approve) {
                @if prepared_by(officer, c) {
                    p.warn { (lang.t("certificates.four_eyes")) }
                } @else {
                    (step_form(c.id, csrf, Act::Approve, lang, None))
                }
            }
            @if offered.contains(&Act::Return) {
                (step_form(c.id, csrf, Act::Return, lang, Some(lang.t("certificates.reason"))))
            }
            @if offered.contains(&Act::Withdraw) {
                (step_form(c.id, csrf, Act::Withdraw, lang, Some(lang.t("certificates.reason"))))
            }
            @for act in [Act::Correct, Act::Template, Act::Copy] {
                @if offered.contains(&act) && !(editable && act == Act::Template) {
                    (step_form(c.id, csrf, act, lang, None))
                }
            }
        }
        h2 { (lang.t("certificates.history")) }
        table {
            tr {
                th { (lang.t("certificates.when")) }
                th { (lang.t("certificates.officer")) }
                th { (lang.t("certificates.step")) }
                th { (lang.t("certificates.note")) }
            }
            @for s in &c.steps {
                tr {
                    td { (clock.format(s.at)) }
                    td { (s.officer) }
                    td { (action_name(lang, s.action)) }
                    td { (s.note) }
                }
            }
        }
    }
}

fn render(
    c: &Console,
    me: &Me,
    rec: &CertificateRecord,
    view: &View,
    status: StatusCode,
) -> Response {
    let lang = me.lang;
    let title = rec
        .document_number
        .clone()
        .unwrap_or_else(|| lang.t("certificates.unnumbered").to_owned());
    (
        status,
        page(
            lang,
            &title,
            Some((&me.officer.user, &me.csrf)),
            certificate_body(lang, &c.clock, &me.officer, &me.csrf, rec, view),
        ),
    )
        .into_response()
}

pub(super) async fn show(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    uri: Uri,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let Some(me) = c.me(&headers) else {
        return to_login(&uri);
    };
    let found = match id.parse::<MessageId>() {
        Ok(id) => c.issuance.certificate(id).await,
        Err(_) => return not_found(&c, &me),
    };
    match found {
        Ok(rec) => render(&c, &me, &rec, &View::default(), StatusCode::OK),
        Err(e) => refused_page(&c, &me, status_of(&e), &refusal_text(me.lang, &e)),
    }
}

/// Where a step leads: the page of the certificate it made or changed.
fn page_of(id: MessageId) -> Response {
    Redirect::to(&format!("/console/certificates/{id}")).into_response()
}

pub(super) async fn act(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let Some(me) = c.me(&headers) else {
        return Redirect::to("/console/login").into_response();
    };
    let lang = me.lang;
    let posted = Posted::new(pairs);
    if !csrf_ok(&me, &posted) {
        return (StatusCode::FORBIDDEN, lang.t("login.csrf_mismatch")).into_response();
    }
    let rec = match id.parse::<MessageId>() {
        Ok(id) => c.issuance.certificate(id).await,
        Err(_) => return not_found(&c, &me),
    };
    let rec = match rec {
        Ok(rec) => rec,
        Err(e) => return refused_page(&c, &me, status_of(&e), &refusal_text(lang, &e)),
    };
    let refuse = |status, message: String| {
        let view = View {
            message: Some(message),
            ..View::default()
        };
        render(&c, &me, &rec, &view, status)
    };
    let Some(act) = Act::parse(posted.get("action")) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            lang.t("certificates.unknown_step").into(),
        );
    };
    if !me.officer.may(act.role()) {
        return refuse(StatusCode::FORBIDDEN, needs_role(lang, act.role()).into());
    }
    if act == Act::Approve && prepared_by(&me.officer, &rec) {
        return refuse(
            StatusCode::FORBIDDEN,
            lang.t("certificates.four_eyes").into(),
        );
    }
    let officer = &me.officer;
    let w = &c.issuance;
    // The form as typed, saved first by the steps taken from the edit form.
    let typed = (posted.get("edited") == "1"
        && rec.state == CertificateState::Draft
        && matches!(act, Act::Save | Act::AddLine | Act::Submit | Act::Template))
    .then(|| fields::parse(fields::spec(rec.document_type), &posted));
    let typed = match typed {
        Some(Ok(form)) => Some(form),
        Some(Err(e)) => {
            warn!(cause = %e, "a posted certificate form did not make a form");
            return refuse(
                StatusCode::BAD_REQUEST,
                lang.t("certificates.unknown_step").into(),
            );
        }
        None => None,
    };
    if let Some(form) = &typed
        && let Err(e) = w.save(officer, rec.id, form.clone()).await
    {
        let view = View {
            typed: Some(form),
            message: Some(refusal_text(lang, &e)),
            ..View::default()
        };
        return render(&c, &me, &rec, &view, status_of(&e));
    }
    let done: Result<MessageId, IssueError> = match act {
        Act::Save | Act::AddLine => Ok(rec.id),
        Act::Submit => w.submit(officer, rec.id).await.map(|r| r.id),
        Act::Approve => w.approve(officer, rec.id).await.map(|r| r.id),
        Act::Return => w
            .return_to_draft(officer, rec.id, posted.get("note"))
            .await
            .map(|r| r.id),
        Act::Withdraw => w
            .withdraw(officer, rec.id, posted.get("note"))
            .await
            .map(|r| r.id),
        Act::Correct => w.correct(officer, rec.id).await.map(|r| r.id),
        Act::Template => w.save_template(officer, rec.id).await.map(|_| rec.id),
        Act::Copy => match form_of(&rec) {
            Ok(form) => w
                .create(officer, rec.to, form, Some(rec.id))
                .await
                .map(|r| r.id),
            Err(e) => Err(e.into()),
        },
    };
    match done {
        Ok(target) => {
            info!(user = officer.user, id = %rec.id, step = act.as_str(), "certificate step taken");
            let mut response = page_of(target);
            if act == Act::AddLine {
                response =
                    Redirect::to(&format!("/console/certificates/{target}#lines")).into_response();
            }
            response
        }
        Err(e) => {
            // Shown on the certificate as it now is, with what was typed kept.
            let now = c.issuance.certificate(rec.id).await.unwrap_or(rec.clone());
            let problems = match &e {
                IssueError::Form(p) => p.as_slice(),
                _ => &[],
            };
            let view = View {
                typed: typed.as_ref(),
                problems,
                message: Some(refusal_text(lang, &e)),
            };
            render(&c, &me, &now, &view, status_of(&e))
        }
    }
}
