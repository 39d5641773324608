//! What the sample documents (real public ones, and our own e-CO) say, read as officers and the
//! content checks will read them; and the refusals of what is not a supported document.

use caravan_common::DocumentType;

use super::*;

fn sample(path: &str) -> Vec<u8> {
    std::fs::read(format!("{}/../samples/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn read(path: &str) -> Content {
    content(&sample(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn name_and_country(p: &Option<Party>) -> (Option<&str>, Option<&str>) {
    p.as_ref()
        .map_or((None, None), |p| (p.name.as_deref(), p.country.as_deref()))
}

fn m(value: &str, unit: &str) -> Option<Measure> {
    Some(Measure {
        value: value.into(),
        unit: Some(unit.into()),
    })
}

/// (file, format, number, ISO date, seller (name, country), buyer, goods lines, first goods
/// line's description and HS code)
type InvoiceCase = (
    &'static str,
    Format,
    &'static str,
    &'static str,
    (&'static str, &'static str),
    (&'static str, &'static str),
    usize,
    &'static str,
    Option<&'static str>,
);

#[test]
fn invoices_name_their_parties_goods_and_countries() {
    // (file, format, number, ISO date, seller (name, country), buyer, goods lines, first goods
    // line's description and HS code)
    let cases: &[InvoiceCase] = &[
        (
            "einvoice/ubl/oasis-UBL-Invoice-2.0-Example.xml",
            Format::UblInvoice,
            "A00095678",
            "2005-06-21",
            ("Consortial", "GB"),
            ("IYT Corporation", "GB"),
            1,
            "beeswax",
            None,
        ),
        (
            "einvoice/ubl/oasis-UBL-CreditNote-2.0-Example.xml",
            Format::UblCreditNote,
            "CN758494",
            "2005-06-25",
            ("Consortial", "GB"),
            ("IYT Corporation", "GB"),
            1,
            "beeswax",
            None,
        ),
        (
            "einvoice/ubl/oasis-UBL-Invoice-2.1-Example.xml",
            Format::UblInvoice,
            "TOSL108",
            "2009-12-15",
            ("The Sellercompany Incorporated", "DK"),
            ("The buyercompany inc.", "BE"),
            5,
            "Labtop computer",
            Some("12344321"),
        ),
        (
            "einvoice/ubl/en16931-ubl-tc434-example1.xml",
            Format::UblInvoice,
            "12115118",
            "2015-01-09",
            ("De Koksmaat", "NL"),
            ("ODIN 59", "NL"),
            20,
            "PATAT FRITES 10MM 10KG",
            None,
        ),
        (
            "einvoice/ubl/en16931-ubl-tc434-example2.xml",
            Format::UblInvoice,
            "TOSL108",
            "2013-06-30",
            ("Salescompany ltd.", "NO"),
            ("The Buyercompany", "NO"),
            5,
            "Laptop computer",
            Some("12344321"),
        ),
        (
            "einvoice/ubl/en16931-ubl-tc434-example5.xml",
            Format::UblInvoice,
            "TOSL110",
            "2013-04-10",
            ("SellerCompany", "NL"),
            ("Buyercompany ltd", "DK"),
            3,
            "Printing paper",
            Some("12344321"),
        ),
        (
            "einvoice/ubl/en16931-ubl-tc434-creditnote1.xml",
            Format::UblCreditNote,
            "018304 / 28865",
            "2019-09-23",
            ("", ""),
            ("", ""),
            0,
            "",
            None,
        ),
        (
            "einvoice/ubl/peppol-base-example.xml",
            Format::UblInvoice,
            "Snippet1",
            "2017-11-13",
            ("SupplierOfficialName Ltd", "GB"),
            ("Buyer Official Name", "SE"),
            0,
            "",
            None,
        ),
        (
            "einvoice/ubl/peppol-Allowance-example.xml",
            Format::UblInvoice,
            "Snippet1",
            "2017-11-13",
            ("SupplierOfficialName Ltd", "GB"),
            ("Buyer Official Name", "SE"),
            3,
            "item name",
            Some("09348023"),
        ),
        (
            "einvoice/ubl/peppol-base-creditnote-correction.xml",
            Format::UblCreditNote,
            "Snippet1",
            "2017-11-13",
            ("SupplierOfficialName Ltd", "GB"),
            ("Buyer Official Name", "SE"),
            2,
            "item name",
            Some("09348023"),
        ),
        (
            "einvoice/ubl/peppol-vat-category-E.xml",
            Format::UblInvoice,
            "Vat-Z",
            "2018-08-30",
            ("The Sellercompany Incorporated", "GB"),
            ("The Buyercompany", "DK"),
            1,
            "Test item, category Z",
            None,
        ),
        (
            "einvoice/cii/en16931-CII_example1.xml",
            Format::CrossIndustryInvoice,
            "12115118",
            "2015-01-09",
            ("De Koksmaat", "NL"),
            ("ODIN 59", "NL"),
            20,
            "PATAT FRITES 10MM 10KG",
            None,
        ),
        (
            "einvoice/cii/en16931-CII_example2.xml",
            Format::CrossIndustryInvoice,
            "TOSL108",
            "2013-06-30",
            ("Salescompany ltd.", "NO"),
            ("The Buyercompany", "NO"),
            5,
            "Laptop computer",
            Some("65434568"),
        ),
        (
            "einvoice/cii/en16931-CII_example5.xml",
            Format::CrossIndustryInvoice,
            "TOSL110",
            "2013-04-10",
            ("SellerCompany", "NL"),
            ("Buyercompany ltd", "DK"),
            3,
            "Printing paper",
            None,
        ),
    ];
    for (path, format, number, date, seller, buyer, lines, first, hs) in cases {
        let payload = sample(path);
        let c = judge(&payload, DocumentType::Invoice, Some(XML))
            .unwrap_or_else(|p| panic!("{path}: {p:?}"));
        assert_eq!(c.format, *format, "{path}");
        assert_eq!(c.document_number.as_deref(), Some(*number), "{path}");
        assert_eq!(c.summary().issue_date.as_deref(), Some(*date), "{path}");
        if !seller.0.is_empty() {
            assert_eq!(
                name_and_country(&c.seller),
                (Some(seller.0), Some(seller.1)),
                "{path}"
            );
            assert_eq!(
                name_and_country(&c.buyer),
                (Some(buyer.0), Some(buyer.1)),
                "{path}"
            );
        }
        if *lines > 0 {
            assert_eq!(c.goods.len(), *lines, "{path}");
            assert_eq!(c.goods[0].description.as_deref(), Some(*first), "{path}");
            assert_eq!(c.goods[0].hs_code.as_deref(), *hs, "{path}");
            assert!(
                c.goods[0]
                    .quantity
                    .as_ref()
                    .is_some_and(|q| q.unit.is_some()),
                "{path}"
            );
        }
    }
}

#[test]
fn a_ubl_2_0_invoice_naming_parties_by_party_name_and_tax_scheme_is_accepted() {
    let invoice = sample("einvoice/ubl/oasis-UBL-Invoice-2.0-Example.xml");
    // Its parties have no PartyLegalEntity: only PartyName/Name and
    // PartyTaxScheme/RegistrationName.
    assert!(!String::from_utf8_lossy(&invoice).contains("PartyLegalEntity"));
    assert_eq!(missing_fields(&invoice, Format::UblInvoice), vec![]);
    let c = judge(&invoice, DocumentType::Invoice, None).unwrap();
    let seller = c.seller.unwrap();
    assert_eq!(seller.other_names, ["Farthing Purchasing Consortium"]);
    assert_eq!(seller.ids, ["VAT:175 269 2355"]);
    assert_eq!(c.goods[0].quantity, m("100", "KGM"));
    let f = fields(&invoice, Format::UblInvoice).unwrap();
    let sellers: Vec<&str> = f
        .iter()
        .filter(|f| f.label == "Seller")
        .map(|f| f.value.as_str())
        .collect();
    assert_eq!(sellers, ["Consortial", "Farthing Purchasing Consortium"]);
}

#[test]
fn an_e_phyto_says_who_what_where_and_how() {
    let c = read("ephyto/mattilsynet-SPSCertificateContent.xml");
    assert_eq!(c.type_code.as_deref(), Some("851"));
    assert_eq!(c.status_code.as_deref(), Some("70"));
    assert_eq!(
        name_and_country(&c.issuer).0,
        Some("Servicio Nacional de Sanidad y Calida Agroalimentaria")
    );
    assert_eq!(name_and_country(&c.consignor).0, Some("Juan Perez"));
    assert_eq!(name_and_country(&c.consignee).0, Some("Importer SA"));
    assert_eq!(
        c.consignor.as_ref().unwrap().ids,
        ["NationalRegistrationNumber:98543210"]
    );
    assert_eq!(
        (c.export_country.as_deref(), c.import_country.as_deref()),
        (Some("AR"), Some("EC"))
    );
    assert_eq!(c.goods.len(), 2);
    let first = &c.goods[0];
    assert_eq!(first.hs_code.as_deref(), Some("06029048"));
    assert_eq!(first.botanical_name.as_deref(), Some("Ribes"));
    assert_eq!(first.net_weight, m("10", "KGM"));
    assert_eq!(first.gross_weight, m("60", "KGM"));
    assert_eq!(first.origin_country.as_deref(), Some("AR"));
    assert_eq!(
        c.transport,
        Some(Transport {
            mode_code: Some("3".into()),
            conveyance: Some("Ocean Vessel: Black Pearl".into()),
        })
    );
    assert_eq!(c.replaces.as_deref(), Some("3214356"));
    assert_eq!(c.attachments.len(), 6);
    assert_eq!(c.attachments[0].name.as_deref(), Some("TestPdf.pdf"));
    let pdf = attachment_bytes(&c, 0).unwrap();
    assert!(pdf.starts_with(b"%PDF"), "{:?}", &pdf[..8]);
    assert_eq!(attachment_bytes(&c, 6), None);
    let s = c.summary();
    assert!(s.hs_codes.contains(&"06029048".to_owned()));
    assert!(s.matches("outdoor plants"));
    assert!(s.matches("0602"));
}

#[test]
fn a_ubl_certificate_of_origin_and_its_replacement() {
    let original = read("eco/carec-KZ-CN-certificate-of-origin.xml");
    let replacement = read("eco/carec-KZ-CN-certificate-of-origin-replacement.xml");
    for c in [&original, &replacement] {
        assert_eq!(name_and_country(&c.exporter).1, Some("KZ"));
        assert_eq!(name_and_country(&c.importer).1, Some("CN"));
        assert_eq!(
            name_and_country(&c.issuer),
            (
                Some("Chamber of Commerce and Industry of the Republic of Kazakhstan"),
                Some("KZ")
            )
        );
        assert_eq!(
            (c.export_country.as_deref(), c.import_country.as_deref()),
            (Some("KZ"), Some("CN"))
        );
        assert!(
            c.exporter
                .as_ref()
                .unwrap()
                .names()
                .any(|n| n == "Dala Un LLP")
        );
        let hs: Vec<_> = c.goods.iter().map(|g| g.hs_code.as_deref()).collect();
        assert_eq!(hs, [Some("110100"), Some("110311")]);
        assert_eq!(c.goods[0].gross_weight, m("50150", "KGM"));
        assert_eq!(c.goods[0].quantity, m("1000", "XBG"));
        assert_eq!(c.goods[0].origin_country.as_deref(), Some("KZ"));
        assert_eq!(
            c.transport.as_ref().unwrap().mode_code.as_deref(),
            Some("2")
        );
    }
    assert_eq!(original.replaces, None);
    assert_eq!(replacement.replaces.as_deref(), Some("KZ-CO-2026-000123"));
    assert_eq!(replacement.status_code.as_deref(), Some("REPLACEMENT"));
}

#[test]
fn a_json_e_co_is_read_and_travels_as_json() {
    let json = sample("eco/carec-KZ-CN-certificate-of-origin.json");
    let r = recognise(&json).unwrap();
    assert_eq!(r.format, Format::JsonCertificateOfOrigin);
    assert_eq!(r.format.media_type(), "application/json");
    assert_eq!(r.document_id.as_deref(), Some("KZ-CO-2026-000125"));
    let c = judge(&json, DocumentType::CertificateOfOrigin, Some(JSON)).unwrap();
    assert_eq!(c.summary().issue_date.as_deref(), Some("2026-11-24"));
    assert_eq!(name_and_country(&c.issuer).1, Some("KZ"));
    assert_eq!(
        name_and_country(&c.exporter),
        (Some("Dala Un LLP"), Some("KZ"))
    );
    assert_eq!(
        name_and_country(&c.importer),
        (
            Some("Xinjiang Silk Road Grain and Oil Trading Co., Ltd."),
            Some("CN")
        )
    );
    assert_eq!(name_and_country(&c.consignee).1, Some("CN"));
    assert_eq!(
        (c.export_country.as_deref(), c.import_country.as_deref()),
        (Some("KZ"), Some("CN"))
    );
    assert_eq!(c.goods.len(), 2);
    assert_eq!(c.goods[1].hs_code.as_deref(), Some("110311"));
    assert_eq!(c.goods[1].origin_criterion.as_deref(), Some("WO"));
    assert_eq!(c.goods[1].net_weight, m("15000", "KGM"));
    assert_eq!(
        c.transport.as_ref().unwrap().mode_code.as_deref(),
        Some("2")
    );
    assert_eq!(c.attachments[0].media_type.as_deref(), Some("text/plain"));
    assert_eq!(
        attachment_bytes(&c, 0).unwrap(),
        b"Commercial invoice KZ-INV-2026-0457\n"
    );
    // The labelled fields for the console, and the summary for the inbox.
    assert!(
        c.fields
            .iter()
            .any(|f| f.label == "Exporter" && f.value == "Dala Un LLP")
    );
    assert_eq!(fields(&json, r.format).unwrap(), c.fields);
    let s = summary(&json).unwrap();
    assert_eq!(s.hs_codes, ["110100", "110311"]);
    assert!(s.matches("WHEAT SEMOLINA"));
    // Declared as XML, a JSON e-CO is refused with the reason.
    let refused = judge(&json, DocumentType::CertificateOfOrigin, Some(XML)).unwrap_err();
    assert_eq!(refused[0].field, "content_type");
    assert!(
        refused[0].message.contains("application/json"),
        "{refused:?}"
    );
    // Declared as an invoice, it is not one.
    let refused = judge(&json, DocumentType::Invoice, None).unwrap_err();
    assert_eq!(refused[0].rule, "matches-document");
}

#[test]
fn a_json_e_co_without_its_parties_is_refused_like_an_xml_one() {
    let json = br#"{"certificateOfOrigin": {"id": "X-1", "issueDateTime": "2026-01-02"}}"#;
    let problems = judge(json, DocumentType::CertificateOfOrigin, None).unwrap_err();
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["exporter", "importer"]);
}

#[test]
fn refusals_name_what_was_found_and_what_is_supported() {
    let html = recognise(br#"<html xmlns="http://www.w3.org/1999/xhtml"/>"#).unwrap_err();
    let message = html.to_string();
    assert!(
        message.contains("{http://www.w3.org/1999/xhtml}html"),
        "{message}"
    );
    assert!(message.contains("JSON e-CO"), "{message}");
    let order = recognise(
        br#"<Order xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2"><ID>1</ID></Order>"#,
    )
    .unwrap_err();
    assert_eq!(
        order,
        DocumentError::UnknownRoot {
            namespace: "urn:oasis:names:specification:ubl:schema:xsd:Order-2".into(),
            name: "Order".into()
        }
    );
    let json = recognise(br#"{"invoice": {}, "version": 2}"#).unwrap_err();
    assert_eq!(
        json,
        DocumentError::UnknownJson {
            found: "an object".into(),
            keys: vec!["invoice".into(), "version".into()]
        }
    );
    assert!(json.to_string().contains("keys invoice, version"), "{json}");
    assert_eq!(json.problem().rule, "known-document-format");
    assert!(matches!(
        recognise(b"  [1, 2]"),
        Err(DocumentError::UnknownJson { found, .. }) if found == "an array"
    ));
    let broken = recognise(b"{\"certificateOfOrigin\": {\"id\": ").unwrap_err();
    assert!(
        matches!(broken, DocumentError::NotWellFormedJson { line: 1, .. }),
        "{broken}"
    );
    assert_eq!(broken.problem().rule, "well-formed-json");
    assert!(
        recognise(b"")
            .unwrap_err()
            .to_string()
            .contains("supported")
    );
    let deep = format!(
        "<Invoice xmlns=\"urn:oasis:names:specification:ubl:schema:xsd:Invoice-2\">{}{}</Invoice>",
        "<a>".repeat(200),
        "</a>".repeat(200)
    );
    assert_eq!(
        content(deep.as_bytes()).unwrap_err(),
        DocumentError::TooDeep { limit: 128 }
    );
}

#[test]
fn summaries_stored_before_goods_were_added_still_read() {
    let old: Summary = serde_json::from_str(
        r#"{"document_number":"KZ-1","issue_date":"2026-01-02","parties":["A LLP"]}"#,
    )
    .unwrap();
    assert_eq!(old.goods, Vec::<String>::new());
    assert!(old.matches("a llp"));
    assert!(!old.matches("wheat"));
    let new = Summary {
        goods: vec!["Wheat flour".into()],
        hs_codes: vec!["1101.00".into()],
        ..old
    };
    assert!(new.matches("  WHEAT "));
    assert!(new.matches("110100"));
    assert!(new.matches("1101"));
    assert!(!new.matches("1102"));
    let back: Summary = serde_json::from_str(&serde_json::to_string(&new).unwrap()).unwrap();
    assert_eq!(back, new);
}
