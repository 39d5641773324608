//! `/scorecard`: the regional heat map, countries by dimensions with each country's index and
//! level, coloured on the 1-5 scale, the region's averages under them; the round the scores
//! are of, the rounds so far, the measurement window, and the framework's notes (what was
//! found in its weights and the rules applied), which every report prints whatever it shows.

use maud::{Markup, html};

use super::layout::{self, Here};
use crate::scorecard::Report;

/// Every word of this page, in one place.
mod text {
    pub const TITLE: &str = "Regional Readiness Scorecard";
    pub const COUNTRY: &str = "Country";
    pub const INDEX: &str = "Index";
    pub const LEVEL: &str = "Level";
    pub const COVERAGE: &str = "Coverage";
    pub const REGION: &str = "CAREC region (average)";
    pub const ROUNDS: &str = "Rounds";
    pub const NO_ROUND: &str =
        "No assessment recorded yet: the scores shown are the measured ones only.";
    pub const OPEN: &str = "open";
    pub const CLOSED: &str = "closed ";
    pub const NOTES: &str = "Notes on the framework and the rules (printed with every report)";
    pub const CORRIDORS: &str =
        "The paperless corridors: documents, time to acknowledgement, rejections";
    pub const HOW_TO_READ: &str = "Each cell is a dimension's score, 1 to 5, the weighted mean of its KPIs that have a score; – means none of them has one. Coverage is the share of the index's weight that has a score. Open a country for its KPIs and the evidence under each.";
    pub const UNREADABLE: &str = "Recorded entries that could not be read (kept, not counted): ";
    pub fn round_shown(round: &str) -> String {
        format!("Scores of round {round} (the newest).")
    }
    pub fn entries(n: usize) -> String {
        match n {
            1 => "1 entry".into(),
            n => format!("{n} entries"),
        }
    }
    pub fn window(days: u32) -> String {
        format!("Measured KPIs over the {days} days from ")
    }
    pub fn countries_scored(n: usize) -> String {
        format!("{n} countries with an index")
    }
}

/// The page.
pub fn render(r: &Report, operator: &str) -> Markup {
    let dims = &r.framework.dimensions;
    let region_dim = |id: &str| {
        r.region
            .dimensions
            .iter()
            .find(|d| d.id == id)
            .and_then(|d| d.score)
    };
    let body = html! {
        h1 { (text::TITLE) }
        p { b { (r.framework.name) } " · " span class="muted" { (r.framework.source) } }
        p {
            @match &r.round {
                Some(round) => (text::round_shown(round)),
                None => (text::NO_ROUND),
            }
            " " (text::window(r.window.days)) (r.window.from) " to " (r.window.to) "."
        }
        table id="heatmap" {
            tr {
                th { (text::COUNTRY) }
                @for d in dims { th { (d.name) br; span class="muted small" { (layout::weight(d.weight)) } } }
                th { (text::INDEX) } th { (text::LEVEL) } th { (text::COVERAGE) }
            }
            @for c in &r.countries {
                tr {
                    th {
                        a href=(format!("/scorecard/country/{}", c.country)) { (c.name) }
                        " (" (c.country.as_str()) ")"
                    }
                    @for d in dims {
                        @let s = c.dimensions.iter().find(|x| x.id == d.id).and_then(|x| x.score);
                        td class=(layout::class(s)) title=(format!("{}: {}", d.name, layout::score(s))) { (layout::score(s)) }
                    }
                    td class=(layout::class(c.index)) { (layout::score(c.index)) }
                    td { (c.level.as_deref().unwrap_or("–")) }
                    td class="num" { (layout::percent(c.coverage)) }
                }
            }
            tr class="region" {
                th { (text::REGION) br; span class="muted small" { (text::countries_scored(r.region.countries_scored)) } }
                @for d in dims {
                    @let s = region_dim(&d.id);
                    td class=(layout::class(s)) { (layout::score(s)) }
                }
                td class=(layout::class(r.region.index)) { (layout::score(r.region.index)) }
                td { (r.region.level.as_deref().unwrap_or("–")) }
                td {}
            }
        }
        (layout::legend(&r.framework.levels))
        p class="small" { (text::HOW_TO_READ) }
        p { a href="/scorecard/corridors" { (text::CORRIDORS) } }
        h2 { (text::ROUNDS) }
        @if r.rounds.is_empty() {
            p { (text::NO_ROUND) }
        } @else {
            ul id="rounds" {
                @for round in &r.rounds {
                    li {
                        b { (round.name) } " · "
                        @match round.closed_at {
                            Some(at) => { (text::CLOSED) (at) }
                            None => (text::OPEN),
                        }
                        " · " (text::entries(round.entries))
                    }
                }
            }
        }
        @if !r.unreadable_entries.is_empty() {
            p class="refusal" {
                (text::UNREADABLE)
                (r.unreadable_entries.iter().map(|i| format!("#{i}")).collect::<Vec<_>>().join(", "))
            }
        }
        (notes(r))
    };
    layout::page(text::TITLE, operator, Here::HeatMap, body)
}

/// The framework's notes: what every page of the scorecard prints under its figures.
pub fn notes(r: &Report) -> Markup {
    html! {
        h2 { (text::NOTES) }
        ul class="notes" id="notes" {
            @for n in &r.framework.notes { li { (n) } }
        }
    }
}
