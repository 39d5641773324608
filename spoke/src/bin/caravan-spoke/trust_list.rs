//! `trust-list show`: the trust list the running spoke holds.

use std::path::PathBuf;

use crate::{Failure, json_line, or_dash, with_client};

#[derive(clap::Subcommand)]
pub enum TrustListCommand {
    /// Print the list held and whether it is fresh.
    Show {
        #[arg(long, env = "CARAVAN_SPOKE_CONFIG")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

impl TrustListCommand {
    pub fn run(self) -> Result<(), Failure> {
        let Self::Show { config, json } = self;
        let list = with_client(&config, async |client| client.trust_list().await)?;
        if json {
            caravan_common::out!("{}", json_line(&list)?);
            return Ok(());
        }
        caravan_common::out!(
            "trust list version {} issued {} next update {} ({})",
            list.version,
            or_dash(list.issued_at),
            or_dash(list.next_update),
            if list.fresh { "fresh" } else { "STALE" }
        );
        for p in &list.participants {
            caravan_common::out!(
                "  participant {}  {:<9}  stage {:<10}  country {}  {}",
                p.id,
                p.status,
                p.stage,
                p.country.as_deref().unwrap_or("-"),
                p.name
            );
            for a in &p.issuing_authorities {
                let ids: Vec<String> = a
                    .identifiers
                    .iter()
                    .map(|i| format!("{}={}", i.scheme, i.value))
                    .collect();
                caravan_common::out!("    issuing authority \"{}\"  {}", a.name, ids.join(", "));
            }
        }
        for k in &list.keys {
            caravan_common::out!("  key {}  {}  {}", k.key_id, k.participant, k.status);
        }
        for c in &list.corridors {
            caravan_common::out!(
                "  corridor {} -> {}  {:<9}  {}",
                c.sender,
                c.recipient,
                c.document_type,
                c.state
            );
        }
        Ok(())
    }
}
