//! The Readiness Scorecard's pages on the hub's dashboard, as an operator's browser uses them:
//! a real headless Chromium, reaching the dashboard through a local proxy that presents the
//! operator's client certificate. A document travels KZ -> CN and an assessment is recorded
//! through the Admin service first; the browser then reads the heat map, follows a country
//! link to the evidence under its KPIs, records an entry with the page's form, sees a bad one
//! refused with its code, and opens the corridors. Posts from elsewhere (another site, or
//! without the page's token) are refused and change nothing.
//!
//! A second test opens the scorecard a newcomer finds in the sandbox: its sample round seeded
//! for the eleven members beside a real exchange. With `CARAVAN_SCREENSHOTS=DIR` its pages are
//! saved as `scorecard-heatmap.png`, `scorecard-country-kz.png` and `scorecard-corridors.png`
//! in DIR (the README's, in `docs/screenshots/`).

use std::path::PathBuf;

use caravan_hub::operator::Operator;
use caravan_proto::v1;
use caravan_tests::{Net, browser, operator_proxy::OperatorProxy};

const EVIDENCE: &str = "Single-window decree No. 12 <2025> names the agency & its mandate";
const ASSESSOR: &str = "A. Nurlanova, CAREC Institute";
const FORM_NOTE: &str = "Law on electronic documents, art. 7: e-documents recognised";

/// Fill the country page's form and send it.
fn fill_and_submit(kpi: &str, score: &str, note: &str) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap();
    format!(
        "const f = document.querySelector('form.entry');\
         f.kind.value = 'assessment'; f.round.value = '2026-H1'; f.kpi.value = {kpi};\
         f.score.value = {score}; f.note.value = {note}; f.assessor.value = {assessor};\
         f.submit(); true",
        kpi = q(kpi),
        score = q(score),
        note = q(note),
        assessor = q("B. Dashboard, hub operations"),
    )
}

/// The text of the evidence row under a KPI's row on a country page.
fn evidence_of(kpi: &str) -> String {
    format!("document.getElementById('kpi-{kpi}').nextElementSibling.innerText")
}

/// `POST /scorecard/entries` through the proxy with these extra headers and this body.
async fn post(proxy: &OperatorProxy, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let tcp = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    let mut all = vec![("content-type", "application/x-www-form-urlencoded")];
    all.extend_from_slice(headers);
    let (status, body) = caravan_spoke::client::exchange(
        tcp,
        "POST",
        "/scorecard/entries",
        &all,
        body.as_bytes().to_vec(),
    )
    .await
    .unwrap();
    (status.as_u16(), String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_read_and_record_the_scorecard_in_a_real_browser() {
    let Some(chromium) = browser::chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have Chromium: .ci/run installs it"
        );
        eprintln!(
            "SKIPPED operators_read_and_record_the_scorecard_in_a_real_browser: no Chromium here (apt-get install chromium)"
        );
        return;
    };
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.start_hub().await;
    // The participants stand for their countries, so that what they exchange is measured.
    for id in ["KZ", "CN"] {
        net.admin_ok(&["participant", "set-country", id, id]).await;
    }
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    let sent = net
        .send(
            "KZ",
            "CN",
            "e-co",
            &net.sample_issued_now("eco/carec-KZ-CN-certificate-of-origin.xml"),
        )
        .await;
    net.wait_state("KZ", sent["message_id"].as_str().unwrap(), "ACKNOWLEDGED")
        .await;
    // An assessment recorded through the Admin service, as `admin scorecard assess` does.
    let operator = Operator::connect(&net.admin_config()).unwrap();
    let recorded = operator
        .admin()
        .record_scorecard_entry(v1::RecordScorecardEntryRequest {
            kind: v1::ScorecardEntryKind::Assessment as i32,
            round: "2026-H1".into(),
            country: "KZ".into(),
            kpi: "institutional-clarity".into(),
            score: 4,
            note: EVIDENCE.into(),
            assessor: ASSESSOR.into(),
            assessed_on: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    let entries = || async {
        Operator::connect(&net.admin_config())
            .unwrap()
            .admin()
            .list_scorecard_entries(v1::ListScorecardEntriesRequest {})
            .await
            .unwrap()
            .into_inner()
            .entries
            .len()
    };

    let proxy = OperatorProxy::ops(&net).await;
    let base = proxy.base();
    let mut b = browser::Browser::launch(&chromium).await;
    b.viewport(1200, 1000).await;

    // The heat map: countries by dimensions, KZ's Institutional Readiness from the assessment,
    // and the framework's notes under it.
    b.goto(&format!("{base}/scorecard")).await;
    let page = b.text().await;
    for expected in [
        "Regional Readiness Scorecard",
        "Kazakhstan (KZ)",
        "China (CN)",
        "Institutional Readiness",
        "Interoperability Readiness",
        "CAREC region (average)",
        "2026-H1 · open · 1 entry",
        "Legal Maturity: the subtotal is left blank",
    ] {
        assert!(page.contains(expected), "{expected:?} not in {page}");
    }
    let cell = b
        .eval("document.querySelector('#heatmap a[href=\"/scorecard/country/KZ\"]').closest('tr').children[1].textContent")
        .await;
    assert_eq!(cell.as_str(), Some("4.0"), "KZ's Institutional Readiness");
    let legal = b
        .eval("document.querySelector('#heatmap a[href=\"/scorecard/country/KZ\"]').closest('tr').children[2].textContent")
        .await;
    assert_eq!(legal.as_str(), Some("–"), "nothing Legal assessed");
    // The stylesheet applies (served as a file: the page allows no inline style or script).
    let colour = b
        .eval("getComputedStyle(document.querySelector('#heatmap td.s4')).backgroundColor")
        .await;
    assert_eq!(colour.as_str(), Some("rgb(44, 127, 184)"), "{colour}");
    // Tall enough for the table, the rounds and the notes.

    // Follow KZ's link: the evidence under the assessed KPI, the rule and figures under a
    // measured one.
    b.eval("document.querySelector('#heatmap a[href=\"/scorecard/country/KZ\"]').click(); true")
        .await;
    b.wait_for(
        "KZ's page",
        "location.pathname === '/scorecard/country/KZ' && document.readyState === 'complete'",
    )
    .await;
    let assessed = b.eval(&evidence_of("institutional-clarity")).await;
    let assessed = assessed.as_str().unwrap_or_default();
    for expected in [
        EVIDENCE,
        ASSESSOR,
        &format!("#{}", recorded.id),
        &recorded.log_index.to_string(),
        "Exchange-log index",
    ] {
        assert!(
            assessed.contains(expected),
            "{expected:?} not in {assessed}"
        );
    }
    let measured = b.eval(&evidence_of("data-exchange-capability")).await;
    let measured = measured.as_str().unwrap_or_default();
    assert!(
        measured.contains("Rule: Documents the country sent or received"),
        "{measured}"
    );
    assert!(measured.contains("Figures"), "{measured}");
    let source = b
        .eval("document.querySelector('#kpi-data-exchange-capability td.source').textContent")
        .await;
    assert_eq!(source.as_str(), Some("measured"));
    let charts = b.eval("document.querySelectorAll('svg').length").await;
    assert!(charts.as_u64().unwrap_or(0) >= 2, "{charts}");

    // Record an assessment with the page's form: back on KZ's page, the new entry shown.
    b.eval(&fill_and_submit("legal-coverage", "4", FORM_NOTE))
        .await;
    b.wait_for(
        "the page with the new entry",
        "location.pathname === '/scorecard/country/KZ' && location.search.startsWith('?recorded=') \
         && document.readyState === 'complete'",
    )
    .await;
    let notice = b
        .eval("document.getElementById('recorded').innerText")
        .await;
    assert!(
        notice.as_str().is_some_and(
            |n| n.contains("recorded at exchange-log index") && n.contains("assessment 4")
        ),
        "{notice}"
    );
    let legal = b.eval(&evidence_of("legal-coverage")).await;
    let legal = legal.as_str().unwrap_or_default();
    assert!(
        legal.contains(FORM_NOTE) && legal.contains("B. Dashboard, hub operations"),
        "{legal}"
    );
    assert_eq!(entries().await, 2);
    // From the top: the notice, the charts, and the first dimension's KPIs with their evidence.

    // Printed: no navigation and no form, the charts kept.
    b.emulate_media("print").await;
    let printed = b
        .eval(
            "[getComputedStyle(document.querySelector('nav')).display, \
              getComputedStyle(document.querySelector('form.entry')).display, \
              getComputedStyle(document.querySelector('#dimensions-chart svg')).display].join(' ')",
        )
        .await;
    assert_eq!(printed.as_str(), Some("none none inline"), "{printed}");
    b.emulate_media("").await;

    // A score of 6 is refused with its code and detail, and nothing is recorded.
    b.eval(&fill_and_submit("legal-coverage", "6", "six")).await;
    b.wait_for(
        "the refusal",
        "location.pathname === '/scorecard/entries' && document.readyState === 'complete' \
         && document.getElementById('refusal') !== null",
    )
    .await;
    let refusal = b.eval("document.getElementById('refusal').innerText").await;
    let refusal = refusal.as_str().unwrap_or_default();
    assert!(
        refusal.contains("INVALID_SCORECARD_ENTRY") && refusal.contains("score 6 is not 1 to 5"),
        "{refusal}"
    );
    assert_eq!(entries().await, 2, "a refused entry changes nothing");

    // A post another site makes the browser send, or one without the page's token, is
    // refused before anything is judged.
    let body =
        "kind=assessment&round=2026-H1&country=KZ&kpi=legal-coverage&score=5&note=x&assessor=y";
    let token = b
        .eval("document.querySelector('form.entry input[name=token]').value")
        .await;
    let token = token.as_str().unwrap().to_owned();
    let (status, text) = post(
        &proxy,
        &[("sec-fetch-site", "cross-site")],
        &format!("{body}&token={token}"),
    )
    .await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("Sec-Fetch-Site: cross-site"), "{text}");
    let (status, text) = post(&proxy, &[], body).await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("token"), "{text}");
    let (status, _) = post(&proxy, &[], &format!("{body}&token={}", "0".repeat(64))).await;
    assert_eq!(status, 403);
    assert_eq!(entries().await, 2, "refused posts change nothing");

    // The corridors: KZ to China, e-CO, the document of this month.
    b.goto(&format!("{base}/scorecard/corridors")).await;
    let page = b.text().await;
    assert!(
        page.contains("Kazakhstan (KZ) → China (CN) · e-co"),
        "{page}"
    );

    // The same report as JSON, for scripts; refused to a participant's certificate.
    let pki = net.pki();
    let ops = (pki.join("operators/ops.pem"), pki.join("operators/ops.key"));
    let (status, json) = net
        .dashboard_get(Some((ops.0.as_path(), ops.1.as_path())), "/scorecard.json")
        .await
        .unwrap();
    assert_eq!(status, 200, "{json}");
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["format"], "caravan.scorecard-report.v1");
    let kz = report["countries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["country"] == "KZ")
        .unwrap();
    let kpi = |id: &str| {
        kz["kpis"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kpi"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(kpi("institutional-clarity")["score"], 4);
    assert_eq!(kpi("legal-coverage")["score"], 4);
    assert_eq!(kpi("data-exchange-capability")["source"], "measured");
    let kz_cert = (
        pki.join("participants/KZ.pem"),
        pki.join("participants/KZ.key"),
    );
    for path in ["/scorecard", "/scorecard.json", "/scorecard/country/KZ"] {
        let (status, body) = net
            .dashboard_get(Some((kz_cert.0.as_path(), kz_cert.1.as_path())), path)
            .await
            .unwrap();
        assert_eq!(status, 403, "{path}: {body}");
        assert!(body.starts_with("WRONG_ROLE"), "{path}: {body}");
    }
    let (status, body) = net
        .dashboard_get(
            Some((ops.0.as_path(), ops.1.as_path())),
            "/scorecard/country/FR",
        )
        .await
        .unwrap();
    assert_eq!(status, 404);
    assert!(body.contains("No country <q>FR</q>"), "{body}");
}

/// Write `pages` (name, PNG) to `CARAVAN_SCREENSHOTS`, if set.
fn save_screenshots(pages: &[(&str, Vec<u8>)]) {
    if let Some(dir) = std::env::var_os("CARAVAN_SCREENSHOTS") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, png) in pages {
            std::fs::write(dir.join(name), png).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_newcomer_finds_the_sandbox_round_filled_in() {
    let Some(chromium) = browser::chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have Chromium: .ci/run installs it"
        );
        eprintln!(
            "SKIPPED a_newcomer_finds_the_sandbox_round_filled_in: no Chromium here (apt-get install chromium)"
        );
        return;
    };
    let mut net = Net::new(&["KZ", "CN", "UZ"]).await;
    net.start_hub().await;
    for id in ["KZ", "CN", "UZ"] {
        net.admin_ok(&["participant", "set-country", id, id]).await;
        net.start_spoke(id).await;
    }
    for (from, to, doc, sample) in [
        (
            "KZ",
            "CN",
            "e-co",
            "eco/carec-KZ-CN-certificate-of-origin.xml",
        ),
        (
            "UZ",
            "KZ",
            "e-phyto",
            "ephyto/carec-UZ-KZ-phytosanitary.xml",
        ),
    ] {
        let sent = net
            .send(from, to, doc, &net.sample_issued_now(sample))
            .await;
        net.wait_state(from, sent["message_id"].as_str().unwrap(), "ACKNOWLEDGED")
            .await;
    }
    let seeding = caravan_sandbox::scorecard::seed(&net.admin_config())
        .await
        .unwrap();
    assert!(
        matches!(
            seeding,
            caravan_sandbox::scorecard::Seeding::Seeded {
                assessments: 176,
                overrides: 1,
                ..
            }
        ),
        "{seeding:?}"
    );

    let proxy = OperatorProxy::ops(&net).await;
    let base = proxy.base();
    let mut b = browser::Browser::launch(&chromium).await;
    // The heat map: every member has an index (its assessed KPIs at least), the region too.
    b.viewport(1200, 1100).await;
    b.goto(&format!("{base}/scorecard")).await;
    let indexes = b
        .eval(
            "[...document.querySelectorAll('#heatmap tr')]\
             .filter(r => r.querySelector('a[href^=\"/scorecard/country/\"]'))\
             .map(r => r.children[6].textContent).join(' ')",
        )
        .await;
    let indexes = indexes.as_str().unwrap().to_owned();
    assert_eq!(indexes.split(' ').count(), 11, "{indexes}");
    assert!(
        !indexes.contains('–'),
        "every member has an index: {indexes}"
    );
    assert!(b.text().await.contains("11 countries with an index"));
    let heatmap = b.screenshot().await;

    // KZ: measured KPIs beside the sample assessments, marked as sample data.
    b.viewport(1200, 1900).await;
    b.goto(&format!("{base}/scorecard/country/KZ")).await;
    let page = b.text().await;
    assert!(
        page.contains("Sandbox sample assessment, not an official score"),
        "{page}"
    );
    assert!(page.contains("documents sent or received"), "{page}");
    let country = b.screenshot().await;
    // TJ has no spoke: its measured KPIs have no score, but the sample override shows, with
    // its reason.
    b.goto(&format!("{base}/scorecard/country/TJ")).await;
    let page = b.text().await;
    assert!(page.contains("paper certificates only"), "{page}");
    b.viewport(1200, 1000).await;
    b.goto(&format!("{base}/scorecard/corridors")).await;
    let page = b.text().await;
    assert!(
        page.contains("Uzbekistan (UZ) → Kazakhstan (KZ) · e-phyto"),
        "{page}"
    );
    let corridors = b.screenshot().await;
    save_screenshots(&[
        ("scorecard-heatmap.png", heatmap),
        ("scorecard-country-kz.png", country),
        ("scorecard-corridors.png", corridors),
    ]);
}
