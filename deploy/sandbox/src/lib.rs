//! A Caravan network on this machine: the PKI, the hub's and the spokes' configs, and an
//! operator who onboards the spokes. Shared by `caravan-sandbox` (try it out) and
//! `caravan-bench` (measure it).

#![forbid(unsafe_code)]

pub mod conformance;
pub mod documents;

pub mod postgres;
pub mod scorecard;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::bail;

use caravan_common::{
    DocumentType, ParticipantId, config::TlsFiles, signing::SigningKey, store::EngineKind,
    trust::CorridorState,
};
use caravan_hub::{
    config::HubFile,
    operator::{AdminFile, Operator, OperatorError, read_public_key},
    pki::{self, PkiLayout, Subject},
};
use caravan_proto::v1;
use caravan_spoke::config::{ConsoleFile, NswFile, NswTokenFile, OfficerFile, Role, SpokeFile};

pub fn spoke_config(dir: &Path, id: ParticipantId) -> PathBuf {
    dir.join(id.as_str()).join("spoke.toml")
}

pub fn check_spokes_exist(dir: &Path, spokes: &[ParticipantId]) -> anyhow::Result<()> {
    for id in spokes {
        if !spoke_config(dir, *id).exists() {
            bail!(
                "{} was created without spoke {id}; remove the folder or use the same --spokes",
                dir.display()
            );
        }
    }
    Ok(())
}

pub fn country_name(id: ParticipantId) -> &'static str {
    match id.as_str() {
        "AF" => "Afghanistan",
        "AZ" => "Azerbaijan",
        "CN" => "China",
        "GE" => "Georgia",
        "KZ" => "Kazakhstan",
        "KG" => "Kyrgyz Republic",
        "MN" => "Mongolia",
        "PK" => "Pakistan",
        "TJ" => "Tajikistan",
        "TM" => "Turkmenistan",
        "UZ" => "Uzbekistan",
        _ => "Participant",
    }
}

/// A loopback port that is free now, kept in the configs; never the same one twice in a
/// process (the system may hand a released port out again at once).
pub fn free_port() -> anyhow::Result<u16> {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        if !given.contains(&port) {
            given.push(port);
            return Ok(port);
        }
    }
}

/// Create a network in `dir`: PKI, the hub's and the operator's configuration, and one folder per
/// spoke; the stores will be made on `engine`.
pub fn create(dir: &Path, spokes: &[ParticipantId], engine: EngineKind) -> anyhow::Result<()> {
    let hub_dir = dir.join("hub");
    let layout = PkiLayout::new(hub_dir.join("pki"));
    let init = pki::init(&layout, &["localhost".into(), "127.0.0.1".into()], 825)?;
    let port = free_port()?;
    let hub = HubFile {
        listen: format!("127.0.0.1:{port}"),
        data_dir: "data".into(),
        max_payload_bytes: caravan_hub::config::DEFAULT_MAX_PAYLOAD_BYTES,
        payload_in_flight_mib: caravan_hub::config::DEFAULT_PAYLOAD_IN_FLIGHT_MIB,
        store_engine: Some(engine.into()),
        postgres_url: None,
        postgres_password_file: None,
        postgres_ca_file: None,
        postgres_pool_size: caravan_hub::config::DEFAULT_POSTGRES_POOL_SIZE,
        store_cache_mib: caravan_hub::config::DEFAULT_STORE_CACHE_MIB,
        receipt_key: "pki/hub-receipt.key".into(),
        anchor_key: "pki/hub-anchor.key".into(),
        trust_list_validity_secs: caravan_hub::config::DEFAULT_TRUST_LIST_VALIDITY_SECS,
        message_ttl_secs: Default::default(),
        created_at_skew_secs: caravan_hub::config::DEFAULT_CREATED_AT_SKEW_SECS,
        scorecard_framework: None,
        metrics_listen: Some(format!("127.0.0.1:{}", free_port()?)),
        dashboard_listen: Some(format!("127.0.0.1:{}", free_port()?)),
        backup_dir: None,
        tree_head_interval_secs: 60,
        tls: TlsFiles {
            ca_cert: "pki/ca.pem".into(),
            cert: "pki/hub.pem".into(),
            key: "pki/hub.key".into(),
        },
        net: Default::default(),
    };
    write_toml(
        &hub_dir.join("hub.toml"),
        "the Caravan hub (caravan-hub run --config hub.toml)",
        &hub,
    )?;

    // The operator who onboards the spokes (caravan-hub admin --config operator/admin.toml ...).
    let operator_dir = dir.join("operator");
    std::fs::create_dir_all(&operator_dir)?;
    let issued = pki::issue(&layout, &Subject::Operator("sandbox".into()), 825, false)?;
    std::fs::copy(&issued.cert, operator_dir.join("operator.pem"))?;
    copy_secret(&issued.key, &operator_dir.join("operator.key"))?;
    std::fs::copy(layout.ca_cert(), operator_dir.join("ca.pem"))?;
    let admin = AdminFile {
        hub_url: Some(format!("https://127.0.0.1:{port}")),
        hub_urls: Vec::new(),
        hub_tls_name: None,
        tls: TlsFiles {
            ca_cert: "ca.pem".into(),
            cert: "operator.pem".into(),
            key: "operator.key".into(),
        },
    };
    write_toml(
        &operator_dir.join("admin.toml"),
        "the sandbox operator (caravan-hub admin --config admin.toml)",
        &admin,
    )?;

    for id in spokes {
        let spoke_dir = dir.join(id.as_str());
        let tls_dir = spoke_dir.join("tls");
        std::fs::create_dir_all(&tls_dir)?;
        let issued = pki::issue(&layout, &Subject::Participant(*id), 825, false)?;
        std::fs::copy(&issued.cert, tls_dir.join("client.pem"))?;
        copy_secret(&issued.key, &tls_dir.join("client.key"))?;
        std::fs::copy(layout.ca_cert(), tls_dir.join("ca.pem"))?;
        let signing = SigningKey::generate();
        signing.save(&spoke_dir.join("signing.key"))?;
        std::fs::write(
            spoke_dir.join("signing.key.pub"),
            format!("{}\n", signing.public().to_base64()),
        )?;
        // The national single window's bearer token; the config keeps only its SHA-256.
        let (token, token_sha256) = caravan_spoke::api::nsw::new_token();
        caravan_common::signing::write_secret_file(
            &spoke_dir.join("nsw-token"),
            format!("{token}\n").as_bytes(),
        )?;
        // An officer login for the console: user `officer` (viewing), a random password; the
        // first spoke also gets `issuer` and `approver`, to issue certificates from its console
        // as a country without a single window does (four eyes: two officers).
        let password = || {
            let (password, _) = caravan_spoke::api::nsw::new_token();
            password[..20].to_owned()
        };
        let mut accounts = vec![("officer", password(), vec![Role::Viewing])];
        if Some(id) == spokes.first() {
            accounts.push(("issuer", password(), vec![Role::Issuing]));
            accounts.push(("approver", password(), vec![Role::Approving]));
        }
        caravan_common::signing::write_secret_file(
            &spoke_dir.join("officer.txt"),
            accounts
                .iter()
                .map(|(user, password, _)| format!("{user}:{password}\n"))
                .collect::<String>()
                .as_bytes(),
        )?;
        let spoke = SpokeFile {
            participant: id.to_string(),
            hub_url: Some(format!("https://127.0.0.1:{port}")),
            hub_urls: Vec::new(),
            hub_tls_name: None,
            data_dir: "data".into(),
            store_engine: Some(engine),
            signing_key: "signing.key".into(),
            control_socket: None,
            max_payload_bytes: caravan_spoke::config::DEFAULT_MAX_PAYLOAD_BYTES,
            payload_in_flight_mib: caravan_spoke::config::DEFAULT_PAYLOAD_IN_FLIGHT_MIB,
            anchor_public_key: init.anchor_public_key.clone(),
            nsw: Some(NswFile {
                listen: format!("127.0.0.1:{}", free_port()?),
                tokens: vec![NswTokenFile {
                    name: format!("{}-single-window", id.as_str().to_lowercase()),
                    sha256: token_sha256,
                }],
                webhook_url: None,
                webhook: Default::default(),
            }),
            metrics_listen: Some(format!("127.0.0.1:{}", free_port()?)),
            console: Some({
                let listen = format!("127.0.0.1:{}", free_port()?);
                ConsoleFile {
                    // On loopback, the QR code may lead to plain http.
                    public_url: Some(format!("http://{listen}")),
                    listen,
                    officers: accounts
                        .iter()
                        .map(|(user, password, roles)| OfficerFile {
                            user: (*user).into(),
                            password_hash: caravan_spoke::api::console::hash_password(password),
                            language: None,
                            roles: roles.clone(),
                        })
                        .collect(),
                    time_zone: None,
                    trusted_proxies: Vec::new(),
                }
            }),
            net: Default::default(),
            upload: Default::default(),
            checks: Default::default(),
            tls: TlsFiles {
                ca_cert: "tls/ca.pem".into(),
                cert: "tls/client.pem".into(),
                key: "tls/client.key".into(),
            },
        };
        write_toml(
            &spoke_config(dir, *id),
            &format!("the {id} spoke (caravan-spoke run --config spoke.toml)"),
            &spoke,
        )?;
    }
    Ok(())
}

/// Why the benchmark's operator overrides the onboarding rules (stages, conformance reports):
/// its spokes are Caravan's own, started to measure the exchange, not to be admitted. The
/// sandbox does not override: it runs the conformance kit (`conformance::admit`).
pub const BENCH_OVERRIDE: &str = "benchmark network: Caravan's own spokes, not under test";

/// As the operator: register each spoke (in testing, or at production with `overridden`'s
/// reason), its signing key and the issuing authorities the sample documents name
/// ([`documents::AUTHORITIES`]). Skips what the registry already holds.
pub async fn register(
    dir: &Path,
    spokes: &[ParticipantId],
    overridden: Option<&str>,
) -> anyhow::Result<()> {
    let operator = Operator::connect(&dir.join("operator").join("admin.toml"))?;
    let trust = operator.trust_list().await?;
    let mut admin = operator.admin();
    let mut changes = 0;
    for id in spokes {
        if trust.participant(*id).is_none() {
            let request = v1::AddParticipantRequest {
                id: id.to_string(),
                name: country_name(*id).into(),
                contact: format!("operations@{}.sandbox.invalid", id.as_str().to_lowercase()),
                // The sandbox's participants stand for the countries whose codes they bear.
                country: caravan_common::CountryCode::assigned(id.as_str())
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
                stage: match overridden {
                    Some(_) => v1::ParticipantStage::Production as i32,
                    None => v1::ParticipantStage::Testing as i32,
                },
                override_reason: overridden.unwrap_or_default().into(),
            };
            admin
                .add_participant(request)
                .await
                .map_err(OperatorError::from)?;
            changes += 1;
        }
        let key = read_public_key(&dir.join(id.as_str()).join("signing.key.pub"))?;
        if trust.key(key.key_id()).is_none() {
            let request = v1::RegisterKeyRequest {
                participant: id.to_string(),
                public_key: key.raw().to_vec(),
                document_types: DocumentType::ALL.iter().map(|t| t.to_string()).collect(),
                not_before_ms: 0,
                not_after_ms: 0,
            };
            admin
                .register_key(request)
                .await
                .map_err(OperatorError::from)?;
            changes += 1;
        }
    }
    // The issuing authorities the sample documents name, so that the recipients' content
    // checks find them registered for their signers.
    for (id, name) in documents::AUTHORITIES {
        let id: ParticipantId = id.parse()?;
        let recorded = trust
            .participant(id)
            .is_some_and(|p| p.authority_named(name).is_some());
        if spokes.contains(&id) && !recorded {
            let request = v1::AddIssuingAuthorityRequest {
                participant: id.to_string(),
                authority: Some(v1::IssuingAuthority {
                    name: (*name).to_owned(),
                    identifiers: Vec::new(),
                }),
            };
            admin
                .add_issuing_authority(request)
                .await
                .map_err(OperatorError::from)?;
            changes += 1;
        }
    }
    if changes > 0 {
        println!(
            "operator registered {} spokes, their keys and issuing authorities ({changes} registry changes)",
            spokes.len()
        );
    }
    Ok(())
}

/// As the operator: promote each spoke to production and open every corridor between them
/// for all document types. Without `overridden`, the hub admits only spokes whose recorded
/// conformance reports passed for every type; with it, the rules are overridden for that
/// reason (logged). Skips what the registry already holds.
pub async fn open_corridors(
    dir: &Path,
    spokes: &[ParticipantId],
    overridden: Option<&str>,
) -> anyhow::Result<()> {
    let operator = Operator::connect(&dir.join("operator").join("admin.toml"))?;
    let trust = operator.trust_list().await?;
    let mut admin = operator.admin();
    let mut changes = 0;
    for id in spokes {
        let stage = trust.participant(*id).map(|p| p.stage);
        if stage != Some(caravan_common::trust::ParticipantStage::Production) {
            let request = v1::SetParticipantStageRequest {
                participant: id.to_string(),
                stage: v1::ParticipantStage::Production as i32,
                override_reason: overridden.unwrap_or_default().into(),
            };
            admin
                .set_participant_stage(request)
                .await
                .map_err(OperatorError::from)?;
            changes += 1;
        }
    }
    for from in spokes {
        for to in spokes.iter().filter(|to| *to != from) {
            for doc in DocumentType::ALL {
                if trust.corridor(*from, *to, doc) != CorridorState::Open {
                    let request = v1::SetCorridorRequest {
                        sender: from.to_string(),
                        recipient: to.to_string(),
                        document_type: doc.to_string(),
                        state: v1::CorridorState::Open as i32,
                        override_reason: overridden.unwrap_or_default().into(),
                    };
                    admin
                        .set_corridor(request)
                        .await
                        .map_err(OperatorError::from)?;
                    changes += 1;
                }
            }
        }
    }
    if changes > 0 {
        println!(
            "operator admitted {} spokes to production and opened their corridors ({changes} registry changes)",
            spokes.len()
        );
    }
    Ok(())
}

pub fn copy_secret(from: &Path, to: &Path) -> anyhow::Result<()> {
    caravan_common::signing::write_secret_file(to, &std::fs::read(from)?)?;
    Ok(())
}

pub fn write_toml(path: &Path, what: &str, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let body = toml::to_string_pretty(value)?;
    std::fs::write(
        path,
        format!(
            "# Configuration of {what}, written by caravan-sandbox.\n# Every option is described in docs/configuration.md.\n\n{body}"
        ),
    )?;
    Ok(())
}

/// [`register`] as soon as the hub answers (it may still be starting), for up to `patience`.
pub async fn register_when_up(
    dir: &Path,
    spokes: &[ParticipantId],
    overridden: Option<&str>,
    patience: Duration,
) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        match register(dir, spokes, overridden).await {
            Ok(()) => return Ok(()),
            Err(e)
                if start.elapsed() < patience
                    && e.downcast_ref::<OperatorError>()
                        .is_some_and(|e| matches!(e, OperatorError::Unavailable(_))) =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.context("onboarding the spokes")),
        }
    }
}

#[cfg(test)]
mod tests {
    /// The README's first command is `cargo run --release -p caravan-sandbox`: with two
    /// binaries in the package, cargo needs `default-run` to know which one that means.
    #[test]
    fn cargo_run_without_bin_runs_the_sandbox() {
        let manifest: toml::Value = toml::from_str(include_str!("../Cargo.toml")).unwrap();
        assert_eq!(
            manifest["package"]["default-run"].as_str(),
            Some("caravan-sandbox")
        );
    }
}
