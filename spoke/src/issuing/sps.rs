//! The e-Phyto writer: a UN/CEFACT SPS certificate (namespace SPSCertificate:17 with the
//! ReusableAggregateBusinessInformationEntity:21 and UnqualifiedDataType:21 parts, as the IPPC
//! ePhyto Hub exchanges it and as `samples/ephyto/` holds it), type 851 (phytosanitary
//! certificate), status 70 (issued). Elements in the order the hub's SPSCertificate:17 schema
//! (`samples/xsd/sps/`) demands.
//!
//! Where the form's fields go (D = SPSExchangedDocument, C = SPSConsignment,
//! L = C/IncludedSPSConsignmentItem/IncludedSPSTradeLineItem):
//! issuing authority D/IssuerSPSParty/Name and its country C/ExportSPSCountry; place of issue
//! and officer D/SignatorySPSAuthentication/IssueSPSLocation/Name and
//! .../ProviderSPSParty/SpecifiedSPSPerson/Name; additional declarations D/IncludedSPSNote
//! (subject ADEDL); the replaced certificate D/IncludedSPSNote (subject ADRPN, as the IPPC
//! marks a replacement); consignor and consignee C/ConsignorSPSParty, C/ConsigneeSPSParty
//! (name; address lines, the country's English name as the last); destination
//! C/ImportSPSCountry; point of entry C/UnloadingBaseportSPSLocation (UN/LOCODE as its ID);
//! conveyance C/MainCarriageSPSTransportMovement (ModeCode, UsedSPSTransportMeans/Name); per
//! line L/Description, L/ScientificName (the botanical name), the quantity as
//! L/NetWeightMeasure (mass units), L/NetVolumeMeasure (volume units) or the IPPC's "other
//! quantity" notes L/AdditionalInformationSPSNote OQV (value) and OQU (unit) for counts,
//! L/ApplicableSPSClassification (SystemName HS, ClassCode), packages L/PhysicalSPSPackage
//! (level 1), origin L/OriginSPSCountry/ID, and every treatment as an L/AppliedSPSProcess
//! (TypeCode; CompletionSPSPeriod with the date and duration; the characteristics TTCH chemical,
//! TTCO concentration, TTTM temperature, as the IPPC codes them).
//!
//! The place of loading is not written: neither the hub's schema nor the ISPM 12 certificate
//! has one.

use std::io;

use super::{
    Issue, clean,
    form::{EPhytoForm, PhytoLine, Place, TradeParty, Treatment},
    hs_digits, lines, rfc3339_seconds,
    xml::Xml,
};
use crate::i18n::{
    Lang,
    codes::{self, List},
};

pub(super) const RSM: &str = "urn:un:unece:uncefact:data:standard:SPSCertificate:17";
pub(super) const RAM: &str =
    "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:21";
pub(super) const UDT: &str = "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:21";

/// UN/CEFACT 1001: phytosanitary certificate.
const PHYTOSANITARY: &str = "851";
/// The status the IPPC ePhyto Hub gives an issued certificate.
const ISSUED: &str = "70";

/// Rec 20 units of mass and of volume: written as net weight and net volume measures.
const MASS: &[&str] = &["KGM", "TNE", "GRM", "MGM"];
const VOLUME: &[&str] = &["LTR", "MLT", "MTQ"];

/// The e-Phyto of a checked form.
pub(super) fn write(f: &EPhytoForm, issue: &Issue) -> io::Result<Vec<u8>> {
    let mut x = Xml::new();
    let issued = rfc3339_seconds(issue.issued_at).unwrap_or_default();
    x.open(
        "rsm:SPSCertificate",
        &[("xmlns:rsm", RSM), ("xmlns:ram", RAM), ("xmlns:udt", UDT)],
    );

    x.open("rsm:SPSExchangedDocument", &[]);
    x.leaf("ram:Name", "Phytosanitary Certificate");
    x.leaf("ram:ID", issue.document_number.trim());
    x.leaf("ram:TypeCode", PHYTOSANITARY);
    x.leaf("ram:StatusCode", ISSUED);
    date_time(&mut x, "ram:IssueDateTime", &issued);
    x.open("ram:IssuerSPSParty", &[]);
    x.leaf("ram:Name", &clean(&f.issuing_authority.name));
    x.close("ram:IssuerSPSParty");
    for declaration in &f.additional_declarations {
        note(&mut x, "ram:IncludedSPSNote", "ADEDL", &clean(declaration));
    }
    if let Some(old) = &issue.supersedes {
        note(&mut x, "ram:IncludedSPSNote", "ADRPN", old.trim());
    }
    x.open("ram:SignatorySPSAuthentication", &[]);
    date_time(&mut x, "ram:ActualDateTime", &issued);
    x.open("ram:IssueSPSLocation", &[]);
    x.leaf("ram:Name", &clean(&f.place_of_issue));
    x.close("ram:IssueSPSLocation");
    x.open("ram:ProviderSPSParty", &[]);
    x.leaf("ram:Name", &clean(&f.issuing_authority.name));
    x.open("ram:SpecifiedSPSPerson", &[]);
    x.leaf("ram:Name", &clean(&f.authorized_officer));
    x.close("ram:SpecifiedSPSPerson");
    x.close("ram:ProviderSPSParty");
    x.close("ram:SignatorySPSAuthentication");
    x.close("rsm:SPSExchangedDocument");

    x.open("rsm:SPSConsignment", &[]);
    party(&mut x, "ram:ConsignorSPSParty", &f.consignor);
    party(&mut x, "ram:ConsigneeSPSParty", &f.consignee);
    country(&mut x, "ram:ExportSPSCountry", &f.issuing_authority.country);
    country(&mut x, "ram:ImportSPSCountry", &f.country_of_destination);
    place(
        &mut x,
        "ram:UnloadingBaseportSPSLocation",
        &f.point_of_entry,
    );
    x.open("ram:MainCarriageSPSTransportMovement", &[]);
    x.leaf("ram:ModeCode", f.conveyance.mode.trim());
    let conveyance = clean(&f.conveyance.name);
    if !conveyance.is_empty() {
        x.open("ram:UsedSPSTransportMeans", &[]);
        x.leaf("ram:Name", &conveyance);
        x.close("ram:UsedSPSTransportMeans");
    }
    x.close("ram:MainCarriageSPSTransportMovement");
    x.open("ram:IncludedSPSConsignmentItem", &[]);
    for (i, line) in f.lines.iter().enumerate() {
        trade_line(&mut x, i + 1, line, f);
    }
    x.close("ram:IncludedSPSConsignmentItem");
    x.close("rsm:SPSConsignment");

    x.close("rsm:SPSCertificate");
    x.finish()
}

fn date_time(x: &mut Xml, name: &str, value: &str) {
    x.open(name, &[]);
    x.leaf("udt:DateTimeString", value);
    x.close(name);
}

fn note(x: &mut Xml, name: &str, subject: &str, content: &str) {
    x.open(name, &[]);
    x.leaf("ram:Subject", subject);
    x.leaf("ram:Content", content);
    x.close(name);
}

/// A country's English name from the lists the spoke ships.
fn country_name(code: &str) -> Option<&'static str> {
    codes::name(List::Country, code.trim(), Lang::default())
}

fn country(x: &mut Xml, name: &str, code: &str) {
    x.open(name, &[]);
    x.leaf("ram:ID", code.trim());
    if let Some(n) = country_name(code) {
        x.leaf("ram:Name", n);
    }
    x.close(name);
}

/// A party: its name, then its address in at most five lines, the country's name the last.
fn party(x: &mut Xml, name: &str, p: &TradeParty) {
    x.open(name, &[]);
    x.leaf("ram:Name", &clean(&p.name));
    let mut address = lines(&p.address);
    if address.len() > 4 {
        let rest = address.split_off(3).join(", ");
        address.push(rest);
    }
    address.extend(country_name(&p.country).map(str::to_owned));
    if !address.is_empty() {
        x.open("ram:SpecifiedSPSAddress", &[]);
        let tags = [
            "ram:LineOne",
            "ram:LineTwo",
            "ram:LineThree",
            "ram:LineFour",
            "ram:LineFive",
        ];
        for (tag, line) in tags.iter().zip(&address) {
            x.leaf(tag, line);
        }
        x.close("ram:SpecifiedSPSAddress");
    }
    x.close(name);
}

fn place(x: &mut Xml, name: &str, p: &Place) {
    x.open(name, &[]);
    let locode = p.locode.trim();
    if !locode.is_empty() {
        x.leaf("ram:ID", locode);
    }
    x.leaf("ram:Name", &clean(&p.name));
    x.close(name);
}

fn trade_line(x: &mut Xml, n: usize, line: &PhytoLine, f: &EPhytoForm) {
    x.open("ram:IncludedSPSTradeLineItem", &[]);
    x.leaf("ram:SequenceNumeric", &n.to_string());
    x.leaf("ram:Description", &clean(&line.description));
    x.leaf("ram:ScientificName", &clean(&line.botanical_name));
    let (quantity, unit) = (line.quantity.trim(), line.unit.trim());
    if MASS.contains(&unit) {
        x.leaf_with("ram:NetWeightMeasure", &[("unitCode", unit)], quantity);
    } else if VOLUME.contains(&unit) {
        x.leaf_with("ram:NetVolumeMeasure", &[("unitCode", unit)], quantity);
    } else {
        note(x, "ram:AdditionalInformationSPSNote", "OQV", quantity);
        note(x, "ram:AdditionalInformationSPSNote", "OQU", unit);
    }
    x.open("ram:ApplicableSPSClassification", &[]);
    x.leaf("ram:SystemName", "HS");
    x.leaf("ram:ClassCode", &hs_digits(&line.hs_code));
    x.close("ram:ApplicableSPSClassification");
    let packages = line.packages.trim();
    if !packages.is_empty() {
        x.open("ram:PhysicalSPSPackage", &[]);
        x.leaf("ram:LevelCode", "1");
        x.leaf("ram:TypeCode", line.package_type.trim());
        x.leaf("ram:ItemQuantity", packages);
        x.close("ram:PhysicalSPSPackage");
    }
    x.open("ram:OriginSPSCountry", &[]);
    x.leaf("ram:ID", f.country_of_origin.trim());
    if let Some(n) = country_name(&f.country_of_origin) {
        x.leaf("ram:Name", n);
    }
    x.close("ram:OriginSPSCountry");
    for t in &f.treatments {
        treatment(x, t);
    }
    x.close("ram:IncludedSPSTradeLineItem");
}

fn or<'a>(value: &'a str, default: &'a str) -> &'a str {
    let v = value.trim();
    if v.is_empty() { default } else { v }
}

fn treatment(x: &mut Xml, t: &Treatment) {
    x.open("ram:AppliedSPSProcess", &[]);
    let kind = clean(&t.kind);
    if !kind.is_empty() {
        x.leaf("ram:TypeCode", &kind);
    }
    let (date, duration) = (t.date.trim(), t.duration.trim());
    if !date.is_empty() || !duration.is_empty() {
        x.open("ram:CompletionSPSPeriod", &[]);
        if !date.is_empty() {
            date_time(x, "ram:StartDateTime", date);
        }
        if !duration.is_empty() {
            x.leaf_with(
                "ram:DurationMeasure",
                &[("unitCode", or(&t.duration_unit, "HUR"))],
                duration,
            );
        }
        x.close("ram:CompletionSPSPeriod");
    }
    let chemical = clean(&t.chemical);
    if !chemical.is_empty() {
        x.open("ram:ApplicableSPSProcessCharacteristic", &[]);
        x.leaf("ram:Description", "TTCH");
        x.leaf("ram:Description", &chemical);
        x.close("ram:ApplicableSPSProcessCharacteristic");
    }
    let measures = [
        ("TTCO", t.concentration.trim(), t.concentration_unit.trim()),
        ("TTTM", t.temperature.trim(), or(&t.temperature_unit, "CEL")),
    ];
    for (code, value, unit) in measures {
        if !value.is_empty() {
            x.open("ram:ApplicableSPSProcessCharacteristic", &[]);
            x.leaf("ram:Description", code);
            x.leaf_with("ram:ValueMeasure", &[("unitCode", unit)], value);
            x.close("ram:ApplicableSPSProcessCharacteristic");
        }
    }
    x.close("ram:AppliedSPSProcess");
}
