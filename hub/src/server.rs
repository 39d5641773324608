//! Wiring: open the store, start group commit, and serve the gRPC services over mutual TLS
//! until shutdown.
//!
//! Every listener goes through `caravan_common::net`: the gRPC port's TLS handshakes are done
//! there (not by tonic, which would hold each one without a time limit), and tonic is handed
//! the TLS streams; the dashboard and the metrics are served by its HTTP/1 loop.

pub mod standin;

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use hyper_util::service::TowerToHyperService;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
    sync::watch,
};
use tonic::transport::{
    Server,
    server::{Connected, TcpConnectInfo},
};
use tracing::info;

use caravan_common::{
    net::{self, Conn, Listener, Plain, Stats, Tls},
    process::{Listening, listen},
};

use caravan_proto::v1::{
    admin_server::AdminServer, exchange_server::ExchangeServer,
    trust_anchor_server::TrustAnchorServer,
};

use self::standin::StandIn;
use crate::{
    admin::AdminService,
    anchor::TrustAnchorService,
    commit::GroupCommit,
    config::{Config, CreatedAtBounds},
    exchange::{Exchange, ExchangeService, SubmitRules},
    log::Heads,
    metrics::Metrics,
    observed::Observed,
    registry::{Registry, RegistryError},
    store::{Backend, Embedded, Postgres, Store, StoreError},
};

/// Room for the envelope's header, signature and framing on top of a message's payload.
const ENVELOPE_OVERHEAD: usize = 64 * 1024;
/// The largest gRPC message the exchange service decodes or sends: one message carries at most
/// `MAX_PAYLOAD_PER_MESSAGE` of payload, whatever `max_payload_bytes` allows a whole document
/// (larger documents stream). A larger request is answered OUT_OF_RANGE from its length prefix
/// alone, before any of it is buffered; a smaller one over `max_payload_bytes` gets the hub's
/// own PAYLOAD_TOO_LARGE refusal.
const MESSAGE_LIMIT: usize = caravan_proto::MAX_PAYLOAD_PER_MESSAGE + ENVELOPE_OVERHEAD;
// A delivery frame carries one stored chunk of a payload.
const _: () = assert!(crate::store::PAYLOAD_CHUNK <= caravan_proto::MAX_PAYLOAD_PER_MESSAGE);

/// Errors that stop the hub. A variant that wraps another error names only where it arose;
/// the error itself is its source (`{:#}` prints the whole chain, as the CLI does).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("store")]
    Store(#[from] crate::store::StoreError),
    /// The config's `data_dir` could not be made.
    #[error("store: cannot create the data folder {path}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("transport")]
    Transport(#[from] tonic::transport::Error),
    #[error("reflection")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("registry")]
    Registry(#[from] RegistryError),
    /// A listener of the config (`metrics_listen`, `dashboard_listen`).
    #[error(transparent)]
    Listen(#[from] caravan_common::process::ListenError),
    /// `listening.json` in the data folder (where the hub listens, for scripts).
    #[error(transparent)]
    Listening(#[from] caravan_common::process::ListeningError),
    /// The store failed the check at start (`Backend::check_at_start`) or could not be
    /// opened for what it holds: the hub serves nothing on it, and changed nothing.
    #[error(
        "the store in {path} is damaged, so the hub will not start on it: {problems}. The hub wrote nothing to it. List every problem with `caravan-hub store check --config <hub.toml>`, then restore the store from a backup (`caravan-hub restore --config <hub.toml> --from <backup>`; runbook: Faults and hostile conditions)"
    )]
    StoreDamaged { path: String, problems: String },
    /// The TLS material of the config, as the gRPC port and the dashboard load it.
    #[error("TLS")]
    Tls(#[from] net::TlsSetupError),
}

/// A gRPC connection: a [`Conn`] that tonic can ask for its addresses, so that, under TLS,
/// `request.peer_certs()` finds the client certificate (`TlsConnectInfo<TcpConnectInfo>`).
pub struct GrpcConn(Conn);

impl From<Conn> for GrpcConn {
    fn from(conn: Conn) -> Self {
        Self(conn)
    }
}

impl Connected for GrpcConn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        TcpConnectInfo {
            local_addr: self.0.local_addr(),
            remote_addr: Some(self.0.peer_addr()),
        }
    }
}

impl AsyncRead for GrpcConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for GrpcConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// Serve the hub on `listener` until `shutdown` completes, then drain and flush.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    run_with(config, listener, shutdown, None).await
}

/// [`run`], or with `stand_in` the conformance kit's stand-in hub: its Exchange and
/// TrustAnchor services wrapped by the kit's script, no Admin service, and no periodic
/// re-issue of the trust list (the kit issues every version itself).
pub async fn run_with(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    stand_in: Option<Arc<StandIn>>,
) -> Result<(), RunError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| RunError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    // Never leave a previous run's addresses for a reader while this one starts.
    let data_dir = config.data_dir.clone();
    Listening::clear(&data_dir)?;
    let mut listening = Listening {
        grpc: listener.local_addr().ok(),
        ..Listening::default()
    };
    let backend = open_store(&config).await?;
    let store = Store::shared(backend.clone());
    let metrics = Arc::new(Metrics::default());
    let key = config.receipt_key.clone();
    let heads = Arc::new(store.run(move |b| Heads::open(b, key)).await?);
    // A hub killed before it kept a head leaves its newest entries covered by none.
    keep_covering_head(&store, &config.receipt_key, "at start").await?;
    let commit = GroupCommit::start(store.clone(), heads.clone(), metrics.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    let registry = Arc::new(
        Registry::open(
            store.clone(),
            commit.clone(),
            config.anchor_key,
            config.receipt_key.public(),
            config.trust_list_validity,
        )
        .await?,
    );
    info!(
        version = registry.snapshot().list.version,
        "registry loaded"
    );
    if stand_in.is_none() {
        tokio::spawn(registry.clone().keep_fresh(stop_rx.clone()));
    }
    let receipt_key = config.receipt_key.clone();
    let exchange = Arc::new(
        Exchange::new(
            registry.clone(),
            store.clone(),
            commit,
            config.receipt_key,
            SubmitRules {
                max_payload_bytes: config.max_payload_bytes,
                payload_in_flight_bytes: config.payload_in_flight_bytes,
                created_at: CreatedAtBounds {
                    skew: config.created_at_skew,
                    lifetime: config.message_ttl.clone(),
                },
            },
            metrics.clone(),
            stop_rx.clone(),
        )
        .await?,
    );
    // Replicas sharing the store wake this one's streams, and its registry, when they commit.
    if let Some(changes) = store.backend().changes() {
        tokio::spawn(
            exchange
                .clone()
                .follow_replicas(changes, registry.clone(), stop_rx.clone()),
        );
    }
    // Keep a signed tree head for audits now and then, when the log grew (one replica at a
    // time, when several share the store).
    let (tree_store, tree_commit, interval, mut stop) = (
        store.clone(),
        exchange.commit().clone(),
        config.tree_head_interval,
        stop_rx.clone(),
    );
    // Read once: afterwards the task knows what it kept.
    let mut last_kept = store.run(crate::log::last_kept_size).await?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => return,
            }
            // A flush first, so registry changes made since the last one are covered too.
            let kept = match tree_commit.wait().await {
                Ok(head) => {
                    let mut last = last_kept;
                    tree_store
                        .run(move |b| {
                            if !b.keeps_tree_heads() {
                                return Ok((None, last));
                            }
                            // Another replica may have kept heads meanwhile.
                            last = last.max(crate::log::last_kept_size(b)?);
                            let kept = crate::log::keep_tree_head(b, &head, &mut last)?;
                            if kept {
                                // The head covers what the flush just made durable.
                                b.note_floors(head.tree_size)?;
                            }
                            Ok((kept.then_some(head), last))
                        })
                        .await
                }
                Err(e) => Err(e),
            };
            match kept {
                Ok((head, last)) => {
                    last_kept = last;
                    if let Some(head) = head {
                        info!(size = head.tree_size, root = %caravan_common::envelope::to_hex(&head.root_hash), "tree head kept")
                    }
                }
                // Logged once when the store faulted; kept after it recovers.
                Err(crate::store::StoreError::Unavailable(_)) => {}
                Err(e) => tracing::error!(cause = %e, "could not keep a tree head"),
            }
        }
    });
    let ttl = config.message_ttl.clone();
    let interval = ttl.scan_interval();
    let (expiring, mut stop) = (exchange.clone(), stop_rx.clone());
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => expiring.expire(&ttl).await,
                _ = stop.changed() => return,
            }
        }
    });
    let (grpc_stats, dashboard_stats, metrics_stats) = (
        Stats::new("grpc"),
        Stats::new("dashboard"),
        Stats::new("metrics"),
    );
    let observed = Observed::new(
        metrics.clone(),
        store.clone(),
        heads.clone(),
        registry.clone(),
        vec![
            grpc_stats.clone(),
            dashboard_stats.clone(),
            metrics_stats.clone(),
        ],
    );
    let limits = config.net;
    if let Some(addr) = config.metrics_listen {
        let listener = listen(addr, "metrics_listen").await?;
        listening.metrics = listener.local_addr().ok();
        info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "metrics listening");
        let listener = Listener::new(listener, Plain, limits, metrics_stats);
        let health = stop_rx.clone();
        let store_health = store.backend().health();
        let view = observed.clone();
        let app = axum::Router::new()
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let view = view.clone();
                    async move {
                        let text = view.metrics_text().await;
                        (
                            [(
                                axum::http::header::CONTENT_TYPE,
                                caravan_common::metrics::CONTENT_TYPE,
                            )],
                            text,
                        )
                    }
                }),
            )
            // For probes that cannot speak mutual TLS (Kubernetes, load balancers): the same
            // answer as the gRPC health service, SERVING until shutdown begins, NOT_SERVING
            // while the store is faulted (with the reason).
            .route(
                "/healthz",
                axum::routing::get(move || {
                    let stopping = *health.borrow();
                    let fault = store_health.as_ref().and_then(|h| h.fault());
                    async move {
                        let (code, text) =
                            caravan_common::recovery::healthz(stopping, fault.as_ref());
                        (
                            axum::http::StatusCode::from_u16(code)
                                .unwrap_or(axum::http::StatusCode::SERVICE_UNAVAILABLE),
                            text,
                        )
                    }
                }),
            );
        tokio::spawn(net::serve_http1(
            listener,
            move |_| TowerToHyperService::new(app.clone()),
            stop_rx.clone(),
        ));
    }
    let scorecard = Arc::new(crate::scorecard::Scorecard::new(
        config.scorecard.clone(),
        store.clone(),
        registry.clone(),
        heads.clone(),
        receipt_key.clone(),
    ));
    if let Some(addr) = config.dashboard_listen {
        let tcp = listen(addr, "dashboard_listen").await?;
        listening.dashboard = tcp.local_addr().ok();
        info!(addr = %tcp.local_addr().map(|a| a.to_string()).unwrap_or_default(), "dashboard listening");
        let tls = net::tls_acceptor(&config.tls, &[b"http/1.1"])?;
        let listener = Listener::new(tcp, Tls::<Conn>::new(tls), limits, dashboard_stats);
        let app = crate::dashboard::router(
            observed.clone(),
            crate::dashboard::scorecard::Setup {
                scorecard: scorecard.clone(),
            },
        );
        tokio::spawn(net::serve_http1(
            listener,
            move |stream| {
                let visitor = crate::dashboard::Visitor::of(stream);
                TowerToHyperService::new(
                    app.clone()
                        .layer(axum::Extension(axum::extract::ConnectInfo(visitor))),
                )
            },
            stop_rx.clone(),
        ));
    }
    if let Some(stand_in) = &stand_in {
        stand_in.attach(exchange.clone(), registry.clone());
    }
    let anchor = TrustAnchorService {
        registry: registry.clone(),
        shutdown: stop_rx,
    };
    let admin = AdminServer::new(AdminService {
        registry,
        metrics,
        store: store.clone(),
        backup_dir: config.backup_dir.clone(),
        receipt_key: receipt_key.clone(),
        scorecard: scorecard.clone(),
    });

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<ExchangeServer<ExchangeService>>()
        .await;
    if let Some(store_health) = store.backend().health() {
        tokio::spawn(follow_store_health(store_health.subscribe(), health));
    }
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(caravan_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let exchange = ExchangeService(exchange);
    // The hub's own services, or the stand-in's (which has no operators).
    let (plain, stand_in) = match stand_in {
        None => (
            Some((
                ExchangeServer::new(exchange)
                    .max_decoding_message_size(MESSAGE_LIMIT)
                    .max_encoding_message_size(MESSAGE_LIMIT),
                TrustAnchorServer::new(anchor),
                admin,
            )),
            None,
        ),
        Some(stand_in) => (
            None,
            Some((
                ExchangeServer::new(stand_in.exchange(exchange))
                    .max_decoding_message_size(MESSAGE_LIMIT)
                    .max_encoding_message_size(MESSAGE_LIMIT),
                TrustAnchorServer::new(stand_in.anchor(anchor)),
            )),
        ),
    };
    let (exchange, anchor, admin) = match plain {
        Some((e, t, a)) => (Some(e), Some(t), Some(a)),
        None => (None, None, None),
    };
    let (kit_exchange, kit_anchor) = match stand_in {
        Some((e, t)) => (Some(e), Some(t)),
        None => (None, None),
    };
    let tls = net::tls_acceptor(&config.tls, &[b"h2"])?;
    let addr = listener.local_addr().ok();
    // HTTP/2 pings every 30 s keep a live peer busy, so a connection with no byte either way
    // for idle_timeout is cut too.
    let listener = Listener::new(listener, Tls::<GrpcConn>::new(tls), limits, grpc_stats)
        .cut_idle_connections();
    let incoming = futures::stream::unfold(listener, |mut listener| async move {
        let stream = listener.accept().await;
        Some((Ok::<_, io::Error>(stream), listener))
    });
    listening.of_this_process().write(&data_dir)?;
    info!(addr = %addr.map(|a| a.to_string()).unwrap_or_default(), "listening");
    let shutdown = async move {
        shutdown.await;
        info!("shutting down: closing delivery streams and draining requests");
        let _ = stop_tx.send(true);
    };
    Server::builder()
        // A ping at least every half idle timeout, so a live peer is never cut as idle.
        .http2_keepalive_interval(Some(Duration::from_secs(30).min(limits.idle_timeout / 2)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(health_service)
        .add_service(reflection)
        .add_optional_service(exchange)
        .add_optional_service(anchor)
        .add_optional_service(admin)
        .add_optional_service(kit_exchange)
        .add_optional_service(kit_anchor)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Listening::clear(&data_dir)?;
    store.run(|b| b.flush()).await?;
    // After the final flush: a head over everything, so `log verify` checks the newest entries.
    keep_covering_head(&store, &receipt_key, "at shutdown").await?;
    store.run(|b| b.note_floors(b.log_size()?)).await?;
    info!("store flushed; stopped");
    Ok(())
}

/// Open the store the configuration names, on a blocking thread: the embedded one in
/// `data_dir` (checked before the hub runs on it), or the PostgreSQL database.
async fn open_store(config: &Config) -> Result<Arc<dyn Backend>, RunError> {
    if let Some(settings) = config.postgres.clone() {
        let described = crate::store::postgres::redact(&settings.url);
        let opened = tokio::task::spawn_blocking(move || Postgres::open_waiting(settings))
            .await
            .map_err(|_| RunError::Store(StoreError::Stopped("opening the database")))?;
        let backend = opened.map_err(RunError::Store)?;
        info!(database = %described, engine = "postgres", "store opened");
        return Ok(Arc::new(backend));
    }
    let path = config.data_dir.join("store");
    let damaged = |problems: String| RunError::StoreDamaged {
        path: path.display().to_string(),
        problems,
    };
    let opened = Embedded::open_checked(&path, config.store_engine, config.store_cache_bytes)
        .map_err(|e| match e {
            // A database file the engine cannot read for what it holds.
            StoreError::Corrupt { .. } => damaged(e.to_string()),
            // Busy (another hub holds it), or an I/O error.
            other => RunError::Store(other),
        })?;
    let backend = opened.map_err(|report| damaged(report.summary()))?;
    // Checked: its log's size is the floor for the next start.
    backend.note_floors(backend.log_size()?)?;
    info!(path = %config.data_dir.display(), engine = backend.engine_name(), "store opened and checked");
    Ok(Arc::new(backend))
}

/// The gRPC health service says NOT_SERVING while the store is faulted, and SERVING again once
/// it recovered (the store logs each change once).
async fn follow_store_health(
    mut store: watch::Receiver<caravan_common::recovery::Condition>,
    health: tonic_health::server::HealthReporter,
) {
    loop {
        let faulted = store.borrow_and_update().fault.is_some();
        let status = if faulted {
            tonic_health::ServingStatus::NotServing
        } else {
            tonic_health::ServingStatus::Serving
        };
        for service in ["", "caravan.v1.Exchange"] {
            health.set_service_status(service, status).await;
        }
        if store.changed().await.is_err() {
            return;
        }
    }
}

/// Keep a signed head over the whole log if none covers its newest entry (`log::cover_log`).
async fn keep_covering_head(
    store: &Store,
    key: &caravan_common::signing::SigningKey,
    when: &'static str,
) -> Result<(), RunError> {
    let key = key.clone();
    let covered = store
        .run(move |b| {
            if !b.keeps_tree_heads() {
                return Ok(None);
            }
            crate::log::cover_log(b, &key)
        })
        .await?;
    if let Some(size) = covered {
        info!(size, when, "tree head kept");
    }
    Ok(())
}
