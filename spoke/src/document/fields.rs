//! The labelled fields an officer checks, read from a document's element tree by paths of local
//! names (the tables are in each format's file), in document order.

use super::{
    DocumentError, Format, PARTY_LABELS, cii,
    content::Measure,
    json_co, sps, ubl,
    xml::{self, Element},
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
    match specs(format) {
        Some(specs) => Ok(fields_of(&xml::parse(payload)?, specs)),
        None => json_co::fields(payload),
    }
}

/// The field table of an XML format (`None`: the JSON e-CO, which has no paths).
pub(super) fn specs(format: Format) -> Option<&'static [Spec]> {
    Some(match format {
        Format::SpsCertificate => sps::SPS,
        Format::UblCertificateOfOrigin => ubl::COO,
        Format::UblInvoice | Format::UblCreditNote => ubl::UBL_INVOICE,
        Format::CrossIndustryInvoice => cii::CII,
        Format::JsonCertificateOfOrigin => return None,
    })
}

/// The fields `specs` name, read from a parsed document (`root`), in document order.
pub(super) fn fields_of(root: &Element, specs: &[Spec]) -> Vec<Field> {
    let mut out = Vec::new();
    walk(root, &mut String::new(), specs, &mut out);
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
    out
}

/// The fields among `e`'s descendants, `path` being `e`'s below the root. Recursion is bounded
/// by the tree's depth cap ([`xml::MAX_DEPTH`]).
fn walk(e: &Element, path: &mut String, specs: &[Spec], out: &mut Vec<Field>) {
    for child in &e.children {
        let parent = path.len();
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(&child.name);
        for (label, _, attribute) in specs.iter().filter(|(_, p, _)| *p == path.as_str()) {
            let (value, language) = match attribute {
                Some(name) => (child.attribute(name).map(str::to_owned), None),
                None => (
                    Some(child.deep_text()),
                    child.attribute("languageID").map(str::to_owned),
                ),
            };
            if let Some(value) = value {
                out.push(Field {
                    label: (*label).into(),
                    value: value.split_whitespace().collect::<Vec<_>>().join(" "),
                    language,
                });
            }
        }
        walk(child, path, specs, out);
        path.truncate(parent);
    }
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
