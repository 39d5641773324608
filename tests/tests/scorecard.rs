//! The Readiness Scorecard end to end, with the real hub and spokes: a measured KPI moves
//! after a scripted exchange; an assessment is signed, logged and verifiable under the hub's
//! signed tree head (and a tampered one is not); an override carries its reason into the
//! report and the log; refusals name the broken rule and change nothing; a closed round
//! keeps its scores and takes no more entries.

use caravan_hub::scorecard::entry;
use caravan_proto::v1;
use caravan_tests::{Net, sample_path};
use serde_json::Value;

/// `admin scorecard show --country C --json`: that country's report.
async fn country(net: &Net, c: &str) -> Value {
    let out = net
        .admin_ok(&["scorecard", "show", "--country", c, "--json"])
        .await;
    serde_json::from_str(&out).unwrap()
}

fn kpi<'a>(country: &'a Value, id: &str) -> &'a Value {
    country["kpis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kpi"] == id)
        .unwrap_or_else(|| panic!("{id} in {country}"))
}

fn figure<'a>(kpi: &'a Value, label: &str) -> &'a str {
    kpi["measured"]["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["label"] == label)
        .and_then(|f| f["value"].as_str())
        .unwrap_or_else(|| panic!("{label} in {kpi}"))
}

/// One certificate of origin KZ -> CN, sent and acknowledged.
async fn exchange_one(net: &Net) {
    let sent = net
        .send(
            "KZ",
            "CN",
            "e-co",
            &sample_path("eco/carec-KZ-CN-certificate-of-origin.xml"),
        )
        .await;
    net.wait_state("KZ", sent["message_id"].as_str().unwrap(), "ACKNOWLEDGED")
        .await;
}

async fn entries(net: &Net) -> Vec<Value> {
    serde_json::from_str(&net.admin_ok(&["scorecard", "entries", "--json"]).await).unwrap()
}

/// An `admin` command that must fail: its standard error.
async fn refused(net: &Net, args: &[&str]) -> String {
    let out = net.admin(args).await;
    assert!(!out.status.success(), "{args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn measured_assessed_overridden_and_closed_as_the_framework_says() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.start_hub().await;
    for id in ["KZ", "CN"] {
        net.admin_ok(&["participant", "set-country", id, id]).await;
    }
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;

    // Before any exchange: KZ exchanged nothing, CN had nothing addressed to it.
    let kz = country(&net, "KZ").await;
    let exchange = kpi(&kz, "data-exchange-capability");
    assert_eq!(exchange["score"], 1, "{exchange}");
    assert_eq!(exchange["source"], "measured", "{exchange}");
    assert_eq!(figure(exchange, "documents sent or received"), "0");
    let cn = country(&net, "CN").await;
    assert_eq!(kpi(&cn, "system-reliability")["score"], Value::Null, "{cn}");
    assert_eq!(kpi(&cn, "system-reliability")["source"], "none");

    // A scripted exchange: one certificate of origin KZ -> CN, acknowledged.
    exchange_one(&net).await;

    let kz = country(&net, "KZ").await;
    let exchange = kpi(&kz, "data-exchange-capability");
    assert_eq!(exchange["score"], 2, "one document exchanged: {exchange}");
    assert_eq!(figure(exchange, "documents sent or received"), "1");
    assert_eq!(figure(exchange, "acknowledged within 5 minutes"), "100.0%");
    let cross = kpi(&kz, "cross-border-exchange-capability");
    assert_eq!(cross["score"], 3, "an open corridor with CN: {cross}");
    assert_eq!(figure(cross, "countries over open corridors"), "CN");
    let standards = kpi(&kz, "data-standards-alignment");
    assert_eq!(standards["score"], 5, "{standards}");
    let cn = country(&net, "CN").await;
    let reliability = kpi(&cn, "system-reliability");
    assert_eq!(
        reliability["score"], 5,
        "taken at once, none expired: {reliability}"
    );
    assert_eq!(figure(reliability, "documents addressed to it"), "1");
    // Under the score, the rule it came from.
    let report: Value =
        serde_json::from_str(&net.admin_ok(&["scorecard", "show", "--json"]).await).unwrap();
    let rule = report["framework"]["dimensions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["kpis"].as_array().unwrap())
        .find(|k| k["id"] == "data-exchange-capability")
        .unwrap()["rule"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(rule.contains("5: n >= 1,000 and q >= 95%"), "{rule}");
    let notes = report["framework"]["notes"].to_string();
    assert!(
        notes.contains("Legal Maturity: the subtotal is left blank"),
        "{notes}"
    );
    assert!(notes.contains("sum to 8%, its subtotal is 10%"), "{notes}");

    // An assessment: signed, logged, and its inclusion checked by the CLI against the trust
    // list's hub keys.
    let out = net
        .admin_ok(&[
            "scorecard",
            "assess",
            "--round",
            "2026-H2",
            "--country",
            "KZ",
            "--kpi",
            "legal-coverage",
            "--score",
            "4",
            "--evidence",
            "Law on electronic documents and digital signatures, in force",
            "--assessor",
            "A. Nurlanova, CAREC secretariat",
            "--on",
            "2026-11-30",
        ])
        .await;
    assert!(
        out.contains(
            "KZ legal-coverage assessed 4 by A. Nurlanova, CAREC secretariat on 2026-11-30"
        ),
        "{out}"
    );
    assert!(
        out.contains("its inclusion checked under the hub's signed tree head of size"),
        "{out}"
    );
    let kz = country(&net, "KZ").await;
    let legal = kpi(&kz, "legal-coverage");
    assert_eq!(legal["score"], 4, "{legal}");
    assert_eq!(legal["source"], "assessed");
    assert_eq!(
        legal["entry"]["note"],
        "Law on electronic documents and digital signatures, in force"
    );
    let log_index = legal["entry"]["log_index"].as_u64().unwrap();
    assert!(log_index > 0);
    assert_eq!(kz["kpis"].as_array().unwrap().len(), 23);

    // Verifiable by anyone with the trust list, and a tampered entry is not.
    let operator = caravan_hub::operator::Operator::connect(&net.admin_config()).unwrap();
    let recorded = operator
        .admin()
        .record_scorecard_entry(v1::RecordScorecardEntryRequest {
            kind: v1::ScorecardEntryKind::Assessment as i32,
            round: "2026-H2".into(),
            country: "CN".into(),
            kpi: "legal-recognition".into(),
            score: 5,
            note: "Electronic Signature Law of the PRC".into(),
            assessor: "Secretariat".into(),
            assessed_on: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let trust = operator.trust_list().await.unwrap();
    let record = recorded.record.unwrap();
    let proof = recorded.log_proof.unwrap();
    let verified = entry::verify(&record, Some(&proof), &trust).unwrap();
    assert!(
        verified.tree_size.unwrap() >= record.log_index,
        "{verified:?}"
    );
    let mut tampered = record.clone();
    tampered.entry_json = String::from_utf8(tampered.entry_json)
        .unwrap()
        .replace("\"score\":5", "\"score\":2")
        .into_bytes();
    let problem = entry::verify(&tampered, Some(&proof), &trust).unwrap_err();
    assert!(problem.contains("signature does not verify"), "{problem}");

    // An override of a measured score, with its reason.
    net.admin_ok(&[
        "scorecard",
        "override",
        "--round",
        "2026-H2",
        "--country",
        "KZ",
        "--kpi",
        "data-exchange-capability",
        "--score",
        "4",
        "--reason",
        "the single window exchanges with EAEU members outside Caravan",
        "--assessor",
        "Secretariat",
    ])
    .await;
    let kz = country(&net, "KZ").await;
    let exchange = kpi(&kz, "data-exchange-capability");
    assert_eq!(exchange["score"], 4, "{exchange}");
    assert_eq!(exchange["source"], "overridden");
    assert_eq!(
        exchange["entry"]["note"],
        "the single window exchanges with EAEU members outside Caravan"
    );
    assert_eq!(
        exchange["measured"]["score"], 2,
        "the measurement stays shown"
    );

    // Refusals name the rule and change nothing.
    let before = entries(&net).await.len();
    assert_eq!(before, 3);
    let base = [
        "scorecard",
        "assess",
        "--round",
        "2026-H2",
        "--country",
        "KZ",
        "--assessor",
        "S",
        "--evidence",
        "e",
    ];
    for (extra, says) in [
        (
            ["--kpi", "legal-coverage", "--score", "6"],
            "score 6 is not 1 to 5",
        ),
        (
            ["--kpi", "data-exchange-capability", "--score", "3"],
            "measured from the exchange; record an override",
        ),
        (
            ["--kpi", "no-such-kpi", "--score", "3"],
            "is not in the framework",
        ),
    ] {
        let args: Vec<&str> = base.iter().chain(extra.iter()).copied().collect();
        let err = refused(&net, &args).await;
        assert!(err.contains("INVALID_SCORECARD_ENTRY"), "{err}");
        assert!(err.contains(says), "{err}");
    }
    assert_eq!(
        entries(&net).await.len(),
        before,
        "refusals recorded nothing"
    );

    // Closing the round freezes its measured scores; the closed round takes no entry.
    let out = net
        .admin_ok(&[
            "scorecard",
            "close",
            "--round",
            "2026-H2",
            "--note",
            "first round",
        ])
        .await;
    assert!(out.contains("round 2026-H2 closed"), "{out}");
    let err = refused(
        &net,
        &[
            "scorecard",
            "assess",
            "--round",
            "2026-H2",
            "--country",
            "KZ",
            "--kpi",
            "legal-coverage",
            "--score",
            "5",
            "--evidence",
            "e",
            "--assessor",
            "S",
        ],
    )
    .await;
    assert!(err.contains("ROUND_CLOSED"), "{err}");
    assert!(err.contains("round 2026-H2 is closed"), "{err}");
    // Another document: the open measurement moves, the closed round's does not.
    exchange_one(&net).await;
    let cn = country(&net, "CN").await;
    let cross = kpi(&cn, "cross-border-exchange-capability");
    assert_eq!(cross["source"], "measured_at_close", "{cross}");
    assert_eq!(cross["score"], 3, "{cross}");
    let kz = country(&net, "KZ").await;
    assert_eq!(
        figure(
            kpi(&kz, "data-exchange-capability"),
            "documents sent or received"
        ),
        "2"
    );
    // A new round: the trend compares the two.
    net.admin_ok(&[
        "scorecard",
        "assess",
        "--round",
        "2027-H1",
        "--country",
        "KZ",
        "--kpi",
        "legal-coverage",
        "--score",
        "5",
        "--evidence",
        "amendments in force",
        "--assessor",
        "S",
    ])
    .await;
    let kz = country(&net, "KZ").await;
    let trend = kz["trend"].as_array().unwrap();
    assert_eq!(trend.len(), 2, "{kz}");
    assert_eq!(trend[0]["round"], "2026-H2");
    assert_eq!(trend[0]["closed"], true);
    assert_eq!(trend[1]["round"], "2027-H1");
    let legal_of = |round: &Value| {
        round["dimensions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == "legal")
            .unwrap()["score"]
            .clone()
    };
    assert_eq!(legal_of(&trend[0]), 4.0, "{kz}");
    assert_eq!(legal_of(&trend[1]), 5.0, "{kz}");
    let text = net
        .admin_ok(&["scorecard", "show", "--country", "KZ"])
        .await;
    assert!(
        text.contains(
            "2027-H1 against 2026-H2: Institutional Readiness – → –; Legal Maturity 4.0 → 5.0;"
        ),
        "{text}"
    );
    let legal = kpi(&kz, "legal-coverage");
    assert_eq!(legal["score"], 5);
    assert_eq!(
        legal["history"].as_array().unwrap().len(),
        2,
        "both kept: {legal}"
    );

    // The CSV export: a row per country and KPI, with its source and evidence.
    let csv = net.admin_ok(&["scorecard", "export", "--csv"]).await;
    assert!(csv.starts_with("row,round,country,"), "{csv}");
    assert!(
        csv.lines().any(
            |l| l.starts_with("kpi,2027-H1,KZ,Kazakhstan,legal,legal-coverage,")
                && l.contains(",5,assessed,")
                && l.contains("amendments in force")
        ),
        "{csv}"
    );

    // The exchange log holds every entry: verified whole offline, each with its detail.
    net.terminate_hub().await;
    let out = net.hub_cli(&["log", "verify"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = net.hub_cli(&["log", "export"]).await;
    let exported = String::from_utf8_lossy(&out.stdout);
    let scorecard_entries: Vec<&str> = exported
        .lines()
        .filter(|l| l.contains("scorecard_entry"))
        .collect();
    assert_eq!(scorecard_entries.len(), 5, "{exported}");
    assert!(
        scorecard_entries
            .iter()
            .any(|l| l.contains("the single window exchanges with EAEU members outside Caravan")),
        "the override's reason is logged: {exported}"
    );
}
