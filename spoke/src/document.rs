//! Recognising a trade document from its XML: which kind it is (by root element and
//! namespace), its business number and issue date.
//!
//! Lenient where real documents are imperfect (element order, prefixes, extra elements are not
//! judged), precise when refusing: a payload that is not well-formed XML, whose root is not a
//! known document, or whose root does not match the declared type is refused with a reason.

use std::borrow::Cow;

use quick_xml::{
    events::Event,
    name::{Namespace, ResolveResult},
    reader::NsReader,
};

use caravan_common::DocumentType;

/// Media type of the documents carried today.
pub const XML: &str = "application/xml";

/// A known document format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// UN/CEFACT SPS certificate (e-Phyto, IPPC ePhyto Hub).
    SpsCertificate,
    /// OASIS UBL 2.1 CertificateOfOrigin.
    UblCertificateOfOrigin,
    /// OASIS UBL 2.1 Invoice.
    UblInvoice,
    /// OASIS UBL 2.1 CreditNote.
    UblCreditNote,
    /// UN/CEFACT Cross Industry Invoice (D16B).
    CrossIndustryInvoice,
}

/// `(namespace, root local name, format)` of every format recognised.
const ROOTS: &[(&str, &str, Format)] = &[
    (
        "urn:un:unece:uncefact:data:standard:SPSCertificate:17",
        "SPSCertificate",
        Format::SpsCertificate,
    ),
    (
        "urn:oasis:names:specification:ubl:schema:xsd:CertificateOfOrigin-2",
        "CertificateOfOrigin",
        Format::UblCertificateOfOrigin,
    ),
    (
        "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
        "Invoice",
        Format::UblInvoice,
    ),
    (
        "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2",
        "CreditNote",
        Format::UblCreditNote,
    ),
    (
        "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
        "CrossIndustryInvoice",
        Format::CrossIndustryInvoice,
    ),
];

impl Format {
    pub fn document_type(self) -> DocumentType {
        match self {
            Self::SpsCertificate => DocumentType::Phytosanitary,
            Self::UblCertificateOfOrigin => DocumentType::CertificateOfOrigin,
            Self::UblInvoice | Self::UblCreditNote | Self::CrossIndustryInvoice => {
                DocumentType::Invoice
            }
        }
    }

    /// Paths (local names below the root) of the document number and the issue date.
    fn paths(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            Self::SpsCertificate => (
                &["SPSExchangedDocument", "ID"],
                &["SPSExchangedDocument", "IssueDateTime", "DateTimeString"],
            ),
            Self::CrossIndustryInvoice => (
                &["ExchangedDocument", "ID"],
                &["ExchangedDocument", "IssueDateTime", "DateTimeString"],
            ),
            Self::UblCertificateOfOrigin | Self::UblInvoice | Self::UblCreditNote => {
                (&["ID"], &["IssueDate"])
            }
        }
    }
}

/// What was recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recognised {
    pub format: Format,
    /// The document number, trimmed; `None` if the document has none.
    pub document_id: Option<String>,
    /// The issue date as written in the document.
    pub issue_date: Option<String>,
}

/// Why a payload is not a recognisable document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// The payload is not well-formed XML.
    #[error("not well-formed XML at byte {position}: {message}")]
    NotWellFormed { position: u64, message: String },
    /// The payload has no root element.
    #[error("no root element")]
    NoRoot,
    /// The root element is not one of the known document formats.
    #[error(
        "root element {{{namespace}}}{name} is not a known document (SPS certificate, UBL CertificateOfOrigin/Invoice/CreditNote, CII CrossIndustryInvoice)"
    )]
    UnknownRoot { namespace: String, name: String },
    /// The document is of another type than declared.
    #[error("document is {found} ({format:?}), not {declared} as declared")]
    TypeMismatch {
        declared: DocumentType,
        found: DocumentType,
        format: Format,
    },
}

/// Read `xml` completely (so that well-formedness is checked to the end) and recognise it.
pub fn recognise(xml: &[u8]) -> Result<Recognised, DocumentError> {
    let mut reader = NsReader::from_reader(xml);
    reader.config_mut().trim_text(false);
    let mut buf = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let mut format: Option<Format> = None;
    let mut targets: [(&[&str], Option<String>, bool); 2] =
        [(&[], None, false), (&[], None, false)];
    let mut seen_root = false;
    // Open elements, the root included.
    let mut depth = 0usize;
    loop {
        let position = reader.buffer_position();
        let malformed = |e: quick_xml::Error| DocumentError::NotWellFormed {
            position,
            message: e.to_string(),
        };
        let (ns, event) = reader
            .read_resolved_event_into(&mut buf)
            .map_err(malformed)?;
        let is_start = matches!(event, Event::Start(_));
        match event {
            Event::Start(_) | Event::Empty(_) if seen_root && depth == 0 => {
                return Err(DocumentError::NotWellFormed {
                    position,
                    message: "more than one root element".into(),
                });
            }
            Event::Start(e) | Event::Empty(e) if !seen_root => {
                seen_root = true;
                depth = usize::from(is_start);
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                let namespace = match ns {
                    ResolveResult::Bound(Namespace(n)) => String::from_utf8_lossy(n).into_owned(),
                    _ => String::new(),
                };
                let found = ROOTS
                    .iter()
                    .find(|(n, r, _)| *n == namespace && *r == name)
                    .map(|(_, _, f)| *f)
                    .ok_or(DocumentError::UnknownRoot { namespace, name })?;
                let (id, date) = found.paths();
                targets = [(id, None, false), (date, None, false)];
                format = Some(found);
            }
            Event::Start(e) => {
                depth += 1;
                path.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
                for (target, value, active) in targets.iter_mut() {
                    *active = value.is_none()
                        && path.iter().map(String::as_str).eq(target.iter().copied());
                    if *active {
                        *value = Some(String::new());
                    }
                }
            }
            Event::End(_) => {
                for (_, value, active) in targets.iter_mut() {
                    if *active {
                        *active = false;
                        if let Some(v) = value {
                            *v = v.trim().to_owned();
                        }
                    }
                }
                path.pop();
                depth = depth.saturating_sub(1);
            }
            Event::Text(t) => {
                let text = t.decode().map_err(|e| malformed(e.into()))?;
                append(&mut targets, &text);
            }
            Event::CData(t) => {
                let text = t.decode().map_err(|e| malformed(e.into()))?;
                append(&mut targets, &text);
            }
            Event::GeneralRef(r) => {
                let text: Cow<'_, str> = match r.resolve_char_ref().map_err(malformed)? {
                    Some(c) => c.to_string().into(),
                    None => {
                        let name = r.decode().map_err(|e| malformed(e.into()))?;
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .map(Cow::from)
                            .ok_or_else(|| DocumentError::NotWellFormed {
                                position,
                                message: format!("unknown entity &{name};"),
                            })?
                    }
                };
                append(&mut targets, &text);
            }
            Event::Eof if depth > 0 => {
                return Err(DocumentError::NotWellFormed {
                    position,
                    message: "unclosed element at the end".into(),
                });
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    let format = format.ok_or(DocumentError::NoRoot)?;
    let [(_, id, _), (_, date, _)] = targets;
    let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty());
    Ok(Recognised {
        format,
        document_id: non_empty(id),
        issue_date: non_empty(date),
    })
}

fn append(targets: &mut [(&[&str], Option<String>, bool); 2], text: &str) {
    for (_, value, active) in targets.iter_mut() {
        if *active && let Some(v) = value {
            v.push_str(text);
        }
    }
}

/// One thing wrong with a submitted document, for the NSW: which field, which rule, and what.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    pub field: String,
    pub rule: String,
    pub message: String,
}

impl DocumentError {
    /// The problem as the NSW API reports it.
    pub fn problem(&self) -> Problem {
        let (field, rule) = match self {
            Self::NotWellFormed { .. } => ("document", "well-formed-xml"),
            Self::NoRoot => ("document", "root-element"),
            Self::UnknownRoot { .. } => ("document", "known-document-format"),
            Self::TypeMismatch { .. } => ("type", "matches-document"),
        };
        Problem {
            field: field.into(),
            rule: rule.into(),
            message: self.to_string(),
        }
    }
}

/// The key fields of a document, for listings: its number and its issue date (ISO 8601).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub document_number: Option<String>,
    pub issue_date: Option<String>,
    /// Names of the parties (consignor, consignee, exporter, importer, seller, buyer, issuing
    /// authority), for search.
    #[serde(default)]
    pub parties: Vec<String>,
}

/// Fields that name parties, for [`Summary::parties`].
const PARTY_LABELS: &[&str] = &[
    "Consignor",
    "Consignee",
    "Exporter",
    "Importer",
    "Seller",
    "Buyer",
    "Issuing authority",
];

/// The summary of a document: recognised, its number, ISO issue date, and parties.
pub fn summary(xml: &[u8]) -> Option<Summary> {
    let recognised = recognise(xml).ok()?;
    let fields = fields(xml, recognised.format).unwrap_or_default();
    let mut summary = recognised.summary();
    summary.parties = fields
        .into_iter()
        .filter(|f| PARTY_LABELS.contains(&f.label.as_str()))
        .map(|f| f.value)
        .collect();
    Some(summary)
}

/// The fields every document of a format must state, beyond its number.
fn required(format: Format) -> &'static [&'static str] {
    match format {
        Format::SpsCertificate => &[
            "Issued",
            "Issuing authority",
            "Consignor",
            "Consignee",
            "Export country",
        ],
        Format::UblCertificateOfOrigin => &["Issue date", "Exporter", "Importer"],
        Format::UblInvoice | Format::UblCreditNote | Format::CrossIndustryInvoice => {
            &["Issue date", "Seller", "Buyer"]
        }
    }
}

/// What a document of `format` lacks among the fields its type requires.
pub fn missing_fields(xml: &[u8], format: Format) -> Vec<Problem> {
    let present = fields(xml, format).unwrap_or_default();
    required(format)
        .iter()
        .filter(|label| !present.iter().any(|f| f.label == **label))
        .map(|label| Problem {
            field: label.to_lowercase().replace(' ', "_"),
            rule: "required".into(),
            message: format!("{label} is missing: a {format:?} document must state it"),
        })
        .collect()
}

impl Recognised {
    pub fn summary(&self) -> Summary {
        Summary {
            document_number: self.document_id.clone(),
            issue_date: self.issue_date.as_deref().and_then(iso_date),
            parties: Vec::new(),
        }
    }
}

/// The calendar date of a document date as written: `2016-04-22T13:53:08-03:00` and
/// `2017-11-13` (ISO 8601, as SPS and UBL write them) or `20150109` (UN/CEFACT format 102).
/// A date that is not in the calendar (31 February) is none.
pub fn iso_date(text: &str) -> Option<String> {
    use time::{Date, format_description::BorrowedFormatItem, macros::format_description};
    const ISO_8601: &[BorrowedFormatItem] = format_description!("[year]-[month]-[day]");
    const FORMAT_102: &[BorrowedFormatItem] = format_description!("[year][month][day]");
    let text = text.trim();
    let date = match text.len() {
        8 => Date::parse(text, FORMAT_102),
        // A date-time: the date is its first ten characters (`str::get` keeps slices whole).
        _ => Date::parse(text.get(..10)?, ISO_8601),
    };
    date.ok()
        .filter(|d| (0..=9999).contains(&d.year()))
        .map(|d| format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day()))
}

/// Recognise `xml` and check it is of the `declared` type.
pub fn check(xml: &[u8], declared: DocumentType) -> Result<Recognised, DocumentError> {
    let recognised = recognise(xml)?;
    let found = recognised.format.document_type();
    if found != declared {
        return Err(DocumentError::TypeMismatch {
            declared,
            found,
            format: recognised.format,
        });
    }
    Ok(recognised)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(path: &str) -> Vec<u8> {
        std::fs::read(format!("{}/../samples/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn recognises_the_samples() {
        let cases = [
            (
                "ephyto/mattilsynet-SPSCertificateContent.xml",
                Format::SpsCertificate,
                "123ABC",
                "2016-04-22T13:53:08-03:00",
            ),
            (
                "eco/carec-KZ-CN-certificate-of-origin.xml",
                Format::UblCertificateOfOrigin,
                "KZ-CO-2026-000123",
                "2026-11-20",
            ),
            (
                "einvoice/ubl/peppol-base-example.xml",
                Format::UblInvoice,
                "Snippet1",
                "2017-11-13",
            ),
            (
                "einvoice/ubl/en16931-ubl-tc434-creditnote1.xml",
                Format::UblCreditNote,
                "018304 / 28865",
                "2019-09-23",
            ),
            (
                "einvoice/cii/en16931-CII_example1.xml",
                Format::CrossIndustryInvoice,
                "12115118",
                "20150109",
            ),
        ];
        for (path, format, id, date) in cases {
            let r = recognise(&sample(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(r.format, format, "{path}");
            assert_eq!(r.document_id.as_deref(), Some(id), "{path}");
            assert_eq!(r.issue_date.as_deref(), Some(date), "{path}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_known_document() {
        let mismatched = br#"<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"><ID>1</Id></Invoice>"#;
        assert!(matches!(
            recognise(mismatched),
            Err(DocumentError::NotWellFormed { .. })
        ));
        let unclosed = br#"<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"><ID>1</ID>"#;
        assert!(matches!(
            recognise(unclosed),
            Err(DocumentError::NotWellFormed { .. })
        ));
        let two_roots =
            br#"<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"/><x/>"#;
        assert!(matches!(
            recognise(two_roots),
            Err(DocumentError::NotWellFormed { .. })
        ));
        assert_eq!(recognise(b""), Err(DocumentError::NoRoot));
        assert!(matches!(
            recognise(b"<html/>"),
            Err(DocumentError::UnknownRoot { .. })
        ));
        let invoice = sample("einvoice/ubl/peppol-base-example.xml");
        assert!(matches!(
            check(&invoice, DocumentType::Phytosanitary),
            Err(DocumentError::TypeMismatch {
                found: DocumentType::Invoice,
                ..
            })
        ));
        assert!(check(&invoice, DocumentType::Invoice).is_ok());
    }

    #[test]
    fn dates_become_iso_8601() {
        assert_eq!(
            iso_date("2016-04-22T13:53:08-03:00").as_deref(),
            Some("2016-04-22")
        );
        assert_eq!(iso_date("2017-11-13").as_deref(), Some("2017-11-13"));
        assert_eq!(iso_date("20150109").as_deref(), Some("2015-01-09"));
        assert_eq!(iso_date("2016-02-29").as_deref(), Some("2016-02-29"));
        for bad in [
            "",
            "2015-13-01",
            "yesterday",
            "2015010",
            "20151301",
            "2015-01-0é",
            "ÄÄ-01-01xx",
            "2015-01-1€",
            "2015-02-29",
            "2016-02-31",
            "20150230",
            "2015-04-31T10:00:00Z",
        ] {
            assert_eq!(iso_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn entities_in_numbers_are_resolved() {
        let xml = br#"<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2" xmlns:cbc="x"><cbc:ID>A&amp;B&#x41;</cbc:ID></Invoice>"#;
        assert_eq!(recognise(xml).unwrap().document_id.as_deref(), Some("A&BA"));
    }
}

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
type Spec = (&'static str, &'static str, Option<&'static str>);

const SPS: &[Spec] = &[
    ("Certificate number", "SPSExchangedDocument/ID", None),
    ("Certificate type", "SPSExchangedDocument/TypeCode", None),
    ("Status", "SPSExchangedDocument/StatusCode", None),
    (
        "Issued",
        "SPSExchangedDocument/IssueDateTime/DateTimeString",
        None,
    ),
    (
        "Issuing authority",
        "SPSExchangedDocument/IssuerSPSParty/Name",
        None,
    ),
    (
        "Place of issue",
        "SPSExchangedDocument/SignatorySPSAuthentication/IssueSPSLocation/Name",
        None,
    ),
    (
        "Authorised officer",
        "SPSExchangedDocument/SignatorySPSAuthentication/ProviderSPSParty/SpecifiedSPSPerson/Name",
        None,
    ),
    (
        "Note subject",
        "SPSExchangedDocument/IncludedSPSNote/Subject",
        None,
    ),
    ("Note", "SPSExchangedDocument/IncludedSPSNote/Content", None),
    (
        "Attachment",
        "SPSExchangedDocument/ReferenceSPSReferencedDocument/AttachmentBinaryObject",
        Some("filename"),
    ),
    ("Consignor", "SPSConsignment/ConsignorSPSParty/Name", None),
    ("Consignee", "SPSConsignment/ConsigneeSPSParty/Name", None),
    ("Export country", "SPSConsignment/ExportSPSCountry/ID", None),
    ("Import country", "SPSConsignment/ImportSPSCountry/ID", None),
    (
        "Transit country",
        "SPSConsignment/TransitSPSCountry/ID",
        None,
    ),
    (
        "Point of entry",
        "SPSConsignment/UnloadingBaseportSPSLocation/Name",
        None,
    ),
    (
        "Transport mode",
        "SPSConsignment/MainCarriageSPSTransportMovement/ModeCode",
        None,
    ),
    (
        "Means of conveyance",
        "SPSConsignment/MainCarriageSPSTransportMovement/UsedSPSTransportMeans/Name",
        None,
    ),
    (
        "Container / seal",
        "SPSConsignment/UtilizedSPSTransportEquipment/ID",
        None,
    ),
    (
        "Product",
        "SPSConsignment/IncludedSPSConsignmentItem/IncludedSPSTradeLineItem/Description",
        None,
    ),
    (
        "Botanical name",
        "SPSConsignment/IncludedSPSConsignmentItem/IncludedSPSTradeLineItem/ScientificName",
        None,
    ),
    (
        "Common name",
        "SPSConsignment/IncludedSPSConsignmentItem/IncludedSPSTradeLineItem/CommonName",
        None,
    ),
    (
        "Intended use",
        "SPSConsignment/IncludedSPSConsignmentItem/IncludedSPSTradeLineItem/IntendedUse",
        None,
    ),
    (
        "Net weight",
        "SPSConsignment/IncludedSPSConsignmentItem/IncludedSPSTradeLineItem/NetWeightMeasure",
        None,
    ),
    (
        "Gross weight",
        "SPSConsignment/IncludedSPSConsignmentItem/IncludedSPSTradeLineItem/GrossWeightMeasure",
        None,
    ),
    (
        "Classification",
        "SPSConsignment/IncludedSPSConsignmentItem/IncludedSPSTradeLineItem/ApplicableSPSClassification/ClassCode",
        None,
    ),
    (
        "Origin",
        "SPSConsignment/IncludedSPSConsignmentItem/IncludedSPSTradeLineItem/OriginSPSCountry/ID",
        None,
    ),
];

const COO: &[Spec] = &[
    ("Certificate number", "ID", None),
    ("Issue date", "IssueDate", None),
    ("Exporter", "ExporterParty/PartyName/Name", None),
    ("Importer", "ImporterParty/PartyName/Name", None),
    (
        "Certificate type",
        "CertificateOfOriginApplication/CertificateType",
        None,
    ),
    (
        "Status",
        "CertificateOfOriginApplication/ApplicationStatusCode",
        None,
    ),
    (
        "Original certificate",
        "CertificateOfOriginApplication/OriginalJobID",
        None,
    ),
    (
        "Replaces",
        "CertificateOfOriginApplication/PreviousJobID",
        None,
    ),
    (
        "Issuing authority",
        "CertificateOfOriginApplication/IssuerParty/PartyName/Name",
        None,
    ),
    (
        "Issuing country",
        "CertificateOfOriginApplication/IssuingCountry/IdentificationCode",
        None,
    ),
    (
        "Consignee",
        "CertificateOfOriginApplication/Shipment/Consignment/ConsigneeParty/PartyName/Name",
        None,
    ),
    (
        "Export country",
        "CertificateOfOriginApplication/Shipment/ExportCountry/IdentificationCode",
        None,
    ),
    (
        "Goods",
        "CertificateOfOriginApplication/Shipment/GoodsItem/Item/Description",
        None,
    ),
    (
        "HS code",
        "CertificateOfOriginApplication/Shipment/GoodsItem/Item/CommodityClassification/ItemClassificationCode",
        None,
    ),
    (
        "Origin",
        "CertificateOfOriginApplication/Shipment/GoodsItem/Item/OriginCountry/IdentificationCode",
        None,
    ),
    (
        "Quantity",
        "CertificateOfOriginApplication/Shipment/GoodsItem/Quantity",
        None,
    ),
    (
        "Gross weight",
        "CertificateOfOriginApplication/Shipment/GrossWeightMeasure",
        None,
    ),
    (
        "Transport mode",
        "CertificateOfOriginApplication/Shipment/ShipmentStage/TransportModeCode",
        None,
    ),
    (
        "Supporting document",
        "CertificateOfOriginApplication/SupportingDocumentReference/ID",
        None,
    ),
    (
        "Endorsed by",
        "IssuerEndorsement/EndorserParty/Party/PartyName/Name",
        None,
    ),
    ("Note", "Note", None),
];

const UBL_INVOICE: &[Spec] = &[
    ("Invoice number", "ID", None),
    ("Issue date", "IssueDate", None),
    ("Type", "InvoiceTypeCode", None),
    ("Type", "CreditNoteTypeCode", None),
    ("Currency", "DocumentCurrencyCode", None),
    (
        "Seller",
        "AccountingSupplierParty/Party/PartyLegalEntity/RegistrationName",
        None,
    ),
    (
        "Seller country",
        "AccountingSupplierParty/Party/PostalAddress/Country/IdentificationCode",
        None,
    ),
    (
        "Buyer",
        "AccountingCustomerParty/Party/PartyLegalEntity/RegistrationName",
        None,
    ),
    (
        "Buyer country",
        "AccountingCustomerParty/Party/PostalAddress/Country/IdentificationCode",
        None,
    ),
    ("Tax", "TaxTotal/TaxAmount", None),
    ("Amount due", "LegalMonetaryTotal/PayableAmount", None),
    ("Item", "InvoiceLine/Item/Name", None),
    ("Item", "CreditNoteLine/Item/Name", None),
    ("Quantity", "InvoiceLine/InvoicedQuantity", None),
    ("Quantity", "CreditNoteLine/CreditedQuantity", None),
    (
        "Classification",
        "InvoiceLine/Item/CommodityClassification/ItemClassificationCode",
        None,
    ),
    (
        "Attachment",
        "AdditionalDocumentReference/Attachment/EmbeddedDocumentBinaryObject",
        Some("filename"),
    ),
];

const CII: &[Spec] = &[
    ("Invoice number", "ExchangedDocument/ID", None),
    ("Type", "ExchangedDocument/TypeCode", None),
    (
        "Issue date",
        "ExchangedDocument/IssueDateTime/DateTimeString",
        None,
    ),
    (
        "Seller",
        "SupplyChainTradeTransaction/ApplicableHeaderTradeAgreement/SellerTradeParty/Name",
        None,
    ),
    (
        "Seller country",
        "SupplyChainTradeTransaction/ApplicableHeaderTradeAgreement/SellerTradeParty/PostalTradeAddress/CountryID",
        None,
    ),
    (
        "Buyer",
        "SupplyChainTradeTransaction/ApplicableHeaderTradeAgreement/BuyerTradeParty/Name",
        None,
    ),
    (
        "Buyer country",
        "SupplyChainTradeTransaction/ApplicableHeaderTradeAgreement/BuyerTradeParty/PostalTradeAddress/CountryID",
        None,
    ),
    (
        "Currency",
        "SupplyChainTradeTransaction/ApplicableHeaderTradeSettlement/InvoiceCurrencyCode",
        None,
    ),
    (
        "Total",
        "SupplyChainTradeTransaction/ApplicableHeaderTradeSettlement/SpecifiedTradeSettlementHeaderMonetarySummation/GrandTotalAmount",
        None,
    ),
    (
        "Amount due",
        "SupplyChainTradeTransaction/ApplicableHeaderTradeSettlement/SpecifiedTradeSettlementHeaderMonetarySummation/DuePayableAmount",
        None,
    ),
    (
        "Item",
        "SupplyChainTradeTransaction/IncludedSupplyChainTradeLineItem/SpecifiedTradeProduct/Name",
        None,
    ),
    (
        "Quantity",
        "SupplyChainTradeTransaction/IncludedSupplyChainTradeLineItem/SpecifiedLineTradeDelivery/BilledQuantity",
        None,
    ),
    (
        "Attachment",
        "SupplyChainTradeTransaction/ApplicableHeaderTradeAgreement/AdditionalReferencedDocument/AttachmentBinaryObject",
        Some("filename"),
    ),
];

impl Format {
    fn fields(self) -> &'static [Spec] {
        match self {
            Self::SpsCertificate => SPS,
            Self::UblCertificateOfOrigin => COO,
            Self::UblInvoice | Self::UblCreditNote => UBL_INVOICE,
            Self::CrossIndustryInvoice => CII,
        }
    }
}

/// The fields an officer checks, read from a document already recognised as `format`.
/// Lenient: elements are found by their path of local names, whatever their order, prefixes or
/// neighbours; what is absent is simply not listed.
pub fn fields(xml: &[u8], format: Format) -> Result<Vec<Field>, DocumentError> {
    let specs = format.fields();
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
    Ok(out)
}

#[cfg(test)]
mod field_tests {
    use super::*;

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
