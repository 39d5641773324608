//! `caravan-hub admin ...`: the registry of the running hub (participants with their country,
//! issuing authorities and onboarding stage, keys, corridors, certificates, the trust list),
//! the conformance reports it keeps, the Readiness Scorecard (`scorecard.rs`), and its
//! backups, through the Admin service as an operator.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

use caravan_common::{
    DocumentType, ParticipantId, Timestamp, time::parse_rfc3339, trust::ParticipantStage,
};
use caravan_hub::{
    conformance::report::{Outcome, Recorded, Report},
    onboarding,
    operator::{Operator, OperatorError, read_public_key},
};
use caravan_proto::trust_list::stage_to_wire;
use caravan_proto::v1;

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Participants (countries).
    Participant {
        #[command(subcommand)]
        command: ParticipantCommand,
    },
    /// The issuing authorities whose documents a participant signs (its plant-health
    /// service, its chambers of commerce), as documents name them.
    Authority {
        #[command(subcommand)]
        command: AuthorityCommand,
    },
    /// Document-signing keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Which documents may flow between which participants.
    Corridor {
        #[command(subcommand)]
        command: CorridorCommand,
    },
    /// Conformance reports the hub keeps: record what the kit wrote, list, show.
    Conformance {
        #[command(subcommand)]
        command: ConformanceCommand,
    },
    /// The Regional Readiness Scorecard: assessments, overrides, rounds, results.
    Scorecard {
        #[command(subcommand)]
        command: super::scorecard::ScorecardCommand,
    },
    /// TLS client certificates.
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
    /// The signed trust list.
    TrustList {
        #[command(subcommand)]
        command: TrustListCommand,
    },
    /// Copy the running hub's store into a new folder under its `backup_dir` (on the hub's
    /// machine); writes wait for the copy, reads go on.
    Backup {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum ParticipantCommand {
    /// Register a participant.
    Add {
        id: ParticipantId,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        contact: String,
        /// The country it stands for: an ISO 3166-1 alpha-2 code, e.g. KZ.
        #[arg(long)]
        country: Option<String>,
        /// The onboarding stage it starts in (default testing); pilot or production needs
        /// --override.
        #[arg(long)]
        stage: Option<ParticipantStage>,
        /// Why the onboarding rules are overridden; kept in the exchange log.
        #[arg(long = "override", value_name = "REASON")]
        override_reason: Option<String>,
    },
    /// Move a participant to another onboarding stage: testing, pilot or production.
    /// Promotion needs its newest conformance report to have passed (or --override);
    /// demotion needs the corridors above the new stage closed first.
    Stage {
        id: ParticipantId,
        stage: ParticipantStage,
        /// Why the onboarding rules are overridden; kept in the exchange log.
        #[arg(long = "override", value_name = "REASON")]
        override_reason: Option<String>,
    },
    /// Record the country a participant stands for (an ISO 3166-1 alpha-2 code).
    SetCountry { id: ParticipantId, country: String },
    /// Refuse the participant as sender and recipient, and close its open streams.
    Suspend { id: ParticipantId },
    /// Lift a suspension.
    Resume { id: ParticipantId },
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum AuthorityCommand {
    /// Record an issuing authority for a participant.
    Add {
        #[arg(long)]
        participant: ParticipantId,
        /// Its name as documents give it, e.g. "State Inspection of Plant Quarantine".
        #[arg(long)]
        name: String,
        /// An identifier documents may give for it, as SCHEME=VALUE (e.g. ippc=KZ-NPPO); may
        /// be repeated.
        #[arg(long = "identifier", value_name = "SCHEME=VALUE", value_parser = identifier)]
        identifiers: Vec<(String, String)>,
    },
    /// Remove a participant's issuing authority, by name.
    Remove {
        #[arg(long)]
        participant: ParticipantId,
        #[arg(long)]
        name: String,
    },
    List {
        #[arg(long)]
        participant: Option<ParticipantId>,
        #[arg(long)]
        json: bool,
    },
}

/// `SCHEME=VALUE`, split at the first `=`.
fn identifier(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(scheme, value)| (scheme.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("{text:?} is not SCHEME=VALUE, e.g. ippc=KZ-NPPO"))
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Register a document-signing key for a participant.
    Register {
        #[arg(long)]
        participant: ParticipantId,
        /// Document types the key may sign, comma-separated: e-co,e-phyto,e-invoice.
        #[arg(long, value_delimiter = ',')]
        types: Vec<DocumentType>,
        /// File with the base64 public key (`caravan-spoke keygen` writes it as <key>.pub).
        #[arg(long)]
        public_key: PathBuf,
        /// Start of validity, RFC 3339 (default: now).
        #[arg(long)]
        not_before: Option<String>,
        /// End of validity, RFC 3339 (default: none).
        #[arg(long)]
        not_after: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key from now on (key compromise).
    Revoke {
        key_id: String,
        #[arg(long)]
        reason: String,
    },
    List {
        #[arg(long)]
        participant: Option<ParticipantId>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum CorridorAction {
    Open,
    Pilot,
    Close,
}

#[derive(Subcommand)]
pub enum CorridorCommand {
    /// Open a corridor.
    Open(CorridorArgs),
    /// Open a corridor for trials; receivers mark its traffic as pilot.
    Pilot(CorridorArgs),
    /// Close a corridor.
    Close(CorridorArgs),
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct CorridorArgs {
    from: ParticipantId,
    to: ParticipantId,
    /// Document types, comma-separated, or `all`.
    types: String,
    /// Open or pilot a corridor although its ends' stages or conformance reports do not
    /// allow it, for this reason (kept in the exchange log).
    #[arg(long = "override", value_name = "REASON")]
    override_reason: Option<String>,
}

#[derive(Subcommand)]
pub enum ConformanceCommand {
    /// Record a report the conformance kit wrote (JSON); the hub signs and keeps it.
    Record {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// The recorded reports, newest first: id, participant, time, verdict, types, cases,
    /// who recorded it.
    List {
        #[arg(long)]
        participant: Option<ParticipantId>,
        #[arg(long)]
        json: bool,
    },
    /// One report: each case, and whether the hub's signature verifies.
    Show {
        id: u64,
        /// Write the report's JSON, exactly the bytes the hub signed, to FILE.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Write a readable HTML page of the report to FILE.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum CertCommand {
    /// The client certificates the hub has seen, with validity and revocation.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Refuse a TLS client certificate from now on, by serial (as `pki issue` printed it).
    Revoke {
        serial: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
pub enum TrustListCommand {
    Show {
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main(flavor = "current_thread")]
pub async fn command(config: PathBuf, command: AdminCommand) -> anyhow::Result<()> {
    let operator = Operator::connect(&config)?;
    let mut admin = operator.admin();
    let done = |r: tonic::Response<v1::AdminResponse>| {
        caravan_common::out!(
            "done; trust list version {}",
            r.into_inner().trust_list_version
        );
    };
    match command {
        AdminCommand::Participant { command } => match command {
            ParticipantCommand::Add {
                id,
                name,
                contact,
                country,
                stage,
                override_reason,
            } => {
                let request = v1::AddParticipantRequest {
                    id: id.to_string(),
                    name,
                    contact,
                    country: country.unwrap_or_default(),
                    stage: stage.map_or(v1::ParticipantStage::Unspecified, stage_to_wire) as i32,
                    override_reason: override_reason.unwrap_or_default(),
                };
                done(
                    admin
                        .add_participant(request)
                        .await
                        .map_err(OperatorError::from)?,
                );
            }
            ParticipantCommand::Stage {
                id,
                stage,
                override_reason,
            } => {
                let request = v1::SetParticipantStageRequest {
                    participant: id.to_string(),
                    stage: stage_to_wire(stage) as i32,
                    override_reason: override_reason.unwrap_or_default(),
                };
                done(
                    admin
                        .set_participant_stage(request)
                        .await
                        .map_err(OperatorError::from)?,
                );
            }
            ParticipantCommand::SetCountry { id, country } => {
                let request = v1::SetParticipantCountryRequest {
                    id: id.to_string(),
                    country,
                };
                done(
                    admin
                        .set_participant_country(request)
                        .await
                        .map_err(OperatorError::from)?,
                );
            }
            ParticipantCommand::Suspend { id } => {
                done(set_status(&mut admin, id, v1::ParticipantStatus::Suspended).await?)
            }
            ParticipantCommand::Resume { id } => {
                done(set_status(&mut admin, id, v1::ParticipantStatus::Active).await?)
            }
            ParticipantCommand::List { json } => {
                let list = operator.trust_list_view().await?;
                if json {
                    caravan_common::out!("{}", serde_json::to_string(&list.participants)?);
                } else {
                    for p in list.participants {
                        caravan_common::out!(
                            "{}  {:<9}  {:<10}  country {}  {}  {}",
                            p.id,
                            p.status,
                            p.stage,
                            p.country.as_deref().unwrap_or("-"),
                            p.name,
                            p.contact
                        );
                    }
                }
            }
        },
        AdminCommand::Authority { command } => match command {
            AuthorityCommand::Add {
                participant,
                name,
                identifiers,
            } => {
                let request = v1::AddIssuingAuthorityRequest {
                    participant: participant.to_string(),
                    authority: Some(v1::IssuingAuthority {
                        name,
                        identifiers: identifiers
                            .into_iter()
                            .map(|(scheme, value)| v1::AuthorityIdentifier { scheme, value })
                            .collect(),
                    }),
                };
                done(
                    admin
                        .add_issuing_authority(request)
                        .await
                        .map_err(OperatorError::from)?,
                );
            }
            AuthorityCommand::Remove { participant, name } => {
                let request = v1::RemoveIssuingAuthorityRequest {
                    participant: participant.to_string(),
                    name,
                };
                done(
                    admin
                        .remove_issuing_authority(request)
                        .await
                        .map_err(OperatorError::from)?,
                );
            }
            AuthorityCommand::List { participant, json } => {
                let mut participants = operator.trust_list_view().await?.participants;
                if let Some(p) = participant {
                    participants.retain(|v| v.id == p.as_str());
                }
                let rows: Vec<serde_json::Value> = participants
                    .iter()
                    .flat_map(|p| {
                        p.issuing_authorities.iter().map(|a| {
                            serde_json::json!({
                                "participant": p.id,
                                "name": a.name,
                                "identifiers": a.identifiers,
                            })
                        })
                    })
                    .collect();
                if json {
                    caravan_common::out!("{}", serde_json::to_string(&rows)?);
                } else {
                    for p in &participants {
                        for a in &p.issuing_authorities {
                            caravan_common::out!("{}  {}", p.id, authority_line(a));
                        }
                    }
                }
            }
        },
        AdminCommand::Key { command } => match command {
            KeyCommand::Register {
                participant,
                types,
                public_key,
                not_before,
                not_after,
                json,
            } => {
                let key = read_public_key(&public_key)?;
                let time = |t: Option<String>| -> anyhow::Result<i64> {
                    Ok(match t {
                        None => 0,
                        Some(text) => parse_rfc3339(&text)
                            .with_context(|| format!("{text:?} is not an RFC 3339 time"))?
                            .as_millis(),
                    })
                };
                let request = v1::RegisterKeyRequest {
                    participant: participant.to_string(),
                    public_key: key.raw().to_vec(),
                    document_types: types.iter().map(|t| t.to_string()).collect(),
                    not_before_ms: time(not_before)?,
                    not_after_ms: time(not_after)?,
                };
                let version = admin
                    .register_key(request)
                    .await
                    .map_err(OperatorError::from)?
                    .into_inner()
                    .trust_list_version;
                if json {
                    caravan_common::out!(
                        "{}",
                        serde_json::json!({ "key_id": key.key_id().to_string(), "participant": participant.to_string(), "trust_list_version": version })
                    );
                } else {
                    caravan_common::out!(
                        "registered key {} for {participant}; trust list version {version}",
                        key.key_id()
                    );
                }
            }
            KeyCommand::Revoke { key_id, reason } => {
                done(
                    admin
                        .revoke_key(v1::RevokeKeyRequest { key_id, reason })
                        .await
                        .map_err(OperatorError::from)?,
                );
            }
            KeyCommand::List { participant, json } => {
                let mut keys = operator.trust_list_view().await?.keys;
                if let Some(p) = participant {
                    keys.retain(|k| k.participant == p.as_str());
                }
                if json {
                    caravan_common::out!("{}", serde_json::to_string(&keys)?);
                } else {
                    for k in keys {
                        caravan_common::out!(
                            "{}  {}  {:<13}  {}",
                            k.key_id,
                            k.participant,
                            k.status,
                            k.document_types.join(",")
                        );
                    }
                }
            }
        },
        AdminCommand::Corridor { command } => {
            let (action, args) = match command {
                CorridorCommand::Open(a) => (CorridorAction::Open, a),
                CorridorCommand::Pilot(a) => (CorridorAction::Pilot, a),
                CorridorCommand::Close(a) => (CorridorAction::Close, a),
                CorridorCommand::List { json } => {
                    let corridors = operator.trust_list_view().await?.corridors;
                    if json {
                        caravan_common::out!("{}", serde_json::to_string(&corridors)?);
                    } else {
                        for c in corridors {
                            caravan_common::out!(
                                "{} -> {}  {:<9}  {}",
                                c.sender,
                                c.recipient,
                                c.document_type,
                                c.state
                            );
                        }
                    }
                    return Ok(());
                }
            };
            let state = match action {
                CorridorAction::Open => v1::CorridorState::Open,
                CorridorAction::Pilot => v1::CorridorState::Pilot,
                CorridorAction::Close => v1::CorridorState::Closed,
            };
            let types: Vec<DocumentType> = if args.types == "all" {
                DocumentType::ALL.to_vec()
            } else {
                args.types
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            };
            for t in types {
                let request = v1::SetCorridorRequest {
                    sender: args.from.to_string(),
                    recipient: args.to.to_string(),
                    document_type: t.to_string(),
                    state: state as i32,
                    override_reason: args.override_reason.clone().unwrap_or_default(),
                };
                done(
                    admin
                        .set_corridor(request)
                        .await
                        .map_err(OperatorError::from)?,
                );
            }
        }
        AdminCommand::Conformance { command } => conformance(&operator, command).await?,
        AdminCommand::Scorecard { command } => super::scorecard::run(&operator, command).await?,
        AdminCommand::Backup { json } => {
            let b = admin
                .backup(v1::BackupRequest {})
                .await
                .map_err(OperatorError::from)?
                .into_inner();
            if json {
                caravan_common::out!(
                    "{}",
                    serde_json::json!({
                        "path": b.path,
                        "records": b.records,
                        "bytes": b.bytes,
                        "log_entries": b.log_entries,
                        "pause_ms": b.pause_ms,
                        "taken_at": caravan_common::Timestamp::from_millis(b.taken_at_ms),
                    })
                );
            } else {
                caravan_common::out!(
                    "backup in {} (on the hub's machine): {} records, {} bytes, {} log entries; writes waited {} ms",
                    b.path,
                    b.records,
                    b.bytes,
                    b.log_entries,
                    b.pause_ms
                );
            }
        }
        AdminCommand::Cert {
            command: CertCommand::List { json },
        } => {
            let list = admin
                .list_certificates(v1::ListCertificatesRequest {})
                .await
                .map_err(OperatorError::from)?
                .into_inner();
            let time = |ms: i64| (ms != 0).then(|| caravan_common::Timestamp::from_millis(ms));
            let rows: Vec<serde_json::Value> = list
                .certificates
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "serial": c.serial,
                        "fingerprint": c.fingerprint,
                        "subject": c.subject,
                        "not_before": time(c.not_before_ms),
                        "not_after": time(c.not_after_ms),
                        "first_seen": time(c.first_seen_ms),
                        "revoked_at": time(c.revoked_at_ms),
                        "revocation_reason": (c.revoked_at_ms != 0).then(|| c.revocation_reason.clone()),
                    })
                })
                .collect();
            if json {
                caravan_common::out!("{}", serde_json::to_string(&rows)?);
            } else {
                for (c, row) in list.certificates.iter().zip(&rows) {
                    let state = if c.revoked_at_ms != 0 {
                        "REVOKED"
                    } else {
                        "valid"
                    };
                    let until = row["not_after"].as_str().unwrap_or("-");
                    caravan_common::out!("{}  {:<20}  {state}  until {until}", c.serial, c.subject);
                }
            }
        }
        AdminCommand::Cert {
            command: CertCommand::Revoke { serial, reason },
        } => {
            done(
                admin
                    .revoke_certificate(v1::RevokeCertificateRequest { serial, reason })
                    .await
                    .map_err(OperatorError::from)?,
            );
        }
        AdminCommand::TrustList {
            command: TrustListCommand::Show { json },
        } => {
            let list = operator.trust_list_view().await?;
            if json {
                caravan_common::out!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print_trust_list(&list);
            }
        }
    }
    Ok(())
}

/// `admin conformance ...`.
async fn conformance(operator: &Operator, command: ConformanceCommand) -> anyhow::Result<()> {
    let mut admin = operator.admin();
    match command {
        ConformanceCommand::Record { file, json } => {
            let report_json =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let record = admin
                .record_conformance_report(v1::RecordConformanceReportRequest { report_json })
                .await
                .map_err(OperatorError::from)?
                .into_inner();
            if json {
                caravan_common::out!("{}", record_json(&record));
            } else {
                caravan_common::out!(
                    "recorded conformance report {} for {}: {}",
                    record.id,
                    record.participant,
                    verdict(&record)
                );
            }
        }
        ConformanceCommand::List { participant, json } => {
            let list = admin
                .list_conformance_reports(v1::ListConformanceReportsRequest {
                    participant: participant.map(|p| p.to_string()).unwrap_or_default(),
                })
                .await
                .map_err(OperatorError::from)?
                .into_inner();
            if json {
                let rows: Vec<serde_json::Value> = list.reports.iter().map(record_json).collect();
                caravan_common::out!("{}", serde_json::to_string(&rows)?);
            } else {
                for r in &list.reports {
                    let cases = Report::from_json(&r.report_json)
                        .map(|report| case_counts(&report))
                        .unwrap_or_else(|e| format!("unreadable: {e}"));
                    caravan_common::out!(
                        "{}  {}  {}  {}  {}  {} cases  {}",
                        r.id,
                        r.participant,
                        Timestamp::from_millis(r.recorded_at_ms),
                        verdict(r),
                        r.document_types.join(","),
                        cases,
                        r.recorded_by
                    );
                }
            }
        }
        ConformanceCommand::Show { id, json, html } => {
            let list = admin
                .list_conformance_reports(v1::ListConformanceReportsRequest::default())
                .await
                .map_err(OperatorError::from)?
                .into_inner();
            let record = list
                .reports
                .into_iter()
                .find(|r| r.id == id)
                .with_context(|| format!("the hub keeps no conformance report {id}"))?;
            let report = Report::from_json(&record.report_json)
                .with_context(|| format!("conformance report {id} does not read"))?;
            let trust = operator.trust_list().await?;
            let signature = match onboarding::verify(&record, &trust) {
                Ok(key_id) => format!("verified with hub receipt key {key_id}"),
                Err(e) => format!("DOES NOT VERIFY: {e}"),
            };
            caravan_common::out!(
                "conformance report {id} for {} (exchanged with as {}): {}, {} cases, types {}",
                report.participant,
                report.conformance_identity,
                verdict(&record),
                case_counts(&report),
                record.document_types.join(",")
            );
            caravan_common::out!(
                "ran {} to {} with kit {}; recorded {} by {}",
                Timestamp::from_millis(report.started_at_ms),
                Timestamp::from_millis(report.finished_at_ms),
                report.kit_version,
                Timestamp::from_millis(record.recorded_at_ms),
                record.recorded_by
            );
            caravan_common::out!("hub signature: {signature}");
            for case in &report.cases {
                let outcome = match case.outcome {
                    Outcome::Pass => "PASS",
                    Outcome::Fail => "FAIL",
                };
                caravan_common::out!(
                    "  {outcome}  {}  {} [{}]: {}",
                    case.id,
                    case.title,
                    case.rule,
                    case.evidence
                );
            }
            if let Some(path) = json {
                std::fs::write(&path, &record.report_json)
                    .with_context(|| format!("writing {}", path.display()))?;
                caravan_common::out!(
                    "report JSON (the signed bytes) written to {}",
                    path.display()
                );
            }
            if let Some(path) = html {
                let page = report.to_html(&Recorded {
                    id,
                    recorded_at: Timestamp::from_millis(record.recorded_at_ms),
                    recorded_by: &record.recorded_by,
                    signature: &signature,
                });
                std::fs::write(&path, page)
                    .with_context(|| format!("writing {}", path.display()))?;
                caravan_common::out!("report page written to {}", path.display());
            }
        }
    }
    Ok(())
}

fn verdict(r: &v1::ConformanceReportRecord) -> &'static str {
    if r.passed { "PASS" } else { "FAIL" }
}

/// `passed/total` of a report's cases.
fn case_counts(report: &Report) -> String {
    let passed = report
        .cases
        .iter()
        .filter(|c| c.outcome == Outcome::Pass)
        .count();
    format!("{passed}/{}", report.cases.len())
}

/// A recorded report as `--json` prints it (the report itself as an object).
fn record_json(r: &v1::ConformanceReportRecord) -> serde_json::Value {
    use base64::Engine;
    let signature = r.signature.clone().unwrap_or_default();
    serde_json::json!({
        "id": r.id,
        "participant": r.participant,
        "passed": r.passed,
        "document_types": r.document_types,
        "recorded_at": Timestamp::from_millis(r.recorded_at_ms),
        "recorded_by": r.recorded_by,
        "key_id": signature.key_id,
        "signature": base64::engine::general_purpose::STANDARD.encode(&signature.signature),
        "report": serde_json::from_slice::<serde_json::Value>(&r.report_json).ok(),
    })
}

async fn set_status(
    admin: &mut caravan_proto::v1::admin_client::AdminClient<tonic::transport::Channel>,
    id: ParticipantId,
    status: v1::ParticipantStatus,
) -> Result<tonic::Response<v1::AdminResponse>, OperatorError> {
    let request = v1::SetParticipantStatusRequest {
        id: id.to_string(),
        status: status as i32,
    };
    Ok(admin.set_participant_status(request).await?)
}

fn print_trust_list(list: &caravan_common::trust::view::TrustListView) {
    let time = |t: Option<caravan_common::Timestamp>| {
        t.map(|t| t.to_string()).unwrap_or_else(|| "-".into())
    };
    caravan_common::out!(
        "trust list version {} issued {} next update {} ({})",
        list.version,
        time(list.issued_at),
        time(list.next_update),
        if list.fresh { "fresh" } else { "STALE" }
    );
    caravan_common::out!("participants:");
    for p in &list.participants {
        caravan_common::out!(
            "  {}  {:<9}  {:<10}  country {}  {}",
            p.id,
            p.status,
            p.stage,
            p.country.as_deref().unwrap_or("-"),
            p.name
        );
        for a in &p.issuing_authorities {
            caravan_common::out!("      issuing authority {}", authority_line(a));
        }
    }
    caravan_common::out!("keys:");
    for k in &list.keys {
        caravan_common::out!(
            "  {}  {}  {:<13}  {}",
            k.key_id,
            k.participant,
            k.status,
            k.document_types.join(",")
        );
    }
    caravan_common::out!("corridors:");
    for c in &list.corridors {
        caravan_common::out!(
            "  {} -> {}  {:<9}  {}",
            c.sender,
            c.recipient,
            c.document_type,
            c.state
        );
    }
    caravan_common::out!("hub receipt keys:");
    for k in &list.hub_keys {
        caravan_common::out!("  {}", k.key_id);
    }
}

/// An issuing authority on one line: its quoted name, then its identifiers.
fn authority_line(a: &caravan_common::trust::view::AuthorityView) -> String {
    let ids: Vec<String> = a
        .identifiers
        .iter()
        .map(|i| format!("{}={}", i.scheme, i.value))
        .collect();
    if ids.is_empty() {
        format!("\"{}\"", a.name)
    } else {
        format!("\"{}\"  {}", a.name, ids.join(", "))
    }
}
