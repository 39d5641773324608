//! The Admin gRPC service: operators manage participants (with their country and issuing
//! authorities), keys, corridors and certificates.
//! Only a certificate with the operator role may call it. Each change goes through
//! [`Registry::change`]: validated, published as a new trust-list version, and logged with the
//! operator's name. Stages and corridors are held to the onboarding rules
//! (`crate::onboarding`), judged against the recorded conformance reports read in the same
//! turn as the change; recording a report is logged but changes no trust list, and so is
//! recording a Readiness Scorecard entry (`crate::scorecard`).

use std::{path::PathBuf, sync::Arc};

use tonic::{Request, Response, Status};
use tracing::{info, warn};

use caravan_common::{
    CountryCode, DocumentType, KeyId, ParticipantId, Refusal, RefusalCode, Timestamp,
    signing::PublicKey,
    trust::{
        AuthorityIdentifier, CorridorState, IssuingAuthority, MAX_AUTHORITIES_PER_PARTICIPANT,
        ParticipantStage,
    },
};
use caravan_proto::{trust_list, v1};

use crate::{
    error::HubError,
    identity,
    metrics::Metrics,
    onboarding::{self, Evidence},
    registry::{Logged, Registry},
    scorecard::{Scorecard, entry},
    store::{RevokedCertificate, Store},
};

/// The service; cheap to clone.
#[derive(Clone)]
pub struct AdminService {
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    pub store: Store,
    /// Where online backups go (`backup_dir` in hub.toml).
    pub backup_dir: PathBuf,
    /// Signs a tree head over each backup's log, so that `log verify` of the backup checks
    /// its newest entries too.
    pub receipt_key: caravan_common::signing::SigningKey,
    /// The Readiness Scorecard: its entries and reports.
    pub scorecard: Arc<Scorecard>,
}

/// The longest scorecard measurement window asked for, in days.
const MAX_WINDOW_DAYS: u32 = 3660;

fn refused(code: RefusalCode, detail: impl Into<String>) -> Refusal {
    Refusal::new(code, detail)
}

fn participant_id(text: &str) -> Result<ParticipantId, Refusal> {
    text.parse()
        .map_err(|e| refused(RefusalCode::MalformedRequest, format!("{e}")))
}

fn document_type(text: &str) -> Result<DocumentType, Refusal> {
    text.parse()
        .map_err(|e| refused(RefusalCode::MalformedRequest, format!("{e}")))
}

/// A country as the registry records it: an officially assigned ISO 3166-1 alpha-2 code.
fn country_code(text: &str) -> Result<CountryCode, Refusal> {
    CountryCode::assigned(text).map_err(|e| refused(RefusalCode::MalformedRequest, e.to_string()))
}

/// An issuing authority from a request, checked and normalised.
fn issuing_authority(wire: Option<&v1::IssuingAuthority>) -> Result<IssuingAuthority, Refusal> {
    let wire = wire.ok_or_else(|| {
        refused(
            RefusalCode::MalformedRequest,
            "the request names no issuing authority",
        )
    })?;
    let malformed = |e: caravan_common::trust::AuthorityError| {
        refused(RefusalCode::MalformedRequest, e.to_string())
    };
    let identifiers = wire
        .identifiers
        .iter()
        .map(|i| AuthorityIdentifier::new(&i.scheme, &i.value))
        .collect::<Result<Vec<_>, _>>()
        .map_err(malformed)?;
    IssuingAuthority::new(&wire.name, identifiers).map_err(malformed)
}

/// Record `authority` for `id`: refused if the participant records one of that name already,
/// has as many as it may, or if another authority anywhere carries one of its identifiers.
fn add_authority(
    list: &mut v1::TrustList,
    id: ParticipantId,
    authority: &IssuingAuthority,
) -> Result<(), Refusal> {
    registered(list, id)?;
    for p in &list.participants {
        for other in p
            .issuing_authorities
            .iter()
            .map(trust_list::authority_from_wire)
        {
            if p.id == id.as_str() && other.is_named(&authority.name) {
                return Err(refused(
                    RefusalCode::AlreadyRegistered,
                    format!(
                        "participant {id} records issuing authority \"{}\" already",
                        other.name
                    ),
                ));
            }
            if let Some(i) = authority
                .identifiers
                .iter()
                .find(|i| other.has_identifier(&i.scheme, &i.value))
            {
                return Err(refused(
                    RefusalCode::AlreadyRegistered,
                    format!(
                        "identifier {}={} is recorded already, for \"{}\" of {}",
                        i.scheme, i.value, other.name, p.id
                    ),
                ));
            }
        }
    }
    let participant = registered(list, id)?;
    if participant.issuing_authorities.len() >= MAX_AUTHORITIES_PER_PARTICIPANT {
        return Err(refused(
            RefusalCode::MalformedRequest,
            format!(
                "participant {id} records {MAX_AUTHORITIES_PER_PARTICIPANT} issuing authorities, the most it may; remove one first"
            ),
        ));
    }
    participant
        .issuing_authorities
        .push(trust_list::authority_to_wire(authority));
    Ok(())
}

/// What a change's log entry says of an authority: its name and identifiers.
fn describe(authority: &IssuingAuthority) -> String {
    let ids: Vec<String> = authority
        .identifiers
        .iter()
        .map(|i| format!("{}={}", i.scheme, i.value))
        .collect();
    if ids.is_empty() {
        format!("\"{}\"", authority.name)
    } else {
        format!("\"{}\" ({})", authority.name, ids.join(", "))
    }
}

fn registered(
    list: &mut v1::TrustList,
    id: ParticipantId,
) -> Result<&mut v1::TrustedParticipant, Refusal> {
    list.participants
        .iter_mut()
        .find(|p| p.id == id.as_str())
        .ok_or_else(|| {
            refused(
                RefusalCode::NotRegistered,
                format!("participant {id} is not registered"),
            )
        })
}

impl AdminService {
    /// Authorise the operator, run `change` as them, answer with the new version.
    async fn apply(
        &self,
        op: &'static str,
        request_peer: Option<identity::Peer>,
        detail: String,
        edit: impl FnOnce(
            &mut v1::TrustList,
            &mut std::collections::BTreeMap<String, RevokedCertificate>,
        ) -> Result<(), Refusal>,
    ) -> Result<Response<v1::AdminResponse>, Status> {
        self.apply_judged(op, request_peer, move |list, revoked, _, actor| {
            edit(list, revoked)?;
            Ok(Logged {
                actor: actor.to_owned(),
                detail,
            })
        })
        .await
    }

    /// [`Self::apply`] for a change the onboarding rules judge: the edit gets the recorded
    /// conformance reports (read in the change's turn) and the operator's actor, and says how
    /// the change is logged.
    async fn apply_judged(
        &self,
        op: &'static str,
        request_peer: Option<identity::Peer>,
        edit: impl FnOnce(
            &mut v1::TrustList,
            &mut std::collections::BTreeMap<String, RevokedCertificate>,
            Evidence,
            &str,
        ) -> Result<Logged, Refusal>,
    ) -> Result<Response<v1::AdminResponse>, Status> {
        let result = async {
            let actor = self.operator_actor(request_peer.as_ref())?;
            let version = self
                .registry
                .change_reading(
                    |b| b.conformance_reports().map(Evidence::new),
                    |list, revoked, evidence| edit(list, revoked, evidence, &actor),
                )
                .await?;
            Ok::<_, HubError>(version)
        }
        .await;
        match result {
            Ok(version) => Ok(Response::new(v1::AdminResponse {
                trust_list_version: version,
            })),
            Err(e) => Err(self.answer(op, e)),
        }
    }

    /// Authorise the caller as an operator and note its certificate; its actor,
    /// `operator:<name>`.
    fn operator_actor(&self, peer: Option<&identity::Peer>) -> Result<String, Refusal> {
        let operator = self.registry.snapshot().authorize_operator(peer)?;
        if let Some(peer) = peer {
            self.registry.note_certificate(peer);
        }
        Ok(format!("operator:{operator}"))
    }

    /// The status for a failed request, a refusal counted and logged.
    fn answer(&self, op: &'static str, e: HubError) -> Status {
        if let HubError::Refused(r) = &e {
            let total = self.metrics.refused(op, None, r);
            warn!(op, code = %r.code, detail = %r.detail, total, "refused");
        }
        e.into()
    }
}

#[tonic::async_trait]
impl v1::admin_server::Admin for AdminService {
    async fn list_certificates(
        &self,
        request: Request<v1::ListCertificatesRequest>,
    ) -> Result<Response<v1::CertificateList>, Status> {
        let snapshot = self.registry.snapshot();
        snapshot
            .authorize_operator(identity::peer(&request).as_ref())
            .map_err(|r| caravan_proto::status::to_status(&r))?;
        let seen = self.registry.certificates().await.map_err(HubError::from)?;
        let certificates = seen
            .into_iter()
            .map(|c| {
                let revoked = snapshot.revoked_certificates.get(&c.serial);
                v1::CertificateInfo {
                    revoked_at_ms: revoked.map(|r| r.at_ms).unwrap_or(0),
                    revocation_reason: revoked.map(|r| r.reason.clone()).unwrap_or_default(),
                    serial: c.serial,
                    fingerprint: c.fingerprint,
                    subject: c.subject,
                    not_before_ms: c.not_before_ms,
                    not_after_ms: c.not_after_ms,
                    first_seen_ms: c.first_seen_ms,
                }
            })
            .collect();
        Ok(Response::new(v1::CertificateList { certificates }))
    }

    async fn backup(
        &self,
        request: Request<v1::BackupRequest>,
    ) -> Result<Response<v1::BackupResponse>, Status> {
        let operator = self
            .registry
            .snapshot()
            .authorize_operator(identity::peer(&request).as_ref())
            .map_err(|r| {
                let total = self.metrics.refused("backup", None, &r);
                warn!(op = "backup", code = %r.code, detail = %r.detail, total, "refused");
                caravan_proto::status::to_status(&r)
            })?;
        let taken_at = Timestamp::now();
        let dir = self.backup_dir.clone();
        let path = dir.join(format!("store-{}", taken_at.as_millis()));
        let dest = path.clone();
        let key = self.receipt_key.clone();
        let summary = self
            .store
            .run(move |b| {
                std::fs::create_dir_all(&dir).map_err(crate::store::StoreError::io(&dir))?;
                let summary = b.backup(&dest)?;
                let copy = crate::store::Embedded::open_found(&dest, 8 << 20)?
                    .ok_or_else(|| crate::store::StoreError::NoStore(dest.clone()))?;
                crate::log::cover_log(&copy, &key)?;
                Ok(summary)
            })
            .await
            .map_err(|e| {
                tracing::error!(%operator, cause = %e, "backup failed");
                Status::from(HubError::from(e))
            })?;
        info!(%operator, path = %path.display(), records = summary.records, bytes = summary.bytes,
            log_entries = summary.log_entries, pause_ms = summary.pause.as_millis() as u64, "backup taken");
        Ok(Response::new(v1::BackupResponse {
            path: path.display().to_string(),
            records: summary.records,
            bytes: summary.bytes,
            log_entries: summary.log_entries,
            pause_ms: summary.pause.as_millis() as u64,
            taken_at_ms: taken_at.as_millis(),
        }))
    }

    async fn add_participant(
        &self,
        request: Request<v1::AddParticipantRequest>,
    ) -> Result<Response<v1::AdminResponse>, Status> {
        let peer = identity::peer(&request);
        let r = request.into_inner();
        let mut detail = format!("participant {} ({}) added", r.id, r.name);
        if !r.country.is_empty() {
            detail.push_str(&format!(", country {}", r.country));
        }
        self.apply_judged("add_participant", peer, move |list, _, _, actor| {
            let id = participant_id(&r.id)?;
            let stage = onboarding::stage_from_request(r.stage, Some(ParticipantStage::Testing))?;
            let override_reason = onboarding::override_reason(&r.override_reason)?;
            if r.name.trim().is_empty() {
                return Err(refused(
                    RefusalCode::MalformedRequest,
                    "a participant needs a name",
                ));
            }
            let country = match r.country.as_str() {
                "" => String::new(),
                code => country_code(code)?.to_string(),
            };
            if list.participants.iter().any(|p| p.id == id.as_str()) {
                return Err(refused(
                    RefusalCode::AlreadyRegistered,
                    format!("participant {id} is registered already"),
                ));
            }
            list.participants.push(v1::TrustedParticipant {
                id: id.to_string(),
                name: r.name.trim().to_owned(),
                status: v1::ParticipantStatus::Active as i32,
                contact: r.contact,
                country,
                issuing_authorities: Vec::new(),
                stage: trust_list::stage_to_wire(stage) as i32,
            });
            // No report can be recorded for a participant before it is registered: starting
            // above testing is always an override.
            let unmet = if stage > ParticipantStage::Testing {
                vec![(
                    RefusalCode::ConformanceRequired,
                    format!(
                        "{id} cannot start at stage {stage}: it has no recorded conformance report yet (a report is recorded once the participant is registered)"
                    ),
                )]
            } else {
                Vec::new()
            };
            onboarding::judge(
                actor,
                format!("{detail}, stage {stage}"),
                unmet,
                override_reason.as_deref(),
            )
        })
        .await
    }

    async fn set_participant_country(
        &self,
        request: Request<v1::SetParticipantCountryRequest>,
    ) -> Result<Response<v1::AdminResponse>, Status> {
        let peer = identity::peer(&request);
        let r = request.into_inner();
        let detail = format!("participant {} country set to {}", r.id, r.country);
        self.apply("set_participant_country", peer, detail, move |list, _| {
            let id = participant_id(&r.id)?;
            let country = country_code(&r.country)?;
            let participant = registered(list, id)?;
            if participant.country == country.as_str() {
                return Err(refused(
                    RefusalCode::AlreadyRegistered,
                    format!("participant {id} records country {country} already"),
                ));
            }
            participant.country = country.to_string();
            Ok(())
        })
        .await
    }

    async fn add_issuing_authority(
        &self,
        request: Request<v1::AddIssuingAuthorityRequest>,
    ) -> Result<Response<v1::AdminResponse>, Status> {
        let peer = identity::peer(&request);
        let r = request.into_inner();
        // Checked before the change, so that its log entry names the authority as recorded;
        // a refusal here is answered like one inside the change.
        let authority = issuing_authority(r.authority.as_ref());
        let detail = match &authority {
            Ok(a) => format!(
                "issuing authority {} added for participant {}",
                describe(a),
                r.participant
            ),
            Err(_) => String::new(),
        };
        self.apply("add_issuing_authority", peer, detail, move |list, _| {
            let id = participant_id(&r.participant)?;
            add_authority(list, id, &authority?)
        })
        .await
    }

    async fn remove_issuing_authority(
        &self,
        request: Request<v1::RemoveIssuingAuthorityRequest>,
    ) -> Result<Response<v1::AdminResponse>, Status> {
        let peer = identity::peer(&request);
        let r = request.into_inner();
        let probe = IssuingAuthority {
            name: r.name.clone(),
            identifiers: Vec::new(),
        };
        // The log entry names the authority as recorded (the change itself finds it again
        // under the registry's writer lock).
        let recorded = participant_id(&r.participant)
            .ok()
            .and_then(|id| {
                let snapshot = self.registry.snapshot();
                let p = snapshot.trust.participant(id)?;
                Some(p.authority_named(&r.name)?.name.clone())
            })
            .unwrap_or_else(|| r.name.split_whitespace().collect::<Vec<_>>().join(" "));
        let detail = format!(
            "issuing authority \"{recorded}\" removed from participant {}",
            r.participant
        );
        self.apply("remove_issuing_authority", peer, detail, move |list, _| {
            let id = participant_id(&r.participant)?;
            let participant = registered(list, id)?;
            let at = participant
                .issuing_authorities
                .iter()
                .position(|a| probe.is_named(&a.name))
                .ok_or_else(|| {
                    refused(
                        RefusalCode::NotRegistered,
                        format!(
                            "participant {id} records no issuing authority named \"{}\"",
                            caravan_common::trust::shortened(r.name.trim())
                        ),
                    )
                })?;
            participant.issuing_authorities.remove(at);
            Ok(())
        })
        .await
    }

    async fn set_participant_status(
        &self,
        request: Request<v1::SetParticipantStatusRequest>,
    ) -> Result<Response<v1::AdminResponse>, Status> {
        let peer = identity::peer(&request);
        let r = request.into_inner();
        let state = match v1::ParticipantStatus::try_from(r.status) {
            Ok(v1::ParticipantStatus::Active) => "resumed",
            Ok(v1::ParticipantStatus::Suspended) => "suspended",
            _ => "set to an invalid status",
        };
        let detail = format!("participant {} {state}", r.id);
        self.apply("set_participant_status", peer, detail, move |list, _| {
            let id = participant_id(&r.id)?;
            if !matches!(
                v1::ParticipantStatus::try_from(r.status),
                Ok(v1::ParticipantStatus::Active | v1::ParticipantStatus::Suspended)
            ) {
                return Err(refused(
                    RefusalCode::MalformedRequest,
                    "status must be active or suspended",
                ));
            }
            registered(list, id)?.status = r.status;
            Ok(())
        })
        .await
    }

    async fn register_key(
        &self,
        request: Request<v1::RegisterKeyRequest>,
    ) -> Result<Response<v1::AdminResponse>, Status> {
        let peer = identity::peer(&request);
        let r = request.into_inner();
        let key = <[u8; 32]>::try_from(r.public_key.as_slice())
            .ok()
            .and_then(|b| PublicKey::from_bytes(&b));
        let detail = format!(
            "key {} registered for {} ({})",
            key.as_ref()
                .map(|k| k.key_id().to_string())
                .unwrap_or_default(),
            r.participant,
            r.document_types.join(",")
        );
        self.apply("register_key", peer, detail, move |list, _| {
            let id = participant_id(&r.participant)?;
            registered(list, id)?;
            let key = key.ok_or_else(|| {
                refused(
                    RefusalCode::MalformedRequest,
                    "public_key is not a 32-byte ed25519 key",
                )
            })?;
            let key_id = key.key_id().to_string();
            if list.keys.iter().any(|k| k.key_id == key_id) {
                return Err(refused(
                    RefusalCode::AlreadyRegistered,
                    format!("key {key_id} is registered already"),
                ));
            }
            if r.document_types.is_empty() {
                return Err(refused(
                    RefusalCode::MalformedRequest,
                    "a key must be allowed at least one document type",
                ));
            }
            let mut types = Vec::new();
            for t in &r.document_types {
                let t = document_type(t)?.to_string();
                if !types.contains(&t) {
                    types.push(t);
                }
            }
            let not_before = if r.not_before_ms == 0 {
                Timestamp::now().as_millis()
            } else {
                r.not_before_ms
            };
            if r.not_after_ms != 0 && r.not_after_ms <= not_before {
                return Err(refused(
                    RefusalCode::MalformedRequest,
                    "not_after must be later than not_before",
                ));
            }
            list.keys.push(v1::TrustedKey {
                key_id,
                participant: id.to_string(),
                public_key: key.raw().to_vec(),
                document_types: types,
                not_before_ms: not_before,
                not_after_ms: r.not_after_ms,
                revoked_at_ms: 0,
                revocation_reason: String::new(),
            });
            Ok(())
        })
        .await
    }

    async fn revoke_key(
        &self,
        request: Request<v1::RevokeKeyRequest>,
    ) -> Result<Response<v1::AdminResponse>, Status> {
        let peer = identity::peer(&request);
        let r = request.into_inner();
        let detail = format!("key {} revoked: {}", r.key_id, r.reason);
        self.apply("revoke_key", peer, detail, move |list, _| {
            let key_id: KeyId = r
                .key_id
                .parse()
                .map_err(|e| refused(RefusalCode::MalformedRequest, format!("{e}")))?;
            if r.reason.trim().is_empty() {
                return Err(refused(
                    RefusalCode::MalformedRequest,
                    "a revocation needs a reason",
                ));
            }
            let key = list
                .keys
                .iter_mut()
                .find(|k| k.key_id == key_id.to_string())
                .ok_or_else(|| {
                    refused(
                        RefusalCode::NotRegistered,
                        format!("key {key_id} is not registered"),
                    )
                })?;
            if key.revoked_at_ms != 0 {
                return Err(refused(
                    RefusalCode::KeyRevoked,
                    format!("key {key_id} is revoked already"),
                ));
            }
            key.revoked_at_ms = Timestamp::now().as_millis();
            key.revocation_reason = r.reason.trim().to_owned();
            Ok(())
        })
        .await
    }

    async fn set_corridor(
        &self,
        request: Request<v1::SetCorridorRequest>,
    ) -> Result<Response<v1::AdminResponse>, Status> {
        let peer = identity::peer(&request);
        let r = request.into_inner();
        let state = v1::CorridorState::try_from(r.state)
            .map(|s| s.as_str_name())
            .unwrap_or("?");
        let detail = format!(
            "corridor {} -> {} {} set to {}",
            r.sender,
            r.recipient,
            r.document_type,
            state.trim_start_matches("CORRIDOR_STATE_")
        );
        self.apply_judged("set_corridor", peer, move |list, _, evidence, actor| {
            let (from, to) = (participant_id(&r.sender)?, participant_id(&r.recipient)?);
            let doc_type = document_type(&r.document_type)?;
            let doc = doc_type.to_string();
            let override_reason = onboarding::override_reason(&r.override_reason)?;
            registered(list, from)?;
            registered(list, to)?;
            if from == to {
                return Err(refused(
                    RefusalCode::MalformedRequest,
                    "a corridor joins two different participants",
                ));
            }
            if !matches!(
                v1::CorridorState::try_from(r.state),
                Ok(v1::CorridorState::Open | v1::CorridorState::Pilot | v1::CorridorState::Closed)
            ) {
                return Err(refused(
                    RefusalCode::MalformedRequest,
                    "state must be open, pilot or closed",
                ));
            }
            let state = match v1::CorridorState::try_from(r.state) {
                Ok(v1::CorridorState::Open) => CorridorState::Open,
                Ok(v1::CorridorState::Pilot) => CorridorState::Pilot,
                _ => CorridorState::Closed,
            };
            let unmet = onboarding::corridor_unmet(list, &evidence, (from, to, doc_type), state)?;
            let logged = onboarding::judge(actor, detail, unmet, override_reason.as_deref())?;
            match list.corridors.iter_mut().find(|c| {
                c.sender == from.as_str() && c.recipient == to.as_str() && c.document_type == doc
            }) {
                Some(c) => c.state = r.state,
                None => list.corridors.push(v1::Corridor {
                    sender: from.to_string(),
                    recipient: to.to_string(),
                    document_type: doc,
                    state: r.state,
                }),
            }
            Ok(logged)
        })
        .await
    }

    async fn set_participant_stage(
        &self,
        request: Request<v1::SetParticipantStageRequest>,
    ) -> Result<Response<v1::AdminResponse>, Status> {
        let peer = identity::peer(&request);
        let r = request.into_inner();
        self.apply_judged("set_participant_stage", peer, move |list, _, evidence, actor| {
            let id = participant_id(&r.participant)?;
            let stage = onboarding::stage_from_request(r.stage, None)?;
            let override_reason = onboarding::override_reason(&r.override_reason)?;
            let current = onboarding::stage_in(list, id)?;
            if stage == current {
                return Err(refused(
                    RefusalCode::AlreadyRegistered,
                    format!("participant {id} is at stage {stage} already"),
                ));
            }
            let detail = format!("participant {id} stage {current} -> {stage}");
            let logged = if stage > current {
                let unmet = onboarding::promotion_unmet(&evidence, id);
                let detail = match evidence.newest(id) {
                    Some((record, _)) if unmet.is_empty() => format!(
                        "{detail}, on conformance report {} (PASS)",
                        record.id
                    ),
                    _ => detail,
                };
                onboarding::judge(actor, detail, unmet, override_reason.as_deref())?
            } else {
                let above = onboarding::corridors_above(list, id, stage);
                if !above.is_empty() {
                    return Err(refused(
                        RefusalCode::CorridorsAboveStage,
                        format!(
                            "participant {id} cannot move back to stage {stage} while these corridors need more: {}; close them first",
                            above.join(", ")
                        ),
                    ));
                }
                onboarding::judge(actor, detail, Vec::new(), override_reason.as_deref())?
            };
            let participant = registered(list, id)?;
            participant.stage = trust_list::stage_to_wire(stage) as i32;
            Ok(logged)
        })
        .await
    }

    async fn record_conformance_report(
        &self,
        request: Request<v1::RecordConformanceReportRequest>,
    ) -> Result<Response<v1::ConformanceReportRecord>, Status> {
        let peer = identity::peer(&request);
        let r = request.into_inner();
        let result = async {
            let actor = self.operator_actor(peer.as_ref())?;
            let prepared = onboarding::Prepared::new(r.report_json, &self.receipt_key, &actor)?;
            let id = prepared.report.participant;
            if self.registry.snapshot().trust.participant(id).is_none() {
                return Err(HubError::Refused(refused(
                    RefusalCode::NotRegistered,
                    format!("the report is about participant {id}, which is not registered"),
                )));
            }
            let record = self
                .registry
                .record_conformance(move |n| prepared.record(n))
                .await?;
            Ok::<_, HubError>(onboarding::to_wire(&record))
        }
        .await;
        result
            .map(Response::new)
            .map_err(|e| self.answer("record_conformance_report", e))
    }

    async fn list_conformance_reports(
        &self,
        request: Request<v1::ListConformanceReportsRequest>,
    ) -> Result<Response<v1::ConformanceReportList>, Status> {
        let peer = identity::peer(&request);
        let r = request.into_inner();
        let result = async {
            self.registry.snapshot().authorize_operator(peer.as_ref())?;
            let only = match r.participant.as_str() {
                "" => None,
                text => Some(participant_id(text)?),
            };
            let mut records = self.store.run(|b| b.conformance_reports()).await?;
            if let Some(id) = only {
                records.retain(|c| c.participant == id.as_str());
            }
            let reports = records.iter().rev().map(onboarding::to_wire).collect();
            Ok::<_, HubError>(v1::ConformanceReportList { reports })
        }
        .await;
        result
            .map(Response::new)
            .map_err(|e| self.answer("list_conformance_reports", e))
    }

    async fn record_scorecard_entry(
        &self,
        request: Request<v1::RecordScorecardEntryRequest>,
    ) -> Result<Response<v1::ScorecardEntryRecorded>, Status> {
        let peer = identity::peer(&request);
        let r = request.into_inner();
        let result = async {
            let actor = self.operator_actor(peer.as_ref())?;
            let (record, log_proof) = self.scorecard.record(actor, r).await?;
            Ok::<_, HubError>(v1::ScorecardEntryRecorded {
                record: Some(entry::to_wire(&record)),
                log_proof,
            })
        }
        .await;
        result
            .map(Response::new)
            .map_err(|e| self.answer("record_scorecard_entry", e))
    }

    async fn list_scorecard_entries(
        &self,
        request: Request<v1::ListScorecardEntriesRequest>,
    ) -> Result<Response<v1::ScorecardEntryList>, Status> {
        let peer = identity::peer(&request);
        let result = async {
            self.registry.snapshot().authorize_operator(peer.as_ref())?;
            let records = self.store.run(|b| b.scorecard_entries()).await?;
            Ok::<_, HubError>(v1::ScorecardEntryList {
                entries: records.iter().map(entry::to_wire).collect(),
            })
        }
        .await;
        result
            .map(Response::new)
            .map_err(|e| self.answer("list_scorecard_entries", e))
    }

    async fn scorecard_report(
        &self,
        request: Request<v1::ScorecardReportRequest>,
    ) -> Result<Response<v1::ScorecardReportResponse>, Status> {
        let peer = identity::peer(&request);
        let r = request.into_inner();
        let result = async {
            self.registry.snapshot().authorize_operator(peer.as_ref())?;
            if r.window_days > MAX_WINDOW_DAYS {
                return Err(HubError::Refused(refused(
                    RefusalCode::MalformedRequest,
                    format!("window_days: at most {MAX_WINDOW_DAYS}"),
                )));
            }
            let report = self
                .scorecard
                .report(r.window_days, std::time::Duration::ZERO)
                .await?;
            Ok::<_, HubError>(v1::ScorecardReportResponse {
                report_json: serde_json::to_vec(&*report).expect("a report serializes"),
            })
        }
        .await;
        result
            .map(Response::new)
            .map_err(|e| self.answer("scorecard_report", e))
    }

    async fn revoke_certificate(
        &self,
        request: Request<v1::RevokeCertificateRequest>,
    ) -> Result<Response<v1::AdminResponse>, Status> {
        let peer = identity::peer(&request);
        let by = peer
            .as_ref()
            .map(|p| format!("{:?}", p.caller))
            .unwrap_or_default();
        let r = request.into_inner();
        let detail = format!("certificate {} revoked: {}", r.serial, r.reason);
        self.apply("revoke_certificate", peer, detail, move |_, revoked| {
            let serial = r.serial.trim().to_ascii_lowercase().replace(':', "");
            if serial.is_empty() || !serial.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(refused(
                    RefusalCode::MalformedRequest,
                    "serial must be hex, as `pki issue` prints it",
                ));
            }
            if r.reason.trim().is_empty() {
                return Err(refused(
                    RefusalCode::MalformedRequest,
                    "a revocation needs a reason",
                ));
            }
            if revoked.contains_key(&serial) {
                return Err(refused(
                    RefusalCode::CertificateRevoked,
                    format!("certificate {serial} is revoked already"),
                ));
            }
            revoked.insert(
                serial.clone(),
                RevokedCertificate {
                    serial,
                    at_ms: Timestamp::now().as_millis(),
                    reason: r.reason.trim().to_owned(),
                    by,
                },
            );
            Ok(())
        })
        .await
    }
}
