//! Counters of what the exchange did, by outcome. Rendered in the Prometheus text format.

use std::{
    fmt::Write,
    sync::atomic::{AtomicU64, Ordering},
};

use caravan_common::RefusalCode;

/// Process-wide counters; cheap to bump from any task.
#[derive(Debug)]
pub struct Metrics {
    accepted: AtomicU64,
    duplicates: AtomicU64,
    delivered: AtomicU64,
    acknowledged: AtomicU64,
    rejected: AtomicU64,
    expired: AtomicU64,
    flushes: AtomicU64,
    refused: Vec<AtomicU64>,
    /// Delivery streams open now: spokes connected.
    pub streams: std::sync::atomic::AtomicI64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            accepted: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            acknowledged: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            refused: RefusalCode::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            streams: std::sync::atomic::AtomicI64::new(0),
        }
    }
}

/// The outcomes counted.
#[derive(Debug, Clone, Copy)]
pub enum Event {
    Accepted,
    Duplicate,
    Delivered,
    Acknowledged,
    Rejected,
    Expired,
    Flush,
}

impl Metrics {
    pub fn count(&self, event: Event) {
        let counter = match event {
            Event::Accepted => &self.accepted,
            Event::Duplicate => &self.duplicates,
            Event::Delivered => &self.delivered,
            Event::Acknowledged => &self.acknowledged,
            Event::Rejected => &self.rejected,
            Event::Expired => &self.expired,
            Event::Flush => &self.flushes,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Count a refusal; returns the new total for its code.
    pub fn refused(&self, code: RefusalCode) -> u64 {
        let index = RefusalCode::ALL
            .iter()
            .position(|c| *c == code)
            .expect("every code is listed");
        self.refused[index].fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let simple = [
            (
                "caravan_hub_documents_accepted_total",
                "Documents accepted and durably stored.",
                &self.accepted,
            ),
            (
                "caravan_hub_documents_duplicate_total",
                "Resends answered with the original receipt.",
                &self.duplicates,
            ),
            (
                "caravan_hub_documents_delivered_total",
                "Documents streamed to their recipient.",
                &self.delivered,
            ),
            (
                "caravan_hub_documents_acknowledged_total",
                "Documents the recipient verified and stored.",
                &self.acknowledged,
            ),
            (
                "caravan_hub_documents_rejected_total",
                "Documents the recipient refused.",
                &self.rejected,
            ),
            (
                "caravan_hub_documents_expired_total",
                "Documents not settled within their time to live.",
                &self.expired,
            ),
            (
                "caravan_hub_store_flushes_total",
                "Durable flushes of the store.",
                &self.flushes,
            ),
        ];
        for (name, help, counter) in simple {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        let streams = self.streams.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP caravan_hub_delivery_streams Delivery streams open (spokes connected).\n# TYPE caravan_hub_delivery_streams gauge\ncaravan_hub_delivery_streams {streams}"
        );
        let name = "caravan_hub_requests_refused_total";
        let _ = writeln!(
            out,
            "# HELP {name} Requests refused, by reason.\n# TYPE {name} counter"
        );
        for (code, counter) in RefusalCode::ALL.iter().zip(&self.refused) {
            let _ = writeln!(
                out,
                "{name}{{reason=\"{code}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        out
    }
}
