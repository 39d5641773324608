//! The README's first command, as a new user runs it: the sandbox makes a PKI and configs,
//! starts a hub and three spokes over mutual TLS on loopback, onboards them, sends three real
//! documents consistent with their senders and two that are not, and with `--once` exits 0
//! only if each consistent one was delivered, verified end to end, acknowledged and judged
//! consistent, and each inconsistent one refused by its sender or marked FAIL by its recipient. Run again on the same folder, it reuses it; when a port it was given is
//! taken, it stops at once and names it. The first run seeds a sample scorecard round, once.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// Run the sandbox with `args` and `--once`; its exit status and output.
fn sandbox_once(dir: &Path, args: &[&str]) -> (bool, String) {
    let out_path = dir.with_extension("out");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_caravan-sandbox"))
        .args(["--once", "--dir"])
        .arg(dir)
        .args(args)
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(180) {
            child.kill().unwrap();
            panic!(
                "the sandbox did not finish in 180 s:\n{}",
                std::fs::read_to_string(&out_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (
        status.success(),
        std::fs::read_to_string(&out_path).unwrap(),
    )
}

/// Each consistent document delivered, verified and judged consistent; the deliberately
/// inconsistent ones refused by their sender or marked FAIL by their recipient, saying why.
fn assert_all_went_through(ok: bool, output: &str) {
    assert!(ok, "{output}");
    let count = |text: &str| output.matches(text).count();
    assert_eq!(
        count("verified end to end; payload byte-identical"),
        4,
        "{output}"
    );
    assert_eq!(
        count(": ACKNOWLEDGED (recipient's signed acknowledgement verified)"),
        4,
        "{output}"
    );
    assert_eq!(
        count(
            "content checks: GENUINE_AND_CONSISTENT (passed: issuer, header, dates, duplicate, replaced)"
        ),
        3,
        "{output}"
    );
    assert_eq!(
        count("content checks: GENUINE_BUT_INCONSISTENT"),
        1,
        "{output}"
    );
    assert!(
        output.contains("FAIL duplicate DUPLICATE_NUMBER: Number KZ-CO-20"),
        "{output}"
    );
    assert!(
        output.contains("refused by KZ before signing")
            && output.contains(
                "The export country is AR, but the document was signed by KZ. (EXPORT_COUNTRY_MISMATCH)"
            ),
        "{output}"
    );
}

/// The sample scorecard round the first run seeded, as the hub's store (the hub stopped)
/// holds it: an assessment per assessed KPI per CAREC member and one override, each saying it
/// is sample data, each signed by the hub's receipt key and logged.
fn assert_sample_scorecard(dir: &Path) {
    use caravan_common::signing::{Purpose, SigningKey};
    use caravan_hub::{
        scorecard::entry::{Entry, What},
        store::{Backend, Embedded},
    };
    let store = Embedded::open_found(&dir.join("hub/data/store"), 8 << 20)
        .unwrap()
        .expect("the hub's store");
    let receipt = SigningKey::load(&dir.join("hub/pki/hub-receipt.key")).unwrap();
    let records = store.scorecard_entries().unwrap();
    assert_eq!(records.len(), 11 * 16 + 1);
    let log_size = store.log_size().unwrap();
    let (mut assessments, mut overrides) = (0, 0);
    for r in &records {
        receipt
            .public()
            .verify(Purpose::ScorecardEntry, &r.entry_json, &r.signature)
            .unwrap();
        assert!(r.log_index > 0 && r.log_index <= log_size);
        let entry = Entry::from_json(&r.entry_json).unwrap();
        let (note, assessor) = match &entry.what {
            What::Assessment {
                evidence, assessor, ..
            } => {
                assessments += 1;
                (evidence, assessor)
            }
            What::Override {
                reason, assessor, ..
            } => {
                overrides += 1;
                (reason, assessor)
            }
            What::CloseRound { .. } => panic!("the sample round is left open"),
        };
        assert!(
            note.starts_with("Sandbox sample assessment, not an official score: "),
            "{note}"
        );
        assert_eq!(assessor, "Sandbox secretariat (sample data)");
    }
    assert_eq!((assessments, overrides), (176, 1));
}

/// With the port at `key` of config `file` (in sandbox `dir`) held by another program, the
/// sandbox fails without waiting out its patience, and names the setting and the address.
fn stops_at_once_when_taken(dir: &Path, file: &str, key: &[&str], setting: &str) {
    let config: toml::Value =
        toml::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap();
    let addr = key.iter().fold(&config, |v, k| &v[*k]).as_str().unwrap();
    let taken = std::net::TcpListener::bind(addr).unwrap();
    let (ok, output) = sandbox_once(dir, &[]);
    assert!(!ok, "{output}");
    assert!(
        output.contains(&format!(
            "{setting} cannot listen on {}",
            taken.local_addr().unwrap()
        )),
        "{output}"
    );
    assert!(!output.contains("timed out"), "{output}");
}

/// One test, one sandbox at a time: a sandbox keeps the ports it chose in its configs, and two
/// sandboxes made side by side can pick a port the other then holds.
#[test]
fn the_sandbox_carries_three_documents_end_to_end_on_either_engine_and_reuses_its_folder() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("sandbox");
    let (ok, output) = sandbox_once(&dir, &[]);
    assert_all_went_through(ok, &output);
    assert!(
        output.contains("-000001"),
        "the first run's numbers: {output}"
    );
    assert!(dir.join("hub/hub.toml").is_file() && dir.join("KZ/spoke.toml").is_file());
    // Each spoke passed the conformance kit, its report recorded by the hub and its page
    // written, before the corridors opened (without overriding the onboarding rules).
    for id in ["KZ", "CN", "UZ"] {
        assert!(
            output.contains(&format!("conformance {id}: PASS (15 of 15 cases passed")),
            "{id}'s conformance run: {output}"
        );
        assert!(dir.join(format!("conformance/{id}.html")).is_file());
    }
    assert!(
        output.contains("operator admitted 3 spokes to production"),
        "{output}"
    );
    // A sample assessment round for the scorecard, said to be sample data, with where to
    // look at it.
    assert!(
        output.contains("operator seeded the scorecard with sample data, not official scores: round 20")
            && output.contains(
                "176 assessments (11 countries x 16 assessed KPIs) and 1 override of a measured KPI; see https://localhost:"
            )
            && output.contains(&format!(
                "/scorecard on the hub's dashboard, or `caravan-hub admin --config {} scorecard show`",
                dir.join("operator/admin.toml").display()
            )),
        "{output}"
    );
    assert_sample_scorecard(&dir);
    // The first spoke issues certificates from its console: an issuing and an approving
    // officer beside the viewing one, and the output says how.
    let logins = std::fs::read_to_string(dir.join("KZ/officer.txt")).unwrap();
    let users: Vec<&str> = logins.lines().filter_map(|l| l.split(':').next()).collect();
    assert_eq!(users, ["officer", "issuer", "approver"]);
    let config = caravan_spoke::Config::load(&dir.join("KZ/spoke.toml")).unwrap();
    let roles: Vec<Vec<caravan_spoke::config::Role>> = config
        .console
        .unwrap()
        .officers
        .iter()
        .map(|o| o.roles.clone())
        .collect();
    use caravan_spoke::config::Role;
    assert_eq!(
        roles,
        [
            vec![Role::Viewing],
            vec![Role::Issuing],
            vec![Role::Approving]
        ]
    );
    assert!(
        output.contains("issue a certificate there: log in as `issuer`"),
        "{output}"
    );
    let cn = std::fs::read_to_string(dir.join("CN/officer.txt")).unwrap();
    assert_eq!(cn.lines().count(), 1, "one issuing spoke: {cn}");
    // redb is the default engine of new stores.
    for store in ["hub/data/store", "KZ/data/store"] {
        assert!(
            dir.join(store).join("store.redb").is_file(),
            "{store} is a redb store"
        );
    }
    // Run again at once, on the same folder: its documents carry numbers of their own, so no
    // consistent one is taken for a duplicate of the first run's.
    let (ok, output) = sandbox_once(&dir, &[]);
    assert_all_went_through(ok, &output);
    assert!(
        output.contains("-000002") && !output.contains("-000001"),
        "the second run's numbers: {output}"
    );
    // Seeded once: the hub's entries are left as they are.
    assert!(
        output.contains("the scorecard holds 177 entries already, so no sample round was seeded"),
        "{output}"
    );
    assert_sample_scorecard(&dir);
    // Admitted once: the kit is not run again.
    assert!(
        output.contains("conformance KZ: in production already") && !output.contains(": PASS ("),
        "{output}"
    );
    // A port of its configs taken by another program, a spoke's or the hub's: it stops at
    // once and says which.
    stops_at_once_when_taken(
        &dir,
        "CN/spoke.toml",
        &["nsw", "listen"],
        "nsw.listen (NSW API)",
    );
    stops_at_once_when_taken(
        &dir,
        "hub/hub.toml",
        &["dashboard_listen"],
        "dashboard_listen",
    );

    // The sample documents travel between KZ, CN and UZ: a network without one is refused
    // before anything is made.
    let (ok, output) = sandbox_once(&root.path().join("two"), &["--spokes", "KZ,CN"]);
    assert!(
        !ok && output.contains("--spokes must include KZ, CN and UZ"),
        "{output}"
    );
    assert!(!root.path().join("two").exists());

    let sled = root.path().join("sandbox-sled");
    let (ok, output) = sandbox_once(&sled, &["--store-engine", "sled"]);
    assert_all_went_through(ok, &output);
    for store in ["hub/data/store", "KZ/data/store"] {
        assert!(
            sled.join(store).join("conf").is_file() && sled.join(store).join("db").is_file(),
            "{store} is a sled store"
        );
    }
}
