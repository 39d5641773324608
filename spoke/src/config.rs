//! The spoke's configuration file (TOML), checked completely at start.
//!
//! ```toml
//! participant = "KZ"                       # this spoke's participant id
//! hub_url = "https://127.0.0.1:7443"       # the hub's gRPC endpoint, or its replicas':
//! # hub_urls = ["https://hub-a:7443", "https://hub-b:7443"]   (one at a time, the next on failure)
//! hub_tls_name = "localhost"               # name in the hub's certificate (default: URL host)
//! data_dir = "data"                        # inbox and sent messages; relative to this file
//! store_engine = "redb"                    # "redb" (default for a new store) or "sled"; see below
//! signing_key = "signing.key"              # from `caravan-spoke keygen`
//! control_socket = "data/control.sock"     # local control API (default: <data_dir>/control.sock)
//! max_payload_bytes = 67108864             # largest document sent (default 64 MiB)
//! payload_in_flight_mib = 128              # payloads taken in at once, and submitted at once
//! anchor_public_key = "base64..."          # the hub's trust anchor, pinned (hub-anchor.pub)
//!
//! [tls]
//! ca_cert = "tls/ca.pem"                   # the hub's CA
//! cert = "tls/KZ.pem"                      # this spoke's client certificate
//! key = "tls/KZ.key"
//!
//! [net]                                    # every listener's limits (optional; the defaults)
//! handshake_timeout_secs = 10              # first byte of a connection
//! header_read_timeout_secs = 10
//! idle_timeout_secs = 60                   # an idle request body
//! write_stall_timeout_secs = 30
//! max_connections = 4096
//! max_handshakes = 256
//!
//! [upload]                                 # how a document handed to `send` must arrive
//! grace_secs = 20
//! min_rate_bytes_per_sec = 500
//! room_wait_secs = 30                      # wait for room in payload_in_flight_mib, then 503
//! ```
//!
//! Participants, keys and the hub's receipt keys are not configured here: they come from the
//! hub's signed trust list, checked against the pinned anchor key.

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

use crate::i18n::{Lang, clock::Clock};

use caravan_common::{
    ParticipantId,
    config::{ConfigError, Problems, TlsFiles, TlsMaterial, read_toml, resolve},
    net::{Limits, NetFile},
    signing::{PublicKey, SigningKey},
    store::EngineKind,
};

/// Default largest payload sent: 64 MiB, as the hub's default.
pub const DEFAULT_MAX_PAYLOAD_BYTES: u64 = 64 * 1024 * 1024;
/// Default room for payloads in memory, in MiB: for those `send` takes in at once, and again
/// for those the outbox submits at once.
pub const DEFAULT_PAYLOAD_IN_FLIGHT_MIB: u64 = 128;
/// The largest room allowed (64 GiB).
const MAX_PAYLOAD_IN_FLIGHT_MIB: u64 = 64 * 1024;

/// The file as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpokeFile {
    /// This spoke's participant id (ISO 3166-1 alpha-2).
    pub participant: String,
    /// The hub's gRPC endpoint, `https://host:port`; or give `hub_urls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_url: Option<String>,
    /// The endpoints of one hub's replicas (all active on one database), tried in order: the
    /// spoke uses one at a time and moves to the next when the hub cannot be reached there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hub_urls: Vec<String>,
    /// The DNS name or IP the hub's certificate is checked against; defaults to the URL's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_tls_name: Option<String>,
    /// Folder of the spoke's store.
    pub data_dir: PathBuf,
    /// The store's engine: for a new store, the one it is made with (unset: redb); an
    /// existing store keeps the engine it was made with, and a setting naming the other one
    /// is refused at start (move a store with `caravan-spoke store migrate`).
    #[serde(default)]
    pub store_engine: Option<EngineKind>,
    /// The participant's ed25519 document-signing key.
    pub signing_key: PathBuf,
    /// Unix socket of the local control API used by the CLI; only this machine's users with
    /// access to the file can reach it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_socket: Option<PathBuf>,
    /// Largest payload this spoke sends, in bytes.
    #[serde(default = "default_max_payload")]
    pub max_payload_bytes: u64,
    /// Payload MiB held in memory at once by the documents `send` takes in, and again by the
    /// outbox's submissions; more wait for room (one larger than this goes alone).
    #[serde(default = "default_payload_in_flight")]
    pub payload_in_flight_mib: u64,
    /// The hub's trust-anchor public key (base64, `hub-anchor.pub` from `caravan-hub pki
    /// init`): only trust lists it signed are believed.
    pub anchor_public_key: String,
    /// TLS material.
    pub tls: TlsFiles,
    /// The national single window's REST API; absent: not served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nsw: Option<NswFile>,
    /// Address for Prometheus metrics (plain HTTP `GET /metrics`); absent: not served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
    /// The officers' web console; absent: not served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console: Option<ConsoleFile>,
    /// Time limits and caps of every TCP listener (NSW API, console, metrics).
    #[serde(default)]
    pub net: NetFile,
    /// How a document handed to `send` must arrive (NSW API and control API).
    #[serde(default)]
    pub upload: UploadFile,
    /// The content checks' limits (clock skew, age per document type).
    #[serde(default)]
    pub checks: CheckRules,
}

/// The officers' web console as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleFile {
    /// Address of the console, e.g. "127.0.0.1:8081" (plain HTTP: keep it on loopback or
    /// behind a TLS proxy).
    pub listen: String,
    pub officers: Vec<OfficerFile>,
    /// The time zone the console shows times in: an IANA name such as "Asia/Almaty"; absent:
    /// UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// The console's address as officers reach it, e.g. "https://console.cn.example" (the
    /// TLS proxy in front of `listen`): the printed QR code points there. `https://` unless
    /// the host is loopback. Absent: printed pages carry no QR code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// The addresses of reverse proxies in front of `listen` whose `X-Forwarded-For` is
    /// believed, e.g. ["10.0.0.5"]: behind them, the login throttle and the public lookup
    /// throttle count the client the proxy saw, not the proxy. Absent: no one's header is
    /// believed (anyone can write one), and every client counts as the address it connects from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
}

/// An officer account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfficerFile {
    pub user: String,
    /// argon2 PHC string (`caravan-spoke officer-password` prints it).
    pub password_hash: String,
    /// The language the console speaks to this officer: a catalogue's tag ("en", "ru",
    /// "zh"); absent: the one chosen on the login page (from the browser's Accept-Language).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// What the officer may do: `viewing` (read what arrived and was sent), `issuing`
    /// (prepare certificates), `approving` (approve, and so sign and send, what another officer
    /// prepared). Absent: viewing only.
    #[serde(default = "viewing_only", skip_serializing_if = "is_viewing_only")]
    pub roles: Vec<Role>,
}

/// An officer's role in the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads received and sent documents (every account can).
    Viewing,
    /// Prepares certificates: drafts, templates, corrections.
    Issuing,
    /// Approves a certificate another officer prepared: it is then signed with the country's
    /// key and sent.
    Approving,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewing => "viewing",
            Self::Issuing => "issuing",
            Self::Approving => "approving",
        }
    }
}

fn viewing_only() -> Vec<Role> {
    vec![Role::Viewing]
}

fn is_viewing_only(roles: &[Role]) -> bool {
    roles == [Role::Viewing]
}

/// The NSW REST API as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NswFile {
    /// Address of the HTTP API, e.g. "127.0.0.1:8080". Keep it on loopback, or put a TLS
    /// proxy in front of it: the API itself speaks plain HTTP.
    pub listen: String,
    /// Clients allowed in, each with the SHA-256 (hex) of its bearer token.
    pub tokens: Vec<NswTokenFile>,
    /// Where to push each received document (POST, JSON), retried until it answers 2xx:
    /// `http://` (keep it on the same machine or a trusted network) or `https://`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// How the webhook is reached: time limits, and the CA for `https://`.
    #[serde(default, skip_serializing_if = "WebhookFile::is_default")]
    pub webhook: WebhookFile,
}

/// Default time to connect to the webhook (TCP, and TLS for `https://`), in seconds.
pub const DEFAULT_WEBHOOK_CONNECT_TIMEOUT_SECS: u64 = 5;
/// Default time for the webhook to answer a push, in seconds.
pub const DEFAULT_WEBHOOK_RESPONSE_TIMEOUT_SECS: u64 = 30;

/// The `[nsw.webhook]` table as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookFile {
    /// Seconds to connect (TCP, and the TLS handshake); then the push fails and is retried.
    #[serde(default = "default_webhook_connect")]
    pub connect_timeout_secs: u64,
    /// Seconds for the whole answer once connected; then the push fails and is retried.
    #[serde(default = "default_webhook_response")]
    pub response_timeout_secs: u64,
    /// For `https://`: a PEM file of the CA(s) the webhook's certificate must chain to;
    /// absent: the webpki roots (the public web's CAs). Relative to the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

fn default_webhook_connect() -> u64 {
    DEFAULT_WEBHOOK_CONNECT_TIMEOUT_SECS
}
fn default_webhook_response() -> u64 {
    DEFAULT_WEBHOOK_RESPONSE_TIMEOUT_SECS
}

impl Default for WebhookFile {
    fn default() -> Self {
        Self {
            connect_timeout_secs: DEFAULT_WEBHOOK_CONNECT_TIMEOUT_SECS,
            response_timeout_secs: DEFAULT_WEBHOOK_RESPONSE_TIMEOUT_SECS,
            ca_file: None,
        }
    }
}

impl WebhookFile {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// One NSW API client.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NswTokenFile {
    /// A name for the logs, e.g. "kz-single-window".
    pub name: String,
    /// SHA-256 of the token, 64 hex digits (`caravan-spoke token` prints it).
    pub sha256: String,
}

fn default_max_payload() -> u64 {
    DEFAULT_MAX_PAYLOAD_BYTES
}

fn default_payload_in_flight() -> u64 {
    DEFAULT_PAYLOAD_IN_FLIGHT_MIB
}

/// A client of the NSW API: a name for the logs, and the SHA-256 of its token.
#[derive(Debug, Clone)]
pub struct Token {
    pub name: String,
    pub sha256: [u8; 32],
}

/// The NSW API's configuration, checked.
#[derive(Debug, Clone)]
pub struct NswConfig {
    pub listen: SocketAddr,
    pub tokens: Vec<Token>,
    /// Where received documents are pushed, if anywhere.
    pub webhook: Option<WebhookConfig>,
}

/// The NSW webhook, checked.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL.
    pub url: axum::http::Uri,
    /// For `https://`: the CA(s) the webhook's certificate must chain to (PEM); `None`: the
    /// webpki roots.
    pub ca_pem: Option<Vec<u8>>,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
}

/// An officer account of the console: a user name, an argon2 password hash (PHC string) and
/// the language of the account, if one is set.
#[derive(Debug, Clone)]
pub struct Officer {
    pub user: String,
    pub password_hash: String,
    pub language: Option<Lang>,
    /// What the officer may do; every officer may view.
    pub roles: Vec<Role>,
}

impl Officer {
    pub fn may(&self, role: Role) -> bool {
        role == Role::Viewing || self.roles.contains(&role)
    }
}

/// The console's configuration, checked.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    pub listen: SocketAddr,
    pub officers: Vec<Officer>,
    /// The time zone times are shown in.
    pub clock: Clock,
    /// `public_url` checked, without a trailing `/`.
    pub public_url: Option<String>,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<IpAddr>,
}

/// Default grace period before the minimum rate applies, in seconds.
pub const DEFAULT_GRACE_SECS: u64 = 20;
/// Default minimum average rate of a body after the grace period, in bytes per second.
pub const DEFAULT_MIN_RATE: u64 = 500;
/// Default longest wait for room among `payload_in_flight_mib`, in seconds.
pub const DEFAULT_ROOM_WAIT_SECS: u64 = 30;

/// The `[upload]` table of the spoke's config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadFile {
    /// Seconds a document's body may take before the minimum rate applies.
    #[serde(default = "default_grace")]
    pub grace_secs: u64,
    /// After the grace period, the body must have arrived at this average rate (bytes/s) at
    /// least: each `min_rate_bytes_per_sec` bytes received buy one more second.
    #[serde(default = "default_min_rate")]
    pub min_rate_bytes_per_sec: u64,
    /// Seconds a send waits for room among `payload_in_flight_mib` before it is answered 503.
    #[serde(default = "default_room_wait")]
    pub room_wait_secs: u64,
}

fn default_grace() -> u64 {
    DEFAULT_GRACE_SECS
}
fn default_min_rate() -> u64 {
    DEFAULT_MIN_RATE
}
fn default_room_wait() -> u64 {
    DEFAULT_ROOM_WAIT_SECS
}

impl Default for UploadFile {
    fn default() -> Self {
        Self {
            grace_secs: DEFAULT_GRACE_SECS,
            min_rate_bytes_per_sec: DEFAULT_MIN_RATE,
            room_wait_secs: DEFAULT_ROOM_WAIT_SECS,
        }
    }
}

impl UploadFile {
    /// The rules, every problem recorded under `upload.<field>`.
    pub fn check(&self, problems: &mut Problems) -> UploadRules {
        if !(1..=3600).contains(&self.grace_secs) {
            problems.push("upload.grace_secs: must be between 1 and 3600 seconds");
        }
        if self.min_rate_bytes_per_sec == 0 {
            problems.push("upload.min_rate_bytes_per_sec: must be at least 1");
        }
        if !(1..=3600).contains(&self.room_wait_secs) {
            problems.push("upload.room_wait_secs: must be between 1 and 3600 seconds");
        }
        UploadRules {
            grace: Duration::from_secs(self.grace_secs),
            min_rate: self.min_rate_bytes_per_sec.max(1),
            room_wait: Duration::from_secs(self.room_wait_secs),
        }
    }
}

/// The checked rules; see [`UploadFile`].
#[derive(Debug, Clone, Copy)]
pub struct UploadRules {
    pub grace: Duration,
    pub min_rate: u64,
    pub room_wait: Duration,
}

impl Default for UploadRules {
    fn default() -> Self {
        UploadFile::default().check(&mut Problems::default())
    }
}

/// The content checks' limits: the `[checks]` table of the spoke's config (see
/// [`crate::checks`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRules {
    /// How far ahead of this spoke's clock a document's issue date may be, in seconds.
    #[serde(default = "default_check_skew")]
    pub clock_skew_secs: u64,
    /// An e-Phyto issued more days ago than this gets a WARN.
    #[serde(default = "default_age_phyto")]
    pub max_age_days_phytosanitary: u64,
    /// A certificate of origin issued more days ago than this gets a WARN.
    #[serde(default = "default_age_co")]
    pub max_age_days_certificate_of_origin: u64,
    /// An invoice issued more days ago than this gets a WARN.
    #[serde(default = "default_age_invoice")]
    pub max_age_days_invoice: u64,
}

/// Default `checks.clock_skew_secs`.
pub const DEFAULT_CHECK_SKEW_SECS: u64 = 300;
/// Default `checks.max_age_days_phytosanitary`.
pub const DEFAULT_MAX_AGE_DAYS_PHYTOSANITARY: u64 = 90;
/// Default `checks.max_age_days_certificate_of_origin`.
pub const DEFAULT_MAX_AGE_DAYS_CERTIFICATE_OF_ORIGIN: u64 = 365;
/// Default `checks.max_age_days_invoice`.
pub const DEFAULT_MAX_AGE_DAYS_INVOICE: u64 = 365;

fn default_check_skew() -> u64 {
    DEFAULT_CHECK_SKEW_SECS
}
fn default_age_phyto() -> u64 {
    DEFAULT_MAX_AGE_DAYS_PHYTOSANITARY
}
fn default_age_co() -> u64 {
    DEFAULT_MAX_AGE_DAYS_CERTIFICATE_OF_ORIGIN
}
fn default_age_invoice() -> u64 {
    DEFAULT_MAX_AGE_DAYS_INVOICE
}

impl Default for CheckRules {
    fn default() -> Self {
        Self {
            clock_skew_secs: DEFAULT_CHECK_SKEW_SECS,
            max_age_days_phytosanitary: DEFAULT_MAX_AGE_DAYS_PHYTOSANITARY,
            max_age_days_certificate_of_origin: DEFAULT_MAX_AGE_DAYS_CERTIFICATE_OF_ORIGIN,
            max_age_days_invoice: DEFAULT_MAX_AGE_DAYS_INVOICE,
        }
    }
}

impl CheckRules {
    /// The age beyond which a document of type `t` gets a WARN, in days.
    pub fn max_age_days(&self, t: caravan_common::DocumentType) -> u64 {
        use caravan_common::DocumentType::*;
        match t {
            Phytosanitary => self.max_age_days_phytosanitary,
            CertificateOfOrigin => self.max_age_days_certificate_of_origin,
            Invoice => self.max_age_days_invoice,
        }
    }

    /// Every problem recorded under `checks.<field>`.
    pub fn check(&self, problems: &mut Problems) {
        if self.clock_skew_secs > 86_400 {
            problems.push("checks.clock_skew_secs: must be at most 86400 seconds (a day)");
        }
        for (name, days) in [
            (
                "max_age_days_phytosanitary",
                self.max_age_days_phytosanitary,
            ),
            (
                "max_age_days_certificate_of_origin",
                self.max_age_days_certificate_of_origin,
            ),
            ("max_age_days_invoice", self.max_age_days_invoice),
        ] {
            if !(1..=36_500).contains(&days) {
                problems.push(format!("checks.{name}: must be between 1 and 36500 days"));
            }
        }
    }
}

/// Just enough of the config to reach a running spoke: the CLI's view.
pub struct ControlConfig {
    pub participant: String,
    pub control_socket: PathBuf,
    /// The largest document the spoke takes, so that the CLI refuses a larger one before
    /// uploading it.
    pub max_payload_bytes: usize,
}

impl ControlConfig {
    /// Read only what the CLI needs, so it works even if key files are unreadable to it.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file: SpokeFile = read_toml(path)?;
        let data_dir = resolve(path, &file.data_dir);
        Ok(Self {
            control_socket: control_socket(path, &file, &data_dir),
            participant: file.participant,
            max_payload_bytes: file.max_payload_bytes as usize,
        })
    }
}

fn control_socket(path: &Path, file: &SpokeFile, data_dir: &Path) -> PathBuf {
    match &file.control_socket {
        Some(p) => resolve(path, p),
        None => data_dir.join("control.sock"),
    }
}

/// The checked configuration.
pub struct Config {
    pub participant: ParticipantId,
    /// The hub's address, or its replicas' in order (never empty).
    pub hub_urls: Vec<String>,
    pub hub_tls_name: Option<String>,
    pub data_dir: PathBuf,
    /// As configured (`None`: the store's own, or redb for a new one).
    pub store_engine: Option<EngineKind>,
    pub signing_key: SigningKey,
    pub control_socket: PathBuf,
    pub max_payload_bytes: usize,
    /// See [`SpokeFile::payload_in_flight_mib`].
    pub payload_in_flight_mib: usize,
    pub tls: TlsMaterial,
    pub anchor: PublicKey,
    pub nsw: Option<NswConfig>,
    pub console: Option<ConsoleConfig>,
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// See [`SpokeFile::net`].
    pub net: Limits,
    /// See [`SpokeFile::upload`].
    pub upload: UploadRules,
    /// See [`SpokeFile::checks`].
    pub checks: CheckRules,
}

impl Config {
    /// Read and check `path`; every problem is reported.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file: SpokeFile = read_toml(path)?;
        let mut problems = Problems::default();
        let participant = problems.check("participant", file.participant.parse::<ParticipantId>());
        let hub_urls = caravan_common::config::hub_addresses(
            file.hub_url.as_deref(),
            &file.hub_urls,
            &mut problems,
        );
        let tls = file.tls.read(path, &mut problems);
        let signing_key = problems.check(
            "signing_key",
            SigningKey::load(&resolve(path, &file.signing_key)),
        );
        let max_payload_bytes = match usize::try_from(file.max_payload_bytes) {
            Ok(n) if n > 0 && n <= 1 << 30 => Some(n),
            _ => {
                problems.push("max_payload_bytes: must be between 1 and 1073741824 (1 GiB)");
                None
            }
        };
        if !(1..=MAX_PAYLOAD_IN_FLIGHT_MIB).contains(&file.payload_in_flight_mib) {
            problems.push(format!(
                "payload_in_flight_mib: must be between 1 and {MAX_PAYLOAD_IN_FLIGHT_MIB}"
            ));
        }
        let anchor = problems.check(
            "anchor_public_key",
            PublicKey::from_base64(&file.anchor_public_key),
        );
        let nsw = file
            .nsw
            .as_ref()
            .map(|n| nsw_config(n, path, &mut problems));
        let console = file
            .console
            .as_ref()
            .map(|c| console_config(c, &mut problems));
        let metrics_listen = file
            .metrics_listen
            .as_deref()
            .map(|a| problems.check("metrics_listen", a.parse::<std::net::SocketAddr>()));
        let net = file.net.check(&mut problems);
        let upload = file.upload.check(&mut problems);
        file.checks.check(&mut problems);
        let data_dir = resolve(path, &file.data_dir);
        let control_socket = control_socket(path, &file, &data_dir);
        problems.finish(path, || Config {
            participant: participant.expect("checked"),
            hub_urls,
            hub_tls_name: file.hub_tls_name,
            data_dir,
            store_engine: file.store_engine,
            signing_key: signing_key.expect("checked"),
            control_socket,
            max_payload_bytes: max_payload_bytes.expect("checked"),
            payload_in_flight_mib: file.payload_in_flight_mib as usize,
            tls: tls.expect("checked"),
            anchor: anchor.expect("checked"),
            nsw: nsw.flatten(),
            console: console.flatten(),
            metrics_listen: metrics_listen.flatten(),
            net: net.expect("checked"),
            upload,
            checks: file.checks,
        })
    }
}

fn nsw_config(file: &NswFile, path: &Path, problems: &mut Problems) -> Option<NswConfig> {
    let listen = problems.check("nsw.listen", file.listen.parse::<std::net::SocketAddr>());
    if file.tokens.is_empty() {
        problems.push("nsw.tokens: at least one client token is needed");
    }
    let mut tokens = Vec::new();
    for (i, t) in file.tokens.iter().enumerate() {
        let hex = t.sha256.as_bytes();
        let digest: Option<[u8; 32]> = (hex.len() == 64 && hex.iter().all(u8::is_ascii_hexdigit))
            .then(|| {
                let mut out = [0u8; 32];
                for (o, pair) in out.iter_mut().zip(hex.chunks(2)) {
                    *o = u8::from_str_radix(std::str::from_utf8(pair).unwrap_or("00"), 16)
                        .unwrap_or(0);
                }
                out
            });
        match digest {
            Some(sha256) => tokens.push(Token {
                name: t.name.clone(),
                sha256,
            }),
            None => problems.push(format!(
                "nsw.tokens[{i}].sha256: must be 64 hex digits (the SHA-256 of the token)"
            )),
        }
    }
    let webhook = file
        .webhook_url
        .as_deref()
        .and_then(|url| webhook_config(url, &file.webhook, path, problems));
    Some(NswConfig {
        listen: listen?,
        tokens,
        webhook,
    })
}

fn webhook_config(
    url: &str,
    file: &WebhookFile,
    path: &Path,
    problems: &mut Problems,
) -> Option<WebhookConfig> {
    let parsed = url
        .parse::<axum::http::Uri>()
        .ok()
        .filter(|u| matches!(u.scheme_str(), Some("http") | Some("https")) && u.host().is_some());
    if parsed.is_none() {
        problems.push(format!(
            "nsw.webhook_url: {url:?} is not an http:// or https://host:port/path URL"
        ));
    }
    for (name, secs) in [
        ("connect_timeout_secs", file.connect_timeout_secs),
        ("response_timeout_secs", file.response_timeout_secs),
    ] {
        if !(1..=3600).contains(&secs) {
            problems.push(format!(
                "nsw.webhook.{name}: must be between 1 and 3600 seconds"
            ));
        }
    }
    let ca_pem = match &file.ca_file {
        None => None,
        Some(ca) => {
            let ca = resolve(path, ca);
            match std::fs::read(&ca) {
                Ok(pem) => {
                    use rustls_pki_types::{CertificateDer, pem::PemObject};
                    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&pem).collect();
                    match certs {
                        Ok(certs) if !certs.is_empty() => Some(pem),
                        Ok(_) => {
                            problems.push(format!(
                                "nsw.webhook.ca_file: {} holds no PEM certificate",
                                ca.display()
                            ));
                            None
                        }
                        Err(e) => {
                            problems.push(format!("nsw.webhook.ca_file: {}: {e}", ca.display()));
                            None
                        }
                    }
                }
                Err(e) => {
                    problems.push(format!("nsw.webhook.ca_file: {}: {e}", ca.display()));
                    None
                }
            }
        }
    };
    Some(WebhookConfig {
        url: parsed?,
        ca_pem,
        connect_timeout: Duration::from_secs(file.connect_timeout_secs),
        response_timeout: Duration::from_secs(file.response_timeout_secs),
    })
}

fn console_config(file: &ConsoleFile, problems: &mut Problems) -> Option<ConsoleConfig> {
    let listen = problems.check(
        "console.listen",
        file.listen.parse::<std::net::SocketAddr>(),
    );
    if file.officers.is_empty() {
        problems.push("console.officers: at least one officer account is needed");
    }
    for (i, o) in file.officers.iter().enumerate() {
        if argon2::PasswordHash::new(&o.password_hash).is_err() {
            problems.push(format!("console.officers[{i}].password_hash: not an argon2 hash (use `caravan-spoke officer-password`)"));
        }
        if o.roles.is_empty() {
            problems.push(format!(
                "console.officers[{i}].roles: give at least one of viewing, issuing, approving (absent: viewing)"
            ));
        }
        if file.officers[..i].iter().any(|other| other.user == o.user) {
            problems.push(format!(
                "console.officers[{i}].user: {:?} is given twice",
                o.user
            ));
        }
    }
    let officers = file
        .officers
        .iter()
        .enumerate()
        .map(|(i, o)| Officer {
            user: o.user.clone(),
            password_hash: o.password_hash.clone(),
            roles: o.roles.clone(),
            language: o.language.as_deref().and_then(|tag| {
                let lang = Lang::from_tag(tag);
                if lang.is_none() {
                    problems.push(format!(
                        "console.officers[{i}].language: {tag:?} is not a language of the console (it speaks {})",
                        Lang::tags().join(", ")
                    ));
                }
                lang
            }),
        })
        .collect();
    let clock = match &file.time_zone {
        Some(name) => problems.check("console.time_zone", Clock::new(name)),
        None => Some(Clock::default()),
    };
    let public_url = match &file.public_url {
        None => Some(None),
        Some(url) => match public_url(url) {
            Ok(url) => Some(Some(url)),
            Err(why) => {
                problems.push(format!("console.public_url: {url:?} {why}"));
                None
            }
        },
    };
    let trusted_proxies = file
        .trusted_proxies
        .iter()
        .enumerate()
        .filter_map(|(i, a)| {
            let address = a.parse::<IpAddr>().map_err(|e| format!("{a:?}: {e}"));
            problems.check(&format!("console.trusted_proxies[{i}]"), address)
        })
        .collect::<Vec<IpAddr>>();
    Some(ConsoleConfig {
        listen: listen?,
        officers,
        clock: clock?,
        public_url: public_url?,
        trusted_proxies,
    })
}

/// A console's public URL checked: `https://host[:port][/path]`, or `http://` on a loopback
/// host (a Secure cookie and a printed QR code need https anywhere else); no query or
/// fragment. Returned without a trailing `/`.
fn public_url(url: &str) -> Result<String, &'static str> {
    let uri = url
        .parse::<axum::http::Uri>()
        .map_err(|_| "is not a URL (https://host[:port][/path])")?;
    let host = uri
        .host()
        .ok_or("has no host (https://host[:port][/path])")?;
    if uri.query().is_some() || url.contains('#') {
        return Err("must not have a query or fragment");
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if loopback => {}
        Some("http") => {
            return Err(
                "must be https:// (plain http is allowed only on a loopback host: officers' browsers drop the Secure session cookie, and a printed QR code must not lead to an unencrypted page)",
            );
        }
        _ => return Err("must start with https://"),
    }
    Ok(url.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests;
