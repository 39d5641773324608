//! The scorecard's charts, drawn as inline SVG on the server: no script, nothing fetched, and
//! they print as they show. Each chart names itself (`role="img"`, a title read by screen
//! readers) and labels its axes; a missing value is drawn as nothing (a gap, never a zero)
//! and written "–".

use maud::{Markup, html};

/// The series' colour (the palette's dark blue) and the region's marker (orange, which stays
/// apart from blue for every common colour-vision deficiency).
const INK: &str = "#2c7fb8";
const MARK: &str = "#d95f02";
const GRID: &str = "#ccc";

fn n(x: f64) -> String {
    format!("{x:.1}")
}

/// One horizontal bar: its label, its value, and a marker to compare it with.
pub struct Bar<'a> {
    pub label: &'a str,
    pub value: Option<f64>,
    pub mark: Option<f64>,
}

/// Horizontal bars on a scale from 0 to `max` with a tick at each whole number; the value
/// written at the end of each bar; `mark_label` names the markers when there are any.
pub fn hbars(title: &str, bars: &[Bar<'_>], max: f64, axis: &str, mark_label: &str) -> Markup {
    let (left, right, top, row) = (230.0, 50.0, 10.0, 28.0);
    let plot = 320.0;
    let width = left + plot + right;
    let height = top + row * bars.len() as f64 + 48.0;
    let x = |v: f64| left + plot * (v / max).clamp(0.0, 1.0);
    let bottom = top + row * bars.len() as f64;
    let marks = bars.iter().any(|b| b.mark.is_some());
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {width} {height}"))
            width=(width) height=(height) role="img" aria-label=(title) {
            title { (title) }
            @for t in 0..=(max as u32) {
                line x1=(n(x(f64::from(t)))) x2=(n(x(f64::from(t)))) y1=(n(top)) y2=(n(bottom)) stroke=(GRID) {}
                text x=(n(x(f64::from(t)))) y=(n(bottom + 14.0)) text-anchor="middle" { (t) }
            }
            text x=(n(left + plot / 2.0)) y=(n(bottom + 30.0)) text-anchor="middle" { (axis) }
            @for (i, b) in bars.iter().enumerate() {
                @let y = top + row * i as f64;
                text x=(n(left - 8.0)) y=(n(y + row / 2.0 + 4.0)) text-anchor="end" { (b.label) }
                @match b.value {
                    Some(v) => {
                        rect x=(n(left)) y=(n(y + 5.0)) width=(n(x(v) - left)) height=(n(row - 10.0)) fill=(INK) {
                            title { (b.label) ": " (format!("{v:.1}")) }
                        }
                        text x=(n(x(v) + 5.0)) y=(n(y + row / 2.0 + 4.0)) { (format!("{v:.1}")) }
                    }
                    None => { text x=(n(left + 5.0)) y=(n(y + row / 2.0 + 4.0)) { "– (no score)" } }
                }
                @if let Some(m) = b.mark {
                    line x1=(n(x(m))) x2=(n(x(m))) y1=(n(y + 2.0)) y2=(n(y + row - 2.0))
                        stroke=(MARK) stroke-width="3" {
                        title { (mark_label) ": " (format!("{m:.1}")) }
                    }
                }
            }
            @if marks {
                line x1=(n(left)) x2=(n(left + 14.0)) y1=(n(bottom + 40.0)) y2=(n(bottom + 40.0)) stroke=(MARK) stroke-width="3" {}
                text x=(n(left + 20.0)) y=(n(bottom + 44.0)) { (mark_label) }
            }
        }
    }
}

/// A value axis from 0 that rounds up to a readable maximum; for counts (`whole`), one whose
/// middle tick is a whole number too.
fn nice_max(values: &[Option<f64>], whole: bool) -> f64 {
    let top = values.iter().flatten().fold(0.0f64, |a, &b| a.max(b));
    if top <= 0.0 {
        return if whole { 2.0 } else { 1.0 };
    }
    let magnitude = 10f64.powf(top.log10().floor());
    let steps: &[f64] = if whole {
        &[2.0, 4.0, 10.0, 20.0]
    } else {
        &[1.0, 2.0, 2.5, 5.0, 10.0]
    };
    steps
        .iter()
        .map(|s| s * magnitude)
        .find(|m| *m >= top)
        .unwrap_or(top)
}

/// How a vertical chart's axes read.
pub struct Axes<'a> {
    /// Under each value, oldest first.
    pub labels: &'a [String],
    /// The value axis's name.
    pub axis: &'a str,
    /// The value axis's range; `None`: from 0 to a readable maximum of the values.
    pub range: Option<(f64, f64)>,
    /// Whether the values are counts (the ticks then whole numbers).
    pub whole: bool,
    /// How a value is written.
    pub format: fn(f64) -> String,
}

struct Frame {
    left: f64,
    top: f64,
    plot_w: f64,
    plot_h: f64,
    lo: f64,
    hi: f64,
}

impl Frame {
    fn new(count: usize, range: (f64, f64)) -> Self {
        let plot_w = (count.max(1) as f64 * 24.0).max(160.0);
        Self {
            left: 58.0,
            top: 12.0,
            plot_w,
            plot_h: 110.0,
            lo: range.0,
            hi: range.1,
        }
    }
    fn width(&self) -> f64 {
        self.left + self.plot_w + 12.0
    }
    fn height(&self) -> f64 {
        self.top + self.plot_h + 46.0
    }
    fn y(&self, v: f64) -> f64 {
        let share = ((v - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0);
        self.top + self.plot_h * (1.0 - share)
    }
    fn slot(&self, count: usize) -> f64 {
        self.plot_w / count.max(1) as f64
    }
    fn center(&self, i: usize, count: usize) -> f64 {
        self.left + self.slot(count) * (i as f64 + 0.5)
    }
}

/// The frame's axes: three ticks on the value axis, each label under its slot.
fn axes(f: &Frame, a: &Axes<'_>) -> Markup {
    let count = a.labels.len();
    let bottom = f.top + f.plot_h;
    // As many labels as fit (about 50 pixels each), the newest always.
    let every = (50.0 / f.slot(count)).ceil().max(1.0) as usize;
    html! {
        @for t in [f.lo, (f.lo + f.hi) / 2.0, f.hi] {
            line x1=(n(f.left)) x2=(n(f.left + f.plot_w)) y1=(n(f.y(t))) y2=(n(f.y(t))) stroke=(GRID) {}
            text x=(n(f.left - 4.0)) y=(n(f.y(t) + 4.0)) text-anchor="end" { ((a.format)(t)) }
        }
        @for (i, l) in a.labels.iter().enumerate() {
            @if (count - 1 - i).is_multiple_of(every) {
                text x=(n(f.center(i, count))) y=(n(bottom + 14.0)) text-anchor="middle" { (l) }
            }
        }
        text x=(n(f.left + f.plot_w / 2.0)) y=(n(bottom + 34.0)) text-anchor="middle" { (a.axis) }
    }
}

/// Vertical bars, one per label.
pub fn columns(title: &str, a: &Axes<'_>, values: &[Option<f64>]) -> Markup {
    let range = a.range.unwrap_or((0.0, nice_max(values, a.whole)));
    let f = Frame::new(a.labels.len(), range);
    let count = a.labels.len();
    let bar = (f.slot(count) * 0.7).max(2.0);
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {} {}", f.width(), f.height()))
            width=(f.width()) height=(f.height()) role="img" aria-label=(title) {
            title { (title) }
            (axes(&f, a))
            @for (i, (label, v)) in a.labels.iter().zip(values).enumerate() {
                @if let Some(v) = v {
                    // A zero is a line on the axis, told apart from no value at all.
                    @let y = f.y(*v).min(f.top + f.plot_h - 1.5);
                    rect x=(n(f.center(i, count) - bar / 2.0)) y=(n(y)) width=(n(bar))
                        height=(n(f.top + f.plot_h - y)) fill=(INK) {
                        title { (label) ": " ((a.format)(*v)) }
                    }
                }
            }
        }
    }
}

/// A line through the values, broken where one is missing, each value a dot with its
/// number above.
pub fn line(title: &str, a: &Axes<'_>, values: &[Option<f64>]) -> Markup {
    let range = a.range.unwrap_or((0.0, nice_max(values, a.whole)));
    let f = Frame::new(a.labels.len(), range);
    let count = a.labels.len();
    let point = |i: usize, v: f64| format!("{},{}", n(f.center(i, count)), n(f.y(v)));
    // Runs of consecutive values.
    let mut runs: Vec<Vec<String>> = vec![Vec::new()];
    for (i, v) in values.iter().enumerate() {
        match v {
            Some(v) => runs.last_mut().expect("one run").push(point(i, *v)),
            None => runs.push(Vec::new()),
        }
    }
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {} {}", f.width(), f.height()))
            width=(f.width()) height=(f.height()) role="img" aria-label=(title) {
            title { (title) }
            (axes(&f, a))
            @for run in runs.iter().filter(|r| r.len() > 1) {
                polyline points=(run.join(" ")) fill="none" stroke=(INK) stroke-width="2" {}
            }
            @for (i, (label, v)) in a.labels.iter().zip(values).enumerate() {
                @if let Some(v) = v {
                    circle cx=(n(f.center(i, count))) cy=(n(f.y(*v))) r="3.5" fill=(INK) {
                        title { (label) ": " ((a.format)(*v)) }
                    }
                    text x=(n(f.center(i, count))) y=(n(f.y(*v) - 7.0)) text-anchor="middle" { ((a.format)(*v)) }
                }
            }
        }
    }
}

/// A small line of 1-5 scores for a table cell, broken where one is missing.
pub fn sparkline(title: &str, values: &[Option<u8>]) -> Markup {
    let (w, h) = (120.0, 24.0);
    let step = w / values.len().max(1) as f64;
    let at = |i: usize, s: u8| {
        (
            step * (i as f64 + 0.5),
            h - 3.0 - (h - 6.0) * (f64::from(s.clamp(1, 5)) - 1.0) / 4.0,
        )
    };
    let mut runs: Vec<Vec<String>> = vec![Vec::new()];
    for (i, v) in values.iter().enumerate() {
        match v {
            Some(s) => {
                let (x, y) = at(i, *s);
                runs.last_mut()
                    .expect("one run")
                    .push(format!("{},{}", n(x), n(y)));
            }
            None => runs.push(Vec::new()),
        }
    }
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {w} {h}"))
            width=(w) height=(h) role="img" aria-label=(title) {
            title { (title) }
            line x1="0" x2=(w) y1=(n(h - 3.0)) y2=(n(h - 3.0)) stroke=(GRID) {}
            @for run in runs.iter().filter(|r| r.len() > 1) {
                polyline points=(run.join(" ")) fill="none" stroke=(INK) stroke-width="1.5" {}
            }
            @for (i, v) in values.iter().enumerate() {
                @if let Some(s) = v {
                    @let (x, y) = at(i, *s);
                    circle cx=(n(x)) cy=(n(y)) r="2" fill=(INK) {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_is_drawn_as_nothing() {
        let labels: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let axes = Axes {
            labels: &labels,
            axis: "documents",
            range: None,
            whole: true,
            format: |v| format!("{v:.0}"),
        };
        let svg = line("t", &axes, &[Some(1.0), None, Some(3.0), Some(4.0)]).into_string();
        // One polyline (c-d); a alone is a dot.
        assert_eq!(svg.matches("<polyline").count(), 1, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 3, "{svg}");
        assert!(svg.contains("role=\"img\"") && svg.contains(">documents</text>"));
        let bars = columns("t", &axes, &[Some(3.0), None, Some(0.0), Some(7.0)]).into_string();
        assert_eq!(bars.matches("<rect").count(), 3, "{bars}");
        // The axis rounds up to 10, its middle 5.
        assert!(
            bars.contains(">10</text>") && bars.contains(">5</text>"),
            "{bars}"
        );
    }

    #[test]
    fn bars_say_when_there_is_no_score() {
        let svg = hbars(
            "Dimensions",
            &[
                Bar {
                    label: "Legal <Maturity>",
                    value: None,
                    mark: Some(2.0),
                },
                Bar {
                    label: "Institutional",
                    value: Some(3.44),
                    mark: None,
                },
            ],
            5.0,
            "score",
            "region",
        )
        .into_string();
        assert!(svg.contains("Legal &lt;Maturity&gt;"), "{svg}");
        assert!(svg.contains("– (no score)"));
        assert!(svg.contains(">3.4</text>"));
        assert!(svg.contains(">region</text>"));
        assert_eq!(nice_max(&[Some(0.3)], false), 0.5);
        assert_eq!(nice_max(&[None], false), 1.0);
        assert_eq!(nice_max(&[Some(1.0)], true), 2.0);
        assert_eq!(nice_max(&[Some(3.0)], true), 4.0);
        assert_eq!(nice_max(&[Some(12.0)], true), 20.0);
    }
}
