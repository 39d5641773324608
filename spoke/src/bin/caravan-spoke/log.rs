//! `log`: what the running spoke verified of the hub's exchange log, and its alarms.

use std::path::PathBuf;

use crate::{Failure, json_line, with_client};

#[derive(clap::Args)]
pub struct Log {
    #[arg(long, env = "CARAVAN_SPOKE_CONFIG")]
    config: PathBuf,
    #[arg(long)]
    json: bool,
}

impl Log {
    pub fn run(self) -> Result<(), Failure> {
        let log = with_client(&self.config, async |client| client.log().await)?;
        let total = log.alarms_total;
        if self.json {
            caravan_common::out!("{}", json_line(&log)?);
        } else {
            match &log.last_verified_head {
                Some(h) => caravan_common::out!(
                    "exchange log verified up to {} entries (root {}, signed {})",
                    h.size,
                    h.root,
                    h.signed_at
                ),
                None => caravan_common::out!("no exchange-log head verified yet"),
            }
            caravan_common::out!("{total} alarm(s)");
            for a in &log.alarms {
                caravan_common::out!("  {}  {}  {}", a.at, a.code, a.detail);
            }
        }
        if total > 0 {
            return Err(Failure(
                1,
                format!("{total} exchange-log alarm(s): see above and docs/runbook.md"),
            ));
        }
        Ok(())
    }
}
