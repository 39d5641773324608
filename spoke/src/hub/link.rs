//! The channel to the hub, over mutual TLS, to one address or to one of several: the
//! addresses of one hub's replicas (`hub_urls`), all active on one database. The channel uses
//! one address at a time and moves to the next when the hub cannot be reached there; a request
//! under way when it moves is answered by the spoke's usual retry, with the same message id.
//!
//! One address is a plain channel that reconnects by itself. Several are a channel over a
//! balancer holding exactly one of them, which [`HubLink::failed`] swaps for the next: every
//! client made from the channel (exchange, trust list) moves with it.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::mpsc::Sender;
use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, channel::Change,
};
use tracing::{info, warn};

use crate::config::Config;

/// How many changes the balancer's queue holds (one swap is two).
const CHANGES: usize = 16;

/// The channel and, with several addresses, the means to move it.
#[derive(Clone)]
pub struct HubLink {
    pub channel: Channel,
    failover: Option<Arc<Failover>>,
}

struct Failover {
    urls: Vec<String>,
    endpoints: Vec<Endpoint>,
    /// The address in use.
    current: Mutex<usize>,
    changes: Sender<Change<usize, Endpoint>>,
}

/// The endpoint of `url`, with the spoke's TLS identity and connection settings.
fn endpoint(config: &Config, url: &str) -> Result<Endpoint, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&config.tls.ca_cert))
        .identity(Identity::from_pem(&config.tls.cert, &config.tls.key));
    if let Some(name) = &config.hub_tls_name {
        tls = tls.domain_name(name.clone());
    }
    Ok(Endpoint::from_shared(url.to_owned())?
        .tls_config(tls)?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true))
}

/// Whether a failed call says the hub could not be reached (or could not serve) at the
/// address, rather than refusing the request: then another replica may do better.
pub fn unreachable(status: &tonic::Status) -> bool {
    use tonic::Code::*;
    matches!(
        status.code(),
        Unavailable | Unknown | DeadlineExceeded | Cancelled
    )
}

impl HubLink {
    /// The link to the hub at the config's address(es); it connects on first use. Call it
    /// within the runtime (several addresses spawn the balancer's task).
    pub fn new(config: &Config) -> Result<Self, tonic::transport::Error> {
        let endpoints = config
            .hub_urls
            .iter()
            .map(|url| endpoint(config, url))
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.len() == 1 {
            return Ok(Self {
                channel: endpoints[0].connect_lazy(),
                failover: None,
            });
        }
        let (channel, changes) = Channel::balance_channel(CHANGES);
        changes
            .try_send(Change::Insert(0, endpoints[0].clone()))
            .expect("a new queue has room");
        Ok(Self {
            channel,
            failover: Some(Arc::new(Failover {
                urls: config.hub_urls.clone(),
                endpoints,
                current: Mutex::new(0),
                changes,
            })),
        })
    }

    /// Which address is in use (0 with one): what an attempt reports to [`HubLink::failed`].
    pub fn current(&self) -> usize {
        self.failover
            .as_ref()
            .map_or(0, |f| *f.current.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// An attempt begun on address `seen` could not reach the hub: move to the next address,
    /// unless another attempt moved already (so two stages failing at once skip nothing).
    pub async fn failed(&self, seen: usize, why: &str) {
        let Some(f) = &self.failover else { return };
        let (from, to) = {
            let mut current = f.current.lock().unwrap_or_else(|e| e.into_inner());
            if *current != seen {
                return;
            }
            let to = (seen + 1) % f.endpoints.len();
            *current = to;
            (seen, to)
        };
        warn!(from = %f.urls[from], to = %f.urls[to], why, "the hub cannot be reached at this address; moving to the next");
        // The new address first, so requests never wait on an empty balancer.
        let inserted = f
            .changes
            .send(Change::Insert(to, f.endpoints[to].clone()))
            .await;
        let removed = f.changes.send(Change::Remove(from)).await;
        if inserted.is_err() || removed.is_err() {
            info!("the hub channel is closed; not moving");
        }
    }
}
