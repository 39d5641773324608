//! The operator's side of the admin API: `caravan-hub admin --config admin.toml ...`.
//!
//! `admin.toml` names the hub and the operator's certificate (`caravan-hub pki issue
//! --operator NAME`):
//!
//! ```toml
//! hub_url = "https://127.0.0.1:7443"
//! hub_tls_name = "localhost"     # optional: the name in the hub's certificate
//! [tls]
//! ca_cert = "ca.pem"
//! cert = "operator.pem"
//! key = "operator.key"
//! ```

use std::{path::Path, time::Duration};

use serde::{Deserialize, Serialize};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use caravan_common::{
    Refusal, Timestamp,
    config::{ConfigError, Problems, read_toml, resolve},
    signing::PublicKey,
    trust::{TrustSet, view},
};
use caravan_proto::v1::{self, admin_client::AdminClient, trust_anchor_client::TrustAnchorClient};

/// `admin.toml` as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    /// The hub's endpoint, `https://host:port`.
    pub hub_url: String,
    /// The name the hub's certificate is checked against; defaults to the URL's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_tls_name: Option<String>,
    pub tls: AdminTls,
}

/// The operator's TLS files.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminTls {
    /// The hub's CA certificate.
    pub ca_cert: std::path::PathBuf,
    /// The operator's certificate and key (`caravan-hub pki issue --operator NAME`).
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// Why an admin command failed.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The hub refused the request, naming the rule.
    #[error("{0}")]
    Refused(Refusal),
    /// The hub could not be reached.
    #[error("hub unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Invalid(String),
}

impl From<tonic::Status> for OperatorError {
    fn from(status: tonic::Status) -> Self {
        match caravan_proto::status::from_status(&status) {
            Some(r) => Self::Refused(r),
            None => Self::Unavailable(format!("{}: {}", status.code(), status.message())),
        }
    }
}

/// A connection to the hub as an operator.
pub struct Operator {
    channel: Channel,
}

impl Operator {
    /// Read `admin.toml` and prepare the connection (made on first use).
    pub fn connect(path: &Path) -> Result<Self, OperatorError> {
        let file: AdminFile = read_toml(path)?;
        let mut problems = Problems::default();
        let read = |field: &str, p: &Path, problems: &mut Problems| {
            let full = resolve(path, p);
            problems.check(
                field,
                std::fs::read(&full).map_err(|e| format!("{}: {e}", full.display())),
            )
        };
        let ca = read("tls.ca_cert", &file.tls.ca_cert, &mut problems);
        let cert = read("tls.cert", &file.tls.cert, &mut problems);
        let key = read("tls.key", &file.tls.key, &mut problems);
        let (ca, cert, key) = problems.finish(path, || {
            (
                ca.unwrap_or_default(),
                cert.unwrap_or_default(),
                key.unwrap_or_default(),
            )
        })?;
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca))
            .identity(Identity::from_pem(cert, key));
        if let Some(name) = file.hub_tls_name {
            tls = tls.domain_name(name);
        }
        let channel = Endpoint::from_shared(file.hub_url.clone())
            .and_then(|e| e.tls_config(tls))
            .map_err(|e| OperatorError::Invalid(format!("hub_url {}: {e}", file.hub_url)))?
            .connect_timeout(Duration::from_secs(5))
            .connect_lazy();
        Ok(Self { channel })
    }

    pub fn admin(&self) -> AdminClient<Channel> {
        AdminClient::new(self.channel.clone())
    }

    /// The hub's current trust list, as the hub publishes it (checked against the hub's own
    /// anchor key id, decoded without an outside pin: the operator trusts their own hub).
    pub async fn trust_list(&self) -> Result<TrustSet, OperatorError> {
        let signed = TrustAnchorClient::new(self.channel.clone())
            .current(v1::CurrentTrustListRequest {})
            .await?
            .into_inner();
        let list = <v1::TrustList as prost::Message>::decode(signed.body.as_slice())
            .map_err(|e| OperatorError::Invalid(format!("trust list does not decode: {e}")))?;
        caravan_proto::trust_list::trust_set(&list).map_err(OperatorError::Refused)
    }

    /// The trust list as people and scripts read it.
    pub async fn trust_list_view(&self) -> Result<view::TrustListView, OperatorError> {
        Ok(view::view(&self.trust_list().await?, Timestamp::now()))
    }
}

/// Read a public key file: the base64 text `caravan-spoke keygen` writes to `<key>.pub`.
pub fn read_public_key(path: &Path) -> Result<PublicKey, OperatorError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| OperatorError::Invalid(format!("{}: {e}", path.display())))?;
    PublicKey::from_base64(text.trim())
        .map_err(|e| OperatorError::Invalid(format!("{}: {e}", path.display())))
}
