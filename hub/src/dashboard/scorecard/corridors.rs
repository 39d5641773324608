//! `/scorecard/corridors`: the progress of each paperless corridor, from one country to
//! another for one document type, over the report's twelve months: documents per month,
//! the median time from the hub's acceptance to the recipient's signed acknowledgement, and
//! the share of settled documents the recipient rejected; as charts and as the table they are
//! drawn from.

use maud::{Markup, html};

use super::{
    charts::{self, Axes},
    heatmap,
    layout::{self, Here},
};
use crate::scorecard::report::{CorridorReport, Report};

/// Every word of this page, in one place.
mod text {
    pub const TITLE: &str = "Paperless corridors";
    pub const INTRO: &str = "Each corridor joins two countries' participants for one document type. A document counts in the month the hub accepted it; the median time to acknowledgement is of those acknowledged; the rejection rate is of those settled (acknowledged or rejected).";
    pub const NONE: &str = "No document has travelled between two countries' participants in these twelve months (a participant counts for its country once one is recorded in the trust list).";
    pub const DOCUMENTS: &str = "Documents per month";
    pub const AXIS_DOCUMENTS: &str = "documents accepted";
    pub const MEDIAN: &str = "Median time to acknowledgement";
    pub const AXIS_SECONDS: &str = "seconds";
    pub const AXIS_MILLISECONDS: &str = "milliseconds";
    pub const REJECTION: &str = "Rejection rate";
    pub const AXIS_PERCENT: &str = "% of settled";
    pub const MONTH: &str = "Month";
    pub const COL_DOCUMENTS: &str = "Documents";
    pub const COL_ACKNOWLEDGED: &str = "Acknowledged";
    pub const COL_REJECTED: &str = "Rejected";
    pub const COL_EXPIRED: &str = "Expired";
    pub const COL_MEDIAN: &str = "Median to acknowledgement";
    pub const COL_RATE: &str = "Rejection rate";
    pub const TOTAL: &str = "Twelve months";
    pub fn heading(from: &str, to: &str, document_type: &str) -> String {
        format!("{from} → {to} · {document_type}")
    }
}

/// The page.
pub fn render(r: &Report, operator: &str) -> Markup {
    let body = html! {
        h1 { (text::TITLE) }
        p class="small" { (text::INTRO) }
        @if r.corridors.is_empty() {
            p { (text::NONE) }
        }
        @for c in &r.corridors { (corridor(r, c)) }
        (heatmap::notes(r))
    };
    layout::page(text::TITLE, operator, Here::Corridors, body)
}

/// A country's name as the report gives it, else its code.
fn name(r: &Report, code: &caravan_common::CountryCode) -> String {
    r.countries
        .iter()
        .find(|c| c.country == *code)
        .map_or_else(|| code.to_string(), |c| format!("{} ({code})", c.name))
}

fn corridor(r: &Report, c: &CorridorReport) -> Markup {
    let labels: Vec<String> = c.months.iter().map(|m| m.month.clone()).collect();
    let documents: Vec<Option<f64>> = c.months.iter().map(|m| Some(m.documents as f64)).collect();
    // In milliseconds while every month's is under a second, else in seconds.
    let seconds = c
        .months
        .iter()
        .any(|m| m.median_ack_ms.is_some_and(|ms| ms >= 1000));
    let (unit, per) = if seconds {
        (text::AXIS_SECONDS, 1000.0)
    } else {
        (text::AXIS_MILLISECONDS, 1.0)
    };
    let median: Vec<Option<f64>> = c
        .months
        .iter()
        .map(|m| m.median_ack_ms.map(|ms| ms as f64 / per))
        .collect();
    let rates: Vec<Option<f64>> = c.months.iter().map(|m| m.rejection_rate()).collect();
    let axes = |axis, format: fn(f64) -> String, range, whole| Axes {
        labels: &labels,
        axis,
        range,
        whole,
        format,
    };
    let (documents_total, acknowledged, rejected, expired) =
        c.months.iter().fold((0, 0, 0, 0), |t, m| {
            (
                t.0 + m.documents,
                t.1 + m.acknowledged,
                t.2 + m.rejected,
                t.3 + m.expired,
            )
        });
    let settled = acknowledged + rejected;
    let id = format!("corridor-{}-{}-{}", c.from, c.to, c.document_type);
    html! {
        section id=(id) {
            h2 { (text::heading(&name(r, &c.from), &name(r, &c.to), &c.document_type)) }
            div class="charts" {
                figure {
                    (charts::columns(text::DOCUMENTS, &axes(text::AXIS_DOCUMENTS, |v| format!("{v:.0}"), None, true), &documents))
                    figcaption { (text::DOCUMENTS) }
                }
                figure {
                    (charts::line(text::MEDIAN, &axes(unit, if seconds { |v| format!("{v:.1}") } else { |v| format!("{v:.0}") }, None, !seconds), &median))
                    figcaption { (text::MEDIAN) }
                }
                figure {
                    (charts::columns(text::REJECTION, &axes(text::AXIS_PERCENT, |v| format!("{v:.0}%"), Some((0.0, 100.0)), false), &rates))
                    figcaption { (text::REJECTION) }
                }
            }
            table class="corridor small" {
                tr {
                    th { (text::MONTH) } th { (text::COL_DOCUMENTS) } th { (text::COL_ACKNOWLEDGED) } th { (text::COL_REJECTED) }
                    th { (text::COL_EXPIRED) } th { (text::COL_MEDIAN) } th { (text::COL_RATE) }
                }
                @for m in &c.months {
                    tr {
                        td { (m.month) }
                        td class="num" { (m.documents) }
                        td class="num" { (m.acknowledged) }
                        td class="num" { (m.rejected) }
                        td class="num" { (m.expired) }
                        td class="num" { (m.median_ack_ms.map_or_else(|| "–".into(), layout::duration)) }
                        td class="num" { (m.rejection_rate().map_or_else(|| "–".into(), |p| format!("{p:.1}%"))) }
                    }
                }
                tr {
                    th { (text::TOTAL) }
                    th class="num" { (documents_total) }
                    th class="num" { (acknowledged) }
                    th class="num" { (rejected) }
                    th class="num" { (expired) }
                    th {}
                    th class="num" {
                        @if settled > 0 { (format!("{:.1}%", rejected as f64 * 100.0 / settled as f64)) } @else { "–" }
                    }
                }
            }
        }
    }
}
