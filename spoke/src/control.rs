//! The local control API: how `caravan-spoke send`, `inbox`, `show` and `status` reach the
//! running spoke, which alone owns the store.
//!
//! HTTP/JSON over a Unix socket created with mode 0600 in the spoke's data folder: only the
//! spoke's own user (and root) can connect, and nothing is reachable from the network.
//!
//! | method | path                              | answer                                  |
//! |--------|-----------------------------------|-----------------------------------------|
//! | GET    | `/v1/health`                      | participant, hub connection             |
//! | POST   | `/v1/documents?to=&type=[&document_id=][&supersedes=]` | body: the document; [`crate::spoke::Sent`] |
//! | GET    | `/v1/inbox[?since=][&limit=]`     | list of [`InboxItem`], oldest first, a page of at most [`INBOX_PAGE`] |
//! | GET    | `/v1/inbox/{id}[?sender=]`        | the full [`InboxRecord`]                |
//! | GET    | `/v1/inbox/{id}/payload[?sender=]`| the document bytes                      |
//! | GET    | `/v1/inbox/{id}/evidence[?sender=]` | an evidence bundle for offline verification |
//! | POST   | `/v1/inbox/{id}/answer`           | `{"decision", "reason"?, "wait"?}`: a business response |
//! | GET    | `/v1/sent/{id}/status`            | [`StatusView`]: state and history       |
//! | GET    | `/v1/trust-list`                  | the trust list held, and its freshness  |
//!
//! Errors are `{"error": {"code": "...", "message": "..."}}` with a fitting HTTP status.

use std::{path::Path, sync::Arc};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Path as UrlPath, Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};

use caravan_common::{DocumentType, MessageId, ParticipantId, Refusal, Timestamp, trust::view};

use crate::{
    document::Problem,
    spoke::{Content, Outgoing, SendError, Spoke, blocking},
    store::{
        AckRecord, InboxRecord, ResponseBody, SentRecord, SentState, StateChange, StoreError,
        Verification,
    },
    upload::UploadError,
};

/// An error answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

#[derive(Serialize, Deserialize)]
struct ErrorBody {
    error: ApiError,
    /// For a refused document: each problem, with the field and rule it breaks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    problems: Vec<Problem>,
}

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
                    header::HeaderValue::from(crate::upload::RETRY_AFTER_SECS),
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
                    caravan_common::recovery::FaultKind::Io => "STORE_UNAVAILABLE",
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
            SendError::HubUnavailable(m) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "HUB_UNAVAILABLE", m)
            }
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
        }
    }
}

fn bad_request(message: impl Into<String>) -> Failure {
    Failure::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
}

/// The routes, over the running spoke.
pub fn router(spoke: Arc<Spoke>, max_payload_bytes: usize) -> Router {
    Router::new()
        .nest("/v1", routes(max_payload_bytes))
        .with_state(spoke)
}

/// The operations, shared by the control API (`/v1`) and the NSW API (`/api/v1`).
pub fn routes(max_payload_bytes: usize) -> Router<Arc<Spoke>> {
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

#[derive(Serialize, Deserialize)]
pub struct Health {
    pub participant: String,
    pub hub_connected: bool,
}

async fn health(State(spoke): State<Arc<Spoke>>) -> Json<Health> {
    Json(Health {
        participant: spoke.me.to_string(),
        hub_connected: spoke.hub_connected(),
    })
}

/// The trust list the spoke holds, or 503 while the hub has not yet been reached.
fn held_trust(spoke: &Spoke) -> Result<Arc<crate::trust::Held>, Failure> {
    spoke.trust().current().ok_or_else(|| {
        Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "NO_TRUST_LIST",
            "no trust list yet: the hub has not been reached",
        )
    })
}

/// What this spoke verified of the hub's exchange log, and every alarm kept.
#[derive(Serialize)]
struct LogView {
    last_verified_head: Option<crate::store::LogHeadRecord>,
    alarms_total: u64,
    alarms: Vec<crate::store::LogAlarm>,
}

async fn exchange_log(State(spoke): State<Arc<Spoke>>) -> Result<Json<LogView>, Failure> {
    let store = spoke.store.clone();
    let (alarms, alarms_total) = blocking(move || store.log_alarms()).await?;
    Ok(Json(LogView {
        last_verified_head: spoke.log.last(),
        alarms_total,
        alarms,
    }))
}

async fn trust_list(State(spoke): State<Arc<Spoke>>) -> Result<Json<view::TrustListView>, Failure> {
    let held = held_trust(&spoke)?;
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
    State(spoke): State<Arc<Spoke>>,
    Query(q): Query<SendQuery>,
    request: axum::extract::Request,
) -> Result<Response, Failure> {
    let max = spoke.max_payload_bytes();
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(UploadError::TooLarge(max).into());
    }
    // Room among the documents being taken in at the same moment, as the bytes arrive.
    let (body, room) = spoke.take_in(request.into_body()).await?;
    let to: ParticipantId = q.to.parse().map_err(|e| bad_request(format!("to: {e}")))?;
    let document_type: DocumentType = q
        .document_type
        .parse()
        .map_err(|e| bad_request(format!("type: {e}")))?;
    let outgoing = Outgoing {
        to,
        document_type,
        document_id: q.document_id.filter(|d| !d.is_empty()),
        supersedes: message_id_param("supersedes", q.supersedes.as_deref())?,
        in_reply_to: message_id_param("in_reply_to", q.in_reply_to.as_deref())?,
        content: Content::Document(body),
        room: Some(room),
    };
    queue(&spoke, outgoing, q.wait).await
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
async fn queue(spoke: &Spoke, outgoing: Outgoing, wait: Option<u64>) -> Result<Response, Failure> {
    let wait = wait.map(|s| std::time::Duration::from_secs(s.min(600)));
    let sent = spoke.send(outgoing, wait).await?;
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
    State(spoke): State<Arc<Spoke>>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<SenderQuery>,
) -> Result<Json<crate::evidence::Bundle>, Failure> {
    let record = find(&spoke, &id, q.sender.as_deref()).await?;
    let store = spoke.store.clone();
    let (sender, message_id) = (record.sender, record.message_id);
    let payload = blocking(move || store.payload(sender, message_id))
        .await?
        .ok_or_else(|| StoreError::corrupt("payload", format!("the payload of {id} is missing")))?;
    let held = held_trust(&spoke)?;
    let e = &record.evidence;
    let bundle = crate::evidence::bundle(
        &e.header,
        &e.signature,
        &e.signature_key_id,
        &payload,
        &e.receipt,
        e.ack.as_deref(),
        &held.signed,
    )
    .map_err(|e| StoreError::corrupt("evidence", format!("evidence of {id}: {e}")))?;
    Ok(Json(bundle))
}

/// Answer a received document with a decision, sent back to its sender, linked to it.
async fn answer(
    State(spoke): State<Arc<Spoke>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Result<Response, Failure> {
    // Parsed here rather than by `Json`, so that callers need not send a content type.
    let request: AnswerRequest = serde_json::from_slice(&body).map_err(|e| {
        bad_request(format!(
            "the answer must be {{\"decision\": \"accepted\"|\"rejected\", \"reason\"?: text}}: {e}"
        ))
    })?;
    let original = find(&spoke, &id, None).await?;
    let document_type = original.document_type.ok_or_else(|| {
        Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_DOCUMENT",
            "the document failed verification; there is nothing to answer",
        )
    })?;
    let outgoing = Outgoing {
        to: original.sender,
        document_type,
        document_id: None,
        supersedes: None,
        in_reply_to: Some(original.message_id),
        content: Content::Response(request.body),
        room: None,
    };
    queue(&spoke, outgoing, request.wait).await
}

/// One line of the inbox listing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboxItem {
    /// Arrival order: list again with `since` set to the last cursor seen.
    pub cursor: u64,
    pub message_id: String,
    pub sender: String,
    pub document_type: Option<String>,
    pub document_id: Option<String>,
    pub verified: bool,
    pub verification: Verification,
    pub received_at: Timestamp,
    pub accepted_at: Option<Timestamp>,
    pub payload_length: u64,
    pub supersedes: Option<String>,
    pub in_reply_to: Option<String>,
    pub response: Option<ResponseBody>,
    pub summary: Option<crate::document::Summary>,
}

impl From<&InboxRecord> for InboxItem {
    fn from(r: &InboxRecord) -> Self {
        Self {
            cursor: 0,
            message_id: r.message_id.to_string(),
            sender: r.sender.to_string(),
            document_type: r.document_type.map(|t| t.to_string()),
            document_id: r.document_id.clone(),
            verified: matches!(r.verification, Verification::Verified { .. }),
            verification: r.verification.clone(),
            received_at: r.received_at,
            accepted_at: r.accepted_at,
            payload_length: r.payload_length,
            supersedes: r.supersedes.map(|s| s.to_string()),
            in_reply_to: r.in_reply_to.map(|s| s.to_string()),
            response: r.response.clone(),
            summary: r.summary.clone(),
        }
    }
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
    State(spoke): State<Arc<Spoke>>,
    Query(q): Query<InboxQuery>,
) -> Result<Json<Vec<InboxItem>>, Failure> {
    let store = spoke.store.clone();
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

async fn find(spoke: &Spoke, id: &str, sender: Option<&str>) -> Result<InboxRecord, Failure> {
    let id: MessageId = id.parse().map_err(|e| bad_request(format!("{e}")))?;
    let sender: Option<ParticipantId> = sender
        .map(|s| s.parse().map_err(|e| bad_request(format!("sender: {e}"))))
        .transpose()?;
    let store = spoke.store.clone();
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

/// A received document: its record, and the fields an officer checks.
#[derive(Debug, Serialize)]
pub struct InboxDetail {
    #[serde(flatten)]
    pub record: InboxRecord,
    /// Read from the document only when it verified: what is not genuine is not interpreted.
    pub fields: Vec<crate::document::Field>,
}

async fn inbox_entry(
    State(spoke): State<Arc<Spoke>>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<SenderQuery>,
) -> Result<Json<InboxDetail>, Failure> {
    let record = find(&spoke, &id, q.sender.as_deref()).await?;
    let verified = matches!(record.verification, Verification::Verified { .. });
    let fields = match (verified, record.content_type.as_deref()) {
        (true, Some("application/xml")) => {
            let store = spoke.store.clone();
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
    Ok(Json(InboxDetail { record, fields }))
}

async fn payload(
    State(spoke): State<Arc<Spoke>>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<SenderQuery>,
) -> Result<Response, Failure> {
    let record = find(&spoke, &id, q.sender.as_deref()).await?;
    let store = spoke.store.clone();
    let bytes = blocking(move || store.payload(record.sender, record.message_id))
        .await?
        .ok_or_else(|| StoreError::corrupt("payload", format!("the payload of {id} is missing")))?;
    // The content type is the sender's claim; it is served as data, never rendered here.
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

/// The state of a sent message and its history, as this spoke followed it from the hub, with
/// the recipient's acknowledgement checked here.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusView {
    pub message_id: String,
    /// `QUEUED`, `REFUSED`, `ACCEPTED`, `DELIVERED`, `ACKNOWLEDGED`, `REJECTED` or `EXPIRED`.
    pub state: SentState,
    pub transitions: Vec<StateChange>,
    pub acknowledgement: Option<AckRecord>,
    /// Business responses from the recipient, linked to this document.
    pub responses: Vec<crate::store::AnswerRecord>,
    pub sent: SentRecord,
}

async fn status(
    State(spoke): State<Arc<Spoke>>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<StatusView>, Failure> {
    let message_id: MessageId = id.parse().map_err(|e| bad_request(format!("{e}")))?;
    let store = spoke.store.clone();
    let sent = blocking(move || store.sent_entry(message_id))
        .await?
        .ok_or_else(|| {
            Failure::new(
                StatusCode::NOT_FOUND,
                "UNKNOWN_MESSAGE",
                format!("this spoke sent no message {message_id}"),
            )
        })?;
    let mut transitions = vec![StateChange {
        state: SentState::Queued,
        at: sent.queued_at,
    }];
    transitions.extend(sent.transitions.iter().cloned());
    if sent.state == SentState::Refused {
        transitions.push(StateChange {
            state: SentState::Refused,
            at: sent.queued_at,
        });
    }
    Ok(Json(StatusView {
        message_id: message_id.to_string(),
        state: sent.state,
        transitions,
        acknowledgement: sent.acknowledgement.clone(),
        responses: sent.responses.clone(),
        sent,
    }))
}

// === client ===

/// One HTTP/1.1 request over `io` (a Unix or TCP stream); returns the status and body.
pub async fn exchange<S>(
    io: S,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<(StatusCode, Bytes), ClientError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (status, _, body) = exchange_full(io, method, path_and_query, headers, body).await?;
    Ok((status, body))
}

/// [`exchange`], also returning the response headers (name, value).
pub async fn exchange_full<S>(
    io: S,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<(StatusCode, Vec<(String, String)>, Bytes), ClientError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let protocol = |e: &dyn std::fmt::Display| ClientError::Protocol(e.to_string());
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| ClientError::NotRunning {
            socket: String::new(),
            cause: e.to_string(),
        })?;
    tokio::spawn(connection);
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path_and_query)
        .header(header::HOST, "caravan-spoke");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| protocol(&e))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| protocol(&e))?;
    let status = response.status();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| protocol(&e))?
        .to_bytes();
    Ok((status, headers, bytes))
}

/// Why the CLI could not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The spoke is not running (or not on this socket).
    #[error(
        "cannot reach the running spoke at {socket}: {cause} (is `caravan-spoke run` running with this config?)"
    )]
    NotRunning { socket: String, cause: String },
    /// The spoke answered with an error.
    #[error("{}: {}", .0.code, .0.message)]
    Api(ApiError, StatusCode),
    /// The exchange failed half-way.
    #[error("control API: {0}")]
    Protocol(String),
}

/// A request to the control API of the spoke listening on `socket`; returns the body of a
/// successful answer.
pub async fn call(
    socket: &Path,
    method: &str,
    path_and_query: &str,
    body: Vec<u8>,
) -> Result<Bytes, ClientError> {
    let not_running = |e: &dyn std::fmt::Display| ClientError::NotRunning {
        socket: socket.display().to_string(),
        cause: e.to_string(),
    };
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|e| not_running(&e))?;
    let (status, bytes) = exchange(stream, method, path_and_query, &[], body)
        .await
        .map_err(|e| match e {
            ClientError::NotRunning { cause, .. } => not_running(&cause),
            other => other,
        })?;
    if status.is_success() {
        return Ok(bytes);
    }
    let error = serde_json::from_slice::<ErrorBody>(&bytes)
        .map(|b| b.error)
        .unwrap_or_else(|_| ApiError {
            code: format!("HTTP_{}", status.as_u16()),
            message: String::from_utf8_lossy(&bytes).chars().take(500).collect(),
        });
    Err(ClientError::Api(error, status))
}
