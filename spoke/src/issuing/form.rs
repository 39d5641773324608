//! The forms an issuing officer fills, as typed data: what the console's form pages post, what
//! drafts store, what [`super::build`] turns into a standard document.
//!
//! Every text is a plain `String`, trimmed when used; an empty one is "not given" (the form's
//! field left blank), so a half-filled draft always deserialises and [`super::check`] names what
//! is missing. Codes are as the code lists the spoke ships write them: ISO 3166-1 alpha-2
//! countries, UN/ECE Rec 19 transport modes, Rec 20 units, Rec 21 package types. Quantities
//! are decimal text (`1250`, `12.5`), never floats, so that what the officer typed is what the
//! document says.

use serde::{Deserialize, Serialize};

use caravan_common::{DocumentType, Timestamp};

/// A standard document to issue: which kind, and what its form says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum Form {
    /// A phytosanitary certificate: UN/CEFACT SPS certificate XML (type 851), as exchanged
    /// through the IPPC ePhyto Hub.
    #[serde(rename = "e-phyto")]
    EPhyto(EPhytoForm),
    /// A certificate of origin: OASIS UBL 2.1 CertificateOfOrigin XML.
    #[serde(rename = "e-co")]
    Eco(EcoForm),
}

/// A new form: an empty e-Phyto.
impl Default for Form {
    fn default() -> Self {
        Self::EPhyto(EPhytoForm::default())
    }
}

impl Form {
    /// The document type the made document is sent as.
    pub fn document_type(&self) -> DocumentType {
        match self {
            Self::EPhyto(_) => DocumentType::Phytosanitary,
            Self::Eco(_) => DocumentType::CertificateOfOrigin,
        }
    }

    /// The media type the made document travels with (the header's content type).
    pub fn media_type(&self) -> &'static str {
        crate::document::XML
    }
}

/// The numbers and time an approved form is issued with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Issue {
    /// The certificate's number, as the issuing authority numbers its certificates.
    pub document_number: String,
    /// When it is issued (written in UTC).
    pub issued_at: Timestamp,
    /// The number of the certificate this one replaces (a correction is a new certificate that
    /// supersedes the old one); `None` for an original.
    #[serde(default)]
    pub supersedes: Option<String>,
}

/// A trader: consignor, consignee, exporter or importer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TradeParty {
    pub name: String,
    /// The postal address, one or more lines (newlines separate them).
    pub address: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
}

/// The issuing authority: the plant-protection organisation (e-Phyto) or the chamber or
/// ministry (e-CO) of the officer's country.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Authority {
    pub name: String,
    /// ISO 3166-1 alpha-2: the officer's country, which is also the exporting country.
    pub country: String,
}

/// A port or place, by name, with its UN/LOCODE where known (`KZALA`: two letters of the
/// country, three of the place).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Place {
    pub name: String,
    /// Optional.
    pub locode: String,
}

/// How the goods travel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Conveyance {
    /// UN/ECE Rec 19 transport mode code: 1 sea, 2 rail, 3 road, 4 air, ...
    pub mode: String,
    /// The vessel, train, truck or flight: its name or number.
    pub name: String,
}

/// e-Phyto: a UN/CEFACT SPS certificate (phytosanitary certificate for export, ISPM 12).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EPhytoForm {
    pub consignor: TradeParty,
    pub consignee: TradeParty,
    /// The national plant-protection organisation; its country is the exporting country.
    pub issuing_authority: Authority,
    /// The authorised officer who signs.
    pub authorized_officer: String,
    pub place_of_issue: String,
    /// Where the plants or plant products were grown (ISO 3166-1 alpha-2).
    pub country_of_origin: String,
    /// The importing country (ISO 3166-1 alpha-2).
    pub country_of_destination: String,
    /// Optional. The IPPC ePhyto Hub's SPSCertificate schema (and the ISPM 12 certificate) has
    /// no place of loading: it is kept with the form (drafts, the printed page) but not
    /// written into the e-Phyto XML.
    pub place_of_loading: Place,
    /// The declared point of entry into the importing country.
    pub point_of_entry: Place,
    pub conveyance: Conveyance,
    /// At least one.
    pub lines: Vec<PhytoLine>,
    pub treatments: Vec<Treatment>,
    /// Additional declarations, one text each.
    pub additional_declarations: Vec<String>,
}

/// One consignment line of an e-Phyto.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PhytoLine {
    /// The product as described (e.g. "Fresh apples").
    pub description: String,
    /// HS code, 4 to 10 digits (dots allowed; written without them).
    pub hs_code: String,
    /// The botanical (scientific) name, e.g. "Malus domestica".
    pub botanical_name: String,
    /// Net weight, volume or count: a positive decimal.
    pub quantity: String,
    /// Its UN/ECE Rec 20 unit: KGM, TNE, LTR, MTQ, H87, ...
    pub unit: String,
    /// Optional: the number of packages (a positive decimal) ...
    pub packages: String,
    /// ... and their UN/ECE Rec 21 type (BX box, BG bag, CT carton, ...).
    pub package_type: String,
}

/// A treatment of the consignment. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Treatment {
    /// The type of treatment (fumigation, heat treatment, cold treatment, ...).
    pub kind: String,
    /// The chemical (active ingredient).
    pub chemical: String,
    /// Duration: a positive decimal ...
    pub duration: String,
    /// ... in a Rec 20 unit (HUR, MIN, DAY); HUR when left blank.
    pub duration_unit: String,
    /// Temperature: a decimal, may be negative ...
    pub temperature: String,
    /// ... in CEL or FAH; CEL when left blank.
    pub temperature_unit: String,
    /// Concentration (dosage): a positive decimal ...
    pub concentration: String,
    /// ... in a Rec 20 unit (e.g. KX, g/m³ as the IPPC writes it); required with it.
    pub concentration_unit: String,
    /// The date of treatment, YYYY-MM-DD.
    pub date: String,
}

/// e-CO: an OASIS UBL 2.1 CertificateOfOrigin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EcoForm {
    pub exporter: TradeParty,
    /// The consignee, also written as the importer.
    pub consignee: TradeParty,
    /// The chamber or ministry that certifies origin; its country is the issuing country.
    pub issuing_authority: Authority,
    /// Optional: the officer who signs for the authority.
    pub authorized_officer: String,
    /// At least one.
    pub lines: Vec<EcoLine>,
    pub transport: EcoTransport,
    /// Optional: the trade agreement under which origin is certified (free text or its code);
    /// a certificate with one is preferential, without one non-preferential.
    pub trade_agreement: String,
    /// Optional.
    pub remarks: String,
}

/// One goods line of an e-CO.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EcoLine {
    pub description: String,
    /// HS code, 4 to 10 digits (dots allowed; written without them).
    pub hs_code: String,
    /// ISO 3166-1 alpha-2.
    pub origin_country: String,
    /// The origin criterion: WO (wholly obtained), PE (produced exclusively from originating
    /// materials), PSR (product-specific rule), or the agreement's own letter or code.
    pub origin_criterion: String,
    /// A positive decimal ...
    pub quantity: String,
    /// ... in a Rec 20 unit.
    pub unit: String,
    /// Optional: gross weight in kilograms, a positive decimal.
    pub gross_weight_kg: String,
}

/// How the goods of an e-CO travel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EcoTransport {
    /// UN/ECE Rec 19 transport mode code.
    pub mode: String,
    pub loading_place: String,
    pub discharge_place: String,
}
