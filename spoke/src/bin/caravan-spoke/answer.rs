//! `answer`: a decision about a received document, sent back to its sender.

use std::path::PathBuf;

use clap::ValueEnum;

use caravan_common::MessageId;
use caravan_spoke::store::Decision;

use crate::{Failure, json_line, with_client};

#[derive(clap::Args)]
pub struct Answer {
    #[arg(long, env = "CARAVAN_SPOKE_CONFIG")]
    config: PathBuf,
    #[arg(long, value_enum)]
    decision: DecisionArg,
    #[arg(long)]
    reason: Option<String>,
    /// Wait for the hub's receipt.
    #[arg(long)]
    wait: bool,
    #[arg(long)]
    json: bool,
    message_id: MessageId,
}

#[derive(Clone, Copy, ValueEnum)]
enum DecisionArg {
    Accepted,
    Rejected,
}

impl Answer {
    pub fn run(self) -> Result<(), Failure> {
        let (decision, name) = match self.decision {
            DecisionArg::Accepted => (Decision::Accepted, "accepted"),
            DecisionArg::Rejected => (Decision::Rejected, "rejected"),
        };
        let (id, reason) = (self.message_id, self.reason.as_deref());
        let wait = self.wait.then_some(60);
        let sent = with_client(&self.config, async |client| {
            client.answer(id, decision, reason, wait).await
        })?;
        if self.json {
            caravan_common::out!("{}", json_line(&sent)?);
        } else {
            caravan_common::out!("answered {id} ({name}) with message {}", sent.message_id);
        }
        Ok(())
    }
}
