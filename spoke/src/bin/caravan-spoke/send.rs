//! `send`: sign a document and queue it in the running spoke's outbox.

use std::path::PathBuf;

use caravan_common::{DocumentType, MessageId, ParticipantId};
use caravan_spoke::{checks::Outcome, client::SendRequest, config::ControlConfig};

use crate::{EX_TEMPFAIL, EX_USAGE, Failure, json_line, with_client};

#[derive(clap::Args)]
pub struct Send {
    #[arg(long, env = "CARAVAN_SPOKE_CONFIG")]
    config: PathBuf,
    /// Recipient participant id, e.g. CN.
    #[arg(long)]
    to: ParticipantId,
    /// Document type: e-co, e-phyto or e-invoice.
    #[arg(long = "type")]
    document_type: DocumentType,
    /// Certificate or invoice number; read from the document when absent.
    #[arg(long)]
    document_id: Option<String>,
    /// Message id of an earlier document that this one replaces or withdraws.
    #[arg(long)]
    supersedes: Option<MessageId>,
    /// A received document (from the recipient) that this one answers.
    #[arg(long)]
    in_reply_to: Option<MessageId>,
    /// Wait for the hub's receipt (or refusal) instead of returning once queued.
    #[arg(long)]
    wait: bool,
    /// How long `--wait` waits, in seconds.
    #[arg(long, default_value_t = 60)]
    wait_secs: u64,
    #[arg(long)]
    json: bool,
    /// The document (XML, or JSON for a JSON e-CO).
    file: PathBuf,
}

impl Send {
    pub fn run(self) -> Result<(), Failure> {
        let payload = std::fs::read(&self.file)
            .map_err(|e| Failure(EX_USAGE, format!("{}: {e}", self.file.display())))?;
        // Refused here rather than half-uploaded: the spoke would stop reading at its limit.
        let limit = ControlConfig::load(&self.config)
            .map_err(|e| Failure(EX_USAGE, e.to_string()))?
            .max_payload_bytes;
        if payload.len() > limit {
            return Err(Failure(
                1,
                format!(
                    "PAYLOAD_TOO_LARGE: {} is {} bytes; this spoke's limit (max_payload_bytes) is {limit}",
                    self.file.display(),
                    payload.len()
                ),
            ));
        }
        let request = SendRequest {
            to: self.to,
            document_type: self.document_type,
            document_id: self.document_id.clone(),
            supersedes: self.supersedes,
            in_reply_to: self.in_reply_to,
            wait_secs: self.wait.then_some(self.wait_secs),
        };
        let sent = with_client(&self.config, async |client| {
            client.send(&request, payload).await
        })?;
        let queued = sent.receipt.is_none();
        if self.json {
            caravan_common::out!("{}", json_line(&sent)?);
        } else {
            caravan_common::out!(
                "{} {} ({}) as message {}",
                if queued { "queued" } else { "sent" },
                sent.document_id,
                self.document_type,
                sent.message_id
            );
            match &sent.receipt {
                Some(r) => caravan_common::out!(
                    "hub receipt: sequence {} accepted at {} (hub key {})",
                    r.hub_sequence,
                    r.accepted_at,
                    r.key_id
                ),
                None if !self.wait => caravan_common::out!(
                    "the outbox submits it; follow it with `caravan-spoke status`"
                ),
                None => {}
            }
            let english = caravan_spoke::i18n::Lang::default();
            for c in sent.checks.iter().filter(|c| c.outcome != Outcome::Pass) {
                caravan_common::out!(
                    "warning: {} {}: {}",
                    c.check,
                    c.rule,
                    english.message(&c.message_key, &c.params)
                );
            }
        }
        if self.wait && queued {
            return Err(Failure(
                EX_TEMPFAIL,
                format!(
                    "the hub has not answered within {}s; message {} stays queued and will be sent",
                    self.wait_secs, sent.message_id
                ),
            ));
        }
        Ok(())
    }
}
