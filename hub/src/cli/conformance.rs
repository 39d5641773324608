//! `caravan-hub conformance ...`: the conformance kit, run by a hub operator on the hub's
//! machine (it reads the hub's config for the TLS material, and asks the running hub, as an
//! operator, for the candidate's registration and to record the report).

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::Context;
use clap::{Args, Subcommand};

use caravan_common::{DocumentType, ParticipantId, Timestamp, process::LogFormat};
use caravan_hub::{
    conformance::{
        self, KitKeys, Options, anchor_public_path, default_dir,
        report::{Recorded, Report},
    },
    operator::{Operator, OperatorError},
};
use caravan_proto::v1;

use super::exit::{load_config, report};

#[derive(Subcommand)]
pub enum ConformanceCommand {
    /// Make the kit's keys (once) and print what a candidate's test spoke needs: the stand-in's
    /// anchor public key to pin.
    Init {
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Drive a candidate through every case; write the report (JSON and HTML) and have the
    /// running hub record and sign it. Exit 0 if every case passed, 1 if not, 2 if the run
    /// could not be made or its report not recorded.
    Run(RunArgs),
}

#[derive(Args)]
pub struct HubArgs {
    /// The hub's configuration file (for its TLS material and data folder).
    #[arg(long, env = "CARAVAN_HUB_CONFIG")]
    config: PathBuf,
    /// The kit's folder: its keys and the stand-in hub's store. Default: `<data_dir>/conformance`.
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    hub: HubArgs,
    /// The operator's admin.toml, to read the candidate's registration and record the report.
    #[arg(long, env = "CARAVAN_HUB_ADMIN_CONFIG")]
    admin: PathBuf,
    /// The candidate participant.
    #[arg(long)]
    participant: ParticipantId,
    /// The document types it exchanges (comma-separated). Default: every type.
    #[arg(long, value_delimiter = ',')]
    types: Vec<DocumentType>,
    /// Of those, the types it issues: it must send one of each to the conformance identity
    /// during the run. Default: every type of `--types`.
    #[arg(long, value_delimiter = ',')]
    sends: Vec<DocumentType>,
    /// Where the stand-in hub listens; the candidate's test spoke connects here. Port 0 takes
    /// a free port (written to `<dir>/standin/listening.json`).
    #[arg(long, default_value = "127.0.0.1:7443")]
    listen: std::net::SocketAddr,
    /// Where to write the report files. Default: the kit's folder.
    #[arg(long)]
    out: Option<PathBuf>,
    /// How long to wait for the candidate to connect.
    #[arg(long, default_value_t = 120)]
    connect_timeout_secs: u64,
    /// How long to wait for each of its answers.
    #[arg(long, default_value_t = 30)]
    case_timeout_secs: u64,
    /// How long to wait for its own documents, all types together.
    #[arg(long, default_value_t = 300)]
    send_timeout_secs: u64,
}

pub fn command(command: ConformanceCommand) -> ExitCode {
    match command {
        ConformanceCommand::Init { hub } => report(init(hub)),
        ConformanceCommand::Run(args) => match run(args) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("caravan-hub: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}

fn kit_dir(hub: &HubArgs, config: &caravan_hub::Config) -> PathBuf {
    hub.dir.clone().unwrap_or_else(|| default_dir(config))
}

fn init(hub: HubArgs) -> anyhow::Result<()> {
    let config = load_config(&hub.config)?;
    let dir = kit_dir(&hub, &config);
    let keys = KitKeys::open_or_create(&dir)?;
    caravan_common::out!(
        "the stand-in hub's anchor public key (pin it as `anchor_public_key` in the candidate's test spoke; also in {}):\n{}",
        anchor_public_path(&dir).display(),
        keys.anchor.public().to_base64()
    );
    Ok(())
}

#[tokio::main]
async fn run(args: RunArgs) -> anyhow::Result<bool> {
    caravan_common::process::init_tracing("CARAVAN_HUB_LOG", "warn", LogFormat::Plain);
    let config = load_config(&args.hub.config)?;
    let dir = kit_dir(&args.hub, &config);
    let operator = Operator::connect(&args.admin)?;
    let signed = operator
        .signed_trust_list()
        .await
        .context("reading the hub's trust list")?;
    let (registry, _) = caravan_proto::trust_list::open(&signed, config.anchor_key.public())
        .map_err(|r| anyhow::anyhow!("the hub's trust list does not verify: {r}"))?;
    let types: BTreeSet<DocumentType> = match args.types.is_empty() {
        true => DocumentType::ALL.into_iter().collect(),
        false => args.types.into_iter().collect(),
    };
    let sends: BTreeSet<DocumentType> = match args.sends.is_empty() {
        true => types.clone(),
        false => args.sends.into_iter().collect(),
    };
    if let Some(t) = sends.iter().find(|t| !types.contains(t)) {
        anyhow::bail!(
            "--sends names {t}, which --types does not: a candidate is judged on the types it exchanges"
        );
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    caravan_common::out!(
        "conformance run for {}: stand-in hub on {address}, anchor public key in {}",
        args.participant,
        anchor_public_path(&dir).display()
    );
    let options = Options {
        types,
        sends,
        connect_timeout: Duration::from_secs(args.connect_timeout_secs),
        case_timeout: Duration::from_secs(args.case_timeout_secs),
        send_timeout: Duration::from_secs(args.send_timeout_secs),
    };
    let progress = |line: &str| caravan_common::out!("{line}");
    let report = conformance::run(
        config,
        &dir,
        listener,
        &registry,
        args.participant,
        options,
        &progress,
    )
    .await?;
    let out = args.out.unwrap_or(dir);
    let json = report.to_json();
    let path = write(&out, &report, "json", &json)?;
    caravan_common::out!("report written to {}", path.display());
    let passed = report.passed;
    caravan_common::out!(
        "{}: {} of {} cases passed",
        if passed { "PASS" } else { "FAIL" },
        report
            .cases
            .iter()
            .filter(|c| c.outcome == conformance::report::Outcome::Pass)
            .count(),
        report.cases.len()
    );
    let record = operator
        .admin()
        .record_conformance_report(v1::RecordConformanceReportRequest { report_json: json })
        .await
        .map_err(OperatorError::from)
        .with_context(|| {
            format!(
                "the hub did not record the report; record it with `caravan-hub admin --config {} conformance record {}`",
                args.admin.display(),
                path.display()
            )
        })?
        .into_inner();
    let signature = match &record.signature {
        Some(s) => format!("signed by the hub's receipt key {}", s.key_id),
        None => "not signed".to_owned(),
    };
    let html = report.to_html(&Recorded {
        id: record.id,
        recorded_at: Timestamp::from_millis(record.recorded_at_ms),
        recorded_by: &record.recorded_by,
        signature: &signature,
    });
    let page = write(&out, &report, "html", html.as_bytes())?;
    caravan_common::out!(
        "the hub recorded it as conformance report {} ({signature}); readable page {}",
        record.id,
        page.display()
    );
    Ok(passed)
}

/// Write one form of the report into `out`; its path.
fn write(out: &Path, report: &Report, extension: &str, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let path = out.join(format!(
        "conformance-{}-{}.{extension}",
        report.participant, report.started_at_ms
    ));
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}
