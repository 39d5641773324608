//! What the exchange did, per corridor and document type, with latencies: rendered in the
//! Prometheus text format and read back by the operator's dashboard.
//!
//! Hand-rolled on atomics rather than on a metrics crate because the dashboard reads the same
//! numbers back (volumes and latency quantiles per corridor), which the crates' write-only
//! families do not offer; the label values are participant ids, document types and refusal
//! codes, which need no escaping.

use std::{
    collections::{BTreeMap, VecDeque},
    fmt::Write,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
};

use serde::Serialize;

use caravan_common::{ParticipantId, RefusalCode, Timestamp};

/// Upper bounds of the latency buckets, in seconds: from half a millisecond (a receipt on an
/// idle hub) to an hour (a document waiting for a recipient that was offline).
const BUCKETS: [f64; 18] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0, 3600.0,
];

/// A latency histogram with Prometheus' cumulative buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, seconds: f64) {
        let seconds = seconds.max(0.0);
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The bucket bound under which a fraction `q` of the observations fall (`None`: no
    /// observation; `+Inf`: above the last bucket). An upper bound, as Prometheus' own
    /// `histogram_quantile` would interpolate within the bucket.
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = (q * count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            seen += bucket.load(Ordering::Relaxed);
            if seen >= rank {
                return Some(*bound);
            }
        }
        Some(f64::INFINITY)
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.count();
        let braces = |l: &str| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{{{l}}}")
            }
        };
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum{} {}",
            braces(labels),
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
    }
}

/// Who sends what to whom.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Corridor {
    pub sender: ParticipantId,
    pub recipient: ParticipantId,
    pub document_type: String,
}

impl Corridor {
    pub fn of(message: &crate::store::Settled) -> Self {
        Self {
            sender: message.sender,
            recipient: message.recipient,
            document_type: message.document_type.clone(),
        }
    }

    fn labels(&self) -> String {
        format!(
            "sender=\"{}\",recipient=\"{}\",document_type=\"{}\"",
            self.sender, self.recipient, self.document_type
        )
    }
}

/// What happened to documents in one corridor.
#[derive(Debug, Default)]
pub struct CorridorStats {
    pub accepted: AtomicU64,
    pub duplicates: AtomicU64,
    pub delivered: AtomicU64,
    pub acknowledged: AtomicU64,
    pub rejected: AtomicU64,
    pub expired: AtomicU64,
    /// From acceptance to the last frame streamed to the recipient.
    pub delivery: Histogram,
    /// From acceptance to the recipient's acknowledgement recorded: end to end, as the hub
    /// sees it.
    pub acknowledgement: Histogram,
}

/// Document outcomes counted per corridor.
#[derive(Debug, Clone, Copy)]
pub enum Event {
    Accepted,
    Duplicate,
    Delivered,
    Acknowledged,
    Rejected,
    Expired,
}

/// A refusal as the dashboard lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RecentRefusal {
    pub at: Timestamp,
    pub op: String,
    pub caller: String,
    pub code: RefusalCode,
    pub detail: String,
}

/// How many refusals the dashboard keeps.
const RECENT_REFUSALS: usize = 50;

/// What is read from the store at scrape time.
#[derive(Debug, Default)]
pub struct StoreGauges {
    pub queue_depths: Vec<(ParticipantId, u64)>,
    pub store_bytes: u64,
    /// Messages whose stored payload failed its checksum since the hub started (held back).
    pub payloads_corrupt: u64,
    pub log_entries: u64,
    pub trust_list_version: u64,
    pub trust_list_age_secs: i64,
}

/// Process-wide metrics; cheap to update from any task.
#[derive(Debug)]
pub struct Metrics {
    corridors: RwLock<BTreeMap<Corridor, Arc<CorridorStats>>>,
    refused: Vec<AtomicU64>,
    recent: Mutex<VecDeque<RecentRefusal>>,
    flushes: AtomicU64,
    /// Streamed submissions turned away for want of room in the payload budget.
    pub busy: AtomicU64,
    /// From a submission's arrival to its durable receipt (verification, store, flush).
    pub accept: Histogram,
    /// One flush of the store.
    pub flush: Histogram,
    /// Delivery streams open, per participant: the spokes connected.
    streams: Mutex<BTreeMap<ParticipantId, i64>>,
    open_streams: AtomicI64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            corridors: RwLock::default(),
            refused: RefusalCode::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            recent: Mutex::default(),
            flushes: AtomicU64::new(0),
            busy: AtomicU64::new(0),
            accept: Histogram::default(),
            flush: Histogram::default(),
            streams: Mutex::default(),
            open_streams: AtomicI64::new(0),
        }
    }
}

impl Metrics {
    /// The counters of `corridor`, created on first use.
    pub fn corridor(&self, corridor: &Corridor) -> Arc<CorridorStats> {
        if let Some(stats) = self
            .corridors
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(corridor)
        {
            return stats.clone();
        }
        self.corridors
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(corridor.clone())
            .or_default()
            .clone()
    }

    pub fn count(&self, corridor: &Corridor, event: Event) {
        let stats = self.corridor(corridor);
        let counter = match event {
            Event::Accepted => &stats.accepted,
            Event::Duplicate => &stats.duplicates,
            Event::Delivered => &stats.delivered,
            Event::Acknowledged => &stats.acknowledged,
            Event::Rejected => &stats.rejected,
            Event::Expired => &stats.expired,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn flushed(&self, seconds: f64) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.flush.observe(seconds);
    }

    /// Count a refusal and keep it for the dashboard; returns the new total for its code.
    pub fn refused(
        &self,
        op: &str,
        caller: Option<ParticipantId>,
        refusal: &caravan_common::Refusal,
    ) -> u64 {
        {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            if recent.len() == RECENT_REFUSALS {
                recent.pop_front();
            }
            recent.push_back(RecentRefusal {
                at: Timestamp::now(),
                op: op.to_owned(),
                caller: caller.map(|c| c.to_string()).unwrap_or_default(),
                code: refusal.code,
                detail: refusal.detail.clone(),
            });
        }
        let index = RefusalCode::ALL
            .iter()
            .position(|c| *c == refusal.code)
            .unwrap_or(0);
        self.refused[index].fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A delivery stream opened for `participant`; it counts until the guard is dropped.
    pub fn stream_opened(self: &Arc<Self>, participant: ParticipantId) -> StreamGuard {
        *self
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(participant)
            .or_default() += 1;
        self.open_streams.fetch_add(1, Ordering::Relaxed);
        StreamGuard(self.clone(), participant)
    }

    /// Participants with a delivery stream open now.
    pub fn connected(&self) -> Vec<ParticipantId> {
        self.streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(p, _)| *p)
            .collect()
    }

    /// Every corridor that saw a document, in order.
    pub fn corridors(&self) -> Vec<(Corridor, Arc<CorridorStats>)> {
        self.corridors
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(c, s)| (c.clone(), s.clone()))
            .collect()
    }

    /// The last refusals, newest first.
    pub fn recent_refusals(&self) -> Vec<RecentRefusal> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.iter().rev().cloned().collect()
    }

    /// Prometheus text exposition.
    pub fn render(&self, store: &StoreGauges) -> String {
        let mut out = String::new();
        let header = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        let corridors = self.corridors();
        type Pick = fn(&CorridorStats) -> &AtomicU64;
        let counters: [(&str, &str, Pick); 6] = [
            ("accepted", "Documents accepted and durably stored.", |s| {
                &s.accepted
            }),
            (
                "duplicate",
                "Resends answered with the original receipt.",
                |s| &s.duplicates,
            ),
            ("delivered", "Documents streamed to their recipient.", |s| {
                &s.delivered
            }),
            (
                "acknowledged",
                "Documents the recipient verified and stored.",
                |s| &s.acknowledged,
            ),
            ("rejected", "Documents the recipient refused.", |s| {
                &s.rejected
            }),
            (
                "expired",
                "Documents not settled within their time to live.",
                |s| &s.expired,
            ),
        ];
        for (what, help, pick) in counters {
            let name = format!("caravan_hub_documents_{what}_total");
            header(&mut out, &name, "counter", help);
            for (corridor, stats) in &corridors {
                let _ = writeln!(
                    out,
                    "{name}{{{}}} {}",
                    corridor.labels(),
                    pick(stats).load(Ordering::Relaxed)
                );
            }
        }
        type Latency = fn(&CorridorStats) -> &Histogram;
        let latencies: [(&str, &str, Latency); 2] = [
            (
                "caravan_hub_delivery_seconds",
                "From acceptance to the document streamed to its recipient.",
                |s| &s.delivery,
            ),
            (
                "caravan_hub_acknowledgement_seconds",
                "From acceptance to the recipient's acknowledgement: end to end, as the hub sees it.",
                |s| &s.acknowledgement,
            ),
        ];
        for (name, help, pick) in latencies {
            header(&mut out, name, "histogram", help);
            for (corridor, stats) in &corridors {
                pick(stats).render(&mut out, name, &corridor.labels());
            }
        }
        for (name, help, histogram) in [
            (
                "caravan_hub_accept_seconds",
                "From a submission's arrival to its durable receipt (verification, store, flush).",
                &self.accept,
            ),
            (
                "caravan_hub_store_flush_seconds",
                "One durable flush of the store.",
                &self.flush,
            ),
        ] {
            header(&mut out, name, "histogram", help);
            histogram.render(&mut out, name, "");
        }
        let name = "caravan_hub_requests_refused_total";
        header(&mut out, name, "counter", "Requests refused, by reason.");
        for (code, counter) in RefusalCode::ALL.iter().zip(&self.refused) {
            let _ = writeln!(
                out,
                "{name}{{reason=\"{code}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        let name = "caravan_hub_store_flushes_total";
        header(&mut out, name, "counter", "Durable flushes of the store.");
        let _ = writeln!(out, "{name} {}", self.flushes.load(Ordering::Relaxed));
        let name = "caravan_hub_submissions_busy_total";
        header(
            &mut out,
            name,
            "counter",
            "Streamed submissions turned away (RESOURCE_EXHAUSTED, retried by the sender) for want of room in payload_in_flight_mib.",
        );
        let _ = writeln!(out, "{name} {}", self.busy.load(Ordering::Relaxed));
        let name = "caravan_hub_delivery_streams";
        header(
            &mut out,
            name,
            "gauge",
            "Delivery streams open (spokes connected).",
        );
        let _ = writeln!(out, "{name} {}", self.open_streams.load(Ordering::Relaxed));
        let name = "caravan_hub_spoke_connected";
        header(
            &mut out,
            name,
            "gauge",
            "1 while the participant has a delivery stream open.",
        );
        for (participant, n) in self
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "{name}{{participant=\"{participant}\"}} {}",
                i64::from(*n > 0)
            );
        }
        let name = "caravan_hub_queue_documents";
        header(
            &mut out,
            name,
            "gauge",
            "Documents waiting for their recipient, per recipient.",
        );
        for (recipient, n) in &store.queue_depths {
            let _ = writeln!(out, "{name}{{recipient=\"{recipient}\"}} {n}");
        }
        for (name, help, value) in [
            (
                "caravan_hub_store_bytes",
                "Bytes the store takes on disk.",
                store.store_bytes as i64,
            ),
            (
                "caravan_hub_log_entries",
                "Entries in the exchange log (size of the last signed tree head).",
                store.log_entries as i64,
            ),
            (
                "caravan_hub_trust_list_version",
                "Version of the trust list in force.",
                store.trust_list_version as i64,
            ),
            (
                "caravan_hub_trust_list_age_seconds",
                "Seconds since the trust list in force was issued.",
                store.trust_list_age_secs,
            ),
        ] {
            header(&mut out, name, "gauge", help);
            let _ = writeln!(out, "{name} {value}");
        }
        let name = "caravan_hub_payloads_corrupt_total";
        header(
            &mut out,
            name,
            "counter",
            "Messages whose stored payload failed its checksum since the hub started: held back, never delivered (see the runbook).",
        );
        let _ = writeln!(out, "{name} {}", store.payloads_corrupt);
        out
    }
}

/// Counts an open delivery stream down when dropped.
pub struct StreamGuard(Arc<Metrics>, ParticipantId);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if let Some(n) = self
            .0
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&self.1)
        {
            *n -= 1;
        }
        self.0.open_streams.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_render_cumulative_buckets_and_bound_quantiles() {
        let h = Histogram::default();
        assert_eq!(h.quantile_bound(0.5), None);
        for s in [0.0004, 0.003, 0.003, 0.2, 7200.0] {
            h.observe(s);
        }
        assert_eq!(h.quantile_bound(0.5), Some(0.005));
        assert_eq!(h.quantile_bound(0.8), Some(0.25));
        assert_eq!(h.quantile_bound(1.0), Some(f64::INFINITY));
        let mut out = String::new();
        h.render(&mut out, "x", "a=\"b\"");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.0005\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.005\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"3600\"} 4\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"+Inf\"} 5\n"), "{out}");
        assert!(out.contains("x_count{a=\"b\"} 5\n"), "{out}");
    }

    #[test]
    fn corridors_and_streams_are_counted_apart() {
        let m = Arc::new(Metrics::default());
        let kz_cn = Corridor {
            sender: "KZ".parse().unwrap(),
            recipient: "CN".parse().unwrap(),
            document_type: "e-co".into(),
        };
        m.count(&kz_cn, Event::Accepted);
        m.count(&kz_cn, Event::Accepted);
        m.corridor(&kz_cn).acknowledgement.observe(0.02);
        let guard = m.stream_opened("CN".parse().unwrap());
        let text = m.render(&StoreGauges {
            queue_depths: vec![("CN".parse().unwrap(), 3)],
            ..Default::default()
        });
        for line in [
            "caravan_hub_documents_accepted_total{sender=\"KZ\",recipient=\"CN\",document_type=\"e-co\"} 2",
            "caravan_hub_acknowledgement_seconds_count{sender=\"KZ\",recipient=\"CN\",document_type=\"e-co\"} 1",
            "caravan_hub_spoke_connected{participant=\"CN\"} 1",
            "caravan_hub_queue_documents{recipient=\"CN\"} 3",
            "caravan_hub_delivery_streams 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        drop(guard);
        assert!(m.connected().is_empty());
        assert!(
            m.render(&StoreGauges::default())
                .contains("caravan_hub_spoke_connected{participant=\"CN\"} 0")
        );
    }
}
