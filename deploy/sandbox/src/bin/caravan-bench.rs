//! `caravan-bench`: end-to-end throughput and latency of a Caravan network on this machine.
//!
//! It creates a network like the sandbox (fresh PKI, configs, an operator who onboards the
//! spokes and opens every corridor), then starts the hub and every spoke as **separate
//! processes** (this same binary, in `--serve-hub` / `--serve-spoke` mode), talking real mutual
//! TLS on loopback, with their stores on the engine `--engine` names and its flushes. The
//! spokes are the real product: they receive, verify end to end, store and flush, then sign and
//! send their acknowledgements. The senders are driven from here, with each spoke's own
//! certificate and signing key, so that the window of documents in flight is exact: each
//! document is signed, submitted (streamed above 1 MiB, as the spoke does), and its receipt
//! verified (protocol v2's, the log proof of its acceptance under a tree head whose signature
//! is checked once per head, as the spoke does); its acknowledgement is seen on the sender's status stream, as the spoke sees it.
//!
//! What is reported: documents delivered and acknowledged per second (first submission to last
//! acknowledgement), submit-to-receipt and submit-to-acknowledged latencies, the hub's CPU time
//! per document and peak memory (from /proc), its store flushes per document (from its metrics),
//! and what an idle connected spoke costs the hub in memory.
//!
//! `--engine postgres` keeps the hub's store in PostgreSQL: a cluster the benchmark starts on
//! this machine (on the same cores, as a deployment on one machine would have it), or the
//! database `--postgres-url` names. `--hub-replicas N` runs N hub processes on that database,
//! the spokes spread over them (each spoke's `hub_urls` starts with a different replica). The
//! database's commits and its server processes' CPU time per document are reported too.

#![forbid(unsafe_code)]

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Parser;
use serde::Serialize;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use tonic::transport::Channel;

use caravan_common::{
    DocumentType, MessageId, ParticipantId, Timestamp,
    envelope::Header,
    process::{LogFormat, init_tracing, shutdown_signal},
    signing::{SigningKey, sha256},
    store::EngineKind,
    trust::TrustSet,
};
use caravan_hub::{config::StoreEngine, operator::Operator};
use caravan_proto::{
    envelope::seal,
    log, receipt,
    v1::{self, exchange_client::ExchangeClient},
};
use caravan_sandbox::{
    BENCH_OVERRIDE, create, open_corridors, postgres::Cluster, register_when_up, spoke_config,
};

/// The participants, in the order `--spokes N` takes them.
const CAREC: [&str; 11] = [
    "KZ", "CN", "UZ", "KG", "TJ", "TM", "AF", "AZ", "GE", "MN", "PK",
];
/// Documents above this are submitted as a stream of chunks of this size, as the spoke does.
const CHUNK: usize = caravan_proto::MAX_PAYLOAD_PER_MESSAGE;
const PATIENCE: Duration = Duration::from_secs(60);

#[derive(Parser)]
#[command(
    name = "caravan-bench",
    about = "Throughput and latency of a Caravan network on loopback: a hub and spoke processes over mutual TLS"
)]
struct Cli {
    /// Payload size of each document, in bytes.
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// Documents in flight (submitted and not yet answered with a receipt), across senders.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Documents to send in all (spread over every ordered pair of spokes).
    #[arg(long, default_value_t = 5000)]
    documents: usize,
    /// Spokes (2 to 11 CAREC participants).
    #[arg(long, default_value_t = 3)]
    spokes: usize,
    /// Give up after this many seconds (the run is reported as incomplete).
    #[arg(long, default_value_t = 600)]
    max_secs: u64,
    /// The storage engine of the hub's store: redb (the default), sled or postgres; the
    /// spokes' stores are on redb with postgres, else on the same engine.
    #[arg(long, default_value = "redb")]
    engine: StoreEngine,
    /// With `--engine postgres`: the database (no password in the URL; the environment's
    /// CARAVAN_POSTGRES_PASSWORD if one is needed); unset, a cluster of the benchmark's own.
    #[arg(long)]
    postgres_url: Option<String>,
    /// Hub processes on the one database (`--engine postgres` only).
    #[arg(long, default_value_t = 1)]
    hub_replicas: usize,
    /// Print one JSON object instead of a line.
    #[arg(long)]
    json: bool,
    /// Keep the network's folder here (default: a temporary folder, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Internal: run the hub with this config (the benchmark starts itself this way).
    #[arg(long, hide = true)]
    serve_hub: Option<PathBuf>,
    /// Internal: run a spoke with this config.
    #[arg(long, hide = true)]
    serve_spoke: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Report {
    engine: StoreEngine,
    hub_replicas: usize,
    size: usize,
    window: usize,
    spokes: usize,
    documents: usize,
    acknowledged: usize,
    seconds: f64,
    docs_per_s: f64,
    p50_receipt_ms: f64,
    p99_receipt_ms: f64,
    max_receipt_ms: f64,
    p50_ack_ms: f64,
    p99_ack_ms: f64,
    max_ack_ms: f64,
    /// All hub processes together.
    hub_cpu_us_per_doc: f64,
    /// The database server's processes (a cluster of the benchmark's own only).
    db_cpu_us_per_doc: Option<f64>,
    /// Transactions the database committed per document (`pg_stat_database`).
    db_commits_per_doc: Option<f64>,
    /// All spoke processes together.
    spokes_cpu_us_per_doc: f64,
    /// This process: the senders' signing, submitting and receipt checks.
    bench_cpu_us_per_doc: f64,
    /// The largest peak of the hub processes.
    hub_rss_mib: f64,
    flushes_per_doc: f64,
    idle_spoke_kib: f64,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let result = runtime.block_on(async {
        if let Some(config) = cli.serve_hub {
            init_tracing("CARAVAN_HUB_LOG", "warn", LogFormat::Plain);
            caravan_common::process::raise_fd_limit();
            let config = caravan_hub::Config::load(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
            let listener = tokio::net::TcpListener::bind(config.listen).await?;
            caravan_hub::run(config, listener, shutdown_signal()).await?;
            return Ok(true);
        }
        if let Some(config) = cli.serve_spoke {
            init_tracing("CARAVAN_SPOKE_LOG", "warn", LogFormat::Plain);
            caravan_common::process::raise_fd_limit();
            let config =
                caravan_spoke::Config::load(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
            caravan_spoke::run(config, shutdown_signal()).await?;
            return Ok(true);
        }
        bench(cli).await
    });
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("caravan-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A child process of this binary, terminated (SIGTERM, then waited for) when dropped.
struct Server(Child);

impl Server {
    fn start(dir: &Path, mode: &str, config: &Path, log: &str) -> anyhow::Result<Self> {
        let log = std::fs::File::create(dir.join(log))?;
        let child = Command::new(std::env::current_exe()?)
            .arg(mode)
            .arg(config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        Ok(Self(child))
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

/// CPU time (user + system) of process `pid` so far, from /proc (clock ticks of 10 ms).
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').context("/proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(Duration::from_millis(ticks * 10))
}

/// Resident memory of process `pid` in KiB: now (`VmRSS`) or at its peak (`VmHWM`).
fn memory_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("{field} in /proc/{pid}/status"))
}

/// The hubs' store flushes so far, from their Prometheus metrics.
async fn flushes(metrics: &[std::net::SocketAddr]) -> anyhow::Result<u64> {
    let mut total = 0;
    for addr in metrics {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        let (_, body) =
            caravan_spoke::client::exchange(stream, "GET", "/metrics", &[], Vec::new()).await?;
        total += String::from_utf8_lossy(&body)
            .lines()
            .find_map(|l| l.strip_prefix("caravan_hub_store_flushes_total "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .context("caravan_hub_store_flushes_total in the hub's metrics")?;
    }
    Ok(total)
}

/// Transactions committed in the benchmark's database so far.
fn commits(cluster: &Cluster) -> u64 {
    cluster
        .sql(
            "postgres",
            "SELECT xact_commit FROM pg_stat_database WHERE datname = 'hub'",
        )
        .parse()
        .unwrap_or(0)
}

/// CPU time of the database server: its postmaster and every process it started.
fn database_cpu(cluster: &Cluster) -> anyhow::Result<Duration> {
    let postmaster: u32 = cluster
        .postmaster_pid()
        .context("the cluster's postmaster.pid")?;
    let mut total = cpu_time(postmaster)?;
    for entry in std::fs::read_dir("/proc")? {
        let Some(pid) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if parent == Some(postmaster) {
            total += cpu_time(pid).unwrap_or_default();
        }
    }
    Ok(total)
}

/// Point the hub's configuration at `database`, add `replicas - 1` more hubs on it (ports of
/// their own, the same keys), and give each spoke every hub's address, starting with a
/// different one per spoke. Returns the hubs' configurations.
fn replicas(
    dir: &Path,
    ids: &[ParticipantId],
    database: &str,
    replicas: usize,
) -> anyhow::Result<Vec<PathBuf>> {
    let first = dir.join("hub").join("hub.toml");
    let mut hub: caravan_hub::config::HubFile =
        caravan_common::config::read_toml(&first).map_err(|e| anyhow::anyhow!("{e}"))?;
    hub.store_engine = Some(StoreEngine::Postgres);
    hub.postgres_url = Some(database.to_string());
    let mut configs = Vec::new();
    let mut urls = Vec::new();
    for n in 1..=replicas {
        if n > 1 {
            hub.listen = format!("127.0.0.1:{}", caravan_sandbox::free_port()?);
            hub.data_dir = format!("data-{n}").into();
            hub.metrics_listen = Some(format!("127.0.0.1:{}", caravan_sandbox::free_port()?));
            hub.dashboard_listen = Some(format!("127.0.0.1:{}", caravan_sandbox::free_port()?));
        }
        let config = dir.join("hub").join(if n == 1 {
            "hub.toml".to_string()
        } else {
            format!("hub-{n}.toml")
        });
        caravan_sandbox::write_toml(&config, &format!("hub replica {n}"), &hub)?;
        urls.push(format!("https://{}", hub.listen));
        configs.push(config);
    }
    for (i, id) in ids.iter().enumerate() {
        let path = spoke_config(dir, *id);
        let mut spoke: caravan_spoke::config::SpokeFile =
            caravan_common::config::read_toml(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
        spoke.hub_url = None;
        spoke.hub_urls = urls[i % urls.len()..]
            .iter()
            .chain(&urls[..i % urls.len()])
            .cloned()
            .collect();
        caravan_sandbox::write_toml(&path, &format!("the {id} spoke"), &spoke)?;
    }
    Ok(configs)
}

/// A certificate of origin of exactly `size` bytes: a small valid UBL document, padded with a
/// comment (recipients store and verify it byte for byte).
fn document(size: usize, n: usize) -> Vec<u8> {
    let head = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CertificateOfOrigin xmlns=\"urn:oasis:names:specification:ubl:schema:xsd:CertificateOfOrigin-2\" xmlns:cbc=\"urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2\"><cbc:ID>BENCH-{n}</cbc:ID><cbc:IssueDate>2026-11-26</cbc:IssueDate><!--"
    );
    let tail = "--></CertificateOfOrigin>\n";
    let pad = size.saturating_sub(head.len() + tail.len());
    let mut doc = head.into_bytes();
    doc.resize(doc.len() + pad, b'.');
    doc.extend_from_slice(tail.as_bytes());
    doc
}

/// One sending participant as the benchmark drives it.
#[derive(Clone)]
struct Sender {
    id: ParticipantId,
    key: Arc<SigningKey>,
    client: ExchangeClient<Channel>,
    /// Small documents go to the sender's submitter, which sends what waits in one
    /// `SubmitMany`, as a spoke's outbox does.
    together: mpsc::Sender<Together>,
}

/// Documents up to this size are submitted together (the spoke's outbox limit).
const TOGETHER_UP_TO: usize = 32 * 1024;

/// A small document waiting for the submitter, and where its answer goes.
type Together = (
    v1::Envelope,
    oneshot::Sender<Result<v1::SubmitResponse, String>>,
);

/// Submit the documents that wait, in `SubmitMany` requests of at most 1 MiB of payload and
/// 256 documents: while one request is out, the next documents gather.
async fn submitter(client: ExchangeClient<Channel>, mut queue: mpsc::Receiver<Together>) {
    while let Some(first) = queue.recv().await {
        let mut bytes = first.0.payload.len();
        let mut batch = vec![first];
        while batch.len() < 256 && bytes < CHUNK {
            match queue.try_recv() {
                Ok(next) => {
                    bytes += next.0.payload.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let (envelopes, answers): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let sent = client
            .clone()
            .submit_many(v1::SubmitManyRequest {
                envelopes,
                proof_receipt: true,
            })
            .await;
        match sent {
            Ok(response) => {
                let results = response.into_inner().results;
                for (answer, result) in answers.into_iter().zip(results) {
                    let _ = answer.send(match result.result {
                        Some(v1::submit_result::Result::Answer(a)) => Ok(a),
                        Some(v1::submit_result::Result::Refused(r)) => {
                            Err(format!("refused {}: {}", r.reason, r.detail))
                        }
                        None => Err("no answer".into()),
                    });
                }
            }
            Err(status) => {
                for answer in answers {
                    let _ = answer.send(Err(status.to_string()));
                }
            }
        }
    }
}

/// Tree heads whose signature verified (one per flush; many receipts share one).
#[derive(Default)]
struct Heads(log::VerifiedHeads);

impl Heads {
    /// The receipt `response` carries for the message `id` with header digest `header_sha256`.
    fn receipt(
        &self,
        response: &v1::SubmitResponse,
        trust: &TrustSet,
        id: MessageId,
        header_sha256: [u8; 32],
    ) -> Result<(), String> {
        let proof = response.log_proof.as_ref().ok_or("no log proof")?;
        let signed = log::signed_head(proof).map_err(|r| r.to_string())?;
        let head = self.0.verify(signed, trust).map_err(|r| r.to_string())?;
        let r = receipt::from_proof(proof, &head).map_err(|r| r.to_string())?;
        if r.message_id != id || r.header_sha256 != header_sha256 {
            return Err("the receipt is for another message".into());
        }
        Ok(())
    }
}

/// When each document was submitted, and the latencies measured.
#[derive(Default)]
struct Clock {
    submitted: HashMap<MessageId, Instant>,
    receipts: Vec<Duration>,
    acks: Vec<Duration>,
    last_ack: Option<Instant>,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

async fn submit(
    sender: &Sender,
    mut envelope: v1::Envelope,
) -> Result<v1::SubmitResponse, tonic::Status> {
    if envelope.payload.len() <= TOGETHER_UP_TO {
        let (answer, answered) = oneshot::channel();
        sender
            .together
            .send((envelope, answer))
            .await
            .map_err(|_| tonic::Status::internal("the submitter stopped"))?;
        return answered
            .await
            .map_err(|_| tonic::Status::internal("the submitter stopped"))?
            .map_err(tonic::Status::internal);
    }
    let mut client = sender.client.clone();
    if envelope.payload.len() <= CHUNK {
        return client
            .submit(v1::SubmitRequest {
                envelope: Some(envelope),
                proof_receipt: true,
            })
            .await
            .map(|r| r.into_inner());
    }
    let payload = std::mem::take(&mut envelope.payload);
    let mut chunks = payload.chunks(CHUNK);
    envelope.payload = chunks.next().unwrap_or_default().to_vec();
    let mut frames = vec![v1::SubmitChunk {
        envelope: Some(envelope),
        data: Vec::new(),
        proof_receipt: true,
    }];
    frames.extend(chunks.map(|c| v1::SubmitChunk {
        envelope: None,
        data: c.to_vec(),
        proof_receipt: false,
    }));
    // A hub without room for the payload now says RESOURCE_EXHAUSTED: try again, as a
    // spoke's outbox does (sooner: the benchmark measures the hub, not the backoff).
    let mut pause = Duration::from_millis(10);
    loop {
        match client
            .submit_stream(futures::stream::iter(frames.clone()))
            .await
        {
            Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            outcome => return outcome.map(|r| r.into_inner()),
        }
    }
}

async fn bench(cli: Cli) -> anyhow::Result<bool> {
    if !(2..=CAREC.len()).contains(&cli.spokes) {
        bail!("--spokes must be between 2 and {}", CAREC.len());
    }
    if cli.window == 0 || cli.documents == 0 {
        bail!("--window and --documents must be at least 1");
    }
    let temp;
    let dir = match &cli.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            std::path::absolute(d)?
        }
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_owned()
        }
    };
    let ids: Vec<ParticipantId> = CAREC[..cli.spokes]
        .iter()
        .map(|s| s.parse().expect("CAREC ids parse"))
        .collect();
    let postgres = cli.engine == StoreEngine::Postgres;
    if cli.hub_replicas == 0 || (cli.hub_replicas > 1 && !postgres) {
        bail!("--hub-replicas: at least 1, and more than 1 only with --engine postgres");
    }
    if cli.postgres_url.is_some() && !postgres {
        bail!("--postgres-url needs --engine postgres");
    }
    // The database: the one named, or a cluster of the benchmark's own, with a fresh database.
    let cluster = match (postgres, &cli.postgres_url) {
        (true, None) => {
            let cluster = Cluster::start()?;
            cluster.sql("postgres", "CREATE DATABASE hub");
            Some(cluster)
        }
        _ => None,
    };
    let database = cluster
        .as_ref()
        .map(|c| c.url("hub"))
        .or_else(|| cli.postgres_url.clone());
    if !dir.join("hub").join("hub.toml").exists() {
        create(
            &dir,
            &ids,
            cli.engine.embedded().unwrap_or(EngineKind::DEFAULT),
        )?;
    }
    let hub_configs = match &database {
        Some(url) => replicas(&dir, &ids, url, cli.hub_replicas)?,
        None => vec![dir.join("hub").join("hub.toml")],
    };
    let mut metrics = Vec::new();
    for config in &hub_configs {
        let settings = caravan_hub::Config::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
        metrics.push(
            settings
                .metrics_listen
                .context("the hub config has no metrics_listen")?,
        );
    }
    let mut hubs = Vec::new();
    for (n, config) in hub_configs.iter().enumerate() {
        hubs.push(Server::start(
            &dir,
            "--serve-hub",
            config,
            &format!("hub-{}.log", n + 1),
        )?);
    }
    let hub = &hubs[0];
    register_when_up(&dir, &ids, Some(BENCH_OVERRIDE), PATIENCE).await?;
    open_corridors(&dir, &ids, Some(BENCH_OVERRIDE)).await?;
    let operator = Operator::connect(&dir.join("operator").join("admin.toml"))?;
    let trust: Arc<TrustSet> = Arc::new(operator.trust_list().await?);
    let rss_before_spokes = memory_kib(hub.pid(), "VmRSS:")?;

    let mut spokes = Vec::new();
    for id in &ids {
        spokes.push(Server::start(
            &dir,
            "--serve-spoke",
            &spoke_config(&dir, *id),
            &format!("spoke-{id}.log"),
        )?);
    }
    for id in &ids {
        let socket = dir.join(id.as_str()).join("data").join("control.sock");
        let start = Instant::now();
        loop {
            let connected = caravan_spoke::client::call(&socket, "GET", "/v1/health", Vec::new())
                .await
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some_and(|h| h["hub_connected"] == true);
            if connected {
                break;
            }
            if start.elapsed() > PATIENCE {
                bail!(
                    "spoke {id} did not connect to the hub (see {}/spoke-{id}.log)",
                    dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle = memory_kib(hub.pid(), "VmRSS:")?;
    let idle_spoke_kib = rss_idle.saturating_sub(rss_before_spokes) as f64 / cli.spokes as f64;

    // The senders, with each spoke's certificate and signing key, and their status streams.
    let limit = cli.size.max(CHUNK) + 64 * 1024;
    let mut senders = HashMap::new();
    for id in &ids {
        let config = caravan_spoke::Config::load(&spoke_config(&dir, *id))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let channel = caravan_spoke::hub::link::HubLink::new(&config)?.channel;
        let client = ExchangeClient::new(channel)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        let (together, queue) = mpsc::channel(1024);
        tokio::spawn(submitter(client.clone(), queue));
        senders.insert(
            *id,
            Sender {
                id: *id,
                key: Arc::new(config.signing_key),
                client,
                together,
            },
        );
    }
    let clock = Arc::new(Mutex::new(Clock::default()));
    let heads = Arc::new(Heads::default());
    let all_acked = Arc::new(Notify::new());
    for sender in senders.values() {
        let mut stream = sender
            .client
            .clone()
            .watch_status(v1::WatchStatusRequest::default())
            .await?
            .into_inner();
        let (clock, all_acked, total) = (clock.clone(), all_acked.clone(), cli.documents);
        tokio::spawn(async move {
            while let Ok(Some(event)) = stream.message().await {
                if event.state() != v1::MessageState::Acknowledged {
                    continue;
                }
                let Ok(id) = event.message_id.parse::<MessageId>() else {
                    continue;
                };
                let now = Instant::now();
                let mut c = clock.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(t0) = c.submitted.get(&id).copied() {
                    c.acks.push(now - t0);
                    c.last_ack = Some(now);
                    if c.acks.len() == total {
                        all_acked.notify_one();
                    }
                }
            }
        });
    }

    let pairs: Vec<(ParticipantId, ParticipantId)> = ids
        .iter()
        .flat_map(|a| ids.iter().filter(move |b| *b != a).map(move |b| (*a, *b)))
        .collect();
    let flushes_before = flushes(&metrics).await?;
    let hubs_cpu = |hubs: &[Server]| -> anyhow::Result<Duration> {
        hubs.iter().map(|s| cpu_time(s.pid())).sum()
    };
    let cpu_before = hubs_cpu(&hubs)?;
    let db_before = match &cluster {
        Some(c) => Some((database_cpu(c)?, commits(c))),
        None => None,
    };
    let spokes_cpu = |spokes: &[Server]| -> anyhow::Result<Duration> {
        spokes.iter().map(|s| cpu_time(s.pid())).sum()
    };
    let spokes_cpu_before = spokes_cpu(&spokes)?;
    let bench_cpu_before = cpu_time(std::process::id())?;
    let window = Arc::new(Semaphore::new(cli.window));
    let started = Instant::now();
    let mut failures = 0usize;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..cli.documents {
        let permit = window.clone().acquire_owned().await?;
        let (from, to) = pairs[n % pairs.len()];
        let sender = senders[&from].clone();
        let (clock, trust, heads, size) = (clock.clone(), trust.clone(), heads.clone(), cli.size);
        tasks.spawn(async move {
            let _permit = permit;
            let payload = document(size, n);
            let header = Header {
                message_id: MessageId::generate(),
                sender: sender.id,
                recipient: to,
                document_type: DocumentType::CertificateOfOrigin,
                document_id: format!("BENCH-{n}"),
                content_type: "application/xml".into(),
                payload_sha256: sha256(&payload),
                payload_length: payload.len() as u64,
                created_at: Timestamp::now(),
                key_id: sender.key.key_id(),
                supersedes: None,
                in_reply_to: None,
            };
            let envelope = seal(&header, payload, &sender.key);
            let opened_sha256 = sha256(&envelope.header);
            let t0 = Instant::now();
            clock
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .submitted
                .insert(header.message_id, t0);
            let response = submit(&sender, envelope).await.map_err(|s| s.to_string())?;
            heads.receipt(&response, &trust, header.message_id, opened_sha256)?;
            clock
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .receipts
                .push(t0.elapsed());
            Ok::<(), String>(())
        });
        while let Some(done) = tasks.try_join_next() {
            if let Ok(Err(e)) | Err(e) = done.map_err(|e| e.to_string()) {
                failures += 1;
                eprintln!("caravan-bench: a submission failed: {e}");
            }
        }
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok(Err(e)) | Err(e) = done.map_err(|e| e.to_string()) {
            failures += 1;
            eprintln!("caravan-bench: a submission failed: {e}");
        }
    }
    let deadline = Duration::from_secs(cli.max_secs).saturating_sub(started.elapsed());
    let complete = tokio::time::timeout(deadline, async {
        loop {
            let notified = all_acked.notified();
            if clock.lock().unwrap_or_else(|e| e.into_inner()).acks.len() >= cli.documents {
                return;
            }
            notified.await;
        }
    })
    .await
    .is_ok();
    let cpu = hubs_cpu(&hubs)? - cpu_before;
    let spokes_cpu = spokes_cpu(&spokes)? - spokes_cpu_before;
    let bench_cpu = cpu_time(std::process::id())? - bench_cpu_before;
    let flushed = flushes(&metrics).await? - flushes_before;
    let db = match (&cluster, db_before) {
        (Some(c), Some((cpu, committed))) => Some((database_cpu(c)? - cpu, commits(c) - committed)),
        _ => None,
    };
    let mut peak_kib = 0;
    for hub in &hubs {
        peak_kib = peak_kib.max(memory_kib(hub.pid(), "VmHWM:")?);
    }
    drop(spokes);
    drop(hubs);
    drop(cluster);

    let mut c = std::mem::take(&mut *clock.lock().unwrap_or_else(|e| e.into_inner()));
    c.receipts.sort();
    c.acks.sort();
    let seconds = c
        .last_ack
        .map_or(started.elapsed(), |t| t - started)
        .as_secs_f64();
    let acknowledged = c.acks.len();
    let report = Report {
        engine: cli.engine,
        hub_replicas: cli.hub_replicas,
        size: cli.size,
        window: cli.window,
        spokes: cli.spokes,
        documents: cli.documents,
        acknowledged,
        seconds,
        docs_per_s: acknowledged as f64 / seconds,
        p50_receipt_ms: percentile(&c.receipts, 0.5),
        p99_receipt_ms: percentile(&c.receipts, 0.99),
        max_receipt_ms: percentile(&c.receipts, 1.0),
        p50_ack_ms: percentile(&c.acks, 0.5),
        p99_ack_ms: percentile(&c.acks, 0.99),
        max_ack_ms: percentile(&c.acks, 1.0),
        hub_cpu_us_per_doc: cpu.as_secs_f64() * 1e6 / cli.documents as f64,
        db_cpu_us_per_doc: db.map(|(cpu, _)| cpu.as_secs_f64() * 1e6 / cli.documents as f64),
        db_commits_per_doc: db.map(|(_, n)| n as f64 / cli.documents as f64),
        spokes_cpu_us_per_doc: spokes_cpu.as_secs_f64() * 1e6 / cli.documents as f64,
        bench_cpu_us_per_doc: bench_cpu.as_secs_f64() * 1e6 / cli.documents as f64,
        hub_rss_mib: peak_kib as f64 / 1024.0,
        flushes_per_doc: flushed as f64 / cli.documents as f64,
        idle_spoke_kib,
    };
    if cli.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{}{}: size {} B  window {}  spokes {}  docs {}/{}: {:.0} docs/s  receipt p50 {:.2} ms p99 {:.2} ms max {:.2} ms  ack p50 {:.2} ms p99 {:.2} ms max {:.2} ms  CPU/doc: hub {:.0} us, spokes {:.0} us, bench {:.0} us; hub peak RSS {:.1} MiB, {:.3} flushes/doc, idle spoke {:.0} KiB",
            report.engine.as_str(),
            match (
                report.hub_replicas,
                report.db_commits_per_doc,
                report.db_cpu_us_per_doc
            ) {
                (replicas, Some(commits), Some(cpu)) => format!(
                    " ({replicas} hub replica(s); database: {commits:.3} commits/doc, {cpu:.0} us CPU/doc)"
                ),
                (replicas, _, _) if replicas > 1 => format!(" ({replicas} hub replicas)"),
                _ => String::new(),
            },
            report.size,
            report.window,
            report.spokes,
            report.acknowledged,
            report.documents,
            report.docs_per_s,
            report.p50_receipt_ms,
            report.p99_receipt_ms,
            report.max_receipt_ms,
            report.p50_ack_ms,
            report.p99_ack_ms,
            report.max_ack_ms,
            report.hub_cpu_us_per_doc,
            report.spokes_cpu_us_per_doc,
            report.bench_cpu_us_per_doc,
            report.hub_rss_mib,
            report.flushes_per_doc,
            report.idle_spoke_kib
        );
    }
    if !complete || failures > 0 {
        eprintln!(
            "caravan-bench: incomplete: {acknowledged} of {} acknowledged, {failures} submissions failed",
            cli.documents
        );
        return Ok(false);
    }
    Ok(true)
}
