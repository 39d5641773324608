//! The officers' web console: a received certificate, what it says, and whether it is genuine,
//! current and unaltered, in plain words.
//!
//! Served by the spoke under `/console`, as plain server-rendered HTML with one stylesheet it
//! serves itself (no script, nothing loaded from the internet), usable on a laptop or a tablet
//! at a border post. Every answer carries a Content-Security-Policy that allows no script and
//! no framing, `X-Frame-Options`, `nosniff`, `Referrer-Policy: no-referrer` and
//! `Cache-Control: no-store` (Back after logout shows nothing). Officers log in with accounts
//! from the config (passwords hashed with argon2); a session is a random cookie (`HttpOnly`,
//! `SameSite=Strict`, `Secure`); every form that changes something carries a per-session CSRF
//! token; failures lock the account for the client address that failed and throttle that
//! address ([`super::login_guard`]); after login the officer lands on the page asked for (a
//! local `/console` path only). The printed QR code leads to the configured `public_url`,
//! never to an address taken from the request.
//! Each verification check says why it passed or failed; a failure is never a generic error.
//!
//! The pages are `maud` templates: every value that comes from a document, the store or the
//! request (numbers, party names, fields, the XML, the filters typed in) is escaped when the
//! page is built, and only the QR code's SVG is spliced in as it is.
//! Cookies are read from `Cookie` and written into `Set-Cookie` with the `cookie` crate.
//!
//! Every word the console shows an officer comes from the catalogues of [`crate::i18n`], in the
//! language of the officer's account, or the one chosen on the login page (from the browser's
//! `Accept-Language` until the officer picks another); times are shown in the configured time
//! zone, and code-list values (document kinds, statuses, transport modes, countries, units) by
//! their names, a code not in its list shown as written and marked as such.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant, SystemTime},
};

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use axum::{
    Form, Router,
    extract::{ConnectInfo, DefaultBodyLimit, Path as UrlPath, Query, State},
    http::{Extensions, HeaderMap, HeaderValue, StatusCode, Uri, header},
    middleware::map_response,
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
    checks::{self, CheckName, Outcome},
    config::{ConsoleConfig, Officer},
    document,
    i18n::{
        Lang,
        clock::Clock,
        codes::{self, Decoded, List},
        negotiate,
    },
    rt::blocking,
    store::{InboxPage, InboxRecord, PageAt, Verification},
};

use super::{
    Api,
    login_guard::{ACCOUNT_FAILURES, LoginGuard, MAX_USER_BYTES, Refusal},
    views::VerdictView,
};

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

/// The console's state. The maps are `std` mutexes: held for a lookup, never across an await
/// (nor across a password's verification).
pub struct Console {
    api: Api,
    officers: Vec<Officer>,
    /// The time zone times are shown in.
    clock: Clock,
    /// Where officers reach the console (`console.public_url`), for the printed QR code.
    public_url: Option<String>,
    /// Why officers' browsers cannot keep the session cookie, if they cannot.
    cookie_problem: Option<String>,
    sessions: Mutex<HashMap<String, Session>>,
    guard: Mutex<LoginGuard>,
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
.qr{float:right;max-width:14rem;margin-left:1rem}.pages a{margin-right:1rem}\
.flag{display:inline-block;border:1px solid;border-radius:.3rem;padding:0 .3rem;margin:0 0 0 .3rem;font-size:.85rem}\
@media print{header,form,.noprint{display:none}body{background:#fff}}";

/// The stylesheet, served as a file so that the Content-Security-Policy needs no inline style.
async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        STYLE,
    )
        .into_response()
}

/// The Content-Security-Policy of every console answer: nothing but this console's own
/// stylesheet and forms; no script at all; never inside a frame.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The security headers, on every console answer (pages, redirects, refusals, the
/// stylesheet). `Cache-Control: no-store` unless the answer set its own (the stylesheet):
/// a document page is never kept by the browser, so Back after logout shows nothing.
async fn harden(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

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
                link rel="stylesheet" href="/console/style.css";
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

/// The largest request body the console takes (its forms are a few fields).
const MAX_FORM_BYTES: usize = 16 * 1024;

/// Why officers' browsers would refuse the session cookie: it is `Secure`, which a browser
/// keeps over plain HTTP only from a loopback address. The console serves plain HTTP, so on
/// any other address it must sit behind a TLS proxy, named by an `https://` `public_url`.
pub fn cookie_problem(listen: SocketAddr, public_url: Option<&str>) -> Option<String> {
    let https = public_url.is_some_and(|u| u.starts_with("https://"));
    if listen.ip().is_loopback() || https {
        return None;
    }
    Some(format!(
        "console.listen {listen} is not a loopback address and console.public_url is not an https:// address: \
         officers' browsers would reach the console over plain HTTP, where they refuse its session cookie \
         (it is Secure), so no officer could log in. Put a TLS proxy in front of the console and set \
         console.public_url to its https:// address, or listen on 127.0.0.1 (runbook: Officer console)"
    ))
}

impl Console {
    /// The console of `config`, on `api`.
    pub fn new(api: Api, config: &ConsoleConfig) -> Arc<Self> {
        Arc::new(Console {
            api,
            officers: config.officers.clone(),
            clock: config.clock.clone(),
            public_url: config.public_url.clone(),
            cookie_problem: cookie_problem(config.listen, config.public_url.as_deref()),
            sessions: Mutex::default(),
            guard: Mutex::default(),
        })
    }

    /// Why officers cannot log in as the console is served, if they cannot (logged at
    /// start, and shown on the login page).
    pub fn cookie_problem(&self) -> Option<&str> {
        self.cookie_problem.as_deref()
    }

    /// The console's routes, each answer with the security headers.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/console", get(inbox))
            .route("/console/style.css", get(stylesheet))
            .route("/console/login", get(login_form).post(login))
            .route("/console/logout", post(logout))
            .route("/console/documents/{id}", get(document_page))
            .route("/console/documents/{id}/print", get(print_page))
            .route(
                "/console/documents/{id}/attachments/{index}",
                get(attachment),
            )
            .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
            .layer(map_response(harden))
            .with_state(self.clone())
    }

    /// The login guard (a poisoned lock still holds consistent maps: each change is whole).
    fn guard(&self) -> MutexGuard<'_, LoginGuard> {
        self.guard.lock().unwrap_or_else(|e| e.into_inner())
    }

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

    /// Check a login from `client`, counting failures; returns the officer's account, or the
    /// message for the page (in `lang`).
    fn check_login(
        &self,
        lang: Lang,
        user: &str,
        password: &str,
        client: IpAddr,
    ) -> Result<&Officer, String> {
        if let Err(refusal) = self.guard().check(user, client, Instant::now()) {
            return Err(refused_message(lang, &self.clock, refusal));
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
            self.guard().succeeded(user, client);
            return Ok(officer);
        }
        if let Some(refusal) = self.guard().failed(user, client, Instant::now()) {
            warn!(user = ?shown_user(user), %client, ?refusal, "officer logins refused for a while after repeated failures");
            return Err(refused_message(lang, &self.clock, refusal));
        }
        Err(lang.t("login.wrong").into())
    }
}

/// A user name as the log shows it: at most [`MAX_USER_BYTES`] (cut on a character
/// boundary); the log line escapes it (`?`), so control characters cannot forge lines.
fn shown_user(user: &str) -> &str {
    let mut end = user.len().min(MAX_USER_BYTES);
    while !user.is_char_boundary(end) {
        end -= 1;
    }
    &user[..end]
}

/// A wall-clock time as the console shows it: to the minute, in the console's time zone,
/// named ("2026-12-06 04:12 UTC").
fn clock_minute(clock: &Clock, t: SystemTime) -> String {
    clock.minute_named(Timestamp::from(t))
}

/// The login page's words for a refusal, with until when, in `lang` on `clock`.
fn refused_message(lang: Lang, clock: &Clock, refusal: Refusal) -> String {
    let wait = refusal.until().saturating_duration_since(Instant::now());
    // Rounded up to the minute shown, so "until 04:12" is never early.
    let until = clock_minute(clock, SystemTime::now() + wait + Duration::from_secs(59));
    match refusal {
        Refusal::AccountLocked { .. } => lang.f(
            "login.account_locked",
            &[("failures", &ACCOUNT_FAILURES), ("until", &until)],
        ),
        Refusal::AddressThrottled { .. } => lang.f("login.address_throttled", &[("until", &until)]),
    }
}

/// `next` if it is a page of this console to return to after login: a local `/console`
/// path (never `//host`, an absolute URL, a backslash or dot segments), not the login or
/// logout itself.
fn local_next(next: &str) -> Option<&str> {
    let path = next.split(['?', '#']).next().unwrap_or_default();
    let console = path == "/console" || path.starts_with("/console/");
    let plain = next.len() <= 2048
        && next.bytes().all(|b| b.is_ascii_graphic())
        && !next.contains("//")
        && !next.contains('\\')
        && !path
            .split('/')
            .any(|segment| segment == ".." || segment == ".")
        && !path.starts_with("/console/log");
    (console && plain).then_some(next)
}

/// The answer to a request without a session: the login form, which brings the officer
/// back to `uri` afterwards.
fn to_login(uri: &Uri) -> Response {
    let wanted = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/console");
    match local_next(wanted) {
        Some(next) if next != "/console" => {
            let query = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
            Redirect::to(&format!("/console/login?{query}")).into_response()
        }
        _ => Redirect::to("/console/login").into_response(),
    }
}

/// The client's address, as the server put it into the request (unspecified if absent).
fn client_ip(extensions: &Extensions) -> IpAddr {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// A valid argon2 hash of a random string, used when the user name is unknown.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$B4DDLhfCdLX/5QVxY9qqq5yG7tSAo2GqOqqMq+ISOUk";

#[derive(Deserialize, Default)]
struct NextQuery {
    #[serde(default)]
    next: String,
    /// The language asked for on the login page (`?lang=ru`).
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

/// The login page's address in `lang`, returning to `next` afterwards.
fn login_address(lang: Lang, next: &str) -> String {
    let mut query = vec![("lang", lang.tag())];
    if !next.is_empty() && next != "/console" {
        query.push(("next", next));
    }
    format!(
        "/console/login?{}",
        serde_urlencoded::to_string(query).unwrap_or_default()
    )
}

async fn login_form(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    let lang = visitor_language(&headers, &q.lang);
    let token = random_token();
    let next = local_next(&q.next).unwrap_or_default();
    let body = html! {
        @if let Some(problem) = c.cookie_problem() {
            p.fail { (lang.t("login.cookie_problem")) br; small { (problem) } }
        }
        div.panel {
            h1 { (lang.t("login.title")) }
            form method="post" action="/console/login" {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="next" value=(next);
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
                        a href=(login_address(other, next)) hreflang=(other.tag()) lang=(other.tag()) {
                            (other.name())
                        }
                    }
                }
            }
        }
    };
    with_cookie(
        console_cookie(LOGIN_COOKIE, token, Duration::from_secs(900)),
        page(lang, lang.t("login.title"), None, body),
    )
}

#[derive(Deserialize)]
struct LoginForm {
    user: String,
    password: String,
    csrf: String,
    /// The page to return to (kept only if [`local_next`] accepts it).
    #[serde(default)]
    next: String,
    /// The language the form was shown in.
    #[serde(default)]
    lang: String,
}

async fn login(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    extensions: Extensions,
    Form(form): Form<LoginForm>,
) -> Response {
    let lang = visitor_language(&headers, &form.lang);
    // Double-submit: the form's token must be the one this browser was given with the form.
    let expected = cookie_value(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !bool::from(expected.as_bytes().ct_eq(form.csrf.as_bytes())) {
        let again = login_address(lang, "");
        let body = html! {
            p.fail { (lang.t("login.expired")) " " a href=(again) { (lang.t("login.try_again")) } }
        };
        return (
            StatusCode::FORBIDDEN,
            page(lang, lang.t("login.title"), None, body),
        )
            .into_response();
    }
    let client = client_ip(&extensions);
    let next = local_next(&form.next).unwrap_or("/console");
    let again = login_address(lang, next);
    let refused = |status: StatusCode, message: &str| {
        let body = html! {
            p.fail { (message) }
            p { a href=(again) { (lang.t("login.try_again")) } }
        };
        (status, page(lang, lang.t("login.title"), None, body)).into_response()
    };
    if form.user.len() > MAX_USER_BYTES {
        // Refused before any lookup; counted against the address (under the cut name, so
        // the guard's keys stay small).
        warn!(user = ?shown_user(&form.user), bytes = form.user.len(), %client, "officer login refused: user name too long");
        c.guard()
            .failed(shown_user(&form.user), client, Instant::now());
        return refused(
            StatusCode::BAD_REQUEST,
            &lang.f("login.user_too_long", &[("max", &MAX_USER_BYTES)]),
        );
    }
    // argon2 costs milliseconds of CPU: off the async threads, so that a burst of logins does
    // not stall the console's other pages (nor the spoke's other listeners).
    let checked = {
        let (console, user, password) = (c.clone(), form.user.clone(), form.password.clone());
        tokio::task::spawn_blocking(move || {
            console
                .check_login(lang, &user, &password, client)
                .map(|officer| officer.language)
        })
        .await
        .unwrap_or_else(|_| Err(lang.t("login.unchecked").to_owned()))
    };
    let language = match checked {
        Ok(language) => language,
        Err(message) => {
            warn!(user = ?form.user, %client, "failed officer login");
            return refused(StatusCode::UNAUTHORIZED, &message);
        }
    };
    let id = random_token();
    let session = Session {
        user: form.user.clone(),
        csrf: random_token(),
        // The account's language if it has one, else the one the login page was shown in.
        lang: language.unwrap_or(lang),
        expires: Instant::now() + SESSION_LIFE,
    };
    c.sessions().insert(id.clone(), session);
    info!(user = ?form.user, %client, "officer logged in");
    with_cookie(
        console_cookie(SESSION_COOKIE, id, SESSION_LIFE),
        Redirect::to(next),
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
        Redirect::to("/console/login"),
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    before: Option<u64>,
    /// The page: the documents just after this cursor (the previous page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<u64>,
}

/// Documents the inbox page lists at a time.
const INBOX_PAGE: usize = 100;

impl Filters {
    fn keep(&self, r: &InboxRecord) -> bool {
        let received = r.received_at.to_string();
        let date = received.get(..10).unwrap_or(&received);
        r.matches_text(&self.q)
            && (self.document_type.trim().is_empty()
                || r.document_type
                    .is_some_and(|t| t.as_str().eq_ignore_ascii_case(self.document_type.trim())))
            && (self.country.trim().is_empty()
                || r.sender.as_str().eq_ignore_ascii_case(self.country.trim()))
            && self.result_matches(r)
            && (self.from.is_empty() || date >= self.from.as_str())
            && (self.to.is_empty() || date <= self.to.as_str())
    }

    /// The result filter, in any case: the signature's verdict (`verified`, `rejected`), or
    /// what the content checks found (`consistent`, `warnings`, `inconsistent`; a document
    /// whose content was not checked matches none of these).
    fn result_matches(&self, r: &InboxRecord) -> bool {
        let content = |status: &str| VerdictView::of(r).is_some_and(|v| v.status == status);
        match self.status.trim().to_ascii_lowercase().as_str() {
            "verified" => matches!(r.verification, Verification::Verified { .. }),
            "rejected" => matches!(r.verification, Verification::Rejected { .. }),
            "consistent" => content("GENUINE_AND_CONSISTENT"),
            "warnings" => content("GENUINE_WITH_WARNINGS"),
            "inconsistent" => content("GENUINE_BUT_INCONSISTENT"),
            _ => true,
        }
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

/// The inbox list's flags for what the content checks found: DUPLICATE (the number came
/// before), REPLACED (with a link to the replacement), and FAIL or WARN for any other failing
/// or warning check; each flag's title says why, in words.
fn content_flags(lang: Lang, r: &InboxRecord) -> Markup {
    let says = |c: &checks::Check| lang.message(&c.message_key, &c.params);
    let duplicate = r
        .checks
        .iter()
        .find(|c| c.check == CheckName::Duplicate && c.rule == "DUPLICATE_NUMBER");
    let replaced = r.replaced_by();
    let other = |outcome: Outcome| {
        r.checks
            .iter()
            .find(|c| c.outcome == outcome && c.rule != "DUPLICATE_NUMBER" && c.rule != "REPLACED")
    };
    html! {
        @if let Some(c) = other(Outcome::Fail) {
            span.flag.fail title=(says(c)) { (lang.t("inbox.flag_fail")) }
        }
        @if let Some(c) = other(Outcome::Warn) {
            span.flag.warn title=(says(c)) { (lang.t("inbox.flag_warn")) }
        }
        @if let Some(c) = duplicate {
            span.flag.fail title=(says(c)) { (lang.t("inbox.flag_duplicate")) }
        }
        @if let Some(by) = replaced {
            a.flag.warn href={ "/console/documents/" (by) }
                title=(lang.f("inbox.replaced_by", &[("message", &by)])) {
                (lang.t("inbox.flag_replaced"))
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
/// inbox holds and how many match, one page (newest first) and the links to the newer and
/// older pages, when there are any (each keeps the filters).
fn inbox_body(lang: Lang, clock: &Clock, f: &Filters, total: u64, listed: &InboxPage) -> Markup {
    let link = |before: Option<u64>, after: Option<u64>| {
        serde_urlencoded::to_string(Filters {
            before,
            after,
            ..f.clone()
        })
        .unwrap_or_default()
    };
    let older = listed.older_from.map(|c| link(Some(c), None));
    let newer = listed.newer_from.map(|c| link(None, Some(c)));
    let records = &listed.records;
    let first = listed.newer + 1;
    let last = listed.newer + records.len() as u64;
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
                ("consistent", lang.t("inbox.consistent")),
                ("warnings", lang.t("inbox.warnings")),
                ("inconsistent", lang.t("inbox.inconsistent")),
            ]))
            label { (lang.t("inbox.from")) " " input type="date" name="from" value=(f.from); }
            label { (lang.t("inbox.to")) " " input type="date" name="to" value=(f.to); }
            button { (lang.t("inbox.filter")) }
        }
        p {
            (lang.f("inbox.count", &[("count", &total)]))
            @if f.before.is_some() { (lang.t("inbox.older_ones")) }
            "."
            @if !records.is_empty() {
                (lang.f("inbox.showing", &[
                    ("first", &first),
                    ("last", &last),
                    ("matching", &listed.matching),
                    ("page", &INBOX_PAGE),
                ]))
            }
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
                        td { (verdict_cell(lang, &r.verification)) (content_flags(lang, r)) }
                    }
                }
                @if records.is_empty() {
                    tr { td colspan="5" { (lang.t("inbox.none")) } }
                }
            }
        }
        p.pages {
            @if let Some(query) = newer {
                a href={ "/console?" (query) } { (lang.t("inbox.newer")) }
                " "
            }
            @if let Some(query) = older {
                a href={ "/console?" (query) } { (lang.t("inbox.older")) }
            }
        }
    }
}

async fn inbox(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    uri: Uri,
    Query(f): Query<Filters>,
) -> Response {
    let Some((user, csrf, lang)) = c.session(&headers) else {
        return to_login(&uri);
    };
    let store = c.api.store.clone();
    let filters = f.clone();
    let at = match (f.after, f.before) {
        (Some(after), _) => PageAt::After(after),
        (None, Some(before)) => PageAt::Before(before),
        (None, None) => PageAt::Newest,
    };
    let listed = blocking(move || {
        let total = store.inbox_len()?;
        let listed = store.inbox_page(at, INBOX_PAGE, |r| filters.keep(r))?;
        Ok((total, listed))
    })
    .await;
    let (total, listed) = match listed {
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
        inbox_body(lang, &c.clock, &f, total, &listed),
    )
    .into_response()
}

/// How a line of the verification panel came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Pass,
    Warn,
    Fail,
    /// Information, neither passed nor failed.
    Info,
}

impl Mark {
    fn of(passed: bool) -> Self {
        if passed { Self::Pass } else { Self::Fail }
    }
}

impl From<Outcome> for Mark {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Pass => Self::Pass,
            Outcome::Warn => Self::Warn,
            Outcome::Fail => Self::Fail,
        }
    }
}

/// One line of the verification panel: how it came out and why, and the document it names
/// (a replacement, an earlier copy), linked.
struct CheckLine {
    name: &'static str,
    mark: Mark,
    detail: String,
    link: Option<MessageId>,
    /// A content check's line (what the document says), not the signature's or the hub's.
    content: bool,
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
/// `clock`; `replacement` the document that replaced this one, if one arrived.
fn checks(
    c: &Console,
    lang: Lang,
    r: &InboxRecord,
    replacement: Option<&InboxRecord>,
) -> Vec<CheckLine> {
    let clock = &c.clock;
    let mut lines = Vec::new();
    let held = c.api.hub.trust().current();
    match &r.verification {
        Verification::Verified { notes } => {
            lines.push(CheckLine {
                name: lang.t("check.signature"),
                mark: Mark::Pass,
                link: None,
                content: false,
                detail: lang.f("detail.signature_ok", &[("sha256", &r.payload_sha256)]),
            });
            for n in notes {
                lines.push(CheckLine {
                    name: lang.t("check.note"),
                    mark: Mark::Info,
                    link: None,
                    content: false,
                    detail: lang.f("detail.note", &[("code", &n.code), ("message", &n.message)]),
                });
            }
        }
        Verification::Rejected { code, reason } => lines.push(CheckLine {
            name: lang.t("check.signature"),
            mark: Mark::Fail,
            link: None,
            content: false,
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
                    mark: Mark::of(
                        status == KeyStatus::Active
                            || entry.revoked.as_ref().is_some_and(|rv| rv.at > at),
                    ),
                    link: None,
                    content: false,
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
                        mark: Mark::of(allowed),
                        link: None,
                        content: false,
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
                mark: Mark::Fail,
                link: None,
                content: false,
                detail: lang.f("detail.key_not_listed", &[("key", &key)]),
            }),
        },
        _ => lines.push(CheckLine {
            name: lang.t("check.signing_key"),
            mark: Mark::Fail,
            link: None,
            content: false,
            detail: lang.t("detail.key_unknown").into(),
        }),
    }
    lines.push(match (r.hub_sequence, r.accepted_at) {
        (Some(seq), Some(at)) => CheckLine {
            name: lang.t("check.hub_receipt"),
            mark: Mark::Pass,
            link: None,
            content: false,
            detail: lang.f(
                "detail.receipt_ok",
                &[("accepted", &clock.format(at)), ("sequence", &seq)],
            ),
        },
        _ => CheckLine {
            name: lang.t("check.hub_receipt"),
            mark: Mark::Fail,
            link: None,
            content: false,
            detail: lang.t("detail.receipt_missing").into(),
        },
    });
    lines.push(match &r.evidence.ack {
        Some(_) => CheckLine {
            name: lang.t("check.acknowledgement"),
            mark: Mark::Pass,
            link: None,
            content: false,
            detail: lang.t("detail.ack_sent").into(),
        },
        None => CheckLine {
            name: lang.t("check.acknowledgement"),
            mark: Mark::Info,
            link: None,
            content: false,
            detail: lang.t("detail.ack_pending").into(),
        },
    });
    lines.push(match &held {
        Some(h) if h.set.info.is_fresh(Timestamp::now()) => CheckLine {
            name: lang.t("check.trust_list"),
            mark: Mark::Pass,
            link: None,
            content: false,
            detail: lang.f("detail.trust_fresh", &[("version", &h.set.info.version)]),
        },
        Some(h) => CheckLine {
            name: lang.t("check.trust_list"),
            mark: Mark::Fail,
            link: None,
            content: false,
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
            mark: Mark::Fail,
            link: None,
            content: false,
            detail: lang.t("detail.trust_none").into(),
        },
    });
    // What the document says (the content checks, when it verified and was understood); the
    // `replaced` check is the "current" line below, which every document has.
    for check in r.checks.iter().filter(|c| c.check != CheckName::Replaced) {
        lines.push(CheckLine {
            name: lang
                .lookup(&format!("content_check.name_{}", check.check.as_str()))
                .unwrap_or(check.check.as_str()),
            mark: check.outcome.into(),
            detail: lang.message(&check.message_key, &check.params),
            link: (check.rule == "DUPLICATE_NUMBER")
                .then(|| check.params.get("earlier")?.parse().ok())
                .flatten(),
            content: true,
        });
    }
    let replaced_by = replacement.map(|n| n.message_id).or(r.replaced_by());
    lines.push(match (replaced_by, replacement) {
        (Some(_), Some(n)) => CheckLine {
            name: lang.t("check.current"),
            mark: Mark::Warn,
            detail: lang.f(
                "detail.replaced",
                &[
                    ("number", &n.document_id.as_deref().unwrap_or("?")),
                    ("message", &n.message_id),
                    ("received", &clock.format(n.received_at)),
                ],
            ),
            link: Some(n.message_id),
            content: false,
        },
        (Some(by), None) => CheckLine {
            name: lang.t("check.current"),
            mark: Mark::Warn,
            detail: lang.f("content_check.replaced", &[("replacement", &by)]),
            link: Some(by),
            content: false,
        },
        (None, _) => CheckLine {
            name: lang.t("check.current"),
            mark: Mark::Pass,
            detail: lang.t("detail.not_replaced").into(),
            link: None,
            content: false,
        },
    });
    if let Some(old) = r.supersedes {
        lines.push(CheckLine {
            name: lang.t("check.replaces"),
            mark: Mark::Info,
            link: None,
            content: false,
            detail: lang.f("detail.replaces", &[("message", &old)]),
        });
    }
    lines
}

/// A document of the inbox by its message id, the document that replaced it (if one
/// arrived), and its payload.
async fn load(
    c: &Console,
    lang: Lang,
    id: &str,
) -> Result<(InboxRecord, Option<InboxRecord>, Vec<u8>), Response> {
    let not_found = || (StatusCode::NOT_FOUND, lang.t("error.no_such_document")).into_response();
    let id: MessageId = id.parse().map_err(|_| not_found())?;
    let store = c.api.store.clone();
    let result = blocking(move || {
        let Some(r) = store.inbox_find(id)?.into_iter().next() else {
            return Ok(None);
        };
        let payload = store.payload(r.sender, r.message_id)?.unwrap_or_default();
        // The replacements index knows every replacement, whichever arrived first; the record
        // names the one marked on it.
        let by = match store.inbox_replacement_of(r.sender, r.message_id)? {
            Some(by) => Some(by),
            None => r.replaced_by(),
        };
        let replacement = match by {
            Some(by) => store.inbox_entry(r.sender, by)?,
            None => None,
        };
        Ok(Some((r, replacement, payload)))
    })
    .await
    .map_err(|e| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            lang.f("error.store", &[("error", &e)]),
        )
            .into_response()
    })?;
    result.ok_or_else(not_found)
}

/// What the document says, when it verified and is a document the spoke reads.
fn content_of(r: &InboxRecord, payload: &[u8]) -> Option<document::Content> {
    matches!(r.verification, Verification::Verified { .. })
        .then(|| document::content(payload).ok())
        .flatten()
}

/// The document's fields, when it verified and is a document the spoke reads.
fn fields_table(lang: Lang, content: Option<&document::Content>) -> Markup {
    match content {
        Some(c) => field_rows(lang, Some(c.format), &c.fields),
        None => html! {
            p.warn { (lang.t("document.not_shown")) }
        },
    }
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
                    @match l.mark {
                        Mark::Pass => span.ok { (lang.t("verdict.pass")) },
                        Mark::Warn => span.warn { (lang.t("verdict.warn")) },
                        Mark::Fail => span.fail { (lang.t("verdict.fail")) },
                        Mark::Info => span.warn { (lang.t("verdict.info")) },
                    }
                }
                th { (l.name) }
                td {
                    @match l.link {
                        Some(id) => a href={ "/console/documents/" (id) } { (l.detail) },
                        None => (l.detail),
                    }
                }
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

/// The line under a document's title on its page and its printout: its kind, its sender and
/// when it was received.
fn document_from(lang: Lang, clock: &Clock, r: &InboxRecord) -> String {
    lang.f(
        "document.from",
        &[
            ("type", &type_name(lang, r.document_type)),
            ("sender", &r.sender.as_str()),
            ("received", &clock.format(r.received_at)),
        ],
    )
}

/// The verdict at the top of a document's page and its printout: a failed panel check (the
/// signature, its key, the receipt, the trust list) first; else, for a document whose content
/// was checked, genuine and consistent only when every content check passed, otherwise the
/// failing (else warning) check in words; else, for a document never checked, genuine, with
/// the replacement as a warning if one arrived.
fn verdict_line(lang: Lang, r: &InboxRecord, lines: &[CheckLine], print: bool) -> Markup {
    let headline = |v: &VerdictView| {
        v.headline
            .as_ref()
            .map(|h| lang.message(&h.message_key, &h.params))
            .unwrap_or_default()
    };
    let warned = lines.iter().find(|l| l.mark == Mark::Warn);
    html! {
        @if lines.iter().any(|l| l.mark == Mark::Fail && !l.content) {
            p.fail { (lang.t(if print { "verdict.failed_print" } else { "verdict.failed" })) }
        } @else if let Some(v) = VerdictView::of(r) {
            @match v.status.as_str() {
                "GENUINE_AND_CONSISTENT" => p.ok { (lang.t("verdict.consistent")) },
                "GENUINE_WITH_WARNINGS" => p.warn {
                    (lang.f("verdict.with_warnings", &[("message", &headline(&v))]))
                },
                _ => p.fail { (lang.f("verdict.inconsistent", &[("message", &headline(&v))])) },
            }
        } @else if let Some(l) = warned {
            p.warn { (lang.f("verdict.with_warnings", &[("message", &l.detail)])) }
        } @else {
            p.ok { (lang.t("verdict.genuine")) }
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
    let content = content_of(r, payload);
    let xml = String::from_utf8_lossy(payload);
    let shown: String = xml.chars().take(200_000).collect();
    html! {
        h1 { (r.document_id.as_deref().unwrap_or(lang.t("inbox.unreadable"))) }
        p {
            (document_from(lang, clock, r))
            " · "
            a href={ "/console/documents/" (r.message_id) "/print" } { (lang.t("document.printable")) }
        }
        (verdict_line(lang, r, lines, false))
        @if let Some(c) = &content {
            (summary_block(lang, r.message_id, c))
        }
        div.panel {
            h2 { (lang.t("document.verification")) }
            table { (check_rows(lang, lines)) }
        }
        div.panel {
            h2 { (lang.t("document.says")) }
            (fields_table(lang, content.as_ref()))
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
    uri: Uri,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let Some((user, csrf, lang)) = c.session(&headers) else {
        return to_login(&uri);
    };
    let (r, replacement, payload) = match load(&c, lang, &id).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    let lines = checks(&c, lang, &r, replacement.as_ref());
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

/// A party as the summary shows it: its name, its other names, and its country decoded.
fn party_cell(lang: Lang, party: &document::Party) -> Markup {
    html! {
        @if let Some(name) = &party.name { (name) }
        @for other in &party.other_names {
            br; small { (other) }
        }
        @if let Some(country) = &party.country {
            " — " (code_value(lang, List::Country, country))
        }
    }
}

/// A value of a numeric code list (UNTDID 1001, 1373) decoded; a value in words (a UBL
/// certificate of origin's "Non-preferential", "ORIGINAL") is the document's own and shown as
/// written, not marked as an unknown code.
fn numeric_code(lang: Lang, list: List, value: &str) -> Markup {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        code_value(lang, list, value)
    } else {
        html! { (value) }
    }
}

/// A measure as the officer reads it: the number grouped, the unit's symbol or name.
fn measure(lang: Lang, m: &Option<document::Measure>) -> String {
    m.as_ref()
        .map(|m| codes::quantity(&m.value, m.unit.as_deref(), lang))
        .unwrap_or_default()
}

/// The summary block at the top of the document page: who, from where to where, what goods
/// (each line with its HS code, quantity and weights with their units), issued by whom and
/// when, how it travels, and the files it carries.
fn summary_block(lang: Lang, id: MessageId, c: &document::Content) -> Markup {
    let exporter = c
        .consignor
        .as_ref()
        .or(c.exporter.as_ref())
        .or(c.seller.as_ref());
    let consignee = c
        .consignee
        .as_ref()
        .or(c.importer.as_ref())
        .or(c.buyer.as_ref());
    let mut origins: Vec<&str> = Vec::new();
    for o in c.goods.iter().filter_map(|g| g.origin_country.as_deref()) {
        if !origins.contains(&o) {
            origins.push(o);
        }
    }
    html! {
        div.panel.summary {
            h2 { (lang.t("summary.title")) }
            table {
                @if let Some(n) = &c.document_number {
                    tr { th { (lang.t("summary.number")) } td { (n) } }
                }
                @if let Some(t) = &c.type_code {
                    tr { th { (lang.t("summary.kind")) } td { (numeric_code(lang, List::DocumentName, t)) } }
                }
                @if let Some(s) = &c.status_code {
                    tr { th { (lang.t("summary.status")) } td { (numeric_code(lang, List::DocumentStatus, s)) } }
                }
                @if let Some(d) = &c.issue_date {
                    tr { th { (lang.t("summary.issued")) } td { (d) } }
                }
                @if let Some(p) = &c.issuer {
                    tr { th { (lang.t("summary.authority")) } td { (party_cell(lang, p)) } }
                }
                @if let Some(p) = exporter {
                    tr { th { (lang.t("summary.exporter")) } td { (party_cell(lang, p)) } }
                }
                @if let Some(p) = consignee {
                    tr { th { (lang.t("summary.consignee")) } td { (party_cell(lang, p)) } }
                }
                @if !origins.is_empty() {
                    tr {
                        th { (lang.t("summary.origin")) }
                        td {
                            @for (i, o) in origins.iter().enumerate() {
                                @if i > 0 { ", " }
                                (code_value(lang, List::Country, o))
                            }
                        }
                    }
                }
                @if let Some(e) = &c.export_country {
                    tr { th { (lang.t("summary.export_country")) } td { (code_value(lang, List::Country, e)) } }
                }
                @if let Some(d) = &c.import_country {
                    tr { th { (lang.t("summary.destination")) } td { (code_value(lang, List::Country, d)) } }
                }
                @if let Some(t) = &c.transport {
                    tr {
                        th { (lang.t("summary.transport")) }
                        td {
                            @if let Some(mode) = &t.mode_code {
                                (code_value(lang, List::TransportMode, mode))
                            }
                            @if let Some(means) = &t.conveyance {
                                @if t.mode_code.is_some() { " — " }
                                (means)
                            }
                        }
                    }
                }
            }
            @if !c.goods.is_empty() {
                h3 { (lang.t("summary.goods")) }
                table.goods {
                    thead {
                        tr {
                            th { (lang.t("summary.description")) }
                            th { (lang.t("summary.hs_code")) }
                            th { (lang.t("summary.quantity")) }
                            th { (lang.t("summary.net_weight")) }
                            th { (lang.t("summary.gross_weight")) }
                        }
                    }
                    tbody {
                        @for g in &c.goods {
                            tr {
                                td {
                                    (g.description.as_deref().unwrap_or_default())
                                    @if let Some(b) = &g.botanical_name {
                                        br; small { i { (b) } }
                                    }
                                }
                                td { (g.hs_code.as_deref().unwrap_or_default()) }
                                td { (measure(lang, &g.quantity)) }
                                td { (measure(lang, &g.net_weight)) }
                                td { (measure(lang, &g.gross_weight)) }
                            }
                        }
                    }
                }
            }
            @if !c.attachments.is_empty() {
                h3 { (lang.t("attachment.title")) }
                ul {
                    @for a in &c.attachments {
                        li {
                            a href={ "/console/documents/" (id) "/attachments/" (a.index) } download {
                                (a.name.clone().unwrap_or_else(|| lang.f("attachment.unnamed", &[("index", &(a.index + 1))])))
                            }
                            @if let Some(t) = &a.media_type { " " small { "(" (t) ")" } }
                        }
                    }
                }
            }
        }
    }
}

/// A media type as the document states it, if it is a plain `type/subtype` (no parameters, no
/// spaces, no line breaks): anything else is served as `application/octet-stream`.
fn safe_media_type(stated: Option<&str>) -> &str {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    stated
        .map(str::trim)
        .filter(|t| t.len() <= 127)
        .filter(|t| t.split_once('/').is_some_and(|(a, b)| token(a) && token(b)))
        .unwrap_or("application/octet-stream")
}

/// `Content-Disposition: attachment` with the file's name (RFC 6266): an ASCII fallback with
/// anything unsafe replaced, and the name itself UTF-8 percent-encoded.
fn disposition(name: Option<&str>, index: usize) -> String {
    let fallback_name = format!("attachment-{}", index + 1);
    let name = name
        .map(|n| n.rsplit(['/', '\\']).next().unwrap_or(n).trim())
        .filter(|n| !n.is_empty())
        .unwrap_or(&fallback_name);
    let ascii: String = name
        .chars()
        .take(200)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._- ()".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// An attachment embedded in a verified document, downloaded: its bytes decoded from the
/// document, its stated media type when it is a plain one, never sniffed or shown inline.
async fn attachment(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    UrlPath((id, index)): UrlPath<(String, usize)>,
) -> Response {
    let Some((_, _, lang)) = c.session(&headers) else {
        return Redirect::to("/console/login").into_response();
    };
    let (r, _, payload) = match load(&c, lang, &id).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    if !matches!(r.verification, Verification::Verified { .. }) {
        return (StatusCode::FORBIDDEN, lang.t("attachment.not_verified")).into_response();
    }
    let found = document::content(&payload)
        .ok()
        .and_then(|content| content.attachments.into_iter().nth(index));
    let Some(file) = found else {
        return (StatusCode::NOT_FOUND, lang.t("attachment.none")).into_response();
    };
    let Some(bytes) = file.bytes() else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            lang.t("attachment.unreadable"),
        )
            .into_response();
    };
    (
        [
            (
                header::CONTENT_TYPE,
                safe_media_type(file.media_type.as_deref()).to_owned(),
            ),
            (
                header::CONTENT_DISPOSITION,
                disposition(file.name.as_deref(), index),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (
                header::CONTENT_SECURITY_POLICY,
                "sandbox; default-src 'none'".to_owned(),
            ),
        ],
        bytes,
    )
        .into_response()
}

async fn print_page(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    uri: Uri,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let Some((user, csrf, lang)) = c.session(&headers) else {
        return to_login(&uri);
    };
    let (r, replacement, payload) = match load(&c, lang, &id).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    let lines = checks(&c, lang, &r, replacement.as_ref());
    let printed = Printed {
        at: SystemTime::now(),
        spoke: c.api.me.as_str(),
        officer: &user,
        public_url: c.public_url.as_deref(),
    };
    page(
        lang,
        lang.t("document.printable"),
        Some((&user, &csrf)),
        print_body(lang, &c.clock, &r, &lines, &payload, &printed),
    )
    .into_response()
}

/// Who printed a document, where and when.
struct Printed<'a> {
    at: SystemTime,
    /// This spoke's participant id: the spoke that received and checked the document.
    spoke: &'a str,
    officer: &'a str,
    /// `console.public_url`: the QR code leads there, or there is none.
    public_url: Option<&'a str>,
}

/// The printable view, in `lang` with times on `clock`: the verdict, the summary, each check,
/// what the document says, who printed it when, and a QR code leading to this document's page
/// at the console's configured public address (none without one: never an address taken from
/// the request).
fn print_body(
    lang: Lang,
    clock: &Clock,
    r: &InboxRecord,
    lines: &[CheckLine],
    payload: &[u8],
    printed: &Printed,
) -> Markup {
    let content = content_of(r, payload);
    let url = printed
        .public_url
        .map(|base| format!("{base}/console/documents/{}", r.message_id));
    let qr = url.as_ref().and_then(|url| {
        qrcode::QrCode::new(url.as_bytes()).ok().map(|code| {
            code.render::<qrcode::render::svg::Color>()
                .min_dimensions(160, 160)
                .build()
        })
    });
    html! {
        h1 { (r.document_id.as_deref().unwrap_or(lang.t("inbox.unreadable"))) }
        p {
            (document_from(lang, clock, r))
        }
        (verdict_line(lang, r, lines, true))
        p.printed {
            (lang.f("print.printed", &[
                ("at", &clock_minute(clock, printed.at)),
                ("officer", &printed.officer),
            ]))
            " " b { (printed.spoke) } (lang.t("print.printed_end"))
        }
        div.qr {
            @match (&qr, &url) {
                (Some(svg), Some(url)) => {
                    // The SVG is the qrcode crate's own drawing: the URL is in it as modules,
                    // not text.
                    (PreEscaped(svg))
                    br;
                    small { (url) }
                }
                _ => {
                    small.warn { (lang.t("print.no_qr")) }
                }
            }
        }
        @if let Some(c) = &content {
            (summary_block(lang, r.message_id, c))
        }
        table { (check_rows(lang, lines)) }
        h2 { (lang.t("document.says")) }
        (fields_table(lang, content.as_ref()))
    }
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
        let inbox = page(
            Lang::default(),
            HOSTILE,
            Some((HOSTILE, "token")),
            inbox_body(
                Lang::default(),
                &Clock::default(),
                &filters,
                7,
                &InboxPage {
                    older_from: Some(42),
                    ..InboxPage::default()
                },
            ),
        )
        .0;
        // A document's fields and a check's detail (a rejection reason comes from the sender).
        let fields = field_rows(
            Lang::default(),
            None,
            &[document::Field {
                label: "Exporter".into(),
                value: HOSTILE.into(),
                language: Some(HOSTILE.into()),
            }],
        );
        let checks = check_rows(
            Lang::default(),
            &[CheckLine {
                name: "Signature",
                mark: Mark::Fail,
                link: None,
                content: false,
                detail: HOSTILE.into(),
            }],
        );
        let document = page(
            Lang::default(),
            "KZ-1",
            None,
            html! { (fields) table { (checks) } },
        )
        .0;
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
    fn the_summary_groups_goods_with_units_and_decodes_codes() {
        let eco = include_bytes!("../../../samples/eco/carec-KZ-CN-certificate-of-origin.xml");
        let content = document::content(eco).unwrap();
        let id = MessageId::generate();
        let ru = summary_block(Lang::from_tag("ru").unwrap(), id, &content).into_string();
        // The e-CO's kind and status are words of its own, shown as written.
        assert!(
            ru.contains("<th>Вид документа</th><td>Non-preferential</td>")
                && ru.contains("<th>Статус</th><td>ORIGINAL</td>"),
            "{ru}"
        );
        for expected in [
            "<h2>Сводка</h2>",
            "<th>Номер</th><td>KZ-CO-2026-000123</td>",
            "Казахстан <small>(KZ)</small>",
            "Китай <small>(CN)</small>",
            "Железнодорожный транспорт <small>(2)</small>",
            "<th>Код ГС (HS)</th>",
            "<td>110100</td>",
            "<td>50\u{a0}000 кг</td>",
            "<td>50\u{a0}150 кг</td>",
            "<td>1\u{a0}000 XBG (мешок)</td>",
            "<td>300 XBG (мешок)</td>",
        ] {
            assert!(ru.contains(expected), "{expected} not in {ru}");
        }
        let zh = summary_block(Lang::from_tag("zh").unwrap(), id, &content).into_string();
        for expected in [
            "<h2>摘要</h2>",
            "哈萨克斯坦 <small>(KZ)</small>",
            "<td>15,045 千克</td>",
            "铁路运输 <small>(2)</small>",
        ] {
            assert!(zh.contains(expected), "{expected} not in {zh}");
        }
        // The e-Phyto: kind decoded, status 70 marked as not in the list, its attachment linked.
        let phyto = include_bytes!("../../../samples/ephyto/mattilsynet-SPSCertificateContent.xml");
        let content = document::content(phyto).unwrap();
        let en = summary_block(Lang::default(), id, &content).into_string();
        for expected in [
            "<th>Kind of document</th><td>Phytosanitary certificate <small>(851)</small></td>",
            "<th>Status</th><td>70 <small class=\"warn\">(not in the code list)</small></td>",
            "<th>Destination country</th><td>Ecuador <small>(EC)</small></td>",
            "<td>10 kg</td>",
            "<td>60 kg</td>",
            &format!("href=\"/console/documents/{id}/attachments/0\" download>TestPdf.pdf</a>"),
        ] {
            assert!(en.contains(expected), "{expected} not in {en}");
        }
    }

    #[test]
    fn attachments_download_with_a_safe_type_and_name() {
        assert_eq!(safe_media_type(Some("application/pdf")), "application/pdf");
        assert_eq!(safe_media_type(Some(" image/png ")), "image/png");
        for unsafe_type in [
            None,
            Some(""),
            Some("text/html; charset=utf-8"),
            Some("text/html\r\nSet-Cookie: x=1"),
            Some("pdf"),
            Some("a/b/c"),
        ] {
            assert_eq!(
                safe_media_type(unsafe_type),
                "application/octet-stream",
                "{unsafe_type:?}"
            );
        }
        assert_eq!(
            disposition(Some("TestPdf.pdf"), 0),
            "attachment; filename=\"TestPdf.pdf\"; filename*=UTF-8''TestPdf%2Epdf"
        );
        // Paths and quotes cannot escape the header value; other scripts keep their name.
        let d = disposition(Some("../../etc/\"x\"\r\n.pdf"), 1);
        assert!(
            d.starts_with("attachment; filename=\"_x___.pdf\"; filename*=UTF-8''"),
            "{d}"
        );
        assert!(!d.contains('\r') && !d.contains('\n'), "{d}");
        let d = disposition(Some("сертификат.pdf"), 2);
        assert!(d.contains("filename*=UTF-8''%D1%81"), "{d}");
        assert_eq!(
            disposition(None, 2),
            "attachment; filename=\"attachment-3\"; filename*=UTF-8''attachment%2D3"
        );
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
            &InboxPage::default(),
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

    #[tokio::test]
    async fn every_answer_carries_the_security_headers() {
        for response in [
            page(Lang::default(), "Inbox", None, html! { "x" }).into_response(),
            Redirect::to("/console/login").into_response(),
            (StatusCode::FORBIDDEN, "CSRF token mismatch").into_response(),
        ] {
            let hardened = harden(response).await;
            let headers = hardened.headers();
            let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
            assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
            assert!(csp.contains("default-src 'none'"), "{csp}");
            assert!(
                !csp.contains("unsafe-inline") && !csp.contains("script-src"),
                "{csp}"
            );
            assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
            assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        }
        // The stylesheet keeps its own caching rule (revalidated, not stored blindly).
        let css = harden(stylesheet().await).await;
        assert_eq!(css.headers()[header::CACHE_CONTROL], "no-cache");
        assert_eq!(css.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        // No page carries inline style or script: the policy would block them.
        let page = page(Lang::default(), "Inbox", Some(("ana", "t")), html! { "x" }).0;
        assert!(page.contains("<link rel=\"stylesheet\" href=\"/console/style.css\">"));
        assert!(
            !page.contains("<style") && !page.contains("<script") && !page.contains("style=\"")
        );
    }

    #[test]
    fn only_a_local_console_path_is_returned_to_after_login() {
        for good in [
            "/console",
            "/console/documents/0123abcd",
            "/console/documents/0123abcd/print",
            "/console?q=kz&type=e-phyto",
        ] {
            assert_eq!(local_next(good), Some(good));
        }
        for bad in [
            "https://evil.example/console",
            "//evil.example/console",
            "/console//evil.example",
            "/\\evil.example",
            "/console/\\evil.example",
            "/console/../metrics",
            "/console/./documents",
            "/consolex",
            "/other",
            "/console/login",
            "/console/logout",
            "javascript:alert(1)",
            "/console/documents/a b",
            "/console/\u{0}",
            "",
        ] {
            assert_eq!(local_next(bad), None, "{bad:?}");
        }
        assert_eq!(local_next(&format!("/console/{}", "a".repeat(3000))), None);
        // A request without a session goes to the login form, which carries it back.
        let to = |uri: &str| {
            let response = to_login(&uri.parse().unwrap());
            response.headers()[header::LOCATION]
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(to("/console"), "/console/login");
        assert_eq!(
            to("/console/documents/0123/print"),
            "/console/login?next=%2Fconsole%2Fdocuments%2F0123%2Fprint"
        );
        assert_eq!(
            to("/console?q=kz&before=4"),
            "/console/login?next=%2Fconsole%3Fq%3Dkz%26before%3D4"
        );
    }

    #[test]
    fn plain_http_off_loopback_is_named_at_start() {
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(cookie_problem(at("127.0.0.1:8081"), None), None);
        assert_eq!(cookie_problem(at("[::1]:8081"), None), None);
        assert_eq!(
            cookie_problem(at("0.0.0.0:8081"), Some("https://console.kz.example")),
            None,
            "behind a TLS proxy"
        );
        for public_url in [None, Some("http://127.0.0.1:8081")] {
            let problem = cookie_problem(at("0.0.0.0:8081"), public_url).unwrap();
            assert!(
                problem.contains("console.listen 0.0.0.0:8081 is not a loopback address")
                    && problem.contains("Secure")
                    && problem.contains("console.public_url"),
                "{problem}"
            );
        }
    }

    #[test]
    fn user_names_in_the_log_are_cut_and_refusals_say_until_when() {
        assert_eq!(shown_user("ana"), "ana");
        let long = "é".repeat(100);
        let shown = shown_user(&long);
        assert!(shown.len() <= MAX_USER_BYTES && shown.len() >= MAX_USER_BYTES - 1);
        assert!(long.starts_with(shown));
        let in_ten = Instant::now() + Duration::from_secs(600);
        let locked = refused_message(
            Lang::default(),
            &Clock::default(),
            Refusal::AccountLocked { until: in_ten },
        );
        let until = clock_minute(
            &Clock::default(),
            SystemTime::now() + Duration::from_secs(600 + 59),
        );
        assert!(locked.contains(&format!("until {until}")), "{locked}");
        assert!(locked.ends_with("Logins from other addresses are not affected."));
        assert!(until.ends_with(" UTC") && until.len() == "2026-12-06 04:12 UTC".len());
        let throttled = refused_message(
            Lang::default(),
            &Clock::default(),
            Refusal::AddressThrottled { until: in_ten },
        );
        assert!(
            throttled.contains("from your address") && throttled.contains(&until),
            "{throttled}"
        );
    }

    #[test]
    fn the_list_says_where_it_stands_and_links_both_ways() {
        let filters = Filters {
            country: "kz".into(),
            ..Filters::default()
        };
        let body = inbox_body(
            Lang::default(),
            &Clock::default(),
            &filters,
            500,
            &InboxPage {
                records: Vec::new(),
                matching: 250,
                newer: 100,
                older_from: Some(17),
                newer_from: Some(90),
            },
        )
        .into_string();
        assert!(body.contains("Documents in the inbox: 500."), "{body}");
        assert!(body.contains("href=\"/console?q=&amp;type=&amp;country=kz&amp;status=&amp;from=&amp;to=&amp;before=17\""), "{body}");
        assert!(body.contains("&amp;after=90\">← Newer documents"), "{body}");
        // Filters match whatever the case typed.
        let mut record = crate::store::fixtures::inbox_record("KZ");
        record.document_type = Some(caravan_common::document::DocumentType::Phytosanitary);
        for (country, kind) in [("kz", "E-PHYTO"), ("KZ", "e-phyto"), (" Kz ", "")] {
            let f = Filters {
                country: country.into(),
                document_type: kind.into(),
                ..Filters::default()
            };
            assert!(f.keep(&record), "{country} {kind}");
        }
        let other = Filters {
            country: "uz".into(),
            ..Filters::default()
        };
        assert!(!other.keep(&record));
    }

    #[test]
    fn the_printout_carries_the_verdict_who_when_and_the_configured_url_only() {
        let record = crate::store::fixtures::inbox_record("KZ");
        let lines = [CheckLine {
            name: "Signature",
            mark: Mark::Pass,
            link: None,
            content: false,
            detail: "verifies".into(),
        }];
        let printed = Printed {
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000),
            spoke: "CN",
            officer: "ana",
            public_url: Some("https://console.cn.example"),
        };
        let body = print_body(
            Lang::default(),
            &Clock::default(),
            &record,
            &lines,
            b"",
            &printed,
        )
        .into_string();
        assert!(body.contains("✔ Genuine, current and unaltered."), "{body}");
        assert!(body.contains("Printed 2026-11-30 "), "{body}");
        assert!(
            body.contains(" UTC by officer ana at the Caravan spoke of <b>CN</b>."),
            "{body}"
        );
        assert!(body.contains("<svg"), "{body}");
        assert!(body.contains(&format!(
            "<small>https://console.cn.example/console/documents/{}</small>",
            record.message_id
        )));
        // A failed check is the printout's headline too.
        let failed = [CheckLine {
            name: "Signature",
            mark: Mark::Fail,
            link: None,
            content: false,
            detail: "BAD_SIGNATURE".into(),
        }];
        let body = print_body(
            Lang::default(),
            &Clock::default(),
            &record,
            &failed,
            b"",
            &printed,
        )
        .into_string();
        assert!(body.contains("✘ A CHECK FAILED"), "{body}");
        // Without a public URL: no QR code, and the page says why.
        let body = print_body(
            Lang::default(),
            &Clock::default(),
            &record,
            &lines,
            b"",
            &Printed {
                public_url: None,
                ..printed
            },
        )
        .into_string();
        assert!(!body.contains("<svg") && !body.contains("http"), "{body}");
        assert!(body.contains("No QR code: this console has no public address configured"));
    }

    /// A verified record with these content checks.
    fn checked(checks: Vec<checks::Check>) -> InboxRecord {
        InboxRecord {
            verification: Verification::Verified { notes: Vec::new() },
            checks,
            ..crate::store::fixtures::inbox_record("KZ")
        }
    }

    fn line(
        check: CheckName,
        outcome: Outcome,
        rule: &str,
        params: &[(&str, &str)],
    ) -> checks::Check {
        checks::Check {
            check,
            outcome,
            rule: rule.into(),
            message_key: checks::message_key(rule),
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn the_verdict_heads_with_the_failing_content_check_in_words() {
        let passed = |mark| CheckLine {
            name: "Signature",
            mark,
            detail: "verifies".into(),
            link: None,
            content: false,
        };
        let pass = line(CheckName::Header, Outcome::Pass, "HEADER_CONSISTENT", &[]);
        let old = line(
            CheckName::Dates,
            Outcome::Warn,
            "ISSUE_DATE_OLD",
            &[
                ("found", "2016-04-22"),
                ("age_days", "3870"),
                ("max_days", "90"),
            ],
        );
        let mismatch = line(
            CheckName::Issuer,
            Outcome::Fail,
            "EXPORT_COUNTRY_MISMATCH",
            &[("found", "AR"), ("expected", "KZ")],
        );
        let en = Lang::default();
        let ru = Lang::from_tag("ru").unwrap();
        // The panel as `checks` makes it: the signature's line, then one per content check.
        let render = |lang, r: &InboxRecord, print| {
            let mut lines = vec![passed(Mark::Pass)];
            lines.extend(r.checks.iter().map(|c| CheckLine {
                name: "Content",
                mark: c.outcome.into(),
                detail: String::new(),
                link: None,
                content: true,
            }));
            verdict_line(lang, r, &lines, print).into_string()
        };
        assert!(
            render(en, &checked(vec![pass.clone()]), false).contains(
                "✔ Genuine and consistent: signed, current, unaltered, and what it says fits its sender and recipient."
            )
        );
        let warned = render(en, &checked(vec![pass.clone(), old.clone()]), true);
        assert!(
            warned.contains(
                "⚠ Genuine, with warnings: Issued 2016-04-22: 3870 days ago, older than 90 days."
            ),
            "{warned}"
        );
        let failed = render(
            ru,
            &checked(vec![old, pass.clone(), mismatch.clone()]),
            false,
        );
        assert!(
            failed.contains(
                "✘ Подпись подлинная, но содержание противоречиво: Страна экспорта AR, а документ подписан KZ."
            ),
            "{failed}"
        );
        // A failed signature-panel check comes first; a record never checked keeps the old words.
        let body =
            verdict_line(en, &checked(vec![pass]), &[passed(Mark::Fail)], true).into_string();
        assert!(body.contains("✘ A CHECK FAILED"), "{body}");
        assert!(
            render(en, &checked(Vec::new()), false).contains("✔ Genuine, current and unaltered.")
        );
        // Each content check is a line of the panel, WARN shown as such and translated.
        let rows = check_rows(
            ru,
            &[CheckLine {
                name: ru.t("check.current"),
                mark: Mark::Warn,
                detail: "x".into(),
                link: Some(MessageId::generate()),
                content: false,
            }],
        )
        .into_string();
        assert!(
            rows.contains("⚠ ВНИМАНИЕ") && rows.contains("href=\"/console/documents/"),
            "{rows}"
        );
    }

    #[test]
    fn the_inbox_flags_what_the_content_checks_found_and_filters_by_it() {
        let by = MessageId::generate();
        let earlier = MessageId::generate();
        let duplicate = line(
            CheckName::Duplicate,
            Outcome::Fail,
            "DUPLICATE_NUMBER",
            &[("number", "KZ-1"), ("earlier", &earlier.to_string())],
        );
        let replaced = checks::replaced_by(by);
        let record = checked(vec![duplicate, replaced]);
        let flags = content_flags(Lang::default(), &record).into_string();
        assert!(
            flags.contains(">DUPLICATE<") && flags.contains(">REPLACED<"),
            "{flags}"
        );
        assert!(
            flags.contains(&format!("href=\"/console/documents/{by}\"")),
            "{flags}"
        );
        // The duplicate and the replacement are named, not repeated as FAIL and WARN.
        assert!(
            !flags.contains("FAIL") && !flags.contains("WARN"),
            "{flags}"
        );
        let zh = content_flags(Lang::from_tag("zh").unwrap(), &record).into_string();
        assert!(zh.contains(">重复<") && zh.contains(">已替换<"), "{zh}");
        let mismatch = checked(vec![line(
            CheckName::Issuer,
            Outcome::Fail,
            "IMPORT_COUNTRY_MISMATCH",
            &[("found", "EC"), ("expected", "CN")],
        )]);
        let flags = content_flags(Lang::default(), &mismatch).into_string();
        assert!(
            flags.contains("title=\"The import country is EC, but the document was sent to CN.\"")
                && flags.contains("✘ FAIL"),
            "{flags}"
        );
        // Nothing checked, nothing flagged.
        assert_eq!(
            content_flags(Lang::default(), &checked(Vec::new())).into_string(),
            ""
        );
        let filter = |status: &str| Filters {
            status: status.into(),
            ..Filters::default()
        };
        assert!(filter("Inconsistent").keep(&mismatch) && filter("inconsistent").keep(&record));
        assert!(!filter("consistent").keep(&mismatch) && !filter("warnings").keep(&mismatch));
        assert!(!filter("consistent").keep(&checked(Vec::new())));
        assert!(filter(" VERIFIED ").keep(&mismatch) && filter("").keep(&mismatch));
    }
}
