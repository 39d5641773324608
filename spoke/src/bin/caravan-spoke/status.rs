//! `status`: the state of a sent document and its history, as the running spoke followed it.

use std::path::PathBuf;

use caravan_common::MessageId;

use crate::{Failure, json_line, wire_name, with_client};

#[derive(clap::Args)]
pub struct Status {
    #[arg(long, env = "CARAVAN_SPOKE_CONFIG")]
    config: PathBuf,
    #[arg(long)]
    json: bool,
    message_id: MessageId,
}

impl Status {
    pub fn run(self) -> Result<(), Failure> {
        let id = self.message_id;
        let status = with_client(&self.config, async |client| client.status(id).await)?;
        if self.json {
            caravan_common::out!("{}", json_line(&status)?);
            return Ok(());
        }
        caravan_common::out!("{id}: {}", wire_name(&status.state));
        for t in &status.transitions {
            caravan_common::out!("  {:<13} {}", wire_name(&t.state), t.at);
        }
        if let Some(ack) = &status.acknowledgement {
            let verified = if ack.verified {
                "signature verified"
            } else {
                "SIGNATURE NOT VERIFIED"
            };
            // The outcome as the acknowledgement states it (`accepted`, or the rejection with
            // its code, Caravan's or the recipient's own, and its text).
            let content = ack.ack.as_ref().filter(|_| ack.verified);
            let field = |name: &str| {
                content.and_then(|a| a.get(name)).map(|v| match v {
                    // The recipient wrote it: no control characters reach the terminal.
                    serde_json::Value::String(s) => s.chars().filter(|c| !c.is_control()).collect(),
                    other => other.to_string(),
                })
            };
            let outcome = match (field("outcome"), field("code")) {
                (Some(outcome), Some(code)) => {
                    format!("{outcome}: {code}: {}", field("reason").unwrap_or_default())
                }
                (Some(outcome), None) => outcome,
                (None, _) => "-".to_owned(),
            };
            caravan_common::out!("recipient's acknowledgement: {outcome} ({verified})");
        }
        Ok(())
    }
}
