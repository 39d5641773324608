//! The end-to-end test harness: a Caravan network of the real `caravan-hub` and
//! `caravan-spoke` binaries, over real mutual TLS on loopback, in a temporary folder.
//!
//! The binaries are built once per test process with the same cargo that runs the tests (or
//! taken from `CARAVAN_HUB_BIN` / `CARAVAN_SPOKE_BIN`). Processes log to files in the folder
//! and are killed when the harness is dropped. Readiness is waited for on the hub's gRPC health
//! service and on each spoke's control API, never with fixed sleeps.

pub mod browser;

use std::{
    collections::BTreeMap,
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use caravan_common::{
    DocumentType, MessageId, Timestamp,
    envelope::Header,
    signing::{SigningKey, sha256},
};
use caravan_proto::v1::exchange_client::ExchangeClient;
use caravan_proto::{envelope::seal, v1};
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
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "building the binaries failed");
        Binaries {
            hub: profile_dir.join("caravan-hub"),
            spoke: profile_dir.join("caravan-spoke"),
        }
    })
}

/// A running process, killed on drop.
pub struct Proc {
    child: Child,
    pub log: PathBuf,
}

impl Proc {
    fn spawn(mut command: Command, log: PathBuf) -> Self {
        let out = fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = command.spawn().expect("spawn");
        Self { child, log }
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit; returns whether it exited successfully.
    pub fn terminate(mut self) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let start = Instant::now();
        while start.elapsed() < PATIENCE {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// A test network in a temporary folder.
pub struct Net {
    pub dir: tempfile::TempDir,
    pub parties: BTreeMap<String, Party>,
    /// The hub's trust-anchor public key, pinned by the spokes.
    pub anchor_public_key: String,
    pub hub_port: Option<u16>,
    pub max_payload_bytes: u64,
    pub trust_list_validity_secs: u64,
    /// Whether onboarding opens every corridor between the parties for every document type.
    pub open_corridors: bool,
    /// A spoke pinned to another anchor than the hub's (to test forgery).
    pub spoke_anchor_override: BTreeMap<String, String>,
    /// A spoke that reaches the hub at another port (through a proxy a test runs).
    pub spoke_hub_port: BTreeMap<String, u16>,
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
    /// The CA file, in the PKI folder, that the hub and the spokes trust (default `ca.pem`; a
    /// CA rollover uses `ca-bundle.pem`).
    pub ca_file: String,
    /// The storage engine of the hub's and the spokes' stores (`store_engine`; default: the
    /// binaries' default: redb for a new store).
    pub store_engine: Option<&'static str>,
    /// The hub's `payload_in_flight_mib` (default: the hub's).
    pub payload_in_flight_mib: Option<u64>,
    /// The hub's `tree_head_interval_secs` (default 1: a head kept every second).
    pub tree_head_interval_secs: u64,
    /// Top-level lines put first in the hub's config (e.g. `net = { handshake_timeout_secs = 2 }`).
    pub hub_extra: String,
    /// Top-level lines put first in every spoke's config.
    pub spoke_extra: String,
    /// Run the hub with this RLIMIT_NOFILE, soft and hard (through util-linux `prlimit`).
    pub hub_nofile: Option<u64>,
    onboarded: bool,
    hub: Option<Proc>,
    spokes: BTreeMap<String, Proc>,
}

fn run_ok(command: &mut Command) -> Output {
    let out = command.output().expect("run command");
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Net {
    /// PKI, certificates and signing keys for `ids`; nothing started.
    pub fn new(ids: &[&str]) -> Self {
        let bins = binaries();
        let dir = tempfile::tempdir().expect("temp dir");
        let pki = dir.path().join("pki");
        let init = run_ok(
            Command::new(&bins.hub)
                .args(["pki", "init", "--dir"])
                .arg(&pki),
        );
        let init = String::from_utf8_lossy(&init.stdout).into_owned();
        let anchor_public_key = init
            .lines()
            .find_map(|l| l.strip_prefix("anchor public key:"))
            .expect("pki init prints the anchor public key")
            .trim()
            .to_owned();
        run_ok(
            Command::new(&bins.hub)
                .args(["pki", "issue", "--dir"])
                .arg(&pki)
                .args(["--operator", "ops"]),
        );
        let admin = format!(
            "hub_url = \"https://localhost:PORT\"\n[tls]\nca_cert = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            pki.join("ca.pem").display(),
            pki.join("operators/ops.pem").display(),
            pki.join("operators/ops.key").display()
        );
        fs::write(dir.path().join("admin.toml.in"), admin).expect("admin.toml");
        let mut net = Self {
            dir,
            parties: BTreeMap::new(),
            anchor_public_key,
            hub_port: None,
            max_payload_bytes: 64 * 1024 * 1024,
            trust_list_validity_secs: 86_400,
            open_corridors: true,
            spoke_anchor_override: BTreeMap::new(),
            spoke_hub_port: BTreeMap::new(),
            spoke_key: BTreeMap::new(),
            receipt_key: None,
            eco_ttl_secs: None,
            nsw: false,
            nsw_tokens: BTreeMap::new(),
            console_password: None,
            nsw_webhook: None,
            ca_file: "ca.pem".into(),
            store_engine: None,
            payload_in_flight_mib: None,
            tree_head_interval_secs: 1,
            hub_extra: String::new(),
            spoke_extra: String::new(),
            hub_nofile: None,
            onboarded: false,
            hub: None,
            spokes: BTreeMap::new(),
        };
        for id in ids {
            net.new_party(id);
        }
        net
    }

    /// A participant's certificate and first signing key; registered at onboarding, or by the
    /// test itself when the hub is already running.
    pub fn new_party(&mut self, id: &str) {
        let out = run_ok(
            Command::new(&binaries().hub)
                .args(["pki", "issue", "--dir"])
                .arg(self.pki())
                .args(["--participant", id]),
        );
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
        self.add_key(id, &["e-co", "e-phyto", "e-invoice"], None, None);
        self.onboarded = onboarded;
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn pki(&self) -> PathBuf {
        self.path().join("pki")
    }

    /// Create a signing key with `caravan-spoke keygen` and register it for `id`.
    pub fn add_key(
        &mut self,
        id: &str,
        types: &[&str],
        not_before: Option<&str>,
        not_after: Option<&str>,
    ) -> KeySpec {
        let n = self.parties[id].keys.len();
        let file = self.path().join(format!("{id}-signing-{n}.key"));
        let out = run_ok(
            Command::new(&binaries().spoke)
                .args(["keygen", "--json", "--out"])
                .arg(&file),
        );
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
            self.register_key(id, &spec);
        }
        spec
    }

    /// Register `spec` for `id` with `caravan-hub admin key register`.
    pub fn register_key(&self, id: &str, spec: &KeySpec) {
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
        self.admin_ok(&args);
    }

    pub fn admin_config(&self) -> PathBuf {
        self.path().join("admin.toml")
    }

    /// Run `caravan-hub admin --config admin.toml ARGS`.
    pub fn admin(&self, args: &[&str]) -> Output {
        let mut command = Command::new(&binaries().hub);
        command
            .args(["admin", "--config"])
            .arg(self.admin_config())
            .args(args);
        command.output().expect("run caravan-hub admin")
    }

    /// `caravan-hub ARGS --config <the hub's config>` (the local commands: log, restore, info).
    pub fn hub_cli(&self, args: &[&str]) -> Output {
        Command::new(&binaries().hub)
            .args(args)
            .arg("--config")
            .arg(self.hub_config())
            .output()
            .expect("run caravan-hub")
    }

    /// `admin`, which must succeed; returns its standard output.
    pub fn admin_ok(&self, args: &[&str]) -> String {
        let out = self.admin(args);
        assert!(
            out.status.success(),
            "caravan-hub admin {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Register every party and key, and open the corridors, as an operator would.
    fn onboard(&mut self) {
        let parties: Vec<Party> = self.parties.values().cloned().collect();
        for p in &parties {
            self.admin_ok(&[
                "participant",
                "add",
                &p.id,
                "--name",
                &format!("Participant {}", p.id),
            ]);
            for k in &p.keys {
                self.register_key(&p.id, k);
            }
        }
        if self.open_corridors {
            for from in &parties {
                for to in parties.iter().filter(|to| to.id != from.id) {
                    self.admin_ok(&["corridor", "open", &from.id, &to.id, "all"]);
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

    /// The `store_engine` line of a config, if one is chosen.
    fn engine_line(&self) -> String {
        self.store_engine
            .map(|e| format!("store_engine = \"{e}\"\n"))
            .unwrap_or_default()
    }

    pub fn hub_config(&self) -> PathBuf {
        self.path().join("hub.toml")
    }

    fn write_hub_config(&self, port: u16) {
        let pki = self.pki();
        let text = format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"hub-data\"\nmax_payload_bytes = {}\nreceipt_key = \"{}\"\nanchor_key = \"{}\"\ntrust_list_validity_secs = {}\n\n[tls]\nca_cert = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            self.max_payload_bytes,
            self.receipt_key
                .clone()
                .unwrap_or_else(|| pki.join("hub-receipt.key"))
                .display(),
            pki.join("hub-anchor.key").display(),
            self.trust_list_validity_secs,
            pki.join(&self.ca_file).display(),
            pki.join("hub.pem").display(),
            pki.join("hub.key").display(),
        );
        // Metrics and the dashboard on free ports, logged as `metrics listening addr=` and
        // `dashboard listening addr=`; a tree head every second unless the test says otherwise.
        let text = format!(
            "metrics_listen = \"127.0.0.1:0\"\ndashboard_listen = \"127.0.0.1:0\"\ntree_head_interval_secs = {}\n{}{text}",
            self.tree_head_interval_secs,
            self.engine_line()
        );
        let text = match self.payload_in_flight_mib {
            Some(mib) => format!("payload_in_flight_mib = {mib}\n{text}"),
            None => text,
        };
        let text = format!("{}{text}", self.hub_extra);
        let text = match self.eco_ttl_secs {
            Some(ttl) => format!("{text}\n[message_ttl_secs]\ne-co = {ttl}\n"),
            None => text,
        };
        fs::write(self.hub_config(), text).expect("write hub.toml");
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
        let mut proc = Proc::spawn(command, self.path().join(format!("hub-{n}.log")));
        let addr = wait_blocking("the hub to log its address", &mut proc, |log| {
            log.lines()
                .filter(|l| !l.contains("metrics listening") && !l.contains("dashboard listening"))
                .find_map(|l| l.split("listening addr=").nth(1))
                .and_then(|a| a.trim().parse::<SocketAddr>().ok())
        });
        self.hub_port = Some(addr.port());
        // Keep the port for restarts.
        self.write_hub_config(addr.port());
        let admin = fs::read_to_string(self.path().join("admin.toml.in")).expect("admin.toml.in");
        fs::write(
            self.admin_config(),
            admin.replace("PORT", &addr.port().to_string()),
        )
        .expect("admin.toml");
        self.hub = Some(proc);
        let channel = self.parties.keys().next().and_then(|p| self.channel_as(p));
        let channel = channel.expect("a participant to check health with");
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
                break;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "hub not healthy; log:\n{}",
                self.hub_log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !self.onboarded {
            self.onboard();
        }
    }

    /// The hub's Prometheus metrics, as text.
    pub async fn hub_metrics(&self) -> String {
        let addr = await_logged_addr(|| self.hub_log(), "metrics listening");
        expect_ok(http_get(addr, "/metrics").await)
    }

    /// Where the hub's dashboard listens.
    pub fn dashboard_addr(&self) -> SocketAddr {
        await_logged_addr(|| self.hub_log(), "dashboard listening")
    }

    /// `GET path` on the hub's dashboard over TLS, presenting the certificate and key in
    /// `identity` (PEM files) or none: status and body, or why the connection failed.
    pub async fn dashboard_get(
        &self,
        identity: Option<(&Path, &Path)>,
        path: &str,
    ) -> Result<(u16, String), String> {
        use tokio_rustls::rustls::{
            self,
            pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
        };
        let addr = self.dashboard_addr();
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(self.pki().join(&self.ca_file)).unwrap() {
            roots.add(ca.unwrap()).unwrap();
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match identity {
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
        };
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let (status, body) = caravan_spoke::control::exchange(tls, "GET", path, &[], Vec::new())
            .await
            .map_err(|e| e.to_string())?;
        Ok((status.as_u16(), String::from_utf8_lossy(&body).into_owned()))
    }

    /// `GET path` on the hub's metrics listener (plain HTTP): status and body.
    pub async fn hub_http(&self, path: &str) -> (u16, String) {
        http_get(
            await_logged_addr(|| self.hub_log(), "metrics listening"),
            path,
        )
        .await
    }

    pub fn hub_log(&self) -> String {
        self.hub.as_ref().map(Proc::log_text).unwrap_or_default()
    }

    /// SIGKILL the hub.
    pub fn kill_hub(&mut self) {
        self.hub.take().expect("hub running").kill();
    }

    /// SIGTERM the hub and check it exits cleanly.
    pub fn terminate_hub(&mut self) -> bool {
        self.hub.take().expect("hub running").terminate()
    }

    pub fn spoke_config(&self, id: &str) -> PathBuf {
        self.path().join(format!("spoke-{id}.toml"))
    }

    pub fn control_socket(&self, id: &str) -> PathBuf {
        self.path()
            .join(format!("spoke-{id}-data"))
            .join("control.sock")
    }

    pub fn write_spoke_config(&mut self, id: &str) {
        if self.nsw && !self.nsw_tokens.contains_key(id) {
            let (token, _) = caravan_spoke::nsw::new_token();
            self.nsw_tokens.insert(id.to_owned(), token);
        }
        let pki = self.pki();
        let port = match self.spoke_hub_port.get(id) {
            Some(port) => *port,
            None => self.hub_port.expect("start the hub first"),
        };
        let text = format!(
            "participant = \"{id}\"\nhub_url = \"https://localhost:{port}\"\ndata_dir = \"spoke-{id}-data\"\nsigning_key = \"{}\"\nmax_payload_bytes = {}\nanchor_public_key = \"{}\"\n\n[tls]\nca_cert = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            self.parties[id].keys[self.signing_key_index(id)]
                .file
                .display(),
            self.max_payload_bytes,
            self.spoke_anchor_override
                .get(id)
                .unwrap_or(&self.anchor_public_key),
            pki.join(&self.ca_file).display(),
            pki.join("participants").join(format!("{id}.pem")).display(),
            pki.join("participants").join(format!("{id}.key")).display(),
        );
        let text = format!(
            "metrics_listen = \"127.0.0.1:0\"\n{}{}{text}",
            self.spoke_extra,
            self.engine_line()
        );
        let text = match self.nsw_tokens.get(id) {
            Some(token) => {
                let hash = caravan_common::envelope::to_hex(&sha256(token.as_bytes()));
                let webhook = self
                    .nsw_webhook
                    .as_ref()
                    .map(|u| format!("webhook_url = \"{u}\"\n"))
                    .unwrap_or_default();
                format!(
                    "{text}\n[nsw]\nlisten = \"127.0.0.1:0\"\n{webhook}[[nsw.tokens]]\nname = \"{id}-nsw\"\nsha256 = \"{hash}\"\n"
                )
            }
            None => text,
        };
        let text = match &self.console_password {
            Some(password) => {
                let hash = caravan_spoke::console::hash_password(password);
                format!(
                    "{text}\n[console]\nlisten = \"127.0.0.1:0\"\n[[console.officers]]\nuser = \"officer\"\npassword_hash = \"{hash}\"\n"
                )
            }
            None => text,
        };
        fs::write(self.spoke_config(id), text).expect("write spoke config");
    }

    /// The address the spoke's officer console listens on, from its log.
    pub fn console_addr(&self, id: &str) -> SocketAddr {
        await_logged_addr(|| self.spoke_log(id), "officer console listening")
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
        let stream = tokio::net::TcpStream::connect(self.console_addr(id))
            .await
            .expect("connect to the console");
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(c) = cookie {
            headers.push(("cookie", c));
        }
        if form.is_some() {
            headers.push(("content-type", "application/x-www-form-urlencoded"));
        }
        let body = form.map(|f| f.as_bytes().to_vec()).unwrap_or_default();
        let (status, headers_out, bytes) =
            caravan_spoke::control::exchange_full(stream, method, path, &headers, body)
                .await
                .expect("console answer");
        (
            status.as_u16(),
            headers_out,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    /// The spoke's Prometheus metrics, as text.
    pub async fn spoke_metrics(&self, id: &str) -> String {
        expect_ok(self.spoke_http(id, "/metrics").await)
    }

    /// `GET path` on `id`'s metrics listener (plain HTTP): status and body.
    pub async fn spoke_http(&self, id: &str, path: &str) -> (u16, String) {
        let addr = await_logged_addr(|| self.spoke_log(id), "metrics listening");
        http_get(addr, path).await
    }

    /// The address the spoke's NSW API listens on, from its log.
    pub fn nsw_addr(&self, id: &str) -> SocketAddr {
        await_logged_addr(|| self.spoke_log(id), "NSW API listening")
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
        let stream = tokio::net::TcpStream::connect(self.nsw_addr(id))
            .await
            .expect("connect to the NSW API");
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        let (status, bytes) =
            caravan_spoke::control::exchange(stream, method, path, &headers, body)
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
        while caravan_spoke::control::call(&socket, "GET", "/v1/health", Vec::new())
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
    pub fn wait_trust_version(&self, id: &str, version: u64) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let out = self.spoke_cli(id, &["trust-list", "show", "--json"]);
            if out.status.success() {
                let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
                if list["version"].as_u64().unwrap_or(0) >= version {
                    return list;
                }
            }
            assert!(
                start.elapsed() < PATIENCE,
                "{id} never held trust list version {version}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The version of the hub's current trust list.
    pub fn hub_trust_version(&self) -> u64 {
        let out = self.admin_ok(&["trust-list", "show", "--json"]);
        let list: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        list["version"].as_u64().expect("version")
    }

    /// Wait until `check` holds of `id`'s spoke log.
    pub fn wait_spoke_log(&self, id: &str, what: &str, check: impl Fn(&str) -> bool) {
        let start = Instant::now();
        while !check(&self.spoke_log(id)) {
            assert!(
                start.elapsed() < PATIENCE,
                "spoke {id} never logged {what}:\n{}",
                self.spoke_log(id)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until the spoke's health says `hub_connected == connected`: with `true`, it holds a
    /// trust list and has its delivery stream open.
    pub async fn wait_hub_connected(&mut self, id: &str, connected: bool) {
        let socket = self.control_socket(id);
        let start = Instant::now();
        loop {
            if let Ok(body) =
                caravan_spoke::control::call(&socket, "GET", "/v1/health", Vec::new()).await
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
    pub fn terminate_spoke(&mut self, id: &str) -> bool {
        self.spokes.remove(id).expect("spoke running").terminate()
    }

    /// Run `caravan-spoke ARGS --config <id's config>` and return its output.
    pub fn spoke_cli(&self, id: &str, args: &[&str]) -> Output {
        let mut command = Command::new(&binaries().spoke);
        command
            .args(args)
            .arg("--config")
            .arg(self.spoke_config(id));
        command.output().expect("run caravan-spoke")
    }

    /// `caravan-spoke ... --json`, which must succeed, parsed.
    pub fn spoke_json(&self, id: &str, args: &[&str]) -> serde_json::Value {
        let mut args = args.to_vec();
        args.push("--json");
        let out = self.spoke_cli(id, &args);
        assert!(
            out.status.success(),
            "caravan-spoke {args:?} failed: {}\nspoke log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.spoke_log(id)
        );
        serde_json::from_slice(&out.stdout).expect("JSON output")
    }

    /// `caravan-spoke send --wait` of `file` from `from` to `to`; returns the JSON answer.
    pub fn send(
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
    }

    /// `caravan-spoke send` without waiting for the hub: returns once the document is in
    /// `from`'s outbox.
    pub fn send_queued(
        &self,
        from: &str,
        to: &str,
        document_type: &str,
        file: &Path,
    ) -> serde_json::Value {
        let file = file.to_str().expect("UTF-8 path");
        self.spoke_json(from, &["send", "--to", to, "--type", document_type, file])
    }

    /// How many entries `id`'s inbox holds for `message_id` (exactly-once checks).
    pub fn inbox_copies(&self, id: &str, message_id: &str) -> usize {
        self.spoke_json(id, &["inbox"])
            .as_array()
            .expect("array")
            .iter()
            .filter(|i| i["message_id"] == message_id)
            .count()
    }

    /// Wait until `id`'s inbox holds an entry for `message_id`; returns the inbox item.
    pub fn wait_inbox(&self, id: &str, message_id: &str) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let inbox = self.spoke_json(id, &["inbox"]);
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
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until the sender `id` sees `message_id` in `state`; returns the status.
    pub fn wait_state(&self, id: &str, message_id: &str, state: &str) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let status = self.spoke_json(id, &["status", message_id]);
            if status["state"] == state {
                return status;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "{message_id} never reached {state}: {status}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn channel_as(&self, id: &str) -> Option<Channel> {
        let pki = self.pki();
        let cert = fs::read(pki.join("participants").join(format!("{id}.pem"))).ok()?;
        let key = fs::read(pki.join("participants").join(format!("{id}.key"))).ok()?;
        Some(self.channel_with(
            Some(Identity::from_pem(cert, key)),
            &pki.join(&self.ca_file),
        ))
    }

    /// A channel to the hub presenting `identity` (or none), trusting the CA at `ca`.
    pub fn channel_with(&self, identity: Option<Identity>, ca: &Path) -> Channel {
        let mut tls =
            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(fs::read(ca).expect("CA")));
        if let Some(identity) = identity {
            tls = tls.identity(identity);
        }
        let port = self.hub_port.expect("hub started");
        Endpoint::from_shared(format!("https://localhost:{port}"))
            .expect("endpoint")
            .tls_config(tls)
            .expect("tls")
            .connect_lazy()
    }

    /// A raw Exchange client authenticated as participant `id`, for sending what a spoke
    /// never would.
    pub fn client(&self, id: &str) -> ExchangeClient<Channel> {
        ExchangeClient::new(self.channel_as(id).expect("participant certificate"))
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    }
}

fn wait_blocking<T>(what: &str, proc: &mut Proc, mut check: impl FnMut(&str) -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check(&proc.log_text()) {
            return v;
        }
        if let Some(status) = proc.exited() {
            panic!(
                "process exited ({status}) before {what}; log:\n{}",
                proc.log_text()
            );
        }
        assert!(
            start.elapsed() < PATIENCE,
            "timed out waiting for {what}; log:\n{}",
            proc.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
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

/// Polls a process log until a line containing `marker` names its `addr=`.
fn await_logged_addr(log: impl Fn() -> String, marker: &str) -> SocketAddr {
    let start = Instant::now();
    loop {
        let text = log();
        let addr = text
            .lines()
            .filter(|l| l.contains(marker))
            .find_map(|l| l.split("addr=").nth(1))
            .and_then(|a| a.split_whitespace().next()?.parse().ok());
        if let Some(addr) = addr {
            return addr;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "never logged \"{marker}\":\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `GET /metrics` from a Prometheus listener, as text.
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the metrics listener");
    let (status, body) = caravan_spoke::control::exchange(stream, "GET", path, &[], Vec::new())
        .await
        .expect("an HTTP answer");
    (status.as_u16(), String::from_utf8_lossy(&body).into_owned())
}

fn expect_ok((status, body): (u16, String)) -> String {
    assert_eq!(status, 200, "metrics answered {status}: {body}");
    body
}
