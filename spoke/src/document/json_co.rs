//! e-CO as JSON in the UN/CEFACT JSON-LD style of digital trade pilots: an object
//! `certificateOfOrigin` (at the top, or in a verifiable credential's `credentialSubject`)
//! with the vocabulary of the UN/CEFACT Buy-Ship-Pay model as those pilots write it in JSON:
//! `id`, `issueDateTime`, `issuer`, `status`, `isPreferential`, `supplyChainConsignment` with
//! `exporter`/`consignor`, `importer`/`consignee`, `exportCountry`, `importCountry`,
//! `includedConsignmentItems[].tradeLineItems[].tradeProduct` (`description`,
//! `harmonisedTariffCode.classCode`, `originCountry`), `crossBorderRegulatoryProcedure.
//! originCriteriaText`, `mainCarriageTransportMovement`, and `attachedFile`
//! (`file`, `mIMECode`). Parties are `TradeParty` (`id`, `name`, `postalAddress.countryCode`),
//! countries `TradeCountry` (`code`, `name`), measures `{value, unitCode}` (or `uom`).
//! Source of the vocabulary: the certificate of origin schema of the edi3 / intergovernmental
//! ledger trade portal pilot (github.com/gs-gs/ha-igl-trade_portal,
//! `trade_portal/document_api/schema.py`), built on UN/CEFACT CCL terms (edi3.org).
//!
//! Lenient like the XML readers: what is absent is not listed, unknown keys are ignored. A
//! document whose top level has no `certificateOfOrigin` is refused naming the keys it has.

use serde_json::{Map, Value};

use super::{
    DocumentError, Field, Format,
    content::{Attachment, Content, GoodsLine, Measure, Party, Transport},
};

/// Media type of a JSON e-CO.
pub const JSON: &str = "application/json";

/// Keys named in a refusal, at most.
const KEYS_SHOWN: usize = 12;

/// Whether the payload is JSON rather than XML: its first character (after white space and a
/// byte-order mark) opens an object or an array.
pub fn looks_like_json(payload: &[u8]) -> bool {
    let payload = payload.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(payload);
    payload
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{' || *b == b'[')
}

/// Parse `payload` and find its `certificateOfOrigin` object.
pub(super) fn certificate(payload: &[u8]) -> Result<Map<String, Value>, DocumentError> {
    let value: Value =
        serde_json::from_slice(payload).map_err(|e| DocumentError::NotWellFormedJson {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
    let Value::Object(mut top) = value else {
        return Err(DocumentError::UnknownJson {
            keys: Vec::new(),
            found: kind(&value).into(),
        });
    };
    if let Some(Value::Object(co)) = top.remove("certificateOfOrigin") {
        return Ok(co);
    }
    if let Some(Value::Object(mut subject)) = top.get("credentialSubject").cloned()
        && let Some(Value::Object(co)) = subject.remove("certificateOfOrigin")
    {
        return Ok(co);
    }
    let mut keys: Vec<String> = top
        .keys()
        .take(KEYS_SHOWN)
        .map(|k| k.chars().take(40).collect())
        .collect();
    if top.len() > KEYS_SHOWN {
        keys.push(format!("... ({} keys)", top.len()));
    }
    Err(DocumentError::UnknownJson {
        keys,
        found: "an object".into(),
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The text of a value: a string (trimmed, whitespace collapsed) or a number.
fn text(v: Option<&Value>) -> Option<String> {
    let s = match v? {
        Value::String(s) => s.split_whitespace().collect::<Vec<_>>().join(" "),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!s.is_empty()).then_some(s)
}

/// The first of `keys` that has a text.
fn first(o: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| text(o.get(*k)))
}

fn object<'a>(o: &'a Map<String, Value>, key: &str) -> Option<&'a Map<String, Value>> {
    o.get(key).and_then(Value::as_object)
}

/// Objects under `key`: an array of objects or a single one.
fn objects<'a>(o: &'a Map<String, Value>, key: &str) -> Vec<&'a Map<String, Value>> {
    match o.get(key) {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_object).collect(),
        Some(Value::Object(x)) => vec![x],
        _ => Vec::new(),
    }
}

/// A country: a code as a string, or a `TradeCountry` object (`code`, or `id`/`iD`).
fn country(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Object(c) => first(c, &["code", "countryCode", "iD", "id"]),
        other => text(Some(other)),
    }
}

/// A `TradeParty`, or a bare name.
fn party(v: Option<&Value>) -> Option<Party> {
    match v? {
        Value::Object(p) => {
            let address = object(p, "postalAddress").or_else(|| object(p, "address"));
            Party::from_parts(
                first(p, &["name"]).into_iter().collect(),
                address
                    .and_then(|a| {
                        country(a.get("countryCode")).or_else(|| country(a.get("country")))
                    })
                    .or_else(|| country(p.get("country")))
                    .or_else(|| country(p.get("countryCode"))),
                ["id", "iD", "registeredId", "taxId"]
                    .iter()
                    .filter_map(|k| text(p.get(*k)))
                    .collect(),
            )
        }
        other => Party::from_parts(text(Some(other)).into_iter().collect(), None, Vec::new()),
    }
}

fn measure(v: Option<&Value>) -> Option<Measure> {
    match v? {
        Value::Object(m) => Some(Measure {
            value: first(m, &["value"])?,
            unit: first(m, &["unitCode", "uom", "unit"]),
        }),
        other => Some(Measure {
            value: text(Some(other))?,
            unit: None,
        }),
    }
}

/// The HS code of a product: `harmonisedTariffCode` as a `ProductClassification` or a string.
fn hs_code(p: &Map<String, Value>) -> Option<String> {
    ["harmonisedTariffCode", "hsCode", "classification"]
        .iter()
        .find_map(|k| match p.get(*k) {
            Some(Value::Object(c)) => first(c, &["classCode", "code"]),
            other => text(other),
        })
}

/// One goods line from a consignment item and, when it has them, one of its trade line items.
fn line(item: &Map<String, Value>, trade: Option<&Map<String, Value>>) -> GoodsLine {
    let product = trade
        .and_then(|t| object(t, "tradeProduct"))
        .or_else(|| object(item, "tradeProduct"));
    let in_product = |keys: &[&str]| product.and_then(|p| first(p, keys));
    let measured = |key: &str| {
        trade
            .and_then(|t| measure(t.get(key)))
            .or_else(|| measure(item.get(key)))
    };
    GoodsLine {
        description: in_product(&["description", "name"])
            .or_else(|| trade.and_then(|t| first(t, &["description", "information"])))
            .or_else(|| first(item, &["description", "information"])),
        hs_code: product
            .and_then(hs_code)
            .or_else(|| trade.and_then(hs_code))
            .or_else(|| hs_code(item)),
        quantity: measured("quantity").or_else(|| measured("billedQuantity")),
        net_weight: measured("netWeight"),
        gross_weight: measured("grossWeight"),
        origin_country: product
            .and_then(|p| country(p.get("originCountry")))
            .or_else(|| country(item.get("originCountry"))),
        origin_criterion: object(item, "crossBorderRegulatoryProcedure")
            .and_then(|c| first(c, &["originCriteriaText", "originCriterion"]))
            .or_else(|| first(item, &["originCriterion", "originCriteriaText"])),
        botanical_name: None,
    }
}

/// What the certificate says; `fields` are derived from it.
pub(super) fn content(payload: &[u8]) -> Result<Content, DocumentError> {
    let co = certificate(payload)?;
    let consignment = object(&co, "supplyChainConsignment")
        .or_else(|| object(&co, "includedConsignment"))
        .unwrap_or(&co);
    // A party is read from the certificate first, then from its consignment.
    let role = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| party(co.get(*k)).or_else(|| party(consignment.get(*k))))
    };
    let document_origin = country(co.get("originCountry"));
    let items = {
        let mut items = objects(consignment, "includedConsignmentItems");
        if items.is_empty() {
            items = objects(&co, "goods");
        }
        items
    };
    let mut goods: Vec<GoodsLine> = Vec::new();
    for item in items {
        let trades = objects(item, "tradeLineItems");
        if trades.is_empty() {
            goods.push(line(item, None));
        } else {
            goods.extend(trades.into_iter().map(|t| line(item, Some(t))));
        }
    }
    for g in &mut goods {
        if g.origin_country.is_none() {
            g.origin_country = document_origin.clone();
        }
    }
    goods.retain(|g| !g.is_empty());
    let movement = object(consignment, "mainCarriageTransportMovement");
    let transport = movement.and_then(|m| {
        Transport::from_parts(
            first(m, &["modeCode", "mode"]),
            object(m, "usedTransportMeans")
                .and_then(|t| first(t, &["name", "id", "iD"]))
                .or_else(|| first(m, &["id", "iD"])),
        )
    });
    let attachments = objects(&co, "attachedFile")
        .into_iter()
        .chain(objects(&co, "attachedFiles"))
        .enumerate()
        .filter_map(|(index, f)| {
            let file = f.get("file").and_then(Value::as_str)?;
            Some(Attachment::new(
                index,
                first(f, &["fileName", "filename", "name"]),
                first(f, &["mIMECode", "mimeCode", "mediaType"]),
                file,
            ))
        })
        .collect();
    let mut content = Content {
        format: Format::JsonCertificateOfOrigin,
        document_number: first(&co, &["id", "iD", "ID"]),
        issue_date: first(&co, &["issueDateTime", "issueDate"]),
        type_code: first(&co, &["typeCode"]),
        status_code: first(&co, &["status", "statusCode"]),
        issuer: party(co.get("issuer")),
        consignor: role(&["consignor"]),
        consignee: role(&["consignee"]),
        exporter: role(&["exporter"]),
        importer: role(&["importer"]),
        seller: None,
        buyer: None,
        export_country: country(consignment.get("exportCountry"))
            .or_else(|| country(co.get("exportCountry"))),
        import_country: country(consignment.get("importCountry"))
            .or_else(|| country(co.get("importCountry"))),
        goods,
        transport,
        replaces: None,
        attachments,
        fields: Vec::new(),
    };
    content.fields = labelled(&content);
    Ok(content)
}

/// The labelled fields of a JSON e-CO, with the labels the UBL CertificateOfOrigin uses.
pub(super) fn fields(payload: &[u8]) -> Result<Vec<Field>, DocumentError> {
    content(payload).map(|c| c.fields)
}

fn labelled(c: &Content) -> Vec<Field> {
    let mut out = Vec::new();
    let mut push = |label: &str, value: Option<&str>| {
        if let Some(value) = value {
            out.push(Field {
                label: label.into(),
                value: value.into(),
                language: None,
            });
        }
    };
    push("Certificate number", c.document_number.as_deref());
    push("Issue date", c.issue_date.as_deref());
    push("Status", c.status_code.as_deref());
    for (label, p) in [
        ("Issuing authority", &c.issuer),
        ("Exporter", &c.exporter),
        ("Consignor", &c.consignor),
        ("Importer", &c.importer),
        ("Consignee", &c.consignee),
    ] {
        if let Some(p) = p {
            for name in p.names() {
                push(label, Some(name));
            }
        }
    }
    push("Export country", c.export_country.as_deref());
    push("Import country", c.import_country.as_deref());
    for g in &c.goods {
        push("Goods", g.description.as_deref());
        push("HS code", g.hs_code.as_deref());
        push("Origin", g.origin_country.as_deref());
        push("Origin criterion", g.origin_criterion.as_deref());
        push("Quantity", g.quantity.as_ref().map(|m| m.value.as_str()));
        push(
            "Net weight",
            g.net_weight.as_ref().map(|m| m.value.as_str()),
        );
        push(
            "Gross weight",
            g.gross_weight.as_ref().map(|m| m.value.as_str()),
        );
    }
    if let Some(t) = &c.transport {
        push("Transport mode", t.mode_code.as_deref());
        push("Means of conveyance", t.conveyance.as_deref());
    }
    for a in &c.attachments {
        push("Attachment", a.name.as_deref().or(Some("attachment")));
    }
    out
}
