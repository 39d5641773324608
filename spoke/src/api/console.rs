//! The officers' web console: a received certificate, what it says, and whether it is genuine,
//! current and unaltered, in plain words.
//!
//! Served by the spoke under `/console`, as plain server-rendered HTML with inline styles (no
//! script, nothing loaded from the internet), usable on a laptop or a tablet at a border post.
//! Officers log in with accounts from the config (passwords hashed with argon2); a session is
//! a random cookie (`HttpOnly`, `SameSite=Strict`, `Secure`); every form that changes something
//! carries a per-session CSRF token; an account is locked for a while after repeated failures.
//! Each verification check says why it passed or failed; a failure is never a generic error.
//!
//! The pages are `maud` templates: every value that comes from a document, the store or the
//! request (numbers, party names, fields, the XML, the filters typed in) is escaped when the
//! page is built, and only the stylesheet and the QR code's SVG are spliced in as they are.
//! Cookies are read from `Cookie` and written into `Set-Cookie` with the `cookie` crate.
//!
//! Every word the console shows an officer comes from the catalogues of [`crate::i18n`], in the
//! language of the officer's account, or the one chosen on the login page (from the browser's
//! `Accept-Language` until the officer picks another); times are shown in the configured time
//! zone, and code-list values (document kinds, statuses, transport modes, countries, units) by
//! their names, a code not in its list shown as written and marked as such.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use axum::{
    Form, Router,
    extract::{Path as UrlPath, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use rand_core::RngCore;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tracing::{info, warn};

use caravan_common::{MessageId, Timestamp, trust::KeyStatus};
use cookie::{Cookie, SameSite};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::{
    config::{ConsoleConfig, Officer},
    document,
    i18n::{
        Lang,
        clock::Clock,
        codes::{self, Decoded, List},
        negotiate,
    },
    rt::blocking,
    store::{Arrivals, InboxRecord, Verification},
};

use super::Api;

/// Failed logins before an account is locked.
const MAX_FAILURES: u32 = 5;
/// How long a locked account stays locked.
const LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// How long a session lasts.
const SESSION_LIFE: Duration = Duration::from_secs(8 * 3600);
const SESSION_COOKIE: &str = "caravan_session";
const LOGIN_COOKIE: &str = "caravan_login";

/// Hash a password for the config (argon2id with a random salt).
pub fn hash_password(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters hashes any password")
        .to_string()
}

struct Session {
    user: String,
    csrf: String,
    /// The language the console speaks in this session.
    lang: Lang,
    expires: Instant,
}

#[derive(Default)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
}

/// The console's state. The maps are `std` mutexes: held for a lookup, never across an await.
pub struct Console {
    api: Api,
    officers: Vec<Officer>,
    clock: Clock,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<String, Failures>>,
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The value of cookie `name` in the request's `Cookie` headers (the first, if several).
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// A cookie of the console: on `/console` only, `HttpOnly`, `Secure`, `SameSite=Strict`,
/// lasting `max_age` (zero: the browser drops it at once).
fn console_cookie(name: &'static str, value: String, max_age: Duration) -> Cookie<'static> {
    let max_age = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
    Cookie::build((name, value))
        .path("/console")
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .max_age(cookie::time::Duration::seconds(max_age))
        .build()
}

/// `response` with `cookie` set: the login form (its CSRF cookie), a login (the session) and
/// a logout (the session dropped) all answer this way.
fn with_cookie(cookie: Cookie<'_>, response: impl IntoResponse) -> Response {
    ([(header::SET_COOKIE, cookie.to_string())], response).into_response()
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;background:#f5f6f8;color:#1b1f24}\
header{background:#123c69;color:#fff;padding:.6rem 1rem;display:flex;justify-content:space-between;align-items:center}\
header a,header button{color:#fff}main{padding:1rem;max-width:70rem;margin:auto}\
table{border-collapse:collapse;width:100%;background:#fff}td,th{padding:.4rem .5rem;border-bottom:1px solid #dde;text-align:left;vertical-align:top;overflow-wrap:anywhere}td:first-child{white-space:nowrap}\
.ok{color:#0a6b2d;font-weight:600}.fail{color:#a4161a;font-weight:700}.warn{color:#8a5a00;font-weight:600}\
.panel{background:#fff;padding:1rem;margin:1rem 0;border-radius:.4rem;box-shadow:0 1px 2px #0002}\
form.filters{display:flex;flex-wrap:wrap;gap:.5rem;margin-bottom:1rem}input,select,button{font-size:1rem;padding:.35rem}\
pre{white-space:pre-wrap;word-break:break-all;max-height:30rem;overflow:auto;background:#fff;padding:.5rem}\
@media print{header,form,.noprint{display:none}body{background:#fff}}";

/// A whole page around `body`, in `lang`; with an officer (name, CSRF token), the bar names
/// them and offers the logout form.
fn page(lang: Lang, title: &str, officer: Option<(&str, &str)>, body: Markup) -> Html<String> {
    let page = html! {
        (DOCTYPE)
        html lang=(lang.tag()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { (lang.f("page.title", &[("title", &title)])) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    a href="/console" { b { "Caravan" } " " (lang.t("page.console")) }
                    @if let Some((name, csrf)) = officer {
                        span { (name) }
                        form method="post" action="/console/logout" {
                            input type="hidden" name="csrf" value=(csrf);
                            button { (lang.t("page.logout")) }
                        }
                    }
                }
                main { (body) }
            }
        }
    };
    Html(page.into_string())
}

/// A code of `list` as the officer reads it: its name and, in small type, the code; a code not
/// in the list as written, marked as such.
fn code_value(lang: Lang, list: List, code: &str) -> Markup {
    html! {
        @match codes::decode(list, code, lang) {
            Decoded::Known { code, name } => { (name) " " small { "(" (code) ")" } }
            Decoded::Unknown { code } => {
                (code) " " small.warn { "(" (lang.t("code.unknown")) ")" }
            }
        }
    }
}

/// A document type's name for the officer ("e-phyto" → "Phytosanitary").
fn type_name(lang: Lang, t: Option<caravan_common::DocumentType>) -> &'static str {
    match t.map(|t| t.as_str()) {
        Some("e-co") => lang.t("doctype.e-co"),
        Some("e-phyto") => lang.t("doctype.e-phyto"),
        Some("e-invoice") => lang.t("doctype.e-invoice"),
        _ => lang.t("doctype.unknown"),
    }
}

/// The console's routes.
pub fn router(api: Api, config: ConsoleConfig) -> Router {
    let console = Arc::new(Console {
        api,
        officers: config.officers,
        clock: config.clock,
        sessions: Mutex::default(),
        failures: Mutex::default(),
    });
    Router::new()
        .route("/console", get(inbox))
        .route("/console/login", get(login_form).post(login))
        .route("/console/logout", post(logout))
        .route("/console/documents/{id}", get(document_page))
        .route("/console/documents/{id}/print", get(print_page))
        .with_state(console)
}

impl Console {
    /// The open sessions, by id (a poisoned lock still holds a consistent map: each change
    /// is one insert, remove or retain).
    fn sessions(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session of a request: (user, csrf token, language).
    fn session(&self, headers: &HeaderMap) -> Option<(String, String, Lang)> {
        let id = cookie_value(headers, SESSION_COOKIE)?;
        let mut sessions = self.sessions();
        sessions.retain(|_, s| s.expires > Instant::now());
        sessions
            .get(&id)
            .map(|s| (s.user.clone(), s.csrf.clone(), s.lang))
    }

    /// Check a login, counting failures and locking accounts; returns the officer's account,
    /// or the catalogue key of the error for the page.
    fn check_login(&self, user: &str, password: &str) -> Result<&Officer, &'static str> {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let entry = failures.entry(user.to_owned()).or_default();
        if entry.locked_until.is_some_and(|t| t > Instant::now()) {
            return Err("login.locked");
        }
        let officer = self
            .officers
            .iter()
            .find(|o| bool::from(o.user.as_bytes().ct_eq(user.as_bytes())));
        // Verify against a real hash even for an unknown user, so timing does not tell.
        let hash = officer
            .map(|o| o.password_hash.as_str())
            .unwrap_or(DUMMY_HASH);
        let good = PasswordHash::new(hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false);
        if let Some(officer) = officer.filter(|_| good) {
            *entry = Failures::default();
            return Ok(officer);
        }
        entry.count += 1;
        if entry.count >= MAX_FAILURES {
            entry.locked_until = Some(Instant::now() + LOCKOUT);
            entry.count = 0;
            warn!(user, "officer account locked after repeated failed logins");
        }
        Err("login.wrong")
    }
}

/// A valid argon2 hash of a random string, used when the user name is unknown.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$B4DDLhfCdLX/5QVxY9qqq5yG7tSAo2GqOqqMq+ISOUk";

/// The language asked for on the login page (`?lang=ru`, or the form's field).
#[derive(Deserialize, Default)]
struct LangChoice {
    #[serde(default)]
    lang: String,
}

/// The language of a browser that is not logged in: the one it chose on the login page, else
/// the best of its `Accept-Language`.
fn visitor_language(headers: &HeaderMap, chosen: &str) -> Lang {
    Lang::from_tag(chosen).unwrap_or_else(|| {
        negotiate(
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok()),
        )
    })
}

/// The login form's body, in `lang`, with a link to each other language.
fn login_body(lang: Lang, token: &str) -> Markup {
    html! {
        div.panel {
            h1 { (lang.t("login.title")) }
            form method="post" action="/console/login" {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="lang" value=(lang.tag());
                p { label { (lang.t("login.user")) " " input name="user" autocomplete="username" required; } }
                p {
                    label {
                        (lang.t("login.password")) " "
                        input name="password" type="password" autocomplete="current-password" required;
                    }
                }
                button { (lang.t("login.button")) }
            }
            p.languages {
                (lang.t("page.language")) ": "
                @for (i, other) in Lang::all().enumerate() {
                    @if i > 0 { " · " }
                    @if other == lang {
                        b lang=(other.tag()) { (other.name()) }
                    } @else {
                        a href={ "/console/login?lang=" (other.tag()) } hreflang=(other.tag()) lang=(other.tag()) {
                            (other.name())
                        }
                    }
                }
            }
        }
    }
}

async fn login_form(headers: HeaderMap, Query(choice): Query<LangChoice>) -> Response {
    let lang = visitor_language(&headers, &choice.lang);
    let token = random_token();
    with_cookie(
        console_cookie(LOGIN_COOKIE, token.clone(), Duration::from_secs(900)),
        page(lang, lang.t("login.title"), None, login_body(lang, &token)),
    )
}

#[derive(Deserialize)]
struct LoginForm {
    user: String,
    password: String,
    csrf: String,
    /// The language the form was shown in.
    #[serde(default)]
    lang: String,
}

async fn login(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    // Double-submit: the form's token must be the one this browser was given with the form.
    let lang = visitor_language(&headers, &form.lang);
    let again = format!("/console/login?lang={}", lang.tag());
    let expected = cookie_value(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !bool::from(expected.as_bytes().ct_eq(form.csrf.as_bytes())) {
        let body = html! {
            p.fail { (lang.t("login.expired")) " " a href=(again) { (lang.t("login.try_again")) } }
        };
        return (
            StatusCode::FORBIDDEN,
            page(lang, lang.t("login.title"), None, body),
        )
            .into_response();
    }
    let officer = match c.check_login(&form.user, &form.password) {
        Ok(officer) => officer,
        Err(message) => {
            warn!(user = form.user, "failed officer login");
            let body = html! {
                p.fail { (lang.t(message)) }
                p { a href=(again) { (lang.t("login.try_again")) } }
            };
            return (
                StatusCode::UNAUTHORIZED,
                page(lang, lang.t("login.title"), None, body),
            )
                .into_response();
        }
    };
    let id = random_token();
    let session = Session {
        user: form.user.clone(),
        csrf: random_token(),
        // The account's language if it has one, else the one the login page was shown in.
        lang: officer.language.unwrap_or(lang),
        expires: Instant::now() + SESSION_LIFE,
    };
    c.sessions().insert(id.clone(), session);
    info!(user = form.user, "officer logged in");
    with_cookie(
        console_cookie(SESSION_COOKIE, id, SESSION_LIFE),
        Redirect::to("/console"),
    )
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let Some((user, csrf, lang)) = c.session(&headers) else {
        return Redirect::to("/console/login").into_response();
    };
    if !bool::from(csrf.as_bytes().ct_eq(form.csrf.as_bytes())) {
        return (StatusCode::FORBIDDEN, lang.t("login.csrf_mismatch")).into_response();
    }
    if let Some(id) = cookie_value(&headers, SESSION_COOKIE) {
        c.sessions().remove(&id);
    }
    info!(user, "officer logged out");
    with_cookie(
        console_cookie(SESSION_COOKIE, String::new(), Duration::ZERO),
        Redirect::to(&format!("/console/login?lang={}", lang.tag())),
    )
}

#[derive(Deserialize, serde::Serialize, Default, Clone)]
struct Filters {
    #[serde(default)]
    q: String,
    #[serde(default, rename = "type")]
    document_type: String,
    #[serde(default)]
    country: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    /// The page: documents that arrived before this cursor (the newest first).
    #[serde(default)]
    before: Option<u64>,
}

/// Documents the inbox page lists at a time.
const INBOX_PAGE: usize = 100;

impl Filters {
    fn keep(&self, r: &InboxRecord) -> bool {
        let q = self.q.trim().to_lowercase();
        let parties = r
            .summary
            .as_ref()
            .map(|s| s.parties.as_slice())
            .unwrap_or_default();
        let text_match = q.is_empty()
            || r.document_id
                .as_deref()
                .unwrap_or_default()
                .to_lowercase()
                .contains(&q)
            || r.sender.as_str().to_lowercase() == q
            || parties.iter().any(|p| p.to_lowercase().contains(&q));
        let received = r.received_at.to_string();
        let date = received.get(..10).unwrap_or(&received);
        text_match
            && (self.document_type.is_empty()
                || r.document_type.map(|t| t.as_str()) == Some(self.document_type.as_str()))
            && (self.country.is_empty() || r.sender.as_str() == self.country)
            && match self.status.as_str() {
                "verified" => matches!(r.verification, Verification::Verified { .. }),
                "rejected" => matches!(r.verification, Verification::Rejected { .. }),
                _ => true,
            }
            && (self.from.is_empty() || date >= self.from.as_str())
            && (self.to.is_empty() || date <= self.to.as_str())
    }
}

/// The verification column of the inbox list.
fn verdict_cell(lang: Lang, v: &Verification) -> Markup {
    html! {
        @match v {
            Verification::Verified { notes } => {
                span.ok { (lang.t("verdict.verified")) }
                @if !notes.is_empty() {
                    " "
                    span.warn {
                        "("
                        @for (i, n) in notes.iter().enumerate() {
                            @if i > 0 { ", " }
                            (n.code)
                        }
                        ")"
                    }
                }
            }
            Verification::Rejected { code, .. } => {
                span.fail { (lang.f("verdict.not_genuine", &[("code", &code.as_str())])) }
            }
        }
    }
}

/// A `select` of the filter form, `current` selected.
fn select(name: &str, current: &str, options: &[(&str, &str)]) -> Markup {
    html! {
        select name=(name) {
            @for (value, label) in options {
                option value=(value) selected[*value == current] { (label) }
            }
        }
    }
}

/// The inbox page's body: the filter form as the officer filled it, how many documents the
/// inbox holds, one page of `records` (newest first) and, when there are older ones, the link
/// to them (`older`: the cursor).
fn inbox_body(
    lang: Lang,
    clock: &Clock,
    f: &Filters,
    total: u64,
    records: &Arrivals,
    older: Option<u64>,
) -> Markup {
    let older = older.map(|before| {
        serde_urlencoded::to_string(Filters {
            before: Some(before),
            ..f.clone()
        })
        .unwrap_or_default()
    });
    html! {
        h1 { (lang.t("inbox.title")) }
        form.filters method="get" action="/console" {
            input name="q" placeholder=(lang.t("inbox.search")) value=(f.q);
            (select("type", &f.document_type, &[
                ("", lang.t("doctype.any")),
                ("e-co", lang.t("doctype.e-co")),
                ("e-phyto", lang.t("doctype.e-phyto")),
                ("e-invoice", lang.t("doctype.e-invoice")),
            ]))
            input name="country" placeholder=(lang.t("inbox.country")) size="8" value=(f.country);
            (select("status", &f.status, &[
                ("", lang.t("inbox.any_result")),
                ("verified", lang.t("inbox.verified")),
                ("rejected", lang.t("inbox.rejected")),
            ]))
            label { (lang.t("inbox.from")) " " input type="date" name="from" value=(f.from); }
            label { (lang.t("inbox.to")) " " input type="date" name="to" value=(f.to); }
            button { (lang.t("inbox.filter")) }
        }
        p {
            (lang.f("inbox.count", &[("count", &total)]))
            @if f.before.is_some() { (lang.t("inbox.older_ones")) }
            "."
        }
        table {
            thead {
                tr {
                    th { (lang.t("inbox.number")) } th { (lang.t("inbox.type")) }
                    th { (lang.t("inbox.sender")) }
                    th { (lang.f("inbox.received", &[("zone", &clock.name())])) }
                    th { (lang.t("inbox.verification")) }
                }
            }
            tbody {
                // Newest first, which is what an officer at a border post looks for; a page at
                // a time.
                @for (_, r) in records {
                    tr {
                        td {
                            a href={ "/console/documents/" (r.message_id) } {
                                (r.document_id.as_deref().unwrap_or(lang.t("inbox.unreadable")))
                            }
                        }
                        td { (type_name(lang, r.document_type)) }
                        td { (r.sender.as_str()) }
                        td { (clock.format_short(r.received_at)) }
                        td { (verdict_cell(lang, &r.verification)) }
                    }
                }
                @if records.is_empty() {
                    tr { td colspan="5" { (lang.t("inbox.none")) } }
                }
            }
        }
        @if let Some(query) = older {
            p { a href={ "/console?" (query) } { (lang.t("inbox.older")) } }
        }
    }
}

async fn inbox(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(f): Query<Filters>,
) -> Response {
    let Some((user, csrf, lang)) = c.session(&headers) else {
        return Redirect::to("/console/login").into_response();
    };
    let store = c.api.store.clone();
    let filters = f.clone();
    let listed = blocking(move || {
        let total = store.inbox_len()?;
        let (page, older) =
            store.inbox_matching(filters.before, INBOX_PAGE, |r| filters.keep(r))?;
        Ok((total, page, older))
    })
    .await;
    let (total, records, older) = match listed {
        Ok(listed) => listed,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                lang.f("error.store", &[("error", &e)]),
            )
                .into_response();
        }
    };
    page(
        lang,
        lang.t("inbox.title"),
        Some((&user, &csrf)),
        inbox_body(lang, &c.clock, &f, total, &records, older),
    )
    .into_response()
}

/// One line of the verification panel: passed (`Some(true)`), failed, or information.
struct CheckLine {
    name: &'static str,
    ok: Option<bool>,
    detail: String,
}

/// A key's status in words.
fn key_status(lang: Lang, status: KeyStatus) -> &'static str {
    match status {
        KeyStatus::Active => lang.t("key_status.active"),
        KeyStatus::NotYetValid => lang.t("key_status.not_yet_valid"),
        KeyStatus::Expired => lang.t("key_status.expired"),
        KeyStatus::Revoked => lang.t("key_status.revoked"),
    }
}

/// The verification panel: each check, and why it passed or failed, in `lang`, times on
/// `clock`.
fn checks(c: &Console, lang: Lang, r: &InboxRecord, all: &[InboxRecord]) -> Vec<CheckLine> {
    let clock = &c.clock;
    let mut lines = Vec::new();
    let held = c.api.hub.trust().current();
    match &r.verification {
        Verification::Verified { notes } => {
            lines.push(CheckLine {
                name: lang.t("check.signature"),
                ok: Some(true),
                detail: lang.f("detail.signature_ok", &[("sha256", &r.payload_sha256)]),
            });
            for n in notes {
                lines.push(CheckLine {
                    name: lang.t("check.note"),
                    ok: None,
                    detail: lang.f("detail.note", &[("code", &n.code), ("message", &n.message)]),
                });
            }
        }
        Verification::Rejected { code, reason } => lines.push(CheckLine {
            name: lang.t("check.signature"),
            ok: Some(false),
            detail: lang.f("detail.rejected", &[("code", code), ("reason", reason)]),
        }),
    }
    let key = r.key_id.as_deref().and_then(|k| k.parse().ok());
    match (key, &held, r.accepted_at) {
        (Some(key), Some(h), Some(at)) => match h.set.key(key) {
            Some(entry) => {
                let status = entry.status(at);
                lines.push(CheckLine {
                    name: lang.t("check.signing_key"),
                    ok: Some(
                        status == KeyStatus::Active
                            || entry.revoked.as_ref().is_some_and(|rv| rv.at > at),
                    ),
                    detail: lang.f(
                        "detail.key",
                        &[
                            ("key", &key),
                            ("participant", &entry.participant),
                            ("status", &key_status(lang, status)),
                            ("accepted", &clock.format(at)),
                            ("now", &key_status(lang, entry.status(Timestamp::now()))),
                        ],
                    ),
                });
                if let Some(t) = r.document_type {
                    let allowed = entry.document_types.contains(&t);
                    lines.push(CheckLine {
                        name: lang.t("check.issuer_allowed"),
                        ok: Some(allowed),
                        detail: lang.f(
                            "detail.issuer_allowed",
                            &[
                                ("participant", &entry.participant),
                                ("type", &type_name(lang, Some(t))),
                                (
                                    "answer",
                                    &lang.t(if allowed { "detail.yes" } else { "detail.no" }),
                                ),
                            ],
                        ),
                    });
                }
            }
            None => lines.push(CheckLine {
                name: lang.t("check.signing_key"),
                ok: Some(false),
                detail: lang.f("detail.key_not_listed", &[("key", &key)]),
            }),
        },
        _ => lines.push(CheckLine {
            name: lang.t("check.signing_key"),
            ok: Some(false),
            detail: lang.t("detail.key_unknown").into(),
        }),
    }
    lines.push(match (r.hub_sequence, r.accepted_at) {
        (Some(seq), Some(at)) => CheckLine {
            name: lang.t("check.hub_receipt"),
            ok: Some(true),
            detail: lang.f(
                "detail.receipt_ok",
                &[("accepted", &clock.format(at)), ("sequence", &seq)],
            ),
        },
        _ => CheckLine {
            name: lang.t("check.hub_receipt"),
            ok: Some(false),
            detail: lang.t("detail.receipt_missing").into(),
        },
    });
    lines.push(match &r.evidence.ack {
        Some(_) => CheckLine {
            name: lang.t("check.acknowledgement"),
            ok: Some(true),
            detail: lang.t("detail.ack_sent").into(),
        },
        None => CheckLine {
            name: lang.t("check.acknowledgement"),
            ok: None,
            detail: lang.t("detail.ack_pending").into(),
        },
    });
    lines.push(match &held {
        Some(h) if h.set.info.is_fresh(Timestamp::now()) => CheckLine {
            name: lang.t("check.trust_list"),
            ok: Some(true),
            detail: lang.f("detail.trust_fresh", &[("version", &h.set.info.version)]),
        },
        Some(h) => CheckLine {
            name: lang.t("check.trust_list"),
            ok: Some(false),
            detail: lang.f(
                "detail.trust_stale",
                &[
                    ("version", &h.set.info.version),
                    (
                        "due",
                        &h.set
                            .info
                            .next_update
                            .map(|t| clock.format(t))
                            .unwrap_or_default(),
                    ),
                ],
            ),
        },
        None => CheckLine {
            name: lang.t("check.trust_list"),
            ok: Some(false),
            detail: lang.t("detail.trust_none").into(),
        },
    });
    let replacements: Vec<&InboxRecord> = all
        .iter()
        .filter(|o| o.sender == r.sender && o.supersedes == Some(r.message_id))
        .collect();
    lines.push(match replacements.first() {
        Some(n) => CheckLine {
            name: lang.t("check.current"),
            ok: Some(false),
            detail: lang.f(
                "detail.replaced",
                &[
                    ("number", &n.document_id.as_deref().unwrap_or("?")),
                    ("message", &n.message_id),
                    ("received", &clock.format(n.received_at)),
                ],
            ),
        },
        None => CheckLine {
            name: lang.t("check.current"),
            ok: Some(true),
            detail: lang.t("detail.not_replaced").into(),
        },
    });
    if let Some(old) = r.supersedes {
        lines.push(CheckLine {
            name: lang.t("check.replaces"),
            ok: None,
            detail: lang.f("detail.replaces", &[("message", &old)]),
        });
    }
    lines
}

async fn load(
    c: &Console,
    lang: Lang,
    id: &str,
) -> Result<(InboxRecord, Vec<InboxRecord>, Vec<u8>), Response> {
    let not_found = || (StatusCode::NOT_FOUND, lang.t("error.no_such_document")).into_response();
    let id: MessageId = id.parse().map_err(|_| not_found())?;
    let store = c.api.store.clone();
    let result = blocking(move || {
        let record = store.inbox_find(id)?.into_iter().next();
        let (payload, replacements) = match &record {
            Some(r) => (
                store.payload(r.sender, r.message_id)?.unwrap_or_default(),
                // Documents that replace this one (read a page at a time, not all at once).
                store
                    .inbox_matching(None, 1, |o| {
                        o.sender == r.sender && o.supersedes == Some(r.message_id)
                    })?
                    .0
                    .into_iter()
                    .map(|(_, o)| o)
                    .collect(),
            ),
            None => (Vec::new(), Vec::new()),
        };
        Ok((record, replacements, payload))
    })
    .await
    .map_err(|e| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            lang.f("error.store", &[("error", &e)]),
        )
            .into_response()
    })?;
    match result {
        (Some(r), all, payload) => Ok((r, all, payload)),
        _ => Err(not_found()),
    }
}

/// What the document says, when it verified and is a trade document the spoke reads.
fn fields_table(lang: Lang, r: &InboxRecord, payload: &[u8]) -> Markup {
    let verified = matches!(r.verification, Verification::Verified { .. });
    if !verified || r.content_type.as_deref() != Some("application/xml") {
        return html! {
            p.warn { (lang.t("document.not_shown")) }
        };
    }
    let recognised = document::recognise(payload).ok();
    let fields = recognised
        .as_ref()
        .and_then(|d| document::fields(payload, d.format).ok())
        .unwrap_or_default();
    field_rows(lang, recognised.map(|d| d.format), &fields)
}

/// The catalogue key of a field's label: "Export country" → "field.export_country".
fn field_key(label: &str) -> String {
    let slug: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let words: Vec<&str> = slug.split('_').filter(|w| !w.is_empty()).collect();
    format!("field.{}", words.join("_"))
}

/// The code list a field's value comes from, by its label and the document's format: an
/// e-Phyto's certificate type and status are UN/CEFACT codes, an e-CO's are words.
fn field_list(format: Option<document::Format>, label: &str) -> Option<List> {
    let sps = format == Some(document::Format::SpsCertificate);
    match label {
        "Certificate type" if sps => Some(List::DocumentName),
        "Status" if sps => Some(List::DocumentStatus),
        "Type" => Some(List::DocumentName),
        "Transport mode" => Some(List::TransportMode),
        "Export country" | "Import country" | "Transit country" | "Origin" | "Issuing country"
        | "Seller country" | "Buyer country" => Some(List::Country),
        _ => None,
    }
}

/// The document's fields, as the sender wrote them (labels in the officer's language, codes
/// decoded, values and their languages the sender's).
fn field_rows(lang: Lang, format: Option<document::Format>, fields: &[document::Field]) -> Markup {
    html! {
        table {
            @for f in fields {
                tr {
                    th { (lang.lookup(&field_key(&f.label)).unwrap_or(&f.label)) }
                    td {
                        @match field_list(format, &f.label) {
                            Some(list) => (code_value(lang, list, &f.value)),
                            None => (f.value),
                        }
                        @if let Some(language) = &f.language {
                            " " small { "[" (language) "]" }
                        }
                    }
                }
            }
        }
    }
}

/// The verification panel's rows: each check, passed, failed or information, and why.
fn check_rows(lang: Lang, lines: &[CheckLine]) -> Markup {
    html! {
        @for l in lines {
            tr {
                td {
                    @match l.ok {
                        Some(true) => span.ok { (lang.t("verdict.pass")) },
                        Some(false) => span.fail { (lang.t("verdict.fail")) },
                        None => span.warn { (lang.t("verdict.info")) },
                    }
                }
                th { (l.name) }
                td { (l.detail) }
            }
        }
    }
}

/// The hashes and key ids an officer rarely needs, folded away.
fn details_block(lang: Lang, r: &InboxRecord) -> Markup {
    html! {
        details.panel {
            summary { (lang.t("document.details")) }
            table {
                tr { th { (lang.t("document.message_id")) } td { code { (r.message_id) } } }
                tr { th { (lang.t("document.payload_sha256")) } td { code { (r.payload_sha256) } } }
                @if let Some(key) = &r.key_id {
                    tr { th { (lang.t("document.key_id")) } td { code { (key) } } }
                }
            }
        }
    }
}

/// The document page's body: what it is, the verdict, each check, its fields, and the XML.
fn document_body(
    lang: Lang,
    clock: &Clock,
    r: &InboxRecord,
    lines: &[CheckLine],
    payload: &[u8],
) -> Markup {
    let genuine = lines.iter().all(|l| l.ok != Some(false));
    let xml = String::from_utf8_lossy(payload);
    let shown: String = xml.chars().take(200_000).collect();
    html! {
        h1 { (r.document_id.as_deref().unwrap_or(lang.t("inbox.unreadable"))) }
        p {
            (lang.f("document.from", &[
                ("type", &type_name(lang, r.document_type)),
                ("sender", &r.sender.as_str()),
                ("received", &clock.format(r.received_at)),
            ]))
            " · "
            a href={ "/console/documents/" (r.message_id) "/print" } { (lang.t("document.printable")) }
        }
        @if genuine {
            p.ok { (lang.t("verdict.genuine")) }
        } @else {
            p.fail { (lang.t("verdict.failed")) }
        }
        div.panel {
            h2 { (lang.t("document.verification")) }
            table { (check_rows(lang, lines)) }
        }
        div.panel {
            h2 { (lang.t("document.says")) }
            (fields_table(lang, r, payload))
        }
        (details_block(lang, r))
        div.panel {
            h2 { (lang.t("document.as_received")) }
            pre { (shown) }
        }
        p { small { (lang.f("page.times", &[("zone", &clock.name())])) } }
    }
}

async fn document_page(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let Some((user, csrf, lang)) = c.session(&headers) else {
        return Redirect::to("/console/login").into_response();
    };
    let (r, all, payload) = match load(&c, lang, &id).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    let lines = checks(&c, lang, &r, &all);
    page(
        lang,
        r.document_id
            .as_deref()
            .unwrap_or(lang.t("inbox.unreadable")),
        Some((&user, &csrf)),
        document_body(lang, &c.clock, &r, &lines, &payload),
    )
    .into_response()
}

async fn print_page(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let Some((user, csrf, lang)) = c.session(&headers) else {
        return Redirect::to("/console/login").into_response();
    };
    let (r, all, payload) = match load(&c, lang, &id).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    // The QR code leads back to this document's verification page on this console.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let url = format!("http://{host}/console/documents/{}", r.message_id);
    let qr = qrcode::QrCode::new(url.as_bytes())
        .map(|code| {
            code.render::<qrcode::render::svg::Color>()
                .min_dimensions(160, 160)
                .build()
        })
        .unwrap_or_default();
    let lines = checks(&c, lang, &r, &all);
    let body = html! {
        h1 { (r.document_id.as_deref().unwrap_or(lang.t("inbox.unreadable"))) }
        p {
            (type_name(lang, r.document_type)) " · " (r.sender.as_str())
            " · " (lang.f("document.print_received", &[("received", &c.clock.format(r.received_at))]))
        }
        div style="float:right" {
            // The SVG is the qrcode crate's own drawing: the URL is in it as modules, not text.
            (PreEscaped(qr))
            br;
            small { (url) }
        }
        table { (check_rows(lang, &lines)) }
        h2 { (lang.t("document.says")) }
        (fields_table(lang, &r, &payload))
        p { small { (lang.f("page.times", &[("zone", &c.clock.name())])) } }
    };
    page(
        lang,
        lang.t("document.printable"),
        Some((&user, &csrf)),
        body,
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let hash = hash_password("correct horse");
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"wrong", &parsed)
                .is_err()
        );
        assert!(
            PasswordHash::new(DUMMY_HASH).is_ok(),
            "the dummy hash parses, so unknown users cost the same"
        );
    }

    const HOSTILE: &str = "\"><script>alert('x')</script>";
    const ESCAPED: &str = "&quot;&gt;&lt;script&gt;alert('x')&lt;/script&gt;";

    #[test]
    fn hostile_text_is_escaped_on_every_page() {
        // A query typed into the filters, echoed back into the form's attributes.
        let filters = Filters {
            q: HOSTILE.into(),
            country: HOSTILE.into(),
            from: HOSTILE.into(),
            ..Filters::default()
        };
        let en = Lang::default();
        let inbox = page(
            en,
            HOSTILE,
            Some((HOSTILE, "token")),
            inbox_body(en, &Clock::default(), &filters, 7, &Vec::new(), Some(42)),
        )
        .0;
        // A document's fields and a check's detail (a rejection reason comes from the sender).
        let fields = field_rows(
            en,
            None,
            &[document::Field {
                label: "Exporter".into(),
                value: HOSTILE.into(),
                language: Some(HOSTILE.into()),
            }],
        );
        let checks = check_rows(
            en,
            &[CheckLine {
                name: "Signature",
                ok: Some(false),
                detail: HOSTILE.into(),
            }],
        );
        let document = page(en, "KZ-1", None, html! { (fields) table { (checks) } }).0;
        for rendered in [&inbox, &document] {
            assert!(!rendered.contains("<script>"), "{rendered}");
            assert!(rendered.contains(ESCAPED), "{rendered}");
        }
        assert!(
            inbox.contains(&format!(
                "name=\"q\" placeholder=\"Number, party or country\" value=\"{ESCAPED}\""
            )),
            "{inbox}"
        );
        assert!(inbox.contains(&format!("<title>{ESCAPED} · Caravan</title>")));
        assert!(inbox.contains(&format!("<span>{ESCAPED}</span>")));
        // The link to older documents keeps the filters, URL-encoded, and the cursor.
        assert!(
            inbox.contains("href=\"/console?q=%22%3E%3Cscript%3E"),
            "{inbox}"
        );
        assert!(inbox.contains("before=42"), "{inbox}");
        assert!(inbox.contains("Documents in the inbox: 7."));
        assert!(inbox.contains("No document matches."));
        assert!(document.contains(&format!("<td>{ESCAPED} <small>[{ESCAPED}]</small></td>")));
        assert!(document.contains("<td><span class=\"fail\">✘ FAIL</span></td><th>Signature</th>"));
    }

    #[test]
    fn field_codes_are_decoded_in_the_officers_language_and_unknown_ones_marked() {
        let field = |label: &str, value: &str| document::Field {
            label: label.into(),
            value: value.into(),
            language: None,
        };
        let fields = [
            field("Certificate type", "851"),
            field("Status", "70"),
            field("Export country", "KZ"),
            field("Transport mode", "2"),
            field("Import country", HOSTILE),
            field("Consignor", "ТОО «Дала Ун»"),
        ];
        let sps = Some(document::Format::SpsCertificate);
        let ru = field_rows(Lang::from_tag("ru").unwrap(), sps, &fields).into_string();
        for expected in [
            "<th>Вид сертификата</th><td>Фитосанитарный сертификат <small>(851)</small></td>",
            "<th>Статус</th><td>70 <small class=\"warn\">(нет в справочнике)</small></td>",
            "<th>Страна экспорта</th><td>Казахстан <small>(KZ)</small></td>",
            "<th>Вид транспорта</th><td>Железнодорожный транспорт <small>(2)</small></td>",
            "<th>Грузоотправитель</th><td>ТОО «Дала Ун»</td>",
        ] {
            assert!(ru.contains(expected), "{expected} not in {ru}");
        }
        // A value that is not a code stays escaped, and is marked as not in the list.
        assert!(
            ru.contains(&format!("<td>{ESCAPED} <small class=\"warn\">")),
            "{ru}"
        );
        let zh = field_rows(Lang::from_tag("zh").unwrap(), sps, &fields).into_string();
        assert!(
            zh.contains("<th>证书类型</th><td>植物检疫证书 <small>(851)</small></td>"),
            "{zh}"
        );
        // An e-CO's certificate type and status are words, not codes: shown as written.
        let co = field_rows(
            Lang::default(),
            Some(document::Format::UblCertificateOfOrigin),
            &[
                field("Certificate type", "Non-preferential"),
                field("Status", "ORIGINAL"),
            ],
        )
        .into_string();
        assert!(
            co.contains("<td>Non-preferential</td>") && co.contains("<td>ORIGINAL</td>"),
            "{co}"
        );
        // A label the catalogue does not know is shown as the spoke read it.
        assert_eq!(field_key("Container / seal"), "field.container_seal");
        let odd = field_rows(Lang::default(), None, &[field("Odd label", "x")]).into_string();
        assert!(odd.contains("<th>Odd label</th>"), "{odd}");
    }

    #[test]
    fn filters_keep_what_the_officer_chose() {
        let filters = Filters {
            document_type: "e-phyto".into(),
            status: "rejected".into(),
            ..Filters::default()
        };
        let form = inbox_body(
            Lang::default(),
            &Clock::default(),
            &filters,
            0,
            &Vec::new(),
            None,
        )
        .into_string();
        assert!(form.contains("<option value=\"e-phyto\" selected>Phytosanitary</option>"));
        assert!(form.contains("<option value=\"rejected\" selected>Not genuine</option>"));
        assert!(form.contains("<option value=\"\">Any type</option>"));
        assert!(!form.contains("Older documents"));
    }

    #[test]
    fn session_cookies_keep_their_attributes() {
        let set = console_cookie(SESSION_COOKIE, "abc".into(), SESSION_LIFE).to_string();
        assert!(set.starts_with("caravan_session=abc;"), "{set}");
        for attribute in [
            "; HttpOnly",
            "; SameSite=Strict",
            "; Secure",
            "; Path=/console",
            "; Max-Age=28800",
        ] {
            assert!(set.contains(attribute), "{attribute} missing: {set}");
        }
        // Logging out empties the cookie and tells the browser to drop it at once.
        let dropped = console_cookie(SESSION_COOKIE, String::new(), Duration::ZERO).to_string();
        assert!(dropped.starts_with("caravan_session=;"), "{dropped}");
        assert!(dropped.contains("; Max-Age=0"), "{dropped}");
        let response = with_cookie(
            console_cookie(LOGIN_COOKIE, "t".into(), Duration::from_secs(900)),
            Redirect::to("/console"),
        );
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(response.headers()[header::LOCATION], "/console");
        assert!(
            response.headers()[header::SET_COOKIE]
                .to_str()
                .unwrap()
                .starts_with("caravan_login=t;")
        );
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            "theme=dark; caravan_login=x".parse().unwrap(),
        );
        headers.append(
            header::COOKIE,
            " other=1 ;caravan_session=0123abcd; caravan_session_old=no"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            cookie_value(&headers, SESSION_COOKIE).as_deref(),
            Some("0123abcd")
        );
        assert_eq!(cookie_value(&headers, LOGIN_COOKIE).as_deref(), Some("x"));
        assert_eq!(cookie_value(&headers, "missing"), None);
        // Malformed pairs are skipped, not fatal.
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            "=nameless; ;garbage; caravan_session=s".parse().unwrap(),
        );
        assert_eq!(cookie_value(&headers, SESSION_COOKIE).as_deref(), Some("s"));
        assert_eq!(cookie_value(&HeaderMap::new(), SESSION_COOKIE), None);
    }
}
