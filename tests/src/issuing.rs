//! The certificates the issuing tests fill in, shared by the HTTP test (`tests/issuing.rs`)
//! and the browser test (`tests/issuing_browser.rs`): the same e-Phyto and e-CO as
//! `caravan_spoke::issuing`'s unit-test fixtures, as the certificate page's inputs name them.

/// The console password of the issuing tests' officers.
pub const PASSWORD: &str = "border-post-7";
/// The officer who prepares certificates.
pub const ISSUER: &str = "issuer";
/// The officer who approves them.
pub const APPROVER: &str = "approver";

/// The e-Phyto as a fresh draft's inputs take it (one goods line,
/// one treatment, one declaration: the blank entries a new form offers).
pub const EPHYTO: &[(&str, &str)] = &[
    ("consignor.name", "Zhetysu Agro LLP"),
    (
        "consignor.address",
        "Abay Street 12\nTaldykorgan, Zhetysu Region",
    ),
    ("consignor.country", "KZ"),
    ("consignee.name", "新疆天山果业贸易有限公司"),
    ("consignee.address", "友好北路88号\n乌鲁木齐市"),
    ("consignee.country", "CN"),
    (
        "issuing_authority.name",
        "Committee of State Inspection in the Agro-Industrial Complex",
    ),
    ("issuing_authority.country", "KZ"),
    ("authorized_officer", "Айгүл Серікқызы Нұрланова"),
    ("place_of_issue", "Almaty"),
    ("country_of_origin", "KZ"),
    ("country_of_destination", "CN"),
    ("place_of_loading.name", "Almaty-1 railway station"),
    ("place_of_loading.locode", "KZALA"),
    ("point_of_entry.name", "Alashankou"),
    ("point_of_entry.locode", "CNAKA"),
    ("conveyance.mode", "2"),
    ("conveyance.name", "Train 3012, wagon 24817356"),
    ("lines.0.description", "Fresh apples"),
    ("lines.0.hs_code", "0808.10"),
    ("lines.0.botanical_name", "Malus domestica"),
    ("lines.0.quantity", "18500.5"),
    ("lines.0.unit", "KGM"),
    ("lines.0.packages", "1200"),
    ("lines.0.package_type", "CT"),
    ("treatments.0.kind", "Fumigation"),
    ("treatments.0.chemical", "Phosphine"),
    ("treatments.0.duration", "72"),
    ("treatments.0.temperature", "-1.5"),
    ("treatments.0.concentration", "2"),
    ("treatments.0.concentration_unit", "KX"),
    ("treatments.0.date", "2026-11-20"),
    (
        "additional_declarations.0",
        "The consignment was inspected and found free of Cydia pomonella.",
    ),
];

/// What the e-Phyto's page offers after "Add a line": the second goods line and declaration.
pub const EPHYTO_MORE: &[(&str, &str)] = &[
    ("lines.1.description", "Apple seedlings, bare-rooted"),
    ("lines.1.hs_code", "06022010"),
    ("lines.1.botanical_name", "Malus sieversii"),
    ("lines.1.quantity", "300"),
    ("lines.1.unit", "H87"),
    (
        "additional_declarations.1",
        "Произведено в зоне, свободной от Erwinia amylovora.",
    ),
];

/// `crate::issuing`'s `full_eco`, as the e-CO's inputs take it.
pub const ECO: &[(&str, &str)] = &[
    ("exporter.name", "Dala Un LLP «Дала Ұн»"),
    ("exporter.address", "проспект Абая 212\nҚостанай 110000"),
    ("exporter.country", "KZ"),
    ("consignee.name", "新疆丝路粮油贸易有限公司"),
    ("consignee.address", "北京南路388号\n乌鲁木齐市"),
    ("consignee.country", "CN"),
    (
        "issuing_authority.name",
        "Chamber of Commerce and Industry of the Republic of Kazakhstan",
    ),
    ("issuing_authority.country", "KZ"),
    ("authorized_officer", "Әсел Нұрланқызы Серікбаева"),
    ("transport.mode", "2"),
    ("transport.loading_place", "Kostanay railway station"),
    ("transport.discharge_place", "Urumqi North railway station"),
    ("trade_agreement", "CIS Free Trade Area Agreement (2011)"),
    ("remarks", "Goods in 50 kg polypropylene bags."),
    ("lines.0.description", "Wheat flour, first grade"),
    ("lines.0.hs_code", "1101.00"),
    ("lines.0.origin_country", "KZ"),
    ("lines.0.origin_criterion", "WO"),
    ("lines.0.quantity", "1000"),
    ("lines.0.unit", "XBG"),
    ("lines.0.gross_weight_kg", "50150"),
];

pub const ECO_MORE: &[(&str, &str)] = &[
    ("lines.1.description", "Wheat semolina"),
    ("lines.1.hs_code", "110311"),
    ("lines.1.origin_country", "KZ"),
    ("lines.1.origin_criterion", "PSR"),
    ("lines.1.quantity", "15000"),
    ("lines.1.unit", "KGM"),
];

/// What the public page must never show: parties and goods.
pub const CONTENT: &[&str] = &[
    "Zhetysu Agro LLP",
    "新疆天山果业贸易有限公司",
    "Fresh apples",
    "Apple seedlings",
    "Malus",
    "Cydia pomonella",
    "Train 3012",
    "Almaty",
];
