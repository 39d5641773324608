//! Each check's PASS, WARN and FAIL, on the real samples and on what they say changed.

use caravan_common::{DocumentType, MessageId, Timestamp, trust::IssuingAuthority};

use crate::document::{self, Content, Party};

use super::*;

fn sample(path: &str) -> Content {
    let bytes = std::fs::read(format!("{}/../samples/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    document::content(&bytes).unwrap()
}

fn eco() -> Content {
    sample("eco/carec-KZ-CN-certificate-of-origin.xml")
}

fn ephyto() -> Content {
    sample("ephyto/mattilsynet-SPSCertificateContent.xml")
}

fn reg(id: &str, authorities: &[&str]) -> Registered {
    Registered {
        authorities: authorities
            .iter()
            .map(|a| IssuingAuthority {
                name: (*a).to_owned(),
                identifiers: Vec::new(),
            })
            .collect(),
        ..Registered::by_id(id.parse().unwrap())
    }
}

fn claims(c: &Content) -> HeaderClaims {
    HeaderClaims {
        message_id: MessageId::generate(),
        document_id: c.document_number.clone().unwrap(),
        document_type: c.format.document_type(),
        supersedes: None,
    }
}

/// Milliseconds of a UTC date-time.
fn at(y: i64, m: i64, d: i64, h: i64) -> Timestamp {
    Timestamp::from_millis(days_from_civil(y, m, d) * DAY_MS + h * 3_600_000)
}

fn rules(c: &[Check]) -> Vec<(CheckName, Outcome, &str)> {
    c.iter()
        .map(|c| (c.check, c.outcome, c.rule.as_str()))
        .collect()
}

const KZ_CCI: &str = "Chamber of Commerce and Industry of the Republic of Kazakhstan";

#[test]
fn a_consistent_e_co_passes_every_check() {
    let c = eco();
    let h = claims(&c);
    let known = Known::default();
    let checks = run(&Facts {
        content: &c,
        header: &h,
        sender: &reg("KZ", &[KZ_CCI]),
        recipient: &reg("CN", &[]),
        now: at(2026, 12, 1, 12),
        rules: &CheckRules::default(),
        known: Some(&known),
    });
    assert_eq!(
        rules(&checks),
        [
            (CheckName::Issuer, Outcome::Pass, "ISSUER_CONSISTENT"),
            (CheckName::Header, Outcome::Pass, "HEADER_CONSISTENT"),
            (CheckName::Dates, Outcome::Pass, "ISSUE_DATE_OK"),
            (CheckName::Duplicate, Outcome::Pass, "NUMBER_UNIQUE"),
            (CheckName::Replaced, Outcome::Pass, "NOT_REPLACED"),
        ]
    );
    assert_eq!(worst(&checks), Outcome::Pass);
    assert_eq!(headline(&checks), None);
    // Before sending, duplicates and replacement are not judged.
    let before = run(&Facts {
        known: None,
        content: &c,
        header: &h,
        sender: &reg("KZ", &[]),
        recipient: &reg("CN", &[]),
        now: at(2026, 12, 1, 12),
        rules: &CheckRules::default(),
    });
    assert_eq!(before.len(), 3);
    // No authority recorded: the country is what was judged, and the line says so.
    assert_eq!(before[0].rule, "ISSUER_COUNTRY_CONSISTENT");
}

#[test]
fn a_kz_signed_e_phyto_naming_argentina_fails_the_issuer_check() {
    let c = ephyto();
    let checks = issuer(&c, &reg("KZ", &[]), &reg("CN", &[]));
    assert_eq!(
        rules(&checks),
        [
            (CheckName::Issuer, Outcome::Fail, "EXPORT_COUNTRY_MISMATCH"),
            (CheckName::Issuer, Outcome::Fail, "IMPORT_COUNTRY_MISMATCH"),
        ]
    );
    assert_eq!(checks[0].params["found"], "AR");
    assert_eq!(checks[0].params["expected"], "KZ");
    assert_eq!(
        checks[0].message_key,
        "content_check.export_country_mismatch"
    );
    assert_eq!(checks[1].params["found"], "EC");
    assert_eq!(checks[1].params["expected"], "CN");
    assert_eq!(headline(&checks), Some(&checks[0]));
    // Signed by AR for EC it fits, country by country.
    let fits = issuer(&c, &reg("AR", &[]), &reg("EC", &[]));
    assert_eq!(
        rules(&fits),
        [(
            CheckName::Issuer,
            Outcome::Pass,
            "ISSUER_COUNTRY_CONSISTENT"
        )]
    );
}

#[test]
fn an_e_co_whose_authority_is_of_another_country_fails() {
    let mut c = eco();
    if let Some(a) = c.issuer.as_mut() {
        a.country = Some("AR".into());
    }
    let checks = issuer(&c, &reg("KZ", &[]), &reg("CN", &[]));
    assert_eq!(
        rules(&checks),
        [(CheckName::Issuer, Outcome::Fail, "ISSUER_COUNTRY_MISMATCH")]
    );
    assert_eq!(checks[0].params["found"], "AR");
}

#[test]
fn an_authority_not_registered_for_the_signer_fails() {
    let c = eco();
    // Case and spacing do not matter.
    let ok = issuer(
        &c,
        &reg(
            "KZ",
            &["chamber of commerce  and industry of the republic of kazakhstan"],
        ),
        &reg("CN", &[]),
    );
    assert_eq!(ok[0].outcome, Outcome::Pass);
    let other = issuer(&c, &reg("KZ", &["Ministry of Trade"]), &reg("CN", &[]));
    assert_eq!(
        rules(&other),
        [(CheckName::Issuer, Outcome::Fail, "ISSUER_NOT_REGISTERED")]
    );
    assert_eq!(other[0].params["found"], KZ_CCI);
    assert_eq!(other[0].params["registered"], "Ministry of Trade");
}

#[test]
fn an_authority_is_also_known_by_its_registered_identifiers() {
    let mut c = eco();
    let registered = |scheme: &str, value: &str| Registered {
        authorities: vec![IssuingAuthority {
            name: "Registered under another name".into(),
            identifiers: vec![caravan_common::trust::AuthorityIdentifier {
                scheme: scheme.into(),
                value: value.into(),
            }],
        }],
        ..Registered::by_id("KZ".parse().unwrap())
    };
    let issuer_with = |c: &mut Content, ids: &[&str]| {
        c.issuer.as_mut().unwrap().ids = ids.iter().map(|i| (*i).to_owned()).collect();
    };
    let cn = reg("CN", &[]);
    // The value alone, or with its scheme in any case.
    for stated in ["123456789012", "KZ-BIN:123456789012", "kz-bin:123456789012"] {
        issuer_with(&mut c, &[stated]);
        let lines = issuer(&c, &registered("kz-bin", "123456789012"), &cn);
        assert_eq!(lines[0].outcome, Outcome::Pass, "{stated}: {lines:?}");
    }
    // Another scheme's value, another value, or none: the name is all there is, and it is not
    // the registered one.
    for stated in [&["gln:123456789012"][..], &["kz-bin:999"], &[]] {
        issuer_with(&mut c, stated);
        let lines = issuer(&c, &registered("kz-bin", "123456789012"), &cn);
        assert_eq!(
            rules(&lines),
            [(CheckName::Issuer, Outcome::Fail, "ISSUER_NOT_REGISTERED")],
            "{stated:?}"
        );
    }
}

#[test]
fn missing_countries_warn() {
    let mut c = eco();
    c.issuer = Some(Party {
        name: Some("Someone".into()),
        ..Party::default()
    });
    c.export_country = None;
    c.import_country = None;
    let checks = issuer(&c, &reg("KZ", &[]), &reg("CN", &[]));
    assert_eq!(
        rules(&checks),
        [
            (CheckName::Issuer, Outcome::Warn, "ISSUER_COUNTRY_MISSING"),
            (CheckName::Issuer, Outcome::Warn, "IMPORT_COUNTRY_MISSING"),
        ]
    );
    assert_eq!(worst(&checks), Outcome::Warn);
}

#[test]
fn an_invoice_between_other_countries_warns() {
    // EN 16931 example 1: a Danish seller and buyer (DK).
    let c = sample("einvoice/ubl/en16931-ubl-tc434-example1.xml");
    let seller = c.seller.as_ref().and_then(|p| p.country.clone()).unwrap();
    let elsewhere = issuer(&c, &reg("KZ", &[]), &reg("CN", &[]));
    assert_eq!(
        rules(&elsewhere),
        [(
            CheckName::Issuer,
            Outcome::Warn,
            "INVOICE_PARTIES_ELSEWHERE"
        )]
    );
    assert!(elsewhere[0].params["found"].contains(&seller));
    // The seller's country is the sender's, or the recipient's.
    for (s, r) in [(seller.as_str(), "CN"), ("KZ", seller.as_str())] {
        let fits = issuer(&c, &reg(s, &[]), &reg(r, &[]));
        assert_eq!(
            rules(&fits),
            [(
                CheckName::Issuer,
                Outcome::Pass,
                "INVOICE_PARTIES_CONSISTENT"
            )]
        );
    }
}

#[test]
fn the_header_must_name_the_document_and_its_kind() {
    let c = eco();
    let mut h = claims(&c);
    assert_eq!(header(&c, &h)[0].rule, "HEADER_CONSISTENT");
    h.document_id = "KZ-CO-OTHER".into();
    h.document_type = DocumentType::Invoice;
    let checks = header(&c, &h);
    assert_eq!(
        rules(&checks),
        [
            (CheckName::Header, Outcome::Fail, "DOCUMENT_ID_MISMATCH"),
            (CheckName::Header, Outcome::Fail, "DOCUMENT_TYPE_MISMATCH"),
        ]
    );
    assert_eq!(checks[0].params["header"], "KZ-CO-OTHER");
    assert_eq!(checks[0].params["document"], "KZ-CO-2026-000123");
    assert_eq!(checks[1].params["document"], "e-co");
}

#[test]
fn dates_in_the_future_fail_and_old_ones_warn() {
    let r = CheckRules::default();
    let mut c = eco();
    let kind = DocumentType::CertificateOfOrigin;
    let check = |c: &Content, now| dates(c, kind, now, &r);
    // 2026-11-20, judged a week later: fine.
    assert_eq!(check(&c, at(2026, 11, 27, 0)).rule, "ISSUE_DATE_OK");
    // Judged the day before in UTC: the date may already have begun in UTC+14.
    assert_eq!(check(&c, at(2026, 11, 19, 11)).rule, "ISSUE_DATE_OK");
    // Two days before: in the future everywhere.
    let future = check(&c, at(2026, 11, 18, 0));
    assert_eq!(
        (future.outcome, future.rule.as_str()),
        (Outcome::Fail, "ISSUE_DATE_FUTURE")
    );
    assert_eq!(future.params["skew_secs"], "300");
    // Over a year later: old for a certificate of origin.
    let old = check(&c, at(2027, 12, 1, 0));
    assert_eq!(
        (old.outcome, old.rule.as_str()),
        (Outcome::Warn, "ISSUE_DATE_OLD")
    );
    assert_eq!(old.params["max_days"], "365");
    // The 2016 e-Phyto is old for its type (90 days by default).
    let p = ephyto();
    let old = dates(&p, DocumentType::Phytosanitary, at(2026, 12, 1, 0), &r);
    assert_eq!(old.rule, "ISSUE_DATE_OLD");
    // An instant with its offset: 13:53:08-03:00 is 16:53:08Z, skew 300 s.
    let issued = at(2016, 4, 22, 16).as_millis() + (53 * 60 + 8) * 1000;
    let just_before = Timestamp::from_millis(issued - 299_000);
    assert_eq!(
        dates(&p, DocumentType::Phytosanitary, just_before, &r).rule,
        "ISSUE_DATE_OK"
    );
    let too_early = Timestamp::from_millis(issued - 301_000);
    assert_eq!(
        dates(&p, DocumentType::Phytosanitary, too_early, &r).rule,
        "ISSUE_DATE_FUTURE"
    );
    // Missing or unreadable: a warning naming what was found.
    c.issue_date = None;
    assert_eq!(check(&c, at(2026, 11, 27, 0)).rule, "ISSUE_DATE_MISSING");
    c.issue_date = Some("20 November 2026".into());
    let unreadable = check(&c, at(2026, 11, 27, 0));
    assert_eq!(
        (unreadable.outcome, unreadable.rule.as_str()),
        (Outcome::Warn, "ISSUE_DATE_UNREADABLE")
    );
    assert_eq!(unreadable.params["found"], "20 November 2026");
}

#[test]
fn issue_dates_are_read_in_the_forms_documents_use() {
    let day = |y, m, d| days_from_civil(y, m, d) * DAY_MS;
    assert_eq!(parse_issue_date("1970-01-01"), Some(Issued::Day(0)));
    assert_eq!(
        parse_issue_date("20261120"),
        Some(Issued::Day(day(2026, 11, 20)))
    );
    assert_eq!(
        parse_issue_date("2026-11-20T10:00:00Z"),
        Some(Issued::Instant(day(2026, 11, 20) + 10 * 3_600_000))
    );
    assert_eq!(
        parse_issue_date("2026-11-20T10:00:00.123+05:00"),
        Some(Issued::Instant(day(2026, 11, 20) + 5 * 3_600_000))
    );
    assert_eq!(
        parse_issue_date("2026-11-20T10:00"),
        Some(Issued::Local(day(2026, 11, 20) + 10 * 3_600_000))
    );
    for bad in [
        "2026-13-01",
        "2026-11-20T25:00",
        "2026/11/20",
        "",
        "2026-11-20X",
        "２０２６-11-20",
    ] {
        assert_eq!(parse_issue_date(bad), None, "{bad}");
    }
}

#[test]
fn the_same_number_again_is_a_duplicate_unless_replaced() {
    let c = eco();
    let h = claims(&c);
    let first = MessageId::generate();
    let mut known = Known {
        earlier: vec![Earlier {
            message_id: first,
            replaced_by: None,
        }],
        replaced_by: None,
    };
    let dup = duplicate(&h, &known);
    assert_eq!(
        (dup.outcome, dup.rule.as_str()),
        (Outcome::Fail, "DUPLICATE_NUMBER")
    );
    assert_eq!(dup.params["earlier"], first.to_string());
    assert_eq!(dup.params["number"], "KZ-CO-2026-000123");
    // A replacement of the earlier one under the same number is no duplicate.
    let replacement = HeaderClaims {
        supersedes: Some(first),
        ..h.clone()
    };
    assert_eq!(duplicate(&replacement, &known).rule, "NUMBER_UNIQUE");
    // Nor is anything once the earlier one was replaced.
    known.earlier[0].replaced_by = Some(MessageId::generate());
    assert_eq!(duplicate(&h, &known).rule, "NUMBER_UNIQUE");
    // Its own message id is not an earlier document.
    let own = Known {
        earlier: vec![Earlier {
            message_id: h.message_id,
            replaced_by: None,
        }],
        replaced_by: None,
    };
    assert_eq!(duplicate(&h, &own).outcome, Outcome::Pass);
}

#[test]
fn a_replaced_document_says_by_which() {
    let by = MessageId::generate();
    let r = replaced(&Known {
        earlier: Vec::new(),
        replaced_by: Some(by),
    });
    assert_eq!((r.outcome, r.rule.as_str()), (Outcome::Warn, "REPLACED"));
    assert_eq!(r.params["replacement"], by.to_string());
    assert_eq!(replaced(&Known::default()).rule, "NOT_REPLACED");
}

#[test]
fn every_rule_is_listed_and_parameters_are_short() {
    let c = ephyto();
    let mut long = claims(&c);
    long.document_id = "x".repeat(10_000);
    let all: Vec<Check> = header(&c, &long)
        .into_iter()
        .chain(issuer(&c, &reg("KZ", &["A"]), &reg("CN", &[])))
        .collect();
    for check in &all {
        assert!(RULES.contains(&check.rule.as_str()), "{}", check.rule);
        assert!(
            check
                .params
                .values()
                .all(|v| v.chars().count() <= PARAM_CHARS)
        );
    }
    assert!(
        all[0]
            .describe()
            .starts_with("header Fail DOCUMENT_ID_MISMATCH: ")
    );
}

#[test]
fn every_rule_and_check_has_a_message_in_every_language() {
    let names = [
        CheckName::Issuer,
        CheckName::Header,
        CheckName::Dates,
        CheckName::Duplicate,
        CheckName::Replaced,
    ];
    for lang in crate::i18n::Lang::all() {
        for rule in RULES {
            assert!(
                lang.lookup(&message_key(rule)).is_some(),
                "{}: {rule}",
                lang.tag()
            );
        }
        for n in names {
            let key = format!("content_check.name_{}", n.as_str());
            assert!(lang.lookup(&key).is_some(), "{}: {key}", lang.tag());
        }
    }
}

#[test]
fn the_corridor_samples_pass_every_check_for_their_corridor() {
    let kz_nppo = "Committee of State Inspection in the Agro-Industrial Complex, Ministry of \
                   Agriculture of the Republic of Kazakhstan";
    let uz_nppo = "Agency of Plant Quarantine and Protection of the Republic of Uzbekistan";
    for (path, sender, recipient, issued) in [
        (
            "ephyto/carec-KZ-CN-phytosanitary.xml",
            reg("KZ", &[kz_nppo]),
            "CN",
            at(2026, 11, 28, 0),
        ),
        (
            "ephyto/carec-UZ-KZ-phytosanitary.xml",
            reg("UZ", &[uz_nppo]),
            "KZ",
            at(2026, 11, 29, 0),
        ),
        (
            "ephyto/carec-KZ-TJ-phytosanitary.xml",
            reg("KZ", &[kz_nppo]),
            "TJ",
            at(2026, 12, 1, 0),
        ),
        (
            "einvoice/ubl/carec-CN-UZ-invoice.xml",
            reg("CN", &[]),
            "UZ",
            at(2026, 11, 27, 0),
        ),
    ] {
        let c = sample(path);
        let checks = run(&Facts {
            content: &c,
            header: &claims(&c),
            sender: &sender,
            recipient: &reg(recipient, &[]),
            now: issued,
            rules: &CheckRules::default(),
            known: None,
        });
        assert_eq!(worst(&checks), Outcome::Pass, "{path}: {checks:?}");
    }
}

#[test]
fn the_registered_authorities_are_listed_by_whole_names() {
    let long = "Committee of State Inspection in the Agro-Industrial Complex, Ministry of Agriculture of the Republic of Kazakhstan";
    let names = [
        "Chamber of Commerce and Industry of the Republic of Kazakhstan",
        long,
        "Third",
    ];
    assert_eq!(
        name_list(names.iter().copied()),
        "Chamber of Commerce and Industry of the Republic of Kazakhstan; … (+2)"
    );
    assert_eq!(name_list(["A", "B"].into_iter()), "A; B");
    assert_eq!(name_list(std::iter::once(long)), long);
    assert_eq!(name_list(std::iter::empty()), "");
}
