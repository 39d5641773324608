//! The issuing forms as HTML: every field of an e-Phyto and an e-CO (`crate::issuing`'s
//! `EPhytoForm` and `EcoForm`), as inputs named by the field's path (`consignor.name`,
//! `lines.0.hs_code`), and the posted fields read back into a [`Form`].
//!
//! Why one table of fields ([`Spec`]) and not a template per form: the same table names the
//! inputs, reads them back, labels them (`cf.<path>` in the catalogues, also on the printout)
//! and places the workflow's problems beside the field they name, so that a field cannot be
//! shown and then lost when posted, or checked and never shown.
//!
//! Reading posted fields is total: a missing field is empty, an unknown one ignored, a line
//! index beyond the form's limit dropped, a line left blank dropped (the page always offers
//! one blank line to fill), and the form's structs only ever receive strings; nothing posted
//! can make it panic.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value};

use caravan_common::DocumentType;

use crate::issuing::{FieldProblem, Form, MAX_ENTRIES, MAX_LINES};

use super::super::*;

/// How a field is typed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Input {
    Text,
    /// Several lines (an address, a declaration).
    Long,
    /// ISO 3166-1 alpha-2, picked by its CLDR name.
    Country,
    /// UN/ECE Rec 19.
    Mode,
    /// UN/ECE Rec 20, typed with the list's suggestions.
    Unit,
    /// UN/ECE Rec 21.
    Package,
    /// An HS code, typed with HS 2022's headings as suggestions and read with its heading.
    Hs,
    Date,
}

/// Fields shown together under a legend.
pub(crate) struct Group {
    /// The legend's catalogue key.
    pub(crate) legend: &'static str,
    /// Each field's path and input.
    pub(crate) fields: &'static [(&'static str, Input)],
}

/// A repeated part of a form (goods lines, treatments, declarations).
pub(crate) struct Repeated {
    /// The form's field: `lines`, `treatments`, `additional_declarations`.
    pub(crate) name: &'static str,
    pub(crate) legend: &'static str,
    /// Each entry's fields; none: the entries are texts.
    pub(crate) fields: &'static [(&'static str, Input)],
    /// The most entries read from a post.
    pub(crate) max: usize,
}

/// One kind of form.
pub(crate) struct Spec {
    /// The form's `kind` (`e-phyto`, `e-co`).
    pub(crate) kind: &'static str,
    pub(crate) groups: &'static [Group],
    pub(crate) lists: &'static [Repeated],
}

use Input::*;

/// The consignee, as both forms name it.
const CONSIGNEE: Group = Group {
    legend: "cg.consignee",
    fields: &[
        ("consignee.name", Text),
        ("consignee.address", Long),
        ("consignee.country", Country),
    ],
};

pub(crate) const EPHYTO: Spec = Spec {
    kind: "e-phyto",
    groups: &[
        Group {
            legend: "cg.consignor",
            fields: &[
                ("consignor.name", Text),
                ("consignor.address", Long),
                ("consignor.country", Country),
            ],
        },
        CONSIGNEE,
        Group {
            legend: "cg.authority",
            fields: &[
                ("issuing_authority.name", Text),
                ("issuing_authority.country", Country),
                ("authorized_officer", Text),
                ("place_of_issue", Text),
            ],
        },
        Group {
            legend: "cg.route",
            fields: &[
                ("country_of_origin", Country),
                ("country_of_destination", Country),
                ("place_of_loading.name", Text),
                ("place_of_loading.locode", Text),
                ("point_of_entry.name", Text),
                ("point_of_entry.locode", Text),
                ("conveyance.mode", Mode),
                ("conveyance.name", Text),
            ],
        },
    ],
    lists: &[
        Repeated {
            name: "lines",
            legend: "cg.lines",
            fields: &[
                ("description", Text),
                ("hs_code", Hs),
                ("botanical_name", Text),
                ("quantity", Text),
                ("unit", Unit),
                ("packages", Text),
                ("package_type", Package),
            ],
            max: MAX_LINES,
        },
        Repeated {
            name: "treatments",
            legend: "cg.treatments",
            fields: &[
                ("kind", Text),
                ("chemical", Text),
                ("duration", Text),
                ("duration_unit", Unit),
                ("temperature", Text),
                ("temperature_unit", Unit),
                ("concentration", Text),
                ("concentration_unit", Unit),
                ("date", Date),
            ],
            max: MAX_ENTRIES,
        },
        Repeated {
            name: "additional_declarations",
            legend: "cg.additional_declarations",
            fields: &[],
            max: MAX_ENTRIES,
        },
    ],
};

pub(crate) const ECO: Spec = Spec {
    kind: "e-co",
    groups: &[
        Group {
            legend: "cg.exporter",
            fields: &[
                ("exporter.name", Text),
                ("exporter.address", Long),
                ("exporter.country", Country),
            ],
        },
        CONSIGNEE,
        Group {
            legend: "cg.authority",
            fields: &[
                ("issuing_authority.name", Text),
                ("issuing_authority.country", Country),
                ("authorized_officer", Text),
            ],
        },
        Group {
            legend: "cg.transport",
            fields: &[
                ("transport.mode", Mode),
                ("transport.loading_place", Text),
                ("transport.discharge_place", Text),
                ("trade_agreement", Text),
                ("remarks", Long),
            ],
        },
    ],
    lists: &[Repeated {
        name: "lines",
        legend: "cg.lines",
        fields: &[
            ("description", Text),
            ("hs_code", Hs),
            ("origin_country", Country),
            ("origin_criterion", Text),
            ("quantity", Text),
            ("unit", Unit),
            ("gross_weight_kg", Text),
        ],
        max: MAX_LINES,
    }],
};

/// The form table of a document type.
pub(crate) fn spec(t: DocumentType) -> &'static Spec {
    match t {
        DocumentType::CertificateOfOrigin => &ECO,
        _ => &EPHYTO,
    }
}

/// A field's label key: `cf.` and its path without the entry's index (`cf.lines.hs_code`).
pub(crate) fn label_key(list: Option<&str>, path: &str) -> String {
    match list {
        Some(list) if path.is_empty() => format!("cf.{list}"),
        Some(list) => format!("cf.{list}.{path}"),
        None => format!("cf.{path}"),
    }
}

/// A field's label in `lang`.
pub(crate) fn label(lang: Lang, list: Option<&str>, path: &str) -> &'static str {
    lang.lookup(&label_key(list, path)).unwrap_or("?")
}

/// A problem's field as the officer reads it: "Goods 2 · HS code" for `lines[1].hs_code`,
/// "Consignor · Name" for `consignor.name`, the label alone where the field has no group
/// ("Place of loading · Its UN/LOCODE" has its own); the path itself where the catalogue has
/// no label.
pub(crate) fn field_name(lang: Lang, field: &str) -> String {
    let (head, rest) = field.split_once('.').unwrap_or((field, ""));
    let (group, index) = match head.split_once('[') {
        Some((g, i)) => (g, i.trim_end_matches(']').parse::<usize>().ok()),
        None => (head, None),
    };
    let legend = match group {
        "issuing_authority" => "cg.authority".to_owned(),
        g => format!("cg.{g}"),
    };
    let group_name = lang.lookup(&legend).map(|name| match index {
        Some(i) => format!("{name} {}", i + 1),
        None => name.to_owned(),
    });
    let key = match index {
        Some(_) => label_key(Some(group), rest),
        None => label_key(None, field),
    };
    match (group_name, lang.lookup(&key)) {
        (Some(group), Some(label)) if !rest.is_empty() => format!("{group} · {label}"),
        (Some(group), _) if rest.is_empty() => group,
        (None, Some(label)) => label.to_owned(),
        _ => field.to_owned(),
    }
}

/// The posted fields: the first value of each name.
#[derive(Default)]
pub(crate) struct Posted(HashMap<String, String>);

impl Posted {
    pub(crate) fn new(pairs: Vec<(String, String)>) -> Self {
        let mut map = HashMap::with_capacity(pairs.len());
        for (k, v) in pairs {
            map.entry(k).or_insert(v);
        }
        Self(map)
    }

    /// The value of `name`, empty when not posted.
    pub(crate) fn get(&self, name: &str) -> &str {
        self.0.get(name).map(String::as_str).unwrap_or_default()
    }

    /// The entry indices posted for list `name`, below `max`.
    fn indices(&self, name: &str, max: usize) -> BTreeSet<usize> {
        self.0
            .keys()
            .filter_map(|k| {
                let rest = k.strip_prefix(name)?.strip_prefix('.')?;
                let index = rest.split('.').next()?;
                let digits = !index.is_empty()
                    && index.len() <= 6
                    && index.bytes().all(|b| b.is_ascii_digit());
                digits.then(|| index.parse().ok()).flatten()
            })
            .filter(|i| *i < max)
            .collect()
    }
}

fn set(root: &mut Map<String, Value>, path: &str, value: String) {
    match path.split_once('.') {
        Some((outer, inner)) => {
            let entry = root
                .entry(outer)
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = entry {
                m.insert(inner.to_owned(), Value::String(value));
            }
        }
        None => {
            root.insert(path.to_owned(), Value::String(value));
        }
    }
}

/// The form of kind `spec` that `posted` fills in. `Err` only if the table and the form's
/// structs disagree (the tests rule it out).
pub(crate) fn parse(spec: &Spec, posted: &Posted) -> Result<Form, String> {
    let mut root = Map::new();
    root.insert("kind".into(), Value::String(spec.kind.into()));
    for group in spec.groups {
        for (path, _) in group.fields {
            set(&mut root, path, posted.get(path).to_owned());
        }
    }
    for list in spec.lists {
        let mut items = Vec::new();
        for i in posted.indices(list.name, list.max) {
            if list.fields.is_empty() {
                let v = posted.get(&format!("{}.{i}", list.name));
                if !v.trim().is_empty() {
                    items.push(Value::String(v.to_owned()));
                }
                continue;
            }
            let mut entry = Map::new();
            let mut blank = true;
            for (field, _) in list.fields {
                let v = posted.get(&format!("{}.{i}.{field}", list.name));
                blank &= v.trim().is_empty();
                entry.insert((*field).to_owned(), Value::String(v.to_owned()));
            }
            if !blank {
                items.push(Value::Object(entry));
            }
        }
        root.insert(list.name.into(), Value::Array(items));
    }
    serde_json::from_value(Value::Object(root)).map_err(|e| e.to_string())
}

/// The text at `path` (`consignor.name`, `lines.0.unit`) of a form as JSON; empty if none.
pub(crate) fn value_at<'a>(form: &'a Value, path: &str) -> &'a str {
    form.pointer(&format!("/{}", path.replace('.', "/")))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// How many entries list `name` of a form has.
pub(crate) fn entries(form: &Value, name: &str) -> usize {
    form.get(name).and_then(Value::as_array).map_or(0, Vec::len)
}

/// A problem's field as the input it names: `lines[1].hs_code` → `lines.1.hs_code`.
pub(crate) fn input_name(field: &str) -> String {
    field.replace('[', ".").replace(']', "")
}

/// The problems, by the input they name.
pub(crate) type Problems<'a> = HashMap<String, Vec<&'a FieldProblem>>;

pub(crate) fn by_input(problems: &[FieldProblem]) -> Problems<'_> {
    let mut map: Problems = HashMap::new();
    for p in problems {
        map.entry(input_name(&p.field)).or_default().push(p);
    }
    map
}

/// The id of the `<datalist>` of Rec 20 units.
const UNITS: &str = "rec20-units";
fn picker(lang: Lang, list: List, name: &str, value: &str) -> Markup {
    let codes = codes::all(list, lang);
    let v = value.trim();
    let known = v.is_empty() || codes.iter().any(|(c, _)| c.eq_ignore_ascii_case(v));
    html! {
        select id=(format!("f-{name}")) name=(name) {
            option value="" { "—" }
            @if !known {
                option value=(v) selected { (v) " (" (lang.t("code.unknown")) ")" }
            }
            @for (code, n) in &codes {
                option value=(code) selected[code.eq_ignore_ascii_case(v)] { (n) " (" (code) ")" }
            }
        }
    }
}

/// One field as an input, with its label and the problems naming it.
fn input(
    lang: Lang,
    label: &str,
    name: &str,
    kind: Input,
    value: &str,
    problems: &Problems,
) -> Markup {
    let id = format!("f-{name}");
    let found = problems.get(name).map(Vec::as_slice).unwrap_or_default();
    html! {
        div.field {
            label for=(id) { (label) }
            @match kind {
                Text => input id=(id) name=(name) value=(value) aria-invalid=[(!found.is_empty()).then_some("true")];
                Hs => {
                    input id=(id) size="12" name=(name) value=(value) aria-invalid=[(!found.is_empty()).then_some("true")];
                    " " a href="/console/hs" target="_blank" rel="noopener" { (lang.t("hs.find_heading")) }
                    @if let Some(h) = codes::hs(value, lang) {
                        br; small lang="en" { (h.heading) " " (h.heading_name) }
                    }
                }
                Long => textarea id=(id) name=(name) rows="2" aria-invalid=[(!found.is_empty()).then_some("true")] { (value) }
                Date => input id=(id) name=(name) type="date" value=(value);
                Unit => input id=(id) name=(name) list=(UNITS) value=(value) size="6";
                Country => (picker(lang, List::Country, name, value))
                Mode => (picker(lang, List::TransportMode, name, value))
                Package => (picker(lang, List::Package, name, value))
            }
            @for p in found {
                span.problem role="alert" { (p.message_in(lang)) }
            }
        }
    }
}

/// The form's fields as inputs, with `form`'s values (as JSON) and the problems beside the
/// fields they name; every list with its entries and one blank entry to fill.
pub(crate) fn edit(lang: Lang, spec: &Spec, form: &Value, problems: &Problems) -> Markup {
    html! {
        datalist id=(UNITS) {
            @for (code, n) in codes::all(List::Unit, lang) {
                option value=(code) { (n) }
            }
        }
        @for g in spec.groups {
            fieldset {
                legend { (lang.lookup(g.legend).unwrap_or("?")) }
                @for (path, kind) in g.fields {
                    (input(lang, label(lang, None, path), path, *kind, value_at(form, path), problems))
                }
            }
        }
        @for list in spec.lists {
            fieldset id=(list.name) {
                legend { (lang.lookup(list.legend).unwrap_or("?")) }
                @for p in problems.get(list.name).map(Vec::as_slice).unwrap_or_default() {
                    p.problem role="alert" { (p.message_in(lang)) }
                }
                @let n = entries(form, list.name);
                @for i in 0..=n.min(list.max.saturating_sub(1)) {
                    div.entry {
                        @if i == n {
                            b { (lang.t("certificates.new_entry")) }
                        } @else {
                            b { (i + 1) }
                        }
                        @if list.fields.is_empty() {
                            @let name = format!("{}.{i}", list.name);
                            (input(lang, label(lang, Some(list.name), ""), &name, Long, value_at(form, &name), problems))
                        }
                        @for (field, kind) in list.fields {
                            @let name = format!("{}.{i}.{field}", list.name);
                            (input(lang, label(lang, Some(list.name), field), &name, *kind, value_at(form, &name), problems))
                        }
                    }
                }
                button name="action" value="add_line" { (lang.t(add_key(list.name))) }
            }
        }
    }
}

fn add_key(list: &str) -> &'static str {
    match list {
        "treatments" => "certificates.add_treatment",
        "additional_declarations" => "certificates.add_declaration",
        _ => "certificates.add_line",
    }
}

/// A value as read: a code by its name, a text as written (line breaks kept).
pub(crate) fn shown(lang: Lang, kind: Input, value: &str) -> Markup {
    if value.trim().is_empty() {
        return html! { "—" };
    }
    match kind {
        Country => code_value(lang, List::Country, value),
        Mode => code_value(lang, List::TransportMode, value),
        Package => code_value(lang, List::Package, value),
        Unit => code_value(lang, List::Unit, value),
        Hs => hs_value(lang, value),
        Long => html! {
            @for (i, line) in value.lines().enumerate() {
                @if i > 0 { br; }
                (line)
            }
        },
        Text | Date => html! { (value) },
    }
}

/// The form's fields as read only.
pub(crate) fn read(lang: Lang, spec: &Spec, form: &Value) -> Markup {
    html! {
        @for g in spec.groups {
            h3 { (lang.lookup(g.legend).unwrap_or("?")) }
            table.facts {
                @for (path, kind) in g.fields {
                    tr { th { (label(lang, None, path)) } td { (shown(lang, *kind, value_at(form, path))) } }
                }
            }
        }
        @for list in spec.lists {
            h3 { (lang.lookup(list.legend).unwrap_or("?")) }
            @let n = entries(form, list.name);
            @if n == 0 {
                p { "—" }
            } @else if list.fields.is_empty() {
                ol {
                    @for i in 0..n {
                        li { (shown(lang, Long, value_at(form, &format!("{}.{i}", list.name)))) }
                    }
                }
            } @else {
                table {
                    tr {
                        th { "#" }
                        @for (field, _) in list.fields { th { (label(lang, Some(list.name), field)) } }
                    }
                    @for i in 0..n {
                        tr {
                            td { (i + 1) }
                            @for (field, kind) in list.fields {
                                td { (shown(lang, *kind, value_at(form, &format!("{}.{i}.{field}", list.name)))) }
                            }
                        }
                    }
                }
            }
        }
    }
}
