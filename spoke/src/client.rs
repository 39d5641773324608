//! The typed client of the local control API, over the spoke's Unix socket: what the CLI and
//! the tests use to talk to a running spoke. Answers are read into the types the API defines
//! ([`crate::api::views`]); errors are [`ClientError`], with their sources.
//!
//! [`exchange`] and [`exchange_full`] are the bare HTTP/1.1 exchange under it, over any stream
//! (the tests also use them on TCP and TLS).

use std::path::{Path, PathBuf};

use axum::{
    body::Bytes,
    http::{StatusCode, header},
};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Serialize, de::DeserializeOwned};

use caravan_common::{DocumentType, MessageId, ParticipantId};

use crate::{
    api::views::{
        ApiError, ErrorBody, Health, InboxDetail, InboxItem, LogView, SentView, StatusView,
        TrustListView,
    },
    evidence::Bundle,
    store::Decision,
};

/// Why a request to the running spoke got no answer it could use.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket cannot be reached: the spoke is not running (or not on this socket).
    #[error(
        "cannot reach the running spoke at {socket}: {source} (is `caravan-spoke run` running with this config?)"
    )]
    NotRunning {
        socket: String,
        #[source]
        source: std::io::Error,
    },
    /// The spoke answered with an error.
    #[error("{}: {}", .0.code, .0.message)]
    Api(ApiError, StatusCode),
    /// The HTTP exchange failed half-way.
    #[error("control API: {0}")]
    Http(#[source] hyper::Error),
    /// A request that cannot be written (a path that is no URI).
    #[error("control API request: {0}")]
    Request(#[source] axum::http::Error),
    /// The spoke answered something that is not the answer the API defines.
    #[error("unexpected answer from the spoke: {0}")]
    Decode(#[source] serde_json::Error),
}

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
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(ClientError::Http)?;
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
        .map_err(ClientError::Request)?;
    let response = sender
        .send_request(request)
        .await
        .map_err(ClientError::Http)?;
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
        .map_err(ClientError::Http)?
        .to_bytes();
    Ok((status, headers, bytes))
}

/// A request to the control API of the spoke listening on `socket`; returns the body of a
/// successful answer.
pub async fn call(
    socket: &Path,
    method: &str,
    path_and_query: &str,
    body: Vec<u8>,
) -> Result<Bytes, ClientError> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|source| ClientError::NotRunning {
            socket: socket.display().to_string(),
            source,
        })?;
    let (status, bytes) = exchange(stream, method, path_and_query, &[], body).await?;
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

/// What a query value may hold unencoded: RFC 3986's unreserved characters.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encode a query value (RFC 3986 unreserved characters pass through).
pub fn encode_query(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// What to send, besides the document itself.
#[derive(Debug, Clone)]
pub struct SendRequest {
    pub to: ParticipantId,
    pub document_type: DocumentType,
    /// The business number; read from the document when absent.
    pub document_id: Option<String>,
    pub supersedes: Option<MessageId>,
    pub in_reply_to: Option<MessageId>,
    /// Seconds to wait for the hub's receipt (or refusal); `None`: answer once queued.
    pub wait_secs: Option<u64>,
}

impl SendRequest {
    /// The request's path and query.
    fn path(&self) -> String {
        let mut query = format!("/v1/documents?to={}&type={}", self.to, self.document_type);
        if let Some(id) = &self.document_id {
            query.push_str(&format!("&document_id={}", encode_query(id)));
        }
        if let Some(id) = self.supersedes {
            query.push_str(&format!("&supersedes={id}"));
        }
        if let Some(id) = self.in_reply_to {
            query.push_str(&format!("&in_reply_to={id}"));
        }
        if let Some(secs) = self.wait_secs {
            query.push_str(&format!("&wait={secs}"));
        }
        query
    }
}

/// The body of `POST /v1/inbox/{id}/answer`.
#[derive(Debug, Serialize)]
struct AnswerBody<'a> {
    decision: Decision,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wait: Option<u64>,
}

/// The control API of the spoke listening on a Unix socket.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
        }
    }

    /// The body of a successful answer, as bytes.
    pub async fn raw(
        &self,
        method: &str,
        path_and_query: &str,
        body: Vec<u8>,
    ) -> Result<Bytes, ClientError> {
        call(&self.socket, method, path_and_query, body).await
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: &str,
        path_and_query: &str,
        body: Vec<u8>,
    ) -> Result<T, ClientError> {
        let bytes = self.raw(method, path_and_query, body).await?;
        serde_json::from_slice(&bytes).map_err(ClientError::Decode)
    }

    /// Who the spoke is, and whether its delivery stream to the hub is open.
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.json("GET", "/v1/health", Vec::new()).await
    }

    /// Queue `document` in the spoke's outbox (and wait for the hub, if asked).
    pub async fn send(
        &self,
        request: &SendRequest,
        document: Vec<u8>,
    ) -> Result<SentView, ClientError> {
        self.json("POST", &request.path(), document).await
    }

    /// Answer received document `id` with a decision, sent back to its sender.
    pub async fn answer(
        &self,
        id: MessageId,
        decision: Decision,
        reason: Option<&str>,
        wait_secs: Option<u64>,
    ) -> Result<SentView, ClientError> {
        let body = AnswerBody {
            decision,
            reason,
            wait: wait_secs,
        };
        let body = serde_json::to_vec(&body).map_err(ClientError::Decode)?;
        self.json("POST", &format!("/v1/inbox/{id}/answer"), body)
            .await
    }

    /// One page of the inbox, oldest first: what arrived after cursor `since`.
    pub async fn inbox_page(&self, since: Option<u64>) -> Result<Vec<InboxItem>, ClientError> {
        let path = match since {
            Some(cursor) => format!("/v1/inbox?since={cursor}"),
            None => "/v1/inbox".to_owned(),
        };
        self.json("GET", &path, Vec::new()).await
    }

    /// The whole inbox, oldest first, read a page at a time.
    pub async fn inbox(&self) -> Result<Vec<InboxItem>, ClientError> {
        let mut items: Vec<InboxItem> = Vec::new();
        loop {
            let page = self.inbox_page(items.last().map(|i| i.cursor)).await?;
            let full = page.len() == crate::api::control::INBOX_PAGE;
            items.extend(page);
            if !full {
                return Ok(items);
            }
        }
    }

    /// A received document, with the fields an officer checks.
    pub async fn inbox_entry(
        &self,
        id: MessageId,
        sender: Option<ParticipantId>,
    ) -> Result<InboxDetail, ClientError> {
        self.json(
            "GET",
            &format!("/v1/inbox/{id}{}", sender_query(sender)),
            Vec::new(),
        )
        .await
    }

    /// A received document's bytes.
    pub async fn payload(
        &self,
        id: MessageId,
        sender: Option<ParticipantId>,
    ) -> Result<Bytes, ClientError> {
        self.raw(
            "GET",
            &format!("/v1/inbox/{id}/payload{}", sender_query(sender)),
            Vec::new(),
        )
        .await
    }

    /// An evidence bundle for a received document.
    pub async fn evidence(
        &self,
        id: MessageId,
        sender: Option<ParticipantId>,
    ) -> Result<Bundle, ClientError> {
        self.json(
            "GET",
            &format!("/v1/inbox/{id}/evidence{}", sender_query(sender)),
            Vec::new(),
        )
        .await
    }

    /// The state and history of a document this spoke sent.
    pub async fn status(&self, id: MessageId) -> Result<StatusView, ClientError> {
        self.json("GET", &format!("/v1/sent/{id}/status"), Vec::new())
            .await
    }

    /// The trust list the spoke holds.
    pub async fn trust_list(&self) -> Result<TrustListView, ClientError> {
        self.json("GET", "/v1/trust-list", Vec::new()).await
    }

    /// What the spoke verified of the hub's exchange log, and its alarms.
    pub async fn log(&self) -> Result<LogView, ClientError> {
        self.json("GET", "/v1/log", Vec::new()).await
    }
}

fn sender_query(sender: Option<ParticipantId>) -> String {
    sender.map(|s| format!("?sender={s}")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded_as_before() {
        assert_eq!(
            encode_query("KZ-CO/2025 #1&x=é"),
            "KZ-CO%2F2025%20%231%26x%3D%C3%A9"
        );
        assert_eq!(encode_query("a-b.c_d~e"), "a-b.c_d~e");
    }

    #[tokio::test]
    async fn an_absent_socket_is_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let client = Client::new(dir.path().join("control.sock"));
        let e = client.health().await.unwrap_err();
        assert!(matches!(e, ClientError::NotRunning { .. }), "{e:?}");
        assert!(
            e.to_string().contains("is `caravan-spoke run` running"),
            "{e}"
        );
        assert!(std::error::Error::source(&e).is_some());
    }
}
