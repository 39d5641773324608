//! OASIS UBL 2.0 and 2.1: CertificateOfOrigin, Invoice and CreditNote. The labelled fields and
//! what the document says, with the ways real documents name their parties: `PartyName/Name`,
//! `PartyLegalEntity/RegistrationName`, `PartyTaxScheme/RegistrationName`, under
//! `AccountingSupplierParty/Party` (2.1 and 2.0) or `SellerSupplierParty/Party` (2.0).

use super::{
    Field, Format,
    content::{Attachment, Content, GoodsLine, Party, Transport},
    fields::{Spec, measure},
    xml::Element,
};

pub(super) const COO: &[Spec] = &[
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

pub(super) const UBL_INVOICE: &[Spec] = &[
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
        "Seller",
        "AccountingSupplierParty/Party/PartyName/Name",
        None,
    ),
    (
        "Seller",
        "AccountingSupplierParty/Party/PartyTaxScheme/RegistrationName",
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
        "Buyer",
        "AccountingCustomerParty/Party/PartyName/Name",
        None,
    ),
    (
        "Buyer",
        "AccountingCustomerParty/Party/PartyTaxScheme/RegistrationName",
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
    ("Item", "InvoiceLine/Item/Description", None),
    ("Item", "CreditNoteLine/Item/Description", None),
    ("Quantity", "InvoiceLine/InvoicedQuantity", None),
    ("Quantity", "CreditNoteLine/CreditedQuantity", None),
    (
        "Classification",
        "InvoiceLine/Item/CommodityClassification/ItemClassificationCode",
        None,
    ),
    (
        "Classification",
        "CreditNoteLine/Item/CommodityClassification/ItemClassificationCode",
        None,
    ),
    (
        "Attachment",
        "AdditionalDocumentReference/Attachment/EmbeddedDocumentBinaryObject",
        Some("filename"),
    ),
];

/// A UBL party (`cac:Party` or a role typed as one, such as `cac:ExporterParty`).
fn party(e: Option<&Element>) -> Option<Party> {
    let e = e?;
    let names = [
        "PartyLegalEntity/RegistrationName",
        "PartyName/Name",
        "PartyTaxScheme/RegistrationName",
    ]
    .into_iter()
    .flat_map(|path| e.texts(path))
    .collect();
    let country = [
        "PostalAddress/Country/IdentificationCode",
        "PartyLegalEntity/RegistrationAddress/Country/IdentificationCode",
        "PartyTaxScheme/RegistrationAddress/Country/IdentificationCode",
        "PhysicalLocation/Address/Country/IdentificationCode",
    ]
    .into_iter()
    .find_map(|path| e.text(path));
    let scheme_id = |path: &str| -> Vec<String> {
        e.all(path)
            .into_iter()
            .filter_map(|i| {
                let value = i.own_text()?;
                Some(match i.attribute("schemeID") {
                    Some(scheme) => format!("{scheme}:{value}"),
                    None => value,
                })
            })
            .collect()
    };
    let mut ids = scheme_id("EndpointID");
    ids.extend(scheme_id("PartyIdentification/ID"));
    ids.extend(scheme_id("PartyLegalEntity/CompanyID"));
    for tax in e.all("PartyTaxScheme") {
        if let Some(id) = tax.text("CompanyID") {
            ids.push(match tax.text("TaxScheme/ID") {
                Some(scheme) => format!("{scheme}:{id}"),
                None => id,
            });
        }
    }
    Party::from_parts(names, country, ids)
}

/// The first party found at one of `paths`.
fn first_party(root: &Element, paths: &[&str]) -> Option<Party> {
    paths.iter().find_map(|p| party(root.at(p)))
}

fn attachments(elements: Vec<&Element>) -> Vec<Attachment> {
    elements
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
        .collect()
}

/// The HS code of an item: the classification listed as HS, else the first one.
fn hs_code(item: &Element) -> Option<String> {
    let codes = item.all("CommodityClassification/ItemClassificationCode");
    codes
        .iter()
        .find(|c| {
            c.attribute("listID")
                .is_some_and(|l| l.eq_ignore_ascii_case("HS"))
        })
        .or(codes.first())
        .and_then(|c| c.own_text())
}

/// An Invoice or a CreditNote, UBL 2.0 or 2.1.
pub(super) fn invoice(root: &Element, format: Format, fields: Vec<Field>) -> Content {
    let (line, quantity, type_code) = match format {
        Format::UblCreditNote => ("CreditNoteLine", "CreditedQuantity", "CreditNoteTypeCode"),
        _ => ("InvoiceLine", "InvoicedQuantity", "InvoiceTypeCode"),
    };
    let goods = root
        .all(line)
        .into_iter()
        .map(|l| {
            let item = l.at("Item");
            GoodsLine {
                description: item.and_then(|i| i.text("Name").or_else(|| i.text("Description"))),
                hs_code: item.and_then(hs_code),
                quantity: measure(l.at(quantity)),
                origin_country: item.and_then(|i| i.text("OriginCountry/IdentificationCode")),
                ..GoodsLine::default()
            }
        })
        .filter(|g| !g.is_empty())
        .collect();
    Content {
        format,
        document_number: root.text("ID"),
        issue_date: root.text("IssueDate"),
        type_code: root.text(type_code),
        status_code: None,
        issuer: None,
        consignor: None,
        consignee: None,
        exporter: None,
        importer: None,
        seller: first_party(
            root,
            &["AccountingSupplierParty/Party", "SellerSupplierParty/Party"],
        ),
        buyer: first_party(
            root,
            &["AccountingCustomerParty/Party", "BuyerCustomerParty/Party"],
        ),
        export_country: None,
        import_country: None,
        goods,
        transport: None,
        replaces: None,
        attachments: attachments(
            root.all("AdditionalDocumentReference/Attachment/EmbeddedDocumentBinaryObject"),
        ),
        fields,
    }
}

/// A CertificateOfOrigin (UBL 2.1, ISO/IEC 19845).
pub(super) fn certificate_of_origin(root: &Element, fields: Vec<Field>) -> Content {
    let application = root.at("CertificateOfOriginApplication");
    let in_app = |path: &str| application.and_then(|a| a.text(path));
    let shipment = application.and_then(|a| a.at("Shipment"));
    let in_shipment = |path: &str| shipment.and_then(|s| s.text(path));
    let issuing_country = in_app("IssuingCountry/IdentificationCode");
    let issuer = party(application.and_then(|a| a.at("IssuerParty"))).map(|mut p| {
        if p.country.is_none() {
            p.country = issuing_country.clone();
        }
        p
    });
    let goods = shipment
        .map(|s| s.all("GoodsItem"))
        .unwrap_or_default()
        .into_iter()
        .map(|g| {
            let item = g.at("Item");
            GoodsLine {
                description: g
                    .text("Description")
                    .or_else(|| item.and_then(|i| i.text("Description")))
                    .or_else(|| item.and_then(|i| i.text("Name"))),
                hs_code: item.and_then(hs_code),
                quantity: measure(g.at("Quantity")),
                net_weight: measure(g.at("NetWeightMeasure")),
                gross_weight: measure(g.at("GrossWeightMeasure")),
                origin_country: item
                    .and_then(|i| i.text("OriginCountry/IdentificationCode"))
                    .or_else(|| g.text("OriginAddress/Country/IdentificationCode")),
                origin_criterion: g.text("PreferenceCriterionCode"),
                botanical_name: None,
            }
        })
        .filter(|g| !g.is_empty())
        .collect();
    let stage = shipment.and_then(|s| s.at("ShipmentStage"));
    let conveyance = stage.and_then(|s| {
        [
            "TransportMeans/RailTransport/TrainID",
            "TransportMeans/MaritimeTransport/VesselName",
            "TransportMeans/RoadTransport/LicensePlateID",
            "TransportMeans/AirTransport/AircraftID",
            "TransportMeans/JourneyID",
        ]
        .into_iter()
        .find_map(|p| s.text(p))
    });
    Content {
        format: Format::UblCertificateOfOrigin,
        document_number: root.text("ID"),
        issue_date: root.text("IssueDate"),
        type_code: in_app("CertificateType"),
        status_code: in_app("ApplicationStatusCode"),
        issuer,
        consignor: party(shipment.and_then(|s| s.at("Consignment/ConsignorParty"))),
        consignee: party(shipment.and_then(|s| s.at("Consignment/ConsigneeParty"))),
        exporter: party(root.at("ExporterParty")),
        importer: party(root.at("ImporterParty")),
        seller: None,
        buyer: None,
        export_country: in_shipment("ExportCountry/IdentificationCode")
            .or_else(|| in_shipment("Consignment/OriginalDepartureCountry/IdentificationCode"))
            .or(issuing_country),
        import_country: in_shipment("Consignment/FinalDestinationCountry/IdentificationCode")
            .or_else(|| in_shipment("Delivery/DeliveryAddress/Country/IdentificationCode")),
        goods,
        transport: Transport::from_parts(
            stage.and_then(|s| s.text("TransportModeCode")),
            conveyance,
        ),
        replaces: in_app("PreviousJobID"),
        attachments: attachments(
            application
                .map(|a| {
                    a.all("SupportingDocumentReference/Attachment/EmbeddedDocumentBinaryObject")
                })
                .unwrap_or_default(),
        ),
        fields,
    }
}
