//! What the metrics page and the operators' dashboard read: the counters, and the store's
//! state at the time of reading.

use std::sync::Arc;

use caravan_common::{
    Timestamp,
    net::{self, Stats},
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
    /// The listeners' connection counts, for `/metrics`.
    pub listeners: Vec<Arc<Stats>>,
}

impl Observed {
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

    /// The Prometheus text of `/metrics`: the hub's metrics, the store's health, the
    /// listeners' connections.
    pub async fn metrics_text(&self) -> String {
        let mut text = self.metrics.render(&self.gauges().await);
        if let Some(health) = self.store.backend().health() {
            text.push_str(&health.render_metrics("caravan_hub"));
        }
        net::render("caravan_hub", &self.listeners, &mut text);
        text
    }
}
