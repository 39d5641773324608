//! The operator's side of the admin API: `caravan-hub admin --config admin.toml ...`.
//!
//! `admin.toml` names the hub and the operator's certificate (`caravan-hub pki issue
//! --operator NAME`):
//!
//! ```toml
//! hub_url = "https://127.0.0.1:7443"
//! # or, for a hub's replicas: hub_urls = ["https://hub-a:7443", "https://hub-b:7443"]
//! #   (the first that accepts a connection is used)
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
    config::{ConfigError, Problems, TlsFiles, read_toml},
    signing::PublicKey,
    trust::{TrustSet, view},
};
use caravan_proto::v1::{self, admin_client::AdminClient, trust_anchor_client::TrustAnchorClient};

/// `admin.toml` as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    /// The hub's endpoint, `https://host:port`; or give `hub_urls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_url: Option<String>,
    /// The endpoints of one hub's replicas, in order: a command uses the first that accepts a
    /// connection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hub_urls: Vec<String>,
    /// The name the hub's certificate is checked against; defaults to the URL's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_tls_name: Option<String>,
    /// The hub's CA, and the operator's certificate and key (`pki issue --operator NAME`).
    pub tls: TlsFiles,
}

/// Why an admin command failed.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The hub refused the request, naming the rule.
    #[error("{0}")]
    Refused(Refusal),
    /// The hub could not be reached, or failed the request without a refusal: its status,
    /// code and message.
    #[error("hub unavailable: {}: {}", .0.code(), .0.message())]
    Unavailable(Box<tonic::Status>),
    /// `hub_url` in admin.toml is not a usable endpoint.
    #[error("hub_url {url}")]
    HubUrl {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
    /// The hub's trust list does not decode.
    #[error("trust list does not decode")]
    TrustList(#[source] prost::DecodeError),
    /// A public key file could not be read.
    #[error("{path}")]
    KeyFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A public key file does not hold a public key.
    #[error("{path}")]
    Key {
        path: String,
        #[source]
        source: caravan_common::signing::KeyError,
    },
}

impl From<tonic::Status> for OperatorError {
    fn from(status: tonic::Status) -> Self {
        match caravan_proto::status::from_status(&status) {
            Some(r) => Self::Refused(r),
            None => Self::Unavailable(Box::new(status)),
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
        let urls = caravan_common::config::hub_addresses(
            file.hub_url.as_deref(),
            &file.hub_urls,
            &mut problems,
        );
        let material = file.tls.read(path, &mut problems);
        let material = problems.finish(path, || material.expect("checked"))?;
        let url = first_answering(&urls);
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(material.ca_cert))
            .identity(Identity::from_pem(material.cert, material.key));
        if let Some(name) = file.hub_tls_name {
            tls = tls.domain_name(name);
        }
        let channel = Endpoint::from_shared(url.clone())
            .and_then(|e| e.tls_config(tls))
            .map_err(|source| OperatorError::HubUrl {
                url: url.clone(),
                source,
            })?
            .connect_timeout(Duration::from_secs(5))
            .connect_lazy();
        Ok(Self { channel })
    }

    pub fn admin(&self) -> AdminClient<Channel> {
        AdminClient::new(self.channel.clone())
    }

    /// The hub's current signed trust list, as it publishes it (unchecked: see
    /// [`Operator::trust_list`], or open it with the anchor's public key).
    pub async fn signed_trust_list(&self) -> Result<v1::SignedTrustList, OperatorError> {
        Ok(TrustAnchorClient::new(self.channel.clone())
            .current(v1::CurrentTrustListRequest {})
            .await?
            .into_inner())
    }

    /// The hub's current trust list, as the hub publishes it (checked against the hub's own
    /// anchor key id, decoded without an outside pin: the operator trusts their own hub).
    pub async fn trust_list(&self) -> Result<TrustSet, OperatorError> {
        let signed = self.signed_trust_list().await?;
        let list = <v1::TrustList as prost::Message>::decode(signed.body.as_slice())
            .map_err(OperatorError::TrustList)?;
        caravan_proto::trust_list::trust_set(&list).map_err(OperatorError::Refused)
    }

    /// The trust list as people and scripts read it.
    pub async fn trust_list_view(&self) -> Result<view::TrustListView, OperatorError> {
        Ok(view::view(&self.trust_list().await?, Timestamp::now()))
    }
}

/// Of the hub's addresses, the first whose host accepts a TCP connection within a second
/// (the others may be replicas that are down); the first when only one is given or none
/// answers, so that the command fails naming it.
fn first_answering(urls: &[String]) -> String {
    use std::net::{TcpStream, ToSocketAddrs};
    let answers = |url: &String| {
        let Ok(uri) = url.parse::<tonic::transport::Uri>() else {
            return false;
        };
        let (Some(host), port) = (uri.host(), uri.port_u16().unwrap_or(443)) else {
            return false;
        };
        (host.trim_start_matches('[').trim_end_matches(']'), port)
            .to_socket_addrs()
            .map(|mut addrs| {
                addrs.any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
            })
            .unwrap_or(false)
    };
    match urls {
        [only] => only.clone(),
        _ => urls
            .iter()
            .find(|u| answers(u))
            .or(urls.first())
            .cloned()
            .unwrap_or_default(),
    }
}

/// Read a public key file: the base64 text `caravan-spoke keygen` writes to `<key>.pub`.
pub fn read_public_key(path: &Path) -> Result<PublicKey, OperatorError> {
    let text = std::fs::read_to_string(path).map_err(|source| OperatorError::KeyFile {
        path: path.display().to_string(),
        source,
    })?;
    PublicKey::from_base64(text.trim()).map_err(|source| OperatorError::Key {
        path: path.display().to_string(),
        source,
    })
}
