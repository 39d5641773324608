//! Recognising a trade document and reading what it says: which kind it is (XML by root element
//! and namespace, JSON by its `certificateOfOrigin` object), its number and issue date, and
//! its [`Content`]: parties, countries, goods, transport, replaced document, attachments.
//!
//! Lenient where real documents are imperfect (element order, prefixes, extra elements, the
//! ways UBL names a party are not judged), precise when refusing: a payload that is not
//! well-formed, whose root (or JSON top level) is not a known document, or that is not of the
//! declared type is refused with a reason naming what was found and what is supported. The
//! sending spoke and the receiving spoke apply the same [`judge`].
//!
//! One file per format family: `sps` (e-Phyto), `ubl` (CertificateOfOrigin, Invoice,
//! CreditNote, 2.0 and 2.1), `cii` (Cross Industry Invoice), `json_co` (JSON e-CO); `xml` the
//! element tree they read, `fields` the labelled fields, `content` the shape of what a
//! document says.

mod cii;
mod content;
mod fields;
mod json_co;
mod sps;
mod ubl;
mod xml;

pub use content::{Attachment, Content, GoodsLine, Measure, Party, Transport, attachment_bytes};
pub use fields::{Field, fields};
pub use json_co::{JSON, looks_like_json};

use std::borrow::Cow;

use quick_xml::{
    events::Event,
    name::{Namespace, ResolveResult},
    reader::NsReader,
};

use caravan_common::DocumentType;

/// Media type of the documents carried today.
pub const XML: &str = "application/xml";

/// What is supported, for refusals.
pub const SUPPORTED: &str = "SPS certificate (e-Phyto), UBL 2.0/2.1 CertificateOfOrigin/Invoice/CreditNote, CII CrossIndustryInvoice, JSON e-CO with a certificateOfOrigin object";

/// A known document format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
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
    /// Certificate of origin as JSON in the UN/CEFACT JSON-LD style (`certificateOfOrigin`).
    JsonCertificateOfOrigin,
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
            Self::UblCertificateOfOrigin | Self::JsonCertificateOfOrigin => {
                DocumentType::CertificateOfOrigin
            }
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
            Self::UblCertificateOfOrigin
            | Self::UblInvoice
            | Self::UblCreditNote
            | Self::JsonCertificateOfOrigin => (&["ID"], &["IssueDate"]),
        }
    }

    /// The media type documents of this format travel with (the header's content type).
    pub fn media_type(self) -> &'static str {
        match self {
            Self::JsonCertificateOfOrigin => JSON,
            _ => XML,
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
    #[error(
        "no root element: the payload is empty or holds no XML element (supported: {SUPPORTED})"
    )]
    NoRoot,
    /// The root element is not one of the known document formats.
    #[error("root element {{{namespace}}}{name} is not a known document (supported: {SUPPORTED})")]
    UnknownRoot { namespace: String, name: String },
    /// Elements are nested deeper than any real document.
    #[error("elements are nested deeper than {limit} levels")]
    TooDeep { limit: usize },
    /// More elements than any real document holds.
    #[error("the document has more than {limit} elements")]
    TooManyElements { limit: usize },
    /// The payload starts as JSON but is not well-formed JSON.
    #[error("not well-formed JSON at line {line}, column {column}: {message}")]
    NotWellFormedJson {
        line: usize,
        column: usize,
        message: String,
    },
    /// JSON whose top level is not a known document.
    #[error(
        "JSON top level is {found}{} with no certificateOfOrigin object, not a known document (supported: {SUPPORTED})",
        if keys.is_empty() { String::new() } else { format!(" with keys {}", keys.join(", ")) }
    )]
    UnknownJson { found: String, keys: Vec<String> },
    /// The header's content type is not the one the document's format travels with.
    #[error("the content type is {declared} but the document is {format:?}, sent as {expected}")]
    MediaTypeMismatch {
        declared: String,
        expected: &'static str,
        format: Format,
    },
    /// The document is of another type than declared.
    #[error("document is {found} ({format:?}), not {declared} as declared")]
    TypeMismatch {
        declared: DocumentType,
        found: DocumentType,
        format: Format,
    },
}

/// Read the payload completely (so that well-formedness is checked to the end) and recognise
/// it: JSON when it opens with `{` or `[`, XML otherwise.
pub fn recognise(xml: &[u8]) -> Result<Recognised, DocumentError> {
    if looks_like_json(xml) {
        let content = json_co::content(xml)?;
        return Ok(Recognised {
            format: content.format,
            document_id: content.document_number,
            issue_date: content.issue_date,
        });
    }
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
            Self::UnknownRoot { .. } | Self::UnknownJson { .. } => {
                ("document", "known-document-format")
            }
            Self::TooDeep { .. } => ("document", "nesting-depth"),
            Self::TooManyElements { .. } => ("document", "element-count"),
            Self::NotWellFormedJson { .. } => ("document", "well-formed-json"),
            Self::TypeMismatch { .. } => ("type", "matches-document"),
            Self::MediaTypeMismatch { .. } => ("content_type", "matches-document"),
        };
        Problem {
            field: field.into(),
            rule: rule.into(),
            message: self.to_string(),
        }
    }
}

/// The key fields of a document, for listings and search: its number, its issue date (ISO
/// 8601), the names of its parties, its goods and their HS codes. Stored with inbox records:
/// fields added later default, so older records read.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub document_number: Option<String>,
    pub issue_date: Option<String>,
    /// Names of the parties (consignor, consignee, exporter, importer, seller, buyer, issuing
    /// authority), for search.
    #[serde(default)]
    pub parties: Vec<String>,
    /// Descriptions of the goods lines, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub goods: Vec<String>,
    /// HS codes of the goods lines, in order, each once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hs_codes: Vec<String>,
}

impl Summary {
    /// Whether the lowercased, trimmed search text `q` is in one of its number, parties, goods
    /// descriptions or HS codes (case-insensitive; an HS code also matches by its start, so
    /// `1101` finds `110100`).
    pub fn matches(&self, q: &str) -> bool {
        let q = q.trim().to_lowercase();
        if q.is_empty() {
            return true;
        }
        let digits: String = q.chars().filter(|c| !matches!(c, '.' | ' ')).collect();
        self.document_number
            .iter()
            .chain(&self.parties)
            .chain(&self.goods)
            .any(|v| v.to_lowercase().contains(&q))
            || self
                .hs_codes
                .iter()
                .any(|c| c.replace('.', "").starts_with(&digits))
    }
}

/// Labels of the fields that name parties.
pub(crate) const PARTY_LABELS: &[&str] = &[
    "Consignor",
    "Consignee",
    "Exporter",
    "Importer",
    "Seller",
    "Buyer",
    "Issuing authority",
];

/// What a payload says: recognised, then read by its format.
pub fn content(payload: &[u8]) -> Result<Content, DocumentError> {
    let format = recognise(payload)?.format;
    // An XML document's tree, parsed once, and the labelled fields read from it.
    let parts = || -> Result<(xml::Element, Vec<Field>), DocumentError> {
        let root = xml::parse(payload)?;
        let fields = fields::specs(format).map_or_else(Vec::new, |s| fields::fields_of(&root, s));
        Ok((root, fields))
    };
    Ok(match format {
        Format::JsonCertificateOfOrigin => json_co::content(payload)?,
        Format::SpsCertificate => {
            let (root, fields) = parts()?;
            sps::content(&root, fields)
        }
        Format::UblCertificateOfOrigin => {
            let (root, fields) = parts()?;
            ubl::certificate_of_origin(&root, fields)
        }
        Format::UblInvoice | Format::UblCreditNote => {
            let (root, fields) = parts()?;
            ubl::invoice(&root, format, fields)
        }
        Format::CrossIndustryInvoice => {
            let (root, fields) = parts()?;
            cii::content(&root, fields)
        }
    })
}

/// The summary of a document: recognised, its number, ISO issue date, parties and goods.
pub fn summary(xml: &[u8]) -> Option<Summary> {
    content(xml).ok().map(|c| c.summary())
}

impl Content {
    /// The summary stored with an inbox record.
    pub fn summary(&self) -> Summary {
        let mut parties: Vec<String> = Vec::new();
        for name in self.parties().flat_map(Party::names) {
            if !parties.iter().any(|p| p == name) {
                parties.push(name.to_owned());
            }
        }
        let mut hs_codes: Vec<String> = Vec::new();
        for code in self.goods.iter().filter_map(|g| g.hs_code.as_ref()) {
            if !hs_codes.contains(code) {
                hs_codes.push(code.clone());
            }
        }
        Summary {
            document_number: self.document_number.clone(),
            issue_date: self.issue_date.as_deref().and_then(iso_date),
            parties,
            goods: self
                .goods
                .iter()
                .filter_map(|g| g.description.clone())
                .collect(),
            hs_codes,
        }
    }

    /// Whether it states the field a format requires, by the field's label.
    fn states(&self, label: &str) -> bool {
        let named = |p: &Option<Party>| p.as_ref().is_some_and(|p| p.name.is_some());
        match label {
            "Issued" | "Issue date" => self.issue_date.is_some(),
            "Issuing authority" => named(&self.issuer),
            "Consignor" => named(&self.consignor),
            "Consignee" => named(&self.consignee),
            "Exporter" => named(&self.exporter),
            "Importer" => named(&self.importer),
            "Seller" => named(&self.seller),
            "Buyer" => named(&self.buyer),
            "Export country" => self.export_country.is_some(),
            _ => false,
        }
    }
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
        Format::UblCertificateOfOrigin | Format::JsonCertificateOfOrigin => {
            &["Issue date", "Exporter", "Importer"]
        }
        Format::UblInvoice | Format::UblCreditNote | Format::CrossIndustryInvoice => {
            &["Issue date", "Seller", "Buyer"]
        }
    }
}

/// What a document of `format` lacks among the fields its type requires.
pub fn missing_fields(xml: &[u8], format: Format) -> Vec<Problem> {
    missing(format, content(xml).ok().as_ref())
}

/// What `content` (none when it could not be read) lacks among the fields `format` requires.
fn missing(format: Format, content: Option<&Content>) -> Vec<Problem> {
    required(format)
        .iter()
        .filter(|label| !content.is_some_and(|c| c.states(label)))
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
            ..Summary::default()
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

/// The one judgement both ends apply to a trade document: recognised, of the `declared` type,
/// sent with its format's media type (when the header states one: `content_type`), stating
/// what its type requires. The content on success; every problem found otherwise.
pub fn judge(
    payload: &[u8],
    declared: DocumentType,
    content_type: Option<&str>,
) -> Result<Content, Vec<Problem>> {
    let recognised = check(payload, declared).map_err(|e| vec![e.problem()])?;
    if let Some(declared) = content_type
        && declared != recognised.format.media_type()
    {
        return Err(vec![
            DocumentError::MediaTypeMismatch {
                declared: declared.chars().take(100).collect(),
                expected: recognised.format.media_type(),
                format: recognised.format,
            }
            .problem(),
        ]);
    }
    let content = content(payload).map_err(|e| vec![e.problem()])?;
    let missing = missing(recognised.format, Some(&content));
    if !missing.is_empty() {
        return Err(missing);
    }
    Ok(content)
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

#[cfg(test)]
mod real_documents;
