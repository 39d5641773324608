//! The spoke's metrics (Prometheus text at `/metrics`) and health for probes (`/healthz`),
//! on `metrics_listen`.

use std::sync::Arc;

use axum::{
    Router,
    http::{StatusCode, header},
    routing::get,
};

use caravan_common::{
    Timestamp,
    net::{self, Stats},
};

use crate::rt::{Shutdown, blocking};

use super::Api;

/// The routes: `/metrics` with the listeners' `stats`, and `/healthz`, NOT_SERVING from
/// `stop`'s change on.
pub fn router(api: Api, stats: Vec<Arc<Stats>>, stop: Shutdown) -> Router {
    let metrics = api.clone();
    let store_health = api.store.health().cloned();
    let damaged_store = api.store.clone();
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let api = metrics.clone();
                let stats = stats.clone();
                async move {
                    let mut text = text(&api).await;
                    net::render("caravan_spoke", &stats, &mut text);
                    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
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

/// Prometheus text exposition of the spoke's state.
pub async fn text(api: &Api) -> String {
    let store = api.store.clone();
    let (inbox, outbox, alarms) = blocking(move || {
        Ok((
            store.inbox_len()?,
            store.outbox_len()?,
            store.log_alarms()?.1,
        ))
    })
    .await
    .unwrap_or((0, 0, 0));
    let now = Timestamp::now();
    let (version, age, fresh) = match api.hub.trust().current() {
        Some(h) => {
            let age = h
                .set
                .info
                .issued_at
                .map_or(0, |t| (now.as_millis() - t.as_millis()).max(0) / 1000);
            (h.set.info.version, age, u8::from(h.set.info.is_fresh(now)))
        }
        None => (0, 0, 0),
    };
    let gauges = [
        (
            "caravan_spoke_hub_connected",
            "1 while the delivery stream to the hub is open.",
            i64::from(api.hub.connected()),
        ),
        (
            "caravan_spoke_inbox_documents",
            "Documents in the inbox.",
            inbox as i64,
        ),
        (
            "caravan_spoke_outbox_documents",
            "Documents waiting in the outbox for the hub.",
            outbox as i64,
        ),
        (
            "caravan_spoke_trust_list_version",
            "Version of the trust list held.",
            version as i64,
        ),
        (
            "caravan_spoke_trust_list_age_seconds",
            "Seconds since the trust list held was issued.",
            age,
        ),
        (
            "caravan_spoke_trust_list_fresh",
            "1 while the trust list held is before its next-update time.",
            i64::from(fresh),
        ),
        (
            "caravan_spoke_log_verified_entries",
            "Size of the last exchange-log tree head verified consistent with all before it.",
            api.hub.log().last().map_or(0, |h| h.size as i64),
        ),
        (
            "caravan_spoke_log_alarms",
            "Alarms raised about the hub's exchange log since install (failed proofs); any rise needs an operator.",
            alarms as i64,
        ),
        (
            "caravan_spoke_store_damaged",
            "1 once a read found the store damaged (a record that does not decode, a payload that fails its checksum) since the spoke started: /healthz says STORE_CORRUPT until a restart.",
            i64::from(api.store.damage().is_some()),
        ),
        (
            "caravan_spoke_payloads_corrupt",
            "Documents whose stored payload failed its checksum since the spoke started: never served (see the runbook).",
            api.store.damaged_payloads() as i64,
        ),
    ];
    let mut text: String = gauges
        .iter()
        .map(|(name, help, value)| {
            format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n")
        })
        .collect();
    if let Some(health) = api.store.health() {
        text.push_str(&health.render_metrics("caravan_spoke"));
    }
    text.push_str(&api.outbound.upload_metrics());
    text
}
