//! The hub's configuration file (TOML), checked completely at start.
//!
//! ```toml
//! listen = "127.0.0.1:7443"          # gRPC over mutual TLS; port 0 picks a free port
//! data_dir = "data"                  # the store; relative paths follow this file
//! max_payload_bytes = 67108864       # largest document accepted (default 64 MiB)
//! payload_in_flight_mib = 128        # streamed payloads held in memory at once (default 128 MiB)
//! store_engine = "redb"              # "redb" (default for a new store), "sled", or "postgres"
//! store_cache_mib = 64               # the embedded engine's page cache (default 64 MiB)
//! # With store_engine = "postgres" (several replicas on one database; see the runbook):
//! # postgres_url = "postgresql://caravan@db.internal:5432/caravan"   # no password in it
//! # postgres_password_file = "secrets/postgres-password"   # mode 0600; or the environment's
//! #                                                        # CARAVAN_POSTGRES_PASSWORD
//! # postgres_ca_file = "pki/db-ca.pem"   # TLS to the database, server certificate checked
//! # postgres_pool_size = 16              # connections per replica
//! receipt_key = "pki/hub-receipt.key"
//! anchor_key = "pki/hub-anchor.key"   # signs the trust list; spokes pin its public key
//! trust_list_validity_secs = 86400   # a trust list's life; it is re-issued at half of it
//! created_at_skew_secs = 300         # how far a header's created_at may run ahead of the hub
//!
//! [tls]
//! ca_cert = "pki/ca.pem"             # the CA that issued participants' certificates
//! cert = "pki/hub.pem"
//! key = "pki/hub.key"
//!
//! [net]                              # every listener's limits (all optional; the defaults)
//! handshake_timeout_secs = 10
//! header_read_timeout_secs = 10
//! idle_timeout_secs = 60
//! write_stall_timeout_secs = 30
//! max_connections = 4096
//! max_handshakes = 256
//! ```
//!
//! Participants, keys and corridors are not configured here: they live in the registry, in the
//! store, and operators manage them with `caravan-hub admin` while the hub runs.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use caravan_common::{
    config::{Problems, TlsFiles, TlsMaterial, read_toml, resolve},
    net::{Limits, NetFile},
    signing::SigningKey,
    store::EngineKind,
};

/// Default largest payload: 64 MiB.
pub const DEFAULT_MAX_PAYLOAD_BYTES: u64 = 64 * 1024 * 1024;
/// Default page cache of the store's engine. sled's own default (1 GiB) is far more than the
/// hub needs.
pub const DEFAULT_STORE_CACHE_MIB: u64 = 64;
/// Default life of a trust list: one day.
pub const DEFAULT_TRUST_LIST_VALIDITY_SECS: u64 = 86_400;

/// The file as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubFile {
    /// Address for the gRPC server (mutual TLS), e.g. "0.0.0.0:7443".
    pub listen: String,
    /// Folder of the hub's store.
    pub data_dir: PathBuf,
    /// Largest document payload accepted, in bytes.
    #[serde(default = "default_max_payload")]
    pub max_payload_bytes: u64,
    /// The store's engine: for a new store, the one it is made with (unset: redb); an
    /// existing store keeps the engine it was made with, and a setting naming the other one
    /// is refused at start (move a store with `caravan-hub store migrate`). `postgres` keeps
    /// the store in the database `postgres_url` names, which several replicas may share.
    #[serde(default)]
    pub store_engine: Option<StoreEngine>,
    /// The database of `store_engine = "postgres"`: a libpq-style URL without a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_url: Option<String>,
    /// A file holding the database password (mode 0600); unset: the environment's
    /// `CARAVAN_POSTGRES_PASSWORD`, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_password_file: Option<PathBuf>,
    /// The CA certificate (PEM) that signed the database server's: TLS is then required and
    /// the server's certificate and name checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_ca_file: Option<PathBuf>,
    /// Connections to the database per replica.
    #[serde(default = "default_pool_size")]
    pub postgres_pool_size: usize,
    /// Payload bytes of streamed submissions the hub holds in memory at once, in MiB; a
    /// submission without room now is answered RESOURCE_EXHAUSTED before its payload is read
    /// (the sender retries).
    #[serde(default = "default_in_flight")]
    pub payload_in_flight_mib: u64,
    /// Page cache of the store, in MiB.
    #[serde(default = "default_cache")]
    pub store_cache_mib: u64,
    /// The ed25519 key that signs receipts (from `caravan-hub pki init`).
    pub receipt_key: PathBuf,
    /// The ed25519 trust-anchor key that signs trust lists (from `caravan-hub pki init`).
    pub anchor_key: PathBuf,
    /// Seconds until a trust list's next-update time; the hub re-issues it at half of that.
    #[serde(default = "default_validity")]
    pub trust_list_validity_secs: u64,
    /// Seconds between signed tree heads of the exchange log (when it grew).
    #[serde(default = "default_tree_head_interval")]
    pub tree_head_interval_secs: u64,
    /// Address for Prometheus metrics (plain HTTP, `GET /metrics`), e.g. "127.0.0.1:9464";
    /// absent: not served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
    /// Address of the operators' dashboard (HTTPS with the hub's certificate; an operator
    /// client certificate is required), e.g. "127.0.0.1:9443"; absent: not served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard_listen: Option<String>,
    /// Folder for online backups (`caravan-hub admin backup`); default `<data_dir>/backups`.
    /// Relative paths are from the config file's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_dir: Option<PathBuf>,
    /// Time to live of a message until it is settled, per document type, in seconds. A
    /// header whose `created_at` is older than its type's time to live is refused
    /// (`CREATED_AT_EXPIRED`).
    #[serde(default)]
    pub message_ttl_secs: MessageTtl,
    /// How far, in seconds, a header's `created_at` may be ahead of the hub's clock (the
    /// clocks of two machines never agree exactly); beyond it the document is refused
    /// (`CREATED_AT_FUTURE`).
    #[serde(default = "default_skew")]
    pub created_at_skew_secs: u64,
    /// The Readiness Scorecard framework (TOML, as `hub/scorecard/carec.toml`); absent: the
    /// CAREC scorecard as published, shipped in the binary. Relative paths are from the
    /// config file's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scorecard_framework: Option<PathBuf>,
    /// TLS material.
    pub tls: TlsFiles,
    /// Time limits and caps of every listener (gRPC, dashboard, metrics).
    #[serde(default)]
    pub net: NetFile,
}

/// Where the hub keeps its store: one of the embedded engines in `data_dir`, or PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreEngine {
    Redb,
    Sled,
    Postgres,
}

impl StoreEngine {
    /// The embedded engine, if this is one.
    pub fn embedded(self) -> Option<EngineKind> {
        match self {
            Self::Redb => Some(EngineKind::Redb),
            Self::Sled => Some(EngineKind::Sled),
            Self::Postgres => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Redb => "redb",
            Self::Sled => "sled",
            Self::Postgres => "postgres",
        }
    }
}

impl From<EngineKind> for StoreEngine {
    fn from(kind: EngineKind) -> Self {
        match kind {
            EngineKind::Redb => Self::Redb,
            EngineKind::Sled => Self::Sled,
        }
    }
}

impl std::str::FromStr for StoreEngine {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "postgres" => Ok(Self::Postgres),
            other => other
                .parse::<EngineKind>()
                .map(Self::from)
                .map_err(|_| format!("unknown store engine {other:?}: redb, sled or postgres")),
        }
    }
}

/// Default connections to the database per replica.
pub const DEFAULT_POSTGRES_POOL_SIZE: usize = 16;

fn default_pool_size() -> usize {
    DEFAULT_POSTGRES_POOL_SIZE
}

/// The environment variable that may hold the database password.
pub const POSTGRES_PASSWORD_ENV: &str = "CARAVAN_POSTGRES_PASSWORD";

/// The PostgreSQL settings of `file` (with `store_engine = "postgres"`), every problem
/// reported.
fn postgres_settings(
    path: &Path,
    file: &HubFile,
    problems: &mut Problems,
) -> Option<crate::store::PostgresSettings> {
    let Some(url) = &file.postgres_url else {
        problems.push("postgres_url: required with store_engine = \"postgres\"");
        return None;
    };
    if !(1..=256).contains(&file.postgres_pool_size) {
        problems.push("postgres_pool_size: must be between 1 and 256");
    }
    let password = match &file.postgres_password_file {
        Some(secret) => {
            let secret = resolve(path, secret);
            match read_secret(&secret) {
                Ok(password) => Some(password),
                Err(e) => {
                    problems.push(format!("postgres_password_file: {}: {e}", secret.display()));
                    None
                }
            }
        }
        None => std::env::var(POSTGRES_PASSWORD_ENV).ok(),
    };
    let settings = crate::store::PostgresSettings {
        url: url.clone(),
        password,
        ca_file: file.postgres_ca_file.as_ref().map(|f| resolve(path, f)),
        pool_size: file.postgres_pool_size,
    };
    if let Err(e) = settings.driver_config() {
        problems.push(e);
    }
    // A password written into the URL would be in every copy of this file and in every
    // listing of it.
    if let Ok(parsed) = url.parse::<tokio_postgres::Config>()
        && parsed.get_password().is_some()
    {
        problems.push(format!(
            "postgres_url: carries a password; move it to postgres_password_file or {POSTGRES_PASSWORD_ENV}"
        ));
    }
    if let Some(ca) = &settings.ca_file
        && !ca.is_file()
    {
        problems.push(format!("postgres_ca_file: {} is not a file", ca.display()));
    }
    Some(settings)
}

/// A secret from a file only its owner may read; its trailing newline is not part of it.
fn read_secret(path: &Path) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!("readable by others (mode {mode:o}); chmod 600 it"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let secret = text.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        return Err("is empty".into());
    }
    Ok(secret.to_string())
}

/// Seconds a message may wait for its recipient, per document type; then it is EXPIRED.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageTtl {
    #[serde(rename = "e-co", default = "default_ttl")]
    pub certificate_of_origin: u64,
    #[serde(rename = "e-phyto", default = "default_ttl")]
    pub phytosanitary: u64,
    #[serde(rename = "e-invoice", default = "default_ttl")]
    pub invoice: u64,
}

/// Default clock skew allowed for a header's `created_at`: 5 minutes.
pub const DEFAULT_CREATED_AT_SKEW_SECS: u64 = 300;
/// The largest clock skew that may be configured: one day.
pub const MAX_CREATED_AT_SKEW_SECS: u64 = 86_400;

fn default_skew() -> u64 {
    DEFAULT_CREATED_AT_SKEW_SECS
}

/// Default time to live: 7 days.
pub const DEFAULT_MESSAGE_TTL_SECS: u64 = 7 * 86_400;

fn default_ttl() -> u64 {
    DEFAULT_MESSAGE_TTL_SECS
}

impl Default for MessageTtl {
    fn default() -> Self {
        Self {
            certificate_of_origin: DEFAULT_MESSAGE_TTL_SECS,
            phytosanitary: DEFAULT_MESSAGE_TTL_SECS,
            invoice: DEFAULT_MESSAGE_TTL_SECS,
        }
    }
}

impl MessageTtl {
    /// The time to live of a document type, in milliseconds.
    pub fn millis(&self, document_type: &str) -> Option<u64> {
        let secs = match document_type {
            "e-co" => self.certificate_of_origin,
            "e-phyto" => self.phytosanitary,
            "e-invoice" => self.invoice,
            _ => return None,
        };
        Some(secs.saturating_mul(1000))
    }

    /// How often to look for expired messages: a quarter of the shortest time to live,
    /// between a quarter second and a minute.
    pub fn scan_interval(&self) -> std::time::Duration {
        let shortest = self
            .certificate_of_origin
            .min(self.phytosanitary)
            .min(self.invoice);
        std::time::Duration::from_millis((shortest.saturating_mul(250)).clamp(250, 60_000))
    }
}

/// What the hub accepts of a header's creation time: at most `skew` ahead of its clock, and
/// no older than the document type's time to live.
#[derive(Debug, Clone)]
pub struct CreatedAtBounds {
    pub skew: std::time::Duration,
    pub lifetime: MessageTtl,
}

impl CreatedAtBounds {
    /// Check `header.created_at` against the hub's clock reading `now`.
    pub fn check(
        &self,
        header: &caravan_common::envelope::Header,
        now: caravan_common::Timestamp,
    ) -> Result<(), caravan_common::Refusal> {
        let lifetime = self
            .lifetime
            .millis(header.document_type.as_str())
            .map_or(std::time::Duration::MAX, std::time::Duration::from_millis);
        header.check_created_at(now, self.skew, lifetime)
    }
}

fn default_max_payload() -> u64 {
    DEFAULT_MAX_PAYLOAD_BYTES
}

/// Default budget of streamed payloads in memory: with the hub's own needs, under 256 MiB.
pub const DEFAULT_PAYLOAD_IN_FLIGHT_MIB: u64 = 128;

fn default_in_flight() -> u64 {
    DEFAULT_PAYLOAD_IN_FLIGHT_MIB
}

fn default_cache() -> u64 {
    DEFAULT_STORE_CACHE_MIB
}

fn default_tree_head_interval() -> u64 {
    60
}

fn default_validity() -> u64 {
    DEFAULT_TRUST_LIST_VALIDITY_SECS
}

/// The checked configuration.
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub max_payload_bytes: usize,
    pub payload_in_flight_bytes: usize,
    /// The embedded engine as configured (`None`: the store's own, or redb for a new one,
    /// unless `postgres` is set).
    pub store_engine: Option<EngineKind>,
    /// Set when the store is in PostgreSQL (`store_engine = "postgres"`).
    pub postgres: Option<crate::store::PostgresSettings>,
    pub store_cache_bytes: u64,
    pub receipt_key: SigningKey,
    pub anchor_key: SigningKey,
    pub trust_list_validity: std::time::Duration,
    pub message_ttl: MessageTtl,
    /// `created_at_skew_secs`.
    pub created_at_skew: std::time::Duration,
    pub metrics_listen: Option<SocketAddr>,
    pub dashboard_listen: Option<SocketAddr>,
    pub backup_dir: PathBuf,
    pub tree_head_interval: std::time::Duration,
    /// The scorecard framework, loaded and checked.
    pub scorecard: std::sync::Arc<crate::scorecard::Framework>,
    pub tls: TlsMaterial,
    /// See [`HubFile::net`].
    pub net: Limits,
}

impl Config {
    /// Read and check `path`; every problem is reported.
    pub fn load(path: &Path) -> Result<Self, caravan_common::config::ConfigError> {
        let file: HubFile = read_toml(path)?;
        Self::from_file(path, file)
    }

    /// Check a parsed file; relative paths are taken from `path`'s folder.
    pub fn from_file(
        path: &Path,
        file: HubFile,
    ) -> Result<Self, caravan_common::config::ConfigError> {
        let mut problems = Problems::default();
        let listen = problems.check("listen", file.listen.parse::<SocketAddr>());
        let tls = file.tls.read(path, &mut problems);
        let receipt_key = problems.check(
            "receipt_key",
            SigningKey::load(&resolve(path, &file.receipt_key)),
        );
        let max_payload_bytes = match usize::try_from(file.max_payload_bytes) {
            Ok(n) if n > 0 && n <= 1 << 30 => Some(n),
            _ => {
                problems.push("max_payload_bytes: must be between 1 and 1073741824 (1 GiB)");
                None
            }
        };
        if let Some(max) = max_payload_bytes
            && (file.payload_in_flight_mib.saturating_mul(1024 * 1024) < max as u64
                || file.payload_in_flight_mib > 64 * 1024)
        {
            problems.push(
                "payload_in_flight_mib: must hold at least one document of max_payload_bytes, and at most 65536 (64 GiB)",
            );
        }
        if file.store_cache_mib == 0 {
            problems.push("store_cache_mib: must be at least 1");
        }
        let postgres = match file.store_engine {
            Some(StoreEngine::Postgres) => postgres_settings(path, &file, &mut problems),
            _ => {
                if file.postgres_url.is_some() {
                    problems.push(
                        "postgres_url: set, but store_engine is not \"postgres\" (set store_engine = \"postgres\", or remove postgres_url)",
                    );
                }
                None
            }
        };
        let metrics_listen = file
            .metrics_listen
            .as_deref()
            .map(|a| problems.check("metrics_listen", a.parse::<SocketAddr>()));
        let dashboard_listen = file
            .dashboard_listen
            .as_deref()
            .map(|a| problems.check("dashboard_listen", a.parse::<SocketAddr>()));
        let ttl = &file.message_ttl_secs;
        if [ttl.certificate_of_origin, ttl.phytosanitary, ttl.invoice].contains(&0) {
            problems.push("message_ttl_secs: every time to live must be at least 1 second");
        }
        let anchor_key = problems.check(
            "anchor_key",
            SigningKey::load(&resolve(path, &file.anchor_key)),
        );
        if !(2..=366 * 86_400).contains(&file.trust_list_validity_secs) {
            problems.push("trust_list_validity_secs: must be between 2 and 31622400 (366 days)");
        }
        if file.created_at_skew_secs > MAX_CREATED_AT_SKEW_SECS {
            problems.push(format!(
                "created_at_skew_secs: must be at most {MAX_CREATED_AT_SKEW_SECS} (one day)"
            ));
        }
        let net = file.net.check(&mut problems);
        let scorecard = match &file.scorecard_framework {
            None => Some(crate::scorecard::Framework::carec()),
            Some(f) => {
                let f = resolve(path, f);
                match std::fs::read_to_string(&f) {
                    Err(e) => {
                        problems.push(format!("scorecard_framework: {}: {e}", f.display()));
                        None
                    }
                    Ok(text) => problems.check(
                        "scorecard_framework",
                        crate::scorecard::Framework::parse(&text),
                    ),
                }
            }
        };
        if let (Some(r), Some(a)) = (&receipt_key, &anchor_key)
            && r.key_id() == a.key_id()
        {
            problems.push("anchor_key: must differ from receipt_key");
        }
        problems.finish(path, || Config {
            listen: listen.expect("checked"),
            data_dir: resolve(path, &file.data_dir),
            max_payload_bytes: max_payload_bytes.expect("checked"),
            payload_in_flight_bytes: file.payload_in_flight_mib as usize * 1024 * 1024,
            store_engine: file.store_engine.and_then(StoreEngine::embedded),
            postgres,
            store_cache_bytes: file.store_cache_mib * 1024 * 1024,
            receipt_key: receipt_key.expect("checked"),
            anchor_key: anchor_key.expect("checked"),
            trust_list_validity: std::time::Duration::from_secs(file.trust_list_validity_secs),
            message_ttl: file.message_ttl_secs.clone(),
            created_at_skew: std::time::Duration::from_secs(file.created_at_skew_secs),
            metrics_listen: metrics_listen.flatten(),
            dashboard_listen: dashboard_listen.flatten(),
            backup_dir: match &file.backup_dir {
                Some(dir) => resolve(path, dir),
                None => resolve(path, &file.data_dir).join("backups"),
            },
            tree_head_interval: std::time::Duration::from_secs(file.tree_head_interval_secs.max(1)),
            scorecard: std::sync::Arc::new(scorecard.expect("checked")),
            tls: tls.expect("checked"),
            net: net.expect("checked"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample in deploy/config is a real config: every key it shows exists.
    #[test]
    fn the_sample_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config/hub.toml");
        let file: HubFile = read_toml(&path).unwrap();
        assert_eq!(
            file.message_ttl_secs.phytosanitary,
            DEFAULT_MESSAGE_TTL_SECS
        );
        assert!(file.metrics_listen.is_some());
        assert!(file.dashboard_listen.is_some());
        assert!(file.backup_dir.is_some());
        assert_eq!(
            file.net.max_handshakes,
            caravan_common::net::DEFAULT_MAX_HANDSHAKES
        );
        let admin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config/admin.toml");
        read_toml::<crate::operator::AdminFile>(&admin).unwrap();
    }

    #[test]
    fn the_clock_skew_defaults_to_five_minutes_and_is_at_most_a_day() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config/hub.toml");
        let mut file: HubFile = read_toml(&path).unwrap();
        assert_eq!(file.created_at_skew_secs, DEFAULT_CREATED_AT_SKEW_SECS);
        let unset: HubFile = toml::from_str(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"d\"\nreceipt_key = \"r\"\nanchor_key = \"a\"\n[tls]\nca_cert = \"c\"\ncert = \"c\"\nkey = \"k\"\n",
        )
        .unwrap();
        assert_eq!(unset.created_at_skew_secs, 300);
        file.created_at_skew_secs = MAX_CREATED_AT_SKEW_SECS + 1;
        let err = Config::from_file(&path, file).err().unwrap().to_string();
        assert!(
            err.contains("created_at_skew_secs: must be at most 86400"),
            "{err}"
        );
    }

    #[test]
    fn the_payload_budget_must_hold_the_largest_document() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config/hub.toml");
        let mut file: HubFile = read_toml(&path).unwrap();
        file.max_payload_bytes = 64 << 20;
        file.payload_in_flight_mib = 32;
        let err = Config::from_file(&path, file).err().unwrap().to_string();
        assert!(
            err.contains("payload_in_flight_mib: must hold at least one document"),
            "{err}"
        );
    }
}
