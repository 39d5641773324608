//! `export` and `verify`: evidence bundles, written from the running spoke and verified
//! offline.

use std::path::PathBuf;

use caravan_common::{MessageId, ParticipantId};
use caravan_spoke::{config::SpokeFile, evidence::Bundle};

use crate::{EX_USAGE, Failure, with_client};

#[derive(clap::Args)]
pub struct Export {
    #[arg(long, env = "CARAVAN_SPOKE_CONFIG")]
    config: PathBuf,
    #[arg(long)]
    out: PathBuf,
    /// The sender, if the id came from several.
    #[arg(long)]
    sender: Option<ParticipantId>,
    message_id: MessageId,
}

impl Export {
    pub fn run(self) -> Result<(), Failure> {
        let (id, sender) = (self.message_id, self.sender);
        let bundle = with_client(&self.config, async |client| {
            client.evidence(id, sender).await
        })?;
        // Keys sorted, as the files written before were.
        let text = serde_json::to_value(&bundle)
            .and_then(|v| serde_json::to_string_pretty(&v))
            .map_err(|e| Failure(1, e.to_string()))?;
        std::fs::write(&self.out, text)
            .map_err(|e| Failure(1, format!("{}: {e}", self.out.display())))?;
        caravan_common::out!("evidence for {id} written to {}", self.out.display());
        Ok(())
    }
}

#[derive(clap::Args)]
pub struct Verify {
    /// Take the anchor public key from this spoke config.
    #[arg(
        long,
        required_unless_present = "anchor_key",
        conflicts_with = "anchor_key"
    )]
    config: Option<PathBuf>,
    /// A file with the hub's anchor public key (base64, as in hub-anchor.pub).
    #[arg(long)]
    anchor_key: Option<PathBuf>,
    #[arg(long)]
    json: bool,
    file: PathBuf,
}

impl Verify {
    pub fn run(self) -> Result<(), Failure> {
        let usage = |e: String| Failure(EX_USAGE, e);
        let anchor_text = match (self.config, self.anchor_key) {
            (Some(config), _) => {
                let file: SpokeFile =
                    caravan_common::config::read_toml(&config).map_err(|e| usage(e.to_string()))?;
                file.anchor_public_key
            }
            (None, Some(path)) => std::fs::read_to_string(&path)
                .map_err(|e| usage(format!("{}: {e}", path.display())))?,
            (None, None) => return Err(usage("give --config or --anchor-key".into())),
        };
        let anchor = caravan_common::signing::PublicKey::from_base64(anchor_text.trim())
            .map_err(|e| usage(e.to_string()))?;
        let file = self.file;
        let text = std::fs::read_to_string(&file)
            .map_err(|e| usage(format!("{}: {e}", file.display())))?;
        let bundle: Bundle = serde_json::from_str(&text).map_err(|e| {
            Failure(
                1,
                format!("{} is not an evidence bundle: {e}", file.display()),
            )
        })?;
        let verdict = caravan_spoke::evidence::verify(&bundle, &anchor);
        if self.json {
            caravan_common::out!(
                "{}",
                serde_json::to_string(&verdict).map_err(|e| Failure(1, e.to_string()))?
            );
        } else {
            for c in &verdict.checks {
                caravan_common::out!(
                    "{} {:<26} {}",
                    if c.ok { "PASS" } else { "FAIL" },
                    c.name,
                    c.detail
                );
            }
            caravan_common::out!(
                "{}",
                if verdict.genuine {
                    "GENUINE"
                } else {
                    "NOT GENUINE"
                }
            );
        }
        if verdict.genuine {
            Ok(())
        } else {
            Err(Failure(1, "the bundle is not genuine".into()))
        }
    }
}
