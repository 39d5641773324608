//! What `/metrics` and the operators' dashboard read: the counters, the listeners, the store's
//! health, and the store's state at the time of reading, as one OpenMetrics exposition.

use std::sync::Arc;

use caravan_common::{
    Timestamp, fd,
    net::{Listeners, Stats},
};

use crate::{
    log::Heads,
    metrics::{Metrics, StoreGauges},
    registry::Registry,
    store::Store,
};

/// The counters and the store, as the metrics page and the dashboard read them.
#[derive(Clone)]
pub struct Observed {
    pub metrics: Arc<Metrics>,
    pub store: Store,
    pub heads: Arc<Heads>,
    pub registry: Arc<Registry>,
    /// Everything `/metrics` shows but the store's state: the hub's metrics, and under
    /// `caravan_hub_` the listeners' connections, the file descriptors and the store's health.
    exposition: Arc<prometheus_client::registry::Registry>,
}

impl Observed {
    /// `listeners`: the listeners' connection counts, for `/metrics`.
    pub fn new(
        metrics: Arc<Metrics>,
        store: Store,
        heads: Arc<Heads>,
        registry: Arc<Registry>,
        listeners: Vec<Arc<Stats>>,
    ) -> Self {
        let mut exposition = prometheus_client::registry::Registry::default();
        metrics.register(&mut exposition);
        let shared = exposition.sub_registry_with_prefix("caravan_hub");
        if let Some(health) = store.backend().health() {
            shared.register_collector(Box::new(health));
        }
        shared.register_collector(Box::new(Listeners(listeners)));
        shared.register_collector(Box::new(fd::Descriptors));
        Self {
            metrics,
            store,
            heads,
            registry,
            exposition: Arc::new(exposition),
        }
    }

    /// Queue depths, store size, log size and trust-list age, now. A store error leaves the
    /// store's gauges out (logged) rather than failing the scrape.
    pub async fn gauges(&self) -> StoreGauges {
        let payloads_corrupt = self.store.backend().damaged_payloads();
        let (queue_depths, store_bytes) = self
            .store
            .run(|b| Ok((b.queue_depths()?, b.size_on_disk()?)))
            .await
            .unwrap_or_else(|e| {
                tracing::error!(cause = %e, "cannot read the store's gauges");
                (Vec::new(), 0)
            });
        let list = self.registry.snapshot().list.clone();
        StoreGauges {
            queue_depths,
            store_bytes,
            payloads_corrupt,
            log_entries: self.heads.current().tree_size,
            trust_list_version: list.version,
            trust_list_age_secs: (Timestamp::now().as_millis() - list.issued_at_ms).max(0) / 1000,
        }
    }

    /// The OpenMetrics text of `/metrics` (served as [`caravan_common::metrics::CONTENT_TYPE`]).
    pub async fn metrics_text(&self) -> String {
        let now = self.gauges().await.registry();
        caravan_common::metrics::encode(&[&self.exposition, &now])
    }
}
