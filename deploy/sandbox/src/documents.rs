//! The documents the sandbox sends, and the issuing authorities it records so that they are
//! consistent with their senders.
//!
//! Each sample is a real public document adapted to a CAREC corridor (samples/SOURCES.md,
//! `tools/derive_samples.py`). The receiving spoke's content checks judge what a document says:
//! its issuing authority must be one the registry records for the signer, its issue date not
//! older than its type's limit, its number not one received before. So that every run passes
//! them, the sandbox sends each sample as issued a minute ago, under the number of its run
//! (the same sandbox folder is run again and again, seconds apart or days).

use std::path::Path;

use caravan_common::{DocumentType, ParticipantId, Timestamp};

/// The number of this run in sandbox folder `dir`, from 1, counted in `dir/runs`: the
/// sequence of the numbers its documents carry, so that no run repeats an earlier one's.
pub fn next_run(dir: &Path) -> std::io::Result<u64> {
    let path = dir.join("runs");
    let last = match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    let run = last + 1;
    std::fs::write(&path, format!("{run}\n"))?;
    Ok(run)
}

/// A sample document and the corridor it was written for.
pub struct Sample {
    pub from: &'static str,
    pub to: &'static str,
    pub document_type: DocumentType,
    /// Under samples/.
    pub path: &'static str,
    pub bytes: &'static [u8],
    /// The number as written in the sample; every occurrence is renumbered.
    pub number: &'static str,
    /// The issue date (or date-time) as written, with the delimiters that make it unique in
    /// the text.
    pub issued: &'static str,
    /// The markup naming the importing country (the recipient), where the document names
    /// one: readdressed to the conformance identity for the conformance kit.
    pub import_country: Option<&'static str>,
}

/// A certificate of origin KZ -> CN, an e-Phyto UZ -> KZ and an invoice CN -> UZ.
pub const SAMPLES: [Sample; 3] = [
    Sample {
        from: "KZ",
        to: "CN",
        document_type: DocumentType::CertificateOfOrigin,
        path: "eco/carec-KZ-CN-certificate-of-origin.xml",
        bytes: include_bytes!("../../../samples/eco/carec-KZ-CN-certificate-of-origin.xml"),
        number: "KZ-CO-2026-000123",
        issued: "<cbc:IssueDate>2026-11-20</cbc:IssueDate>",
        import_country: Some(">CN</cbc:IdentificationCode>"),
    },
    Sample {
        from: "UZ",
        to: "KZ",
        document_type: DocumentType::Phytosanitary,
        path: "ephyto/carec-UZ-KZ-phytosanitary.xml",
        bytes: include_bytes!("../../../samples/ephyto/carec-UZ-KZ-phytosanitary.xml"),
        number: "UZ-PHY-2026-017730",
        issued: "<ns2:DateTimeString>2026-11-28T09:30:00+05:00</ns2:DateTimeString>",
        import_country: Some("<ns1:ID>KZ</ns1:ID>"),
    },
    Sample {
        from: "CN",
        to: "UZ",
        document_type: DocumentType::Invoice,
        path: "einvoice/ubl/carec-CN-UZ-invoice.xml",
        bytes: include_bytes!("../../../samples/einvoice/ubl/carec-CN-UZ-invoice.xml"),
        number: "CN-INV-2026-118204",
        issued: "<cbc:IssueDate>2026-11-26</cbc:IssueDate>",
        // An invoice names its parties' countries, which need not be the recipient's.
        import_country: None,
    },
];

/// An Argentine e-Phyto (export AR, import EC), under samples/: sent by KZ to CN it
/// contradicts both, and the sending spoke refuses it before signing.
pub const INCONSISTENT_EPHYTO: (&str, &[u8]) = (
    "ephyto/mattilsynet-SPSCertificateContent.xml",
    include_bytes!("../../../samples/ephyto/mattilsynet-SPSCertificateContent.xml"),
);

/// The issuing authorities the samples name, per participant, as the hub operator records
/// them (`caravan-hub admin authority add`).
pub const AUTHORITIES: &[(&str, &str)] = &[
    (
        "KZ",
        "Chamber of Commerce and Industry of the Republic of Kazakhstan",
    ),
    (
        "KZ",
        "Committee of State Inspection in the Agro-Industrial Complex, Ministry of Agriculture of the Republic of Kazakhstan",
    ),
    (
        "UZ",
        "Agency of Plant Quarantine and Protection of the Republic of Uzbekistan",
    ),
];

impl Sample {
    pub fn from(&self) -> ParticipantId {
        self.from.parse().expect("a participant id")
    }

    pub fn to(&self) -> ParticipantId {
        self.to.parse().expect("a participant id")
    }

    /// The sample as issued at `at` (a minute before now, say), numbered with the year of `at`
    /// and `run` ([`next_run`]): `KZ-CO-2026-000123` issued in 2026 on run 7 becomes
    /// `KZ-CO-2026-000007`.
    pub fn issued_at(&self, at: Timestamp, run: u64) -> Vec<u8> {
        let text = std::str::from_utf8(self.bytes).expect("the samples are UTF-8");
        let at_text = at.to_string(); // 2026-12-06T10:41:05.000Z
        let (date, time) = (&at_text[..10], &at_text[11..19]);
        let issued_value = if self.issued.contains('T') {
            format!("{date}T{time}Z")
        } else {
            date.to_owned()
        };
        let open = self.issued.find('>').expect("an element") + 1;
        let close = self.issued.rfind('<').expect("an element");
        let issued = format!(
            "{}{issued_value}{}",
            &self.issued[..open],
            &self.issued[close..]
        );
        let prefix = &self.number[..self.number.len() - "2026-000123".len()];
        let number = format!("{prefix}{}-{run:06}", &date[..4]);
        assert!(text.contains(self.issued), "{} changed", self.path);
        text.replacen(self.issued, &issued, 1)
            .replace(self.number, &number)
            .into_bytes()
    }

    /// [`Sample::issued_at`], addressed to the conformance kit's identity (ZZ) instead of its
    /// recipient, so that the sending spoke's own checks pass when it sends it to the kit.
    pub fn addressed_to_conformance(&self, at: Timestamp, run: u64) -> Vec<u8> {
        let text = String::from_utf8(self.issued_at(at, run)).expect("the samples are UTF-8");
        match self.import_country {
            Some(markup) => {
                assert!(text.contains(markup), "{} changed", self.path);
                let zz =
                    markup.replace(self.to, caravan_common::ParticipantId::CONFORMANCE.as_str());
                text.replace(markup, &zz).into_bytes()
            }
            None => text.into_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_sample_is_reissued_with_the_date_and_a_number_of_its_own() {
        let at = Timestamp::from_millis(1_796_553_665_000); // 2026-12-06T10:41:05Z
        assert_eq!(at.to_string(), "2026-12-06T10:41:05.000Z");
        for sample in SAMPLES {
            let text = String::from_utf8(sample.issued_at(at, 7)).unwrap();
            assert!(!text.contains(sample.number), "{}", sample.path);
            assert!(!text.contains(sample.issued), "{}", sample.path);
            let number = format!("{}2026-000007", &sample.number[..sample.number.len() - 11]);
            assert!(text.contains(&number), "{}: {number}", sample.path);
            assert!(
                text.contains(">2026-12-06<") || text.contains(">2026-12-06T10:41:05Z<"),
                "{}",
                sample.path
            );
        }
    }

    #[test]
    fn readdressed_to_the_conformance_kit_each_sample_names_zz_as_its_importing_country() {
        let at = Timestamp::from_millis(1_796_553_665_000);
        for sample in SAMPLES {
            let text = String::from_utf8(sample.addressed_to_conformance(at, 3)).unwrap();
            match sample.import_country {
                Some(markup) => {
                    assert!(!text.contains(markup), "{}", sample.path);
                    assert!(
                        text.contains(&markup.replace(sample.to, "ZZ")),
                        "{}",
                        sample.path
                    );
                }
                None => assert_eq!(text.as_bytes(), sample.issued_at(at, 3), "{}", sample.path),
            }
        }
    }

    #[test]
    fn each_run_of_a_folder_has_its_own_number() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(next_run(dir.path()).unwrap(), 1);
        assert_eq!(next_run(dir.path()).unwrap(), 2);
        std::fs::write(dir.path().join("runs"), "garbled").unwrap();
        assert!(next_run(dir.path()).is_err());
    }
}
