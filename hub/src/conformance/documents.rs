//! The documents the conformance identity sends, and the judgement of those the candidate sends.
//!
//! The kit sends real public documents (samples/, with their sources and licences), each
//! renumbered for the run so that no case repeats another's number. What the candidate sends
//! is judged with the receiving spoke's own document rules (`caravan_spoke::document::judge`:
//! a known format of the declared type, the declared media type, the required fields), the
//! same rules every Caravan recipient applies.

use caravan_common::DocumentType;

struct Sample {
    document_type: DocumentType,
    bytes: &'static [u8],
    /// The number as written in the sample; every occurrence is replaced.
    number: &'static str,
}

const SAMPLES: [Sample; 3] = [
    Sample {
        document_type: DocumentType::CertificateOfOrigin,
        bytes: include_bytes!("../../../samples/eco/carec-KZ-CN-certificate-of-origin.xml"),
        number: "KZ-CO-2026-000123",
    },
    Sample {
        document_type: DocumentType::Phytosanitary,
        bytes: include_bytes!("../../../samples/ephyto/carec-UZ-KZ-phytosanitary.xml"),
        number: "UZ-PHY-2026-017730",
    },
    Sample {
        document_type: DocumentType::Invoice,
        bytes: include_bytes!("../../../samples/einvoice/ubl/carec-CN-UZ-invoice.xml"),
        number: "CN-INV-2026-118204",
    },
];

/// A document of `document_type` numbered `number`, and its media type.
pub fn document(document_type: DocumentType, number: &str) -> (Vec<u8>, &'static str) {
    let sample = SAMPLES
        .iter()
        .find(|s| s.document_type == document_type)
        .expect("a sample of every document type");
    let text = std::str::from_utf8(sample.bytes).expect("the samples are UTF-8");
    (
        text.replace(sample.number, number).into_bytes(),
        caravan_spoke::document::XML,
    )
}

/// Judge a document the candidate sent: `Ok` with its number, or the problems found.
pub fn judge(payload: &[u8], declared: DocumentType, content_type: &str) -> Result<String, String> {
    match caravan_spoke::document::judge(payload, declared, Some(content_type)) {
        Ok(content) => Ok(content.document_number.unwrap_or_default()),
        Err(problems) => Err(problems
            .iter()
            .map(|p| format!("{} ({}): {}", p.field, p.rule, p.message))
            .collect::<Vec<_>>()
            .join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_passes_the_document_rules_under_its_new_number() {
        for t in DocumentType::ALL {
            let (payload, media) = document(t, "ZZ-CONF-7-1");
            assert_eq!(
                judge(&payload, t, media),
                Ok("ZZ-CONF-7-1".to_owned()),
                "{t}"
            );
        }
    }

    #[test]
    fn a_document_of_another_type_is_judged_wrong() {
        let (payload, media) = document(DocumentType::Invoice, "X-1");
        let problems = judge(&payload, DocumentType::Phytosanitary, media).unwrap_err();
        assert!(!problems.is_empty());
    }
}
