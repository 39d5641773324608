//! Connection hygiene, the same for every listener of the hub and the spokes: the gRPC port,
//! the dashboard, the NSW API, the officers' console and the metrics.
//!
//! A peer that connects and says nothing must cost a bounded amount, for a bounded time, and
//! never stand in front of the clients behind it. So:
//!
//! - [`Listener`] accepts at once, always: a connection over `max_connections` is closed
//!   straight away and counted, never queued. Each accepted one first goes through its
//!   *handshake* (the TLS handshake; on plain HTTP, waiting for its first byte) on a task of
//!   its own, under `handshake_timeout`. At most `max_handshakes` are under way: a new
//!   connection then takes the place of the oldest one still silent (closed, counted), so a
//!   flood of silent connections holds the slots only until the next real client arrives,
//!   which completes its handshake in milliseconds.
//! - [`Conn`], the accepted socket, cuts a connection whose writes stall for
//!   `write_stall_timeout` (a peer that does not read), and, where asked (the gRPC port, whose
//!   HTTP/2 keepalive pings keep a live peer busy), one with no bytes either way for
//!   `idle_timeout`.
//! - [`serve_http1`] serves HTTP/1 with hyper's `header_read_timeout` (which also closes an idle
//!   keep-alive connection), and gives handlers request bodies that fail after `idle_timeout`
//!   without a byte ([`IdleBody`], [`BodyIdle`]).
//! - Running out of file descriptors on accept backs off (10 ms doubling to 1 s) instead of
//!   spinning, and is reported through [`crate::fd`].
//!
//! Faults are logged once per change of state (a listener saturating, then recovering), never
//! once per connection; the counts are in `/metrics` ([`Listeners`]).

use std::{
    collections::VecDeque,
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    task::{Context, Poll, ready},
    time::Duration,
};

use hyper::{
    Request, Response,
    body::{Body, Frame, Incoming, SizeHint},
    service::Service,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, watch},
    task::{AbortHandle, JoinSet},
    time::{Instant, Sleep},
};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{self, RootCertStore, server::WebPkiClientVerifier},
    server::TlsStream,
};
use tracing::{debug, info, warn};

use crate::{
    config::{Problems, TlsMaterial},
    fd,
};

/// Default time for a TLS handshake, or on plain HTTP for the first byte.
pub const DEFAULT_HANDSHAKE_TIMEOUT_SECS: u64 = 10;
/// Default time for an HTTP/1 request's headers (and between keep-alive requests).
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 10;
/// Default time without a byte: an idle request body, an idle gRPC connection (its keepalive
/// pings every 30 s keep a live one busy).
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;
/// Default time a write may wait for a peer that does not read.
pub const DEFAULT_WRITE_STALL_TIMEOUT_SECS: u64 = 30;
/// Default cap on the connections of one listener.
pub const DEFAULT_MAX_CONNECTIONS: u64 = 4096;
/// Default cap on the handshakes under way on one listener.
pub const DEFAULT_MAX_HANDSHAKES: u64 = 256;
/// The longest any of the time limits may be set to (one hour).
const MAX_TIMEOUT_SECS: u64 = 3600;
/// The largest connection cap accepted.
const MAX_CONNECTIONS_CAP: u64 = 1_000_000;

/// The `[net]` table of the hub's and the spoke's config: one set of limits for every listener
/// of the process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetFile {
    /// Seconds for a TLS handshake to complete (gRPC, dashboard), or for a plain HTTP
    /// connection to send its first byte (NSW API, console, metrics).
    #[serde(default = "default_handshake")]
    pub handshake_timeout_secs: u64,
    /// Seconds for an HTTP/1 request's headers to arrive, counted from when the server waits
    /// for them (also after a keep-alive response).
    #[serde(default = "default_header_read")]
    pub header_read_timeout_secs: u64,
    /// Seconds without a byte after which a request body (HTTP/1) or a whole connection (gRPC)
    /// is cut.
    #[serde(default = "default_idle")]
    pub idle_timeout_secs: u64,
    /// Seconds a write may wait for a peer that reads nothing before the connection is cut.
    #[serde(default = "default_write_stall")]
    pub write_stall_timeout_secs: u64,
    /// Connections open at once on each listener, handshakes included; more are closed at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: u64,
    /// Handshakes under way at once on each listener; a new connection then replaces the oldest.
    #[serde(default = "default_max_handshakes")]
    pub max_handshakes: u64,
}

fn default_handshake() -> u64 {
    DEFAULT_HANDSHAKE_TIMEOUT_SECS
}
fn default_header_read() -> u64 {
    DEFAULT_HEADER_READ_TIMEOUT_SECS
}
fn default_idle() -> u64 {
    DEFAULT_IDLE_TIMEOUT_SECS
}
fn default_write_stall() -> u64 {
    DEFAULT_WRITE_STALL_TIMEOUT_SECS
}
fn default_max_connections() -> u64 {
    DEFAULT_MAX_CONNECTIONS
}
fn default_max_handshakes() -> u64 {
    DEFAULT_MAX_HANDSHAKES
}

impl Default for NetFile {
    fn default() -> Self {
        Self {
            handshake_timeout_secs: DEFAULT_HANDSHAKE_TIMEOUT_SECS,
            header_read_timeout_secs: DEFAULT_HEADER_READ_TIMEOUT_SECS,
            idle_timeout_secs: DEFAULT_IDLE_TIMEOUT_SECS,
            write_stall_timeout_secs: DEFAULT_WRITE_STALL_TIMEOUT_SECS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
        }
    }
}

impl NetFile {
    /// The limits, every problem recorded under `net.<field>`.
    pub fn check(&self, problems: &mut Problems) -> Option<Limits> {
        let before = problems.len();
        let mut secs = |field: &str, value: u64| {
            if !(1..=MAX_TIMEOUT_SECS).contains(&value) {
                problems.push(format!(
                    "net.{field}: must be between 1 and {MAX_TIMEOUT_SECS} seconds"
                ));
            }
            Duration::from_secs(value)
        };
        let handshake_timeout = secs("handshake_timeout_secs", self.handshake_timeout_secs);
        let header_read_timeout = secs("header_read_timeout_secs", self.header_read_timeout_secs);
        let idle_timeout = secs("idle_timeout_secs", self.idle_timeout_secs);
        let write_stall_timeout = secs("write_stall_timeout_secs", self.write_stall_timeout_secs);
        if !(1..=MAX_CONNECTIONS_CAP).contains(&self.max_connections) {
            problems.push(format!(
                "net.max_connections: must be between 1 and {MAX_CONNECTIONS_CAP}"
            ));
        }
        if self.max_handshakes == 0 || self.max_handshakes > self.max_connections {
            problems.push("net.max_handshakes: must be between 1 and net.max_connections");
        }
        (problems.len() == before).then_some(Limits {
            handshake_timeout,
            header_read_timeout,
            idle_timeout,
            write_stall_timeout,
            max_connections: self.max_connections as usize,
            max_handshakes: self.max_handshakes as usize,
        })
    }
}

/// The checked limits; see [`NetFile`] for each.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub handshake_timeout: Duration,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub write_stall_timeout: Duration,
    pub max_connections: usize,
    pub max_handshakes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        NetFile::default()
            .check(&mut Problems::default())
            .expect("the defaults are valid")
    }
}

// === Stats ===

/// What one listener saw, for `/metrics`.
#[derive(Debug)]
pub struct Stats {
    /// The listener's name in the `listener` label (`grpc`, `nsw`, ...).
    name: &'static str,
    accepted: AtomicU64,
    refused: AtomicU64,
    evicted: AtomicU64,
    handshake_timeouts: AtomicU64,
    handshake_failures: AtomicU64,
    idle_cut: AtomicU64,
    body_idle_cut: AtomicU64,
    write_stalls: AtomicU64,
    open: AtomicI64,
    handshaking: AtomicI64,
}

impl Stats {
    pub fn new(name: &'static str) -> Arc<Self> {
        Arc::new(Self {
            name,
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            handshake_timeouts: AtomicU64::new(0),
            handshake_failures: AtomicU64::new(0),
            idle_cut: AtomicU64::new(0),
            body_idle_cut: AtomicU64::new(0),
            write_stalls: AtomicU64::new(0),
            open: AtomicI64::new(0),
            handshaking: AtomicI64::new(0),
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// The listeners' connections in `/metrics`: a collector reading each listener's counts at
/// every scrape, registered under the side's prefix (`caravan_hub_connections_open{listener="grpc"}`).
#[derive(Debug)]
pub struct Listeners(pub Vec<Arc<Stats>>);

impl prometheus_client::collector::Collector for Listeners {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> std::fmt::Result {
        use crate::metrics::write_family;
        use prometheus_client::metrics::{counter::ConstCounter, gauge::ConstGauge};
        type Pick = fn(&Stats) -> &AtomicU64;
        /// Name, help, and the samples of each listener: the `reason` label ("": none), the count.
        type Counters = (&'static str, &'static str, &'static [(&'static str, Pick)]);
        let counters: [Counters; 5] = [
            (
                "connections_accepted",
                "Connections accepted.",
                &[("", |s| &s.accepted)],
            ),
            (
                "connections_refused",
                "Connections closed at once: the listener had max_connections open.",
                &[("", |s| &s.refused)],
            ),
            (
                "handshakes_evicted",
                "Handshakes dropped (oldest first) to make room for a new connection: max_handshakes were under way.",
                &[("", |s| &s.evicted)],
            ),
            (
                "handshakes_failed",
                "Handshakes that failed, by reason (timeout: handshake_timeout passed).",
                &[
                    ("timeout", |s| &s.handshake_timeouts),
                    ("error", |s| &s.handshake_failures),
                ],
            ),
            (
                "connections_cut",
                "Connections cut by a time limit: idle (no byte either way), idle_body (a request body without a byte), write_stall (the peer read nothing).",
                &[
                    ("idle", |s| &s.idle_cut),
                    ("idle_body", |s| &s.body_idle_cut),
                    ("write_stall", |s| &s.write_stalls),
                ],
            ),
        ];
        for (name, help, picks) in counters {
            let labels: Vec<[(&str, &str); 2]> = self
                .0
                .iter()
                .flat_map(|s| {
                    picks
                        .iter()
                        .map(|(r, _)| [("listener", s.name), ("reason", *r)])
                })
                .collect();
            let counts = self.0.iter().flat_map(|s| {
                picks
                    .iter()
                    .map(|(_, pick)| ConstCounter::new(pick(s).load(Ordering::Relaxed)))
            });
            let samples: Vec<_> = labels
                .iter()
                .zip(counts)
                .map(|(l, count)| (if l[1].1.is_empty() { &l[..1] } else { &l[..] }, count))
                .collect();
            write_family(&mut encoder, name, help, &samples)?;
        }
        type Gauges = (&'static str, &'static str, fn(&Stats) -> &AtomicI64);
        let gauges: [Gauges; 2] = [
            (
                "connections_open",
                "Connections open now, handshakes included.",
                |s| &s.open,
            ),
            ("handshakes_in_flight", "Handshakes under way now.", |s| {
                &s.handshaking
            }),
        ];
        for (name, help, pick) in gauges {
            let labels: Vec<_> = self.0.iter().map(|s| [("listener", s.name)]).collect();
            let samples: Vec<_> = self
                .0
                .iter()
                .zip(&labels)
                .map(|(s, l)| (&l[..], ConstGauge::new(pick(s).load(Ordering::Relaxed))))
                .collect();
            write_family(&mut encoder, name, help, &samples)?;
        }
        Ok(())
    }
}

// === Conn ===

/// An accepted TCP connection: holds its place among the listener's `max_connections`, and
/// cuts itself when its writes stall, or (when asked) when nothing moves either way.
pub struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    /// Cut after this long without a byte either way, if set.
    idle: Option<Duration>,
    write_stall: Duration,
    last_activity: Instant,
    idle_timer: Pin<Box<Sleep>>,
    stalled: bool,
    stall_timer: Pin<Box<Sleep>>,
    stats: Arc<Stats>,
    _slot: OwnedSemaphorePermit,
}

impl Conn {
    fn new(
        stream: TcpStream,
        peer: SocketAddr,
        slot: OwnedSemaphorePermit,
        idle: Option<Duration>,
        write_stall: Duration,
        stats: Arc<Stats>,
    ) -> Self {
        let now = Instant::now();
        stats.open.fetch_add(1, Ordering::Relaxed);
        Self {
            local: stream.local_addr().ok(),
            stream,
            peer,
            idle,
            write_stall,
            last_activity: now,
            idle_timer: Box::pin(tokio::time::sleep_until(now + idle.unwrap_or_default())),
            stalled: false,
            stall_timer: Box::pin(tokio::time::sleep_until(now + write_stall)),
            stats,
            _slot: slot,
        }
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The local address the connection came in on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }

    /// Pending on I/O: whether the idle limit has passed (the timer is reset lazily, only when
    /// it fires early).
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let Some(idle) = self.idle else {
            return Poll::Pending;
        };
        loop {
            ready!(self.idle_timer.as_mut().poll(cx));
            let deadline = self.last_activity + idle;
            if deadline <= Instant::now() {
                self.stats.idle_cut.fetch_add(1, Ordering::Relaxed);
                debug!(peer = %self.peer, listener = self.stats.name, "idle connection cut");
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no byte either way within idle_timeout",
                ));
            }
            self.idle_timer.as_mut().reset(deadline);
        }
    }

    fn after_write(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match result {
            Poll::Ready(r) => {
                self.stalled = false;
                self.last_activity = Instant::now();
                Poll::Ready(r)
            }
            Poll::Pending => {
                if !self.stalled {
                    self.stalled = true;
                    let deadline = Instant::now() + self.write_stall;
                    self.stall_timer.as_mut().reset(deadline);
                }
                if self.stall_timer.as_mut().poll(cx).is_ready() {
                    self.stats.write_stalls.fetch_add(1, Ordering::Relaxed);
                    debug!(peer = %self.peer, listener = self.stats.name, "write stalled; connection cut");
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the peer read nothing within write_stall_timeout",
                    )));
                }
                if let Poll::Ready(e) = self.poll_idle(cx) {
                    return Poll::Ready(Err(e));
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.last_activity = Instant::now();
                Poll::Ready(r)
            }
            Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.after_write(cx, result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.after_write(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

// === Handshakes ===

/// What a connection goes through before it is served, on a task of its own, under
/// `handshake_timeout`.
pub trait Handshake: Send + Sync + 'static {
    /// The connection once through.
    type Io: Send + 'static;

    fn handshake(&self, conn: Conn) -> impl Future<Output = io::Result<Self::Io>> + Send + 'static;
}

/// Plain TCP (HTTP/1 without TLS): through once the peer has sent its first byte, so a silent
/// connection stays among the bounded handshakes and never reaches the server.
pub struct Plain;

impl Handshake for Plain {
    type Io = Conn;

    // Not `async fn`: the future must not borrow `self` (it runs on a task of its own).
    #[allow(clippy::manual_async_fn)]
    fn handshake(&self, conn: Conn) -> impl Future<Output = io::Result<Conn>> + Send + 'static {
        async move {
            // `peek` waits for a byte (or the end); `readable` may wake spuriously.
            conn.stream.peek(&mut [0u8; 1]).await?;
            Ok(conn)
        }
    }
}

/// A TLS handshake, the connection wrapped in `W` first (by default the [`Conn`] itself; the
/// hub's gRPC port wraps it in a type tonic can read the peer's address from).
pub struct Tls<W = Conn> {
    acceptor: TlsAcceptor,
    wrap: std::marker::PhantomData<fn() -> W>,
}

impl<W> Tls<W> {
    pub fn new(acceptor: TlsAcceptor) -> Self {
        Self {
            acceptor,
            wrap: std::marker::PhantomData,
        }
    }
}

impl<W> Handshake for Tls<W>
where
    W: From<Conn> + AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Io = TlsStream<W>;

    fn handshake(
        &self,
        conn: Conn,
    ) -> impl Future<Output = io::Result<TlsStream<W>>> + Send + 'static {
        self.acceptor.accept(W::from(conn))
    }
}

/// Why the TLS material of a config cannot make a TLS server (the gRPC port, the dashboard):
/// which setting is at fault, the parser's or rustls's error its source.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("tls.cert: not PEM certificates")]
    Cert(#[source] rustls_pki_types::pem::Error),
    #[error("tls.key: not a PEM private key")]
    Key(#[source] rustls_pki_types::pem::Error),
    #[error("tls.ca_cert: not PEM certificates")]
    CaPem(#[source] rustls_pki_types::pem::Error),
    #[error("tls.ca_cert: a certificate cannot be a trust anchor")]
    CaCert(#[source] rustls::Error),
    #[error("client verifier")]
    ClientVerifier(#[source] rustls::server::VerifierBuilderError),
    #[error("protocol versions")]
    Versions(#[source] rustls::Error),
    #[error("tls.cert/tls.key: not a usable server certificate and key")]
    Identity(#[source] rustls::Error),
}

/// The TLS server side every TLS listener uses: the hub's certificate, client certificates
/// required and checked against the CA, ring, the given ALPN protocols.
pub fn tls_acceptor(material: &TlsMaterial, alpn: &[&[u8]]) -> Result<TlsAcceptor, TlsSetupError> {
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&material.cert)
        .collect::<Result<_, _>>()
        .map_err(TlsSetupError::Cert)?;
    let key = PrivateKeyDer::from_pem_slice(&material.key).map_err(TlsSetupError::Key)?;
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&material.ca_cert) {
        roots
            .add(ca.map_err(TlsSetupError::CaPem)?)
            .map_err(TlsSetupError::CaCert)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(TlsSetupError::ClientVerifier)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsSetupError::Versions)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(TlsSetupError::Identity)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(config)))
}

// === Listener ===

/// A saturation under way: when it began, and the counts then.
struct Saturation {
    since: Instant,
    refused: u64,
    evicted: u64,
}

/// The accept loop: caps, handshakes beside it, backoff when descriptors run out.
pub struct Listener<H: Handshake> {
    tcp: TcpListener,
    handshake: H,
    limits: Limits,
    /// Cut connections idle for `limits.idle_timeout` (the gRPC port).
    cut_idle: bool,
    stats: Arc<Stats>,
    slots: Arc<Semaphore>,
    pending: JoinSet<Option<H::Io>>,
    /// Handshakes in the order they began, to drop the oldest first (finished ones are skipped).
    order: VecDeque<AbortHandle>,
    backoff: Duration,
    saturated: Option<Saturation>,
}

impl<H: Handshake> Listener<H> {
    pub fn new(tcp: TcpListener, handshake: H, limits: Limits, stats: Arc<Stats>) -> Self {
        Self {
            tcp,
            handshake,
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            limits,
            cut_idle: false,
            stats,
            pending: JoinSet::new(),
            order: VecDeque::new(),
            backoff: Duration::ZERO,
            saturated: None,
        }
    }

    /// Also cut connections with no byte either way for `idle_timeout` (for protocols that
    /// keep a live peer busy: HTTP/2 with keepalive pings).
    pub fn cut_idle_connections(mut self) -> Self {
        self.cut_idle = true;
        self
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// The next connection through its handshake. Cancel-safe.
    pub async fn accept(&mut self) -> H::Io {
        loop {
            tokio::select! {
                biased;
                Some(done) = self.pending.join_next() => {
                    self.check_saturation();
                    match done {
                        Ok(Some(io)) => return io,
                        // Failed, timed out (counted by the task), or evicted (counted here).
                        Ok(None) => {}
                        Err(e) if e.is_cancelled() => {}
                        Err(e) => warn!(listener = self.stats.name, cause = %e, "handshake task failed"),
                    }
                }
                accepted = self.tcp.accept() => match accepted {
                    Ok((tcp, peer)) => self.admit(tcp, peer),
                    Err(e) => self.accept_failed(e).await,
                },
            }
        }
    }

    fn admit(&mut self, tcp: TcpStream, peer: SocketAddr) {
        fd::available();
        self.backoff = Duration::ZERO;
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            // Closed at once (dropped): never queued behind the connections already open.
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            self.saturate("max_connections are open: new connections are closed at once");
            return;
        };
        let _ = tcp.set_nodelay(true);
        if self.pending.len() >= self.limits.max_handshakes {
            while let Some(oldest) = self.order.pop_front() {
                if !oldest.is_finished() {
                    oldest.abort();
                    self.stats.evicted.fetch_add(1, Ordering::Relaxed);
                    self.saturate(
                        "max_handshakes are under way: the oldest give way to new connections",
                    );
                    break;
                }
            }
        }
        let idle = self.cut_idle.then_some(self.limits.idle_timeout);
        let conn = Conn::new(
            tcp,
            peer,
            slot,
            idle,
            self.limits.write_stall_timeout,
            self.stats.clone(),
        );
        let handshake = self.handshake.handshake(conn);
        let (limit, stats) = (self.limits.handshake_timeout, self.stats.clone());
        let handle = self.pending.spawn(async move {
            stats.handshaking.fetch_add(1, Ordering::Relaxed);
            let _done = Handshaking(stats.clone());
            match tokio::time::timeout(limit, handshake).await {
                Ok(Ok(io)) => Some(io),
                Ok(Err(e)) => {
                    stats.handshake_failures.fetch_add(1, Ordering::Relaxed);
                    debug!(%peer, listener = stats.name, cause = %e, "handshake failed");
                    None
                }
                Err(_) => {
                    stats.handshake_timeouts.fetch_add(1, Ordering::Relaxed);
                    debug!(%peer, listener = stats.name, "handshake timed out");
                    None
                }
            }
        });
        self.order.push_back(handle);
        if self.order.len() > 2 * self.limits.max_handshakes {
            self.order.retain(|h| !h.is_finished());
        }
        self.check_saturation();
    }

    async fn accept_failed(&mut self, e: io::Error) {
        if fd::is_exhaustion(&e) {
            fd::exhausted(fd::During::Accept, &e);
            // The connection stays in the backlog and the socket stays readable: retrying at
            // once would spin.
            self.backoff =
                (self.backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
        } else {
            // A connection reset before it was accepted, and the like.
            debug!(listener = self.stats.name, cause = %e, "accept failed");
            self.backoff = Duration::from_millis(10);
        }
        tokio::time::sleep(self.backoff).await;
    }

    /// One line when the listener saturates.
    fn saturate(&mut self, why: &'static str) {
        if self.saturated.is_none() {
            warn!(
                listener = self.stats.name,
                max_connections = self.limits.max_connections,
                max_handshakes = self.limits.max_handshakes,
                "listener saturated: {why} (see the runbook, 'Connection floods')"
            );
            self.saturated = Some(Saturation {
                since: Instant::now(),
                refused: self.stats.refused.load(Ordering::Relaxed),
                evicted: self.stats.evicted.load(Ordering::Relaxed),
            });
        }
    }

    /// One line when it is back under half its caps.
    fn check_saturation(&mut self) {
        let Some(s) = &self.saturated else { return };
        let calm = self.pending.len() <= self.limits.max_handshakes / 2
            && self.slots.available_permits() >= self.limits.max_connections / 2;
        if calm {
            info!(
                listener = self.stats.name,
                lasted_ms = s.since.elapsed().as_millis() as u64,
                refused = self.stats.refused.load(Ordering::Relaxed) - s.refused,
                evicted = self.stats.evicted.load(Ordering::Relaxed) - s.evicted,
                "listener no longer saturated"
            );
            self.saturated = None;
        }
    }
}

/// Counts a handshake out of the gauge however its task ends (done, timed out, aborted).
struct Handshaking(Arc<Stats>);

impl Drop for Handshaking {
    fn drop(&mut self) {
        self.0.handshaking.fetch_sub(1, Ordering::Relaxed);
    }
}

// === HTTP/1 ===

/// A request body that fails with [`BodyIdle`] when no frame arrives for `idle` while it is
/// being read. Only time spent waiting for the body counts: a handler busy elsewhere is not
/// idle.
pub struct IdleBody<B = Incoming> {
    inner: B,
    idle: Duration,
    last: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    stats: Arc<Stats>,
}

impl<B> IdleBody<B> {
    pub fn new(inner: B, idle: Duration, stats: Arc<Stats>) -> Self {
        Self {
            inner,
            idle,
            last: Instant::now(),
            timer: None,
            stats,
        }
    }
}

/// The error of a request body idle for `idle_timeout`: handlers that answer it (the NSW
/// API's 408 `BODY_TIMEOUT`) find it in the error's source chain.
#[derive(Debug, thiserror::Error)]
#[error("no byte of the request body for {0:?} (idle_timeout)")]
pub struct BodyIdle(pub Duration);

impl<B> Body for IdleBody<B>
where
    B: Body + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.last = Instant::now();
                this.timer = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                // The wait starts now if the handler had not been waiting.
                let (idle, last) = (this.idle, this.last);
                let timer = this.timer.get_or_insert_with(|| {
                    Box::pin(tokio::time::sleep_until(last.max(Instant::now()) + idle))
                });
                if timer.as_mut().poll(cx).is_ready() {
                    this.stats.body_idle_cut.fetch_add(1, Ordering::Relaxed);
                    return Poll::Ready(Some(Err(Box::new(BodyIdle(idle)))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serve HTTP/1 on `listener` until `stop` changes (or its sender goes), then stop accepting,
/// let requests under way finish, and return. `make` builds the service of each connection
/// (it may read the connection: the dashboard takes the client certificate). Requests have
/// `header_read_timeout`; their bodies are [`IdleBody`].
pub async fn serve_http1<H, F, S, B>(
    mut listener: Listener<H>,
    mut make: F,
    mut stop: watch::Receiver<bool>,
) where
    H: Handshake,
    H::Io: AsyncRead + AsyncWrite + Unpin,
    F: FnMut(&H::Io) -> S,
    S: Service<Request<IdleBody>, Response = Response<B>> + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limits = *listener.limits();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let mut connections = JoinSet::new();
    loop {
        let io = tokio::select! {
            io = listener.accept() => io,
            _ = stop.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let service = make(&io);
        let (idle, stats) = (limits.idle_timeout, listener.stats().clone());
        let service = Arc::new(service);
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let stats = stats.clone();
            service.call(request.map(|body| IdleBody::new(body, idle, stats)))
        });
        let connection = builder.serve_connection(TokioIo::new(io), service);
        let mut stop = stop.clone();
        let name = listener.stats().name;
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let outcome = tokio::select! {
                outcome = connection.as_mut() => outcome,
                _ = stop.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = outcome {
                debug!(listener = name, cause = %e, "HTTP connection ended");
            }
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn every_bad_setting_is_named() {
        let file = NetFile {
            handshake_timeout_secs: 0,
            idle_timeout_secs: 4000,
            max_connections: 10,
            max_handshakes: 11,
            ..NetFile::default()
        };
        let mut problems = Problems::default();
        assert!(file.check(&mut problems).is_none());
        let text = problems
            .finish(std::path::Path::new("hub.toml"), || ())
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("net.handshake_timeout_secs: must be between 1 and 3600"),
            "{text}"
        );
        assert!(text.contains("net.idle_timeout_secs"), "{text}");
        assert!(
            text.contains("net.max_handshakes: must be between 1 and net.max_connections"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 3, "{text}");
        let limits = Limits::default();
        assert_eq!(limits.handshake_timeout, Duration::from_secs(10));
        assert_eq!(limits.max_handshakes, 256);
    }

    /// The whole chain of an error, as the binaries print it.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut text = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            text.push_str(&format!(": {c}"));
            cause = c.source();
        }
        text
    }

    #[test]
    fn tls_material_that_does_not_parse_names_the_setting_and_keeps_the_cause() {
        let material = |cert: &str, key: &str| TlsMaterial {
            ca_cert: Vec::new(),
            cert: cert.as_bytes().to_vec(),
            key: key.as_bytes().to_vec(),
        };
        let cut_short = "-----BEGIN CERTIFICATE-----\nAAAA\n";
        let e = tls_acceptor(&material(cut_short, ""), &[]).err().unwrap();
        assert!(matches!(e, TlsSetupError::Cert(_)), "{e:?}");
        let text = chain(&e);
        assert!(text.starts_with("tls.cert: "), "{text}");
        assert!(std::error::Error::source(&e).is_some(), "{text}");
        let e = tls_acceptor(&material("", "not a key"), &[]).err().unwrap();
        assert!(matches!(e, TlsSetupError::Key(_)), "{e:?}");
        assert!(chain(&e).starts_with("tls.key: "), "{}", chain(&e));
        assert!(std::error::Error::source(&e).is_some());
    }

    async fn listener(limits: Limits) -> (Listener<Plain>, SocketAddr) {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        (Listener::new(tcp, Plain, limits, Stats::new("test")), addr)
    }

    /// Wait for `stream` to be closed by the other side; panics after `within`.
    async fn closed(stream: &mut TcpStream, within: Duration) {
        let mut buf = [0u8; 16];
        match tokio::time::timeout(within, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {}
            other => panic!("connection still open: {other:?}"),
        }
    }

    #[tokio::test]
    async fn silent_connections_give_way_and_time_out() {
        let limits = Limits {
            handshake_timeout: Duration::from_millis(300),
            max_handshakes: 4,
            ..Limits::default()
        };
        let (mut listener, addr) = listener(limits).await;
        let accepting = tokio::spawn(async move {
            let conn = listener.accept().await;
            (listener, conn)
        });
        let mut silent = Vec::new();
        for _ in 0..8 {
            silent.push(TcpStream::connect(addr).await.unwrap());
        }
        // The first four were evicted by the last four, which then time out.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut talker = TcpStream::connect(addr).await.unwrap();
        talker.write_all(b"GET").await.unwrap();
        let (listener, mut conn) = tokio::time::timeout(Duration::from_secs(2), accepting)
            .await
            .expect("the client that speaks is served at once")
            .unwrap();
        let mut buf = [0u8; 3];
        conn.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"GET");
        for s in &mut silent {
            closed(s, Duration::from_secs(2)).await;
        }
        let stats = listener.stats();
        assert!(stats.evicted.load(Ordering::Relaxed) >= 4, "{stats:?}");
        assert_eq!(stats.accepted.load(Ordering::Relaxed), 9);
        let out = crate::metrics::text_of("caravan_test", Listeners(vec![stats.clone()]));
        assert!(
            out.contains("caravan_test_connections_accepted_total{listener=\"test\"} 9"),
            "{out}"
        );
    }

    #[tokio::test]
    async fn over_the_cap_is_closed_at_once_and_idle_is_cut() {
        let limits = Limits {
            max_connections: 1,
            max_handshakes: 1,
            idle_timeout: Duration::from_millis(200),
            ..Limits::default()
        };
        let (listener, addr) = listener(limits).await;
        let mut listener = listener.cut_idle_connections();
        let mut first = TcpStream::connect(addr).await.unwrap();
        first.write_all(b"x").await.unwrap();
        let mut conn = listener.accept().await;
        let mut second = TcpStream::connect(addr).await.unwrap();
        let refused = tokio::spawn(async move {
            closed(&mut second, Duration::from_secs(2)).await;
        });
        let accepting = tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(1), listener.accept()).await;
            listener
        });
        refused.await.unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(conn.read(&mut buf).await.unwrap(), 1);
        let started = Instant::now();
        let err = conn.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(190));
        let listener = accepting.await.unwrap();
        assert_eq!(listener.stats().refused.load(Ordering::Relaxed), 1);
        assert_eq!(listener.stats().idle_cut.load(Ordering::Relaxed), 1);
        drop(first);
    }
}
