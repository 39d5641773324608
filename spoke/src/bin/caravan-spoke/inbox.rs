//! `inbox` and `show`: what the running spoke received, and one document in full.

use std::path::PathBuf;

use caravan_common::{MessageId, ParticipantId};
use caravan_spoke::api::views::VerificationView;

use crate::{Failure, json_line, with_client};

#[derive(clap::Args)]
pub struct Inbox {
    #[arg(long, env = "CARAVAN_SPOKE_CONFIG")]
    config: PathBuf,
    #[arg(long)]
    json: bool,
}

impl Inbox {
    pub fn run(self) -> Result<(), Failure> {
        // The spoke answers a page at a time; the client reads them all, in arrival order.
        let items = with_client(&self.config, async |client| client.inbox().await)?;
        if self.json {
            let list = serde_json::to_string(&items)
                .map_err(|e| Failure(1, format!("cannot print the inbox: {e}")))?;
            caravan_common::out!("{list}");
            return Ok(());
        }
        if items.is_empty() {
            caravan_common::out!("the inbox is empty");
        }
        for i in items {
            let verdict = match &i.verification {
                VerificationView::Verified { notes } if notes.is_empty() => "verified".to_owned(),
                VerificationView::Verified { notes } => {
                    let codes: Vec<&str> = notes.iter().map(|n| n.code.as_str()).collect();
                    format!("verified ({})", codes.join(", "))
                }
                VerificationView::Rejected { code, .. } => format!("REJECTED ({code})"),
            };
            caravan_common::out!(
                "{}  {}  {:<9}  {:<24}  {}  {}",
                i.received_at,
                i.message_id,
                i.document_type.as_deref().unwrap_or("?"),
                i.document_id.as_deref().unwrap_or("?"),
                i.sender,
                verdict
            );
        }
        Ok(())
    }
}

#[derive(clap::Args)]
pub struct Show {
    #[arg(long, env = "CARAVAN_SPOKE_CONFIG")]
    config: PathBuf,
    /// Write the document's bytes to this file.
    #[arg(long)]
    payload_out: Option<PathBuf>,
    /// The sender, if the id came from several.
    #[arg(long)]
    sender: Option<ParticipantId>,
    #[arg(long)]
    json: bool,
    message_id: MessageId,
}

impl Show {
    pub fn run(self) -> Result<(), Failure> {
        let (id, sender, want_payload) = (self.message_id, self.sender, self.payload_out.is_some());
        let (detail, payload) = with_client(&self.config, async |client| {
            let detail = client.inbox_entry(id, sender).await?;
            let payload = match want_payload {
                true => Some(client.payload(id, sender).await?),
                false => None,
            };
            Ok((detail, payload))
        })?;
        if let (Some(out), Some(bytes)) = (&self.payload_out, &payload) {
            std::fs::write(out, bytes)
                .map_err(|e| Failure(1, format!("{}: {e}", out.display())))?;
        }
        if self.json {
            caravan_common::out!("{}", json_line(&detail)?);
            return Ok(());
        }
        let r = &detail;
        let lines: [(&str, Option<String>); 12] = [
            ("message_id", Some(r.message_id.to_string())),
            ("sender", Some(r.sender.to_string())),
            ("document_type", r.document_type.map(|t| t.to_string())),
            ("document_id", r.document_id.clone()),
            ("content_type", r.content_type.clone()),
            ("payload_length", Some(r.payload_length.to_string())),
            ("payload_sha256", Some(r.payload_sha256.clone())),
            ("created_at", r.created_at.map(|t| t.to_string())),
            ("hub_sequence", r.hub_sequence.map(|s| s.to_string())),
            ("accepted_at", r.accepted_at.map(|t| t.to_string())),
            ("received_at", Some(r.received_at.to_string())),
            ("supersedes", r.supersedes.map(|s| s.to_string())),
        ];
        for (field, value) in lines {
            if let Some(value) = value {
                caravan_common::out!("{field:<15} {value}");
            }
        }
        let verification = match &r.verification {
            VerificationView::Verified { .. } => {
                "verified end to end (signature, signing key, sender, payload, hub receipt)".into()
            }
            VerificationView::Rejected { code, reason } => format!("REJECTED: {code}: {reason}"),
        };
        caravan_common::out!("{:<15} {verification}", "verification");
        for f in &detail.fields {
            let language = f
                .language
                .as_ref()
                .map(|l| format!(" [{l}]"))
                .unwrap_or_default();
            caravan_common::out!("  {:<22} {}{language}", f.label, f.value);
        }
        if let Some(out) = self.payload_out {
            caravan_common::out!("payload written to {}", out.display());
        }
        Ok(())
    }
}
