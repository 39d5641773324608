//! The spoke's metrics (OpenMetrics text at `/metrics`, encoded by `prometheus-client`) and
//! health for probes (`/healthz`), on `metrics_listen`.
//!
//! One registry lives as long as the routes: the uploads' refusals, and under `caravan_spoke_`
//! the collectors of the store's health, the listeners and the file descriptors. The spoke's
//! state (inbox, outbox, trust list, log audit, damage, upload room) is read at each scrape
//! into a registry of that scrape's own.

use std::sync::Arc;

use axum::{
    Router,
    http::{StatusCode, header},
    routing::get,
};

use prometheus_client::{
    metrics::{counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};

use caravan_common::{
    Timestamp, fd,
    net::{Listeners, Stats},
    recovery::StoreHealth,
};

use crate::rt::{Shutdown, blocking};

use super::Api;

/// The routes: `/metrics` with the listeners' `stats`, and `/healthz`, NOT_SERVING from
/// `stop`'s change on.
pub fn router(api: Api, stats: Vec<Arc<Stats>>, stop: Shutdown) -> Router {
    let mut registry = Registry::default();
    api.outbound.register_metrics(&mut registry);
    shared(&mut registry, api.store.health().cloned(), stats);
    let registry = Arc::new(registry);
    let metrics = api.clone();
    let store_health = api.store.health().cloned();
    let damaged_store = api.store.clone();
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let api = metrics.clone();
                let registry = registry.clone();
                async move {
                    let mut now = State::read(&api).await.registry();
                    api.outbound.room_gauges(&mut now);
                    let text = caravan_common::metrics::encode(&[&registry, &now]);
                    (
                        [(header::CONTENT_TYPE, caravan_common::metrics::CONTENT_TYPE)],
                        text,
                    )
                }
            }),
        )
        // Liveness and readiness for probes: the spoke serves its national single window and
        // officers whether or not the hub is reachable (the outbox holds documents meanwhile),
        // so only shutdown, a faulted store (it can take no document in), and a store a read
        // found damaged, make it NOT_SERVING.
        .route(
            "/healthz",
            get(move || {
                let stopping = *stop.borrow();
                let fault = store_health.as_ref().and_then(|h| h.fault());
                let damage = damaged_store.damage();
                async move {
                    let (code, text) = match damage {
                        Some(damage) if !stopping => {
                            (503, format!("NOT_SERVING STORE_CORRUPT {damage}\n"))
                        }
                        _ => caravan_common::recovery::healthz(stopping, fault.as_ref()),
                    };
                    (
                        StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                        text,
                    )
                }
            }),
        )
}

/// Register, under `caravan_spoke_`, the collectors the hub has too: the store's health, the
/// listeners' connections, the file descriptors.
fn shared(registry: &mut Registry, health: Option<Arc<StoreHealth>>, listeners: Vec<Arc<Stats>>) {
    let shared = registry.sub_registry_with_prefix("caravan_spoke");
    if let Some(health) = health {
        shared.register_collector(Box::new(health));
    }
    shared.register_collector(Box::new(Listeners(listeners)));
    shared.register_collector(Box::new(fd::Descriptors));
}

/// The spoke's state, read at one scrape.
#[derive(Debug, Default)]
pub struct State {
    pub hub_connected: bool,
    pub inbox: u64,
    pub outbox: u64,
    pub trust_list_version: u64,
    pub trust_list_age_secs: i64,
    pub trust_list_fresh: bool,
    pub log_verified_entries: u64,
    pub log_alarms: u64,
    pub store_damaged: bool,
    pub payloads_corrupt: u64,
    pub store_flushes: u64,
}

impl State {
    /// Read it now. A store error leaves the store's counts at 0 rather than failing the scrape.
    pub async fn read(api: &Api) -> Self {
        let store = api.store.clone();
        let (inbox, outbox, log_alarms) = blocking(move || {
            Ok((
                store.inbox_len()?,
                store.outbox_len()?,
                store.log_alarms()?.1,
            ))
        })
        .await
        .unwrap_or((0, 0, 0));
        let now = Timestamp::now();
        let (trust_list_version, trust_list_age_secs, trust_list_fresh) =
            match api.hub.trust().current() {
                Some(h) => {
                    let age = h
                        .set
                        .info
                        .issued_at
                        .map_or(0, |t| (now.as_millis() - t.as_millis()).max(0) / 1000);
                    (h.set.info.version, age, h.set.info.is_fresh(now))
                }
                None => (0, 0, false),
            };
        Self {
            hub_connected: api.hub.connected(),
            inbox,
            outbox,
            trust_list_version,
            trust_list_age_secs,
            trust_list_fresh,
            log_verified_entries: api.hub.log().last().map_or(0, |h| h.size),
            log_alarms,
            store_damaged: api.store.damage().is_some(),
            payloads_corrupt: api.store.damaged_payloads(),
            store_flushes: api.store.flushes(),
        }
    }

    /// These values as a registry of their own, for the scrape that read them.
    pub fn registry(&self) -> Registry {
        let gauges = [
            (
                "caravan_spoke_hub_connected",
                "1 while the delivery stream to the hub is open",
                i64::from(self.hub_connected),
            ),
            (
                "caravan_spoke_inbox_documents",
                "Documents in the inbox",
                self.inbox as i64,
            ),
            (
                "caravan_spoke_outbox_documents",
                "Documents waiting in the outbox for the hub",
                self.outbox as i64,
            ),
            (
                "caravan_spoke_trust_list_version",
                "Version of the trust list held",
                self.trust_list_version as i64,
            ),
            (
                "caravan_spoke_trust_list_age_seconds",
                "Seconds since the trust list held was issued",
                self.trust_list_age_secs,
            ),
            (
                "caravan_spoke_trust_list_fresh",
                "1 while the trust list held is before its next-update time",
                i64::from(self.trust_list_fresh),
            ),
            (
                "caravan_spoke_log_verified_entries",
                "Size of the last exchange-log tree head verified consistent with all before it",
                self.log_verified_entries as i64,
            ),
            (
                "caravan_spoke_log_alarms",
                "Alarms raised about the hub's exchange log since install (failed proofs); any rise needs an operator",
                self.log_alarms as i64,
            ),
            (
                "caravan_spoke_store_damaged",
                "1 once a read found the store damaged (a record that does not decode, a payload that fails its checksum) since the spoke started: /healthz says STORE_CORRUPT until a restart",
                i64::from(self.store_damaged),
            ),
            (
                "caravan_spoke_payloads_corrupt",
                "Documents whose stored payload failed its checksum since the spoke started: never served (see the runbook)",
                self.payloads_corrupt as i64,
            ),
        ];
        let mut registry = Registry::default();
        for (name, help, value) in gauges {
            registry.register(name, help, ConstGauge::new(value));
        }
        registry.register(
            "caravan_spoke_store_flushes",
            "Durable flushes of the store since the spoke started (each one sync on redb): a batch of deliveries, or the receipts of one request, shares one",
            ConstCounter::new(self.store_flushes),
        );
        registry
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Every sample of `text`: its name with labels, and its value.
    fn samples(text: &str) -> BTreeMap<&str, f64> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (key, value) = l.rsplit_once(' ').expect("a sample line");
                (key, value.parse().expect("a number"))
            })
            .collect()
    }

    #[test]
    fn the_exposition_carries_the_state_and_the_store_health() {
        let health = Arc::new(StoreHealth::new("test store"));
        health.report("No space left on device (os error 28)");
        let mut registry = Registry::default();
        shared(&mut registry, Some(health), vec![Stats::new("nsw")]);
        let state = State {
            hub_connected: true,
            inbox: 2,
            outbox: 5,
            trust_list_version: 7,
            trust_list_fresh: true,
            log_alarms: 1,
            payloads_corrupt: 3,
            store_flushes: 11,
            ..State::default()
        };
        let text = caravan_common::metrics::encode(&[&registry, &state.registry()]);
        assert!(text.ends_with("\n# EOF\n"), "{text}");
        let s = samples(&text);
        for (key, value) in [
            ("caravan_spoke_hub_connected", 1.0),
            ("caravan_spoke_inbox_documents", 2.0),
            ("caravan_spoke_outbox_documents", 5.0),
            ("caravan_spoke_trust_list_version", 7.0),
            ("caravan_spoke_trust_list_fresh", 1.0),
            ("caravan_spoke_log_alarms", 1.0),
            ("caravan_spoke_store_damaged", 0.0),
            ("caravan_spoke_payloads_corrupt", 3.0),
            ("caravan_spoke_store_flushes_total", 11.0),
            ("caravan_spoke_store_healthy", 0.0),
            ("caravan_spoke_store_faults_total", 1.0),
            ("caravan_spoke_store_fault{reason=\"disk_full\"}", 1.0),
            ("caravan_spoke_store_fault{reason=\"io_error\"}", 0.0),
            ("caravan_spoke_connections_open{listener=\"nsw\"}", 0.0),
            (
                "caravan_spoke_connections_cut_total{listener=\"nsw\",reason=\"idle\"}",
                0.0,
            ),
        ] {
            assert_eq!(s.get(key), Some(&value), "{key}:\n{text}");
        }
        assert!(s.contains_key("caravan_spoke_fd_limit"), "{text}");
        // The state's gauges stay gauges, under the names they always had.
        assert!(
            text.contains("# TYPE caravan_spoke_payloads_corrupt gauge\n"),
            "{text}"
        );
    }
}
