//! The exposition behind the hub's and the spokes' `/metrics`: registries of typed metrics
//! (`prometheus-client`) encoded as OpenMetrics text, served with the content type that names
//! that format.
//!
//! Each side keeps one long-lived [`Registry`]: its counters and histograms, updated on the
//! hot path with atomics, and the collectors of `net`, `fd` and `recovery`, which read their
//! atomics at scrape time. What must be read from the store or the state at scrape time goes
//! into a registry made for that one scrape, so two scrapes never see each other's half-set
//! values. [`encode`] writes them one after the other and ends the text with the `# EOF` that
//! OpenMetrics requires.

use prometheus_client::{
    encoding::{
        DescriptorEncoder, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
        text::{encode_eof, encode_registry},
    },
    metrics::TypedMetric,
    registry::Registry,
};

use crate::ParticipantId;

/// The `Content-Type` of what [`encode`] writes (OpenMetrics text 1.0.0).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The OpenMetrics text of `registries`, in order, ended by `# EOF`. An encoding failure (a
/// metric's own encoder refusing) leaves the rest of that registry out and is logged; the
/// scrape still answers.
pub fn encode(registries: &[&Registry]) -> String {
    let mut text = String::new();
    for registry in registries {
        if let Err(e) = encode_registry(&mut text, registry) {
            tracing::error!(cause = %e, "cannot encode a registry of metrics");
        }
    }
    // Writing to a String cannot fail.
    let _ = encode_eof(&mut text);
    text
}

/// The labels of one sample a collector writes: `&[("reason", "timeout")]`, or `&[]`.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

/// Writes one family from a [`prometheus_client::collector::Collector`]: its `# HELP` and
/// `# TYPE`, then a sample per label set, each a `ConstCounter` or a `ConstGauge` read at
/// this scrape. `help` is written as given (the crate adds a full stop only to the help of
/// metrics registered by name).
pub fn write_family<M: EncodeMetric + TypedMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(Labels, M)],
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, M::TYPE)?;
    for (labels, metric) in samples {
        metric.encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

/// The text of `collector` alone, its names under `prefix` (for tests).
#[cfg(test)]
pub(crate) fn text_of(
    prefix: &str,
    collector: impl prometheus_client::collector::Collector,
) -> String {
    let mut registry = Registry::default();
    registry
        .sub_registry_with_prefix(prefix)
        .register_collector(Box::new(collector));
    encode(&[&registry])
}

/// A participant id as a label value (`sender="KZ"`), without allocating.
impl EncodeLabelValue for ParticipantId {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::{
        encoding::EncodeLabelSet,
        metrics::{counter::Counter, family::Family},
    };

    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
    struct Labels {
        participant: ParticipantId,
    }

    #[derive(Debug)]
    struct Fixed;

    impl prometheus_client::collector::Collector for Fixed {
        fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
            use prometheus_client::metrics::counter::ConstCounter;
            write_family(
                &mut encoder,
                "cut",
                "Cut, by reason.",
                &[
                    (
                        &[("listener", "grpc"), ("reason", "idle")],
                        ConstCounter::new(2u64),
                    ),
                    (&[], ConstCounter::new(5u64)),
                ],
            )
        }
    }

    #[test]
    fn a_collector_writes_its_families_under_the_prefix() {
        let mut registry = Registry::default();
        registry
            .sub_registry_with_prefix("x")
            .register_collector(Box::new(Fixed));
        assert_eq!(
            encode(&[&registry]),
            "# HELP x_cut Cut, by reason.\n# TYPE x_cut counter\n\
             x_cut_total{listener=\"grpc\",reason=\"idle\"} 2\nx_cut_total 5\n# EOF\n"
        );
    }

    #[test]
    fn registries_are_written_in_order_and_ended_once() {
        let (mut first, mut second) = (Registry::default(), Registry::default());
        let family = Family::<Labels, Counter>::default();
        first.register("x_seen", "Seen", family.clone());
        family
            .get_or_create(&Labels {
                participant: "KZ".parse().unwrap(),
            })
            .inc_by(3);
        let gauge = prometheus_client::metrics::gauge::ConstGauge::new(7i64);
        second.register("x_depth", "Depth", gauge);
        let text = encode(&[&first, &second]);
        assert_eq!(
            text,
            "# HELP x_seen Seen.\n# TYPE x_seen counter\nx_seen_total{participant=\"KZ\"} 3\n\
             # HELP x_depth Depth.\n# TYPE x_depth gauge\nx_depth 7\n# EOF\n"
        );
    }
}
