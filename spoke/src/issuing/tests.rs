//! What the spoke makes, read back by the spoke's own document rules; forms refused field by
//! field; hostile text escaped or refused. (Schema validation with xmllint:
//! `spoke/tests/issuing_xsd.rs`.)

use caravan_common::{DocumentType, Timestamp};

use super::*;
use crate::document::{self, Content, Format, Measure};

/// 2026-11-27T05:15:00Z.
const ISSUED_MS: i64 = 1_795_756_500_000;

pub(crate) fn issue(number: &str) -> Issue {
    Issue {
        document_number: number.into(),
        issued_at: Timestamp::from_millis(ISSUED_MS),
        supersedes: None,
    }
}

fn trader(name: &str, address: &str, country: &str) -> TradeParty {
    TradeParty {
        name: name.into(),
        address: address.into(),
        country: country.into(),
    }
}

pub(crate) fn full_ephyto() -> EPhytoForm {
    EPhytoForm {
        consignor: trader(
            "Zhetysu Agro LLP",
            "Abay Street 12\nTaldykorgan, Zhetysu Region",
            "KZ",
        ),
        consignee: trader("新疆天山果业贸易有限公司", "友好北路88号\n乌鲁木齐市", "CN"),
        issuing_authority: Authority {
            name: "Committee of State Inspection in the Agro-Industrial Complex".into(),
            country: "KZ".into(),
        },
        authorized_officer: "Айгүл Серікқызы Нұрланова".into(),
        place_of_issue: "Almaty".into(),
        country_of_origin: "KZ".into(),
        country_of_destination: "CN".into(),
        place_of_loading: Place {
            name: "Almaty-1 railway station".into(),
            locode: "KZALA".into(),
        },
        point_of_entry: Place {
            name: "Alashankou".into(),
            locode: "CNAKA".into(),
        },
        conveyance: Conveyance {
            mode: "2".into(),
            name: "Train 3012, wagon 24817356".into(),
        },
        lines: vec![
            PhytoLine {
                description: "Fresh apples".into(),
                hs_code: "0808.10".into(),
                botanical_name: "Malus domestica".into(),
                quantity: "18500.5".into(),
                unit: "KGM".into(),
                packages: "1200".into(),
                package_type: "CT".into(),
            },
            PhytoLine {
                description: "Apple seedlings, bare-rooted".into(),
                hs_code: "06022010".into(),
                botanical_name: "Malus sieversii".into(),
                quantity: "300".into(),
                unit: "H87".into(),
                ..PhytoLine::default()
            },
        ],
        treatments: vec![Treatment {
            kind: "Fumigation".into(),
            chemical: "Phosphine".into(),
            duration: "72".into(),
            temperature: "-1.5".into(),
            concentration: "2".into(),
            concentration_unit: "KX".into(),
            date: "2026-11-20".into(),
            ..Treatment::default()
        }],
        additional_declarations: vec![
            "The consignment was inspected and found free of Cydia pomonella.".into(),
            "Произведено в зоне, свободной от Erwinia amylovora.".into(),
        ],
    }
}

pub(crate) fn minimal_ephyto() -> EPhytoForm {
    EPhytoForm {
        consignor: trader("A", "Tashkent", "UZ"),
        consignee: trader("B", "Shymkent", "KZ"),
        issuing_authority: Authority {
            name: "Uzbekistan Agency for Plant Quarantine".into(),
            country: "UZ".into(),
        },
        authorized_officer: "C".into(),
        place_of_issue: "Tashkent".into(),
        country_of_origin: "UZ".into(),
        country_of_destination: "KZ".into(),
        point_of_entry: Place {
            name: "Zhibek Zholy".into(),
            ..Place::default()
        },
        conveyance: Conveyance {
            mode: "3".into(),
            ..Conveyance::default()
        },
        lines: vec![PhytoLine {
            description: "Dried apricots".into(),
            hs_code: "0813".into(),
            botanical_name: "Prunus armeniaca".into(),
            quantity: "20".into(),
            unit: "TNE".into(),
            ..PhytoLine::default()
        }],
        ..EPhytoForm::default()
    }
}

pub(crate) fn full_eco() -> EcoForm {
    EcoForm {
        exporter: trader(
            "Dala Un LLP «Дала Ұн»",
            "проспект Абая 212\nҚостанай 110000",
            "KZ",
        ),
        consignee: trader(
            "新疆丝路粮油贸易有限公司",
            "北京南路388号\n乌鲁木齐市",
            "CN",
        ),
        issuing_authority: Authority {
            name: "Chamber of Commerce and Industry of the Republic of Kazakhstan".into(),
            country: "KZ".into(),
        },
        authorized_officer: "Әсел Нұрланқызы Серікбаева".into(),
        lines: vec![
            EcoLine {
                description: "Wheat flour, first grade".into(),
                hs_code: "1101.00".into(),
                origin_country: "KZ".into(),
                origin_criterion: "WO".into(),
                quantity: "1000".into(),
                unit: "XBG".into(),
                gross_weight_kg: "50150".into(),
            },
            EcoLine {
                description: "Wheat semolina".into(),
                hs_code: "110311".into(),
                origin_country: "KZ".into(),
                origin_criterion: "PSR".into(),
                quantity: "15000".into(),
                unit: "KGM".into(),
                ..EcoLine::default()
            },
        ],
        transport: EcoTransport {
            mode: "2".into(),
            loading_place: "Kostanay railway station".into(),
            discharge_place: "Urumqi North railway station".into(),
        },
        trade_agreement: "CIS Free Trade Area Agreement (2011)".into(),
        remarks: "Goods in 50 kg polypropylene bags.".into(),
    }
}

pub(crate) fn minimal_eco() -> EcoForm {
    EcoForm {
        exporter: trader("Tajik Cotton", "Dushanbe", "TJ"),
        consignee: trader("Cotton Trading", "Kabul", "AF"),
        issuing_authority: Authority {
            name: "Chamber of Commerce and Industry of Tajikistan".into(),
            country: "TJ".into(),
        },
        lines: vec![EcoLine {
            description: "Cotton, not carded or combed".into(),
            hs_code: "5201".into(),
            origin_country: "TJ".into(),
            origin_criterion: "WO".into(),
            quantity: "40".into(),
            unit: "TNE".into(),
            ..EcoLine::default()
        }],
        transport: EcoTransport {
            mode: "3".into(),
            ..EcoTransport::default()
        },
        ..EcoForm::default()
    }
}

fn built(form: &Form, issue: &Issue) -> (Vec<u8>, Content) {
    let xml = build(form, issue).unwrap_or_else(|p| panic!("refused: {p:#?}"));
    let content = document::judge(&xml, form.document_type(), Some(form.media_type()))
        .unwrap_or_else(|p| panic!("the spoke's rules refuse it: {p:#?}"));
    (xml, content)
}

fn m(value: &str, unit: &str) -> Option<Measure> {
    Some(Measure {
        value: value.into(),
        unit: Some(unit.into()),
    })
}

fn name_country(p: &Option<document::Party>) -> (Option<&str>, Option<&str>) {
    let p = p.as_ref();
    (
        p.and_then(|p| p.name.as_deref()),
        p.and_then(|p| p.country.as_deref()),
    )
}

#[test]
fn an_ephyto_reads_back_what_its_form_says() {
    let f = full_ephyto();
    let mut is = issue("KZ-PHY-2026-000001");
    is.supersedes = Some("KZ-PHY-2026-000000".into());
    let (xml, c) = built(&Form::EPhyto(f.clone()), &is);
    assert!(xml.starts_with(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
    assert_eq!(c.format, Format::SpsCertificate);
    assert_eq!(c.document_number.as_deref(), Some("KZ-PHY-2026-000001"));
    assert_eq!(c.issue_date.as_deref(), Some("2026-11-27T05:15:00Z"));
    assert_eq!(c.type_code.as_deref(), Some("851"));
    assert_eq!(c.status_code.as_deref(), Some("70"));
    assert_eq!(c.replaces.as_deref(), Some("KZ-PHY-2026-000000"));
    assert_eq!(
        c.issuer.as_ref().and_then(|p| p.name.as_deref()),
        Some(f.issuing_authority.name.as_str())
    );
    // The SPS address has no country element: the country is its last line, and the
    // exporting country is the authority's.
    assert_eq!(name_country(&c.consignor).0, Some("Zhetysu Agro LLP"));
    assert_eq!(
        name_country(&c.consignee).0,
        Some("新疆天山果业贸易有限公司")
    );
    assert_eq!(c.export_country.as_deref(), Some("KZ"));
    assert_eq!(c.import_country.as_deref(), Some("CN"));
    let t = c.transport.as_ref().unwrap();
    assert_eq!(t.mode_code.as_deref(), Some("2"));
    assert_eq!(t.conveyance.as_deref(), Some("Train 3012, wagon 24817356"));
    assert_eq!(c.goods.len(), 2);
    let (apples, seedlings) = (&c.goods[0], &c.goods[1]);
    assert_eq!(apples.description.as_deref(), Some("Fresh apples"));
    assert_eq!(apples.hs_code.as_deref(), Some("080810"));
    assert_eq!(apples.botanical_name.as_deref(), Some("Malus domestica"));
    assert_eq!(apples.net_weight, m("18500.5", "KGM"));
    assert_eq!(apples.origin_country.as_deref(), Some("KZ"));
    assert_eq!(seedlings.hs_code.as_deref(), Some("06022010"));
    assert_eq!(seedlings.quantity, m("300", "H87"));
    let text = String::from_utf8(xml).unwrap();
    for expected in [
        "<ram:ScientificName>Malus sieversii</ram:ScientificName>",
        "<ram:Subject>ADEDL</ram:Subject>",
        "Произведено в зоне, свободной от Erwinia amylovora.",
        "<ram:SpecifiedSPSPerson>",
        "<ram:Name>Айгүл Серікқызы Нұрланова</ram:Name>",
        "<ram:ItemQuantity>1200</ram:ItemQuantity>",
        "<ram:TypeCode>CT</ram:TypeCode>",
        "<ram:ID>CNAKA</ram:ID>",
        "<ram:Description>TTCH</ram:Description>",
        "<ram:ValueMeasure unitCode=\"CEL\">-1.5</ram:ValueMeasure>",
        "<ram:DurationMeasure unitCode=\"HUR\">72</ram:DurationMeasure>",
        "<ram:LineThree>Kazakhstan</ram:LineThree>",
    ] {
        assert!(text.contains(expected), "{expected} not in\n{text}");
    }
}

#[test]
fn an_eco_reads_back_what_its_form_says() {
    let f = full_eco();
    let (xml, c) = built(&Form::Eco(f.clone()), &issue("KZ-CO-2026-000200"));
    assert_eq!(c.format, Format::UblCertificateOfOrigin);
    assert_eq!(c.document_number.as_deref(), Some("KZ-CO-2026-000200"));
    assert_eq!(c.issue_date.as_deref(), Some("2026-11-27"));
    assert_eq!(c.type_code.as_deref(), Some("Preferential"));
    assert_eq!(c.status_code.as_deref(), Some("ORIGINAL"));
    assert_eq!(c.replaces, None);
    assert_eq!(
        name_country(&c.issuer),
        (Some(f.issuing_authority.name.as_str()), Some("KZ"))
    );
    assert_eq!(
        name_country(&c.exporter),
        (Some("Dala Un LLP «Дала Ұн»"), Some("KZ"))
    );
    assert_eq!(
        name_country(&c.importer),
        (Some("新疆丝路粮油贸易有限公司"), Some("CN"))
    );
    assert_eq!(name_country(&c.consignee), name_country(&c.importer));
    assert_eq!(c.export_country.as_deref(), Some("KZ"));
    assert_eq!(c.import_country.as_deref(), Some("CN"));
    assert_eq!(
        c.transport.as_ref().and_then(|t| t.mode_code.as_deref()),
        Some("2")
    );
    assert_eq!(c.goods.len(), 2);
    let (flour, semolina) = (&c.goods[0], &c.goods[1]);
    assert_eq!(
        flour.description.as_deref(),
        Some("Wheat flour, first grade")
    );
    assert_eq!(flour.hs_code.as_deref(), Some("110100"));
    assert_eq!(flour.quantity, m("1000", "XBG"));
    assert_eq!(flour.gross_weight, m("50150", "KGM"));
    assert_eq!(flour.origin_country.as_deref(), Some("KZ"));
    assert_eq!(flour.origin_criterion.as_deref(), Some("WO"));
    assert_eq!(semolina.quantity, m("15000", "KGM"));
    assert_eq!(semolina.origin_criterion.as_deref(), Some("PSR"));
    let text = String::from_utf8(xml).unwrap();
    assert!(text.contains("Trade agreement: CIS Free Trade Area Agreement (2011)"));
    assert!(text.contains("<cbc:Name>Әсел Нұрланқызы Серікбаева</cbc:Name>"));
}

#[test]
fn a_replacement_eco_names_the_certificate_it_replaces() {
    let mut is = issue("KZ-CO-2026-000201");
    is.supersedes = Some("KZ-CO-2026-000200".into());
    let (_, c) = built(&Form::Eco(minimal_eco()), &is);
    assert_eq!(c.replaces.as_deref(), Some("KZ-CO-2026-000200"));
    assert_eq!(c.status_code.as_deref(), Some("REPLACEMENT"));
    assert_eq!(c.type_code.as_deref(), Some("Non-preferential"));
}

#[test]
fn minimal_forms_make_documents_the_spoke_accepts() {
    let (_, c) = built(&Form::EPhyto(minimal_ephyto()), &issue("UZ-1"));
    assert_eq!(c.goods[0].net_weight, m("20", "TNE"));
    let mut juice = minimal_ephyto();
    juice.lines[0].quantity = "2000.25".into();
    juice.lines[0].unit = "LTR".into();
    let (_, c) = built(&Form::EPhyto(juice), &issue("UZ-2"));
    assert_eq!(c.goods[0].quantity, m("2000.25", "LTR"));
    let (_, c) = built(&Form::Eco(minimal_eco()), &issue("TJ-1"));
    assert_eq!(c.import_country.as_deref(), Some("AF"));
}

fn fields(problems: &[FieldProblem]) -> Vec<(&str, &str)> {
    problems
        .iter()
        .map(|p| (p.field.as_str(), p.rule.as_str()))
        .collect()
}

#[test]
fn a_form_missing_a_required_field_is_refused_with_the_field_named() {
    let mut f = full_ephyto();
    f.consignor.name = "  ".into();
    f.lines[1].hs_code.clear();
    let refused = build(&Form::EPhyto(f), &issue("X-1")).unwrap_err();
    assert_eq!(
        fields(&refused),
        [
            ("consignor.name", "required"),
            ("lines[1].hs_code", "required")
        ]
    );

    let mut f = full_eco();
    f.issuing_authority.country.clear();
    f.lines.clear();
    let refused = build(&Form::Eco(f), &issue("")).unwrap_err();
    assert_eq!(
        fields(&refused),
        [
            ("issuing_authority.country", "required"),
            ("lines", "lines"),
            ("document_number", "required")
        ]
    );
    // An empty form names everything it lacks, and never panics.
    let all = check(&Form::EPhyto(EPhytoForm::default()));
    for field in [
        "consignor.name",
        "consignor.country",
        "consignee.name",
        "issuing_authority.name",
        "authorized_officer",
        "place_of_issue",
        "country_of_origin",
        "country_of_destination",
        "point_of_entry.name",
        "conveyance.mode",
        "lines",
    ] {
        assert!(all.iter().any(|p| p.field == field), "{field}: {all:#?}");
    }
    assert!(!check(&Form::Eco(EcoForm::default())).is_empty());
}

#[test]
fn codes_quantities_and_numbers_are_checked_field_by_field() {
    let mut f = full_ephyto();
    f.consignee.country = "XK".into();
    f.country_of_destination = "kz".into();
    f.conveyance.mode = "12".into();
    f.point_of_entry.locode = "CN-AK".into();
    f.lines[0].hs_code = "08.08.10.00.00.1".into();
    f.lines[0].unit = "KG".into();
    f.lines[0].quantity = "0".into();
    f.lines[0].package_type = "box".into();
    f.lines[1].quantity = "1e3".into();
    f.lines[1].packages = "4".into();
    f.treatments[0].date = "2026-02-30".into();
    f.treatments[0].temperature = "hot".into();
    f.treatments[0].concentration_unit.clear();
    let refused = check(&Form::EPhyto(f));
    assert_eq!(
        fields(&refused),
        [
            ("consignee.country", "country-code"),
            ("country_of_destination", "country-code"),
            ("point_of_entry.locode", "locode"),
            ("conveyance.mode", "transport-mode"),
            ("lines[0].hs_code", "hs-code"),
            ("lines[0].quantity", "quantity"),
            ("lines[0].unit", "unit-code"),
            ("lines[0].package_type", "package-code"),
            ("lines[1].quantity", "quantity"),
            ("lines[1].package_type", "required"),
            ("treatments[0].temperature", "decimal"),
            ("treatments[0].concentration_unit", "required"),
            ("treatments[0].date", "date"),
        ]
    );
    // A code of the right shape whose heading HS 2022 does not have is refused by its own rule.
    let mut f = full_eco();
    f.lines[1].hs_code = "9999.00".into();
    let refused = build(&Form::Eco(f), &issue("KZ-1")).unwrap_err();
    assert_eq!(fields(&refused), [("lines[1].hs_code", "hs-heading")]);
    let mut is = issue("N-1");
    is.supersedes = Some(" N-1 ".into());
    is.issued_at = Timestamp::from_millis(-1);
    assert_eq!(
        fields(&build(&Form::Eco(minimal_eco()), &is).unwrap_err()),
        [("supersedes", "supersedes"), ("issued_at", "issued-at")]
    );
}

/// Text that breaks naive XML writing, and text in the scripts CAREC officers write.
const HOSTILE: &[&str] = &[
    "<script>alert('x')</script> & \"quotes\"",
    "]]><evil/>",
    "&amp; &#x0; &lt;",
    "<![CDATA[ x ]]>",
    "<?xml version=\"1.0\"?>",
    "شركة الواحة للتجارة", // RTL
    "新疆天山果业贸易有限公司",
    "ТОО «Дала Ұн» — Қостанай",
    "emoji 🍎 and combining é",
];

#[test]
fn hostile_text_is_escaped_and_reads_back_as_written() {
    for (i, text) in HOSTILE.iter().enumerate() {
        let mut f = full_ephyto();
        f.consignor.name = (*text).into();
        f.lines[0].description = (*text).into();
        f.lines[0].botanical_name = (*text).into();
        f.additional_declarations = vec![format!("{text}\nsecond line")];
        let (xml, c) = built(&Form::EPhyto(f), &issue(&format!("KZ-{i}")));
        assert_eq!(name_country(&c.consignor).0, Some(*text));
        assert_eq!(c.goods[0].description.as_deref(), Some(*text));
        assert_eq!(c.goods[0].botanical_name.as_deref(), Some(*text));
        assert!(!String::from_utf8(xml).unwrap().contains("<evil/>"));

        let mut f = full_eco();
        f.exporter.name = (*text).into();
        f.lines[0].description = (*text).into();
        f.lines[0].origin_criterion = (*text).into();
        f.remarks = (*text).into();
        let (_, c) = built(&Form::Eco(f), &issue(&format!("KZ-{i}")));
        assert_eq!(name_country(&c.exporter).0, Some(*text));
        assert_eq!(c.goods[0].description.as_deref(), Some(*text));
        assert_eq!(c.goods[0].origin_criterion.as_deref(), Some(*text));
    }
    // A document number is text too.
    let (_, c) = built(&Form::Eco(minimal_eco()), &issue("<KZ&1>"));
    assert_eq!(c.document_number.as_deref(), Some("<KZ&1>"));
}

#[test]
fn text_xml_cannot_hold_or_too_long_is_refused_with_the_field_named() {
    let cases: &[(&str, String, &str)] = &[
        ("consignor.name", "nul\u{0}byte".into(), "text"),
        ("consignor.name", "escape\u{1b}[31m".into(), "text"),
        ("consignor.name", "two\nlines".into(), "text"),
        ("consignor.name", "bidi \u{202E}evil".into(), "text"),
        ("consignor.name", "non-character \u{FFFF}".into(), "text"),
        ("consignor.name", "x".repeat(MAX_TEXT + 1), "length"),
        ("consignor.address", "y".repeat(MAX_LONG_TEXT + 1), "length"),
        ("consignor.address", "bell\u{7}".into(), "text"),
    ];
    for (field, value, rule) in cases {
        let mut f = full_ephyto();
        match *field {
            "consignor.name" => f.consignor.name = value.clone(),
            _ => f.consignor.address = value.clone(),
        }
        let refused = build(&Form::EPhyto(f), &issue("KZ-1")).unwrap_err();
        assert_eq!(fields(&refused), [(*field, *rule)], "{value:?}");
    }
    // Multi-line fields keep their lines; the longest allowed text is made and read back.
    let mut f = full_ephyto();
    f.consignor.address = "line one\r\nline two\tstill two".into();
    f.consignor.name = "名".repeat(MAX_TEXT);
    let (_, c) = built(&Form::EPhyto(f), &issue("KZ-2"));
    assert_eq!(
        name_country(&c.consignor).0.map(|n| n.chars().count()),
        Some(MAX_TEXT)
    );
    // Lists are bounded.
    let mut f = minimal_eco();
    f.lines = vec![f.lines[0].clone(); MAX_LINES + 1];
    assert_eq!(fields(&check(&Form::Eco(f))), [("lines", "list-length")]);
}

#[test]
fn forms_travel_as_json_tagged_by_kind_and_refuse_unknown_fields() {
    let form = Form::EPhyto(full_ephyto());
    let json = serde_json::to_value(&form).unwrap();
    assert_eq!(json["kind"], "e-phyto");
    assert_eq!(serde_json::from_value::<Form>(json).unwrap(), form);
    let eco: Form = serde_json::from_str(r#"{"kind":"e-co","exporter":{"name":"A"}}"#).unwrap();
    assert_eq!(eco.document_type(), DocumentType::CertificateOfOrigin);
    assert_eq!(eco.media_type(), "application/xml");
    assert!(serde_json::from_str::<Form>(r#"{"kind":"e-co","colour":"red"}"#).is_err());
    assert!(
        serde_json::from_str::<Form>(r#"{"kind":"e-phyto","consignor":{"nmae":"A"}}"#).is_err()
    );
    assert!(serde_json::from_str::<Form>(r#"{"kind":"e-invoice"}"#).is_err());
    assert_eq!(Form::default().document_type(), DocumentType::Phytosanitary);
}
