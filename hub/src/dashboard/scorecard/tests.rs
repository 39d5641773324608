//! The scorecard's pages rendered from a report built by `scorecard::report::build` from a
//! few entries and messages, and judged by what a reader finds on them.

use caravan_common::{
    CountryCode, Timestamp,
    signing::SigningKey,
    trust::{ListInfo, Participant, ParticipantStage, ParticipantStatus, TrustSet},
};

use super::*;
use crate::{
    scorecard::{
        Framework,
        entry::{self, What},
        measured, report,
    },
    store::{ExchangeFact, MessageState, ScorecardRecord},
};

const HOUR_MS: i64 = 60 * 60 * 1000;

fn kz() -> CountryCode {
    "KZ".parse().unwrap()
}

fn entry(what: What, id: u64, log_index: u64) -> ScorecardRecord {
    let (mut record, _) = entry::record(
        &what,
        id,
        &Framework::carec(),
        &SigningKey::generate(),
        "operator:ops",
        Timestamp::now(),
    );
    record.log_index = log_index;
    record
}

fn assessment(round: &str, kpi: &str, score: u8, evidence: &str) -> What {
    What::Assessment {
        round: round.into(),
        country: kz(),
        kpi: kpi.into(),
        score,
        evidence: evidence.into(),
        assessor: "A. <Nurlanova>, CAREC secretariat".into(),
        assessed_on: "2026-01-15".into(),
    }
}

fn participant(id: &str) -> Participant {
    Participant {
        id: id.parse().unwrap(),
        name: format!("Participant {id}"),
        contact: String::new(),
        status: ParticipantStatus::Active,
        country: Some(id.parse().unwrap()),
        issuing_authorities: Vec::new(),
        stage: ParticipantStage::Production,
    }
}

/// A report with KZ's Institutional Clarity assessed 4 (evidence with markup in it), its Data
/// Exchange Capability overridden with 2, and three e-COs from KZ to CN acknowledged an hour
/// ago; `more` entries after those.
fn report_with(more: Vec<ScorecardRecord>) -> Report {
    let framework = Framework::carec();
    let trust = TrustSet::new(
        ListInfo::default(),
        [participant("KZ"), participant("CN")],
        [],
        [],
        [],
    )
    .unwrap();
    let now = Timestamp::now();
    let facts: Vec<ExchangeFact> = (0..3)
        .map(|i| ExchangeFact {
            sender: "KZ".into(),
            recipient: "CN".into(),
            document_type: "e-co".into(),
            accepted_at_ms: now.as_millis() - HOUR_MS - i * 1000,
            state: MessageState::Acknowledged,
            delivered_at_ms: Some(now.as_millis() - HOUR_MS + 500),
            settled_at_ms: Some(now.as_millis() - HOUR_MS + 2000),
            rejection: Vec::new(),
        })
        .collect();
    let mut entries = vec![
        entry(
            assessment(
                "2026-H1",
                "institutional-clarity",
                4,
                "Decree <No. 12> & the \"single window\" law",
            ),
            1,
            41,
        ),
        entry(
            What::Override {
                round: "2026-H1".into(),
                country: kz(),
                kpi: "data-exchange-capability".into(),
                score: 2,
                reason: "the spokes were <down> for a week".into(),
                assessor: "B. Assessor".into(),
                assessed_on: "2026-01-16".into(),
            },
            2,
            42,
        ),
    ];
    entries.extend(more);
    let state = measured::State {
        trust: &trust,
        certificates: &[],
        reports: &[],
        now,
    };
    let mut exchange = report::Exchange::new(&state, 0);
    for f in &facts {
        exchange.add(f, &trust);
    }
    report::build(&report::Inputs {
        framework: &framework,
        entries: &entries,
        exchange: &exchange,
        state,
    })
}

fn country_page(r: &Report, form: &country::FormView<'_>) -> String {
    let c = find(r, "KZ").expect("KZ is scored");
    country::render(r, c, "ops", form).into_string()
}

fn plain_form(token: &str) -> country::FormView<'_> {
    country::FormView {
        token,
        values: Box::leak(Box::default()),
        refusal: None,
        recorded: None,
    }
}

fn assert_has(page: &str, texts: &[&str]) {
    for text in texts {
        assert!(page.contains(text), "{text:?} missing:\n{page}");
    }
}

#[test]
fn the_heat_map_shows_each_country_by_dimension_and_always_the_notes() {
    let mut r = report_with(Vec::new());
    r.framework.name = "CAREC <Scorecard>".into();
    let page = heatmap::render(&r, "o<p>s").into_string();
    assert_has(
        &page,
        &[
            "CAREC &lt;Scorecard&gt;",
            "<b>o&lt;p&gt;s</b>",
            "<a href=\"/scorecard/country/KZ\">Kazakhstan</a> (KZ)",
            "<a href=\"/scorecard/country/CN\">China</a> (CN)",
            "Institutional Readiness",
            "Legal Maturity",
            // KZ: Institutional from its one assessed KPI; nothing Legal.
            "title=\"Institutional Readiness: 4.0\">4.0</td>",
            "<td class=\"s s0\" title=\"Legal Maturity: –\">–</td>",
            "CAREC region (average)",
            "Scores of round 2026-H1 (the newest).",
            "Measured KPIs over the 90 days from ",
            "<b>2026-H1</b> · open · 2 entries",
            "href=\"/scorecard/corridors\"",
            // The framework's notes, whatever else the page shows.
            "Legal Maturity: the subtotal is left blank",
            "they are Caravan's reading",
        ],
    );
    for note in &r.framework.notes {
        let escaped = maud::html! { (note) }.into_string();
        assert!(page.contains(&escaped), "note {note:?} missing");
    }
    assert!(!page.contains("<script"), "{page}");
    assert!(!page.contains("http-equiv=\"refresh\""));
    assert!(page.contains("<link rel=\"stylesheet\" href=\"/scorecard/style.css\">"));
}

#[test]
fn a_country_page_shows_the_evidence_under_each_kpi() {
    let r = report_with(Vec::new());
    let page = country_page(&r, &plain_form("tok"));
    assert_has(
        &page,
        &[
            "<h1>Kazakhstan (KZ)</h1>",
            "Participants: KZ",
            // The assessment: evidence escaped, assessor, day, entry, log index.
            "Decree &lt;No. 12&gt; &amp; the &quot;single window&quot; law",
            "A. &lt;Nurlanova&gt;, CAREC secretariat",
            "<dt>Assessed on</dt><dd>2026-01-15</dd>",
            "<dt>Entry</dt><dd>#1</dd>",
            "<dt>Exchange-log index</dt><dd>41</dd>",
            "<td class=\"source\">assessed</td>",
            // The override: its reason, and the measured score it stands over.
            "<td class=\"source\">overridden</td>",
            "the spokes were &lt;down&gt; for a week",
            "<dt>Stands over the measured score</dt>",
            // A measured KPI: its figures and its rule, under it.
            "<td class=\"source\">measured</td>",
            "Rule: Documents the country sent or received (n)",
            "<dt>Figures</dt>",
            // An assessed KPI with nothing recorded.
            "No assessment recorded in round 2026-H1.",
            // Weights as applied, and as published where they differ.
            "2.5% (published 2.0%)",
            // History, with each entry's anchor.
            "<tr id=\"entry-1\">",
            "assessment (stands)",
            // One round: the trend in words.
            "Only one round so far (2026-H1): a trend needs two.",
            "Measured KPIs month by month",
            "Score per dimension, with the region's average",
            "score (1 to 5)",
            // The notes here too.
            "the subtotal is left blank",
        ],
    );
    assert!(page.contains("<svg"), "charts are inline SVG");
    assert!(!page.contains("<script"), "{page}");
    // A measured KPI's rule sits under that KPI, not elsewhere.
    let row = page.find("id=\"kpi-data-exchange-capability\"").unwrap();
    let next = page[row..].find("id=\"kpi-system-reliability\"").unwrap() + row;
    assert!(page[row..next].contains("Rule: Documents the country sent or received"));
    assert!(page[row..next].contains("the spokes were &lt;down&gt;"));
}

#[test]
fn a_second_round_draws_the_trend() {
    let r = report_with(vec![entry(
        assessment("2026-H2", "legal-coverage", 3, "Law on e-documents"),
        3,
        50,
    )]);
    let page = country_page(&r, &plain_form("tok"));
    assert_has(&page, &["id=\"trend-chart\"", "<polyline", "2026-H2"]);
    assert!(!page.contains("Only one round so far"));
}

#[test]
fn the_form_carries_its_token_and_shows_a_refusal_with_what_was_sent() {
    let r = report_with(Vec::new());
    let sent = EntryForm {
        kind: "assessment".into(),
        round: "2026-H1".into(),
        kpi: "legal-coverage".into(),
        score: "6".into(),
        note: "</textarea><script>x</script>".into(),
        assessor: "C".into(),
        ..Default::default()
    };
    let refusal = Refusal::new(RefusalCode::InvalidScorecardEntry, "score 6 is not 1 to 5");
    let page = country_page(
        &r,
        &country::FormView {
            token: "abc123",
            values: &sent,
            refusal: Some(&refusal),
            recorded: None,
        },
    );
    assert_has(
        &page,
        &[
            "<input type=\"hidden\" name=\"token\" value=\"abc123\">",
            "<input type=\"hidden\" name=\"country\" value=\"KZ\">",
            "<form class=\"entry\" method=\"post\" action=\"/scorecard/entries\">",
            "Not recorded: <b>INVALID_SCORECARD_ENTRY</b> score 6 is not 1 to 5 Nothing was changed.",
            "<option value=\"legal-coverage\" selected>Legal Coverage</option>",
            "<option value=\"data-exchange-capability\">Data Exchange Capability (measured)</option>",
            "value=\"6\"",
            "&lt;/textarea&gt;&lt;script&gt;x&lt;/script&gt;",
            // The open round is offered.
            "name=\"round\" value=\"2026-H1\"",
        ],
    );
    assert!(!page.contains("<script"), "{page}");
}

#[test]
fn the_entry_just_recorded_is_announced_from_the_report() {
    let r = report_with(Vec::new());
    let mut form = plain_form("tok");
    form.recorded = Some(1);
    let page = country_page(&r, &form);
    assert_has(
        &page,
        &["Entry #1 recorded at exchange-log index 41: round 2026-H1 · assessment 4"],
    );
    form.recorded = Some(99);
    assert!(!country_page(&r, &form).contains("id=\"recorded\""));
}

#[test]
fn the_corridors_page_charts_each_corridor_by_month() {
    let r = report_with(Vec::new());
    let page = corridors::render(&r, "ops").into_string();
    let month = r.months.last().unwrap();
    assert_has(
        &page,
        &[
            "Kazakhstan (KZ) → China (CN) · e-co",
            "id=\"corridor-KZ-CN-e-co\"",
            &format!(
                "<td>{month}</td><td class=\"num\">3</td><td class=\"num\">3</td><td class=\"num\">0</td><td class=\"num\">0</td><td class=\"num\">3.0 s</td><td class=\"num\">0.0%</td>"
            ),
            "Documents per month",
            "Median time to acknowledgement",
            "Rejection rate",
            "the subtotal is left blank",
        ],
    );
    assert!(page.contains("<svg") && !page.contains("<script"));
    let trust = TrustSet::default();
    let state = measured::State {
        trust: &trust,
        certificates: &[],
        reports: &[],
        now: Timestamp::now(),
    };
    let nothing = report::Exchange::new(&state, 0);
    let empty = corridors::render(
        &report::build(&report::Inputs {
            framework: &Framework::carec(),
            entries: &[],
            exchange: &nothing,
            state,
        }),
        "ops",
    )
    .into_string();
    assert!(empty.contains("No document has travelled"), "{empty}");
}

#[tokio::test]
async fn an_unknown_country_is_named_on_a_404_page() {
    let r = report_with(Vec::new());
    assert!(find(&r, "XX").is_none() && find(&r, "kz").is_none());
    assert!(find(&r, "FR").is_none(), "assigned, but not scored");
    let answer = not_found(&r, "ops", "<x>");
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    assert_eq!(answer.headers()[header::CACHE_CONTROL], "no-store");
    let body = axum::body::to_bytes(answer.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = String::from_utf8(body.to_vec()).unwrap();
    assert_has(
        &body,
        &["No country <q>&lt;x&gt;</q>", "/scorecard/country/UZ"],
    );
}

#[test]
fn a_form_becomes_the_admin_request_or_a_refusal() {
    let form = EntryForm {
        kind: "override".into(),
        round: "2026-H1".into(),
        country: "KZ".into(),
        kpi: "system-reliability".into(),
        score: " 3 ".into(),
        note: "why".into(),
        assessor: "me".into(),
        ..Default::default()
    };
    let request = form.request().unwrap();
    assert_eq!(request.kind, v1::ScorecardEntryKind::Override as i32);
    assert_eq!(request.score, 3);
    assert_eq!(request.country, "KZ");
    for (kind, score, detail) in [
        ("override", "three", "score \"three\" is not 1 to 5"),
        (
            "close-round",
            "3",
            "kind \"close-round\": assessment or override",
        ),
    ] {
        let e = EntryForm {
            kind: kind.into(),
            score: score.into(),
            ..form.clone()
        }
        .request()
        .unwrap_err();
        assert_eq!(e.code, RefusalCode::InvalidScorecardEntry);
        assert!(e.detail.starts_with(detail), "{}", e.detail);
    }
    assert_eq!(
        refusal_status(RefusalCode::RoundClosed),
        StatusCode::CONFLICT
    );
    assert_eq!(
        refusal_status(RefusalCode::InvalidScorecardEntry),
        StatusCode::BAD_REQUEST
    );
}
