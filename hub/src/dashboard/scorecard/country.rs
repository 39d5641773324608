//! `/scorecard/country/{CC}`: one country's scorecard. Its dimensions as bars beside the
//! region's average, its index across rounds, its measured KPIs month by month, and for each
//! dimension its KPIs with where each score comes from and, under each, the evidence a reader
//! needs to trust it or argue with it: an assessment's note, assessor, day, entry and place in
//! the exchange log; a measured score's figures and the rule that turns them into 1-5; an
//! override's reason and the measured score it stands over; and every entry ever recorded for
//! that KPI. Then the form that records an assessment or an override.

use caravan_common::Refusal;
use maud::{Markup, html};

use super::{
    EntryForm,
    charts::{self, Axes, Bar},
    heatmap,
    layout::{self, Here},
};
use crate::scorecard::report::{
    CountryReport, EntryRef, KpiScore, KpiView, Report, RoundScore, Source,
};

/// Every word of this page, in one place.
mod text {
    pub const PARTICIPANTS: &str = "Participants: ";
    pub const NO_PARTICIPANT: &str = "no participant of this country in the trust list";
    pub const INDEX: &str = "Index ";
    pub const LEVEL: &str = "level ";
    pub const COVERAGE: &str = "coverage ";
    pub const COL_INDEX: &str = "Index";
    pub const COL_LEVEL: &str = "Level";
    pub const COL_COVERAGE: &str = "Coverage";
    pub const DIMENSIONS: &str = "Dimensions";
    pub const DIMENSIONS_CHART: &str = "Score per dimension, with the region's average";
    pub const AXIS_SCORE: &str = "score (1 to 5)";
    pub const REGION_MARK: &str = "CAREC region, average";
    pub const TREND: &str = "Trend across rounds";
    pub const TREND_CHART: &str = "The index in each round";
    pub const AXIS_INDEX: &str = "index (1 to 5) by round";
    pub const NO_ROUND: &str = "No round yet: a trend needs two rounds.";
    pub const ROUND: &str = "Round";
    pub const STATE: &str = "State";
    pub const OPEN: &str = "open";
    pub const CLOSED: &str = "closed";
    pub const MONTHLY: &str = "Measured KPIs month by month";
    pub const MONTHLY_NOTE: &str = "Each month's documents alone, by the KPI's rule; – where there was nothing to measure. The KPIs read from the trust list and the certificates are measured as of now only.";
    pub const KPI: &str = "KPI";
    pub const SCORE: &str = "Score";
    pub const SOURCE: &str = "Source";
    pub const LOW: &str = "1 means";
    pub const HIGH: &str = "5 means";
    pub const WEIGHT: &str = "Weight";
    pub const PUBLISHED: &str = "published ";
    pub const EVIDENCE: &str = "Evidence";
    pub const REASON: &str = "Reason";
    pub const ASSESSOR: &str = "Assessor";
    pub const ASSESSED_ON: &str = "Assessed on";
    pub const ENTRY: &str = "Entry";
    pub const LOG_INDEX: &str = "Exchange-log index";
    pub const RECORDED: &str = "Recorded";
    pub const KIND: &str = "Kind";
    pub const STANDS_OVER: &str = "Stands over the measured score";
    pub const FIGURES: &str = "Figures";
    pub const RULE: &str = "Rule: ";
    pub const AT_CLOSE: &str =
        "The score measured when the round closed; the figures below are of the window now.";
    pub const NOTHING_MEASURED: &str = "Nothing to measure in the window.";
    pub const HISTORY: &str = "Every entry for this KPI";
    pub const STANDS: &str = " (stands)";
    pub const FORM: &str = "Record an assessment or an override";
    pub const FORM_NOTE: &str = "An assessment scores an assessed KPI with the evidence it rests on; an override replaces a measured KPI's score in a round, with the reason. Each entry is signed by the hub and written into the exchange log; it is never changed: a newer one for the same round and KPI stands over it, and a closed round takes none.";
    pub const FORM_KIND: &str = "Kind";
    pub const FORM_ASSESSMENT: &str = "assessment (assessed KPI)";
    pub const FORM_OVERRIDE: &str = "override (measured KPI)";
    pub const FORM_ROUND: &str = "Round (for example 2026-H2)";
    pub const FORM_KPI: &str = "KPI";
    pub const FORM_MEASURED: &str = " (measured)";
    pub const FORM_SCORE: &str = "Score (1 to 5)";
    pub const FORM_NOTE_FIELD: &str = "Evidence (assessment) or reason (override)";
    pub const FORM_ASSESSOR: &str = "Assessor (a name and an organisation)";
    pub const FORM_DATE: &str = "Assessed on (empty: today)";
    pub const FORM_SUBMIT: &str = "Record the entry";
    pub const REFUSED: &str = "Not recorded: ";
    pub const NOTHING_CHANGED: &str = " Nothing was changed.";
    pub fn title(name: &str, code: &str) -> String {
        format!("{name} ({code}) · Readiness Scorecard")
    }
    pub fn round(round: Option<&str>) -> String {
        match round {
            Some(r) => format!("Scores of round {r}."),
            None => "No assessment recorded yet: measured scores only.".into(),
        }
    }
    pub fn one_round(round: &str) -> String {
        format!("Only one round so far ({round}): a trend needs two.")
    }
    pub fn recorded(id: u64, log_index: u64, what: &str) -> String {
        format!("Entry #{id} recorded at exchange-log index {log_index}: {what}.")
    }
    pub fn no_assessment(round: Option<&str>) -> String {
        match round {
            Some(r) => format!("No assessment recorded in round {r}."),
            None => "No assessment recorded.".into(),
        }
    }
    pub fn dimension(name: &str, score: &str, weight: &str) -> String {
        format!("{name}: {score} (weight {weight})")
    }
}

/// The form as the page shows it: the token, the values to show again, the refusal of the
/// last post, the entry just recorded.
pub struct FormView<'a> {
    pub token: &'a str,
    pub values: &'a EntryForm,
    pub refusal: Option<&'a Refusal>,
    pub recorded: Option<u64>,
}

/// The page.
pub fn render(r: &Report, c: &CountryReport, operator: &str, form: &FormView<'_>) -> Markup {
    let round = r.round.as_deref();
    let body = html! {
        h1 { (c.name) " (" (c.country.as_str()) ")" }
        p {
            (text::PARTICIPANTS)
            @if c.participants.is_empty() { (text::NO_PARTICIPANT) } @else { (c.participants.join(", ")) }
        }
        p {
            span class=(format!("{} badge", layout::class(c.index))) { (text::INDEX) (layout::score(c.index)) }
            " · " (text::LEVEL) b { (c.level.as_deref().unwrap_or("–")) }
            " · " (text::COVERAGE) (layout::percent(c.coverage))
            " · " (text::round(round))
        }
        @if let Some(id) = form.recorded { (recorded(c, id)) }
        @if let Some(refusal) = form.refusal {
            p class="refusal" role="alert" id="refusal" {
                (text::REFUSED) b { (refusal.code.as_str()) } " " (refusal.detail) (text::NOTHING_CHANGED)
            }
        }
        h2 { (text::DIMENSIONS) }
        (dimension_bars(r, c))
        (layout::legend(&r.framework.levels))
        h2 { (text::TREND) }
        (trend(r, &c.trend))
        h2 { (text::MONTHLY) }
        (monthly(r, c))
        @for d in &r.framework.dimensions {
            @let score = c.dimensions.iter().find(|x| x.id == d.id).and_then(|x| x.score);
            h2 id=(format!("dimension-{}", d.id)) { (text::dimension(&d.name, &layout::score(score), &layout::weight(d.weight))) }
            table class="kpis" {
                tr { th { (text::KPI) } th { (text::SCORE) } th { (text::SOURCE) } th { (text::LOW) } th { (text::HIGH) } th { (text::WEIGHT) } }
                @for k in &d.kpis {
                    @if let Some(s) = c.kpis.iter().find(|s| s.kpi == k.id) {
                        (kpi_rows(k, s, round))
                    }
                }
            }
        }
        (entry_form(r, c, form))
        (heatmap::notes(r))
    };
    layout::page(
        &text::title(&c.name, c.country.as_str()),
        operator,
        Here::Country,
        body,
    )
}

/// The notice of the entry just recorded, found in the report (so it shows what was kept).
fn recorded(c: &CountryReport, id: u64) -> Markup {
    let found = c
        .kpis
        .iter()
        .flat_map(|k| k.history.iter())
        .find(|e| e.id == id);
    html! {
        @if let Some(e) = found {
            p class="notice" role="status" id="recorded" {
                (text::recorded(e.id, e.log_index, &format!("round {} · {} {} · {}", e.round, e.kind, e.score, e.assessor)))
            }
        }
    }
}

fn dimension_bars(r: &Report, c: &CountryReport) -> Markup {
    let bars: Vec<Bar<'_>> = r
        .framework
        .dimensions
        .iter()
        .map(|d| Bar {
            label: &d.name,
            value: c
                .dimensions
                .iter()
                .find(|x| x.id == d.id)
                .and_then(|x| x.score),
            mark: r
                .region
                .dimensions
                .iter()
                .find(|x| x.id == d.id)
                .and_then(|x| x.score),
        })
        .collect();
    html! {
        figure id="dimensions-chart" {
            (charts::hbars(text::DIMENSIONS_CHART, &bars, 5.0, text::AXIS_SCORE, text::REGION_MARK))
            figcaption { (text::DIMENSIONS_CHART) }
        }
    }
}

/// The index across rounds (a chart from two rounds on), and a table with each round's
/// dimension scores beside its index, so that a round reads against the one before.
fn trend(r: &Report, rounds: &[RoundScore]) -> Markup {
    let labels: Vec<String> = rounds.iter().map(|t| t.round.clone()).collect();
    let values: Vec<Option<f64>> = rounds.iter().map(|t| t.index).collect();
    html! {
        @match rounds {
            [] => p { (text::NO_ROUND) },
            [one] => p { (text::one_round(&one.round)) },
            _ => figure id="trend-chart" {
                (charts::line(text::TREND_CHART, &Axes { labels: &labels, axis: text::AXIS_INDEX, range: Some((1.0, 5.0)), whole: false, format: |v| format!("{v:.1}") }, &values))
                figcaption { (text::TREND_CHART) }
            },
        }
        @if !rounds.is_empty() {
            table id="trend" {
                tr {
                    th { (text::ROUND) } th { (text::STATE) }
                    @for d in &r.framework.dimensions { th { (d.name) } }
                    th { (text::COL_INDEX) } th { (text::COL_LEVEL) } th { (text::COL_COVERAGE) }
                }
                @for t in rounds {
                    tr {
                        td { (t.round) }
                        td { (if t.closed { text::CLOSED } else { text::OPEN }) }
                        @for d in &r.framework.dimensions {
                            @let score = t.dimensions.iter().find(|x| x.id == d.id).and_then(|x| x.score);
                            td class=(layout::class(score)) { (layout::score(score)) }
                        }
                        td class=(layout::class(t.index)) { (layout::score(t.index)) }
                        td { (t.level.as_deref().unwrap_or("–")) }
                        td class="num" { (layout::percent(t.coverage)) }
                    }
                }
            }
        }
    }
}

fn monthly(r: &Report, c: &CountryReport) -> Markup {
    // The KPIs the months measure, in the framework's order.
    let kpis: Vec<&KpiView> = r
        .framework
        .dimensions
        .iter()
        .flat_map(|d| d.kpis.iter())
        .filter(|k| c.monthly.iter().any(|m| m.scores.contains_key(&k.id)))
        .collect();
    html! {
        p class="small" { (text::MONTHLY_NOTE) }
        table id="monthly" class="small" {
            tr {
                th { (text::KPI) }
                @for m in &c.monthly { th { (m.month) } }
                th {}
            }
            @for k in &kpis {
                @let scores: Vec<Option<u8>> = c.monthly.iter().map(|m| m.scores.get(&k.id).copied().flatten()).collect();
                tr {
                    th { (k.name) }
                    @for s in &scores {
                        td class=(layout::class(s.map(f64::from))) { (layout::kpi_score(*s)) }
                    }
                    td { (charts::sparkline(&k.name, &scores)) }
                }
            }
        }
    }
}

/// A KPI's row, and under it the evidence and its history.
fn kpi_rows(k: &KpiView, s: &KpiScore, round: Option<&str>) -> Markup {
    let weight = if (k.weight - k.published_weight).abs() > 1e-9 {
        format!(
            "{} ({}{})",
            layout::weight(k.weight),
            text::PUBLISHED,
            layout::weight(k.published_weight)
        )
    } else {
        layout::weight(k.weight)
    };
    html! {
        tr id=(format!("kpi-{}", k.id)) {
            th { (k.name) }
            td class=(layout::class(s.score.map(f64::from))) { (layout::kpi_score(s.score)) }
            td class="source" { (s.source.as_str()) }
            td { (k.low) }
            td { (k.high) }
            td class="num" { (weight) }
        }
        tr class="evidence" {
            td colspan="6" {
                (evidence(k, s, round))
                @if !s.history.is_empty() { (history(s)) }
            }
        }
    }
}

fn entry_facts(e: &EntryRef, note_label: &str) -> Markup {
    html! {
        dl {
            dt { (note_label) } dd class="note" { (e.note) }
        }
        dl {
            dt { (text::ASSESSOR) } dd { (e.assessor) }
            dt { (text::ASSESSED_ON) } dd { (e.assessed_on) }
            dt { (text::ENTRY) } dd { "#" (e.id) }
            dt { (text::LOG_INDEX) } dd { (e.log_index) }
        }
    }
}

fn figures_and_rule(k: &KpiView, s: &KpiScore) -> Markup {
    html! {
        @if let Some(m) = &s.measured {
            dl class="figures" {
                dt { (text::FIGURES) }
                @for f in &m.figures { dd { (f.label) ": " b { (f.value) } } }
            }
        }
        @if let Some(rule) = &k.rule { p class="rule" { (text::RULE) (rule) } }
    }
}

fn evidence(k: &KpiView, s: &KpiScore, round: Option<&str>) -> Markup {
    html! {
        @match (s.source, &s.entry) {
            (Source::Assessed, Some(e)) => (entry_facts(e, text::EVIDENCE)),
            (Source::Overridden, Some(e)) => {
                (entry_facts(e, text::REASON))
                dl { dt { (text::STANDS_OVER) } dd { (layout::kpi_score(s.measured.as_ref().and_then(|m| m.score))) } }
                (figures_and_rule(k, s))
            }
            (Source::Measured, _) => (figures_and_rule(k, s)),
            (Source::MeasuredAtClose, _) => {
                p class="muted" { (text::AT_CLOSE) }
                (figures_and_rule(k, s))
            }
            _ if k.rule.is_some() => {
                p class="muted" { (text::NOTHING_MEASURED) }
                (figures_and_rule(k, s))
            }
            _ => p class="muted" { (text::no_assessment(round)) },
        }
    }
}

fn history(s: &KpiScore) -> Markup {
    let standing = s.entry.as_ref().map(|e| e.id);
    html! {
        table class="history small" {
            caption class="muted" { (text::HISTORY) }
            tr {
                th { (text::ROUND) } th { (text::KIND) } th { (text::SCORE) } th { (text::EVIDENCE) " / " (text::REASON) }
                th { (text::ASSESSOR) } th { (text::ASSESSED_ON) } th { (text::ENTRY) } th { (text::LOG_INDEX) } th { (text::RECORDED) }
            }
            @for e in &s.history {
                tr id=(format!("entry-{}", e.id)) {
                    td { (e.round) }
                    td { (e.kind) @if standing == Some(e.id) { (text::STANDS) } }
                    td class="num" { (e.score) }
                    td { (e.note) }
                    td { (e.assessor) }
                    td { (e.assessed_on) }
                    td { "#" (e.id) }
                    td class="num" { (e.log_index) }
                    td { (e.recorded_by) br; (e.recorded_at) }
                }
            }
        }
    }
}

/// The newest round that is still open: where an entry goes unless the operator says.
fn open_round(r: &Report) -> Option<&str> {
    r.rounds
        .last()
        .filter(|x| x.closed_at.is_none())
        .map(|x| x.name.as_str())
}

fn entry_form(r: &Report, c: &CountryReport, form: &FormView<'_>) -> Markup {
    let v = form.values;
    let round = if v.round.is_empty() {
        open_round(r).unwrap_or_default()
    } else {
        v.round.as_str()
    };
    let today = r.generated_at.to_string();
    let today = today.get(..10).unwrap_or_default();
    html! {
        h2 { (text::FORM) }
        form class="entry" method="post" action="/scorecard/entries" {
            p class="small" { (text::FORM_NOTE) }
            input type="hidden" name="token" value=(form.token);
            input type="hidden" name="country" value=(c.country.as_str());
            label { (text::FORM_KIND) " "
                select name="kind" {
                    option value="assessment" selected[v.kind != "override"] { (text::FORM_ASSESSMENT) }
                    option value="override" selected[v.kind == "override"] { (text::FORM_OVERRIDE) }
                }
            }
            label { (text::FORM_ROUND) " "
                input type="text" name="round" value=(round) required maxlength="32" pattern="[A-Za-z0-9._\\-]{1,32}";
            }
            label { (text::FORM_KPI) " "
                select name="kpi" {
                    @for d in &r.framework.dimensions {
                        optgroup label=(d.name) {
                            @for k in &d.kpis {
                                option value=(k.id) selected[v.kpi == k.id] {
                                    (k.name) @if k.rule.is_some() { (text::FORM_MEASURED) }
                                }
                            }
                        }
                    }
                }
            }
            label { (text::FORM_SCORE) " "
                input type="number" name="score" min="1" max="5" step="1" value=(v.score) required;
            }
            label { (text::FORM_NOTE_FIELD) br;
                textarea name="note" maxlength="4000" required { (v.note) }
            }
            label { (text::FORM_ASSESSOR) " "
                input type="text" name="assessor" value=(v.assessor) maxlength="200" required size="40";
            }
            label { (text::FORM_DATE) " "
                input type="date" name="assessed_on" value=(v.assessed_on) max=(today);
            }
            button type="submit" { (text::FORM_SUBMIT) }
        }
    }
}
