//! The Regional Readiness Scorecard (issue 17): the framework as data, checked at load
//! (`framework`); the entries operators record, signed and logged (`entry`); the KPIs measured
//! from the hub's own records (`measured`); and the results every view reads (`report`).

pub mod entry;
pub mod framework;
pub mod measured;
pub mod report;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use caravan_common::{Timestamp, signing::SigningKey};
use caravan_proto::v1;

pub use framework::{Dimension, Finding, Framework, FrameworkError, Kpi, Level};
pub use report::Report;

use crate::{
    error::HubError,
    log::Heads,
    registry::Registry,
    store::{Backend, ScorecardRecord, Store, StoreError},
};

/// How long the dashboard answers a report again before it is measured anew: a report reads
/// every message of a year (about 0.3 s per 100,000 on redb, read and counted, see `benches/scorecard.rs`), and
/// the measured KPIs move over a window of months, not seconds; the page says when it was
/// measured. A recorded entry or a new trust list makes a new report at once. The Admin
/// service, which people ask one command at a time, measures anew every time.
pub const REPORT_MAX_AGE: Duration = Duration::from_secs(60);

/// The scorecard as the Admin service and the dashboard use it: the framework in use, what
/// records and measures, and the newest report.
pub struct Scorecard {
    pub framework: Arc<Framework>,
    store: Store,
    registry: Arc<Registry>,
    heads: Arc<Heads>,
    /// The hub's receipt key, which signs entries.
    key: SigningKey,
    /// The newest report; the lock is held while one is made, so that many readers at once
    /// make one report, not many.
    newest: tokio::sync::Mutex<Option<Made>>,
}

/// A report and what it was made of.
struct Made {
    at: Instant,
    window_days: u32,
    entries: usize,
    trust_list_version: u64,
    report: Arc<Report>,
}

impl Scorecard {
    pub fn new(
        framework: Arc<Framework>,
        store: Store,
        registry: Arc<Registry>,
        heads: Arc<Heads>,
        key: SigningKey,
    ) -> Self {
        Self {
            framework,
            store,
            registry,
            heads,
            key,
            newest: tokio::sync::Mutex::new(None),
        }
    }

    /// The report over a window of `window_days` (0: the default): the newest one if it is of
    /// that window, younger than `max_age`, and no entry or trust list came since; else a new
    /// one, read and computed on a blocking thread (one at a time).
    pub async fn report(
        &self,
        window_days: u32,
        max_age: Duration,
    ) -> Result<Arc<Report>, StoreError> {
        let window_days = report::effective_window(window_days);
        let mut newest = self.newest.lock().await;
        let entries = self.store.read(|b| b.scorecard_entries()).await?.len();
        let snapshot = self.registry.snapshot();
        let trust_list_version = snapshot.list.version;
        if let Some(made) = newest.as_ref()
            && made.window_days == window_days
            && made.entries == entries
            && made.trust_list_version == trust_list_version
            && made.at.elapsed() < max_age
        {
            return Ok(made.report.clone());
        }
        let framework = self.framework.clone();
        let report = self
            .measure(snapshot, window_days, move |b, state, exchange| {
                let entries = b.scorecard_entries()?;
                Ok(report::build(&report::Inputs {
                    framework: &framework,
                    entries: &entries,
                    exchange,
                    state,
                }))
            })
            .await?;
        let report = Arc::new(report);
        *newest = Some(Made {
            at: Instant::now(),
            window_days,
            // Counted before the report read them: an entry recorded meanwhile makes the
            // next call read again.
            entries,
            trust_list_version,
            report: report.clone(),
        });
        Ok(report)
    }

    /// Check `request` against the framework and the rounds, and record it for `actor`
    /// (`operator:<name>`): signed, kept and logged, durable before this returns. Answers the
    /// record and its inclusion proof under the tree head that made it durable.
    pub async fn record(
        &self,
        actor: String,
        request: v1::RecordScorecardEntryRequest,
    ) -> Result<(ScorecardRecord, Option<v1::LogProof>), HubError> {
        let framework = self.framework.clone();
        // A close keeps the measured scores of this moment.
        let measured = if request.kind == v1::ScorecardEntryKind::CloseRound as i32 {
            self.measured_now().await?
        } else {
            Default::default()
        };
        let key = self.key.clone();
        let at = Timestamp::now();
        let today = at.to_string().get(..10).unwrap_or_default().to_owned();
        let (record, head) = self
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
        let heads = self.heads.clone();
        let index = record.log_index;
        let proof = self
            .store
            .run(move |b| heads.prove(b, &head, index))
            .await?;
        Ok((record, proof))
    }

    /// What a round keeps when it closes: the measured scores now, over the default window.
    async fn measured_now(&self) -> Result<entry::MeasuredScores, StoreError> {
        let framework = self.framework.clone();
        self.measure(self.registry.snapshot(), 0, move |_, state, exchange| {
            Ok(report::measure_now(&framework, exchange, &state))
        })
        .await
    }

    /// On a blocking thread: the trust list of `snapshot`, the certificates and conformance
    /// reports read now, and every message of the window (`window_days`, 0: the default) and
    /// the months counted, handed to `then`.
    async fn measure<T: Send + 'static>(
        &self,
        snapshot: Arc<crate::registry::Snapshot>,
        window_days: u32,
        then: impl FnOnce(&dyn Backend, measured::State<'_>, &report::Exchange) -> Result<T, StoreError>
        + Send
        + 'static,
    ) -> Result<T, StoreError> {
        self.store
            .run(move |b| {
                let (certificates, reports) = (b.certificates()?, b.conformance_reports()?);
                let state = measured::State {
                    trust: &snapshot.trust,
                    certificates: &certificates,
                    reports: &reports,
                    now: Timestamp::now(),
                };
                let exchange = read_exchange(b, &state, window_days)?;
                then(b, state, &exchange)
            })
            .await
    }
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

#[cfg(test)]
mod tests;
