//! The e-CO writer: an OASIS UBL 2.1 CertificateOfOrigin (ISO/IEC 19845), elements in the
//! order the UBL 2.1 schemas (`samples/xsd/ubl21/`) demand, every element they require present.
//!
//! Where the form's fields go (A = CertificateOfOriginApplication, S = A/Shipment):
//! exporter ExporterParty; consignee ImporterParty and S/Consignment/ConsigneeParty (name,
//! address lines, country); goods S/GoodsItem (Item/Description, Quantity with its unit,
//! GrossWeightMeasure in KGM, PreferenceCriterionCode the origin criterion,
//! Item/OriginCountry, Item/CommodityClassification/ItemClassificationCode listID HS);
//! transport S/ShipmentStage (TransportModeCode, LoadingPortLocation, UnloadingPortLocation);
//! exporting country S/ExportCountry (the issuing authority's); destination
//! S/Consignment/FinalDestinationCountry (the consignee's); issuing authority A/IssuerParty,
//! A/PreparationParty, A/IssuingCountry and the IssuerEndorsement, the officer as its
//! SignatoryContact; trade agreement A/Remarks, the certificate then "Preferential"; remarks
//! the root's Note; a replacement A/ApplicationStatusCode REPLACEMENT with the replaced
//! certificate as A/PreviousJobID and A/OriginalJobID.

use std::io;

use super::{
    Issue, clean,
    form::{Authority, EcoForm, EcoLine, TradeParty},
    hs_digits, lines, rfc3339_seconds,
    xml::Xml,
};
use crate::i18n::{
    Lang,
    codes::{self, List},
};

pub(super) const COO: &str = "urn:oasis:names:specification:ubl:schema:xsd:CertificateOfOrigin-2";
pub(super) const CAC: &str =
    "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2";
pub(super) const CBC: &str = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2";

const ISO3166: (&str, &str) = ("listID", "ISO3166-1:Alpha2");

/// The e-CO of a checked form.
pub(super) fn write(f: &EcoForm, issue: &Issue) -> io::Result<Vec<u8>> {
    let mut x = Xml::new();
    let issued = rfc3339_seconds(issue.issued_at).unwrap_or_default();
    // 2026-11-27T05:15:00Z: the date, and the time with its zone.
    let (date, time) = issued.split_once('T').unwrap_or((&issued, ""));
    let number = issue.document_number.trim();
    let supersedes = issue.supersedes.as_deref().map(str::trim);
    let agreement = clean(&f.trade_agreement);

    x.open(
        "CertificateOfOrigin",
        &[("xmlns", COO), ("xmlns:cac", CAC), ("xmlns:cbc", CBC)],
    );
    x.leaf("cbc:UBLVersionID", "2.1");
    x.leaf("cbc:CustomizationID", "urn:caravan:carec:eco:ubl-coo:1.0");
    x.leaf("cbc:ID", number);
    x.leaf("cbc:IssueDate", date);
    if !time.is_empty() {
        x.leaf("cbc:IssueTime", time);
    }
    x.leaf_with(
        "cbc:Description",
        &[("languageID", "en")],
        if agreement.is_empty() {
            "Certificate of origin (non-preferential)"
        } else {
            "Certificate of origin (preferential)"
        },
    );
    let remarks = clean(&f.remarks);
    if !remarks.is_empty() {
        x.leaf("cbc:Note", &remarks);
    }
    if let Some(old) = supersedes {
        x.leaf_with(
            "cbc:Note",
            &[("languageID", "en")],
            &format!("Issued in replacement of certificate No. {old}."),
        );
    }
    party(&mut x, "cac:ExporterParty", &f.exporter);
    party(&mut x, "cac:ImporterParty", &f.consignee);

    x.open("cac:CertificateOfOriginApplication", &[]);
    x.leaf("cbc:ReferenceID", number);
    x.leaf(
        "cbc:CertificateType",
        if agreement.is_empty() {
            "Non-preferential"
        } else {
            "Preferential"
        },
    );
    x.leaf(
        "cbc:ApplicationStatusCode",
        if supersedes.is_some() {
            "REPLACEMENT"
        } else {
            "ORIGINAL"
        },
    );
    x.leaf("cbc:OriginalJobID", supersedes.unwrap_or(number));
    if let Some(old) = supersedes {
        x.leaf("cbc:PreviousJobID", old);
    }
    if !agreement.is_empty() {
        x.leaf("cbc:Remarks", &format!("Trade agreement: {agreement}"));
    }
    shipment(&mut x, f, number);
    endorser(&mut x, &f.issuing_authority, &f.authorized_officer);
    authority_party(&mut x, "cac:PreparationParty", &f.issuing_authority);
    authority_party(&mut x, "cac:IssuerParty", &f.issuing_authority);
    country(&mut x, "cac:IssuingCountry", &f.issuing_authority.country);
    x.close("cac:CertificateOfOriginApplication");

    x.open("cac:IssuerEndorsement", &[]);
    x.leaf("cbc:DocumentID", number);
    x.leaf("cbc:ApprovalStatus", "Approved");
    endorser(&mut x, &f.issuing_authority, &f.authorized_officer);
    x.close("cac:IssuerEndorsement");

    x.close("CertificateOfOrigin");
    x.finish()
}

fn country(x: &mut Xml, name: &str, code: &str) {
    x.open(name, &[]);
    x.leaf_with("cbc:IdentificationCode", &[ISO3166], code.trim());
    if let Some(n) = codes::name(List::Country, code.trim(), Lang::default()) {
        x.leaf_with("cbc:Name", &[("languageID", "en")], n);
    }
    x.close(name);
}

/// The body of a party (`cac:PartyType`): name, address lines, country.
fn party_body(x: &mut Xml, p: &TradeParty) {
    x.open("cac:PartyName", &[]);
    x.leaf("cbc:Name", &clean(&p.name));
    x.close("cac:PartyName");
    x.open("cac:PostalAddress", &[]);
    for line in lines(&p.address) {
        x.open("cac:AddressLine", &[]);
        x.leaf("cbc:Line", &line);
        x.close("cac:AddressLine");
    }
    country(x, "cac:Country", &p.country);
    x.close("cac:PostalAddress");
}

fn party(x: &mut Xml, name: &str, p: &TradeParty) {
    x.open(name, &[]);
    party_body(x, p);
    x.close(name);
}

fn authority_party(x: &mut Xml, name: &str, a: &Authority) {
    x.open(name, &[]);
    x.open("cac:PartyName", &[]);
    x.leaf("cbc:Name", &clean(&a.name));
    x.close("cac:PartyName");
    x.open("cac:PostalAddress", &[]);
    country(x, "cac:Country", &a.country);
    x.close("cac:PostalAddress");
    x.close(name);
}

/// The issuing authority endorsing: role, sequence, party, the signing officer (when named).
fn endorser(x: &mut Xml, a: &Authority, officer: &str) {
    x.open("cac:EndorserParty", &[]);
    x.leaf("cbc:RoleCode", "issuer");
    x.leaf("cbc:SequenceNumeric", "1");
    authority_party(x, "cac:Party", a);
    let officer = clean(officer);
    if officer.is_empty() {
        x.empty("cac:SignatoryContact", &[]);
    } else {
        x.open("cac:SignatoryContact", &[]);
        x.leaf("cbc:Name", &officer);
        x.close("cac:SignatoryContact");
    }
    x.close("cac:EndorserParty");
}

fn shipment(x: &mut Xml, f: &EcoForm, number: &str) {
    x.open("cac:Shipment", &[]);
    x.leaf("cbc:ID", number);
    x.leaf("cbc:TotalGoodsItemQuantity", &f.lines.len().to_string());
    x.open("cac:Consignment", &[]);
    x.leaf("cbc:ID", number);
    party(x, "cac:ConsigneeParty", &f.consignee);
    country(
        x,
        "cac:OriginalDepartureCountry",
        &f.issuing_authority.country,
    );
    country(x, "cac:FinalDestinationCountry", &f.consignee.country);
    x.close("cac:Consignment");
    for (i, line) in f.lines.iter().enumerate() {
        goods_item(x, i + 1, line);
    }
    let t = &f.transport;
    x.open("cac:ShipmentStage", &[]);
    x.leaf("cbc:ID", "1");
    x.leaf_with(
        "cbc:TransportModeCode",
        &[("listID", "UN/ECE Recommendation 19")],
        t.mode.trim(),
    );
    for (name, place) in [
        ("cac:LoadingPortLocation", &t.loading_place),
        ("cac:UnloadingPortLocation", &t.discharge_place),
    ] {
        let place = clean(place);
        if !place.is_empty() {
            x.open(name, &[]);
            x.leaf("cbc:Name", &place);
            x.close(name);
        }
    }
    x.close("cac:ShipmentStage");
    country(x, "cac:ExportCountry", &f.issuing_authority.country);
    x.close("cac:Shipment");
}

fn goods_item(x: &mut Xml, n: usize, line: &EcoLine) {
    x.open("cac:GoodsItem", &[]);
    x.leaf("cbc:ID", &n.to_string());
    let gross = line.gross_weight_kg.trim();
    if !gross.is_empty() {
        x.leaf_with("cbc:GrossWeightMeasure", &[("unitCode", "KGM")], gross);
    }
    x.leaf_with(
        "cbc:Quantity",
        &[("unitCode", line.unit.trim())],
        line.quantity.trim(),
    );
    x.leaf(
        "cbc:PreferenceCriterionCode",
        &clean(&line.origin_criterion),
    );
    x.open("cac:Item", &[]);
    x.leaf("cbc:Description", &clean(&line.description));
    country(x, "cac:OriginCountry", &line.origin_country);
    x.open("cac:CommodityClassification", &[]);
    x.leaf_with(
        "cbc:ItemClassificationCode",
        &[("listID", "HS")],
        &hs_digits(&line.hs_code),
    );
    x.close("cac:CommodityClassification");
    x.close("cac:Item");
    x.close("cac:GoodsItem");
}
