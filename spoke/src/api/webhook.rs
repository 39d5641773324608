//! Pushing received documents to the national single window's webhook: each inbox item is
//! POSTed (JSON) in arrival order, retried with backoff until the webhook answers 2xx; the
//! position is kept in the store, so a restart neither skips nor repeats what was taken.
//!
//! The push runs as its own task, apart from receiving: a slow or hanging endpoint delays only
//! the pushes, never the inbox, and every attempt is bounded by a connect timeout and a
//! response timeout, so a hanging endpoint is retried rather than waited on for good. Plain
//! `http://`, or `https://` with rustls, checked against the webpki roots or a configured CA
//! file.

use std::{sync::Arc, time::Duration};

use axum::body::Bytes;
use axum::http::{StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::net::TcpStream;
use tokio_rustls::{
    TlsConnector,
    rustls::{self, RootCertStore},
};
use tracing::{info, warn};

use crate::{
    config::WebhookConfig,
    rt::{Backoff, Shutdown, blocking},
    store::SpokeStore,
};

use super::views::InboxItem;

/// Documents the push reads from the inbox at a time.
const WEBHOOK_PAGE: usize = 100;

/// Why a push to the webhook failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The URL cannot make a client (checked at start).
    #[error("NSW webhook: {0}")]
    Setup(String),
    /// A setting (`what`: `ca_file`, the host name, ...) cannot make a client or a request.
    #[error("NSW webhook: {what}: {source}")]
    Invalid {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot connect to the NSW webhook at {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the NSW webhook at {addr} took no connection within {secs} s (nsw.webhook.connect_timeout_secs)"
    )]
    ConnectTimeout { addr: String, secs: u64 },
    #[error("TLS with the NSW webhook at {addr} failed: {source}")]
    Tls {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the NSW webhook at {addr} did not answer within {secs} s (nsw.webhook.response_timeout_secs)"
    )]
    ResponseTimeout { addr: String, secs: u64 },
    #[error("the HTTP exchange with the NSW webhook at {addr} failed: {source}")]
    Http {
        addr: String,
        #[source]
        source: hyper::Error,
    },
    #[error("the NSW webhook at {addr} answered {status}")]
    Status { addr: String, status: StatusCode },
}

/// A client of the webhook: where it is, how to reach it, and how long to wait.
pub struct Webhook {
    host: String,
    port: u16,
    path: String,
    /// For `https://`: the TLS connector and the name the certificate must carry.
    tls: Option<(TlsConnector, ServerName<'static>)>,
    connect_timeout: Duration,
    response_timeout: Duration,
}

impl Webhook {
    pub fn new(config: &WebhookConfig) -> Result<Self, WebhookError> {
        let setup = |m: String| WebhookError::Setup(m);
        let invalid =
            |what: &str, source: Box<dyn std::error::Error + Send + Sync>| WebhookError::Invalid {
                what: what.to_owned(),
                source,
            };
        let url = &config.url;
        let host = url
            .host()
            .ok_or_else(|| setup(format!("{url} names no host")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let https = match url.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(setup(format!("{url} is neither http:// nor https://"))),
        };
        let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path = url
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into());
        let tls = if https {
            let mut roots = RootCertStore::empty();
            match &config.ca_pem {
                Some(pem) => {
                    for ca in CertificateDer::pem_slice_iter(pem) {
                        let ca = ca.map_err(|e| invalid("ca_file", e.into()))?;
                        roots.add(ca).map_err(|e| invalid("ca_file", e.into()))?;
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let client = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| invalid("TLS protocol versions", e.into()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            let name = ServerName::try_from(host.clone()).map_err(|e| invalid(&host, e.into()))?;
            Some((TlsConnector::from(Arc::new(client)), name))
        } else {
            None
        };
        Ok(Self {
            host,
            port,
            path,
            tls,
            connect_timeout: config.connect_timeout,
            response_timeout: config.response_timeout,
        })
    }

    fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// POST `body` (JSON) as event `document.received`; Ok once the webhook answered 2xx.
    pub async fn post(&self, body: Vec<u8>) -> Result<(), WebhookError> {
        let addr = self.addr();
        let connect_secs = self.connect_timeout.as_secs();
        let connecting = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|source| WebhookError::Connect {
                    addr: addr.clone(),
                    source,
                })?;
            let _ = tcp.set_nodelay(true);
            Ok::<_, WebhookError>(tcp)
        };
        let tcp = tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .map_err(|_| WebhookError::ConnectTimeout {
                addr: addr.clone(),
                secs: connect_secs,
            })??;
        match &self.tls {
            None => self.exchange(tcp, body).await,
            Some((connector, name)) => {
                let tls = tokio::time::timeout(
                    self.connect_timeout,
                    connector.connect(name.clone(), tcp),
                )
                .await
                .map_err(|_| WebhookError::ConnectTimeout {
                    addr: addr.clone(),
                    secs: connect_secs,
                })?
                .map_err(|source| WebhookError::Tls {
                    addr: addr.clone(),
                    source,
                })?;
                self.exchange(tls, body).await
            }
        }
    }

    /// The request and its answer over `io`, within the response timeout.
    async fn exchange<S>(&self, io: S, body: Vec<u8>) -> Result<(), WebhookError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let addr = self.addr();
        let http = |source| WebhookError::Http {
            addr: addr.clone(),
            source,
        };
        let exchange = async {
            let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
                .await
                .map_err(http)?;
            // Ends with the exchange: dropped with this future on a timeout.
            let connection = tokio::spawn(connection);
            let request = hyper::Request::post(self.path.as_str())
                .header(header::HOST, self.host.as_str())
                .header(header::CONTENT_TYPE, "application/json")
                .header("x-caravan-event", "document.received")
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| WebhookError::Invalid {
                    what: "the request".into(),
                    source: e.into(),
                })?;
            let answered = sender.send_request(request).await;
            let result = match answered {
                Ok(response) => {
                    let status = response.status();
                    // Read the answer to its end, so that the endpoint is not cut off mid-way.
                    let _ = response.into_body().collect().await;
                    Ok(status)
                }
                Err(e) => Err(http(e)),
            };
            connection.abort();
            result
        };
        let status = tokio::time::timeout(self.response_timeout, exchange)
            .await
            .map_err(|_| WebhookError::ResponseTimeout {
                addr: addr.clone(),
                secs: self.response_timeout.as_secs(),
            })??;
        if status.is_success() {
            Ok(())
        } else {
            Err(WebhookError::Status { addr, status })
        }
    }
}

/// Push every received document to `webhook`, in arrival order, each retried with backoff
/// until the webhook answers 2xx, until `shutdown`; `arrivals` changes when documents enter
/// the inbox.
pub async fn push(
    webhook: Webhook,
    store: Arc<SpokeStore>,
    mut arrivals: tokio::sync::watch::Receiver<u64>,
    mut shutdown: Shutdown,
) {
    let mut backoff = Backoff::default();
    loop {
        arrivals.borrow_and_update();
        let reading = store.clone();
        let pending = blocking(move || {
            let after = reading.webhook_cursor()?;
            reading.inbox_since(after, WEBHOOK_PAGE)
        })
        .await
        .unwrap_or_default();
        // A full page: more may wait behind it, pushed at once.
        let more = pending.len() == WEBHOOK_PAGE;
        let mut failed = false;
        for (cursor, record) in pending {
            let mut item = InboxItem::from(&record);
            item.cursor = cursor;
            let body = serde_json::to_vec(&item).expect("inbox items serialise");
            let outcome = tokio::select! {
                outcome = webhook.post(body) => outcome,
                _ = shutdown.changed() => return,
            };
            match outcome {
                Ok(()) => {
                    info!(message_id = %record.message_id, cursor, "pushed to the NSW webhook");
                    let keeping = store.clone();
                    if let Err(e) = blocking(move || keeping.set_webhook_cursor(cursor)).await {
                        warn!(cause = %e, "cannot keep the webhook position");
                    }
                }
                Err(e) => {
                    warn!(message_id = %record.message_id, cause = %e, "NSW webhook failed; will retry");
                    failed = true;
                    break;
                }
            }
        }
        let wait = if failed {
            backoff.next_delay()
        } else if more {
            continue;
        } else {
            backoff.reset();
            Duration::from_secs(3600)
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            changed = arrivals.changed(), if !failed => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook(url: &str, response_secs: u64) -> Webhook {
        Webhook::new(&WebhookConfig {
            url: url.parse().unwrap(),
            ca_pem: None,
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(response_secs),
        })
        .unwrap()
    }

    /// A `ca_file` that is not PEM is named, its parser's error kept as the source.
    #[test]
    fn a_bad_ca_file_is_named_with_its_cause() {
        let e = Webhook::new(&WebhookConfig {
            url: "https://nsw.example/hook".parse().unwrap(),
            ca_pem: Some(b"-----BEGIN CERTIFICATE-----\nAAAA\n".to_vec()),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
        })
        .err()
        .unwrap();
        assert!(
            matches!(&e, WebhookError::Invalid { what, .. } if what == "ca_file"),
            "{e}"
        );
        assert!(e.to_string().starts_with("NSW webhook: ca_file: "), "{e}");
        assert!(std::error::Error::source(&e).is_some());
    }

    /// An endpoint that takes the connection and never answers: the push ends with its own
    /// timeout error instead of waiting for good.
    #[tokio::test]
    async fn a_hanging_endpoint_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(socket);
        });
        let hook = webhook(&format!("http://{addr}/hook"), 1);
        let started = std::time::Instant::now();
        let e = hook.post(b"{}".to_vec()).await.unwrap_err();
        assert!(matches!(e, WebhookError::ResponseTimeout { .. }), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(e.to_string().contains("did not answer within 1 s"), "{e}");
        assert!(!e.to_string().contains("caravan-spoke run"), "{e}");
        held.abort();
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connect_error_and_https_builds() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let e = webhook(&format!("http://{addr}/"), 1)
            .post(Vec::new())
            .await
            .unwrap_err();
        assert!(matches!(e, WebhookError::Connect { .. }), "{e:?}");
        assert!(std::error::Error::source(&e).is_some());
        let https = webhook("https://nsw.example/hook", 1);
        assert_eq!(https.port, 443);
        assert!(https.tls.is_some());
    }
}
