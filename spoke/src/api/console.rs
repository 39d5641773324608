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
    config::{ConsoleConfig, Officer},
    document,
    rt::blocking,
    store::{InboxPage, InboxRecord, PageAt, Verification},
};

use super::{
    Api,
    login_guard::{ACCOUNT_FAILURES, LoginGuard, MAX_USER_BYTES, Refusal},
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
    expires: Instant,
}

/// The console's state. The maps are `std` mutexes: held for a lookup, never across an await
/// (nor across a password's verification).
pub struct Console {
    api: Api,
    officers: Vec<Officer>,
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

/// A whole page around `body`; with an officer (name, CSRF token), the bar names them and
/// offers the logout form.
fn page(title: &str, officer: Option<(&str, &str)>, body: Markup) -> Html<String> {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { (title) " · Caravan" }
                link rel="stylesheet" href="/console/style.css";
            }
            body {
                header {
                    a href="/console" { b { "Caravan" } " officer console" }
                    @if let Some((name, csrf)) = officer {
                        span { (name) }
                        form method="post" action="/console/logout" {
                            input type="hidden" name="csrf" value=(csrf);
                            button { "Log out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    };
    Html(page.into_string())
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

    /// The session of a request: (user, csrf token).
    fn session(&self, headers: &HeaderMap) -> Option<(String, String)> {
        let id = cookie_value(headers, SESSION_COOKIE)?;
        let mut sessions = self.sessions();
        sessions.retain(|_, s| s.expires > Instant::now());
        sessions.get(&id).map(|s| (s.user.clone(), s.csrf.clone()))
    }

    /// Check a login from `client`, counting failures; returns the message for the page.
    fn check_login(&self, user: &str, password: &str, client: IpAddr) -> Result<(), String> {
        if let Err(refusal) = self.guard().check(user, client, Instant::now()) {
            return Err(refused_message(refusal));
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
        if good && officer.is_some() {
            self.guard().succeeded(user, client);
            return Ok(());
        }
        if let Some(refusal) = self.guard().failed(user, client, Instant::now()) {
            warn!(user = ?shown_user(user), %client, ?refusal, "officer logins refused for a while after repeated failures");
            return Err(refused_message(refusal));
        }
        Err("Wrong user name or password.".into())
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

/// A wall-clock time as the console shows it: to the minute, in UTC, named.
fn utc_minute(t: SystemTime) -> String {
    use time::macros::format_description;
    time::OffsetDateTime::from(t)
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute] UTC"
        ))
        .unwrap_or_default()
}

/// The login page's words for a refusal, with until when.
fn refused_message(refusal: Refusal) -> String {
    let wait = refusal.until().saturating_duration_since(Instant::now());
    // Rounded up to the minute shown, so "until 04:12" is never early.
    let until = utc_minute(SystemTime::now() + wait + Duration::from_secs(59));
    match refusal {
        Refusal::AccountLocked { .. } => format!(
            "This account is locked for logins from your address after {ACCOUNT_FAILURES} failed attempts, until {until}. Logins from other addresses are not affected."
        ),
        Refusal::AddressThrottled { .. } => format!(
            "Too many failed logins from your address: logins from it are paused until {until}."
        ),
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
}

async fn login_form(State(c): State<Arc<Console>>, Query(q): Query<NextQuery>) -> Response {
    let token = random_token();
    let next = local_next(&q.next).unwrap_or_default();
    let body = html! {
        @if let Some(problem) = c.cookie_problem() {
            p.fail { (problem) }
        }
        div.panel {
            h1 { "Log in" }
            form method="post" action="/console/login" {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="next" value=(next);
                p { label { "User " input name="user" autocomplete="username" required; } }
                p {
                    label {
                        "Password "
                        input name="password" type="password" autocomplete="current-password" required;
                    }
                }
                button { "Log in" }
            }
        }
    };
    with_cookie(
        console_cookie(LOGIN_COOKIE, token, Duration::from_secs(900)),
        page("Log in", None, body),
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
}

async fn login(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    extensions: Extensions,
    Form(form): Form<LoginForm>,
) -> Response {
    // Double-submit: the form's token must be the one this browser was given with the form.
    let expected = cookie_value(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !bool::from(expected.as_bytes().ct_eq(form.csrf.as_bytes())) {
        let body = html! {
            p.fail { "The login form expired. " a href="/console/login" { "Try again" } "." }
        };
        return (StatusCode::FORBIDDEN, page("Log in", None, body)).into_response();
    }
    let client = client_ip(&extensions);
    let next = local_next(&form.next).unwrap_or("/console");
    let again = match next {
        "/console" => "/console/login".to_owned(),
        next => format!(
            "/console/login?{}",
            serde_urlencoded::to_string([("next", next)]).unwrap_or_default()
        ),
    };
    let refused = |status: StatusCode, message: &str| {
        let body = html! {
            p.fail { (message) }
            p { a href=(again) { "Try again" } }
        };
        (status, page("Log in", None, body)).into_response()
    };
    if form.user.len() > MAX_USER_BYTES {
        // Refused before any lookup; counted against the address (under the cut name, so
        // the guard's keys stay small).
        warn!(user = ?shown_user(&form.user), bytes = form.user.len(), %client, "officer login refused: user name too long");
        c.guard()
            .failed(shown_user(&form.user), client, Instant::now());
        return refused(
            StatusCode::BAD_REQUEST,
            &format!("A user name is at most {MAX_USER_BYTES} bytes."),
        );
    }
    // argon2 costs milliseconds of CPU: off the async threads, so that a burst of logins does
    // not stall the console's other pages (nor the spoke's other listeners).
    let checked = {
        let (console, user, password) = (c.clone(), form.user.clone(), form.password.clone());
        tokio::task::spawn_blocking(move || console.check_login(&user, &password, client))
            .await
            .unwrap_or_else(|_| Err("The login could not be checked. Try again.".into()))
    };
    if let Err(message) = checked {
        warn!(user = ?form.user, %client, "failed officer login");
        return refused(StatusCode::UNAUTHORIZED, &message);
    }
    let id = random_token();
    let session = Session {
        user: form.user.clone(),
        csrf: random_token(),
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
    let Some((user, csrf)) = c.session(&headers) else {
        return Redirect::to("/console/login").into_response();
    };
    if !bool::from(csrf.as_bytes().ct_eq(form.csrf.as_bytes())) {
        return (StatusCode::FORBIDDEN, "CSRF token mismatch").into_response();
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
        // Number, sender, parties, goods descriptions and HS codes, in any case.
        let text_match = r.matches_text(&self.q);
        let received = r.received_at.to_string();
        let date = received.get(..10).unwrap_or(&received);
        text_match
            && (self.document_type.trim().is_empty()
                || r.document_type
                    .is_some_and(|t| t.as_str().eq_ignore_ascii_case(self.document_type.trim())))
            && (self.country.trim().is_empty()
                || r.sender.as_str().eq_ignore_ascii_case(self.country.trim()))
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
fn verdict_cell(v: &Verification) -> Markup {
    html! {
        @match v {
            Verification::Verified { notes } => {
                span.ok { "✔ verified" }
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
                span.fail { "✘ NOT GENUINE: " (code.as_str()) }
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
fn inbox_body(f: &Filters, total: u64, listed: &InboxPage) -> Markup {
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
        h1 { "Received documents" }
        form.filters method="get" action="/console" {
            input name="q" placeholder="Number, party or country" value=(f.q);
            (select("type", &f.document_type, &[
                ("", "Any type"),
                ("e-co", "Certificate of origin"),
                ("e-phyto", "Phytosanitary"),
                ("e-invoice", "Invoice"),
            ]))
            input name="country" placeholder="From (e.g. KZ)" size="8" value=(f.country);
            (select("status", &f.status, &[
                ("", "Any result"),
                ("verified", "Verified"),
                ("rejected", "Not genuine"),
            ]))
            label { "From " input type="date" name="from" value=(f.from); }
            label { "to " input type="date" name="to" value=(f.to); }
            button { "Filter" }
        }
        p {
            "Documents in the inbox: " (total)
            @if f.before.is_some() { "; older ones" }
            "."
            @if !records.is_empty() {
                " Showing " (first) "–" (last) " of " (listed.matching) " matching"
                " (" (INBOX_PAGE) " a page)."
            }
        }
        table {
            thead {
                tr {
                    th { "Number" } th { "Type" } th { "From" } th { "Received (UTC)" }
                    th { "Verification" }
                }
            }
            tbody {
                // Newest first, which is what an officer at a border post looks for; a page at
                // a time.
                @for (_, r) in records {
                    tr {
                        td {
                            a href={ "/console/documents/" (r.message_id) } {
                                (r.document_id.as_deref().unwrap_or("(unreadable)"))
                            }
                        }
                        td { (r.document_type.map(|t| t.as_str()).unwrap_or("?")) }
                        td { (r.sender.as_str()) }
                        td {
                            (r.received_at.to_string().chars().take(16).collect::<String>().replace('T', " "))
                        }
                        td { (verdict_cell(&r.verification)) }
                    }
                }
                @if records.is_empty() {
                    tr { td colspan="5" { "No document matches." } }
                }
            }
        }
        p.pages {
            @if let Some(query) = newer {
                a href={ "/console?" (query) } { "← Newer documents" }
                " "
            }
            @if let Some(query) = older {
                a href={ "/console?" (query) } { "Older documents →" }
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
    let Some((user, csrf)) = c.session(&headers) else {
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
            return (StatusCode::INTERNAL_SERVER_ERROR, format!("store: {e}")).into_response();
        }
    };
    page(
        "Received documents",
        Some((&user, &csrf)),
        inbox_body(&f, total, &listed),
    )
    .into_response()
}

/// One line of the verification panel: passed (`Some(true)`), failed, or information.
struct CheckLine {
    name: &'static str,
    ok: Option<bool>,
    detail: String,
}

/// The verification panel: each check, and why it passed or failed.
fn checks(c: &Console, r: &InboxRecord, all: &[InboxRecord]) -> Vec<CheckLine> {
    let mut lines = Vec::new();
    let held = c.api.hub.trust().current();
    match &r.verification {
        Verification::Verified { notes } => {
            lines.push(CheckLine {
                name: "Signature",
                ok: Some(true),
                detail: format!(
                    "The sender's signature over the document's header verifies, and the document's bytes match the SHA-256 it signed ({}).",
                    r.payload_sha256
                ),
            });
            for n in notes {
                lines.push(CheckLine {
                    name: "Note",
                    ok: None,
                    detail: format!("{}: {}", n.code, n.message),
                });
            }
        }
        Verification::Rejected { code, reason } => lines.push(CheckLine {
            name: "Signature",
            ok: Some(false),
            detail: format!("{code}: {reason}. Do not rely on this document."),
        }),
    }
    let key = r.key_id.as_deref().and_then(|k| k.parse().ok());
    match (key, &held, r.accepted_at) {
        (Some(key), Some(h), Some(at)) => {
            match h.set.key(key) {
                Some(entry) => {
                    let status = entry.status(at);
                    lines.push(CheckLine {
                    name: "Signing key",
                    ok: Some(status == KeyStatus::Active || entry.revoked.as_ref().is_some_and(|rv| rv.at > at)),
                    detail: format!("Key {key} of {} was {} when the hub accepted the document ({at}); now {}.", entry.participant, status.as_str(), entry.status(Timestamp::now()).as_str()),
                });
                    if let Some(t) = r.document_type {
                        lines.push(CheckLine {
                            name: "Issuer allowed",
                            ok: Some(entry.document_types.contains(&t)),
                            detail: format!(
                                "{} may sign {}: {}.",
                                entry.participant,
                                t,
                                if entry.document_types.contains(&t) {
                                    "yes"
                                } else {
                                    "NO"
                                }
                            ),
                        });
                    }
                }
                None => lines.push(CheckLine {
                    name: "Signing key",
                    ok: Some(false),
                    detail: format!("Key {key} is not in the trust list held."),
                }),
            }
        }
        _ => lines.push(CheckLine {
            name: "Signing key",
            ok: Some(false),
            detail: "The signing key could not be established.".into(),
        }),
    }
    lines.push(match (r.hub_sequence, r.accepted_at) {
        (Some(seq), Some(at)) => CheckLine {
            name: "Hub receipt",
            ok: Some(true),
            detail: format!("The hub's signed receipt: accepted at {at}, sequence {seq}."),
        },
        _ => CheckLine {
            name: "Hub receipt",
            ok: Some(false),
            detail: "No valid hub receipt came with the document.".into(),
        },
    });
    lines.push(match &r.evidence.ack {
        Some(_) => CheckLine {
            name: "Acknowledgement",
            ok: Some(true),
            detail: "This spoke signed and sent its acknowledgement to the sender.".into(),
        },
        None => CheckLine {
            name: "Acknowledgement",
            ok: None,
            detail: "Not acknowledged yet.".into(),
        },
    });
    lines.push(match &held {
        Some(h) if h.set.info.is_fresh(Timestamp::now()) => CheckLine {
            name: "Trust list",
            ok: Some(true),
            detail: format!("Version {}, fresh.", h.set.info.version),
        },
        Some(h) => CheckLine {
            name: "Trust list",
            ok: Some(false),
            detail: format!(
                "Version {} is STALE: its next update was due at {}.",
                h.set.info.version,
                h.set
                    .info
                    .next_update
                    .map(|t| t.to_string())
                    .unwrap_or_default()
            ),
        },
        None => CheckLine {
            name: "Trust list",
            ok: Some(false),
            detail: "No trust list held.".into(),
        },
    });
    let replacements: Vec<&InboxRecord> = all
        .iter()
        .filter(|o| o.sender == r.sender && o.supersedes == Some(r.message_id))
        .collect();
    lines.push(match replacements.first() {
        Some(n) => CheckLine {
            name: "Current",
            ok: Some(false),
            detail: format!(
                "REPLACED by {} (message {}), received {}.",
                n.document_id.as_deref().unwrap_or("?"),
                n.message_id,
                n.received_at
            ),
        },
        None => CheckLine {
            name: "Current",
            ok: Some(true),
            detail: "No later document replaces or withdraws this one.".into(),
        },
    });
    if let Some(old) = r.supersedes {
        lines.push(CheckLine {
            name: "Replaces",
            ok: None,
            detail: format!("This document replaces message {old}."),
        });
    }
    lines
}

async fn load(c: &Console, id: &str) -> Result<(InboxRecord, Vec<InboxRecord>, Vec<u8>), Response> {
    let id: MessageId = id
        .parse()
        .map_err(|_| (StatusCode::NOT_FOUND, "no such document").into_response())?;
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
    .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("store: {e}")).into_response())?;
    match result {
        (Some(r), all, payload) => Ok((r, all, payload)),
        _ => Err((StatusCode::NOT_FOUND, "no such document").into_response()),
    }
}

/// What the document says, when it verified and is a trade document the spoke reads.
fn fields_table(r: &InboxRecord, payload: &[u8]) -> Markup {
    let verified = matches!(r.verification, Verification::Verified { .. });
    if !verified || r.content_type.as_deref() != Some("application/xml") {
        return html! {
            p.warn { "The document's content is not shown: it did not verify, or it is not a trade document." }
        };
    }
    let fields = document::recognise(payload)
        .and_then(|d| document::fields(payload, d.format))
        .unwrap_or_default();
    field_rows(&fields)
}

/// The document's fields, as the sender wrote them (labels ours, values and languages theirs).
fn field_rows(fields: &[document::Field]) -> Markup {
    html! {
        table {
            @for f in fields {
                tr {
                    th { (f.label) }
                    td {
                        (f.value)
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
fn check_rows(lines: &[CheckLine]) -> Markup {
    html! {
        @for l in lines {
            tr {
                td {
                    @match l.ok {
                        Some(true) => span.ok { "✔ PASS" },
                        Some(false) => span.fail { "✘ FAIL" },
                        None => span.warn { "ℹ" },
                    }
                }
                th { (l.name) }
                td { (l.detail) }
            }
        }
    }
}

/// The document page's body: what it is, the verdict, each check, its fields, and the XML.
fn document_body(r: &InboxRecord, lines: &[CheckLine], payload: &[u8]) -> Markup {
    let genuine = lines.iter().all(|l| l.ok != Some(false));
    let xml = String::from_utf8_lossy(payload);
    let shown: String = xml.chars().take(200_000).collect();
    html! {
        h1 { (r.document_id.as_deref().unwrap_or("(unreadable)")) }
        p {
            (r.document_type.map(|t| t.as_str()).unwrap_or("?")) " from "
            b { (r.sender.as_str()) }
            ", received " (r.received_at) " · "
            a href={ "/console/documents/" (r.message_id) "/print" } { "Printable view" }
        }
        @if genuine {
            p.ok { "✔ Genuine, current and unaltered." }
        } @else {
            p.fail { "✘ A CHECK FAILED: read the panel below before relying on this document." }
        }
        div.panel {
            h2 { "Verification" }
            table { (check_rows(lines)) }
        }
        div.panel {
            h2 { "What the document says" }
            (fields_table(r, payload))
        }
        div.panel {
            h2 { "Document as received (XML)" }
            pre { (shown) }
        }
    }
}

async fn document_page(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    uri: Uri,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let Some((user, csrf)) = c.session(&headers) else {
        return to_login(&uri);
    };
    let (r, all, payload) = match load(&c, &id).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    let lines = checks(&c, &r, &all);
    page(
        r.document_id.as_deref().unwrap_or("Document"),
        Some((&user, &csrf)),
        document_body(&r, &lines, &payload),
    )
    .into_response()
}

async fn print_page(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    uri: Uri,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let Some((user, csrf)) = c.session(&headers) else {
        return to_login(&uri);
    };
    let (r, all, payload) = match load(&c, &id).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    let lines = checks(&c, &r, &all);
    let printed = Printed {
        at: SystemTime::now(),
        spoke: c.api.me.as_str(),
        officer: &user,
        public_url: c.public_url.as_deref(),
    };
    page(
        "Printable view",
        Some((&user, &csrf)),
        print_body(&r, &lines, &payload, &printed),
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

/// The printable view: the verdict, each check, what the document says, who printed it when,
/// and a QR code leading to this document's page at the console's configured public address
/// (none without one: never an address taken from the request).
fn print_body(r: &InboxRecord, lines: &[CheckLine], payload: &[u8], printed: &Printed) -> Markup {
    let genuine = lines.iter().all(|l| l.ok != Some(false));
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
        h1 { (r.document_id.as_deref().unwrap_or("(unreadable)")) }
        p {
            (r.document_type.map(|t| t.as_str()).unwrap_or("?")) " from " (r.sender.as_str())
            " · received " (r.received_at)
        }
        @if genuine {
            p.ok { "✔ Genuine, current and unaltered." }
        } @else {
            p.fail { "✘ A CHECK FAILED: read the checks below before relying on this document." }
        }
        p.printed {
            "Printed " (utc_minute(printed.at)) " by officer " (printed.officer)
            " at the Caravan spoke of " b { (printed.spoke) } "."
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
                    small.warn {
                        "No QR code: this console has no public address configured "
                        "(console.public_url), and a code is never made from the address "
                        "this page was asked for."
                    }
                }
            }
        }
        table { (check_rows(lines)) }
        h2 { "What the document says" }
        (fields_table(r, payload))
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
            HOSTILE,
            Some((HOSTILE, "token")),
            inbox_body(
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
        let fields = field_rows(&[document::Field {
            label: "Exporter".into(),
            value: HOSTILE.into(),
            language: Some(HOSTILE.into()),
        }]);
        let checks = check_rows(&[CheckLine {
            name: "Signature",
            ok: Some(false),
            detail: HOSTILE.into(),
        }]);
        let document = page("KZ-1", None, html! { (fields) table { (checks) } }).0;
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
    fn filters_keep_what_the_officer_chose() {
        let filters = Filters {
            document_type: "e-phyto".into(),
            status: "rejected".into(),
            ..Filters::default()
        };
        let form = inbox_body(&filters, 0, &InboxPage::default()).into_string();
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
            page("Inbox", None, html! { "x" }).into_response(),
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
        let page = page("Inbox", Some(("ana", "t")), html! { "x" }).0;
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
        let locked = refused_message(Refusal::AccountLocked { until: in_ten });
        let until = utc_minute(SystemTime::now() + Duration::from_secs(600 + 59));
        assert!(locked.contains(&format!("until {until}")), "{locked}");
        assert!(locked.ends_with("Logins from other addresses are not affected."));
        assert!(until.ends_with(" UTC") && until.len() == "2026-12-06 04:12 UTC".len());
        let throttled = refused_message(Refusal::AddressThrottled { until: in_ten });
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
            ok: Some(true),
            detail: "verifies".into(),
        }];
        let printed = Printed {
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000),
            spoke: "CN",
            officer: "ana",
            public_url: Some("https://console.cn.example"),
        };
        let body = print_body(&record, &lines, b"", &printed).into_string();
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
            ok: Some(false),
            detail: "BAD_SIGNATURE".into(),
        }];
        let body = print_body(&record, &failed, b"", &printed).into_string();
        assert!(body.contains("✘ A CHECK FAILED"), "{body}");
        // Without a public URL: no QR code, and the page says why.
        let body = print_body(
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
}
