//! The scripted cases, run in order against a candidate connected to the stand-in hub.
//!
//! Each case is judged only on what the candidate does on the wire: the acknowledgement it
//! signs (its outcome and reason code, checked against its registered keys), whether it
//! submits again, what it submits. A case that cannot be judged in time fails, saying what
//! the kit waited for.

use std::{sync::Arc, time::Duration};

use tokio_stream::StreamExt;

use caravan_common::{
    DocumentType, MessageId, ParticipantId, RefusalCode, Timestamp,
    envelope::{Ack, AckOutcome, Header},
    refusal::RejectCode,
    signing::{SigningKey, sha256},
};
use caravan_proto::{ack, envelope, receipt, v1};

use super::{
    Options,
    documents::{document, judge},
};
use crate::{exchange::Exchange, registry::Registry};
use crate::{
    onboarding::report::{CaseResult, Outcome},
    server::standin::{SeenAck, StandIn, Tamper, zz_peer},
};

/// The identity the kit exchanges with candidates as.
pub const IDENTITY: ParticipantId = ParticipantId::CONFORMANCE;

/// The reason code the kit rejects a candidate's document with when it breaks the document
/// rules.
pub const DOCUMENT_RULES: &str = "caravan.conformance:DOCUMENT_RULES";

/// One run's state: the stand-in's parts, the conformance identity's keys, the results.
pub struct Run<'a> {
    pub kit: Arc<StandIn>,
    pub exchange: Arc<Exchange>,
    pub registry: Arc<Registry>,
    /// The conformance identity's registered key.
    pub key: SigningKey,
    pub options: &'a Options,
    /// Tells the documents of this run from those of earlier runs.
    pub label: String,
    /// The version of the stand-in's trust list prepared for the run.
    pub prepared: u64,
    pub numbered: u32,
    pub cases: Vec<CaseResult>,
    /// Reports progress to whoever runs the kit.
    pub progress: &'a (dyn Fn(&str) + Sync),
}

fn case(id: &str, title: &str, rule: &str, result: Result<String, String>) -> CaseResult {
    let (outcome, evidence) = match result {
        Ok(evidence) => (Outcome::Pass, evidence),
        Err(evidence) => (Outcome::Fail, evidence),
    };
    CaseResult {
        id: id.to_owned(),
        title: title.to_owned(),
        rule: rule.to_owned(),
        outcome,
        evidence,
    }
}

impl Run<'_> {
    fn record(&mut self, result: CaseResult) {
        (self.progress)(&format!(
            "{:<4} {}: {}",
            match result.outcome {
                Outcome::Pass => "PASS",
                Outcome::Fail => "FAIL",
            },
            result.id,
            result.evidence
        ));
        self.cases.push(result);
    }

    fn candidate(&self) -> ParticipantId {
        self.kit.candidate()
    }

    fn first_type(&self) -> DocumentType {
        *self.options.types.iter().next().expect("at least one type")
    }

    /// Submit a document of `document_type` from the conformance identity to the candidate,
    /// under `id` (so that the kit can mark it before it goes out).
    async fn send(
        &mut self,
        id: MessageId,
        document_type: DocumentType,
        key: &SigningKey,
        supersedes: Option<MessageId>,
    ) -> Result<(), String> {
        self.numbered += 1;
        let number = format!("ZZ-CONF-{}-{}", self.label, self.numbered);
        let (payload, media_type) = document(document_type, &number);
        let header = Header {
            message_id: id,
            sender: IDENTITY,
            recipient: self.candidate(),
            document_type,
            document_id: number,
            content_type: media_type.to_owned(),
            payload_sha256: sha256(&payload),
            payload_length: payload.len() as u64,
            created_at: Timestamp::now(),
            key_id: key.key_id(),
            supersedes,
            in_reply_to: None,
        };
        let envelope = envelope::seal(&header, payload, key);
        self.exchange
            .submit(
                IDENTITY,
                v1::SubmitRequest {
                    envelope: Some(envelope),
                    ..Default::default()
                },
            )
            .await
            .map(|_| ())
            .map_err(|e| format!("the stand-in hub refused the kit's own document: {e}"))
    }

    /// The candidate's first acknowledgement of `id`, within the case timeout.
    async fn first_ack(&self, id: MessageId) -> Option<SeenAck> {
        self.kit
            .wait_for(self.options.case_timeout, |kit| {
                kit.acks(id).into_iter().next()
            })
            .await
    }

    fn waited(&self) -> String {
        format!(
            "no acknowledgement within {} s",
            self.options.case_timeout.as_secs()
        )
    }

    async fn expect_accepted(&self, id: MessageId) -> Result<String, String> {
        match self.first_ack(id).await.ok_or_else(|| self.waited())?? {
            AckOutcome::Accepted => Ok(format!(
                "acknowledged ACCEPTED, signed with a registered key of {}",
                self.candidate()
            )),
            AckOutcome::Rejected { code, reason } => {
                Err(format!("rejected {code} ({reason}), a valid document"))
            }
        }
    }

    async fn expect_rejected(
        &self,
        id: MessageId,
        expected: RefusalCode,
    ) -> Result<String, String> {
        let seen = self.first_ack(id).await.ok_or_else(|| {
            format!(
                "{}: a document that fails verification must be acknowledged REJECTED",
                self.waited()
            )
        })?;
        match seen? {
            AckOutcome::Rejected { code, reason } if code == RejectCode::Caravan(expected) => {
                Ok(format!("rejected {code} ({reason})"))
            }
            AckOutcome::Rejected { code, .. } => Err(format!(
                "rejected, but {code}; the rule broken is {expected}"
            )),
            AckOutcome::Accepted => Err(format!(
                "ACCEPTED a document that must be refused {expected}"
            )),
        }
    }

    /// Wait for the candidate to open its delivery stream.
    pub async fn connect(&mut self) -> bool {
        (self.progress)(&format!(
            "waiting up to {} s for {} to connect to the stand-in hub",
            self.options.connect_timeout.as_secs(),
            self.candidate()
        ));
        // Connected, and handed the list prepared for the run (it names the conformance
        // identity and its key), so that the first case does not race the list.
        let prepared = self.prepared;
        let connected = self
            .kit
            .wait_for(self.options.connect_timeout, |kit| {
                (kit.delivery_streams() > 0 && kit.trust_version_served() >= prepared).then_some(())
            })
            .await
            .is_some();
        self.record(case(
            "connect",
            "The candidate connects with its certificate, reads the run's trust list and opens its delivery stream",
            "§5.1, §5.2, §5.5",
            match connected {
                true => Ok("delivery stream opened".to_owned()),
                false => Err(format!(
                    "no delivery stream, or the run's trust list (version {prepared}) not read, within {} s",
                    self.options.connect_timeout.as_secs()
                )),
            },
        ));
        connected
    }

    /// Every case that needs nothing from the candidate but its answers.
    pub async fn receiving(&mut self) {
        let types: Vec<DocumentType> = self.options.types.iter().copied().collect();
        let mut first_valid = None;
        for t in types {
            let id = MessageId::generate();
            let result = match self.send(id, t, &self.key.clone(), None).await {
                Ok(()) => self.expect_accepted(id).await,
                Err(e) => Err(e),
            };
            if result.is_ok() && first_valid.is_none() {
                first_valid = Some(id);
            }
            self.record(case(
                &format!("receive-valid-{t}"),
                &format!("A valid {t} is verified, stored and acknowledged ACCEPTED"),
                "§7, §8",
                result,
            ));
        }
        let t = self.first_type();
        let hostile = [
            (
                "tampered-payload",
                "A payload changed on the way is refused PAYLOAD_HASH_MISMATCH, never accepted",
                "§7 step 2",
                Tamper::Payload,
                RefusalCode::PayloadHashMismatch,
            ),
            (
                "forged-header-signature",
                "A header whose signature does not verify is refused BAD_SIGNATURE",
                "§4, §7 step 2",
                Tamper::HeaderSignature,
                RefusalCode::BadSignature,
            ),
            (
                "forged-delivery-receipt",
                "A delivery whose hub receipt does not verify is refused BAD_RECEIPT",
                "§6.3, §7 step 1",
                Tamper::Receipt,
                RefusalCode::BadReceipt,
            ),
        ];
        for (name, title, rule, tamper, code) in hostile {
            let id = MessageId::generate();
            self.kit.tamper(id, tamper);
            let result = match self.send(id, t, &self.key.clone(), None).await {
                Ok(()) => self.expect_rejected(id, code).await,
                Err(e) => Err(e),
            };
            self.record(case(name, title, rule, result));
        }
        self.redelivery(first_valid).await;
        self.supersession(t).await;
        self.restart_mid_delivery(t).await;
        self.trust_list_cases(t).await;
    }

    async fn redelivery(&mut self, first_valid: Option<MessageId>) {
        let result = match first_valid {
            None => Err("not run: no valid document was acknowledged before".to_owned()),
            Some(id) if !self.kit.redeliver(id) => {
                Err("not run: the document was never delivered".to_owned())
            }
            Some(id) => {
                let again = self
                    .kit
                    .wait_for(self.options.case_timeout, |kit| {
                        let acks = kit.acks(id);
                        (acks.len() >= 2).then(|| acks[1].clone())
                    })
                    .await;
                match again {
                    None => Err(format!(
                        "{} for the redelivered document: a redelivery must be answered again",
                        self.waited()
                    )),
                    Some(Err(problem)) => Err(problem),
                    Some(Ok(AckOutcome::Accepted)) => Ok(
                        "the redelivery was acknowledged ACCEPTED again, as the first time"
                            .to_owned(),
                    ),
                    Some(Ok(AckOutcome::Rejected { code, .. })) => Err(format!(
                        "the redelivery was rejected {code}; the first delivery was accepted"
                    )),
                }
            }
        };
        self.record(case(
            "redelivery",
            "A document delivered again is recognised by (sender, message id) and answered with the first decision",
            "§5.5, §7",
            result,
        ));
    }

    async fn supersession(&mut self, t: DocumentType) {
        let (first, second) = (MessageId::generate(), MessageId::generate());
        let key = self.key.clone();
        let result = async {
            self.send(first, t, &key, None).await?;
            self.expect_accepted(first).await?;
            self.send(second, t, &key, Some(first)).await?;
            self.expect_accepted(second)
                .await
                .map(|_| format!("both acknowledged ACCEPTED; the second supersedes {first}"))
        }
        .await;
        self.record(case(
            "supersession",
            "A document that supersedes an earlier one is verified and accepted like any other",
            "§6.1 supersedes",
            result,
        ));
    }

    async fn restart_mid_delivery(&mut self, t: DocumentType) {
        let id = MessageId::generate();
        self.kit.tamper(id, Tamper::CutMidway);
        let streams = self.kit.delivery_streams();
        let result = match self.send(id, t, &self.key.clone(), None).await {
            Ok(()) => self.expect_accepted(id).await.map(|_| {
                format!(
                    "the stream was cut after half the document; the candidate reconnected ({} stream(s) since) and acknowledged the whole document ACCEPTED",
                    self.kit.delivery_streams().saturating_sub(streams)
                )
            }),
            Err(e) => Err(e),
        };
        self.record(case(
            "restart-mid-delivery",
            "A delivery cut off in the middle of a document (a hub restarting) is discarded, and the whole document taken when delivered again",
            "§5.5 frames, delivery is at least once",
            result,
        ));
    }

    async fn trust_list_cases(&mut self, t: DocumentType) {
        // A new key of the conformance identity, in a new version of the list that watch
        // streams do not carry yet: the document signed with it arrives first, and the
        // candidate must look for the newer list (section 7) rather than refuse.
        let before = self.registry.snapshot().signed.clone();
        self.kit
            .withhold_from_watch(Some(self.registry.snapshot().list.version + 1));
        let new_key = SigningKey::generate();
        let entry = v1::TrustedKey {
            key_id: new_key.key_id().to_string(),
            participant: IDENTITY.to_string(),
            public_key: new_key.public().raw().to_vec(),
            document_types: DocumentType::ALL.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        };
        let registered = self
            .registry
            .change(
                "conformance-kit",
                format!("new key {} for {IDENTITY}", new_key.key_id()),
                move |list, _| {
                    list.keys.push(entry);
                    Ok(())
                },
            )
            .await;
        let result = match registered {
            Err(e) => Err(format!("could not register the new key: {e}")),
            Ok(version) => {
                let id = MessageId::generate();
                match self.send(id, t, &new_key, None).await {
                    Ok(()) => self.expect_accepted(id).await.map(|_| {
                        format!("a document signed with key {} of trust list version {version} was accepted", new_key.key_id())
                    }),
                    Err(e) => Err(e),
                }
            }
        };
        self.kit.withhold_from_watch(None);
        let followed = result.is_ok();
        self.record(case(
            "trust-list-followed",
            "A document signed with a key registered a moment ago, whose list has not reached the candidate, is accepted once it looked for the newer list",
            "§7 (a list behind the hub's), §10.3",
            result,
        ));

        // The version before, offered again: the candidate must keep the newer one.
        let result = if !followed {
            Err("not run: the candidate did not follow the newer list".to_owned())
        } else {
            self.kit.serve_trust_list(Some(before));
            let offered = self
                .kit
                .wait_for(self.options.case_timeout, |kit| {
                    (kit.trust_override_served() > 0).then_some(())
                })
                .await;
            let result = match offered {
                None => Err(format!(
                    "the candidate did not read the trust list within {} s",
                    self.options.case_timeout.as_secs()
                )),
                Some(()) => {
                    let id = MessageId::generate();
                    match self.send(id, t, &new_key, None).await {
                        Ok(()) => self.expect_accepted(id).await.map(|_| {
                            "offered the older version, the candidate kept the newer: a document signed with the newer list's key was accepted".to_owned()
                        }),
                        Err(e) => Err(e),
                    }
                }
            };
            self.kit.serve_trust_list(None);
            result
        };
        self.record(case(
            "rolled-back-trust-list",
            "An older version of the trust list is refused (TRUST_LIST_ROLLBACK) and the list held kept",
            "§10.3",
            result,
        ));

        // A version that is stale as soon as it is issued: verification must go on.
        let stale = self
            .registry
            .change_valid_for(
                Duration::ZERO,
                "conformance-kit",
                "a trust list stale when issued".to_owned(),
                |_, _| Ok(()),
            )
            .await;
        let result = match stale {
            Err(e) => Err(format!("could not issue the stale list: {e}")),
            Ok(version) => {
                let held = self
                    .kit
                    .wait_for(self.options.case_timeout, |kit| {
                        (kit.trust_version_served() >= version).then_some(())
                    })
                    .await;
                match held {
                    None => Err(format!(
                        "the candidate did not read trust list version {version} within {} s",
                        self.options.case_timeout.as_secs()
                    )),
                    Some(()) => {
                        let id = MessageId::generate();
                        match self.send(id, t, &self.key.clone(), None).await {
                            Ok(()) => self.expect_accepted(id).await.map(|_| {
                                format!("holding version {version}, past its next update, the candidate went on verifying and accepted a valid document")
                            }),
                            Err(e) => Err(e),
                        }
                    }
                }
            }
        };
        self.record(case(
            "stale-trust-list",
            "With a stale trust list the candidate goes on verifying with it (and warns), never stops",
            "§10.4",
            result,
        ));
        // Fresh again for whatever follows.
        if let Err(e) = self
            .registry
            .change(
                "conformance-kit",
                "a fresh trust list".to_owned(),
                |_, _| Ok(()),
            )
            .await
        {
            (self.progress)(&format!("could not re-issue a fresh trust list: {e}"));
        }
    }

    /// The candidate's own documents, one of each type, judged by the document rules; and
    /// the forged receipt its first submission got.
    pub async fn sending(&mut self, received: &Received) {
        let deadline = tokio::time::Instant::now() + self.options.send_timeout;
        (self.progress)(&format!(
            "waiting up to {} s for {} to send one document of each type ({}) to {IDENTITY}",
            self.options.send_timeout.as_secs(),
            self.candidate(),
            self.options
                .sends
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        for t in self.options.sends.clone() {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let judged = received.wait_for(t, remaining).await;
            let result = match judged {
                None => Err(format!(
                    "no {t} from the candidate within {} s",
                    self.options.send_timeout.as_secs()
                )),
                Some(Ok(evidence)) => Ok(evidence),
                Some(Err(evidence)) => Err(evidence),
            };
            self.record(case(
                &format!("send-valid-{t}"),
                &format!("The candidate sends a {t} that passes the document rules"),
                "§5.3, §6.1; the document rules of Caravan's receiving spoke",
                result,
            ));
        }
        let forged = self
            .kit
            .wait_for(self.options.case_timeout, |kit| {
                kit.forged().filter(|(_, n)| *n >= 2)
            })
            .await;
        let result = match (forged, self.kit.forged()) {
            (Some((id, n)), _) => Ok(format!(
                "the receipt of {id} was forged; the candidate submitted it again ({n} submissions) and took the genuine receipt"
            )),
            (None, Some((id, _))) => Err(format!(
                "the receipt of {id} was forged and the candidate did not submit it again within {} s: it took a receipt that does not verify as proof",
                self.options.case_timeout.as_secs()
            )),
            (None, None) => Err("not run: the candidate submitted nothing".to_owned()),
        };
        self.record(case(
            "forged-submit-receipt",
            "A receipt that does not verify is no proof of acceptance: the submission is sent again",
            "§5.3, §6.3, §9.3",
            result,
        ));
    }

    /// The cases not run because the candidate never connected.
    pub fn not_run(&mut self) {
        let mut ids: Vec<String> = self
            .options
            .types
            .iter()
            .map(|t| format!("receive-valid-{t}"))
            .collect();
        ids.extend(
            [
                "tampered-payload",
                "forged-header-signature",
                "forged-delivery-receipt",
                "redelivery",
                "supersession",
                "restart-mid-delivery",
                "trust-list-followed",
                "rolled-back-trust-list",
                "stale-trust-list",
            ]
            .map(str::to_owned),
        );
        ids.extend(self.options.sends.iter().map(|t| format!("send-valid-{t}")));
        ids.push("forged-submit-receipt".to_owned());
        for id in ids {
            self.cases.push(case(
                &id,
                "Not run",
                "§5.1",
                Err("not run: the candidate never connected".to_owned()),
            ));
        }
    }
}

/// What the conformance identity received from the candidate, judged: per document type, the
/// first verdict.
#[derive(Default)]
pub struct Received {
    judged: std::sync::Mutex<Vec<(DocumentType, Result<String, String>)>>,
    changed: tokio::sync::Notify,
}

impl Received {
    fn note(&self, t: DocumentType, verdict: Result<String, String>) {
        self.judged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((t, verdict));
        self.changed.notify_waiters();
    }

    fn first(&self, t: DocumentType) -> Option<Result<String, String>> {
        self.judged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(k, _)| *k == t)
            .map(|(_, v)| v.clone())
    }

    async fn wait_for(&self, t: DocumentType, timeout: Duration) -> Option<Result<String, String>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if let Some(found) = self.first(t) {
                return Some(found);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.first(t);
            }
        }
    }
}

/// Take in what the candidate sends to the conformance identity, as a recipient does: assemble
/// each delivery, verify it with the stand-in's trust list, judge it by the document rules, and
/// acknowledge it (ACCEPTED, or REJECTED with [`DOCUMENT_RULES`]). Runs until aborted.
pub async fn receive(
    exchange: Arc<Exchange>,
    registry: Arc<Registry>,
    key: SigningKey,
    received: Arc<Received>,
) {
    // A stream that ends (the stand-in's store faulted) is opened again, as a spoke would.
    loop {
        let stream =
            exchange
                .clone()
                .open_deliveries(zz_peer(IDENTITY), IDENTITY, Default::default());
        take(stream, &exchange, &registry, &key, &received).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Take in one delivery stream until it ends.
async fn take(
    mut stream: tokio_stream::wrappers::ReceiverStream<Result<v1::Delivery, tonic::Status>>,
    exchange: &Exchange,
    registry: &Registry,
    key: &SigningKey,
    received: &Received,
) {
    let mut current: Option<(v1::Envelope, Option<v1::SignedReceipt>)> = None;
    while let Some(Ok(frame)) = stream.next().await {
        if let Some(envelope) = frame.envelope {
            current = Some((envelope, frame.receipt));
        } else if let Some((envelope, _)) = current.as_mut() {
            envelope.payload.extend_from_slice(&frame.continuation);
        }
        if !frame.complete {
            continue;
        }
        let Some((envelope, signed_receipt)) = current.take() else {
            continue;
        };
        let trust = registry.snapshot().trust.clone();
        let opened = signed_receipt
            .ok_or_else(|| "the delivery has no receipt".to_owned())
            .and_then(|r| receipt::verify(&r, &trust).map_err(|e| e.to_string()))
            .and_then(|r| {
                envelope::open(&envelope, &trust, None, r.accepted_at).map_err(|e| e.to_string())
            });
        let Ok(opened) = opened else {
            continue;
        };
        let h = &opened.header;
        let verdict = judge(&envelope.payload, h.document_type, &h.content_type).map(|number| {
            format!(
                "{} number {number} ({}) passes the document rules",
                h.document_type, h.message_id
            )
        });
        let outcome = match &verdict {
            Ok(_) => AckOutcome::Accepted,
            Err(problems) => AckOutcome::Rejected {
                code: DOCUMENT_RULES.parse().expect("a valid business code"),
                reason: problems.chars().take(500).collect(),
            },
        };
        received.note(
            h.document_type,
            verdict.map_err(|problems| {
                format!(
                    "{} ({}) breaks the document rules: {problems}",
                    h.document_type, h.message_id
                )
            }),
        );
        let ack = Ack {
            message_id: h.message_id,
            sender: h.sender,
            recipient: IDENTITY,
            header_sha256: opened.header_sha256,
            outcome,
            acknowledged_at: Timestamp::now(),
            key_id: key.key_id(),
        };
        let signed = ack::sign(&ack, key);
        if let Err(e) = exchange
            .acknowledge_many(IDENTITY, v1::AcknowledgeManyRequest { acks: vec![signed] })
            .await
        {
            tracing::warn!(cause = %e, "the conformance identity could not acknowledge");
        }
    }
}
