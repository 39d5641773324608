//! The command line as operators and scripts use it: config checking, key generation,
//! refusals at the spoke, and documents the recipient refuses on its own judgement.

use std::{os::unix::fs::PermissionsExt, process::Command};

use caravan_tests::{Net, binaries, sample_path};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `binary run --config <dir>/<name>` with `text` as the config: it stops with exit 64 and one
/// line of stderr for each of `fields`, naming the file and the field. The config's path.
fn refused_config(
    dir: &std::path::Path,
    binary: &std::path::Path,
    name: &str,
    text: &str,
    fields: &[&str],
) -> std::path::PathBuf {
    let config = dir.join(name);
    std::fs::write(&config, text).unwrap();
    let out = Command::new(binary)
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let text = stderr(&out);
    for field in fields {
        assert!(
            text.lines()
                .any(|l| l.contains(&format!("{name}: {field}"))),
            "{field} missing:\n{text}"
        );
    }
    assert_eq!(text.lines().count(), fields.len(), "{text}");
    config
}

#[test]
fn an_invalid_hub_config_stops_with_one_line_per_problem() {
    let dir = tempfile::tempdir().unwrap();
    let config = refused_config(
        dir.path(),
        &binaries().hub,
        "hub.toml",
        r#"
listen = "not an address"
data_dir = "data"
max_payload_bytes = 0
receipt_key = "missing.key"
anchor_key = "missing-anchor.key"
trust_list_validity_secs = 1

[tls]
ca_cert = "missing-ca.pem"
cert = "missing.pem"
key = "missing.key"

[net]
max_handshakes = 0
"#,
        &[
            "listen",
            "max_payload_bytes",
            "receipt_key",
            "tls.ca_cert",
            "tls.cert",
            "tls.key",
            "anchor_key",
            "trust_list_validity_secs",
            "net.max_handshakes",
        ],
    );

    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nsurprise = 1\n").unwrap();
    let out = Command::new(&binaries().hub)
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(stderr(&out).contains("surprise"), "{}", stderr(&out));
}

#[test]
fn an_invalid_spoke_config_stops_with_one_line_per_problem() {
    let dir = tempfile::tempdir().unwrap();
    refused_config(
        dir.path(),
        &binaries().spoke,
        "spoke.toml",
        r#"
participant = "K1"
hub_url = "http://hub:7443"
data_dir = "data"
signing_key = "missing.key"
max_payload_bytes = 0
payload_in_flight_mib = 0
anchor_public_key = "not base64"

[tls]
ca_cert = "missing-ca.pem"
cert = "missing.pem"
key = "missing.key"

[net]
idle_timeout_secs = 0

[upload]
min_rate_bytes_per_sec = 0
"#,
        &[
            "participant",
            "hub_url",
            "signing_key",
            "max_payload_bytes",
            "payload_in_flight_mib",
            "anchor_public_key",
            "tls.ca_cert",
            "tls.cert",
            "tls.key",
            "net.idle_timeout_secs",
            "upload.min_rate_bytes_per_sec",
        ],
    );
}

#[test]
fn keygen_writes_a_private_key_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signing.key");
    let out = Command::new(&binaries().spoke)
        .args(["keygen", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let key_id = text
        .lines()
        .find_map(|l| l.strip_prefix("key id:"))
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(key_id.len(), 16);
    assert!(text.contains("public key:"));
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let before = std::fs::read(&key).unwrap();
    let again = Command::new(&binaries().spoke)
        .args(["keygen", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("exists already"),
        "{}",
        stderr(&again)
    );
    assert_eq!(std::fs::read(&key).unwrap(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_spoke_refuses_bad_documents_before_signing() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.start_hub().await;
    net.start_spoke("KZ").await;
    let not_xml = net.path().join("not.xml");
    std::fs::write(&not_xml, "this is not XML <").unwrap();
    let invoice = sample_path("einvoice/ubl/peppol-base-example.xml");
    let invoice = invoice.to_str().unwrap();
    let cases = [
        (
            vec!["--to", "CN", "--type", "e-co", not_xml.to_str().unwrap()],
            "INVALID_DOCUMENT",
        ),
        (
            vec!["--to", "CN", "--type", "e-phyto", invoice],
            "INVALID_DOCUMENT",
        ),
        (
            vec!["--to", "TM", "--type", "e-invoice", invoice],
            "UNKNOWN_RECIPIENT",
        ),
    ];
    for (args, code) in cases {
        let mut full = vec!["send"];
        full.extend(args);
        let out = net.spoke_cli("KZ", &full).await;
        assert_eq!(out.status.code(), Some(1), "{full:?}");
        assert!(stderr(&out).contains(code), "{full:?}: {}", stderr(&out));
    }
    assert!(
        !net.hub_log().contains("accepted"),
        "nothing reached the hub"
    );

    // A spoke that is not running cannot be used, and the CLI says why.
    net.write_spoke_config("CN");
    let out = net.spoke_cli("CN", &["inbox"]).await;
    assert_eq!(out.status.code(), Some(69));
    assert!(
        stderr(&out).contains("caravan-spoke run"),
        "{}",
        stderr(&out)
    );
}
