//! What the scorecard's pages share: the page around them (navigation, the stylesheet, the
//! print rules), the headers every answer carries, and how numbers are written (a score with
//! one decimal, a share as a percent, "–" where there is none).

use axum::{
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use maud::{DOCTYPE, Markup, html};

/// Where the stylesheet is served (a file, so that the Content-Security-Policy allows no
/// inline style and no script at all).
pub const STYLESHEET: &str = "/scorecard/style.css";

/// Nothing but this dashboard's own stylesheet and forms; no script, no frame around it.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The sequential palette of the 1-5 scale: ColorBrewer's YlGnBu, which readers with any
/// common colour-vision deficiency see in order; text on the two darkest is white. A cell
/// with no score is grey and says "–".
pub const STYLE: &str = "\
body{font-family:sans-serif;margin:1.5em;color:#111;max-width:90em}\
nav{margin-bottom:1em}nav a{margin-right:1.2em}nav a.here{font-weight:bold;text-decoration:none;color:#111}\
table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #bbb;padding:.3em .6em;text-align:left;vertical-align:top}\
th{background:#f3f3f3}#heatmap th:first-child{white-space:nowrap}.badge{padding:.1em .5em}svg{max-width:100%;height:auto}.num{text-align:right}td.s{text-align:center;font-weight:bold;min-width:4em}\
.s0{background:#e0e0e0;color:#555}.s1{background:#ffffcc}.s2{background:#a1dab4}.s3{background:#41b6c4}\
.s4{background:#2c7fb8;color:#fff}.s5{background:#253494;color:#fff}\
tr.region th,tr.region td{border-top:3px double #777}\
.legend span{display:inline-block;padding:.1em .7em;margin-right:.3em;border:1px solid #bbb}\
.notes li{margin-bottom:.3em}.muted{color:#555}.small{font-size:.9em}\
.evidence td{background:#fafafa;font-size:.92em}.evidence dl{margin:.2em 0}.evidence dt{font-weight:bold;display:inline}\
.evidence dd{display:inline;margin:0 1em 0 .3em}.rule{font-style:italic}\
.charts{display:flex;flex-wrap:wrap;gap:1.5em}figure{margin:0 0 1em 0}figcaption{font-size:.9em;color:#333}\
svg text{font-family:sans-serif;font-size:11px;fill:#222}\
.notice{border:2px solid #2c7fb8;padding:.5em 1em;margin:1em 0}.refusal{border:2px solid #a00;padding:.5em 1em;margin:1em 0}\
form.entry label{display:block;margin:.4em 0}form.entry textarea{width:40em;max-width:100%;height:5em}\
@media print{nav,form,.no-print{display:none}body{margin:0;max-width:none}\
td.s,.legend span,svg{-webkit-print-color-adjust:exact;print-color-adjust:exact}\
figure,table{break-inside:avoid}}";

/// Which page the navigation marks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Here {
    HeatMap,
    Country,
    Corridors,
}

/// The navigation's words (every page's shell).
mod text {
    pub const DASHBOARD: &str = "Hub dashboard";
    pub const HEAT_MAP: &str = "Readiness scorecard";
    pub const CORRIDORS: &str = "Paperless corridors";
    pub const SIGNED_IN: &str = "Signed in as operator ";
}

/// A whole page: its title, the navigation, then `body`.
pub fn page(title: &str, operator: &str, here: Here, body: Markup) -> Markup {
    let link = |href: &str, label: &str, page: Here| {
        html! { a href=(href) class=[(here == page).then_some("here")] { (label) } }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) }
                link rel="stylesheet" href=(STYLESHEET);
            }
            body {
                nav {
                    a href="/dashboard" { (text::DASHBOARD) }
                    (link("/scorecard", text::HEAT_MAP, Here::HeatMap))
                    (link("/scorecard/corridors", text::CORRIDORS, Here::Corridors))
                    span class="muted small" { (text::SIGNED_IN) b { (operator) } }
                }
                (body)
            }
        }
    }
}

/// An HTML answer with the headers every scorecard page carries: never stored, no script,
/// never framed.
pub fn html(status: StatusCode, page: Markup) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        page.into_string(),
    )
        .into_response()
}

/// The stylesheet, as a file.
pub fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        STYLE,
    )
        .into_response()
}

/// A score with one decimal, or "–".
pub fn score(s: Option<f64>) -> String {
    s.map_or_else(|| "–".into(), |s| format!("{s:.1}"))
}

/// A KPI's whole score, or "–".
pub fn kpi_score(s: Option<u8>) -> String {
    s.map_or_else(|| "–".into(), |s| s.to_string())
}

/// The colour class of a score: `s1`..`s5` by the nearest whole score, `s0` for none.
pub fn class(s: Option<f64>) -> String {
    match s {
        Some(s) if s.is_finite() => format!("s s{}", s.round().clamp(1.0, 5.0) as u8),
        _ => "s s0".into(),
    }
}

/// A share in percent, whole.
pub fn percent(p: f64) -> String {
    format!("{p:.0}%")
}

/// A weight in percent: one decimal, two where one would hide a difference.
pub fn weight(w: f64) -> String {
    let one = format!("{w:.1}");
    if (one.parse::<f64>().unwrap_or(w) - w).abs() < 0.005 {
        format!("{one}%")
    } else {
        format!("{w:.2}%")
    }
}

/// A duration in milliseconds, in the unit that reads best.
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0) as f64;
    if ms < 1_000.0 {
        format!("{ms:.0} ms")
    } else if ms < 60_000.0 {
        format!("{:.1} s", ms / 1_000.0)
    } else if ms < 3_600_000.0 {
        format!("{:.1} min", ms / 60_000.0)
    } else {
        format!("{:.1} h", ms / 3_600_000.0)
    }
}

/// The legend of the palette, with the readiness levels' names under it.
pub fn legend(levels: &[crate::scorecard::Level]) -> Markup {
    html! {
        p class="legend small" {
            @for s in 1..=5u8 { span class=(format!("s{s}")) { (s) } }
            span class="s0" { "–" }
            " "
            @for (i, l) in levels.iter().enumerate() {
                @if i > 0 { " · " }
                (l.name) " from " (format!("{:.1}", l.from))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_the_pages_write_them() {
        assert_eq!(score(Some(3.44)), "3.4");
        assert_eq!(score(None), "–");
        assert_eq!(class(Some(3.44)), "s s3");
        assert_eq!(class(Some(4.5)), "s s5");
        assert_eq!(class(Some(0.2)), "s s1");
        assert_eq!(class(None), "s s0");
        assert_eq!(percent(45.4), "45%");
        assert_eq!(weight(5.0), "5.0%");
        assert_eq!(weight(2.5), "2.5%");
        assert_eq!(weight(4.545454), "4.55%");
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(12_300), "12.3 s");
        assert_eq!(duration(90_000), "1.5 min");
        assert_eq!(duration(5_400_000), "1.5 h");
    }
}
