//! What a recognised document says, in one shape for every format: who issued it, who sends and
//! receives the goods, which countries, which goods, how they travel, what it replaces and what
//! it carries attached.
//!
//! Codes are kept as the document states them (document type 851, status 70, unit KGM,
//! transport mode 2): decoding them for officers is the console's job, judging them against the
//! sender is the content checks'. Values are as written, whitespace collapsed; what a document
//! does not state is `None` or empty, never guessed.

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use serde::{Deserialize, Serialize};

use super::{Field, Format};

/// What a document says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    pub format: Format,
    /// The document's own number.
    pub document_number: Option<String>,
    /// The issue date (or date-time) as written.
    pub issue_date: Option<String>,
    /// The document type code as stated (UN/CEFACT 1001: 851 phytosanitary certificate,
    /// 380 commercial invoice, 381 credit note, ...).
    pub type_code: Option<String>,
    /// The status code as stated (UN/CEFACT 1225 for SPS: 70 original, 39 replacement, ...).
    pub status_code: Option<String>,
    /// The issuing authority (e-Phyto, e-CO) or the issuer a JSON e-CO names.
    pub issuer: Option<Party>,
    pub consignor: Option<Party>,
    pub consignee: Option<Party>,
    pub exporter: Option<Party>,
    pub importer: Option<Party>,
    pub seller: Option<Party>,
    pub buyer: Option<Party>,
    /// Export (or issuing) country, ISO 3166-1 alpha-2 as stated.
    pub export_country: Option<String>,
    /// Import or destination country.
    pub import_country: Option<String>,
    /// The goods, one line per consignment or trade line item.
    pub goods: Vec<GoodsLine>,
    pub transport: Option<Transport>,
    /// The number of the document this one replaces, where the format states one.
    pub replaces: Option<String>,
    /// Files embedded in the document (base64), in document order.
    pub attachments: Vec<Attachment>,
    /// The labelled fields an officer checks, as [`super::fields`] reads them.
    pub fields: Vec<Field>,
}

/// A party as the document names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    /// The first name given; `other_names` holds the same name in other scripts or forms.
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_names: Vec<String>,
    /// Country of its address (or of the authority), as stated.
    pub country: Option<String>,
    /// Identifiers as stated (registration, tax, party ids), scheme prefixed when given:
    /// `VAT:SE123456789701`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
}

impl Party {
    /// A party from its names (first is the name), country and ids; `None` when it states none
    /// of them.
    pub fn from_parts(
        names: Vec<String>,
        country: Option<String>,
        ids: Vec<String>,
    ) -> Option<Self> {
        let mut names = dedup(names);
        if names.is_empty() && country.is_none() && ids.is_empty() {
            return None;
        }
        let name = (!names.is_empty()).then(|| names.remove(0));
        Some(Self {
            name,
            other_names: names,
            country,
            ids: dedup(ids),
        })
    }

    /// Every name it is given.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.name
            .iter()
            .chain(self.other_names.iter())
            .map(String::as_str)
    }
}

/// A quantity or weight with its unit (UN/ECE Rec 20 code as stated: KGM, TNE, C62, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measure {
    pub value: String,
    pub unit: Option<String>,
}

/// One line of goods.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoodsLine {
    pub description: Option<String>,
    /// HS (or other commodity classification) code as stated.
    pub hs_code: Option<String>,
    pub quantity: Option<Measure>,
    pub net_weight: Option<Measure>,
    pub gross_weight: Option<Measure>,
    pub origin_country: Option<String>,
    /// e-CO: the origin criterion (WO, PE, PSR, ...) as stated.
    pub origin_criterion: Option<String>,
    /// e-Phyto: the scientific (botanical) name.
    pub botanical_name: Option<String>,
}

impl GoodsLine {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// How the goods travel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transport {
    /// UN/ECE Rec 19 transport mode code as stated (1 sea, 2 rail, 3 road, 4 air, ...).
    pub mode_code: Option<String>,
    /// The means of conveyance: vessel, train, truck, flight, as named.
    pub conveyance: Option<String>,
}

impl Transport {
    pub fn from_parts(mode_code: Option<String>, conveyance: Option<String>) -> Option<Self> {
        (mode_code.is_some() || conveyance.is_some()).then_some(Self {
            mode_code,
            conveyance,
        })
    }
}

/// A file embedded in the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// Its position among the document's attachments, for [`attachment_bytes`].
    pub index: usize,
    pub name: Option<String>,
    pub media_type: Option<String>,
    /// Length of the base64 text as embedded.
    pub base64_length: usize,
    /// The base64 text, for [`attachment_bytes`]; not serialised.
    #[serde(skip)]
    pub(crate) base64: String,
}

impl Attachment {
    pub(crate) fn new(
        index: usize,
        name: Option<String>,
        media_type: Option<String>,
        base64: &str,
    ) -> Self {
        let base64: String = base64.split_whitespace().collect();
        Self {
            index,
            name,
            media_type,
            base64_length: base64.len(),
            base64,
        }
    }

    /// The decoded bytes; `None` when the embedded text is not valid base64.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        BASE64.decode(self.base64.as_bytes()).ok()
    }
}

/// The bytes of attachment `index` of a recognised document.
pub fn attachment_bytes(content: &Content, index: usize) -> Option<Vec<u8>> {
    content.attachments.get(index)?.bytes()
}

/// Names of every party, for search.
impl Content {
    pub fn parties(&self) -> impl Iterator<Item = &Party> {
        [
            &self.issuer,
            &self.consignor,
            &self.consignee,
            &self.exporter,
            &self.importer,
            &self.seller,
            &self.buyer,
        ]
        .into_iter()
        .flatten()
    }
}

/// Keep the first of equal values, in order.
pub(crate) fn dedup(values: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for v in values {
        if !v.is_empty() && !out.contains(&v) {
            out.push(v);
        }
    }
    out
}
