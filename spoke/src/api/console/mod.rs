//! The officers' web console: a received certificate, what it says, and whether it is genuine,
//! current and unaltered, in plain words; and what this spoke sent, where each document is and,
//! when the recipient rejected one, its reason code and text ([`sent`]); and the certificates
//! it issues itself, from draft to approval, with their printout and the public verification
//! page their QR code leads to (`/verify/{token}`, the one page served without login:
//! [`certificates`]).
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
    config::{ConsoleConfig, Officer},
    document,
    i18n::{
        Lang,
        clock::Clock,
        codes::{self, Decoded, List},
        negotiate,
    },
    issuance::Issuance,
    rt::blocking,
    store::{InboxPage, InboxRecord, PageAt, Verification},
};

use super::{
    Api,
    login_guard::{ACCOUNT_FAILURES, LoginGuard, LookupGuard, MAX_USER_BYTES, Refusal},
};

mod certificates;
mod documents;
mod inbox;
mod sent;
#[cfg(test)]
mod tests;

use certificates::{MAX_CERTIFICATE_FORM_BYTES, act, create, hs_page, list, new_page, print, show};
use documents::{attachment, document_page, print_page};
use inbox::inbox;
use sent::{sent_document, sent_list};

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
    /// Issuing certificates (issue 18): the workflow every step of the certificate pages is.
    issuance: Arc<Issuance>,
    officers: Vec<Officer>,
    /// The time zone times are shown in.
    clock: Clock,
    /// Where officers reach the console (`console.public_url`), for the printed QR code.
    public_url: Option<String>,
    /// Proxies whose `X-Forwarded-For` names the client (`console.trusted_proxies`).
    trusted_proxies: Vec<IpAddr>,
    /// Why officers' browsers cannot keep the session cookie, if they cannot.
    cookie_problem: Option<String>,
    sessions: Mutex<HashMap<String, Session>>,
    guard: Mutex<LoginGuard>,
    /// The public verification page's misses, per address.
    lookups: Mutex<LookupGuard>,
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
header a,header button{color:#fff}header button{background:transparent;border:1px solid #fff9;border-radius:.3rem;cursor:pointer}small.verify{overflow-wrap:anywhere;word-break:break-all}main{padding:1rem;max-width:70rem;margin:auto}\
table{border-collapse:collapse;width:100%;background:#fff}td,th{padding:.4rem .5rem;border-bottom:1px solid #dde;text-align:left;vertical-align:top;overflow-wrap:anywhere}td:first-child{white-space:nowrap}\
.ok{color:#0a6b2d;font-weight:600}.fail{color:#a4161a;font-weight:700}.warn{color:#8a5a00;font-weight:600}\
.panel{background:#fff;padding:1rem;margin:1rem 0;border-radius:.4rem;box-shadow:0 1px 2px #0002}\
form.filters{display:flex;flex-wrap:wrap;gap:.5rem;margin-bottom:1rem}input,select,button{font-size:1rem;padding:.35rem}\
pre{white-space:pre-wrap;word-break:break-all;max-height:30rem;overflow:auto;background:#fff;padding:.5rem}\
.qr{float:right;max-width:14rem;margin-left:1rem}.pages a{margin-right:1rem}\
.flag{display:inline-block;border:1px solid;border-radius:.3rem;padding:0 .3rem;margin:0 0 0 .3rem;font-size:.85rem}\
header nav a{margin-right:1rem}table.facts th{white-space:nowrap;overflow-wrap:normal;width:1%}.headline{font-size:1.15rem}.waiting{color:#3d4f63}\
code.business{border:1px solid #8a99ab;border-radius:.3rem;white-space:nowrap}\
code.business .namespace{background:#e4e9f0;padding:0 .3rem}code.business .colon{padding:0 .1rem}code.business .local{font-weight:700;padding:0 .3rem}\
fieldset{background:#fff;border:1px solid #dde;margin:.6rem 0}.field{display:inline-block;margin:.2rem .6rem .2rem 0;vertical-align:top}\
.field label{display:block;font-size:.85rem;color:#3d4f63}.entry{border-top:1px dashed #dde;padding:.3rem 0}\
.problem{display:block;color:#a4161a;font-weight:600;font-size:.85rem}ul.problems{color:#a4161a}form.step{margin:.5rem 0}\
table.lines td,table.lines th{font-size:.9rem}\
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
                    @if officer.is_some() {
                        nav {
                            a href="/console" { (lang.t("page.received")) }
                            a href="/console/sent" { (lang.t("page.sent")) }
                            a href="/console/certificates" { (lang.t("page.certificates")) }
                        }
                    }
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

/// An HS code as the officer reads it: as written, then its HS 2022 heading with the
/// heading's description ("0808.10 · 0808 Apples, pears and quinces; fresh"), the chapter's in
/// the heading's title; a code whose heading is not in HS 2022 as written, marked as such.
/// The descriptions are in English in every language (HS 2022 is shipped in English only).
fn hs_value(lang: Lang, code: &str) -> Markup {
    html! {
        @match codes::hs(code, lang) {
            Some(h) => {
                (code) " · "
                small lang="en" title=(lang.f("code.hs_chapter", &[("chapter", &h.chapter), ("name", &h.chapter_name)])) {
                    (h.heading) " " (h.heading_name)
                }
            }
            None => { (code) " " small.warn { "(" (lang.t("code.hs_unknown")) ")" } }
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
    /// The console of `config`, on `api`, issuing through `issuance`.
    pub fn new(api: Api, config: &ConsoleConfig, issuance: Arc<Issuance>) -> Arc<Self> {
        Arc::new(Console {
            api,
            issuance,
            officers: config.officers.clone(),
            clock: config.clock.clone(),
            public_url: config.public_url.clone(),
            trusted_proxies: config.trusted_proxies.clone(),
            cookie_problem: cookie_problem(config.listen, config.public_url.as_deref()),
            sessions: Mutex::default(),
            guard: Mutex::default(),
            lookups: Mutex::default(),
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
            .route("/console/sent", get(sent_list))
            .route("/console/sent/{id}", get(sent_document))
            .route("/console/documents/{id}", get(document_page))
            .route("/console/documents/{id}/print", get(print_page))
            .route(
                "/console/documents/{id}/attachments/{index}",
                get(attachment),
            )
            .route(
                "/console/certificates",
                get(list)
                    .post(create)
                    .layer(DefaultBodyLimit::max(MAX_CERTIFICATE_FORM_BYTES)),
            )
            .route("/console/certificates/new", get(new_page))
            .route("/console/hs", get(hs_page))
            .route(
                "/console/certificates/{id}",
                get(show)
                    .post(act)
                    .layer(DefaultBodyLimit::max(MAX_CERTIFICATE_FORM_BYTES)),
            )
            .route("/console/certificates/{id}/print", get(print::print_page))
            // Public: whoever holds a printed certificate; no login, no content.
            .route("/verify/{token}", get(print::verify))
            .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
            .layer(map_response(harden))
            .with_state(self.clone())
    }

    /// The login guard (a poisoned lock still holds consistent maps: each change is whole).
    fn guard(&self) -> MutexGuard<'_, LoginGuard> {
        self.guard.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The public lookups' guard (a poisoned lock still holds a consistent map).
    fn lookups(&self) -> MutexGuard<'_, LookupGuard> {
        self.lookups.lock().unwrap_or_else(|e| e.into_inner())
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

/// The client's address: the one the request came from, or, from a trusted proxy
/// (`console.trusted_proxies`), the nearest address in `X-Forwarded-For` that is not a trusted
/// proxy (each proxy appends the address it saw, so the entries to its left are the client's
/// word and not believed). Unspecified if the server put no address in the request.
fn client_ip(headers: &HeaderMap, extensions: &Extensions, trusted: &[IpAddr]) -> IpAddr {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in forwarded.iter().rev() {
        // A hop that is no address stops the walk: the last trusted proxy's address counts.
        match hop.parse::<IpAddr>() {
            Ok(ip) if trusted.contains(&client) => client = ip,
            _ => break,
        }
    }
    client
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
    let client = client_ip(&headers, &extensions, &c.trusted_proxies);
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
