//! The officers' web console: a received certificate, what it says, and whether it is genuine,
//! current and unaltered, in plain words.
//!
//! Served by the spoke under `/console`, as plain server-rendered HTML with inline styles (no
//! script, nothing loaded from the internet), usable on a laptop or a tablet at a border post.
//! Officers log in with accounts from the config (passwords hashed with argon2); a session is
//! a random cookie (`HttpOnly`, `SameSite=Strict`, `Secure`); every form that changes something
//! carries a per-session CSRF token; an account is locked for a while after repeated failures.
//! Each verification check says why it passed or failed; a failure is never a generic error.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
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

use caravan_common::{MessageId, Timestamp, html::escape as esc, trust::KeyStatus};

use crate::{
    config::Officer,
    document,
    rt::blocking,
    store::{InboxRecord, Verification},
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
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<String, Failures>>,
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn set_cookie(name: &str, value: &str, max_age: Duration) -> String {
    format!(
        "{name}={value}; Path=/console; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
        max_age.as_secs()
    )
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

fn page(title: &str, user: Option<(&str, &str)>, body: &str) -> Html<String> {
    let bar = match user {
        Some((name, csrf)) => format!(
            "<span>{}</span><form method=post action=/console/logout><input type=hidden name=csrf value=\"{}\"><button>Log out</button></form>",
            esc(name),
            esc(csrf)
        ),
        None => String::new(),
    };
    Html(format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width,initial-scale=1\">\
<title>{} · Caravan</title><style>{STYLE}</style></head><body><header><a href=/console><b>Caravan</b> officer console</a>{bar}</header><main>{body}</main></body></html>",
        esc(title)
    ))
}

/// The console's routes.
pub fn router(api: Api, officers: Vec<Officer>) -> Router {
    let console = Arc::new(Console {
        api,
        officers,
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
    /// The session of a request: (user, csrf token).
    fn session(&self, headers: &HeaderMap) -> Option<(String, String)> {
        let id = cookie(headers, SESSION_COOKIE)?;
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, s| s.expires > Instant::now());
        sessions.get(&id).map(|s| (s.user.clone(), s.csrf.clone()))
    }

    /// Check a login, counting failures and locking accounts; returns an error for the page.
    fn check_login(&self, user: &str, password: &str) -> Result<(), &'static str> {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let entry = failures.entry(user.to_owned()).or_default();
        if entry.locked_until.is_some_and(|t| t > Instant::now()) {
            return Err("This account is locked after repeated failed logins. Try again later.");
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
            *entry = Failures::default();
            return Ok(());
        }
        entry.count += 1;
        if entry.count >= MAX_FAILURES {
            entry.locked_until = Some(Instant::now() + LOCKOUT);
            entry.count = 0;
            warn!(user, "officer account locked after repeated failed logins");
        }
        Err("Wrong user name or password.")
    }
}

/// A valid argon2 hash of a random string, used when the user name is unknown.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$B4DDLhfCdLX/5QVxY9qqq5yG7tSAo2GqOqqMq+ISOUk";

async fn login_form() -> Response {
    let token = random_token();
    let body = format!(
        "<div class=panel><h1>Log in</h1><form method=post action=/console/login>\
<input type=hidden name=csrf value=\"{token}\"><p><label>User <input name=user autocomplete=username required></label></p>\
<p><label>Password <input name=password type=password autocomplete=current-password required></label></p><button>Log in</button></form></div>"
    );
    (
        [(
            header::SET_COOKIE,
            set_cookie(LOGIN_COOKIE, &token, Duration::from_secs(900)),
        )],
        page("Log in", None, &body),
    )
        .into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    user: String,
    password: String,
    csrf: String,
}

async fn login(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    // Double-submit: the form's token must be the one this browser was given with the form.
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !bool::from(expected.as_bytes().ct_eq(form.csrf.as_bytes())) {
        return (
            StatusCode::FORBIDDEN,
            page(
                "Log in",
                None,
                "<p class=fail>The login form expired. <a href=/console/login>Try again</a>.</p>",
            ),
        )
            .into_response();
    }
    if let Err(message) = c.check_login(&form.user, &form.password) {
        warn!(user = form.user, "failed officer login");
        let body = format!(
            "<p class=fail>{}</p><p><a href=/console/login>Try again</a></p>",
            esc(message)
        );
        return (StatusCode::UNAUTHORIZED, page("Log in", None, &body)).into_response();
    }
    let id = random_token();
    let session = Session {
        user: form.user.clone(),
        csrf: random_token(),
        expires: Instant::now() + SESSION_LIFE,
    };
    c.sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id.clone(), session);
    info!(user = form.user, "officer logged in");
    (
        [(
            header::SET_COOKIE,
            set_cookie(SESSION_COOKIE, &id, SESSION_LIFE),
        )],
        Redirect::to("/console"),
    )
        .into_response()
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
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        c.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }
    info!(user, "officer logged out");
    (
        [(
            header::SET_COOKIE,
            set_cookie(SESSION_COOKIE, "", Duration::ZERO),
        )],
        Redirect::to("/console/login"),
    )
        .into_response()
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

fn verdict_cell(v: &Verification) -> String {
    match v {
        Verification::Verified { notes } if notes.is_empty() => {
            "<span class=ok>✔ verified</span>".into()
        }
        Verification::Verified { notes } => {
            let codes: Vec<String> = notes.iter().map(|n| esc(&n.code)).collect();
            format!(
                "<span class=ok>✔ verified</span> <span class=warn>({})</span>",
                codes.join(", ")
            )
        }
        Verification::Rejected { code, .. } => format!(
            "<span class=fail>✘ NOT GENUINE: {}</span>",
            esc(code.as_str())
        ),
    }
}

async fn inbox(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(f): Query<Filters>,
) -> Response {
    let Some((user, csrf)) = c.session(&headers) else {
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
            return (StatusCode::INTERNAL_SERVER_ERROR, format!("store: {e}")).into_response();
        }
    };
    let mut rows = String::new();
    // Newest first, which is what an officer at a border post looks for; a page at a time.
    for (_, r) in &records {
        rows.push_str(&format!(
            "<tr><td><a href=\"/console/documents/{id}\">{num}</a></td><td>{ty}</td><td>{from}</td><td>{when}</td><td>{verdict}</td></tr>",
            id = r.message_id,
            num = esc(r.document_id.as_deref().unwrap_or("(unreadable)")),
            ty = esc(r.document_type.map(|t| t.as_str()).unwrap_or("?")),
            from = esc(r.sender.as_str()),
            when = esc(&r.received_at.to_string().chars().take(16).collect::<String>().replace('T', " ")),
            verdict = verdict_cell(&r.verification),
        ));
    }
    if rows.is_empty() {
        rows = "<tr><td colspan=5>No document matches.</td></tr>".into();
    }
    let older = match older {
        Some(before) => format!(
            "<p><a href=\"/console?{}\">Older documents &rarr;</a></p>",
            esc(&serde_urlencoded::to_string(Filters {
                before: Some(before),
                ..f.clone()
            })
            .unwrap_or_default())
        ),
        None => String::new(),
    };
    let select = |name: &str, current: &str, options: &[(&str, &str)]| {
        let opts: String = options
            .iter()
            .map(|(v, label)| {
                format!(
                    "<option value=\"{v}\"{}>{label}</option>",
                    if *v == current { " selected" } else { "" }
                )
            })
            .collect();
        format!("<select name={name}>{opts}</select>")
    };
    let body = format!(
        "<h1>Received documents</h1><form class=filters method=get action=/console>\
<input name=q placeholder=\"Number, party or country\" value=\"{q}\">{types}\
<input name=country placeholder=\"From (e.g. KZ)\" size=8 value=\"{country}\">{status}\
<label>From <input type=date name=from value=\"{from}\"></label><label>to <input type=date name=to value=\"{to}\"></label><button>Filter</button></form>\
<p>Documents in the inbox: {total}{shown}.</p>\
<table><thead><tr><th>Number</th><th>Type</th><th>From</th><th>Received (UTC)</th><th>Verification</th></tr></thead><tbody>{rows}</tbody></table>{older}",
        shown = if f.before.is_some() {
            "; older ones"
        } else {
            ""
        },
        q = esc(&f.q),
        types = select(
            "type",
            &f.document_type,
            &[
                ("", "Any type"),
                ("e-co", "Certificate of origin"),
                ("e-phyto", "Phytosanitary"),
                ("e-invoice", "Invoice")
            ]
        ),
        country = esc(&f.country),
        status = select(
            "status",
            &f.status,
            &[
                ("", "Any result"),
                ("verified", "Verified"),
                ("rejected", "Not genuine")
            ]
        ),
        from = esc(&f.from),
        to = esc(&f.to),
    );
    page("Received documents", Some((&user, &csrf)), &body).into_response()
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

fn fields_table(r: &InboxRecord, payload: &[u8]) -> String {
    let verified = matches!(r.verification, Verification::Verified { .. });
    if !verified || r.content_type.as_deref() != Some("application/xml") {
        return "<p class=warn>The document's content is not shown: it did not verify, or it is not a trade document.</p>".into();
    }
    let fields = document::recognise(payload)
        .and_then(|d| document::fields(payload, d.format))
        .unwrap_or_default();
    let rows: String = fields
        .iter()
        .map(|f| {
            let lang = f
                .language
                .as_deref()
                .map(|l| format!(" <small>[{}]</small>", esc(l)))
                .unwrap_or_default();
            format!(
                "<tr><th>{}</th><td>{}{lang}</td></tr>",
                esc(&f.label),
                esc(&f.value)
            )
        })
        .collect();
    format!("<table>{rows}</table>")
}

fn check_rows(lines: &[CheckLine]) -> String {
    lines
        .iter()
        .map(|l| {
            let mark = match l.ok {
                Some(true) => "<span class=ok>✔ PASS</span>",
                Some(false) => "<span class=fail>✘ FAIL</span>",
                None => "<span class=warn>ℹ</span>",
            };
            format!(
                "<tr><td>{mark}</td><th>{}</th><td>{}</td></tr>",
                l.name,
                esc(&l.detail)
            )
        })
        .collect()
}

async fn document_page(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let Some((user, csrf)) = c.session(&headers) else {
        return Redirect::to("/console/login").into_response();
    };
    let (r, all, payload) = match load(&c, &id).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    let lines = checks(&c, &r, &all);
    let genuine = lines.iter().all(|l| l.ok != Some(false));
    let banner = if genuine {
        "<p class=ok>✔ Genuine, current and unaltered.</p>".to_owned()
    } else {
        "<p class=fail>✘ A CHECK FAILED: read the panel below before relying on this document.</p>"
            .to_owned()
    };
    let xml = String::from_utf8_lossy(&payload);
    let shown: String = xml.chars().take(200_000).collect();
    let body = format!(
        "<h1>{num}</h1><p>{ty} from <b>{from}</b>, received {when} · <a href=\"/console/documents/{id}/print\">Printable view</a></p>{banner}\
<div class=panel><h2>Verification</h2><table>{checks}</table></div>\
<div class=panel><h2>What the document says</h2>{fields}</div>\
<div class=panel><h2>Document as received (XML)</h2><pre>{xml}</pre></div>",
        num = esc(r.document_id.as_deref().unwrap_or("(unreadable)")),
        ty = esc(r.document_type.map(|t| t.as_str()).unwrap_or("?")),
        from = esc(r.sender.as_str()),
        when = esc(&r.received_at.to_string()),
        id = r.message_id,
        checks = check_rows(&lines),
        fields = fields_table(&r, &payload),
        xml = esc(&shown),
    );
    page(
        r.document_id.as_deref().unwrap_or("Document"),
        Some((&user, &csrf)),
        &body,
    )
    .into_response()
}

async fn print_page(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let Some((user, csrf)) = c.session(&headers) else {
        return Redirect::to("/console/login").into_response();
    };
    let (r, all, payload) = match load(&c, &id).await {
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
    let lines = checks(&c, &r, &all);
    let body = format!(
        "<h1>{num}</h1><p>{ty} from {from} · received {when}</p><div style=\"float:right\">{qr}<br><small>{url}</small></div>\
<table>{checks}</table><h2>What the document says</h2>{fields}",
        num = esc(r.document_id.as_deref().unwrap_or("(unreadable)")),
        ty = esc(r.document_type.map(|t| t.as_str()).unwrap_or("?")),
        from = esc(r.sender.as_str()),
        when = esc(&r.received_at.to_string()),
        url = esc(&url),
        checks = check_rows(&lines),
        fields = fields_table(&r, &payload),
    );
    page("Printable view", Some((&user, &csrf)), &body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify_and_html_is_escaped() {
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
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
