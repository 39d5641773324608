//! What the exchange did, per corridor and document type, with latencies: typed metrics
//! (`prometheus-client`) registered for `/metrics`, and read back by the operators' dashboard.
//!
//! Every counter and histogram is a member of a registered family; each corridor keeps handles
//! to its own members, so counting a document is a read lock on the corridor map (as before)
//! and atomic adds, and the dashboard reads the same numbers back (volumes and latency
//! quantiles per corridor). The latency [`Histogram`] is this module's own, on atomics and
//! encoded by the crate's histogram encoder: the crate's histogram takes a lock per
//! observation and gives no counts back. Label values are participant ids, document types and
//! refusal codes. What is read from the store at scrape time ([`StoreGauges`]) goes into a
//! registry made for that scrape.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet},
    metrics::{
        MetricType, TypedMetric,
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::{ConstGauge, Gauge},
    },
    registry::Registry,
};
use serde::Serialize;

use caravan_common::{ParticipantId, RefusalCode, Timestamp};

/// Upper bounds of the latency buckets, in seconds: from half a millisecond (a receipt on an
/// idle hub) to an hour (a document waiting for a recipient that was offline).
const BUCKETS: [f64; 18] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0, 3600.0,
];

/// A latency histogram with Prometheus' buckets ([`BUCKETS`], then `+Inf`); clones share the
/// counts.
#[derive(Debug, Clone, Default)]
pub struct Histogram(Arc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    /// Observations per bucket (not cumulative), the last above every bound.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, seconds: f64) {
        let seconds = seconds.max(0.0);
        let i = BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS.len());
        self.0.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.0
            .sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.0
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .sum()
    }

    /// The bucket bound under which a fraction `q` of the observations fall (`None`: no
    /// observation; `+Inf`: above the last bucket). An upper bound, as Prometheus' own
    /// `histogram_quantile` would interpolate within the bucket.
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        let counts: Vec<u64> = self
            .0
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let count: u64 = counts.iter().sum();
        if count == 0 {
            return None;
        }
        let rank = (q * count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bound, n) in BUCKETS.iter().chain([&f64::INFINITY]).zip(counts) {
            seen += n;
            if seen >= rank {
                return Some(*bound);
            }
        }
        Some(f64::INFINITY)
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> std::fmt::Result {
        let buckets: Vec<(f64, u64)> = BUCKETS
            .iter()
            .chain([&f64::INFINITY])
            .zip(&self.0.buckets)
            .map(|(bound, n)| (*bound, n.load(Ordering::Relaxed)))
            .collect();
        // The count from the same loads as the buckets, so `+Inf` always equals it.
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.0.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// Who sends what to whom; the labels of the per-corridor families.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, EncodeLabelSet)]
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
}

/// What happened to documents in one corridor: handles to the corridor's members of the
/// registered families.
#[derive(Debug)]
pub struct CorridorStats {
    pub accepted: Counter,
    pub duplicates: Counter,
    pub delivered: Counter,
    pub acknowledged: Counter,
    pub rejected: Counter,
    pub expired: Counter,
    /// From acceptance to the last frame streamed to the recipient.
    pub delivery: Histogram,
    /// From acceptance to the recipient's acknowledgement recorded: end to end, as the hub
    /// sees it.
    pub acknowledgement: Histogram,
}

/// The per-corridor families, registered once.
#[derive(Debug, Default)]
struct CorridorFamilies {
    accepted: Family<Corridor, Counter>,
    duplicates: Family<Corridor, Counter>,
    delivered: Family<Corridor, Counter>,
    acknowledged: Family<Corridor, Counter>,
    rejected: Family<Corridor, Counter>,
    expired: Family<Corridor, Counter>,
    delivery: Family<Corridor, Histogram>,
    acknowledgement: Family<Corridor, Histogram>,
}

impl CorridorFamilies {
    /// The members for `corridor`, created in every family.
    fn stats(&self, corridor: &Corridor) -> CorridorStats {
        CorridorStats {
            accepted: self.accepted.get_or_create_owned(corridor),
            duplicates: self.duplicates.get_or_create_owned(corridor),
            delivered: self.delivered.get_or_create_owned(corridor),
            acknowledged: self.acknowledged.get_or_create_owned(corridor),
            rejected: self.rejected.get_or_create_owned(corridor),
            expired: self.expired.get_or_create_owned(corridor),
            delivery: self.delivery.get_or_create_owned(corridor),
            acknowledgement: self.acknowledgement.get_or_create_owned(corridor),
        }
    }
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

/// The label of refusals: the refusal code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

/// The label of per-participant gauges.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Participant {
    participant: ParticipantId,
}

/// The label of per-recipient gauges.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Recipient {
    recipient: ParticipantId,
}

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

impl StoreGauges {
    /// These values as a registry of their own, for the one scrape that read them.
    pub fn registry(&self) -> Registry {
        let mut registry = Registry::default();
        let queue = Family::<Recipient, Gauge>::default();
        for (recipient, n) in &self.queue_depths {
            queue
                .get_or_create(&Recipient {
                    recipient: *recipient,
                })
                .set(*n as i64);
        }
        registry.register(
            "caravan_hub_queue_documents",
            "Documents waiting for their recipient, per recipient",
            queue,
        );
        for (name, help, value) in [
            (
                "caravan_hub_store_bytes",
                "Bytes the store takes on disk",
                self.store_bytes as i64,
            ),
            (
                "caravan_hub_log_entries",
                "Entries in the exchange log (size of the last signed tree head)",
                self.log_entries as i64,
            ),
            (
                "caravan_hub_trust_list_version",
                "Version of the trust list in force",
                self.trust_list_version as i64,
            ),
            (
                "caravan_hub_trust_list_age_seconds",
                "Seconds since the trust list in force was issued",
                self.trust_list_age_secs,
            ),
        ] {
            registry.register(name, help, ConstGauge::new(value));
        }
        registry.register(
            "caravan_hub_payloads_corrupt",
            "Messages whose stored payload failed its checksum since the hub started: held back, never delivered (see the runbook)",
            ConstCounter::new(self.payloads_corrupt),
        );
        registry
    }
}

/// Process-wide metrics; cheap to update from any task.
#[derive(Debug)]
pub struct Metrics {
    corridors: RwLock<BTreeMap<Corridor, Arc<CorridorStats>>>,
    families: CorridorFamilies,
    refusals: Family<Reason, Counter>,
    /// The members of `refusals`, in the order of [`RefusalCode::ALL`].
    refused: Vec<Counter>,
    recent: Mutex<VecDeque<RecentRefusal>>,
    flushes: Counter,
    /// Streamed submissions turned away for want of room in the payload budget.
    pub busy: Counter,
    /// From a submission's arrival to its durable receipt (verification, store, flush).
    pub accept: Histogram,
    /// One flush of the store.
    pub flush: Histogram,
    /// Delivery streams open, per participant: the spokes connected.
    streams: Mutex<BTreeMap<ParticipantId, i64>>,
    connected: Family<Participant, Gauge>,
    open_streams: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let refusals = Family::<Reason, Counter>::default();
        // Every code from the start, at 0, so a rate over any of them is defined.
        let refused = RefusalCode::ALL
            .iter()
            .map(|code| {
                refusals.get_or_create_owned(&Reason {
                    reason: code.as_str(),
                })
            })
            .collect();
        Self {
            corridors: RwLock::default(),
            families: CorridorFamilies::default(),
            refusals,
            refused,
            recent: Mutex::default(),
            flushes: Counter::default(),
            busy: Counter::default(),
            accept: Histogram::default(),
            flush: Histogram::default(),
            streams: Mutex::default(),
            connected: Family::default(),
            open_streams: Gauge::default(),
        }
    }
}

impl Metrics {
    /// Register every metric in `registry` under its `caravan_hub_` name (counters get their
    /// `_total` from the encoder).
    pub fn register(&self, registry: &mut Registry) {
        let f = &self.families;
        for (name, help, family) in [
            (
                "caravan_hub_documents_accepted",
                "Documents accepted and durably stored",
                &f.accepted,
            ),
            (
                "caravan_hub_documents_duplicate",
                "Resends answered with the original receipt",
                &f.duplicates,
            ),
            (
                "caravan_hub_documents_delivered",
                "Documents streamed to their recipient",
                &f.delivered,
            ),
            (
                "caravan_hub_documents_acknowledged",
                "Documents the recipient verified and stored",
                &f.acknowledged,
            ),
            (
                "caravan_hub_documents_rejected",
                "Documents the recipient refused",
                &f.rejected,
            ),
            (
                "caravan_hub_documents_expired",
                "Documents not settled within their time to live",
                &f.expired,
            ),
        ] {
            registry.register(name, help, family.clone());
        }
        registry.register(
            "caravan_hub_delivery_seconds",
            "From acceptance to the document streamed to its recipient",
            f.delivery.clone(),
        );
        registry.register(
            "caravan_hub_acknowledgement_seconds",
            "From acceptance to the recipient's acknowledgement: end to end, as the hub sees it",
            f.acknowledgement.clone(),
        );
        registry.register(
            "caravan_hub_accept_seconds",
            "From a submission's arrival to its durable receipt (verification, store, flush)",
            self.accept.clone(),
        );
        registry.register(
            "caravan_hub_store_flush_seconds",
            "One durable flush of the store",
            self.flush.clone(),
        );
        registry.register(
            "caravan_hub_requests_refused",
            "Requests refused, by reason",
            self.refusals.clone(),
        );
        registry.register(
            "caravan_hub_store_flushes",
            "Durable flushes of the store",
            self.flushes.clone(),
        );
        registry.register(
            "caravan_hub_submissions_busy",
            "Streamed submissions turned away (RESOURCE_EXHAUSTED, retried by the sender) for want of room in payload_in_flight_mib",
            self.busy.clone(),
        );
        registry.register(
            "caravan_hub_delivery_streams",
            "Delivery streams open (spokes connected)",
            self.open_streams.clone(),
        );
        registry.register(
            "caravan_hub_spoke_connected",
            "1 while the participant has a delivery stream open",
            self.connected.clone(),
        );
    }

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
            .or_insert_with(|| Arc::new(self.families.stats(corridor)))
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
        counter.inc();
    }

    pub fn flushed(&self, seconds: f64) {
        self.flushes.inc();
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
        self.refused[index].inc() + 1
    }

    /// A delivery stream opened for `participant`; it counts until the guard is dropped.
    pub fn stream_opened(self: &Arc<Self>, participant: ParticipantId) -> StreamGuard {
        self.stream_change(participant, 1);
        self.open_streams.inc();
        StreamGuard(self.clone(), participant)
    }

    /// Add `by` to the streams open for `participant`, and set its gauge.
    fn stream_change(&self, participant: ParticipantId, by: i64) {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let n = streams.entry(participant).or_default();
        *n += by;
        self.connected
            .get_or_create(&Participant { participant })
            .set(i64::from(*n > 0));
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
}

/// Counts an open delivery stream down when dropped.
pub struct StreamGuard(Arc<Metrics>, ParticipantId);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.stream_change(self.1, -1);
        self.0.open_streams.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `/metrics` text of `m` with `gauges`, as the hub encodes it.
    fn encoded(m: &Metrics, gauges: &StoreGauges) -> String {
        let mut registry = Registry::default();
        m.register(&mut registry);
        caravan_common::metrics::encode(&[&registry, &gauges.registry()])
    }

    /// Every sample of `text`: its name with labels, and its value.
    fn samples(text: &str) -> BTreeMap<String, f64> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (key, value) = l.rsplit_once(' ').expect("a sample line");
                (key.to_owned(), value.parse().expect("a number"))
            })
            .collect()
    }

    /// The crate writes `le` before the family's labels (`x_bucket{le="0.005",sender=..}`);
    /// Prometheus reads labels in any order.
    #[test]
    fn histograms_encode_cumulative_buckets_and_bound_quantiles() {
        let h = Histogram::default();
        assert_eq!(h.quantile_bound(0.5), None);
        for s in [0.0004, 0.003, 0.003, 0.2, 7200.0] {
            h.observe(s);
        }
        assert_eq!(h.count(), 5);
        assert_eq!(h.quantile_bound(0.5), Some(0.005));
        assert_eq!(h.quantile_bound(0.8), Some(0.25));
        assert_eq!(h.quantile_bound(1.0), Some(f64::INFINITY));
        let family = Family::<Corridor, Histogram>::default();
        let corridor = Corridor {
            sender: "KZ".parse().unwrap(),
            recipient: "CN".parse().unwrap(),
            document_type: "e-co".into(),
        };
        let member = family.get_or_create_owned(&corridor);
        for s in [0.0004, 0.003, 0.003, 0.2, 7200.0] {
            member.observe(s);
        }
        let mut registry = Registry::default();
        registry.register("x", "X", family);
        let out = caravan_common::metrics::encode(&[&registry]);
        let l = "sender=\"KZ\",recipient=\"CN\",document_type=\"e-co\"";
        for line in [
            "# TYPE x histogram".to_owned(),
            format!("x_bucket{{le=\"0.0005\",{l}}} 1"),
            format!("x_bucket{{le=\"0.005\",{l}}} 3"),
            format!("x_bucket{{le=\"3600.0\",{l}}} 4"),
            format!("x_bucket{{le=\"+Inf\",{l}}} 5"),
            format!("x_count{{{l}}} 5"),
        ] {
            assert!(out.lines().any(|o| o == line), "{line} missing:\n{out}");
        }
        let sum = samples(&out)[&format!("x_sum{{{l}}}")];
        assert!((sum - 7200.2064).abs() < 1e-6, "{sum}\n{out}");
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
        let text = encoded(
            &m,
            &StoreGauges {
                queue_depths: vec![("CN".parse().unwrap(), 3)],
                ..Default::default()
            },
        );
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
            encoded(&m, &StoreGauges::default())
                .contains("caravan_hub_spoke_connected{participant=\"CN\"} 0")
        );
    }

    #[test]
    fn the_exposition_carries_what_was_recorded() {
        let m = Arc::new(Metrics::default());
        let kz_cn = Corridor {
            sender: "KZ".parse().unwrap(),
            recipient: "CN".parse().unwrap(),
            document_type: "e-co".into(),
        };
        let uz_kz = Corridor {
            sender: "UZ".parse().unwrap(),
            recipient: "KZ".parse().unwrap(),
            document_type: "e-phyto".into(),
        };
        for event in [Event::Accepted, Event::Delivered, Event::Acknowledged] {
            m.count(&kz_cn, event);
        }
        m.count(&uz_kz, Event::Accepted);
        m.count(&uz_kz, Event::Expired);
        m.corridor(&kz_cn).delivery.observe(0.03);
        m.accept.observe(0.002);
        m.accept.observe(0.004);
        m.flushed(0.001);
        m.busy.inc();
        let bad = caravan_common::Refusal::new(RefusalCode::BadSignature, "no");
        assert_eq!(m.refused("submit", None, &bad), 1);
        assert_eq!(m.refused("submit", None, &bad), 2);
        let text = encoded(
            &m,
            &StoreGauges {
                store_bytes: 4096,
                payloads_corrupt: 1,
                log_entries: 12,
                trust_list_version: 3,
                trust_list_age_secs: 60,
                queue_depths: vec![("KZ".parse().unwrap(), 2)],
            },
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
        let s = samples(&text);
        let kz = "sender=\"KZ\",recipient=\"CN\",document_type=\"e-co\"";
        let uz = "sender=\"UZ\",recipient=\"KZ\",document_type=\"e-phyto\"";
        for (key, value) in [
            (format!("caravan_hub_documents_accepted_total{{{kz}}}"), 1.0),
            (
                format!("caravan_hub_documents_delivered_total{{{kz}}}"),
                1.0,
            ),
            (
                format!("caravan_hub_documents_acknowledged_total{{{kz}}}"),
                1.0,
            ),
            (format!("caravan_hub_documents_expired_total{{{kz}}}"), 0.0),
            (format!("caravan_hub_documents_accepted_total{{{uz}}}"), 1.0),
            (format!("caravan_hub_documents_expired_total{{{uz}}}"), 1.0),
            (
                format!("caravan_hub_delivery_seconds_bucket{{le=\"0.025\",{kz}}}"),
                0.0,
            ),
            (
                format!("caravan_hub_delivery_seconds_bucket{{le=\"0.05\",{kz}}}"),
                1.0,
            ),
            (format!("caravan_hub_delivery_seconds_count{{{uz}}}"), 0.0),
            ("caravan_hub_accept_seconds_count".into(), 2.0),
            (
                "caravan_hub_accept_seconds_bucket{le=\"0.0025\"}".into(),
                1.0,
            ),
            (
                "caravan_hub_accept_seconds_bucket{le=\"0.005\"}".into(),
                2.0,
            ),
            ("caravan_hub_accept_seconds_sum".into(), 0.006),
            ("caravan_hub_store_flushes_total".into(), 1.0),
            ("caravan_hub_store_flush_seconds_count".into(), 1.0),
            ("caravan_hub_submissions_busy_total".into(), 1.0),
            (
                "caravan_hub_requests_refused_total{reason=\"BAD_SIGNATURE\"}".into(),
                2.0,
            ),
            (
                "caravan_hub_requests_refused_total{reason=\"UNKNOWN_KEY\"}".into(),
                0.0,
            ),
            ("caravan_hub_delivery_streams".into(), 0.0),
            ("caravan_hub_queue_documents{recipient=\"KZ\"}".into(), 2.0),
            ("caravan_hub_store_bytes".into(), 4096.0),
            ("caravan_hub_log_entries".into(), 12.0),
            ("caravan_hub_trust_list_version".into(), 3.0),
            ("caravan_hub_trust_list_age_seconds".into(), 60.0),
            ("caravan_hub_payloads_corrupt_total".into(), 1.0),
        ] {
            assert_eq!(s.get(&key), Some(&value), "{key}:\n{text}");
        }
        // Every refusal code from the start, and each family described once.
        let refusals = s
            .keys()
            .filter(|k| k.starts_with("caravan_hub_requests_refused_total"))
            .count();
        assert_eq!(refusals, RefusalCode::ALL.len());
        for family in [
            "# TYPE caravan_hub_documents_accepted counter",
            "# TYPE caravan_hub_acknowledgement_seconds histogram",
            "# TYPE caravan_hub_queue_documents gauge",
            "# TYPE caravan_hub_payloads_corrupt counter",
        ] {
            assert_eq!(text.lines().filter(|l| *l == family).count(), 1, "{family}");
        }
        assert!(
            text.contains("# HELP caravan_hub_store_flushes Durable flushes of the store.\n"),
            "{text}"
        );
    }
}
