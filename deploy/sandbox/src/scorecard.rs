//! A sample assessment round for the Regional Readiness Scorecard, so that a newcomer opening
//! the sandbox's dashboard sees a filled scorecard rather than an empty grid.
//!
//! The scores are sample data, not anyone's assessment: they follow the CAREC framework's own
//! reading of where the members stand on e-CO, SPS and e-invoicing (paper-based Afghanistan,
//! Tajikistan and Turkmenistan at 1-2; transitional and growing Kyrgyz Republic, Mongolia,
//! Pakistan and Azerbaijan at 2-3; advanced Georgia, Uzbekistan and Kazakhstan at 3-4; fully
//! integrated China at 4-5), and every evidence note and the assessor say that they are sample
//! data. Only the assessed KPIs are seeded: the measured ones come from what the sandbox's
//! spokes exchange, save one override that shows how an assessor replaces a measured score
//! with a reason.

use std::path::Path;

use anyhow::{Context, bail};

use caravan_common::{ParticipantId, Timestamp};
use caravan_hub::{
    operator::{Operator, OperatorError},
    scorecard::{Framework, measured},
};
use caravan_proto::v1;

use crate::country_name;

/// Who the sample entries name as their assessor.
pub const ASSESSOR: &str = "Sandbox secretariat (sample data)";
/// How every sample evidence note and reason begins.
pub const SAMPLE_NOTE: &str = "Sandbox sample assessment, not an official score";

/// Where a country stands in the framework's reading, and the scores that reading allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    PaperBased,
    Transitional,
    Advanced,
    Integrated,
}

impl Stage {
    /// As the framework words it.
    pub fn reading(self) -> &'static str {
        match self {
            Self::PaperBased => "paper-based",
            Self::Transitional => "transitional and growing",
            Self::Advanced => "advanced",
            Self::Integrated => "fully integrated",
        }
    }

    /// The lowest and highest sample score of a country at this stage.
    pub fn band(self) -> (u8, u8) {
        match self {
            Self::PaperBased => (1, 2),
            Self::Transitional => (2, 3),
            Self::Advanced => (3, 4),
            Self::Integrated => (4, 5),
        }
    }
}

/// The CAREC members by stage: the columns of [`SCORES`], in this order.
pub const COUNTRIES: [(&str, Stage); 11] = [
    ("AF", Stage::PaperBased),
    ("TJ", Stage::PaperBased),
    ("TM", Stage::PaperBased),
    ("KG", Stage::Transitional),
    ("MN", Stage::Transitional),
    ("PK", Stage::Transitional),
    ("AZ", Stage::Transitional),
    ("GE", Stage::Advanced),
    ("UZ", Stage::Advanced),
    ("KZ", Stage::Advanced),
    ("CN", Stage::Integrated),
];

/// Each assessed KPI of the CAREC framework, and its sample score per country of [`COUNTRIES`].
#[rustfmt::skip]
pub const SCORES: [(&str, [u8; 11]); 16] = [
    //                                AF TJ TM  KG MN PK AZ  GE UZ KZ  CN
    ("institutional-clarity",        [1, 2, 2,  3, 2, 3, 3,  4, 4, 4,  5]),
    ("coordination-mechanisms",      [1, 2, 1,  2, 2, 3, 3,  4, 3, 4,  5]),
    ("governance-effectiveness",     [1, 2, 1,  2, 2, 2, 3,  4, 3, 3,  4]),
    ("implementation-capacity",      [1, 1, 2,  2, 2, 3, 3,  3, 3, 4,  5]),
    ("private-sector-engagement",    [1, 1, 1,  2, 3, 3, 2,  4, 3, 3,  4]),
    ("legal-coverage",               [1, 2, 2,  3, 3, 3, 3,  4, 4, 4,  5]),
    ("international-alignment",      [1, 2, 1,  2, 2, 2, 3,  4, 3, 3,  4]),
    ("legal-recognition",            [1, 2, 2,  3, 3, 3, 3,  4, 4, 4,  5]),
    ("cross-border-legal-readiness", [1, 1, 1,  2, 2, 2, 2,  3, 3, 3,  4]),
    ("system-functionality",         [1, 2, 2,  3, 3, 3, 3,  4, 4, 4,  5]),
    ("system-integration",           [1, 1, 1,  2, 2, 2, 3,  3, 3, 4,  5]),
    ("platform-coverage",            [1, 2, 1,  2, 2, 3, 3,  3, 3, 4,  5]),
    ("emerging-tech-adoption",       [1, 1, 1,  2, 2, 2, 2,  3, 3, 3,  5]),
    ("scalability-potential",        [2, 2, 1,  2, 3, 3, 3,  4, 4, 4,  5]),
    ("innovation-ecosystem",         [1, 1, 1,  2, 2, 3, 2,  3, 3, 4,  5]),
    ("integration-readiness",        [1, 2, 1,  3, 2, 2, 3,  4, 4, 4,  4]),
];

/// The one sample override: a measured KPI's score replaced, with the reason.
pub const OVERRIDE: (&str, &str, u32, &str) = (
    "TJ",
    "data-standards-alignment",
    1,
    "paper certificates only; no electronic documents exchanged yet (sample)",
);

/// What [`seed`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Seeding {
    /// The hub held no scorecard entry: the sample round was recorded.
    Seeded {
        round: String,
        countries: usize,
        kpis: usize,
        assessments: usize,
        overrides: usize,
    },
    /// The hub holds entries already (a sample round from an earlier run, or real ones): none
    /// was added.
    Held { entries: usize },
}

/// The round of `day` (`YYYY-MM-DD`): its year and half, `2026-H2`.
pub fn round_of(day: &str) -> String {
    let year = day.get(..4).unwrap_or("0000");
    let half = match day.get(5..7).and_then(|m| m.parse::<u8>().ok()) {
        Some(1..=6) => "H1",
        _ => "H2",
    };
    format!("{year}-{half}")
}

/// The sample entries, as the operator records them: an assessment per assessed KPI of
/// `framework` per country of [`COUNTRIES`], then [`OVERRIDE`], in round `round`, assessed on
/// `day`.
pub fn requests(
    framework: &Framework,
    round: &str,
    day: &str,
) -> anyhow::Result<Vec<v1::RecordScorecardEntryRequest>> {
    let mut requests = Vec::new();
    for (column, (country, stage)) in COUNTRIES.iter().enumerate() {
        let name = country_name(country.parse::<ParticipantId>()?);
        for kpi in framework
            .dimensions
            .iter()
            .flat_map(|d| &d.kpis)
            .filter(|k| !measured::is_measured(&k.id))
        {
            let Some((_, scores)) = SCORES.iter().find(|(id, _)| *id == kpi.id) else {
                bail!("the sample scorecard has no scores for KPI {}", kpi.id);
            };
            let score = scores[column];
            requests.push(v1::RecordScorecardEntryRequest {
                kind: v1::ScorecardEntryKind::Assessment as i32,
                round: round.into(),
                country: (*country).into(),
                kpi: kpi.id.clone(),
                score: score.into(),
                note: format!(
                    "{SAMPLE_NOTE}: {name} is {} in the CAREC framework's reading of e-CO, SPS and e-invoicing; {} placed at {score} of 5 (1 = {}, 5 = {}).",
                    stage.reading(),
                    kpi.name,
                    kpi.low,
                    kpi.high
                ),
                assessor: ASSESSOR.into(),
                assessed_on: day.into(),
            });
        }
    }
    let (country, kpi, score, reason) = OVERRIDE;
    requests.push(v1::RecordScorecardEntryRequest {
        kind: v1::ScorecardEntryKind::Override as i32,
        round: round.into(),
        country: country.into(),
        kpi: kpi.into(),
        score,
        note: format!("{SAMPLE_NOTE}: {reason}"),
        assessor: ASSESSOR.into(),
        assessed_on: day.into(),
    });
    Ok(requests)
}

/// As the operator of `admin_config` (the sandbox's: `DIR/operator/admin.toml`): record the
/// sample round of this half-year, unless the hub holds scorecard entries already. The round
/// is left open, as a secretariat would leave it while the measured KPIs still move.
pub async fn seed(admin_config: &Path) -> anyhow::Result<Seeding> {
    let operator = Operator::connect(admin_config)?;
    let mut admin = operator.admin();
    let held = admin
        .list_scorecard_entries(v1::ListScorecardEntriesRequest {})
        .await
        .map_err(OperatorError::from)?
        .into_inner()
        .entries
        .len();
    if held > 0 {
        return Ok(Seeding::Held { entries: held });
    }
    let framework = Framework::carec();
    let day = Timestamp::now()
        .to_string()
        .get(..10)
        .unwrap_or_default()
        .to_owned();
    let round = round_of(&day);
    let requests = requests(&framework, &round, &day)?;
    let overrides = requests
        .iter()
        .filter(|r| r.kind == v1::ScorecardEntryKind::Override as i32)
        .count();
    let assessments = requests.len() - overrides;
    for request in requests {
        let what = format!("{} {}", request.country, request.kpi);
        admin
            .record_scorecard_entry(request)
            .await
            .map_err(OperatorError::from)
            .with_context(|| format!("recording the sample scorecard entry for {what}"))?;
    }
    Ok(Seeding::Seeded {
        round,
        countries: COUNTRIES.len(),
        kpis: assessments / COUNTRIES.len(),
        assessments,
        overrides,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_covers_every_assessed_kpi_for_every_member_within_its_stage() {
        let framework = Framework::carec();
        let assessed: Vec<&str> = framework
            .dimensions
            .iter()
            .flat_map(|d| &d.kpis)
            .map(|k| k.id.as_str())
            .filter(|id| !measured::is_measured(id))
            .collect();
        assert_eq!(
            SCORES.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            assessed,
            "the table's rows are the framework's assessed KPIs, in its order"
        );
        let mut members: Vec<&str> = framework.countries.iter().map(|c| c.as_str()).collect();
        let mut ours: Vec<&str> = COUNTRIES.iter().map(|(c, _)| *c).collect();
        members.sort();
        ours.sort();
        assert_eq!(ours, members, "every CAREC member, once");
        for (kpi, scores) in SCORES {
            for ((country, stage), score) in COUNTRIES.iter().zip(scores) {
                let (low, high) = stage.band();
                assert!(
                    (low..=high).contains(&score),
                    "{country} {kpi}: {score} is outside {stage:?}'s {low}-{high}"
                );
            }
        }
        assert!(measured::is_measured(OVERRIDE.1));
    }

    #[test]
    fn every_sample_entry_is_one_the_hub_takes_and_says_it_is_sample_data() {
        use caravan_hub::scorecard::entry::{Rounds, check};
        let framework = Framework::carec();
        let requests = requests(&framework, "2026-H2", "2026-11-30").unwrap();
        assert_eq!(requests.len(), 11 * 16 + 1);
        for r in &requests {
            check(r, &framework, &Rounds::default(), "2026-11-30")
                .unwrap_or_else(|e| panic!("{} {}: {e}", r.country, r.kpi));
            assert!(r.note.starts_with(SAMPLE_NOTE), "{}", r.note);
            assert_eq!(r.assessor, ASSESSOR);
        }
        let tj = requests
            .iter()
            .find(|r| r.country == "TJ" && r.kpi == "legal-coverage")
            .unwrap();
        assert_eq!(
            tj.note,
            "Sandbox sample assessment, not an official score: Tajikistan is paper-based in the CAREC framework's reading of e-CO, SPS and e-invoicing; Legal Coverage placed at 2 of 5 (1 = absent, 5 = comprehensive)."
        );
    }

    #[test]
    fn a_round_is_a_half_year() {
        assert_eq!(round_of("2026-06-30"), "2026-H1");
        assert_eq!(round_of("2026-07-01"), "2026-H2");
        assert_eq!(round_of("2027-01-15"), "2027-H1");
    }
}
