//! A readiness scorecard framework as data: dimensions, their KPIs with the two ends of each
//! 1-5 scale and their weights, and the thresholds of the readiness levels. The CAREC scorecard
//! ships in `hub/scorecard/carec.toml`; another can be loaded instead.
//!
//! Why a checked load: the published weights do not add up (a blank subtotal, KPIs summing to
//! less than their dimension's subtotal), and a score computed from them silently would weigh
//! the dimensions otherwise than the framework says. Loading reports every such finding and
//! applies one stated rule for each, so that every report that uses the framework can print
//! what was done:
//!
//! 1. a blank subtotal is the sum of its KPIs' weights;
//! 2. KPI weights that do not sum to their dimension's subtotal are scaled to it;
//! 3. subtotals that do not sum to 100 are scaled to 100.
//!
//! What no rule can settle is refused: a KPI (by id or name) in two dimensions, a weight not
//! above zero, a scale end left empty, levels whose thresholds do not rise within 1 to 5.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use caravan_common::country::CountryCode;

/// The CAREC scorecard as published.
pub const CAREC: &str = include_str!("../../scorecard/carec.toml");

/// Weights are compared to this many hundredths of a percent.
const EPSILON: f64 = 1e-6;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrameworkFile {
    name: String,
    source: String,
    /// The countries it scores (ISO 3166-1 alpha-2).
    countries: Vec<String>,
    levels: LevelsFile,
    dimensions: Vec<DimensionFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LevelsFile {
    /// Whether the thresholds are the framework's own (the level names always are).
    published: bool,
    thresholds: Vec<Level>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DimensionFile {
    id: String,
    name: String,
    /// Percent; absent where the framework leaves it blank.
    subtotal: Option<f64>,
    kpis: Vec<KpiFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KpiFile {
    id: String,
    name: String,
    /// What a score of 1 means.
    low: String,
    /// What a score of 5 means.
    high: String,
    /// Percent, as published.
    weight: f64,
}

/// A readiness level: from its threshold on the 1-5 index up to the next level's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Level {
    pub name: String,
    pub from: f64,
}

/// A KPI with its weight as published and as applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Kpi {
    pub id: String,
    pub name: String,
    pub low: String,
    pub high: String,
    pub published_weight: f64,
    /// Percent of the whole index, after the rules: the weights of all KPIs sum to 100.
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dimension {
    pub id: String,
    pub name: String,
    /// As published; `None` where it was left blank.
    pub published_subtotal: Option<f64>,
    /// Percent of the whole index, after the rules.
    pub weight: f64,
    pub kpis: Vec<Kpi>,
}

/// What loading found in the weights, and the rule applied to it.
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    /// Rule 1: the subtotal is taken as the sum of the KPIs' weights.
    BlankSubtotal { dimension: String, kpis: f64 },
    /// Rule 2: the KPI weights are scaled to the subtotal.
    KpisDoNotMatchSubtotal {
        dimension: String,
        kpis: f64,
        subtotal: f64,
    },
    /// Rule 3: the subtotals are scaled to 100.
    SubtotalsDoNotMakeHundred { total: f64 },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BlankSubtotal { dimension, kpis } => write!(
                f,
                "{dimension}: the subtotal is left blank; taken as the sum of its KPIs' weights, {kpis}%"
            ),
            Self::KpisDoNotMatchSubtotal {
                dimension,
                kpis,
                subtotal,
            } => write!(
                f,
                "{dimension}: its KPIs' weights sum to {kpis}%, its subtotal is {subtotal}%; the KPI weights are scaled to the subtotal"
            ),
            Self::SubtotalsDoNotMakeHundred { total } => write!(
                f,
                "the dimensions' subtotals sum to {total}%; they are scaled to 100%"
            ),
        }
    }
}

/// A framework that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
pub enum FrameworkError {
    #[error("the framework is not valid TOML of the expected shape: {0}")]
    Shape(String),
    #[error("{0}")]
    Refused(String),
}

/// A checked framework: its dimensions with the weights applied, what was found, and the
/// levels.
#[derive(Debug, Clone, PartialEq)]
pub struct Framework {
    pub name: String,
    pub source: String,
    /// The countries it scores, in the file's order.
    pub countries: Vec<CountryCode>,
    pub dimensions: Vec<Dimension>,
    pub findings: Vec<Finding>,
    pub levels: Vec<Level>,
    /// Whether the levels' thresholds are the framework's own.
    pub levels_published: bool,
}

impl Framework {
    /// The CAREC scorecard shipped with the hub.
    pub fn carec() -> Self {
        Self::parse(CAREC).expect("the shipped CAREC framework loads")
    }

    /// Load and check a framework from its TOML text.
    pub fn parse(text: &str) -> Result<Self, FrameworkError> {
        let file: FrameworkFile =
            toml::from_str(text).map_err(|e| FrameworkError::Shape(e.to_string()))?;
        check_shape(&file)?;
        let mut findings = Vec::new();
        // Rules 1 and 2: each dimension's subtotal, and its KPIs scaled to it.
        let mut dimensions = Vec::with_capacity(file.dimensions.len());
        for d in &file.dimensions {
            let kpis: f64 = d.kpis.iter().map(|k| k.weight).sum();
            let subtotal = match d.subtotal {
                None => {
                    findings.push(Finding::BlankSubtotal {
                        dimension: d.name.clone(),
                        kpis,
                    });
                    kpis
                }
                Some(subtotal) => {
                    if (subtotal - kpis).abs() > EPSILON {
                        findings.push(Finding::KpisDoNotMatchSubtotal {
                            dimension: d.name.clone(),
                            kpis,
                            subtotal,
                        });
                    }
                    subtotal
                }
            };
            dimensions.push((d, subtotal, kpis));
        }
        // Rule 3: the subtotals to 100.
        let total: f64 = dimensions.iter().map(|(_, subtotal, _)| subtotal).sum();
        if (total - 100.0).abs() > EPSILON {
            findings.push(Finding::SubtotalsDoNotMakeHundred { total });
        }
        let dimensions = dimensions
            .into_iter()
            .map(|(d, subtotal, kpis)| {
                let weight = subtotal * 100.0 / total;
                Dimension {
                    id: d.id.clone(),
                    name: d.name.clone(),
                    published_subtotal: d.subtotal,
                    weight,
                    kpis: d
                        .kpis
                        .iter()
                        .map(|k| Kpi {
                            id: k.id.clone(),
                            name: k.name.clone(),
                            low: k.low.clone(),
                            high: k.high.clone(),
                            published_weight: k.weight,
                            weight: k.weight * weight / kpis,
                        })
                        .collect(),
                }
            })
            .collect();
        let countries = file
            .countries
            .iter()
            .map(|c| CountryCode::assigned(c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| FrameworkError::Refused(format!("countries: {e}")))?;
        Ok(Self {
            name: file.name,
            source: file.source,
            countries,
            dimensions,
            findings,
            levels: file.levels.thresholds,
            levels_published: file.levels.published,
        })
    }

    /// The KPI `id`, with its dimension.
    pub fn kpi(&self, id: &str) -> Option<(&Dimension, &Kpi)> {
        self.dimensions
            .iter()
            .find_map(|d| d.kpis.iter().find(|k| k.id == id).map(|k| (d, k)))
    }

    /// The readiness level of an index on the 1-5 scale.
    pub fn level(&self, index: f64) -> &Level {
        self.levels
            .iter()
            .rev()
            .find(|l| index >= l.from)
            .unwrap_or(&self.levels[0])
    }

    /// What every report using this framework prints under its figures: each finding with
    /// the rule applied, and where the levels' thresholds come from.
    pub fn notes(&self) -> Vec<String> {
        let mut notes: Vec<String> = self.findings.iter().map(ToString::to_string).collect();
        if !self.levels_published {
            notes.push(format!(
                "the readiness levels' thresholds ({}) are not published by the framework; they are Caravan's reading",
                self.levels
                    .iter()
                    .map(|l| format!("{} from {}", l.name, l.from))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        notes
    }
}

/// What no rule settles: refused with the problem named.
fn check_shape(file: &FrameworkFile) -> Result<(), FrameworkError> {
    let refuse = |m: String| Err(FrameworkError::Refused(m));
    if file.dimensions.is_empty() {
        return refuse("the framework has no dimension".into());
    }
    if file.countries.is_empty() {
        return refuse("the framework names no country to score".into());
    }
    // Where each KPI id and name was seen first, by dimension.
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    let mut dimension_ids: BTreeMap<&str, ()> = BTreeMap::new();
    for d in &file.dimensions {
        if dimension_ids.insert(&d.id, ()).is_some() {
            return refuse(format!("dimension {} is named twice", d.id));
        }
        if d.kpis.is_empty() {
            return refuse(format!("{}: no KPI", d.name));
        }
        if let Some(subtotal) = d.subtotal
            && subtotal <= 0.0
        {
            return refuse(format!("{}: a subtotal must be above 0", d.name));
        }
        for k in &d.kpis {
            if k.weight <= 0.0 || !k.weight.is_finite() {
                return refuse(format!("{} / {}: a weight must be above 0", d.name, k.name));
            }
            if k.low.trim().is_empty() || k.high.trim().is_empty() {
                return refuse(format!(
                    "{} / {}: both ends of the 1-5 scale must say what they mean",
                    d.name, k.name
                ));
            }
            for key in [
                format!("id {}", k.id.to_lowercase()),
                format!("name {}", k.name.to_lowercase()),
            ] {
                if let Some(first) = seen.insert(key, &d.name) {
                    return refuse(format!(
                        "KPI {} is in two dimensions ({first} and {}): a score could not be counted once",
                        k.name, d.name
                    ));
                }
            }
        }
    }
    let levels = &file.levels.thresholds;
    let rising = levels.windows(2).all(|w| w[0].from < w[1].from);
    if levels.is_empty() || levels[0].from != 1.0 || !rising || levels.iter().any(|l| l.from > 5.0)
    {
        return refuse("levels: thresholds must start at 1 and rise, within 1 to 5".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_carec_weights_are_caught_and_the_rules_applied() {
        let f = Framework::carec();
        // The seed's two inconsistencies, found and named.
        assert_eq!(
            f.findings,
            vec![
                Finding::BlankSubtotal {
                    dimension: "Legal Maturity".into(),
                    kpis: 20.0
                },
                Finding::KpisDoNotMatchSubtotal {
                    dimension: "Innovation & Emerging Tech Readiness".into(),
                    kpis: 8.0,
                    subtotal: 10.0
                },
            ]
        );
        // With the blank subtotal taken as 20%, the subtotals make 100%.
        let weights: Vec<f64> = f.dimensions.iter().map(|d| d.weight).collect();
        assert_eq!(weights, vec![25.0, 20.0, 25.0, 20.0, 10.0]);
        // Innovation's four KPIs scaled from 2% to 2.5% each; every KPI together makes 100%.
        let innovation = &f.dimensions[4];
        assert!(
            innovation
                .kpis
                .iter()
                .all(|k| (k.weight - 2.5).abs() < EPSILON)
        );
        let total: f64 = f
            .dimensions
            .iter()
            .flat_map(|d| d.kpis.iter().map(|k| k.weight))
            .sum();
        assert!((total - 100.0).abs() < EPSILON, "{total}");
        let published: f64 = f
            .dimensions
            .iter()
            .flat_map(|d| d.kpis.iter().map(|k| k.published_weight))
            .sum();
        assert!(
            (published - 98.0).abs() < EPSILON,
            "as published: {published}"
        );
        // Printed with every report: each rule, and the unpublished thresholds.
        let notes = f.notes();
        assert_eq!(notes.len(), 3);
        assert!(notes[0].contains("left blank"), "{notes:?}");
        assert!(notes[1].contains("scaled to the subtotal"), "{notes:?}");
        assert!(notes[2].contains("not published"), "{notes:?}");
        assert_eq!(f.level(1.0).name, "nascent");
        assert_eq!(f.level(3.4).name, "established");
        assert_eq!(f.level(5.0).name, "advanced");
    }

    /// A framework made of `dimensions` lines (TOML), with the CAREC levels.
    fn framework(dimensions: &str) -> Result<Framework, FrameworkError> {
        Framework::parse(&format!(
            "name = \"t\"\nsource = \"t\"\ncountries = [\"KZ\"]\n[levels]\npublished = true\nthresholds = [{{ name = \"low\", from = 1.0 }}, {{ name = \"high\", from = 3.0 }}]\n{dimensions}"
        ))
    }

    const KPI: &str = "low = \"none\", high = \"all\"";

    #[test]
    fn subtotals_that_do_not_make_a_hundred_are_scaled_and_said() {
        let f = framework(&format!(
            "[[dimensions]]\nid = \"a\"\nname = \"A\"\nsubtotal = 30\nkpis = [{{ id = \"a1\", name = \"A1\", {KPI}, weight = 30 }}]\n[[dimensions]]\nid = \"b\"\nname = \"B\"\nsubtotal = 30\nkpis = [{{ id = \"b1\", name = \"B1\", {KPI}, weight = 30 }}]\n"
        ))
        .unwrap();
        assert_eq!(
            f.findings,
            vec![Finding::SubtotalsDoNotMakeHundred { total: 60.0 }]
        );
        assert_eq!(f.dimensions[0].weight, 50.0);
        assert_eq!(f.dimensions[1].kpis[0].weight, 50.0);
    }

    #[test]
    fn what_no_rule_settles_is_refused_with_the_problem_named() {
        let refused = |dimensions: &str| match framework(dimensions) {
            Err(FrameworkError::Refused(m)) => m,
            other => panic!("{other:?}"),
        };
        let twice = refused(&format!(
            "[[dimensions]]\nid = \"a\"\nname = \"A\"\nsubtotal = 50\nkpis = [{{ id = \"x\", name = \"Shared\", {KPI}, weight = 50 }}]\n[[dimensions]]\nid = \"b\"\nname = \"B\"\nsubtotal = 50\nkpis = [{{ id = \"y\", name = \"shared\", {KPI}, weight = 50 }}]\n"
        ));
        assert!(twice.contains("in two dimensions (A and B)"), "{twice}");
        let zero = refused(&format!(
            "[[dimensions]]\nid = \"a\"\nname = \"A\"\nkpis = [{{ id = \"x\", name = \"X\", {KPI}, weight = 0 }}]\n"
        ));
        assert!(zero.contains("weight must be above 0"), "{zero}");
        let blank = refused(
            "[[dimensions]]\nid = \"a\"\nname = \"A\"\nkpis = [{ id = \"x\", name = \"X\", low = \"\", high = \"all\", weight = 1 }]\n",
        );
        assert!(blank.contains("both ends"), "{blank}");
        assert!(matches!(
            framework("[[dimensions]]\nid = \"a\"\n"),
            Err(FrameworkError::Shape(_))
        ));
    }
}
