//! The Caravan spoke: a country's gateway between its national single window and the hub.
//!
//! It signs outgoing documents with the country's ed25519 key and submits them to the hub; it
//! keeps a delivery stream open to the hub and verifies every received document end to end
//! against the keys it holds, stores it durably in its inbox, and signs an acknowledgement
//! (accepted, or rejected with the reason).
//!
//! Code map: [`config`] (the checked TOML file), [`document`] (recognising XML documents),
//! [`spoke`] (sending and receiving), [`store`] (inbox and sent records, on sled or redb),
//! [`trust`] (the signed trust list held, checked against the pinned anchor, followed),
//! [`control`] (the local control API the CLI uses, over a Unix socket).

#![forbid(unsafe_code)]

pub mod config;
pub mod console;
pub mod control;
pub mod document;
pub mod evidence;
pub mod log_audit;
pub mod nsw;
pub mod spoke;
pub mod store;
pub mod trust;
pub mod upload;

use std::{future::Future, os::unix::fs::PermissionsExt, path::Path, sync::Arc};

use hyper_util::service::TowerToHyperService;
use tokio::{net::UnixListener, sync::watch};
use tracing::info;

use caravan_common::{
    net::{self, Listener, Plain, Stats},
    process::listen,
};

pub use config::Config;

/// Page cache of the spoke's store.
const STORE_CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// Errors that stop the spoke.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("hub endpoint: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("control socket {path}: {cause}")]
    ControlSocket { path: String, cause: String },
    #[error("data_dir {path}: {cause}")]
    DataDir { path: String, cause: String },
    /// A listener of the config (`console.listen`, `nsw.listen`, `metrics_listen`).
    #[error(transparent)]
    Listen(#[from] caravan_common::process::ListenError),
    #[error(transparent)]
    Trust(#[from] trust::TrustError),
    /// The store failed the check at start (`SpokeStore::check_at_start`): the spoke serves
    /// nothing on it, and changed nothing.
    #[error(
        "the store in {path} is damaged, so the spoke will not start on it: {problems}. The spoke served nothing from it. List every problem with `caravan-spoke store check --config <spoke.toml>`, then restore the store from a backup (runbook: Faults and hostile conditions)"
    )]
    StoreDamaged { path: String, problems: String },
}

/// Run the spoke until `shutdown` completes: the delivery stream from the hub and the local
/// control API.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    create_private_dir(&config.data_dir).map_err(|cause| RunError::DataDir {
        path: config.data_dir.display().to_string(),
        cause,
    })?;
    let path = config.data_dir.join("store");
    let damaged = |problems: String| RunError::StoreDamaged {
        path: path.display().to_string(),
        problems,
    };
    let store = store::SpokeStore::open(&path, config.store_engine, STORE_CACHE_BYTES).map_err(
        |e| match e {
            // A database file the engine cannot read for what it holds.
            store::StoreError::Corrupt { .. } => damaged(e.to_string()),
            // Busy (another spoke holds it), or an I/O error.
            other => RunError::Store(other),
        },
    )?;
    let checked = store.check_at_start();
    if !checked.is_sound() {
        return Err(damaged(checked.summary()));
    }
    store.note_floors()?;
    let store = Arc::new(store);
    let listener = bind_control_socket(&config.control_socket).await?;
    let channel = spoke::hub_channel(&config)?;
    let max_payload_bytes = config.max_payload_bytes;
    let socket = config.control_socket.clone();
    let nsw = config.nsw.clone();
    let console = config.console.clone();
    let limits = config.net;
    let (nsw_stats, console_stats, metrics_stats) = (
        Stats::new("nsw"),
        Stats::new("console"),
        Stats::new("metrics"),
    );
    let listeners = vec![
        nsw_stats.clone(),
        console_stats.clone(),
        metrics_stats.clone(),
    ];
    // Bind every listener before anything starts, so a taken port stops the spoke at once.
    let console_listener = match &console {
        Some(c) => Some(listen(c.listen, "console.listen (officer console)").await?),
        None => None,
    };
    let nsw_listener = match &nsw {
        Some(n) => Some(listen(n.listen, "nsw.listen (NSW API)").await?),
        None => None,
    };
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(listen(addr, "metrics_listen").await?),
        None => None,
    };
    let trust = Arc::new(trust::TrustHolder::load(
        config.anchor.clone(),
        store.clone(),
    )?);
    let spoke = Arc::new(spoke::Spoke::new(
        config,
        store.clone(),
        trust.clone(),
        channel.clone(),
    ));
    info!(participant = %spoke.me, socket = %socket.display(), "control API listening");

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = vec![
        tokio::spawn(trust.follow(channel, stop_rx.clone())),
        tokio::spawn(spoke.clone().receive(stop_rx.clone())),
        tokio::spawn(spoke.clone().drain_outbox(stop_rx.clone())),
        tokio::spawn(spoke.clone().follow_status(stop_rx.clone())),
        tokio::spawn(spoke.log.clone().run(spoke.client(), stop_rx.clone())),
    ];
    tasks.push(serve_local(
        listener,
        control::router(spoke.clone(), max_payload_bytes),
        stop_rx.clone(),
    ));
    if let (Some(c), Some(listener)) = (console, console_listener) {
        info!(addr = %local(&listener), officers = c.officers.len(), "officer console listening");
        tasks.push(serve(
            Listener::new(listener, Plain, limits, console_stats),
            console::router(spoke.clone(), c.officers),
            stop_rx.clone(),
        ));
    }
    if let Some(listener) = metrics_listener {
        info!(addr = %local(&listener), "metrics listening");
        let metrics = spoke.clone();
        let health = stop_rx.clone();
        let store_health = store.health().cloned();
        let damaged_store = store.clone();
        let app = axum::Router::new()
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let spoke = metrics.clone();
                    let listeners = listeners.clone();
                    async move {
                        let mut text = spoke.metrics().await;
                        net::render("caravan_spoke", &listeners, &mut text);
                        (
                            [(
                                axum::http::header::CONTENT_TYPE,
                                "text/plain; version=0.0.4",
                            )],
                            text,
                        )
                    }
                }),
            )
            // Liveness and readiness for probes: the spoke serves its national single window
            // and officers whether or not the hub is reachable (the outbox holds documents
            // meanwhile), so only shutdown, a faulted store (it can take no document in), and a
            // store a read found damaged, make it NOT_SERVING.
            .route(
                "/healthz",
                axum::routing::get(move || {
                    let stopping = *health.borrow();
                    let fault = store_health.as_ref().and_then(|h| h.fault());
                    let damage = damaged_store.damage();
                    async move {
                        let (code, text) = match damage {
                            Some(damage) if !stopping => {
                                (503, format!("NOT_SERVING STORE_CORRUPT {damage}\n"))
                            }
                            _ => caravan_common::recovery::healthz(stopping, fault.as_ref()),
                        };
                        (
                            axum::http::StatusCode::from_u16(code)
                                .unwrap_or(axum::http::StatusCode::SERVICE_UNAVAILABLE),
                            text,
                        )
                    }
                }),
            );
        tasks.push(serve(
            Listener::new(listener, Plain, limits, metrics_stats),
            app,
            stop_rx.clone(),
        ));
    }
    if let (Some(n), Some(listener)) = (nsw, nsw_listener) {
        info!(addr = %local(&listener), clients = n.tokens.len(), "NSW API listening");
        if let Some(url) = n.webhook.clone() {
            info!(url = %url, "pushing received documents to the NSW webhook");
            tasks.push(tokio::spawn(nsw::push_webhooks(
                spoke.clone(),
                url,
                stop_rx.clone(),
            )));
        }
        tasks.push(serve(
            Listener::new(listener, Plain, limits, nsw_stats),
            nsw::router(spoke.clone(), max_payload_bytes, n.tokens),
            stop_rx.clone(),
        ));
    }
    shutdown.await;
    info!("shutting down");
    let _ = stop_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }
    let _ = std::fs::remove_file(&socket);
    spoke::blocking(move || {
        store.flush()?;
        store.note_floors()
    })
    .await?;
    info!("store flushed; stopped");
    Ok(())
}

fn local(listener: &tokio::net::TcpListener) -> String {
    listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default()
}

/// Serve `app` over TCP until `stop` changes, with the connection hygiene of
/// `caravan_common::net` (caps, first-byte and header time limits, idle bodies).
fn serve(
    listener: Listener<Plain>,
    app: axum::Router,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(net::serve_http1(
        listener,
        move |_| TowerToHyperService::new(app.clone()),
        stop,
    ))
}

/// Serve `app` on the local control socket until `stop` changes (reachable only by this
/// machine's users with access to the file).
fn serve_local(
    listener: UnixListener,
    app: axum::Router,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.changed().await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(cause = %e, "HTTP server failed");
        }
    })
}

fn create_private_dir(path: &Path) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| e.to_string())
}

/// Bind the control socket, replacing a stale one but never a live spoke's.
async fn bind_control_socket(path: &Path) -> Result<UnixListener, RunError> {
    let fail = |cause: String| RunError::ControlSocket {
        path: path.display().to_string(),
        cause,
    };
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(fail("another spoke is running with this socket".into()));
        }
        std::fs::remove_file(path).map_err(|e| fail(e.to_string()))?;
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| fail(e.to_string()))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| fail(e.to_string()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| fail(e.to_string()))?;
    Ok(listener)
}
