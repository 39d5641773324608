//! `caravan-hub pki ...`: the hub's certificate authority, its TLS certificate, and the
//! anchor and receipt keys.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use caravan_common::ParticipantId;
use caravan_hub::pki::{self, PkiLayout, Subject};

#[derive(Subcommand)]
pub enum PkiCommand {
    /// Create the CA, the hub's TLS certificate and key, and the hub's receipt-signing key.
    Init {
        /// Folder for the PKI files (created).
        #[arg(long)]
        dir: PathBuf,
        /// DNS name or IP address the hub is reached at (repeatable).
        #[arg(long = "hub-name", default_values = ["localhost", "127.0.0.1"])]
        hub_names: Vec<String>,
        /// Validity of the hub certificate in days (the CA gets five times as long).
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
    /// Issue a TLS client certificate for a participant or an operator.
    Issue(IssueArgs),
    /// Renew the hub's TLS certificate from the current CA (the old one is kept); restart the
    /// hub to use it.
    RenewHubCert(HubCertArgs),
    /// Replace the CA: the old one is kept, a new one is made, `ca-bundle.pem` holds both for
    /// the changeover, and the hub's certificate is renewed from the new CA (runbook: "Renew
    /// the CA").
    RolloverCa(HubCertArgs),
    /// Create a new receipt-signing key (rotation): point `receipt_key` at it and restart the
    /// hub; the anchor vouches for it in the next trust list, so spokes need no change.
    NewReceiptKey {
        /// Where to write the key (0600); its public key goes to <out>.pub.
        #[arg(long)]
        out: PathBuf,
    },
}

/// A new hub certificate: `renew-hub-cert`, `rollover-ca`.
#[derive(Args)]
pub struct HubCertArgs {
    /// The PKI folder made by `pki init`.
    #[arg(long)]
    dir: PathBuf,
    /// DNS name or IP address the hub is reached at (repeatable): all of them.
    #[arg(long = "hub-name", required = true)]
    hub_names: Vec<String>,
    /// Validity of the hub certificate in days (a new CA gets five times as long).
    #[arg(long, default_value_t = 825)]
    days: u32,
}

#[derive(Args)]
pub struct IssueArgs {
    /// The PKI folder made by `pki init`.
    #[arg(long)]
    dir: PathBuf,
    /// Participant id (ISO 3166-1 alpha-2), e.g. KZ.
    #[arg(
        long,
        required_unless_present = "operator",
        conflicts_with = "operator"
    )]
    participant: Option<ParticipantId>,
    /// Operator name (lowercase letters, digits, '.', '_', '-').
    #[arg(long)]
    operator: Option<String>,
    /// Validity in days.
    #[arg(long, default_value_t = 825)]
    days: u32,
    /// Replace a certificate issued before (renewal, or after a CA rollover); the old
    /// certificate and key are kept as <name>-<ms>.pem / .key.
    #[arg(long)]
    renew: bool,
}

pub fn command(command: PkiCommand) -> anyhow::Result<()> {
    match command {
        PkiCommand::Init {
            dir,
            hub_names,
            days,
        } => {
            let layout = PkiLayout::new(&dir);
            let out = pki::init(&layout, &hub_names, days)?;
            print_rows(&[
                ("CA certificate:", layout.ca_cert().display().to_string()),
                ("hub TLS certificate:", hub_cert(&layout, &hub_names)),
                (
                    "hub receipt key:",
                    format!(
                        "{} (id {})",
                        layout.receipt_key().display(),
                        out.receipt_key_id
                    ),
                ),
                ("receipt public key:", out.receipt_public_key),
                (
                    "anchor key:",
                    format!(
                        "{} (id {})",
                        layout.anchor_key().display(),
                        out.anchor_key_id
                    ),
                ),
                ("anchor public key:", out.anchor_public_key),
            ]);
        }
        PkiCommand::NewReceiptKey { out } => {
            let mut public = out.clone().into_os_string();
            public.push(".pub");
            let public = PathBuf::from(public);
            let key = pki::new_key(&out, &public)?;
            caravan_common::out!(
                "receipt key {} written to {} (public key in {})",
                key.key_id(),
                out.display(),
                public.display()
            );
        }
        PkiCommand::RenewHubCert(HubCertArgs {
            dir,
            hub_names,
            days,
        }) => {
            let layout = PkiLayout::new(&dir);
            pki::renew_hub_cert(&layout, &hub_names, days)?;
            caravan_common::out!(
                "hub TLS certificate renewed: {}; restart the hub to use it",
                hub_cert(&layout, &hub_names)
            );
        }
        PkiCommand::RolloverCa(HubCertArgs {
            dir,
            hub_names,
            days,
        }) => {
            let layout = PkiLayout::new(&dir);
            let r = pki::rollover_ca(&layout, &hub_names, days)?;
            print_rows(&[
                (
                    "new CA certificate:",
                    layout.ca_cert().display().to_string(),
                ),
                (
                    "old CA kept:",
                    format!("{} and {}", r.old_ca_cert.display(), r.old_ca_key.display()),
                ),
                (
                    "both, for the change:",
                    format!("{} (hub and spokes: tls.ca_cert)", r.bundle.display()),
                ),
                (
                    "hub TLS certificate:",
                    format!("{} (from the new CA)", layout.hub_cert().display()),
                ),
            ]);
        }
        PkiCommand::Issue(args) => {
            let layout = PkiLayout::new(&args.dir);
            let subject = match (args.participant, args.operator) {
                (Some(p), _) => Subject::Participant(p),
                (None, Some(op)) => Subject::Operator(op),
                (None, None) => anyhow::bail!("name a --participant or an --operator"),
            };
            let issued = pki::issue(&layout, &subject, args.days, args.renew)?;
            print_rows(&[
                ("certificate:", issued.cert.display().to_string()),
                ("key:", issued.key.display().to_string()),
                ("serial:", issued.serial),
                ("sha256:", issued.fingerprint),
            ]);
        }
    }
    Ok(())
}

/// The hub's certificate and the names it carries.
fn hub_cert(layout: &PkiLayout, hub_names: &[String]) -> String {
    format!(
        "{} (names: {})",
        layout.hub_cert().display(),
        hub_names.join(", ")
    )
}

/// What a command made, one `label value` line each, the values in one column.
fn print_rows(rows: &[(&str, String)]) {
    let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0) + 1;
    for (label, value) in rows {
        caravan_common::out!("{label:<width$}{value}");
    }
}
