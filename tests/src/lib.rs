//! The end-to-end test harness: a Caravan network of the real `caravan-hub` and
//! `caravan-spoke` binaries, over real mutual TLS on loopback, in a temporary folder.
//!
//! The binaries are built once per test process with the same cargo that runs the tests (or
//! taken from `CARAVAN_HUB_BIN` / `CARAVAN_SPOKE_BIN`). Their configs are the binaries' own
//! config types (`HubFile`, `SpokeFile`) written as TOML, with every listener but the hub's
//! first gRPC port on port 0; the ports taken are read from the `listening.json` each process
//! writes in its data folder once its listeners are bound (`caravan_common::process::Listening`),
//! never from its log. Processes log to files in the folder and are killed when the harness is
//! dropped. Readiness is waited for on the hub's gRPC health service and on each spoke's control
//! API, never with fixed sleeps, and every wait sleeps with tokio's timer, never blocking the
//! runtime's threads; one-shot commands (`pki`, `admin`, `send`, ...) run on tokio's process
//! driver, so the harness's methods that run one are `async`.

pub mod browser;
pub mod issuing;
pub mod operator_proxy;
pub mod postgres;

use std::{
    collections::BTreeMap,
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use caravan_common::{
    DocumentType, MessageId, Timestamp,
    config::TlsFiles,
    envelope::Header,
    net::NetFile,
    process::Listening,
    signing::{SigningKey, sha256},
};
use caravan_hub::{config::HubFile, operator::AdminFile};
use caravan_proto::v1::exchange_client::ExchangeClient;
use caravan_proto::{envelope::seal, v1};
use caravan_spoke::config::{
    ConsoleFile, NswFile, NswTokenFile, OfficerFile, SpokeFile, UploadFile,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// How long to wait for a process to become ready, or for a document to arrive.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Paths of the two binaries, built on first use.
pub struct Binaries {
    pub hub: PathBuf,
    pub spoke: PathBuf,
}

/// The binaries under test.
pub fn binaries() -> &'static Binaries {
    static BINARIES: OnceLock<Binaries> = OnceLock::new();
    BINARIES.get_or_init(|| {
        if let (Ok(hub), Ok(spoke)) = (
            std::env::var("CARAVAN_HUB_BIN"),
            std::env::var("CARAVAN_SPOKE_BIN"),
        ) {
            return Binaries {
                hub: hub.into(),
                spoke: spoke.into(),
            };
        }
        // target/<profile>/deps/<test binary> -> target/<profile>
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>")
            .to_owned();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args([
            "build",
            "--bins",
            "-p",
            "caravan-hub",
            "-p",
            "caravan-spoke",
        ]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        // Once per test process; a test calling first may be on its runtime.
        let status = blocking(|| build.status()).expect("run cargo build");
        assert!(status.success(), "building the binaries failed");
        Binaries {
            hub: profile_dir.join("caravan-hub"),
            spoke: profile_dir.join("caravan-spoke"),
        }
    })
}

/// Run `f`, which blocks, without holding up the async runtime it may be called on: on a
/// multi-threaded one, the worker hands its other tasks over first.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// A running process, killed on drop.
pub struct Proc {
    /// Behind a lock so that a wait holding `&Proc` can ask whether it exited.
    child: Mutex<Child>,
    pid: u32,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(mut command: Command, log: PathBuf) -> Self {
        let out = fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = command.spawn().expect("spawn");
        Self {
            pid: child.id(),
            child: Mutex::new(child),
            log,
        }
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn child(&mut self) -> &mut Child {
        self.child.get_mut().unwrap_or_else(|e| e.into_inner())
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill(mut self) {
        let child = self.child();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// SIGTERM, then wait for a clean exit; returns whether it exited successfully.
    pub async fn terminate(mut self) -> bool {
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        let start = Instant::now();
        while start.elapsed() < PATIENCE {
            if let Ok(Some(status)) = self.child().try_wait() {
                return status.success();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    pub fn exited(&self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        child.try_wait().ok().flatten()
    }

    /// Wait until this process has written `listening.json` in `data_dir` (a file left there
    /// by an earlier process, with another pid, is not its own); returns its listeners.
    pub async fn listening(&self, data_dir: &Path) -> Listening {
        let start = Instant::now();
        loop {
            match Listening::read(data_dir) {
                Ok(Some(listening)) if listening.pid == self.pid => return listening,
                Ok(_) => {}
                // The writer renames a whole file into place: an unreadable one is a bug.
                Err(e) => panic!("{}: {e}", Listening::path(data_dir).display()),
            }
            if let Some(status) = self.exited() {
                panic!(
                    "process exited ({status}) before it wrote {}; log:\n{}",
                    Listening::path(data_dir).display(),
                    self.log_text()
                );
            }
            assert!(
                start.elapsed() < PATIENCE,
                "no {} from pid {}; log:\n{}",
                Listening::path(data_dir).display(),
                self.pid,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let child = self.child();
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A document-signing key registered for a participant.
#[derive(Clone)]
pub struct KeySpec {
    pub file: PathBuf,
    pub key_id: String,
    pub public_key: String,
    pub document_types: Vec<String>,
    pub not_before: Option<String>,
    pub not_after: Option<String>,
}

/// A participant of the test network.
#[derive(Clone)]
pub struct Party {
    pub id: String,
    pub keys: Vec<KeySpec>,
    /// Serial of its TLS client certificate, as `pki issue` printed it.
    pub serial: String,
}

/// The override reason the harness gives the onboarding rules (stages, conformance reports)
/// when it onboards parties and opens corridors; tests that open corridors by hand give it
/// too.
pub const HARNESS_OVERRIDE: &str = "e2e harness: conformance not under test";

/// A test network in a temporary folder.
pub struct Net {
    pub dir: tempfile::TempDir,
    pub parties: BTreeMap<String, Party>,
    /// The hub's trust-anchor public key, pinned by the spokes.
    pub anchor_public_key: String,
    pub hub_port: Option<u16>,
    /// Where the running hub listens, from its `listening.json`.
    pub hub_listening: Option<Listening>,
    pub max_payload_bytes: u64,
    pub trust_list_validity_secs: u64,
    /// Whether onboarding opens every corridor between the parties for every document type.
    pub open_corridors: bool,
    /// A spoke pinned to another anchor than the hub's (to test forgery).
    pub spoke_anchor_override: BTreeMap<String, String>,
    /// A spoke that reaches the hub at another port (through a proxy a test runs).
    pub spoke_hub_port: BTreeMap<String, u16>,
    /// Per spoke: its `hub_urls` (the hub's replicas' addresses), instead of `hub_url`.
    pub spoke_hub_urls: BTreeMap<String, Vec<String>>,
    /// Which of its keys a spoke signs with (default the first).
    pub spoke_key: BTreeMap<String, usize>,
    /// The hub's receipt-signing key file (default `pki/hub-receipt.key`).
    pub receipt_key: Option<PathBuf>,
    /// Time to live of e-CO messages, in seconds (default: the hub's).
    pub eco_ttl_secs: Option<u64>,
    /// Spokes serve the NSW API (on a free port) with one token each.
    pub nsw: bool,
    /// Each spoke's NSW API token.
    pub nsw_tokens: BTreeMap<String, String>,
    /// The NSW webhook URL given to every spoke serving the NSW API.
    pub nsw_webhook: Option<String>,
    /// Spokes serve the officer console (on a free port) for user `officer` with this password.
    pub console_password: Option<String>,
    /// The console's time zone (`console.time_zone`); `None`: UTC.
    pub console_time_zone: Option<String>,
    /// Serve the console without a `public_url` (otherwise `https://console-<id>.caravan.test`).
    pub console_without_public_url: bool,
    /// More console accounts on every spoke serving the console: (user, password, roles), e.g.
    /// an issuing and an approving officer (issue 18).
    pub console_officers: Vec<(String, String, Vec<caravan_spoke::config::Role>)>,
    /// The CA file, in the PKI folder, that the hub and the spokes trust (default `ca.pem`; a
    /// CA rollover uses `ca-bundle.pem`).
    pub ca_file: String,
    /// The storage engine of the hub's and the spokes' stores (`store_engine`; default: the
    /// binaries' default: redb for a new store).
    pub store_engine: Option<&'static str>,
    /// The hub's store in this PostgreSQL database (`store_engine = "postgres"`), shared by
    /// every replica ([`Net::start_replica`]); `None`: the embedded store.
    pub postgres_url: Option<String>,
    /// The cluster [`Net::on_postgres`] started, stopped with the network.
    postgres: Option<postgres::Postgres>,
    /// The hub's `payload_in_flight_mib` (default: the hub's).
    pub payload_in_flight_mib: Option<u64>,
    /// The hub's `tree_head_interval_secs` (default 1: a head kept every second).
    pub tree_head_interval_secs: u64,
    /// The hub's `[net]` limits (default: the hub's).
    pub hub_net: NetFile,
    /// Every spoke's `payload_in_flight_mib` (default: the spoke's).
    pub spoke_payload_in_flight_mib: Option<u64>,
    /// Every spoke's `[net]` limits (default: the spoke's).
    pub spoke_net: NetFile,
    /// Every spoke's `[upload]` rules (default: the spoke's).
    pub spoke_upload: UploadFile,
    /// Run the hub with this RLIMIT_NOFILE, soft and hard (through util-linux `prlimit`).
    pub hub_nofile: Option<u64>,
    onboarded: bool,
    hub: Option<Proc>,
    spokes: BTreeMap<String, Proc>,
}

/// Tests that run again with the hub's store in PostgreSQL, on a cluster of each test's own:
/// `name(body, ids)` makes a test `name` that builds a network of `ids`, moves its hub onto
/// PostgreSQL ([`Net::on_postgres`]; skipped with a message where it is not installed) and
/// runs `body(net)`.
#[macro_export]
macro_rules! on_postgres {
    ($($test:ident($body:path, $ids:expr)),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread")]
        async fn $test() {
            let mut net = $crate::Net::new($ids).await;
            if net.on_postgres(concat!("on_postgres::", stringify!($test))) {
                $body(net).await;
            }
        }
    )*};
}

/// Run a one-shot command to its end on tokio's process driver (no runtime thread is held
/// while it runs).
async fn output(command: &mut tokio::process::Command) -> Output {
    command
        .output()
        .await
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"))
}

/// [`output`] of a command that must succeed.
async fn run_ok(command: &mut tokio::process::Command) -> Output {
    let out = output(command).await;
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Net {
    /// PKI, certificates and signing keys for `ids`; nothing started.
    pub async fn new(ids: &[&str]) -> Self {
        let bins = binaries();
        let dir = tempfile::tempdir().expect("temp dir");
        let pki = dir.path().join("pki");
        let init = run_ok(
            tokio::process::Command::new(&bins.hub)
                .args(["pki", "init", "--dir"])
                .arg(&pki),
        )
        .await;
        let init = String::from_utf8_lossy(&init.stdout).into_owned();
        let anchor_public_key = init
            .lines()
            .find_map(|l| l.strip_prefix("anchor public key:"))
            .expect("pki init prints the anchor public key")
            .trim()
            .to_owned();
        run_ok(
            tokio::process::Command::new(&bins.hub)
                .args(["pki", "issue", "--dir"])
                .arg(&pki)
                .args(["--operator", "ops"]),
        )
        .await;
        let mut net = Self {
            dir,
            parties: BTreeMap::new(),
            anchor_public_key,
            hub_port: None,
            hub_listening: None,
            max_payload_bytes: 64 * 1024 * 1024,
            trust_list_validity_secs: 86_400,
            open_corridors: true,
            spoke_anchor_override: BTreeMap::new(),
            spoke_hub_port: BTreeMap::new(),
            spoke_hub_urls: BTreeMap::new(),
            spoke_key: BTreeMap::new(),
            receipt_key: None,
            eco_ttl_secs: None,
            nsw: false,
            nsw_tokens: BTreeMap::new(),
            console_without_public_url: false,
            console_officers: Vec::new(),
            console_password: None,
            console_time_zone: None,
            nsw_webhook: None,
            ca_file: "ca.pem".into(),
            store_engine: None,
            postgres_url: None,
            postgres: None,
            payload_in_flight_mib: None,
            tree_head_interval_secs: 1,
            hub_net: NetFile::default(),
            spoke_payload_in_flight_mib: None,
            spoke_net: NetFile::default(),
            spoke_upload: UploadFile::default(),
            hub_nofile: None,
            onboarded: false,
            hub: None,
            spokes: BTreeMap::new(),
        };
        for id in ids {
            net.new_party(id).await;
        }
        net
    }

    /// A participant's certificate and first signing key; registered at onboarding, or by the
    /// test itself when the hub is already running.
    pub async fn new_party(&mut self, id: &str) {
        let out = run_ok(
            tokio::process::Command::new(&binaries().hub)
                .args(["pki", "issue", "--dir"])
                .arg(self.pki())
                .args(["--participant", id]),
        )
        .await;
        let serial = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("serial:"))
            .expect("pki issue prints the serial")
            .trim()
            .to_owned();
        let party = Party {
            id: id.to_owned(),
            keys: Vec::new(),
            serial,
        };
        self.parties.insert(id.to_owned(), party);
        let onboarded = std::mem::replace(&mut self.onboarded, false);
        self.add_key(id, &["e-co", "e-phyto", "e-invoice"], None, None)
            .await;
        self.onboarded = onboarded;
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// [`sample_issued_now`] written to a file of this network's folder, for `send`.
    pub fn sample_issued_now(&self, path: &str) -> PathBuf {
        let file = self.dir.path().join(path.replace('/', "_"));
        fs::write(&file, sample_issued_now(path)).expect("write sample");
        file
    }

    pub fn pki(&self) -> PathBuf {
        self.path().join("pki")
    }

    /// Create a signing key with `caravan-spoke keygen` and register it for `id`.
    pub async fn add_key(
        &mut self,
        id: &str,
        types: &[&str],
        not_before: Option<&str>,
        not_after: Option<&str>,
    ) -> KeySpec {
        let n = self.parties[id].keys.len();
        let file = self.path().join(format!("{id}-signing-{n}.key"));
        let out = run_ok(
            tokio::process::Command::new(&binaries().spoke)
                .args(["keygen", "--json", "--out"])
                .arg(&file),
        )
        .await;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("keygen --json");
        let spec = KeySpec {
            file,
            key_id: json["key_id"].as_str().expect("key_id").to_owned(),
            public_key: json["public_key"].as_str().expect("public_key").to_owned(),
            document_types: types.iter().map(|t| (*t).to_owned()).collect(),
            not_before: not_before.map(str::to_owned),
            not_after: not_after.map(str::to_owned),
        };
        self.parties
            .get_mut(id)
            .expect("party")
            .keys
            .push(spec.clone());
        if self.onboarded {
            self.register_key(id, &spec).await;
        }
        spec
    }

    /// Register `spec` for `id` with `caravan-hub admin key register`.
    pub async fn register_key(&self, id: &str, spec: &KeySpec) {
        let public = format!("{}.pub", spec.file.display());
        let types = spec.document_types.join(",");
        let mut args = vec![
            "key",
            "register",
            "--participant",
            id,
            "--types",
            &types,
            "--public-key",
            &public,
        ];
        if let Some(nb) = &spec.not_before {
            args.extend(["--not-before", nb.as_str()]);
        }
        if let Some(na) = &spec.not_after {
            args.extend(["--not-after", na.as_str()]);
        }
        self.admin_ok(&args).await;
    }

    pub fn admin_config(&self) -> PathBuf {
        self.path().join("admin.toml")
    }

    /// Run `caravan-hub admin --config admin.toml ARGS`.
    pub async fn admin(&self, args: &[&str]) -> Output {
        output(
            tokio::process::Command::new(&binaries().hub)
                .args(["admin", "--config"])
                .arg(self.admin_config())
                .args(args),
        )
        .await
    }

    /// `caravan-hub ARGS --config <the hub's config>` (the local commands: log, restore, info).
    pub async fn hub_cli(&self, args: &[&str]) -> Output {
        output(
            tokio::process::Command::new(&binaries().hub)
                .args(args)
                .arg("--config")
                .arg(self.hub_config()),
        )
        .await
    }

    /// `admin`, which must succeed; returns its standard output.
    pub async fn admin_ok(&self, args: &[&str]) -> String {
        let out = self.admin(args).await;
        assert!(
            out.status.success(),
            "caravan-hub admin {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Register every party (at stage production) and key, and open the corridors, as an
    /// operator would who overrides the onboarding rules: conformance is not what these
    /// tests are about (tests/tests/registry.rs holds the rules themselves).
    async fn onboard(&mut self) {
        let parties: Vec<Party> = self.parties.values().cloned().collect();
        for p in &parties {
            self.admin_ok(&[
                "participant",
                "add",
                &p.id,
                "--name",
                &format!("Participant {}", p.id),
                "--stage",
                "production",
                "--override",
                HARNESS_OVERRIDE,
            ])
            .await;
            for k in &p.keys {
                self.register_key(&p.id, k).await;
            }
        }
        if self.open_corridors {
            for from in &parties {
                for to in parties.iter().filter(|to| to.id != from.id) {
                    self.admin_ok(&[
                        "corridor",
                        "open",
                        &from.id,
                        &to.id,
                        "all",
                        "--override",
                        HARNESS_OVERRIDE,
                    ])
                    .await;
                }
            }
        }
        self.onboarded = true;
    }

    fn signing_key_index(&self, id: &str) -> usize {
        self.spoke_key.get(id).copied().unwrap_or(0)
    }

    pub fn signing_key(&self, id: &str, n: usize) -> SigningKey {
        SigningKey::load(&self.parties[id].keys[n].file).expect("signing key")
    }

    pub fn hub_config(&self) -> PathBuf {
        self.path().join("hub.toml")
    }

    /// The hub's data folder (`data_dir`).
    pub fn hub_data(&self) -> PathBuf {
        self.path().join("hub-data")
    }

    /// The hub's config, as the hub's own `HubFile`.
    fn write_hub_config(&self, port: u16) {
        write_toml(&self.hub_config(), &self.hub_file(port, "hub-data"));
    }

    /// Write the hub's config again as the network's settings are now (its port kept), for a
    /// command run on a stopped hub.
    pub fn rewrite_hub_config(&self) {
        self.write_hub_config(self.hub_port.unwrap_or(0));
    }

    /// A hub's configuration listening on `port`, with its data folder `data_dir`.
    fn hub_file(&self, port: u16, data_dir: &str) -> HubFile {
        let pki = self.pki();
        let mut file = HubFile {
            listen: format!("127.0.0.1:{port}"),
            data_dir: data_dir.into(),
            postgres_url: self.postgres_url.clone(),
            postgres_password_file: None,
            postgres_ca_file: None,
            postgres_pool_size: caravan_hub::config::DEFAULT_POSTGRES_POOL_SIZE,
            max_payload_bytes: self.max_payload_bytes,
            store_engine: Default::default(),
            payload_in_flight_mib: self
                .payload_in_flight_mib
                .unwrap_or(caravan_hub::config::DEFAULT_PAYLOAD_IN_FLIGHT_MIB),
            store_cache_mib: caravan_hub::config::DEFAULT_STORE_CACHE_MIB,
            receipt_key: self
                .receipt_key
                .clone()
                .unwrap_or_else(|| pki.join("hub-receipt.key")),
            anchor_key: pki.join("hub-anchor.key"),
            trust_list_validity_secs: self.trust_list_validity_secs,
            tree_head_interval_secs: self.tree_head_interval_secs,
            // Metrics and the dashboard on free ports, found in listening.json.
            metrics_listen: Some("127.0.0.1:0".into()),
            dashboard_listen: Some("127.0.0.1:0".into()),
            backup_dir: None,
            message_ttl_secs: Default::default(),
            created_at_skew_secs: caravan_hub::config::DEFAULT_CREATED_AT_SKEW_SECS,
            scorecard_framework: None,
            tls: TlsFiles {
                ca_cert: pki.join(&self.ca_file),
                cert: pki.join("hub.pem"),
                key: pki.join("hub.key"),
            },
            net: self.hub_net.clone(),
        };
        if let Some(engine) = self.store_engine {
            file.store_engine = Some(engine.parse().expect("a store engine"));
        }
        if self.postgres_url.is_some() {
            file.store_engine = Some(caravan_hub::config::StoreEngine::Postgres);
        }
        if let Some(ttl) = self.eco_ttl_secs {
            file.message_ttl_secs.certificate_of_origin = ttl;
        }
        file
    }

    /// Keep the hub's store in a PostgreSQL cluster of this network's own (database `hub`),
    /// started now; `false` (and a message) if PostgreSQL is not installed, so that the test
    /// can skip (never in CI: see [`postgres::Postgres::start`]).
    pub fn on_postgres(&mut self, test: &str) -> bool {
        let Some(pg) = postgres::Postgres::start(test) else {
            return false;
        };
        pg.sql("postgres", "CREATE DATABASE hub");
        self.postgres_url = Some(pg.url("hub"));
        self.postgres = Some(pg);
        true
    }

    /// The cluster [`Self::on_postgres`] started.
    pub fn postgres(&self) -> Option<&postgres::Postgres> {
        self.postgres.as_ref()
    }

    /// Start replica `n` (from 2) of the hub, on the same database as the hub
    /// ([`Self::postgres_url`]) and a free port, and wait until it is SERVING; returns the
    /// process and its port.
    pub async fn start_replica(&self, n: usize) -> (Proc, u16) {
        assert!(self.postgres_url.is_some(), "replicas share a database");
        let config = self.path().join(format!("hub-replica-{n}.toml"));
        let data_dir = format!("hub-replica-{n}-data");
        write_toml(&config, &self.hub_file(0, &data_dir));
        let mut command = Command::new(&binaries().hub);
        command
            .args(["run", "--config"])
            .arg(&config)
            .env("CARAVAN_HUB_LOG", "info,caravan_hub=debug");
        let log = self.path().join(format!("hub-replica-{n}.log"));
        let proc = Proc::spawn(command, log);
        let port = proc
            .listening(&self.path().join(&data_dir))
            .await
            .grpc
            .expect("the replica names its gRPC port")
            .port();
        self.wait_serving(port, &proc).await;
        (proc, port)
    }

    /// Wait until the hub at `port` says its exchange is SERVING.
    async fn wait_serving(&self, port: u16, proc: &Proc) {
        let first = self.parties.keys().next().expect("a participant");
        let channel = self
            .channel_to(first, port)
            .expect("a participant to check health with");
        let start = Instant::now();
        loop {
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
            let request = tonic_health::pb::HealthCheckRequest {
                service: "caravan.v1.Exchange".into(),
            };
            if let Ok(r) = health.check(request).await
                && r.into_inner().status
                    == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
            {
                return;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "hub at port {port} not healthy; log:\n{}",
                proc.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// An `admin.toml` at `path` for the running hub, presenting the certificate `cert` and
    /// its key `key` (an operator's, or one a test expects the hub to refuse).
    pub fn write_admin_config_as(&self, path: &Path, cert: PathBuf, key: PathBuf) {
        let port = self.hub_port.expect("start the hub first");
        let file = AdminFile {
            hub_url: Some(format!("https://localhost:{port}")),
            hub_urls: Vec::new(),
            hub_tls_name: None,
            tls: TlsFiles {
                ca_cert: self.pki().join("ca.pem"),
                cert,
                key,
            },
        };
        write_toml(path, &file);
    }

    /// Start (or restart) the hub and wait until its health service says SERVING. The first
    /// start takes a free port; restarts keep it, so spokes find the hub again.
    pub async fn start_hub(&mut self) {
        self.write_hub_config(self.hub_port.unwrap_or(0));
        let mut command = match self.hub_nofile {
            Some(n) => {
                // prlimit sets the limits, then executes the hub in its place (same pid).
                let mut command = Command::new("prlimit");
                command
                    .arg(format!("--nofile={n}:{n}"))
                    .arg(&binaries().hub);
                command
            }
            None => Command::new(&binaries().hub),
        };
        command
            .args(["run", "--config"])
            .arg(self.hub_config())
            .env("CARAVAN_HUB_LOG", "info,caravan_hub=debug");
        let n = fs::read_dir(self.path()).map(|d| d.count()).unwrap_or(0);
        let proc = Proc::spawn(command, self.path().join(format!("hub-{n}.log")));
        let listening = proc.listening(&self.hub_data()).await;
        let port = listening.grpc.expect("the hub names its gRPC port").port();
        self.hub_port = Some(port);
        self.hub_listening = Some(listening);
        // Keep the port for restarts.
        self.write_hub_config(port);
        let operators = self.pki().join("operators");
        self.write_admin_config_as(
            &self.admin_config(),
            operators.join("ops.pem"),
            operators.join("ops.key"),
        );
        self.wait_serving(port, &proc).await;
        self.hub = Some(proc);
        if !self.onboarded {
            self.onboard().await;
        }
    }

    /// Where the hub (started last) listens.
    fn hub_listens(&self) -> &Listening {
        self.hub_listening.as_ref().expect("the hub started")
    }

    /// The hub's Prometheus metrics, as text (checked to be OpenMetrics, labelled as such).
    pub async fn hub_metrics(&self) -> String {
        metrics_get(self.hub_listens().metrics.expect("the hub serves metrics")).await
    }

    /// Where the hub's dashboard listens.
    pub fn dashboard_addr(&self) -> SocketAddr {
        self.hub_listens()
            .dashboard
            .expect("the hub serves its dashboard")
    }

    /// `GET path` on the hub's dashboard over TLS, presenting the certificate and key in
    /// `identity` (PEM files) or none: status and body, or why the connection failed.
    pub async fn dashboard_get(
        &self,
        identity: Option<(&Path, &Path)>,
        path: &str,
    ) -> Result<(u16, String), String> {
        use tokio_rustls::rustls::pki_types::ServerName;
        let addr = self.dashboard_addr();
        let config = self.dashboard_tls(identity);
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let (status, body) = caravan_spoke::client::exchange(tls, "GET", path, &[], Vec::new())
            .await
            .map_err(|e| e.to_string())?;
        Ok((status.as_u16(), String::from_utf8_lossy(&body).into_owned()))
    }

    /// A TLS client for the hub's dashboard (the name `localhost`, the harness's CA),
    /// presenting the certificate and key in `identity` (PEM files) or none.
    pub fn dashboard_tls(
        &self,
        identity: Option<(&Path, &Path)>,
    ) -> tokio_rustls::rustls::ClientConfig {
        use tokio_rustls::rustls::{
            self,
            pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
        };
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(self.pki().join(&self.ca_file)).unwrap() {
            roots.add(ca.unwrap()).unwrap();
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        match identity {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    CertificateDer::pem_file_iter(cert)
                        .unwrap()
                        .map(Result::unwrap)
                        .collect(),
                    PrivateKeyDer::from_pem_file(key).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        }
    }

    /// `GET path` on the hub's metrics listener (plain HTTP): status and body.
    pub async fn hub_http(&self, path: &str) -> (u16, String) {
        let addr = self.hub_listens().metrics.expect("the hub serves metrics");
        http_get(addr, path).await
    }

    pub fn hub_log(&self) -> String {
        self.hub.as_ref().map(Proc::log_text).unwrap_or_default()
    }

    /// SIGKILL the hub.
    pub fn kill_hub(&mut self) {
        self.hub.take().expect("hub running").kill();
    }

    /// SIGTERM the hub and check it exits cleanly.
    pub async fn terminate_hub(&mut self) -> bool {
        self.hub.take().expect("hub running").terminate().await
    }

    pub fn spoke_config(&self, id: &str) -> PathBuf {
        self.path().join(format!("spoke-{id}.toml"))
    }

    pub fn control_socket(&self, id: &str) -> PathBuf {
        self.path()
            .join(format!("spoke-{id}-data"))
            .join("control.sock")
    }

    /// `id`'s data folder (`data_dir`).
    pub fn spoke_data(&self, id: &str) -> PathBuf {
        self.path().join(format!("spoke-{id}-data"))
    }

    /// `id`'s config, as the spoke's own `SpokeFile`.
    pub fn write_spoke_config(&mut self, id: &str) {
        if self.nsw && !self.nsw_tokens.contains_key(id) {
            let (token, _) = caravan_spoke::api::nsw::new_token();
            self.nsw_tokens.insert(id.to_owned(), token);
        }
        let pki = self.pki();
        let port = match self.spoke_hub_port.get(id) {
            Some(port) => *port,
            None => self.hub_port.expect("start the hub first"),
        };
        // The NSW API, the console and metrics on free ports, found in listening.json.
        let nsw = self.nsw_tokens.get(id).map(|token| NswFile {
            listen: "127.0.0.1:0".into(),
            tokens: vec![NswTokenFile {
                name: format!("{id}-nsw"),
                sha256: caravan_common::envelope::to_hex(&sha256(token.as_bytes())),
            }],
            webhook_url: self.nsw_webhook.clone(),
            webhook: Default::default(),
        });
        let console = self.console_password.as_ref().map(|password| ConsoleFile {
            listen: "127.0.0.1:0".into(),
            // The QR code's URL; the port is not known before the spoke binds.
            public_url: (!self.console_without_public_url)
                .then(|| format!("https://console-{}.caravan.test", id.to_lowercase())),
            officers: std::iter::once(OfficerFile {
                user: "officer".into(),
                password_hash: caravan_spoke::api::console::hash_password(password),
                language: None,
                roles: vec![caravan_spoke::config::Role::Viewing],
            })
            .chain(
                self.console_officers
                    .iter()
                    .map(|(user, password, roles)| OfficerFile {
                        user: user.clone(),
                        password_hash: caravan_spoke::api::console::hash_password(password),
                        language: None,
                        roles: roles.clone(),
                    }),
            )
            .collect(),
            time_zone: self.console_time_zone.clone(),
            trusted_proxies: Vec::new(),
        });
        let participants = pki.join("participants");
        let mut file = SpokeFile {
            participant: id.to_owned(),
            hub_url: (!self.spoke_hub_urls.contains_key(id))
                .then(|| format!("https://localhost:{port}")),
            hub_urls: self.spoke_hub_urls.get(id).cloned().unwrap_or_default(),
            hub_tls_name: None,
            data_dir: format!("spoke-{id}-data").into(),
            store_engine: Default::default(),
            signing_key: self.parties[id].keys[self.signing_key_index(id)]
                .file
                .clone(),
            control_socket: None,
            max_payload_bytes: self.max_payload_bytes,
            payload_in_flight_mib: self
                .spoke_payload_in_flight_mib
                .unwrap_or(caravan_spoke::config::DEFAULT_PAYLOAD_IN_FLIGHT_MIB),
            anchor_public_key: self
                .spoke_anchor_override
                .get(id)
                .unwrap_or(&self.anchor_public_key)
                .clone(),
            tls: TlsFiles {
                ca_cert: pki.join(&self.ca_file),
                cert: participants.join(format!("{id}.pem")),
                key: participants.join(format!("{id}.key")),
            },
            nsw,
            metrics_listen: Some("127.0.0.1:0".into()),
            console,
            net: self.spoke_net.clone(),
            upload: self.spoke_upload.clone(),
            checks: Default::default(),
        };
        if let Some(engine) = self.store_engine {
            file.store_engine = Some(engine.parse().expect("a store engine"));
        }
        write_toml(&self.spoke_config(id), &file);
    }

    /// Where `id`'s running spoke listens, from its `listening.json` (waiting for the file).
    pub async fn spoke_listening(&self, id: &str) -> Listening {
        let proc = self.spokes.get(id).expect("spoke running");
        proc.listening(&self.spoke_data(id)).await
    }

    /// The address the spoke's officer console listens on.
    pub async fn console_addr(&self, id: &str) -> SocketAddr {
        let listening = self.spoke_listening(id).await;
        listening.console.expect("the spoke serves the console")
    }

    /// One request to `id`'s console; returns status, the response headers and the body.
    pub async fn console_call(
        &self,
        id: &str,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        form: Option<&str>,
    ) -> (u16, Vec<(String, String)>, String) {
        self.console_call_with(id, method, path, cookie, form, &[])
            .await
    }

    /// [`Self::console_call`] with more request headers (`accept-language`, ...).
    pub async fn console_call_with(
        &self,
        id: &str,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        form: Option<&str>,
        extra: &[(&str, &str)],
    ) -> (u16, Vec<(String, String)>, String) {
        let stream = tokio::net::TcpStream::connect(self.console_addr(id).await)
            .await
            .expect("connect to the console");
        let mut headers: Vec<(&str, &str)> = extra.to_vec();
        if let Some(c) = cookie {
            headers.push(("cookie", c));
        }
        if form.is_some() {
            headers.push(("content-type", "application/x-www-form-urlencoded"));
        }
        let body = form.map(|f| f.as_bytes().to_vec()).unwrap_or_default();
        let (status, headers_out, bytes) =
            caravan_spoke::client::exchange_full(stream, method, path, &headers, body)
                .await
                .expect("console answer");
        (
            status.as_u16(),
            headers_out,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    /// The spoke's Prometheus metrics, as text (checked to be OpenMetrics, labelled as such).
    pub async fn spoke_metrics(&self, id: &str) -> String {
        let listening = self.spoke_listening(id).await;
        metrics_get(listening.metrics.expect("the spoke serves metrics")).await
    }

    /// `GET path` on `id`'s metrics listener (plain HTTP): status and body.
    pub async fn spoke_http(&self, id: &str, path: &str) -> (u16, String) {
        let listening = self.spoke_listening(id).await;
        http_get(listening.metrics.expect("the spoke serves metrics"), path).await
    }

    /// The address the spoke's NSW API listens on.
    pub async fn nsw_addr(&self, id: &str) -> SocketAddr {
        let listening = self.spoke_listening(id).await;
        listening.nsw.expect("the spoke serves the NSW API")
    }

    /// One request to `id`'s NSW API with `token` (or none); returns the status and JSON body
    /// (`Null` when the body is not JSON).
    pub async fn nsw_call(
        &self,
        id: &str,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, serde_json::Value) {
        let stream = tokio::net::TcpStream::connect(self.nsw_addr(id).await)
            .await
            .expect("connect to the NSW API");
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        let (status, bytes) = caravan_spoke::client::exchange(stream, method, path, &headers, body)
            .await
            .expect("NSW API answer");
        (
            status.as_u16(),
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    /// Start a spoke and wait until it has its delivery stream open to the hub.
    pub async fn start_spoke(&mut self, id: &str) {
        self.launch_spoke(id);
        self.wait_hub_connected(id, true).await;
    }

    /// Start a spoke without waiting for it to connect.
    pub fn launch_spoke(&mut self, id: &str) {
        self.write_spoke_config(id);
        let mut command = Command::new(&binaries().spoke);
        command
            .args(["run", "--config"])
            .arg(self.spoke_config(id))
            .env("CARAVAN_SPOKE_LOG", "info,caravan_spoke=debug");
        let n = fs::read_dir(self.path()).map(|d| d.count()).unwrap_or(0);
        let proc = Proc::spawn(command, self.path().join(format!("spoke-{id}-{n}.log")));
        self.spokes.insert(id.to_owned(), proc);
    }

    /// Wait until the spoke's control API answers (whether or not the hub is reachable).
    pub async fn wait_control(&mut self, id: &str) {
        let socket = self.control_socket(id);
        let start = Instant::now();
        while caravan_spoke::client::call(&socket, "GET", "/v1/health", Vec::new())
            .await
            .is_err()
        {
            let proc = self.spokes.get_mut(id).expect("spoke");
            if let Some(status) = proc.exited() {
                panic!("spoke {id} exited with {status}; log:\n{}", proc.log_text());
            }
            assert!(
                start.elapsed() < PATIENCE,
                "spoke {id}'s control API never answered"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait until `id`'s spoke holds a trust list of at least `version`; returns the list.
    pub async fn wait_trust_version(&self, id: &str, version: u64) -> serde_json::Value {
        self.wait_trust_list(id, &format!("trust list version {version}"), |list| {
            list["version"].as_u64().unwrap_or(0) >= version
        })
        .await
    }

    /// Wait until `id`'s spoke holds a trust list (as `trust-list show --json` gives it) that
    /// `held` accepts, `what` it is waiting for; returns the list.
    pub async fn wait_trust_list(
        &self,
        id: &str,
        what: &str,
        held: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let out = self.spoke_cli(id, &["trust-list", "show", "--json"]).await;
            if out.status.success() {
                let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
                if held(&list) {
                    return list;
                }
            }
            assert!(start.elapsed() < PATIENCE, "{id} never held {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The version of the hub's current trust list.
    pub async fn hub_trust_version(&self) -> u64 {
        let out = self.admin_ok(&["trust-list", "show", "--json"]).await;
        let list: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        list["version"].as_u64().expect("version")
    }

    /// Wait until `check` holds of `id`'s spoke log.
    pub async fn wait_spoke_log(&self, id: &str, what: &str, check: impl Fn(&str) -> bool) {
        let start = Instant::now();
        while !check(&self.spoke_log(id)) {
            assert!(
                start.elapsed() < PATIENCE,
                "spoke {id} never logged {what}:\n{}",
                self.spoke_log(id)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait until the spoke's health says `hub_connected == connected`: with `true`, it holds a
    /// trust list and has its delivery stream open.
    pub async fn wait_hub_connected(&mut self, id: &str, connected: bool) {
        let socket = self.control_socket(id);
        let start = Instant::now();
        loop {
            if let Ok(body) =
                caravan_spoke::client::call(&socket, "GET", "/v1/health", Vec::new()).await
            {
                let health: serde_json::Value = serde_json::from_slice(&body).expect("health JSON");
                if health["hub_connected"] == connected {
                    return;
                }
            }
            let proc = self.spokes.get_mut(id).expect("spoke");
            if let Some(status) = proc.exited() {
                panic!("spoke {id} exited with {status}; log:\n{}", proc.log_text());
            }
            assert!(
                start.elapsed() < PATIENCE,
                "spoke {id} never had hub_connected={connected}; log:\n{}",
                proc.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn spoke_log(&self, id: &str) -> String {
        self.spokes.get(id).map(Proc::log_text).unwrap_or_default()
    }

    pub fn kill_spoke(&mut self, id: &str) {
        self.spokes.remove(id).expect("spoke running").kill();
    }

    /// SIGTERM a spoke and wait for its exit; returns whether it exited cleanly.
    pub async fn terminate_spoke(&mut self, id: &str) -> bool {
        self.spokes
            .remove(id)
            .expect("spoke running")
            .terminate()
            .await
    }

    /// Export spoke `id`'s evidence bundle of `message_id` and judge it offline with the
    /// anchor key alone: the bundle as written, and the verifier's verdict.
    pub async fn export_and_verify(
        &self,
        id: &str,
        message_id: &str,
    ) -> (serde_json::Value, serde_json::Value) {
        let path = self.path().join(format!("evidence-{id}-{message_id}.json"));
        let out = self
            .spoke_cli(id, &["export", message_id, "--out", path.to_str().unwrap()])
            .await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bundle = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        let verified = tokio::process::Command::new(&binaries().spoke)
            .args(["verify", "--json", "--anchor-key"])
            .arg(self.pki().join("hub-anchor.pub"))
            .arg(&path)
            .output()
            .await
            .unwrap();
        (bundle, serde_json::from_slice(&verified.stdout).unwrap())
    }

    /// Run `caravan-spoke ARGS --config <id's config>` and return its output.
    pub async fn spoke_cli(&self, id: &str, args: &[&str]) -> Output {
        output(
            tokio::process::Command::new(&binaries().spoke)
                .args(args)
                .arg("--config")
                .arg(self.spoke_config(id)),
        )
        .await
    }

    /// `caravan-spoke ... --json`, which must succeed, parsed.
    pub async fn spoke_json(&self, id: &str, args: &[&str]) -> serde_json::Value {
        let mut args = args.to_vec();
        args.push("--json");
        let out = self.spoke_cli(id, &args).await;
        assert!(
            out.status.success(),
            "caravan-spoke {args:?} failed: {}\nspoke log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.spoke_log(id)
        );
        serde_json::from_slice(&out.stdout).expect("JSON output")
    }

    /// `caravan-spoke send --wait` of `file` from `from` to `to`; returns the JSON answer.
    pub async fn send(
        &self,
        from: &str,
        to: &str,
        document_type: &str,
        file: &Path,
    ) -> serde_json::Value {
        let file = file.to_str().expect("UTF-8 path");
        self.spoke_json(
            from,
            &["send", "--wait", "--to", to, "--type", document_type, file],
        )
        .await
    }

    /// Submit `payload` signed by `from` (its first key) straight to the hub for `to`, as a
    /// spoke that skips the sending checks would: only the recipient judges it then. Returns
    /// the message id once `to`'s inbox holds it.
    pub async fn submit_unchecked(
        &self,
        from: &str,
        to: &str,
        doc: DocumentType,
        document_id: &str,
        content_type: &str,
        payload: &[u8],
    ) -> String {
        self.submit_unchecked_with(from, to, doc, payload, |h| {
            h.document_id = document_id.into();
            h.content_type = content_type.into();
        })
        .await
    }

    /// [`Self::submit_unchecked`] with the header as `edit` leaves it (its message id, the
    /// document it supersedes, ...).
    pub async fn submit_unchecked_with(
        &self,
        from: &str,
        to: &str,
        doc: DocumentType,
        payload: &[u8],
        edit: impl FnOnce(&mut Header),
    ) -> String {
        let key = self.signing_key(from, 0);
        let mut h = header(&key, from, to, doc, payload);
        edit(&mut h);
        let env = seal(&h, payload.to_vec(), &key);
        self.client(from)
            .submit(v1::SubmitRequest {
                envelope: Some(env),
                ..Default::default()
            })
            .await
            .expect("the hub accepts a well-signed document");
        let id = h.message_id.to_string();
        self.wait_inbox(to, &id).await;
        id
    }

    /// `caravan-spoke send` without waiting for the hub: returns once the document is in
    /// `from`'s outbox.
    pub async fn send_queued(
        &self,
        from: &str,
        to: &str,
        document_type: &str,
        file: &Path,
    ) -> serde_json::Value {
        let file = file.to_str().expect("UTF-8 path");
        self.spoke_json(from, &["send", "--to", to, "--type", document_type, file])
            .await
    }

    /// How many entries `id`'s inbox holds for `message_id` (exactly-once checks).
    pub async fn inbox_copies(&self, id: &str, message_id: &str) -> usize {
        self.spoke_json(id, &["inbox"])
            .await
            .as_array()
            .expect("array")
            .iter()
            .filter(|i| i["message_id"] == message_id)
            .count()
    }

    /// Wait until `id`'s inbox holds an entry for `message_id`; returns the inbox item.
    pub async fn wait_inbox(&self, id: &str, message_id: &str) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let inbox = self.spoke_json(id, &["inbox"]).await;
            if let Some(item) = inbox
                .as_array()
                .expect("array")
                .iter()
                .find(|i| i["message_id"] == message_id)
            {
                return item.clone();
            }
            assert!(
                start.elapsed() < PATIENCE,
                "{message_id} never reached {id}; log:\n{}",
                self.spoke_log(id)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait until the sender `id` sees `message_id` in `state`; returns the status.
    pub async fn wait_state(&self, id: &str, message_id: &str, state: &str) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let status = self.spoke_json(id, &["status", message_id]).await;
            if status["state"] == state {
                return status;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "{message_id} never reached {state}: {status}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn channel_as(&self, id: &str) -> Option<Channel> {
        let port = self.hub_port.expect("hub started");
        self.channel_to(id, port)
    }

    /// A channel presenting participant `id`'s certificate to whatever listens on `port` of
    /// `localhost` with the hub's certificate (the hub, or the conformance kit's stand-in).
    pub fn channel_to(&self, id: &str, port: u16) -> Option<Channel> {
        let pki = self.pki();
        let cert = fs::read(pki.join("participants").join(format!("{id}.pem"))).ok()?;
        let key = fs::read(pki.join("participants").join(format!("{id}.key"))).ok()?;
        Some(self.channel_on(
            Some(Identity::from_pem(cert, key)),
            &pki.join(&self.ca_file),
            port,
        ))
    }

    /// A channel to the hub presenting `identity` (or none), trusting the CA at `ca`.
    pub fn channel_with(&self, identity: Option<Identity>, ca: &Path) -> Channel {
        self.channel_on(identity, ca, self.hub_port.expect("hub started"))
    }

    fn channel_on(&self, identity: Option<Identity>, ca: &Path, port: u16) -> Channel {
        let mut tls =
            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(fs::read(ca).expect("CA")));
        if let Some(identity) = identity {
            tls = tls.identity(identity);
        }
        Endpoint::from_shared(format!("https://localhost:{port}"))
            .expect("endpoint")
            .tls_config(tls)
            .expect("tls")
            .connect_lazy()
    }

    /// As `recipient`'s own system (no spoke of its own running): take the first document
    /// waiting for it, `message_id` from `sender`, and reject it with a business `code` and
    /// `reason`, signed with its first key.
    pub async fn reject_as_business(
        &self,
        recipient: &str,
        sender: &str,
        message_id: &str,
        code: &str,
        reason: &str,
    ) {
        use tokio_stream::StreamExt;
        let mut client = self.client(recipient);
        let mut deliveries = client
            .deliveries(v1::DeliveriesRequest::default())
            .await
            .expect("a delivery stream")
            .into_inner();
        let delivery = deliveries
            .next()
            .await
            .expect("a delivery")
            .expect("a frame");
        let envelope = delivery.envelope.expect("an envelope");
        let key = self.signing_key(recipient, 0);
        let ack = caravan_common::envelope::Ack {
            message_id: message_id.parse().expect("a message id"),
            sender: sender.parse().expect("a participant"),
            recipient: recipient.parse().expect("a participant"),
            header_sha256: sha256(&envelope.header),
            outcome: caravan_common::envelope::AckOutcome::Rejected {
                code: code.parse().expect("a business code"),
                reason: reason.into(),
            },
            acknowledged_at: caravan_common::Timestamp::now(),
            key_id: key.key_id(),
        };
        client
            .acknowledge(v1::AcknowledgeRequest {
                ack: Some(caravan_proto::ack::sign(&ack, &key)),
            })
            .await
            .expect("the rejection is recorded");
    }

    /// The hub's current trust list, as participant `id` fetches it, opened with the anchor key.
    pub async fn trust_set(&self, id: &str) -> caravan_common::trust::TrustSet {
        let channel = self.channel_as(id).expect("participant certificate");
        let signed = caravan_proto::v1::trust_anchor_client::TrustAnchorClient::new(channel)
            .current(caravan_proto::v1::CurrentTrustListRequest::default())
            .await
            .expect("the hub's trust list")
            .into_inner();
        let anchor = caravan_common::signing::PublicKey::from_base64(&self.anchor_public_key)
            .expect("the anchor key");
        caravan_proto::trust_list::open(&signed, &anchor)
            .expect("the list verifies")
            .1
    }

    /// A raw Exchange client authenticated as participant `id`, for sending what a spoke
    /// never would.
    pub fn client(&self, id: &str) -> ExchangeClient<Channel> {
        ExchangeClient::new(self.channel_as(id).expect("participant certificate"))
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    }
}

/// A sample document shipped in the repository.
pub fn sample(path: &str) -> Vec<u8> {
    fs::read(sample_path(path)).expect("sample")
}

pub fn sample_path(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("samples")
        .join(path)
}

/// The issue date as written in each dated sample (see samples/SOURCES.md).
const SAMPLE_ISSUED: &[(&str, &str)] = &[
    (
        "ephyto/carec-KZ-CN-phytosanitary.xml",
        "2026-11-27T10:15:00+05:00",
    ),
    (
        "ephyto/carec-UZ-KZ-phytosanitary.xml",
        "2026-11-28T09:30:00+05:00",
    ),
    (
        "ephyto/carec-KZ-TJ-phytosanitary.xml",
        "2026-11-30T14:05:00+05:00",
    ),
    ("eco/carec-KZ-CN-certificate-of-origin.xml", ">2026-11-20<"),
    (
        "eco/carec-KZ-CN-certificate-of-origin-replacement.xml",
        ">2026-11-23<",
    ),
    (
        "eco/carec-KZ-CN-certificate-of-origin.json",
        "2026-11-24T11:05:00+05:00",
    ),
    ("einvoice/ubl/carec-CN-UZ-invoice.xml", ">2026-11-26<"),
];

/// A sample as if issued an hour ago, so that a test asserting that every content check
/// passes does not start to warn when the sample grows older than its type's age limit.
pub fn sample_issued_now(path: &str) -> Vec<u8> {
    let (_, issued) = SAMPLE_ISSUED
        .iter()
        .find(|(p, _)| *p == path)
        .unwrap_or_else(|| panic!("no issue date recorded for {path}"));
    let now = caravan_common::Timestamp::from_millis(
        caravan_common::Timestamp::now().as_millis() - 3_600_000,
    )
    .to_string();
    // `2026-12-06T12:00:00.000Z`: a date-time where the sample has one, else the date.
    let now = if issued.contains('T') {
        format!("{}Z", &now[..19])
    } else {
        let quote = &issued[..1];
        let end = &issued[issued.len() - 1..];
        format!("{quote}{}{end}", &now[..10])
    };
    let text = String::from_utf8(sample(path)).expect("UTF-8 sample");
    assert!(text.contains(issued), "{path} does not carry {issued}");
    text.replacen(issued, &now, 1).into_bytes()
}

/// A header for `payload`, signed later with `key`.
pub fn header(
    key: &SigningKey,
    sender: &str,
    recipient: &str,
    doc: DocumentType,
    payload: &[u8],
) -> Header {
    Header {
        message_id: MessageId::generate(),
        sender: sender.parse().unwrap(),
        recipient: recipient.parse().unwrap(),
        document_type: doc,
        document_id: "TEST-1".into(),
        content_type: "application/xml".into(),
        payload_sha256: sha256(payload),
        payload_length: payload.len() as u64,
        created_at: Timestamp::now(),
        key_id: key.key_id(),
        supersedes: None,
        in_reply_to: None,
    }
}

/// An envelope sealed with `key`.
pub fn envelope(
    key: &SigningKey,
    sender: &str,
    recipient: &str,
    doc: DocumentType,
    payload: &[u8],
) -> v1::Envelope {
    seal(
        &header(key, sender, recipient, doc, payload),
        payload.to_vec(),
        key,
    )
}

/// The value of the sample `name` (with its labels) in Prometheus text, as `/metrics` gives it.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

/// Write `config` (a binary's own config type) as TOML.
fn write_toml(path: &Path, config: &impl serde::Serialize) {
    let text = toml::to_string(config).expect("a config as TOML");
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// `GET /metrics` from a Prometheus listener, as text.
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the metrics listener");
    let (status, body) = caravan_spoke::client::exchange(stream, "GET", path, &[], Vec::new())
        .await
        .expect("an HTTP answer");
    (status.as_u16(), String::from_utf8_lossy(&body).into_owned())
}

/// `GET /metrics` from a Prometheus listener: the text, once it is seen to be OpenMetrics (ended
/// by `# EOF`) sent with the content type that says so.
async fn metrics_get(addr: SocketAddr) -> String {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the metrics listener");
    let (status, headers, body) =
        caravan_spoke::client::exchange_full(stream, "GET", "/metrics", &[], Vec::new())
            .await
            .expect("an HTTP answer");
    let text = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status.as_u16(), 200, "metrics answered {status}: {text}");
    let content_type = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map(|(_, value)| value.as_str());
    assert_eq!(
        content_type,
        Some(caravan_common::metrics::CONTENT_TYPE),
        "{headers:?}"
    );
    assert!(text.ends_with("\n# EOF\n"), "{text}");
    check_families(&text);
    text
}

/// The exposition holds together as OpenMetrics: each family is declared once, and each
/// sample belongs to the family declared last before it, named as its type requires (a
/// counter's `_total`, a histogram's `_bucket`, `_sum` and `_count`, a gauge's bare name).
fn check_families(text: &str) {
    let mut declared = std::collections::HashSet::new();
    let mut family: Option<(&str, &str)> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(declared.insert(name), "{name} declared twice:\n{text}");
            family = Some((name, kind));
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        let (declared_name, kind) =
            family.unwrap_or_else(|| panic!("{line} before any # TYPE:\n{text}"));
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            "gauge" => &[""],
            other => panic!("unexpected type {other}:\n{text}"),
        };
        assert!(
            name.strip_prefix(declared_name)
                .is_some_and(|suffix| suffixes.contains(&suffix)),
            "{line} is not a sample of {kind} {declared_name}:\n{text}"
        );
    }
}
