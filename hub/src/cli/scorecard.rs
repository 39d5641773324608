//! `caravan-hub admin scorecard ...`: the Readiness Scorecard through the Admin service:
//! record assessments, overrides and round closes (each answered with its place in the
//! exchange log, checked here against the trust list), list the entries with their
//! signatures checked, show the results, export them as CSV.

use std::fmt::Write as _;

use clap::{Args, Subcommand};

use caravan_common::Timestamp;
use caravan_hub::{
    operator::{Operator, OperatorError},
    scorecard::{
        Report,
        entry::{self, Entry},
        report::{self, CountryReport, KpiScore},
    },
};
use caravan_proto::v1;

#[derive(Subcommand)]
pub enum ScorecardCommand {
    /// Record a score for an assessed KPI, with the evidence it rests on.
    Assess {
        #[command(flatten)]
        score: ScoreArgs,
        /// What the score rests on (a law, a decree, a system in production ...).
        #[arg(long)]
        evidence: String,
    },
    /// Replace a measured KPI's score in a round, with the reason.
    Override {
        #[command(flatten)]
        score: ScoreArgs,
        #[arg(long)]
        reason: String,
    },
    /// Close a round: its entries and the measured scores of this moment stand; later
    /// entries go into a new round.
    Close {
        #[arg(long)]
        round: String,
        #[arg(long, default_value = "")]
        note: String,
        #[arg(long)]
        json: bool,
    },
    /// Every recorded entry, oldest first, with the hub's signature checked.
    Entries {
        #[arg(long)]
        json: bool,
    },
    /// The results: per country the KPI scores with their source, the dimension scores, the
    /// index and level, the trend across rounds; the region; the framework's notes.
    Show {
        /// One country only (ISO 3166-1 alpha-2).
        #[arg(long)]
        country: Option<String>,
        /// The report as JSON (format caravan.scorecard-report.v1).
        #[arg(long)]
        json: bool,
        /// Measure over this many days up to now (default 90).
        #[arg(long, default_value_t = 0)]
        window_days: u32,
    },
    /// The results as CSV, one row per country and KPI, then one per country and dimension
    /// and one per country's index.
    Export {
        /// CSV (the only export format).
        #[arg(long, required = true)]
        csv: bool,
        #[arg(long, default_value_t = 0)]
        window_days: u32,
    },
}

#[derive(Args)]
pub struct ScoreArgs {
    /// The round, e.g. 2026-H2.
    #[arg(long)]
    round: String,
    /// ISO 3166-1 alpha-2 code, e.g. KZ.
    #[arg(long)]
    country: String,
    /// The KPI's id (`scorecard show --json` lists them under framework.dimensions).
    #[arg(long)]
    kpi: String,
    /// 1 to 5.
    #[arg(long)]
    score: u32,
    /// Who assessed: a name and an organisation.
    #[arg(long)]
    assessor: String,
    /// The day of the assessment, YYYY-MM-DD (default: today, UTC).
    #[arg(long = "on", default_value = "")]
    assessed_on: String,
    #[arg(long)]
    json: bool,
}

pub async fn run(operator: &Operator, command: ScorecardCommand) -> anyhow::Result<()> {
    let mut admin = operator.admin();
    let record = |kind: v1::ScorecardEntryKind, s: &ScoreArgs, note: String| {
        v1::RecordScorecardEntryRequest {
            kind: kind as i32,
            round: s.round.clone(),
            country: s.country.clone(),
            kpi: s.kpi.clone(),
            score: s.score,
            note,
            assessor: s.assessor.clone(),
            assessed_on: s.assessed_on.clone(),
        }
    };
    let (request, json) = match command {
        ScorecardCommand::Assess { score, evidence } => (
            record(v1::ScorecardEntryKind::Assessment, &score, evidence),
            score.json,
        ),
        ScorecardCommand::Override { score, reason } => (
            record(v1::ScorecardEntryKind::Override, &score, reason),
            score.json,
        ),
        ScorecardCommand::Close { round, note, json } => (
            v1::RecordScorecardEntryRequest {
                kind: v1::ScorecardEntryKind::CloseRound as i32,
                round,
                note,
                ..Default::default()
            },
            json,
        ),
        ScorecardCommand::Entries { json } => return entries(operator, json).await,
        ScorecardCommand::Show {
            country,
            json,
            window_days,
        } => {
            let report = report(operator, window_days).await?;
            if json {
                let value = match country {
                    None => serde_json::to_value(&report)?,
                    Some(c) => serde_json::to_value(country_of(&report, &c)?)?,
                };
                caravan_common::out!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                caravan_common::out!("{}", show(&report, country.as_deref())?);
            }
            return Ok(());
        }
        ScorecardCommand::Export {
            csv: _,
            window_days,
        } => {
            caravan_common::out!("{}", csv(&report(operator, window_days).await?));
            return Ok(());
        }
    };
    let recorded = admin
        .record_scorecard_entry(request)
        .await
        .map_err(OperatorError::from)?
        .into_inner();
    let record = recorded
        .record
        .ok_or_else(|| anyhow::anyhow!("the hub answered without the record"))?;
    let trust = operator.trust_list().await?;
    let verified = entry::verify(&record, recorded.log_proof.as_ref(), &trust);
    let what = Entry::from_json(&record.entry_json)?;
    if json {
        caravan_common::out!(
            "{}",
            serde_json::json!({
                "id": record.id,
                "log_index": record.log_index,
                "entry": what,
                "verified": verified.is_ok(),
                "tree_size": verified.as_ref().ok().and_then(|v| v.tree_size),
                "problem": verified.as_ref().err(),
            })
        );
    } else {
        caravan_common::out!(
            "recorded scorecard entry {}: {}",
            record.id,
            what.what.describe()
        );
        match &verified {
            Ok(v) => caravan_common::out!(
                "exchange-log entry {}, signed by hub key {}; its inclusion checked under the hub's signed tree head of size {}",
                record.log_index,
                v.key_id,
                v.tree_size
                    .map_or("(no proof given)".into(), |s| s.to_string())
            ),
            Err(problem) => caravan_common::out!(
                "exchange-log entry {}: DOES NOT VERIFY: {problem}",
                record.log_index
            ),
        }
    }
    if let Err(problem) = verified {
        anyhow::bail!("the hub's answer does not verify: {problem}");
    }
    Ok(())
}

async fn report(operator: &Operator, window_days: u32) -> anyhow::Result<Report> {
    let answer = operator
        .admin()
        .scorecard_report(v1::ScorecardReportRequest { window_days })
        .await
        .map_err(OperatorError::from)?
        .into_inner();
    Ok(serde_json::from_slice(&answer.report_json)?)
}

async fn entries(operator: &Operator, json: bool) -> anyhow::Result<()> {
    let list = operator
        .admin()
        .list_scorecard_entries(v1::ListScorecardEntriesRequest {})
        .await
        .map_err(OperatorError::from)?
        .into_inner();
    let trust = operator.trust_list().await?;
    let mut rows = Vec::new();
    for r in &list.entries {
        let signature = match entry::verify(r, None, &trust) {
            Ok(v) => format!("signed by hub key {}", v.key_id),
            Err(e) => format!("DOES NOT VERIFY: {e}"),
        };
        let what = Entry::from_json(&r.entry_json)
            .map(|e| e.what.describe())
            .unwrap_or_else(|e| format!("unreadable: {e}"));
        if json {
            rows.push(serde_json::json!({
                "id": r.id,
                "log_index": r.log_index,
                "recorded_at": Timestamp::from_millis(r.recorded_at_ms),
                "recorded_by": r.recorded_by,
                "entry": serde_json::from_slice::<serde_json::Value>(&r.entry_json).ok(),
                "signature": signature,
            }));
        } else {
            caravan_common::out!(
                "{}  log {}  {}  {}  {what}  ({signature})",
                r.id,
                r.log_index,
                Timestamp::from_millis(r.recorded_at_ms),
                r.recorded_by
            );
        }
    }
    if json {
        caravan_common::out!("{}", serde_json::to_string(&rows)?);
    }
    Ok(())
}

fn country_of<'a>(report: &'a Report, code: &str) -> anyhow::Result<&'a CountryReport> {
    report
        .countries
        .iter()
        .find(|c| c.country.as_str().eq_ignore_ascii_case(code.trim()))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "the framework does not score country {code:?} (it scores {})",
                report
                    .countries
                    .iter()
                    .map(|c| c.country.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

fn score(s: Option<f64>) -> String {
    s.map_or("–".into(), |s| format!("{s:.1}"))
}

/// The report as people read it in a terminal.
fn show(report: &Report, only: Option<&str>) -> anyhow::Result<String> {
    let mut out = String::new();
    let f = &report.framework;
    writeln!(
        out,
        "{} — round {} — measured over {} days to {}",
        f.name,
        report
            .round
            .as_deref()
            .unwrap_or("(none yet: measured KPIs only)"),
        report.window.days,
        report.window.to
    )?;
    let countries: Vec<&CountryReport> = match only {
        Some(code) => vec![country_of(report, code)?],
        None => report.countries.iter().collect(),
    };
    for c in countries {
        writeln!(
            out,
            "\n{} ({}) — index {} ({}), {:.0}% of the weight scored",
            c.name,
            c.country,
            score(c.index),
            c.level.as_deref().unwrap_or("no level"),
            c.coverage
        )?;
        for d in &f.dimensions {
            let ds = c
                .dimensions
                .iter()
                .find(|s| s.id == d.id)
                .and_then(|s| s.score);
            writeln!(out, "  {} ({:.1}%): {}", d.name, d.weight, score(ds))?;
            for k in &d.kpis {
                let Some(s) = c.kpis.iter().find(|s| s.kpi == k.id) else {
                    continue;
                };
                writeln!(
                    out,
                    "    {:<42} {}  {}",
                    k.name,
                    s.score.map_or("–".into(), |s| s.to_string()),
                    evidence(s)
                )?;
            }
        }
        if let [.., before, now] = c.trend.as_slice() {
            let trend: Vec<String> = c
                .trend
                .iter()
                .map(|t| format!("{} {}", t.round, score(t.index)))
                .collect();
            writeln!(out, "  trend: {}", trend.join(" → "))?;
            let changes: Vec<String> = f
                .dimensions
                .iter()
                .map(|d| {
                    let of = |t: &report::RoundScore| {
                        t.dimensions
                            .iter()
                            .find(|s| s.id == d.id)
                            .and_then(|s| s.score)
                    };
                    format!("{} {} → {}", d.name, score(of(before)), score(of(now)))
                })
                .collect();
            writeln!(
                out,
                "  {} against {}: {}",
                now.round,
                before.round,
                changes.join("; ")
            )?;
        }
    }
    if only.is_none() {
        writeln!(
            out,
            "\nRegion: index {} ({}), {} of {} countries scored",
            score(report.region.index),
            report.region.level.as_deref().unwrap_or("no level"),
            report.region.countries_scored,
            report.countries.len()
        )?;
    }
    writeln!(out, "\nNotes:")?;
    for n in &f.notes {
        writeln!(out, "  - {n}")?;
    }
    Ok(out)
}

/// Where a KPI's score comes from, in one line.
fn evidence(s: &KpiScore) -> String {
    let source = s.source.as_str();
    match (&s.entry, &s.measured) {
        (Some(e), Some(m)) => format!(
            "{source} by {} on {}: {} (measured {}; entry {}, log {})",
            e.assessor,
            e.assessed_on,
            e.note,
            m.score.map_or("–".into(), |s| s.to_string()),
            e.id,
            e.log_index
        ),
        (Some(e), None) => format!(
            "{source} by {} on {}: {} (entry {}, log {})",
            e.assessor, e.assessed_on, e.note, e.id, e.log_index
        ),
        (None, Some(m)) => format!(
            "{source}: {}",
            m.figures
                .iter()
                .map(|f| format!("{} {}", f.label, f.value))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        (None, None) => source.to_owned(),
    }
}

/// One CSV field, quoted when it needs to be (RFC 4180).
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// The report as CSV.
fn csv(report: &Report) -> String {
    let mut out = String::from(
        "row,round,country,country_name,dimension,kpi,kpi_name,score,source,weight_percent,assessor,assessed_on,note,entry_id,log_index\n",
    );
    let round = report.round.as_deref().unwrap_or("");
    let mut row = |cells: &[&str]| {
        out.push_str(&cells.iter().map(|c| field(c)).collect::<Vec<_>>().join(","));
        out.push('\n');
    };
    for c in &report.countries {
        for d in &report.framework.dimensions {
            for k in &d.kpis {
                let Some(s) = c.kpis.iter().find(|s| s.kpi == k.id) else {
                    continue;
                };
                let note = match (&s.entry, &s.measured) {
                    (Some(e), _) => e.note.clone(),
                    (None, Some(m)) => m
                        .figures
                        .iter()
                        .map(|f| format!("{}: {}", f.label, f.value))
                        .collect::<Vec<_>>()
                        .join("; "),
                    _ => String::new(),
                };
                let e = s.entry.as_ref();
                row(&[
                    "kpi",
                    round,
                    c.country.as_str(),
                    &c.name,
                    &d.id,
                    &k.id,
                    &k.name,
                    &s.score.map(|s| s.to_string()).unwrap_or_default(),
                    s.source.as_str(),
                    &format!("{:.2}", k.weight),
                    e.map_or("", |e| &e.assessor),
                    e.map_or("", |e| &e.assessed_on),
                    &note,
                    &e.map(|e| e.id.to_string()).unwrap_or_default(),
                    &e.map(|e| e.log_index.to_string()).unwrap_or_default(),
                ]);
            }
            let ds = c
                .dimensions
                .iter()
                .find(|s| s.id == d.id)
                .and_then(|s| s.score);
            row(&[
                "dimension",
                round,
                c.country.as_str(),
                &c.name,
                &d.id,
                "",
                &d.name,
                &ds.map(|s| format!("{s:.2}")).unwrap_or_default(),
                "",
                &format!("{:.2}", d.weight),
                "",
                "",
                "",
                "",
                "",
            ]);
        }
        row(&[
            "index",
            round,
            c.country.as_str(),
            &c.name,
            "",
            "",
            c.level.as_deref().unwrap_or(""),
            &c.index.map(|s| format!("{s:.2}")).unwrap_or_default(),
            "",
            &format!("{:.2}", c.coverage),
            "",
            "",
            "",
            "",
            "",
        ]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_when_they_must_be() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a, b"), "\"a, b\"");
        assert_eq!(field("say \"yes\"\nthen"), "\"say \"\"yes\"\"\nthen\"");
    }
}
