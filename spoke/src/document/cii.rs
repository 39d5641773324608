//! UN/CEFACT Cross Industry Invoice (D16B, as EN 16931 uses it): the labelled fields and what
//! the invoice says.

use super::{
    Field, Format,
    content::{Attachment, Content, GoodsLine, Party},
    fields::{Spec, measure},
    xml::Element,
};

pub(super) const CII: &[Spec] = &[
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

/// A trade party: name (and trading name), country of its address, identifiers.
fn party(e: Option<&Element>) -> Option<Party> {
    let e = e?;
    let mut names = e.texts("Name");
    names.extend(e.texts("SpecifiedLegalOrganization/TradingBusinessName"));
    let mut ids = Vec::new();
    for path in [
        "ID",
        "GlobalID",
        "SpecifiedLegalOrganization/ID",
        "SpecifiedTaxRegistration/ID",
    ] {
        for i in e.all(path) {
            if let Some(value) = i.own_text() {
                ids.push(match i.attribute("schemeID") {
                    Some(scheme) => format!("{scheme}:{value}"),
                    None => value,
                });
            }
        }
    }
    Party::from_parts(names, e.text("PostalTradeAddress/CountryID"), ids)
}

pub(super) fn content(root: &Element, fields: Vec<Field>) -> Content {
    let transaction = root.at("SupplyChainTradeTransaction");
    let agreement = transaction.and_then(|t| t.at("ApplicableHeaderTradeAgreement"));
    let goods = transaction
        .map(|t| t.all("IncludedSupplyChainTradeLineItem"))
        .unwrap_or_default()
        .into_iter()
        .map(|l| {
            let product = l.at("SpecifiedTradeProduct");
            let classes = product
                .map(|p| p.all("DesignatedProductClassification/ClassCode"))
                .unwrap_or_default();
            GoodsLine {
                description: product.and_then(|p| p.text("Name").or_else(|| p.text("Description"))),
                hs_code: classes
                    .iter()
                    .find(|c| {
                        c.attribute("listID")
                            .is_some_and(|l| l.eq_ignore_ascii_case("HS"))
                    })
                    .or(classes.first())
                    .and_then(|c| c.own_text()),
                quantity: measure(l.at("SpecifiedLineTradeDelivery/BilledQuantity")),
                origin_country: product.and_then(|p| p.text("OriginTradeCountry/ID")),
                ..GoodsLine::default()
            }
        })
        .filter(|g| !g.is_empty())
        .collect();
    Content {
        format: Format::CrossIndustryInvoice,
        document_number: root.text("ExchangedDocument/ID"),
        issue_date: root.text("ExchangedDocument/IssueDateTime/DateTimeString"),
        type_code: root.text("ExchangedDocument/TypeCode"),
        status_code: None,
        issuer: None,
        consignor: None,
        consignee: None,
        exporter: None,
        importer: None,
        seller: party(agreement.and_then(|a| a.at("SellerTradeParty"))),
        buyer: party(agreement.and_then(|a| a.at("BuyerTradeParty"))),
        export_country: None,
        import_country: None,
        goods,
        transport: None,
        replaces: None,
        attachments: agreement
            .map(|a| a.all("AdditionalReferencedDocument/AttachmentBinaryObject"))
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
            .collect(),
        fields,
    }
}
