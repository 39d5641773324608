//! The list of certificates, and starting a new one: blank (its countries filled in), a copy
//! of an earlier certificate, or an exporter's template. Starting one is a POST with the
//! session's CSRF token (the choice itself is a page that changes nothing), refused in the
//! officer's language without the issuing role.

use super::*;

/// The list: every certificate, newest first; new ones and templates for issuing officers.
pub(in super::super) fn list_body(
    lang: Lang,
    clock: &Clock,
    officer: &Officer,
    certificates: &[CertificateRecord],
    templates: &[TemplateRecord],
) -> Markup {
    let issuing = officer.may(Role::Issuing);
    html! {
        h1 { (lang.t("certificates.title")) }
        @if issuing {
            p.noprint {
                a.button href="/console/certificates/new?kind=e-phyto" { (lang.t("certificates.new_ephyto")) }
                " "
                a.button href="/console/certificates/new?kind=e-co" { (lang.t("certificates.new_eco")) }
            }
        }
        @if certificates.is_empty() {
            p { (lang.t("certificates.none")) }
        } @else {
            table {
                tr {
                    th { (lang.t("certificates.number")) }
                    th { (lang.t("certificates.kind")) }
                    th { (lang.t("certificates.recipient")) }
                    th { (lang.t("certificates.exporter")) }
                    th { (lang.t("certificates.state")) }
                    th { (lang.t("certificates.last_step")) }
                }
                @for c in certificates {
                    tr {
                        td {
                            a href=(format!("/console/certificates/{}", c.id)) {
                                (c.document_number.as_deref().unwrap_or(lang.t("certificates.unnumbered")))
                            }
                        }
                        td { (kind_name(lang, c.document_type)) }
                        td { (code_value(lang, List::Country, c.to.as_str())) }
                        td { (c.exporter) }
                        td { (state_name(lang, c.state)) }
                        td {
                            @if let Some(s) = c.steps.last() {
                                (action_name(lang, s.action)) ", " (s.officer) ", " (clock.format_short(s.at))
                            }
                        }
                    }
                }
            }
            p { small { (lang.f("page.times", &[("zone", &clock.name())])) } }
        }
        @if issuing && !templates.is_empty() {
            h2 { (lang.t("certificates.templates")) }
            table {
                @for t in templates {
                    tr {
                        td { (kind_name(lang, t.document_type)) }
                        td { (t.exporter) }
                        td { (t.saved_by) ", " (clock.format_short(t.saved_at)) }
                        td {
                            a href=(new_address(t.document_type, "template", &t.exporter)) {
                                (lang.t("certificates.start_from"))
                            }
                        }
                    }
                }
            }
        }
    }
}

fn new_address(t: DocumentType, key: &str, value: &str) -> String {
    let query =
        serde_urlencoded::to_string([("kind", t.as_str()), (key, value)]).unwrap_or_default();
    format!("/console/certificates/new?{query}")
}

pub(in super::super) async fn list(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let Some(me) = c.me(&headers) else {
        return to_login(&uri);
    };
    let lang = me.lang;
    let store = c.api.store.clone();
    let templates = blocking(move || store.templates()).await;
    let (certificates, templates) = match (c.issuance.certificates().await, templates) {
        (Ok(cs), Ok(ts)) => (cs, ts),
        (Err(e), _) => return refused_page(&c, &me, status_of(&e), &refusal_text(lang, &e)),
        (_, Err(e)) => {
            let e = IssueError::Store(e);
            return refused_page(&c, &me, status_of(&e), &refusal_text(lang, &e));
        }
    };
    page(
        lang,
        lang.t("certificates.title"),
        Some((&me.officer.user, &me.csrf)),
        list_body(lang, &c.clock, &me.officer, &certificates, &templates),
    )
    .into_response()
}

#[derive(Deserialize, Default)]
pub(in super::super) struct NewQuery {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    template: String,
}

/// The participants a certificate may be for: the trust list's, other than this spoke.
fn recipients(c: &Console) -> Vec<ParticipantId> {
    c.api
        .hub
        .trust()
        .current()
        .map(|h| {
            h.set
                .participants()
                .map(|p| p.id)
                .filter(|id| *id != c.api.me)
                .collect()
        })
        .unwrap_or_default()
}

/// The choice of a new certificate: its kind, its recipient, and what it starts from.
pub(in super::super) fn new_body(
    lang: Lang,
    csrf: &str,
    kind: Option<DocumentType>,
    recipients: &[ParticipantId],
    to: Option<ParticipantId>,
    q: &NewQuery,
) -> Markup {
    html! {
        h1 { (lang.t("certificates.new_title")) }
        @match kind {
            None => p {
                a href="/console/certificates/new?kind=e-phyto" { (lang.t("certificates.new_ephyto")) }
                " · "
                a href="/console/certificates/new?kind=e-co" { (lang.t("certificates.new_eco")) }
            },
            Some(kind) => form.panel method="post" action="/console/certificates" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="kind" value=(kind.as_str());
                input type="hidden" name="from" value=(q.from);
                input type="hidden" name="template" value=(q.template);
                p { b { (kind_name(lang, kind)) } }
                @if !q.template.is_empty() {
                    p { (lang.f("certificates.from_template", &[("exporter", &q.template)])) }
                }
                @if !q.from.is_empty() {
                    p { (lang.f("certificates.from_certificate", &[("id", &q.from)])) }
                }
                p {
                    label {
                        (lang.t("certificates.recipient")) " "
                        @if recipients.is_empty() {
                            input name="to" required pattern="[A-Z]{2}" size="3" value=(to.map(|t| t.to_string()).unwrap_or_default());
                        } @else {
                            select name="to" required {
                                @for r in recipients {
                                    option value=(r) selected[Some(*r) == to] {
                                        (codes::name(List::Country, r.as_str(), lang).unwrap_or(r.as_str())) " (" (r) ")"
                                    }
                                }
                            }
                        }
                    }
                }
                button { (lang.t("certificates.create")) }
            },
        }
    }
}

pub(in super::super) async fn new_page(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<NewQuery>,
) -> Response {
    let Some(me) = c.me(&headers) else {
        return to_login(&uri);
    };
    let lang = me.lang;
    if !me.officer.may(Role::Issuing) {
        return refused_page(
            &c,
            &me,
            StatusCode::FORBIDDEN,
            needs_role(lang, Role::Issuing),
        );
    }
    let mut kind = kind_of(&q.kind);
    let mut to = None;
    if let Ok(id) = q.from.parse::<MessageId>()
        && let Ok(from) = c.issuance.certificate(id).await
    {
        kind = Some(from.document_type);
        to = Some(from.to);
    }
    let body = new_body(lang, &me.csrf, kind, &recipients(&c), to, &q);
    page(
        lang,
        lang.t("certificates.new_title"),
        Some((&me.officer.user, &me.csrf)),
        body,
    )
    .into_response()
}

/// A blank form of `t` from this spoke `me` to `to`, its countries filled in.
fn blank(t: DocumentType, me: ParticipantId, to: ParticipantId) -> IssueForm {
    let party = |country: ParticipantId| TradeParty {
        country: country.to_string(),
        ..TradeParty::default()
    };
    let authority = Authority {
        country: me.to_string(),
        ..Authority::default()
    };
    match t {
        DocumentType::CertificateOfOrigin => IssueForm::Eco(EcoForm {
            exporter: party(me),
            consignee: party(to),
            issuing_authority: authority,
            ..EcoForm::default()
        }),
        _ => IssueForm::EPhyto(EPhytoForm {
            consignor: party(me),
            consignee: party(to),
            issuing_authority: authority,
            country_of_origin: me.to_string(),
            country_of_destination: to.to_string(),
            ..EPhytoForm::default()
        }),
    }
}

pub(in super::super) async fn create(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
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
    if !me.officer.may(Role::Issuing) {
        return refused_page(
            &c,
            &me,
            StatusCode::FORBIDDEN,
            needs_role(lang, Role::Issuing),
        );
    }
    let Ok(to) = posted.get("to").trim().parse::<ParticipantId>() else {
        return refused_page(
            &c,
            &me,
            StatusCode::BAD_REQUEST,
            lang.t("certificates.bad_recipient"),
        );
    };
    let started = if !posted.get("from").is_empty() {
        let Ok(id) = posted.get("from").parse::<MessageId>() else {
            return not_found(&c, &me);
        };
        match c.issuance.certificate(id).await {
            Ok(from) => form_of(&from)
                .map(|f| (f, Some(id)))
                .map_err(IssueError::from),
            Err(e) => Err(e),
        }
    } else if !posted.get("template").is_empty() {
        let (store, exporter) = (
            c.api.store.clone(),
            posted.get("template").trim().to_lowercase(),
        );
        let kind = kind_of(posted.get("kind"));
        let found = match blocking(move || store.templates()).await {
            Ok(ts) => ts
                .into_iter()
                .find(|t| {
                    Some(t.document_type) == kind && t.exporter.trim().to_lowercase() == exporter
                })
                .and_then(|t| serde_json::from_value(t.form).ok())
                .map(|f| (f, None)),
            Err(e) => {
                return refused_page(
                    &c,
                    &me,
                    StatusCode::SERVICE_UNAVAILABLE,
                    &refusal_text(lang, &IssueError::Store(e)),
                );
            }
        };
        match found {
            Some(found) => Ok(found),
            None => {
                return refused_page(
                    &c,
                    &me,
                    StatusCode::NOT_FOUND,
                    lang.t("certificates.no_template"),
                );
            }
        }
    } else {
        match kind_of(posted.get("kind")) {
            Some(kind) => Ok((blank(kind, c.api.me, to), None)),
            None => {
                return refused_page(
                    &c,
                    &me,
                    StatusCode::BAD_REQUEST,
                    lang.t("certificates.unknown_step"),
                );
            }
        }
    };
    let created = match started {
        Ok((form, from)) => c.issuance.create(&me.officer, to, form, from).await,
        Err(e) => Err(e),
    };
    match created {
        Ok(new) => {
            info!(user = me.officer.user, id = %new.id, "certificate draft created");
            Redirect::to(&format!("/console/certificates/{}", new.id)).into_response()
        }
        Err(e) => refused_page(&c, &me, status_of(&e), &refusal_text(lang, &e)),
    }
}
