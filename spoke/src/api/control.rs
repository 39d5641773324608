//! The local control API: how `caravan-spoke send`, `inbox`, `show` and `status` reach the
//! running spoke, which alone owns the store.
//!
//! HTTP/JSON over a Unix socket created with mode 0600 in the spoke's data folder: only the
//! spoke's own user (and root) can connect, and nothing is reachable from the network.
//!
//! | method | path                              | answer                                  |
//! |--------|-----------------------------------|-----------------------------------------|
//! | GET    | `/v1/health`                      | participant, hub connection             |
//! | POST   | `/v1/documents?to=&type=[&document_id=][&supersedes=]` | body: the document; [`SentView`] |
//! | GET    | `/v1/inbox[?since=][&limit=]`     | list of [`InboxItem`], oldest first, a page of at most [`INBOX_PAGE`] |
//! | GET    | `/v1/inbox/{id}[?sender=]`        | the full [`InboxRecord`]                |
//! | GET    | `/v1/inbox/{id}/payload[?sender=]`| the document bytes                      |
//! | GET    | `/v1/inbox/{id}/evidence[?sender=]` | an evidence bundle for offline verification |
//! | POST   | `/v1/inbox/{id}/answer`           | `{"decision", "reason"?, "wait"?}`: a business response |
//! | GET    | `/v1/sent/{id}/status`            | [`StatusView`]: state and history       |
//! | GET    | `/v1/trust-list`                  | the trust list held, and its freshness  |
//!
//! Errors are `{"error": {"code": "...", "message": "..."}}` with a fitting HTTP status.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Path as UrlPath, Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;

use caravan_common::{DocumentType, MessageId, ParticipantId, Refusal, Timestamp, trust::view};

use crate::{
    checks::Outcome,
    document::Problem,
    outbound::{Content, Outgoing, SendError, upload::UploadError},
    rt::blocking,
    store::{InboxRecord, ResponseBody, StoreError, Verification},
};

use super::{
    Api,
    views::{
        ApiError, ErrorBody, Health, InboxDetail, InboxItem, LogView, SentView, StatusView,
        TrustListView,
    },
};

/// An error answer: status, error, the problems of a refused document, extra headers.
struct Failure(
    StatusCode,
    ApiError,
    Vec<Problem>,
    Vec<(header::HeaderName, header::HeaderValue)>,
);

impl Failure {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self(
            status,
            ApiError {
                code: code.into(),
                message: message.into(),
            },
            Vec::new(),
            Vec::new(),
        )
    }
}

/// Seconds a caller answered 503 (store or hub unavailable) is asked to wait before it
/// tries again: a faulted store tries to recover at least every 5 s.
const RETRY_AFTER_SECS: &str = "10";

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut response = (
            self.0,
            Json(ErrorBody {
                error: self.1,
                problems: self.2,
            }),
        )
            .into_response();
        let headers = response.headers_mut();
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(
                header::RETRY_AFTER,
                header::HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        // A failure's own headers win (NO_ROOM_TO_SEND has its own Retry-After).
        for (name, value) in self.3 {
            headers.insert(name, value);
        }
        response
    }
}

impl From<UploadError> for Failure {
    fn from(e: UploadError) -> Self {
        let message = e.to_string();
        match e {
            UploadError::TooLarge(_) => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", message)
            }
            UploadError::Slow { .. } | UploadError::Idle(_) => {
                let mut failure = Self::new(StatusCode::REQUEST_TIMEOUT, "BODY_TIMEOUT", message);
                // The rest of the body is not read: the connection cannot carry another request.
                failure.3.push((
                    header::CONNECTION,
                    header::HeaderValue::from_static("close"),
                ));
                failure
            }
            UploadError::NoRoom { .. } => {
                let mut failure =
                    Self::new(StatusCode::SERVICE_UNAVAILABLE, "NO_ROOM_TO_SEND", message);
                failure.3.push((
                    header::RETRY_AFTER,
                    header::HeaderValue::from(crate::outbound::upload::RETRY_AFTER_SECS),
                ));
                failure
            }
            UploadError::Read(_) => bad_request(message),
        }
    }
}

impl From<Refusal> for Failure {
    fn from(r: Refusal) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, r.code.as_str(), r.detail)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(fault) => {
                // Logged once when the store faulted; the caller retries after a while.
                let code = match fault.kind {
                    caravan_common::recovery::FaultKind::DiskFull => "DISK_FULL",
                    caravan_common::recovery::FaultKind::Io
                    | caravan_common::recovery::FaultKind::Unreachable => "STORE_UNAVAILABLE",
                };
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    code,
                    format!(
                        "the spoke cannot store documents now: {fault}; it recovers by itself, retry later"
                    ),
                )
            }
            // Logged once by the store, not once per request.
            StoreError::PayloadCorrupt { document, .. } => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "STORE_CORRUPT",
                format!(
                    "the stored payload of {document} fails its checksum: it is not served; the spoke's operator restores the store from a backup (see its log and runbook)"
                ),
            ),
            StoreError::Corrupt { .. } => {
                tracing::error!(cause = %e, "store failure");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "STORE_CORRUPT",
                    "a record of the spoke's store does not decode; see its log",
                )
            }
            _ => {
                tracing::error!(cause = %e, "store failure");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "STORE_FAILURE",
                    "the spoke's store failed; see its log",
                )
            }
        }
    }
}

impl From<SendError> for Failure {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Refused(r) => r.into(),
            SendError::Store(e) => e.into(),
            SendError::Invalid(problems) => {
                let message = problems
                    .iter()
                    .map(|p| p.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                let mut failure = Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "INVALID_DOCUMENT",
                    message,
                );
                failure.2 = problems;
                failure
            }
            SendError::Inconsistent(checks) => {
                // Each failing line, its text in English; the NSW has the stable rules.
                let english = crate::i18n::Lang::default();
                let problems: Vec<Problem> = checks
                    .iter()
                    .filter(|c| c.outcome == Outcome::Fail)
                    .map(|c| Problem {
                        field: format!("content_check.{}", c.check.as_str()),
                        rule: c.rule.clone(),
                        message: english.message(&c.message_key, &c.params),
                    })
                    .collect();
                let reasons: Vec<String> = problems
                    .iter()
                    .map(|p| format!("{} ({})", p.message, p.rule))
                    .collect();
                let mut failure = Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "CONTENT_CHECK_FAILED",
                    format!(
                        "what the document says fails its content checks, nothing was queued: {}",
                        reasons.join(" ")
                    ),
                );
                failure.2 = problems;
                failure
            }
        }
    }
}

/// Errors the framework answers before a handler runs (a query that does not parse, a path
/// that is no route, a method the route does not take, a body over the limit) come as plain
/// text: they are rewritten in the API's one error shape, `{"error": {"code", "message"}}`,
/// with the code named after the status (`BAD_REQUEST`, `NOT_FOUND`, `METHOD_NOT_ALLOWED`,
/// `PAYLOAD_TOO_LARGE`, ...) and the framework's sentence as the message. Headers (`Allow`,
/// `Retry-After`) are kept.
pub(super) async fn json_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let reason = status.canonical_reason().unwrap_or("Error");
    // The framework's sentences are short; anything longer is cut, never buffered whole.
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let failure = Failure::new(
        status,
        &reason.to_uppercase().replace([' ', '-'], "_"),
        if text.is_empty() {
            reason.to_owned()
        } else {
            text
        },
    );
    let mut answer = failure.into_response();
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in parts.headers.drain().filter_map(|(n, v)| Some((n?, v))) {
        answer.headers_mut().entry(name).or_insert(value);
    }
    answer
}

fn bad_request(message: impl Into<String>) -> Failure {
    Failure::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
}

/// The routes, over the running spoke.
pub fn router(api: Api, max_payload_bytes: usize) -> Router {
    Router::new()
        .nest("/v1", routes(max_payload_bytes))
        .layer(axum::middleware::from_fn(json_errors))
        .with_state(api)
}

/// The operations, shared by the control API (`/v1`) and the NSW API (`/api/v1`).
pub fn routes(max_payload_bytes: usize) -> Router<Api> {
    Router::new()
        .route("/health", get(health))
        .route("/documents", post(send))
        .route("/documents/{id}", get(status))
        .route("/inbox", get(inbox))
        .route("/inbox/{id}", get(inbox_entry))
        .route("/inbox/{id}/payload", get(payload))
        .route("/inbox/{id}/answer", post(answer))
        .route("/inbox/{id}/evidence", get(evidence))
        .route("/sent/{id}/status", get(status))
        .route("/trust-list", get(trust_list))
        .route("/log", get(exchange_log))
        // Room for the largest document; a larger body gets 413 before it is read in full.
        .layer(DefaultBodyLimit::max(max_payload_bytes.saturating_add(1)))
}

async fn health(State(api): State<Api>) -> Json<Health> {
    Json(Health {
        participant: api.me.to_string(),
        hub_connected: api.hub.connected(),
    })
}

/// The trust list the spoke holds, or 503 while the hub has not yet been reached.
fn held_trust(api: &Api) -> Result<Arc<crate::hub::trust::Held>, Failure> {
    api.hub.trust().current().ok_or_else(|| {
        Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "NO_TRUST_LIST",
            "no trust list yet: the hub has not been reached",
        )
    })
}

async fn exchange_log(State(api): State<Api>) -> Result<Json<LogView>, Failure> {
    let store = api.store.clone();
    let (alarms, alarms_total) = blocking(move || store.log_alarms()).await?;
    let head = api.hub.log().last();
    Ok(Json(LogView::new(head.as_ref(), &alarms, alarms_total)))
}

async fn trust_list(State(api): State<Api>) -> Result<Json<TrustListView>, Failure> {
    let held = held_trust(&api)?;
    Ok(Json(view::view(&held.set, Timestamp::now())))
}

#[derive(Deserialize)]
struct SendQuery {
    to: String,
    #[serde(rename = "type")]
    document_type: String,
    document_id: Option<String>,
    supersedes: Option<String>,
    /// A received document this one answers.
    in_reply_to: Option<String>,
    /// Seconds to wait for the hub's receipt (or refusal); absent: answer once queued.
    wait: Option<u64>,
}

async fn send(
    State(api): State<Api>,
    Query(q): Query<SendQuery>,
    request: axum::extract::Request,
) -> Result<Response, Failure> {
    let max = api.outbound.max_payload_bytes();
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(UploadError::TooLarge(max).into());
    }
    // Room among the documents being taken in at the same moment, as the bytes arrive.
    let (body, room) = api.outbound.take_in(request.into_body()).await?;
    let to: ParticipantId = q.to.parse().map_err(|e| bad_request(format!("to: {e}")))?;
    let document_type: DocumentType = q
        .document_type
        .parse()
        .map_err(|e| bad_request(format!("type: {e}")))?;
    let outgoing = Outgoing {
        message_id: None,
        to,
        document_type,
        document_id: q.document_id.filter(|d| !d.is_empty()),
        supersedes: message_id_param("supersedes", q.supersedes.as_deref())?,
        in_reply_to: message_id_param("in_reply_to", q.in_reply_to.as_deref())?,
        content: Content::Document(body),
        room: Some(room),
    };
    queue(&api, outgoing, q.wait).await
}

fn message_id_param(name: &str, value: Option<&str>) -> Result<Option<MessageId>, Failure> {
    match value {
        None | Some("") => Ok(None),
        Some(id) => id
            .parse()
            .map(Some)
            .map_err(|e| bad_request(format!("{name}: {e}"))),
    }
}

/// Queue `outgoing`, waiting up to `wait` seconds for the hub's answer.
async fn queue(api: &Api, outgoing: Outgoing, wait: Option<u64>) -> Result<Response, Failure> {
    let wait = wait.map(|s| std::time::Duration::from_secs(s.min(600)));
    let sent = SentView::from(api.outbound.send(outgoing, wait).await?);
    // 202: queued, the hub has not answered (yet); 200: accepted, with its receipt.
    let status = if sent.receipt.is_some() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(sent)).into_response())
}

#[derive(Deserialize)]
struct AnswerRequest {
    #[serde(flatten)]
    body: ResponseBody,
    wait: Option<u64>,
}

/// An evidence bundle for a received document: verifiable offline with the anchor key.
async fn evidence(
    State(api): State<Api>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<SenderQuery>,
) -> Result<Json<crate::evidence::Bundle>, Failure> {
    let record = find(&api, &id, q.sender.as_deref()).await?;
    let store = api.store.clone();
    let (sender, message_id) = (record.sender, record.message_id);
    let payload = blocking(move || store.payload(sender, message_id))
        .await?
        .ok_or_else(|| StoreError::corrupt("payload", format!("the payload of {id} is missing")))?;
    let held = held_trust(&api)?;
    let bundle = crate::evidence::bundle(&record.evidence, &payload, &held.signed)
        .map_err(|e| StoreError::corrupt("evidence", format!("evidence of {id}: {e}")))?;
    Ok(Json(bundle))
}

/// Answer a received document with a decision, sent back to its sender, linked to it.
async fn answer(
    State(api): State<Api>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Result<Response, Failure> {
    // Parsed here rather than by `Json`, so that callers need not send a content type.
    let request: AnswerRequest = serde_json::from_slice(&body).map_err(|e| {
        bad_request(format!(
            "the answer must be {{\"decision\": \"accepted\"|\"rejected\", \"reason\"?: text}}: {e}"
        ))
    })?;
    let original = find(&api, &id, None).await?;
    let document_type = original.document_type.ok_or_else(|| {
        Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_DOCUMENT",
            "the document failed verification; there is nothing to answer",
        )
    })?;
    let outgoing = Outgoing {
        message_id: None,
        to: original.sender,
        document_type,
        document_id: None,
        supersedes: None,
        in_reply_to: Some(original.message_id),
        content: Content::Response(request.body),
        room: None,
    };
    queue(&api, outgoing, request.wait).await
}

#[derive(Deserialize)]
struct InboxQuery {
    /// Only documents that arrived after this cursor (from an earlier listing).
    since: Option<u64>,
    /// At most this many (default and most [`INBOX_PAGE`]): a caller pages on with `since`
    /// set to the last cursor it got.
    limit: Option<usize>,
}

/// The most documents one inbox listing returns: an inbox of tens of thousands is read a page
/// at a time, never loaded whole.
pub const INBOX_PAGE: usize = 1000;

async fn inbox(
    State(api): State<Api>,
    Query(q): Query<InboxQuery>,
) -> Result<Json<Vec<InboxItem>>, Failure> {
    let store = api.store.clone();
    let (since, limit) = (q.since, q.limit.unwrap_or(INBOX_PAGE).clamp(1, INBOX_PAGE));
    let records = blocking(move || store.inbox_since(since, limit)).await?;
    Ok(Json(
        records
            .iter()
            .map(|(cursor, r)| InboxItem {
                cursor: *cursor,
                ..InboxItem::from(r)
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
struct SenderQuery {
    sender: Option<String>,
}

async fn find(api: &Api, id: &str, sender: Option<&str>) -> Result<InboxRecord, Failure> {
    let id: MessageId = id.parse().map_err(|e| bad_request(format!("{e}")))?;
    let sender: Option<ParticipantId> = sender
        .map(|s| s.parse().map_err(|e| bad_request(format!("sender: {e}"))))
        .transpose()?;
    let store = api.store.clone();
    let mut found = blocking(move || store.inbox_find(id)).await?;
    found.retain(|r| sender.is_none_or(|s| r.sender == s));
    match found.len() {
        0 => Err(Failure::new(
            StatusCode::NOT_FOUND,
            "UNKNOWN_MESSAGE",
            format!("no message {id} in the inbox"),
        )),
        1 => Ok(found.remove(0)),
        _ => Err(Failure::new(
            StatusCode::CONFLICT,
            "AMBIGUOUS_MESSAGE",
            format!("{id} came from several senders; name one"),
        )),
    }
}

async fn inbox_entry(
    State(api): State<Api>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<SenderQuery>,
) -> Result<Json<InboxDetail>, Failure> {
    let record = find(&api, &id, q.sender.as_deref()).await?;
    let verified = matches!(record.verification, Verification::Verified { .. });
    let fields = match (verified, record.content_type.as_deref()) {
        (true, Some(crate::document::XML | crate::document::JSON)) => {
            let store = api.store.clone();
            let (sender, message_id) = (record.sender, record.message_id);
            let payload = blocking(move || store.payload(sender, message_id))
                .await?
                .unwrap_or_default();
            crate::document::recognise(&payload)
                .and_then(|r| crate::document::fields(&payload, r.format))
                .unwrap_or_default()
        }
        _ => Vec::new(),
    };
    Ok(Json(InboxDetail::new(&record, fields)))
}

async fn payload(
    State(api): State<Api>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<SenderQuery>,
) -> Result<Response, Failure> {
    let record = find(&api, &id, q.sender.as_deref()).await?;
    let store = api.store.clone();
    let bytes = blocking(move || store.payload(record.sender, record.message_id))
        .await?
        .ok_or_else(|| StoreError::corrupt("payload", format!("the payload of {id} is missing")))?;
    // The content type is the sender's claim; it is served as data, never rendered here.
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

async fn status(
    State(api): State<Api>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<StatusView>, Failure> {
    let message_id: MessageId = id.parse().map_err(|e| bad_request(format!("{e}")))?;
    let store = api.store.clone();
    let sent = blocking(move || store.sent_entry(message_id))
        .await?
        .ok_or_else(|| {
            Failure::new(
                StatusCode::NOT_FOUND,
                "UNKNOWN_MESSAGE",
                format!("this spoke sent no message {message_id}"),
            )
        })?;
    Ok(Json(StatusView::from(&sent)))
}
