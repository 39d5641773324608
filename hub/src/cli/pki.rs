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
    RenewHubCert {
        #[arg(long)]
        dir: PathBuf,
        /// DNS name or IP address the hub is reached at (repeatable): all of them.
        #[arg(long = "hub-name", required = true)]
        hub_names: Vec<String>,
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
    /// Replace the CA: the old one is kept, a new one is made, `ca-bundle.pem` holds both for
    /// the changeover, and the hub's certificate is renewed from the new CA (runbook: "Renew
    /// the CA").
    RolloverCa {
        #[arg(long)]
        dir: PathBuf,
        /// DNS name or IP address the hub is reached at (repeatable): all of them.
        #[arg(long = "hub-name", required = true)]
        hub_names: Vec<String>,
        /// Validity of the hub certificate in days (the CA gets five times as long).
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
    /// Create a new receipt-signing key (rotation): point `receipt_key` at it and restart the
    /// hub; the anchor vouches for it in the next trust list, so spokes need no change.
    NewReceiptKey {
        /// Where to write the key (0600); its public key goes to <out>.pub.
        #[arg(long)]
        out: PathBuf,
    },
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
            caravan_common::out!("CA certificate:       {}", layout.ca_cert().display());
            caravan_common::out!(
                "hub TLS certificate:  {} (names: {})",
                layout.hub_cert().display(),
                hub_names.join(", ")
            );
            caravan_common::out!(
                "hub receipt key:      {} (id {})",
                layout.receipt_key().display(),
                out.receipt_key_id
            );
            caravan_common::out!("receipt public key:   {}", out.receipt_public_key);
            caravan_common::out!(
                "anchor key:           {} (id {})",
                layout.anchor_key().display(),
                out.anchor_key_id
            );
            caravan_common::out!("anchor public key:    {}", out.anchor_public_key);
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
        PkiCommand::RenewHubCert {
            dir,
            hub_names,
            days,
        } => {
            let layout = PkiLayout::new(&dir);
            pki::renew_hub_cert(&layout, &hub_names, days)?;
            caravan_common::out!(
                "hub TLS certificate renewed: {} (names: {}); restart the hub to use it",
                layout.hub_cert().display(),
                hub_names.join(", ")
            );
        }
        PkiCommand::RolloverCa {
            dir,
            hub_names,
            days,
        } => {
            let layout = PkiLayout::new(&dir);
            let r = pki::rollover_ca(&layout, &hub_names, days)?;
            caravan_common::out!("new CA certificate:   {}", layout.ca_cert().display());
            caravan_common::out!(
                "old CA kept:          {} and {}",
                r.old_ca_cert.display(),
                r.old_ca_key.display()
            );
            caravan_common::out!(
                "both, for the change: {} (hub and spokes: tls.ca_cert)",
                r.bundle.display()
            );
            caravan_common::out!(
                "hub TLS certificate:  {} (from the new CA)",
                layout.hub_cert().display()
            );
        }
        PkiCommand::Issue(args) => {
            let layout = PkiLayout::new(&args.dir);
            let subject = match (args.participant, args.operator) {
                (Some(p), _) => Subject::Participant(p),
                (None, Some(op)) => Subject::Operator(op),
                (None, None) => anyhow::bail!("name a --participant or an --operator"),
            };
            let issued = pki::issue(&layout, &subject, args.days, args.renew)?;
            caravan_common::out!("certificate: {}", issued.cert.display());
            caravan_common::out!("key:         {}", issued.key.display());
            caravan_common::out!("serial:      {}", issued.serial);
            caravan_common::out!("sha256:      {}", issued.fingerprint);
        }
    }
    Ok(())
}
