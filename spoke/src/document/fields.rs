//! The labelled fields an officer checks, read from a document by paths of local names (the
//! tables are in each format's file), in document order.

use quick_xml::{events::Event, reader::NsReader};

use super::{
    DocumentError, Format, PARTY_LABELS, cii, content::Measure, json_co, sps, ubl, xml::Element,
};

/// One field an officer checks, as found in the document. Repeated elements (goods lines,
/// texts in several languages) give one field each, in document order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Field {
    pub label: String,
    pub value: String,
    /// The `languageID` of the element, when the document states it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// `(label, path below the root by local names, attribute)`: the text of the element, or the
/// value of the attribute when one is named.
pub(super) type Spec = (&'static str, &'static str, Option<&'static str>);

/// The fields an officer checks, read from a document already recognised as `format`.
/// Lenient: elements are found by their path of local names, whatever their order, prefixes or
/// neighbours; what is absent is simply not listed.
/// A JSON e-CO's fields are its content's, labelled the same way.
pub fn fields(payload: &[u8], format: Format) -> Result<Vec<Field>, DocumentError> {
    let specs: &[Spec] = match format {
        Format::SpsCertificate => sps::SPS,
        Format::UblCertificateOfOrigin => ubl::COO,
        Format::UblInvoice | Format::UblCreditNote => ubl::UBL_INVOICE,
        Format::CrossIndustryInvoice => cii::CII,
        Format::JsonCertificateOfOrigin => return json_co::fields(payload),
    };
    let xml = payload;
    let mut reader = NsReader::from_reader(xml);
    let mut buf = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let mut depth = 0usize;
    let mut out = Vec::new();
    // The field being read from element text: (index in `out`, depth it closes at).
    let mut open: Vec<(usize, usize)> = Vec::new();
    loop {
        let position = reader.buffer_position();
        let malformed = |e: quick_xml::Error| DocumentError::NotWellFormed {
            position,
            message: e.to_string(),
        };
        let (_, event) = reader
            .read_resolved_event_into(&mut buf)
            .map_err(malformed)?;
        match &event {
            Event::Start(e) | Event::Empty(e) => {
                let is_start = matches!(event, Event::Start(_));
                if depth > 0 {
                    path.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
                }
                let here = path.join("/");
                let attribute = |name: &str| {
                    e.attributes()
                        .flatten()
                        .find(|a| a.key.local_name().as_ref() == name.as_bytes())
                        .and_then(|a| a.unescape_value().ok())
                        .map(|v| v.into_owned())
                };
                for (label, _, attr) in specs.iter().filter(|(_, p, _)| depth > 0 && *p == here) {
                    match attr {
                        Some(attr) => {
                            if let Some(value) = attribute(attr) {
                                out.push(Field {
                                    label: (*label).into(),
                                    value,
                                    language: None,
                                });
                            }
                        }
                        None if is_start => {
                            open.push((out.len(), depth + 1));
                            out.push(Field {
                                label: (*label).into(),
                                value: String::new(),
                                language: attribute("languageID"),
                            });
                        }
                        None => {}
                    }
                }
                if is_start {
                    depth += 1;
                } else if depth > 0 {
                    path.pop();
                }
            }
            Event::End(_) => {
                while open.last().is_some_and(|(_, d)| *d == depth) {
                    open.pop();
                }
                depth = depth.saturating_sub(1);
                path.pop();
            }
            Event::Text(t) => {
                let text = t.decode().map_err(|e| malformed(e.into()))?;
                for (index, _) in &open {
                    out[*index].value.push_str(&text);
                }
            }
            Event::GeneralRef(r) => {
                let text = match r.resolve_char_ref().map_err(malformed)? {
                    Some(c) => c.to_string(),
                    None => r
                        .decode()
                        .ok()
                        .and_then(|n| quick_xml::escape::resolve_predefined_entity(&n))
                        .unwrap_or_default()
                        .to_owned(),
                };
                for (index, _) in &open {
                    out[*index].value.push_str(&text);
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    for f in &mut out {
        f.value = f.value.split_whitespace().collect::<Vec<_>>().join(" ");
    }
    out.retain(|f| !f.value.is_empty());
    // A party named the same way in two places (PartyName and PartyLegalEntity) is listed once.
    let mut seen: Vec<(String, String)> = Vec::new();
    out.retain(|f| {
        if !PARTY_LABELS.contains(&f.label.as_str()) {
            return true;
        }
        let key = (f.label.clone(), f.value.clone());
        let first = !seen.contains(&key);
        seen.push(key);
        first
    });
    Ok(out)
}

/// A measure (quantity, weight) with the unit its `unitCode` states.
pub(super) fn measure(e: Option<&Element>) -> Option<Measure> {
    let e = e?;
    Some(Measure {
        value: e.own_text()?,
        unit: e.attribute("unitCode").map(str::to_owned),
    })
}

#[cfg(test)]
mod field_tests {
    use super::*;
    use crate::document::{missing_fields, summary};

    fn sample(path: &str) -> Vec<u8> {
        std::fs::read(format!("{}/../samples/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn values<'a>(fields: &'a [Field], label: &str) -> Vec<&'a str> {
        fields
            .iter()
            .filter(|f| f.label == label)
            .map(|f| f.value.as_str())
            .collect()
    }

    #[test]
    fn required_fields_are_named_when_missing() {
        let invoice = b"<Invoice xmlns='urn:oasis:names:specification:ubl:schema:xsd:Invoice-2'><ID>1</ID></Invoice>";
        let problems = missing_fields(invoice, Format::UblInvoice);
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["issue_date", "seller", "buyer"]);
        assert!(problems.iter().all(|p| p.rule == "required"));
        for (path, format) in [
            (
                "ephyto/mattilsynet-SPSCertificateContent.xml",
                Format::SpsCertificate,
            ),
            (
                "eco/carec-KZ-CN-certificate-of-origin.xml",
                Format::UblCertificateOfOrigin,
            ),
            ("einvoice/ubl/peppol-base-example.xml", Format::UblInvoice),
            (
                "einvoice/cii/en16931-CII_example1.xml",
                Format::CrossIndustryInvoice,
            ),
        ] {
            assert_eq!(missing_fields(&sample(path), format), vec![], "{path}");
        }
        let s = summary(&sample("eco/carec-KZ-CN-certificate-of-origin.xml")).unwrap();
        assert!(
            s.parties.iter().any(|p| p == "Dala Un LLP"),
            "{:?}",
            s.parties
        );
    }

    #[test]
    fn reads_what_an_officer_checks_in_the_samples() {
        let phyto = fields(
            &sample("ephyto/mattilsynet-SPSCertificateContent.xml"),
            Format::SpsCertificate,
        )
        .unwrap();
        assert_eq!(values(&phyto, "Certificate number"), ["123ABC"]);
        assert!(!values(&phyto, "Botanical name").is_empty(), "{phyto:?}");
        assert!(!values(&phyto, "Attachment").is_empty());
        assert!(
            values(&phyto, "Note subject").contains(&"ADRPN"),
            "replacement data is listed"
        );
        // Texts repeated per language keep their language.
        assert!(
            phyto
                .iter()
                .any(|f| f.label == "Product" && f.language.is_some())
        );

        let eco = fields(
            &sample("eco/carec-KZ-CN-certificate-of-origin.xml"),
            Format::UblCertificateOfOrigin,
        )
        .unwrap();
        assert_eq!(values(&eco, "Certificate number"), ["KZ-CO-2026-000123"]);
        // A name given in several scripts is listed in each.
        assert_eq!(
            values(&eco, "Importer"),
            [
                "新疆丝路粮油贸易有限公司",
                "Xinjiang Silk Road Grain and Oil Trading Co., Ltd."
            ]
        );
        assert_eq!(values(&eco, "HS code"), ["110100", "110311"]);

        let cii = fields(
            &sample("einvoice/cii/en16931-CII_example1.xml"),
            Format::CrossIndustryInvoice,
        )
        .unwrap();
        assert_eq!(values(&cii, "Invoice number"), ["12115118"]);
        assert!(!values(&cii, "Seller").is_empty());

        let ubl = fields(
            &sample("einvoice/ubl/peppol-base-example.xml"),
            Format::UblInvoice,
        )
        .unwrap();
        assert_eq!(values(&ubl, "Invoice number"), ["Snippet1"]);
        assert!(!values(&ubl, "Amount due").is_empty());
    }
}
