//! What the spoke makes, validated against the schemas shipped in `samples/xsd/` with a real
//! XML schema validator: xmllint, from Debian's libxml2-utils (`.ci/run` installs it). Where
//! xmllint is missing these tests say so and pass, except under CI (env `CI` set), where they
//! fail.
//!
//! e-CO: the OASIS UBL 2.1 CertificateOfOrigin schema. e-Phyto: the SPSCertificate:17 schema
//! of the IPPC ePhyto Hub, as its service description (`samples/xsd/sps/*.wsdl`) holds it; the
//! UN/CEFACT D17A schema modules themselves could not be obtained whole (see
//! `samples/SOURCES.md`), so the hub's rendering of them is the schema the e-Phyto is held to.
//! Both schemas are shown to refuse what they should (a sample known to break the SPS schema's
//! element order, an e-CO with its elements out of order), so a pass means something.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use super::{
    tests::{full_eco, full_ephyto, issue, minimal_eco, minimal_ephyto},
    *,
};

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples")
}

/// Whether xmllint runs here; without it, a notice (and a failure under CI).
fn xmllint_present(test: &str) -> bool {
    let runs = Command::new("xmllint")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !runs {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have xmllint: .ci/run installs libxml2-utils"
        );
        eprintln!("SKIPPED {test}: no xmllint here (apt-get install libxml2-utils)");
    }
    runs
}

/// xmllint's verdict on `xml` against `schema`: `Ok` or its complaint.
fn xmllint(schema: &Path, xml: &[u8]) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("document.xml");
    std::fs::write(&file, xml).unwrap();
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--nonet")
        .arg("--schema")
        .arg(schema)
        .arg(&file)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn ubl_schema() -> PathBuf {
    samples().join("xsd/ubl21/maindoc/UBL-CertificateOfOrigin-2.1.xsd")
}

/// The hub's SPSCertificate:17 schema: each `xs:schema` of the WSDL's types, copied unchanged
/// into its own file, and a driver schema importing them all. Returns the driver's path.
fn sps_schema(dir: &Path) -> PathBuf {
    let wsdl = std::fs::read_to_string(samples().join("xsd/sps/ippc-hub-uat-ephyto.wsdl")).unwrap();
    let mut imports = String::new();
    let mut rest = wsdl.as_str();
    let mut n = 0;
    while let Some(start) = rest.find("<xs:schema ") {
        let end = rest[start..].find("</xs:schema>").unwrap() + start + "</xs:schema>".len();
        let schema = &rest[start..end];
        let open = &schema[..schema.find('>').unwrap()];
        let tns = open
            .split("targetNamespace=\"")
            .nth(1)
            .and_then(|t| t.split('"').next())
            .unwrap();
        let file = format!("hub-{n}.xsd");
        std::fs::write(
            dir.join(&file),
            format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{schema}\n"),
        )
        .unwrap();
        imports.push_str(&format!(
            "  <xs:import namespace=\"{tns}\" schemaLocation=\"{file}\"/>\n"
        ));
        n += 1;
        rest = &rest[end..];
    }
    assert_eq!(n, 7, "the hub's WSDL holds seven schemas");
    assert!(imports.contains("urn:un:unece:uncefact:data:standard:SPSCertificate:17"));
    let driver = dir.join("driver.xsd");
    std::fs::write(
        &driver,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" targetNamespace=\"urn:caravan:test:driver\">\n{imports}</xs:schema>\n"
        ),
    )
    .unwrap();
    driver
}

fn made(form: Form, issue: &Issue) -> Vec<u8> {
    build(&form, issue).unwrap_or_else(|p| panic!("refused: {p:#?}"))
}

/// Forms as officers fill them, plainly and with hostile text in every free-text field.
fn ephytos() -> Vec<(&'static str, EPhytoForm, Issue)> {
    let mut hostile = full_ephyto();
    let text = "]]> <x a=\"1\"> & 'q' شركة 新疆 «Дала» 🍎";
    hostile.consignor.name = text.into();
    hostile.consignee.address = format!("{text}\n{text}\nthree\nfour\nfive\nsix");
    hostile.lines[0].description = text.into();
    hostile.lines[0].botanical_name = text.into();
    hostile.treatments[0].kind = text.into();
    hostile.treatments[0].chemical = text.into();
    hostile.additional_declarations = vec![text.into(), "x".repeat(MAX_LONG_TEXT)];
    let mut replacement = issue("KZ-PHY-2026-000002");
    replacement.supersedes = Some("KZ-PHY-2026-000001".into());
    vec![
        ("full", full_ephyto(), issue("KZ-PHY-2026-000001")),
        ("minimal", minimal_ephyto(), issue("UZ-PHY-2026-1")),
        ("hostile", hostile, issue("<&>]]>")),
        ("replacement", full_ephyto(), replacement),
    ]
}

fn ecos() -> Vec<(&'static str, EcoForm, Issue)> {
    let mut hostile = full_eco();
    let text = "]]> <x a=\"1\"> & 'q' شركة 新疆 «Дала» 🍎";
    hostile.exporter.name = text.into();
    hostile.consignee.address = format!("{text}\n{text}");
    hostile.lines[0].description = text.into();
    hostile.lines[0].origin_criterion = text.into();
    hostile.trade_agreement = text.into();
    hostile.remarks = text.into();
    hostile.transport.loading_place = text.into();
    let mut replacement = issue("KZ-CO-2026-000002");
    replacement.supersedes = Some("KZ-CO-2026-000001".into());
    vec![
        ("full", full_eco(), issue("KZ-CO-2026-000001")),
        ("minimal", minimal_eco(), issue("TJ-CO-2026-1")),
        ("hostile", hostile, issue("<&>]]>")),
        ("replacement", full_eco(), replacement),
    ]
}

#[test]
fn every_eco_made_is_valid_against_the_ubl_2_1_schema() {
    if !xmllint_present("every_eco_made_is_valid_against_the_ubl_2_1_schema") {
        return;
    }
    let schema = ubl_schema();
    // The schema accepts the hand-written samples and refuses an e-CO out of order.
    for sample in ["", "-replacement"] {
        let path = samples().join(format!("eco/carec-KZ-CN-certificate-of-origin{sample}.xml"));
        xmllint(&schema, &std::fs::read(path).unwrap()).unwrap();
    }
    let good = String::from_utf8(made(Form::Eco(full_eco()), &issue("KZ-1"))).unwrap();
    let swapped = good
        .replacen("<cbc:UBLVersionID>2.1</cbc:UBLVersionID>", "", 1)
        .replacen(
            "<cbc:ID>KZ-1</cbc:ID>",
            "<cbc:ID>KZ-1</cbc:ID><cbc:UBLVersionID>2.1</cbc:UBLVersionID>",
            1,
        );
    assert!(xmllint(&schema, swapped.as_bytes()).is_err());

    for (name, form, issue) in ecos() {
        let xml = made(Form::Eco(form), &issue);
        if let Err(e) = xmllint(&schema, &xml) {
            panic!("{name}: {e}\n{}", String::from_utf8_lossy(&xml));
        }
    }
}

#[test]
fn every_ephyto_made_is_valid_against_the_ippc_hubs_sps_schema() {
    if !xmllint_present("every_ephyto_made_is_valid_against_the_ippc_hubs_sps_schema") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let schema = sps_schema(dir.path());
    // The schema is not lax: the public sample breaks its element order, as documented.
    let sample =
        std::fs::read(samples().join("ephyto/mattilsynet-SPSCertificateContent.xml")).unwrap();
    let complaint = xmllint(&schema, &sample).unwrap_err();
    assert!(complaint.contains("ConsignorSPSParty"), "{complaint}");

    for (name, form, issue) in ephytos() {
        let xml = made(Form::EPhyto(form), &issue);
        if let Err(e) = xmllint(&schema, &xml) {
            panic!("{name}: {e}\n{}", String::from_utf8_lossy(&xml));
        }
    }
}
