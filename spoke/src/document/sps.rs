//! UN/CEFACT SPS certificate (e-Phyto, as exchanged through the IPPC ePhyto Hub): the labelled
//! fields and what the certificate says.

use super::{
    Field,
    content::{Attachment, Content, GoodsLine, Measure, Party, Transport},
    fields::{Spec, measure},
    xml::Element,
};

pub(super) const SPS: &[Spec] = &[
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

/// A party of the certificate: its names, registration number and country (of its address).
fn party(e: Option<&Element>) -> Option<Party> {
    let e = e?;
    Party::from_parts(
        e.texts("Name"),
        e.text("SpecifiedSPSAddress/CountryID"),
        e.texts("ID")
            .into_iter()
            .chain(e.all("TypeCode").into_iter().filter_map(|t| {
                let value = t.own_text()?;
                Some(match t.attribute("listName") {
                    Some(scheme) => format!("{scheme}:{value}"),
                    None => value,
                })
            }))
            .collect(),
    )
}

/// The IPPC ePhyto's "other quantity" of a trade line: the notes OQV (value) and OQU (unit).
fn other_quantity(item: &Element) -> Option<Measure> {
    let note = |subject: &str| {
        item.all("AdditionalInformationSPSNote")
            .into_iter()
            .find(|n| n.text("Subject").as_deref() == Some(subject))
            .and_then(|n| n.text("Content"))
    };
    Some(Measure {
        value: note("OQV")?,
        unit: note("OQU"),
    })
}

pub(super) fn content(root: &Element, fields: Vec<Field>) -> Content {
    let doc = root.at("SPSExchangedDocument");
    let consignment = root.at("SPSConsignment");
    let in_doc = |path: &str| doc.and_then(|d| d.text(path));
    let in_consignment = |path: &str| consignment.and_then(|c| c.text(path));
    let goods = consignment
        .map(|c| c.all("IncludedSPSConsignmentItem/IncludedSPSTradeLineItem"))
        .unwrap_or_default()
        .into_iter()
        .map(|item| GoodsLine {
            description: item.text("Description"),
            hs_code: item
                .all("ApplicableSPSClassification")
                .into_iter()
                .find(|c| {
                    c.text("SystemName")
                        .or_else(|| c.text("SystemID"))
                        .is_some_and(|s| s.eq_ignore_ascii_case("HS"))
                })
                .and_then(|c| c.text("ClassCode")),
            quantity: other_quantity(item)
                .or_else(|| measure(item.at("NetVolumeMeasure")))
                .or_else(|| measure(item.at("PhysicalSPSPackage/ItemQuantity"))),
            net_weight: measure(item.at("NetWeightMeasure")),
            gross_weight: measure(item.at("GrossWeightMeasure")),
            origin_country: item.text("OriginSPSCountry/ID"),
            origin_criterion: None,
            botanical_name: item.text("ScientificName"),
        })
        .filter(|g| !g.is_empty())
        .collect();
    // IPPC ePhyto: the replaced certificate's number is the note with subject ADRPN.
    let replaces = doc.and_then(|d| {
        d.all("IncludedSPSNote")
            .into_iter()
            .find(|n| n.text("Subject").as_deref() == Some("ADRPN"))
            .and_then(|n| n.text("Content"))
    });
    let attachments = doc
        .map(|d| d.all("ReferenceSPSReferencedDocument/AttachmentBinaryObject"))
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(index, a)| {
            Attachment::new(
                index,
                a.attribute("filename").map(str::to_owned),
                a.attribute("mimeCode").map(str::to_owned),
                &a.text,
            )
        })
        .collect();
    Content {
        format: super::Format::SpsCertificate,
        document_number: in_doc("ID"),
        issue_date: in_doc("IssueDateTime/DateTimeString"),
        type_code: in_doc("TypeCode"),
        status_code: in_doc("StatusCode"),
        issuer: party(doc.and_then(|d| d.at("IssuerSPSParty"))),
        consignor: party(consignment.and_then(|c| c.at("ConsignorSPSParty"))),
        consignee: party(consignment.and_then(|c| c.at("ConsigneeSPSParty"))),
        exporter: None,
        importer: None,
        seller: None,
        buyer: None,
        export_country: in_consignment("ExportSPSCountry/ID"),
        import_country: in_consignment("ImportSPSCountry/ID"),
        goods,
        transport: Transport::from_parts(
            in_consignment("MainCarriageSPSTransportMovement/ModeCode"),
            in_consignment("MainCarriageSPSTransportMovement/UsedSPSTransportMeans/Name"),
        ),
        replaces,
        attachments,
        fields,
    }
}
