//! The Regional Readiness Scorecard (issue 17): the framework as data, checked at load
//! (`framework`); the entries operators record, signed and logged (`entry`); the KPIs measured
//! from the hub's own records (`measured`); and the results every view reads (`report`).

pub mod entry;
pub mod framework;
pub mod measured;
pub mod report;

use std::sync::Arc;

use caravan_common::Timestamp;

pub use framework::{Dimension, Finding, Framework, FrameworkError, Kpi, Level};
pub use report::Report;

use caravan_common::signing::SigningKey;
use caravan_proto::v1;

use crate::{
    error::HubError,
    log::Heads,
    registry::Registry,
    store::{Backend, ScorecardRecord, Store, StoreError},
};

/// What recording an entry uses: the Admin service and the dashboard hold the same.
pub struct Recorder<'a> {
    pub store: &'a Store,
    pub registry: &'a Registry,
    pub heads: &'a Arc<Heads>,
    pub framework: &'a Arc<Framework>,
    /// The hub's receipt key, which signs entries.
    pub key: &'a SigningKey,
}

/// Check `request` against the framework and the rounds, and record it for `actor`
/// (`operator:<name>`): signed, kept and logged, durable before this returns. Answers the
/// record and its inclusion proof under the tree head that made it durable.
pub async fn record(
    r: &Recorder<'_>,
    actor: String,
    request: v1::RecordScorecardEntryRequest,
) -> Result<(ScorecardRecord, Option<v1::LogProof>), HubError> {
    let framework = r.framework.clone();
    // A close keeps the measured scores of this moment.
    let measured = if request.kind == v1::ScorecardEntryKind::CloseRound as i32 {
        measured_now(r.store, r.registry, framework.clone()).await?
    } else {
        Default::default()
    };
    let key = r.key.clone();
    let at = Timestamp::now();
    let today = at.to_string().get(..10).unwrap_or_default().to_owned();
    let (record, head) = r
        .registry
        .record_scorecard(move |recorded| {
            let entries: Vec<entry::Entry> = recorded
                .iter()
                .filter_map(|r| entry::Entry::from_json(&r.entry_json).ok())
                .collect();
            let rounds = entry::Rounds::of(&entries);
            let mut what = entry::check(&request, &framework, &rounds, &today)?;
            if let entry::What::CloseRound { measured: m, .. } = &mut what {
                *m = measured;
            }
            Ok(move |id| entry::record(&what, id, &framework, &key, &actor, at))
        })
        .await?;
    // The head its write was made durable under covers the entry.
    let heads = r.heads.clone();
    let index = record.log_index;
    let proof = r.store.run(move |b| heads.prove(b, &head, index)).await?;
    Ok((record, proof))
}

/// The report now, over a window of `window_days` (0: the default), from the store and the
/// trust list in force. Read and computed on a blocking thread: it walks every message of the
/// last twelve months, counting as it reads.
pub async fn report(
    store: &Store,
    registry: &Registry,
    framework: Arc<Framework>,
    window_days: u32,
) -> Result<Report, StoreError> {
    let snapshot = registry.snapshot();
    store
        .run(move |b| {
            let (certificates, reports) = (b.certificates()?, b.conformance_reports()?);
            let state = measured::State {
                trust: &snapshot.trust,
                certificates: &certificates,
                reports: &reports,
                now: Timestamp::now(),
            };
            let exchange = read_exchange(b, &state, window_days)?;
            let entries = b.scorecard_entries()?;
            Ok(report::build(&report::Inputs {
                framework: &framework,
                entries: &entries,
                exchange: &exchange,
                state,
            }))
        })
        .await
}

/// What a round keeps when it closes: the measured scores now, over the default window.
pub async fn measured_now(
    store: &Store,
    registry: &Registry,
    framework: Arc<Framework>,
) -> Result<entry::MeasuredScores, StoreError> {
    let snapshot = registry.snapshot();
    store
        .run(move |b| {
            let (certificates, reports) = (b.certificates()?, b.conformance_reports()?);
            let state = measured::State {
                trust: &snapshot.trust,
                certificates: &certificates,
                reports: &reports,
                now: Timestamp::now(),
            };
            let exchange = read_exchange(b, &state, 0)?;
            Ok(report::measure_now(&framework, &exchange, &state))
        })
        .await
}

/// Every message a report needs, counted.
fn read_exchange(
    b: &dyn Backend,
    state: &measured::State<'_>,
    window_days: u32,
) -> Result<report::Exchange, StoreError> {
    let mut exchange = report::Exchange::new(state, window_days);
    b.exchange_facts(exchange.since(), &mut |f| exchange.add(&f, state.trust))?;
    Ok(exchange)
}

/// The window asked for, or the default.
pub fn effective_window(days: u32) -> u32 {
    if days == 0 {
        report::DEFAULT_WINDOW_DAYS
    } else {
        days
    }
}

#[cfg(test)]
mod tests;
