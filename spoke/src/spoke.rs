//! The running spoke (owned here): the stages built from the config and wired together
//! ([`Spoke`]), the tasks they run and the listeners that serve them ([`run`]).
//!
//! Wiring only: what each stage does is in its own module ([`crate::hub`],
//! [`crate::outbound`], [`crate::inbound`], [`crate::api`]).

use std::{future::Future, os::unix::fs::PermissionsExt, path::Path, sync::Arc};

use hyper_util::service::TowerToHyperService;
use tokio::{net::UnixListener, sync::watch};
use tracing::{info, warn};

use caravan_common::{
    ParticipantId,
    net::{self, Listener, Plain, Stats},
    process::{Listening, listen},
};

use crate::{
    api::{self, Api},
    config::Config,
    hub::{self as hub_link, Hub, log_audit::LogAudit, trust},
    inbound::Inbound,
    outbound::Outbound,
    rt::{Shutdown, blocking},
    store,
};

/// Page cache of the spoke's store.
const STORE_CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// Errors that stop the spoke.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("hub endpoint: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("control socket {path}: {source}")]
    ControlSocket {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A live spoke answers on the control socket already.
    #[error("control socket {path}: another spoke is running with this socket")]
    ControlSocketTaken { path: String },
    #[error("data_dir {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A listener of the config (`console.listen`, `nsw.listen`, `metrics_listen`).
    #[error(transparent)]
    Listen(#[from] caravan_common::process::ListenError),
    /// `listening.json` in the data folder (where the spoke listens, for scripts).
    #[error(transparent)]
    Listening(#[from] caravan_common::process::ListeningError),
    #[error(transparent)]
    Trust(#[from] trust::TrustError),
    /// The NSW webhook's client cannot be made (its URL or TLS settings).
    #[error(transparent)]
    Webhook(#[from] api::webhook::WebhookError),
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
    create_private_dir(&config.data_dir).map_err(|source| RunError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    // Never leave a previous run's addresses for a reader while this one starts.
    let data_dir = config.data_dir.clone();
    Listening::clear(&data_dir)?;
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
    let link = hub_link::link::HubLink::new(&config)?;
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
    // The webhook's client (its TLS roots) is made before anything starts, too.
    let webhook = match nsw.as_ref().and_then(|n| n.webhook.as_ref()) {
        Some(w) => Some(api::webhook::Webhook::new(w)?),
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
    let me = config.participant;
    let spoke = Spoke::new(&config, store.clone(), trust.clone(), link.clone());
    let api = spoke.api(me);
    let local_addr = |l: &Option<tokio::net::TcpListener>| l.as_ref()?.local_addr().ok();
    Listening {
        nsw: local_addr(&nsw_listener),
        console: local_addr(&console_listener),
        metrics: local_addr(&metrics_listener),
        control_socket: Some(socket.clone()),
        ..Listening::default()
    }
    .of_this_process()
    .write(&data_dir)?;
    info!(participant = %me, socket = %socket.display(), "control API listening");

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = vec![
        tokio::spawn(trust.follow(link, stop_rx.clone())),
        tokio::spawn(spoke.inbound.clone().receive(stop_rx.clone())),
        tokio::spawn(spoke.outbound.clone().drain_outbox(stop_rx.clone())),
        tokio::spawn(spoke.outbound.clone().follow_status(stop_rx.clone())),
        tokio::spawn(
            spoke
                .hub
                .log()
                .clone()
                .run(spoke.hub.client(), stop_rx.clone()),
        ),
    ];
    tasks.push(serve_local(
        listener,
        api::control::router(api.clone(), max_payload_bytes),
        stop_rx.clone(),
    ));
    if let (Some(c), Some(listener)) = (console, console_listener) {
        info!(addr = %local(&listener), officers = c.officers.len(), "officer console listening");
        // Certificates issued from the console are queued like any document the spoke sends.
        let issuance = Arc::new(crate::issuance::Issuance::new(
            me,
            store.clone(),
            spoke.outbound.clone(),
        ));
        let console = api::console::Console::new(api.clone(), &c, issuance);
        if let Some(problem) = console.cookie_problem() {
            warn!("{problem}");
        }
        tasks.push(serve(
            Listener::new(listener, Plain, limits, console_stats),
            console.router(),
            stop_rx.clone(),
        ));
    }
    if let Some(listener) = metrics_listener {
        info!(addr = %local(&listener), "metrics listening");
        tasks.push(serve(
            Listener::new(listener, Plain, limits, metrics_stats),
            api::metrics::router(api.clone(), listeners, stop_rx.clone()),
            stop_rx.clone(),
        ));
    }
    if let (Some(n), Some(listener)) = (nsw, nsw_listener) {
        info!(addr = %local(&listener), clients = n.tokens.len(), "NSW API listening");
        if let Some(webhook) = webhook {
            info!(url = %n.webhook.as_ref().map(|w| w.url.to_string()).unwrap_or_default(),
                "pushing received documents to the NSW webhook");
            // Its own task: a slow or hanging webhook delays only the pushes.
            tasks.push(tokio::spawn(api::webhook::push(
                webhook,
                store.clone(),
                spoke.inbound.arrivals(),
                stop_rx.clone(),
            )));
        }
        tasks.push(serve(
            Listener::new(listener, Plain, limits, nsw_stats),
            api::nsw::router(api.clone(), max_payload_bytes, n.tokens),
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
    Listening::clear(&data_dir)?;
    blocking(move || {
        store.flush()?;
        store.note_floors()
    })
    .await?;
    info!("store flushed; stopped");
    Ok(())
}

/// The stages of a running spoke, wired together: state only, each stage's behaviour is its
/// own.
pub struct Spoke {
    pub store: Arc<store::SpokeStore>,
    pub hub: Arc<Hub>,
    pub outbound: Arc<Outbound>,
    pub inbound: Arc<Inbound>,
}

impl Spoke {
    /// The stages over `store`, with the trust list held and a channel to the hub.
    pub fn new(
        config: &Config,
        store: Arc<store::SpokeStore>,
        trust: Arc<trust::TrustHolder>,
        link: hub_link::link::HubLink,
    ) -> Self {
        let log = Arc::new(LogAudit::new(store.clone()));
        let hub = Arc::new(Hub::new(link, config.max_payload_bytes, trust, log));
        Self {
            outbound: Arc::new(Outbound::new(config, store.clone(), hub.clone())),
            inbound: Arc::new(Inbound::new(config, store.clone(), hub.clone())),
            hub,
            store,
        }
    }

    /// What the interfaces reach, for participant `me`.
    pub fn api(&self, me: ParticipantId) -> Api {
        Api {
            me,
            store: self.store.clone(),
            hub: self.hub.clone(),
            outbound: self.outbound.clone(),
            inbound: self.inbound.clone(),
        }
    }
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
    stop: Shutdown,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(net::serve_http1(
        listener,
        move |conn| {
            // Handlers that need the client's address (the console's login) find it here.
            let peer = axum::extract::ConnectInfo(conn.peer_addr());
            TowerToHyperService::new(tower::ServiceExt::map_request(
                app.clone(),
                move |mut request: axum::extract::Request<_>| {
                    request.extensions_mut().insert(peer);
                    request
                },
            ))
        },
        stop,
    ))
}

/// Serve `app` on the local control socket until `stop` changes (reachable only by this
/// machine's users with access to the file).
fn serve_local(
    listener: UnixListener,
    app: axum::Router,
    mut stop: Shutdown,
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

fn create_private_dir(path: &Path) -> Result<(), std::io::Error> {
    std::fs::create_dir_all(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

/// Bind the control socket, replacing a stale one but never a live spoke's.
async fn bind_control_socket(path: &Path) -> Result<UnixListener, RunError> {
    let fail = |source: std::io::Error| RunError::ControlSocket {
        path: path.display().to_string(),
        source,
    };
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(RunError::ControlSocketTaken {
                path: path.display().to_string(),
            });
        }
        std::fs::remove_file(path).map_err(fail)?;
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    let listener = UnixListener::bind(path).map_err(fail)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
    Ok(listener)
}
