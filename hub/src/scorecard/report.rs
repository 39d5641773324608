//! The scorecard's results, as every view reads them (the dashboard's pages, `admin scorecard
//! show` and `export --csv`): per country each KPI's score with where it comes from and the
//! evidence under it, the dimension scores, the weighted index and the readiness level, the
//! trend across rounds and the measured figures month by month; for the region the same
//! averaged; and each corridor's documents per type and month.
//!
//! The rules, stated once here and printed with the framework's notes on every report:
//! - a round's score for an assessed KPI is the newest assessment recorded in that round;
//! - a measured KPI's score is, in an open round, the measurement over the window, and in a
//!   closed round the measurement frozen when it closed; an override recorded in the round
//!   stands over either;
//! - the index is the mean of the KPI scores weighted by the framework's applied weights, over
//!   the KPIs that have a score; `coverage` says how much of the weight that is, and a
//!   dimension or index with nothing scored has no score (never a zero);
//! - the region's figures are the means of the countries that have one.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use caravan_common::{CountryCode, Timestamp, trust::TrustSet};

use super::{
    Framework, Level,
    entry::{Entry, Rounds, What},
    measured::{self, Measured, State, Tally},
};
use crate::store::{ExchangeFact, MessageState, ScorecardRecord};

/// The format of a report's JSON.
pub const FORMAT: &str = "caravan.scorecard-report.v1";
/// How many calendar months the monthly figures and the corridors cover, this one included.
pub const MONTHS: usize = 12;
/// The measurement window when none is asked for.
pub const DEFAULT_WINDOW_DAYS: u32 = 90;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// The window asked for, or the default.
pub fn effective_window(days: u32) -> u32 {
    if days == 0 { DEFAULT_WINDOW_DAYS } else { days }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub format: String,
    pub generated_at: Timestamp,
    /// The measurement window of the current scores.
    pub window: Window,
    pub framework: FrameworkView,
    /// Oldest first.
    pub rounds: Vec<RoundView>,
    /// The round the current scores are of: the newest; `None` before any entry (measured
    /// scores only).
    pub round: Option<String>,
    pub countries: Vec<CountryReport>,
    pub region: RegionReport,
    /// The months of the monthly figures and the corridors, `YYYY-MM`, oldest first.
    pub months: Vec<String>,
    pub corridors: Vec<CorridorReport>,
    /// Recorded entries whose JSON could not be read (kept, not counted).
    pub unreadable_entries: Vec<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Window {
    pub from: Timestamp,
    pub to: Timestamp,
    pub days: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FrameworkView {
    pub name: String,
    pub source: String,
    /// What was found in the weights and the rule applied, the levels' provenance, and how
    /// scores are combined: printed with every report.
    pub notes: Vec<String>,
    pub levels: Vec<Level>,
    pub dimensions: Vec<DimensionView>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DimensionView {
    pub id: String,
    pub name: String,
    /// Percent of the index, after the rules.
    pub weight: f64,
    pub kpis: Vec<KpiView>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KpiView {
    pub id: String,
    pub name: String,
    /// What 1 and 5 mean.
    pub low: String,
    pub high: String,
    /// Percent of the index, after the rules; and as published.
    pub weight: f64,
    pub published_weight: f64,
    /// The rule from figures to a score, for a measured KPI.
    pub rule: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoundView {
    pub name: String,
    pub closed_at: Option<Timestamp>,
    pub entries: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CountryReport {
    pub country: CountryCode,
    /// In English (CLDR).
    pub name: String,
    /// Its participants in the trust list in force.
    pub participants: Vec<String>,
    /// In the framework's order.
    pub kpis: Vec<KpiScore>,
    pub dimensions: Vec<DimensionScore>,
    pub index: Option<f64>,
    pub level: Option<String>,
    /// Percent of the index's weight that has a score.
    pub coverage: f64,
    /// The index in each round, oldest first.
    pub trend: Vec<RoundScore>,
    /// The measured KPIs month by month (those the messages alone measure).
    pub monthly: Vec<MonthScores>,
}

/// Where a KPI's score comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Assessed,
    Measured,
    /// A measured score frozen when its round closed.
    MeasuredAtClose,
    Overridden,
    /// Nothing recorded or measurable.
    None,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Assessed => "assessed",
            Self::Measured => "measured",
            Self::MeasuredAtClose => "measured at close",
            Self::Overridden => "overridden",
            Self::None => "no score",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KpiScore {
    pub kpi: String,
    pub dimension: String,
    pub score: Option<u8>,
    pub source: Source,
    /// For a measured KPI: the measurement over the window, with its figures.
    pub measured: Option<Measured>,
    /// The entry the score comes from (an assessment or an override).
    pub entry: Option<EntryRef>,
    /// Every entry for this country and KPI, in every round, oldest first.
    pub history: Vec<EntryRef>,
}

/// An entry as the report cites it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntryRef {
    pub id: u64,
    pub log_index: u64,
    pub round: String,
    pub kind: String,
    pub score: u8,
    /// The evidence (assessment) or the reason (override).
    pub note: String,
    pub assessor: String,
    pub assessed_on: String,
    pub recorded_by: String,
    pub recorded_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DimensionScore {
    pub id: String,
    pub score: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoundScore {
    pub round: String,
    pub closed: bool,
    /// Each dimension's score in that round, to compare a round with the one before.
    pub dimensions: Vec<DimensionScore>,
    pub index: Option<f64>,
    pub level: Option<String>,
    pub coverage: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MonthScores {
    pub month: String,
    pub scores: BTreeMap<String, Option<u8>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegionReport {
    pub dimensions: Vec<DimensionScore>,
    pub index: Option<f64>,
    pub level: Option<String>,
    /// How many countries have an index.
    pub countries_scored: usize,
}

/// One paperless corridor between two countries for one document type.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CorridorReport {
    pub from: CountryCode,
    pub to: CountryCode,
    pub document_type: String,
    /// One per month of [`Report::months`].
    pub months: Vec<CorridorMonth>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CorridorMonth {
    pub month: String,
    pub documents: u64,
    pub acknowledged: u64,
    pub rejected: u64,
    pub expired: u64,
    /// From acceptance to acknowledgement, of those acknowledged.
    pub median_ack_ms: Option<i64>,
}

impl CorridorMonth {
    /// Rejections per settled document, in percent.
    pub fn rejection_rate(&self) -> Option<f64> {
        let settled = self.acknowledged + self.rejected;
        (settled > 0).then(|| self.rejected as f64 * 100.0 / settled as f64)
    }
}

/// What a report is made of.
pub struct Inputs<'a> {
    pub framework: &'a Framework,
    pub entries: &'a [ScorecardRecord],
    /// Every message accepted since [`since`], counted (of the same `now` and window).
    pub exchange: &'a Exchange,
    pub state: State<'a>,
}

/// The messages a report reads, counted as they are read: per country over the window and
/// per month, and per corridor and month; memory grows with countries, corridors and months,
/// not with messages (but for the delivery and acknowledgement times the medians need).
pub struct Exchange {
    window_days: u32,
    window_from_ms: i64,
    months: Vec<(Timestamp, String)>,
    countries: HashMap<String, CountryCode>,
    window: BTreeMap<CountryCode, Tally>,
    monthly: Vec<BTreeMap<CountryCode, Tally>>,
    /// Per (from, to, document type): the months' rows, and each month's acknowledgement
    /// times for its median.
    corridors: BTreeMap<CorridorKey, (Vec<CorridorMonth>, Vec<Vec<i64>>)>,
}

type CorridorKey = (CountryCode, CountryCode, String);

impl Exchange {
    /// Nothing counted yet, for a report at `state.now` over `window_days` (0: the default).
    pub fn new(state: &State<'_>, window_days: u32) -> Self {
        let window_days = effective_window(window_days);
        let months: Vec<(Timestamp, String)> = (0..MONTHS)
            .rev()
            .map(|back| month_start(state.now, back))
            .collect();
        Self {
            window_days,
            window_from_ms: state.now.as_millis() - i64::from(window_days) * DAY_MS,
            monthly: vec![BTreeMap::new(); months.len()],
            months,
            countries: state.countries(),
            window: BTreeMap::new(),
            corridors: BTreeMap::new(),
        }
    }

    /// From when messages are needed: the earlier of the window's start and the first month's.
    pub fn since(&self) -> Timestamp {
        Timestamp::from_millis(self.window_from_ms.min(self.months[0].0.as_millis()))
    }

    /// Count one message.
    pub fn add(&mut self, f: &ExchangeFact, trust: &TrustSet) {
        if f.accepted_at_ms >= self.window_from_ms {
            measured::add(&mut self.window, f, &self.countries, trust);
        }
        let Some(m) = month_of(f.accepted_at_ms, &self.months) else {
            return;
        };
        measured::add(&mut self.monthly[m], f, &self.countries, trust);
        let (Some(from), Some(to)) = (
            self.countries.get(&f.sender),
            self.countries.get(&f.recipient),
        ) else {
            return;
        };
        let months = &self.months;
        let (rows, latencies) = self
            .corridors
            .entry((*from, *to, f.document_type.clone()))
            .or_insert_with(|| {
                (
                    months
                        .iter()
                        .map(|(_, name)| CorridorMonth {
                            month: name.clone(),
                            ..Default::default()
                        })
                        .collect(),
                    vec![Vec::new(); months.len()],
                )
            });
        let row = &mut rows[m];
        row.documents += 1;
        match f.state {
            MessageState::Acknowledged => {
                row.acknowledged += 1;
                if let Some(at) = f.settled_at_ms {
                    latencies[m].push(at - f.accepted_at_ms);
                }
            }
            MessageState::Rejected => row.rejected += 1,
            MessageState::Expired => row.expired += 1,
            _ => {}
        }
    }

    fn corridors(&self) -> Vec<CorridorReport> {
        self.corridors
            .iter()
            .map(|((from, to, document_type), (rows, latencies))| {
                let mut rows = rows.clone();
                for (row, l) in rows.iter_mut().zip(latencies) {
                    let mut l = l.clone();
                    l.sort_unstable();
                    row.median_ack_ms = l.get(l.len() / 2).copied();
                }
                CorridorReport {
                    from: *from,
                    to: *to,
                    document_type: document_type.clone(),
                    months: rows,
                }
            })
            .collect()
    }
}

/// The first day of the calendar month `back` months before the one `t` is in (UTC), and its
/// name.
fn month_start(t: Timestamp, back: usize) -> (Timestamp, String) {
    let date = time::OffsetDateTime::from_unix_timestamp(t.as_millis().div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .date();
    let mut year = date.year();
    let mut month = u8::from(date.month()) as i32 - back as i32;
    while month < 1 {
        month += 12;
        year -= 1;
    }
    let start = time::Date::from_calendar_date(
        year,
        time::Month::try_from(month as u8).unwrap_or(time::Month::January),
        1,
    )
    .unwrap_or(date)
    .midnight()
    .assume_utc();
    (
        Timestamp::from_millis((start.unix_timestamp_nanos() / 1_000_000) as i64),
        format!("{year:04}-{month:02}"),
    )
}

/// The measured scores of every country the framework scores, over the window: what a round
/// keeps when it closes.
pub fn measure_now(
    framework: &Framework,
    exchange: &Exchange,
    state: &State<'_>,
) -> super::entry::MeasuredScores {
    framework
        .countries
        .iter()
        .map(|c| {
            let t = exchange.window.get(c).cloned().unwrap_or_default();
            let scores = measured::measure(*c, &t, state, false)
                .into_iter()
                .filter(|(kpi, _)| framework.kpi(kpi).is_some())
                .map(|(kpi, m)| (kpi, m.score))
                .collect();
            (*c, scores)
        })
        .collect()
}

/// The report.
pub fn build(i: &Inputs<'_>) -> Report {
    let f = i.framework;
    let now = i.state.now;
    let exchange = i.exchange;
    // The entries, read.
    let mut unreadable_entries = Vec::new();
    let entries: Vec<(&ScorecardRecord, Entry)> = i
        .entries
        .iter()
        .filter_map(|r| match Entry::from_json(&r.entry_json) {
            Ok(e) => Some((r, e)),
            Err(_) => {
                unreadable_entries.push(r.id);
                None
            }
        })
        .collect();
    let rounds = Rounds::of(entries.iter().map(|(_, e)| e));
    let round_views: Vec<RoundView> = rounds
        .order
        .iter()
        .map(|name| RoundView {
            name: name.clone(),
            closed_at: entries
                .iter()
                .find(|(_, e)| matches!(&e.what, What::CloseRound { round, .. } if round == name))
                .map(|(r, _)| Timestamp::from_millis(r.recorded_at_ms)),
            entries: entries
                .iter()
                .filter(|(_, e)| e.what.round() == name)
                .count(),
        })
        .collect();
    let tallies = &exchange.window;
    let months = &exchange.months;
    let monthly_tallies = &exchange.monthly;
    let participants = &exchange.countries;
    let countries: Vec<CountryReport> = f
        .countries
        .iter()
        .map(|&country| {
            let tally = tallies.get(&country).cloned().unwrap_or_default();
            let live = measured::measure(country, &tally, &i.state, false);
            let scores_in =
                |round: Option<&str>| round_scores(f, &entries, &rounds, round, country, &live);
            let current = scores_in(rounds.order.last().map(String::as_str));
            let (dimensions, index, coverage) = combine(f, &current);
            let trend = rounds
                .order
                .iter()
                .map(|round| {
                    let (dimensions, index, coverage) = combine(f, &scores_in(Some(round)));
                    RoundScore {
                        round: round.clone(),
                        closed: rounds.closed.contains(round),
                        dimensions,
                        index,
                        level: index.map(|x| f.level(x).name.clone()),
                        coverage,
                    }
                })
                .collect();
            let monthly = months
                .iter()
                .zip(monthly_tallies)
                .map(|((_, month), tallies)| MonthScores {
                    month: month.clone(),
                    scores: measured::measure(
                        country,
                        &tallies.get(&country).cloned().unwrap_or_default(),
                        &i.state,
                        true,
                    )
                    .into_iter()
                    .filter(|(kpi, _)| f.kpi(kpi).is_some())
                    .map(|(kpi, m)| (kpi, m.score))
                    .collect(),
                })
                .collect();
            let mut ids: Vec<String> = participants
                .iter()
                .filter(|(_, c)| **c == country)
                .map(|(id, _)| id.clone())
                .collect();
            ids.sort();
            CountryReport {
                country,
                name: country_name(country),
                participants: ids,
                kpis: current,
                dimensions,
                index,
                level: index.map(|x| f.level(x).name.clone()),
                coverage,
                trend,
                monthly,
            }
        })
        .collect();
    let region = region(f, &countries);
    let corridors = exchange.corridors();
    Report {
        format: FORMAT.into(),
        generated_at: now,
        window: Window {
            from: Timestamp::from_millis(exchange.window_from_ms),
            to: now,
            days: exchange.window_days,
        },
        framework: framework_view(f),
        rounds: round_views,
        round: rounds.order.last().cloned(),
        countries,
        region,
        months: months.iter().map(|(_, m)| m.clone()).collect(),
        corridors,
        unreadable_entries,
    }
}

/// The country's name in English, from the CLDR list the spoke ships.
fn country_name(c: CountryCode) -> String {
    caravan_spoke::i18n::codes::name(
        caravan_spoke::i18n::codes::List::Country,
        c.as_str(),
        caravan_spoke::i18n::Lang::default(),
    )
    .unwrap_or(c.as_str())
    .to_owned()
}

fn framework_view(f: &Framework) -> FrameworkView {
    let mut notes = f.notes();
    notes.push("a round's score for an assessed KPI is the newest assessment recorded in it; a measured KPI's is the measurement over the window while its round is open and the one frozen when it closed, and an override recorded in the round stands over either".into());
    notes.push("the index is the mean of the KPI scores weighted by the applied weights, over the KPIs that have a score (coverage: how much of the weight that is); the region's figures are the means of the countries that have one".into());
    FrameworkView {
        name: f.name.clone(),
        source: f.source.clone(),
        notes,
        levels: f.levels.clone(),
        dimensions: f
            .dimensions
            .iter()
            .map(|d| DimensionView {
                id: d.id.clone(),
                name: d.name.clone(),
                weight: d.weight,
                kpis: d
                    .kpis
                    .iter()
                    .map(|k| KpiView {
                        id: k.id.clone(),
                        name: k.name.clone(),
                        low: k.low.clone(),
                        high: k.high.clone(),
                        weight: k.weight,
                        published_weight: k.published_weight,
                        rule: measured::rule(&k.id).map(|r| r.text.to_owned()),
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn entry_ref(r: &ScorecardRecord, e: &Entry) -> Option<EntryRef> {
    let (kind, score, note, assessor, assessed_on) = match &e.what {
        What::Assessment {
            score,
            evidence,
            assessor,
            assessed_on,
            ..
        } => ("assessment", score, evidence, assessor, assessed_on),
        What::Override {
            score,
            reason,
            assessor,
            assessed_on,
            ..
        } => ("override", score, reason, assessor, assessed_on),
        What::CloseRound { .. } => return None,
    };
    Some(EntryRef {
        id: r.id,
        log_index: r.log_index,
        round: e.what.round().to_owned(),
        kind: kind.into(),
        score: *score,
        note: note.clone(),
        assessor: assessor.clone(),
        assessed_on: assessed_on.clone(),
        recorded_by: r.recorded_by.clone(),
        recorded_at: Timestamp::from_millis(r.recorded_at_ms),
    })
}

/// Every KPI's score for `country` in `round` (`None`: no round yet, measured only).
fn round_scores(
    f: &Framework,
    entries: &[(&ScorecardRecord, Entry)],
    rounds: &Rounds,
    round: Option<&str>,
    country: CountryCode,
    live: &BTreeMap<String, Measured>,
) -> Vec<KpiScore> {
    let closed = round.is_some_and(|r| rounds.closed.contains(r));
    let frozen = entries.iter().find_map(|(_, e)| match &e.what {
        What::CloseRound {
            round: r, measured, ..
        } if Some(r.as_str()) == round => measured.get(&country),
        _ => None,
    });
    f.dimensions
        .iter()
        .flat_map(|d| d.kpis.iter().map(move |k| (d, k)))
        .map(|(d, k)| {
            let mine: Vec<(&ScorecardRecord, &Entry)> = entries
                .iter()
                .filter(|(_, e)| {
                    e.what.country() == Some(country)
                        && matches!(&e.what, What::Assessment { kpi, .. } | What::Override { kpi, .. } if *kpi == k.id)
                })
                .map(|(r, e)| (*r, e))
                .collect();
            let history: Vec<EntryRef> = mine.iter().filter_map(|(r, e)| entry_ref(r, e)).collect();
            let standing = mine
                .iter()
                .rev()
                .find(|(_, e)| Some(e.what.round()) == round)
                .and_then(|(r, e)| entry_ref(r, e));
            let measured = measured::is_measured(&k.id).then(|| live.get(&k.id).cloned()).flatten();
            let (score, source) = match (&standing, measured::is_measured(&k.id)) {
                (Some(e), true) => (Some(e.score), Source::Overridden),
                (Some(e), false) => (Some(e.score), Source::Assessed),
                (None, true) if closed => match frozen.and_then(|m| m.get(&k.id)).copied().flatten() {
                    Some(s) => (Some(s), Source::MeasuredAtClose),
                    None => (None, Source::None),
                },
                (None, true) => match measured.as_ref().and_then(|m| m.score) {
                    Some(s) => (Some(s), Source::Measured),
                    None => (None, Source::None),
                },
                (None, false) => (None, Source::None),
            };
            KpiScore {
                kpi: k.id.clone(),
                dimension: d.id.clone(),
                score,
                source,
                measured,
                entry: standing,
                history,
            }
        })
        .collect()
}

/// Dimension scores, the index and its coverage, from KPI scores.
fn combine(f: &Framework, scores: &[KpiScore]) -> (Vec<DimensionScore>, Option<f64>, f64) {
    let weight = |id: &str| f.kpi(id).map_or(0.0, |(_, k)| k.weight);
    let mean = |of: &mut dyn Iterator<Item = &KpiScore>| {
        let (mut sum, mut weights) = (0.0, 0.0);
        for s in of {
            if let Some(score) = s.score {
                sum += f64::from(score) * weight(&s.kpi);
                weights += weight(&s.kpi);
            }
        }
        ((weights > 0.0).then(|| sum / weights), weights)
    };
    let dimensions = f
        .dimensions
        .iter()
        .map(|d| DimensionScore {
            id: d.id.clone(),
            score: mean(&mut scores.iter().filter(|s| s.dimension == d.id)).0,
        })
        .collect();
    let (index, coverage) = mean(&mut scores.iter());
    (dimensions, index, coverage)
}

fn region(f: &Framework, countries: &[CountryReport]) -> RegionReport {
    let average = |values: &mut dyn Iterator<Item = Option<f64>>| {
        let values: Vec<f64> = values.flatten().collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    };
    let index = average(&mut countries.iter().map(|c| c.index));
    RegionReport {
        dimensions: f
            .dimensions
            .iter()
            .map(|d| DimensionScore {
                id: d.id.clone(),
                score: average(&mut countries.iter().map(|c| {
                    c.dimensions
                        .iter()
                        .find(|s| s.id == d.id)
                        .and_then(|s| s.score)
                })),
            })
            .collect(),
        index,
        level: index.map(|x| f.level(x).name.clone()),
        countries_scored: countries.iter().filter(|c| c.index.is_some()).count(),
    }
}

/// The month (index into `months`) a time falls in.
fn month_of(at_ms: i64, months: &[(Timestamp, String)]) -> Option<usize> {
    months
        .iter()
        .rposition(|(start, _)| at_ms >= start.as_millis())
}
