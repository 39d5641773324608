//! The field checks a form passes before anything is made of it: every problem names the
//! form field (`consignor.name`, `lines[1].hs_code`) so that a form page can mark it, and a
//! stable rule id a program can act on. Total over any input: hostile text is refused by rule,
//! never by a panic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use caravan_common::CountryCode;

use super::form::{
    Authority, Conveyance, EPhytoForm, EcoForm, EcoLine, Form, Issue, PhytoLine, Place, TradeParty,
    Treatment,
};
use crate::i18n::{
    Lang,
    codes::{self, List},
};

/// One thing wrong with a form: which field, which rule, and what: in English, and as a
/// message key with parameters that the console says in the officer's language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldProblem {
    /// The form field's path: `consignor.name`, `lines[1].hs_code`, `additional_declarations[0]`;
    /// `document` for the made document as a whole.
    pub field: String,
    /// Stable rule id: `required`, `text`, `length`, `country-code`, `hs-code` (the shape),
    /// `hs-heading` (a heading not in HS 2022), `unit-code`, `package-code`, `transport-mode`,
    /// `locode`, `quantity`, `decimal`, `date`, `lines`, `list-length`, `document-number`,
    /// `issued-at`, `supersedes`, `document`.
    pub rule: String,
    /// In English (the English catalogue's text of `message_key`).
    pub message: String,
    /// The message's key in the console's catalogues: `form_problem.<what>`.
    #[serde(default)]
    pub message_key: String,
    /// The message's parameters, by name (`value`, `max`, `found`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
}

impl FieldProblem {
    /// A problem of `field` breaking `rule`, said by the message `form_problem.<what>`.
    pub(crate) fn new(
        field: impl Into<String>,
        rule: &str,
        what: &str,
        params: &[(&str, &str)],
    ) -> Self {
        let message_key = format!("form_problem.{what}");
        let params: BTreeMap<String, String> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Self {
            field: field.into(),
            rule: rule.into(),
            message: Lang::default().message(&message_key, &params),
            message_key,
            params,
        }
    }

    /// The problem in `lang` (as written, for a problem kept without a key).
    pub fn message_in(&self, lang: Lang) -> String {
        if self.message_key.is_empty() {
            return self.message.clone();
        }
        lang.message(&self.message_key, &self.params)
    }
}

/// Longest one-line text (a name, a code, a place), in characters.
pub const MAX_TEXT: usize = 512;
/// Longest multi-line text (an address, a declaration, remarks), in characters.
pub const MAX_LONG_TEXT: usize = 2048;
/// Most goods lines on one certificate.
pub const MAX_LINES: usize = 500;
/// Most treatments, and most additional declarations.
pub const MAX_ENTRIES: usize = 50;
/// Longest document number.
pub const MAX_NUMBER: usize = 64;

/// Everything wrong with `form`, in form order; empty when it may be made into a document.
pub fn check(form: &Form) -> Vec<FieldProblem> {
    let mut c = Checker::default();
    match form {
        Form::EPhyto(f) => ephyto(&mut c, f),
        Form::Eco(f) => eco(&mut c, f),
    }
    c.problems
}

/// What is wrong with the numbers and time a form is issued with.
pub(crate) fn check_issue(issue: &Issue) -> Vec<FieldProblem> {
    let mut c = Checker::default();
    number(&mut c, "document_number", &issue.document_number);
    if let Some(old) = &issue.supersedes
        && number(&mut c, "supersedes", old)
        && old.trim() == issue.document_number.trim()
    {
        c.push("supersedes", "supersedes", "supersedes_itself", &[]);
    }
    if super::rfc3339_seconds(issue.issued_at).is_none() {
        c.push("issued_at", "issued-at", "issued_at", &[]);
    }
    c.problems
}

fn ephyto(c: &mut Checker, f: &EPhytoForm) {
    party(c, "consignor", &f.consignor);
    party(c, "consignee", &f.consignee);
    authority(c, &f.issuing_authority);
    c.required_text("authorized_officer", &f.authorized_officer);
    c.required_text("place_of_issue", &f.place_of_issue);
    c.country("country_of_origin", &f.country_of_origin, true);
    c.country("country_of_destination", &f.country_of_destination, true);
    place(c, "place_of_loading", &f.place_of_loading, false);
    place(c, "point_of_entry", &f.point_of_entry, true);
    conveyance(c, &f.conveyance);
    if c.list("lines", f.lines.len(), MAX_LINES) {
        for (i, line) in f.lines.iter().enumerate() {
            phyto_line(c, &format!("lines[{i}]"), line);
        }
    }
    if c.list("treatments", f.treatments.len(), MAX_ENTRIES) {
        for (i, t) in f.treatments.iter().enumerate() {
            treatment(c, &format!("treatments[{i}]"), t);
        }
    }
    if c.list(
        "additional_declarations",
        f.additional_declarations.len(),
        MAX_ENTRIES,
    ) {
        for (i, d) in f.additional_declarations.iter().enumerate() {
            c.long_text(&format!("additional_declarations[{i}]"), d, true);
        }
    }
}

fn eco(c: &mut Checker, f: &EcoForm) {
    party(c, "exporter", &f.exporter);
    party(c, "consignee", &f.consignee);
    authority(c, &f.issuing_authority);
    c.text("authorized_officer", &f.authorized_officer, false);
    if c.list("lines", f.lines.len(), MAX_LINES) {
        for (i, line) in f.lines.iter().enumerate() {
            eco_line(c, &format!("lines[{i}]"), line);
        }
    }
    c.code(
        "transport.mode",
        &f.transport.mode,
        List::TransportMode,
        true,
    );
    c.text("transport.loading_place", &f.transport.loading_place, false);
    c.text(
        "transport.discharge_place",
        &f.transport.discharge_place,
        false,
    );
    c.text("trade_agreement", &f.trade_agreement, false);
    c.long_text("remarks", &f.remarks, false);
}

fn party(c: &mut Checker, at: &str, p: &TradeParty) {
    c.required_text(&format!("{at}.name"), &p.name);
    c.long_text(&format!("{at}.address"), &p.address, true);
    c.country(&format!("{at}.country"), &p.country, true);
}

fn authority(c: &mut Checker, a: &Authority) {
    c.required_text("issuing_authority.name", &a.name);
    c.country("issuing_authority.country", &a.country, true);
}

fn place(c: &mut Checker, at: &str, p: &Place, required: bool) {
    c.text(&format!("{at}.name"), &p.name, required);
    let locode = p.locode.trim();
    let field = format!("{at}.locode");
    if c.text(&field, &p.locode, false) && !locode.is_empty() {
        let b = locode.as_bytes();
        let shape = b.len() == 5
            && b[2..]
                .iter()
                .all(|x| x.is_ascii_uppercase() || matches!(x, b'2'..=b'9'));
        let country = locode
            .get(..2)
            .is_some_and(|cc| CountryCode::assigned(cc).is_ok());
        if !(shape && country) {
            c.push(field, "locode", "locode", &[("value", &shown(locode))]);
        }
    }
}

fn conveyance(c: &mut Checker, v: &Conveyance) {
    c.code("conveyance.mode", &v.mode, List::TransportMode, true);
    c.text("conveyance.name", &v.name, false);
}

fn phyto_line(c: &mut Checker, at: &str, l: &PhytoLine) {
    c.required_text(&format!("{at}.description"), &l.description);
    c.hs_code(&format!("{at}.hs_code"), &l.hs_code);
    c.required_text(&format!("{at}.botanical_name"), &l.botanical_name);
    c.quantity(&format!("{at}.quantity"), &l.quantity, true);
    c.code(&format!("{at}.unit"), &l.unit, List::Unit, true);
    let packages = c.quantity(&format!("{at}.packages"), &l.packages, false);
    let typed = c.code(
        &format!("{at}.package_type"),
        &l.package_type,
        List::Package,
        false,
    );
    // One without the other says nothing a receiver can use.
    if packages && typed {
        match (
            l.packages.trim().is_empty(),
            l.package_type.trim().is_empty(),
        ) {
            (false, true) => c.push(
                format!("{at}.package_type"),
                "required",
                "package_type_with_packages",
                &[],
            ),
            (true, false) => c.push(
                format!("{at}.packages"),
                "required",
                "packages_with_package_type",
                &[],
            ),
            _ => {}
        }
    }
}

fn treatment(c: &mut Checker, at: &str, t: &Treatment) {
    c.text(&format!("{at}.kind"), &t.kind, false);
    c.text(&format!("{at}.chemical"), &t.chemical, false);
    let measures = [
        ("duration", &t.duration, &t.duration_unit, true),
        ("temperature", &t.temperature, &t.temperature_unit, false),
        (
            "concentration",
            &t.concentration,
            &t.concentration_unit,
            true,
        ),
    ];
    for (name, value, unit, positive) in measures {
        let field = format!("{at}.{name}");
        let ok = if positive {
            c.quantity(&field, value, false)
        } else {
            c.decimal(&field, value)
        };
        let unit_field = format!("{at}.{name}_unit");
        if c.code(&unit_field, unit, List::Unit, false)
            && ok
            && name == "concentration"
            && !value.trim().is_empty()
            && unit.trim().is_empty()
        {
            c.push(unit_field, "required", "concentration_unit", &[]);
        }
    }
    c.date(&format!("{at}.date"), &t.date);
    let given = [
        &t.kind,
        &t.chemical,
        &t.duration,
        &t.temperature,
        &t.concentration,
        &t.date,
    ];
    if given.iter().all(|v| v.trim().is_empty()) {
        c.push(format!("{at}.kind"), "required", "treatment_empty", &[]);
    }
}

fn eco_line(c: &mut Checker, at: &str, l: &EcoLine) {
    c.required_text(&format!("{at}.description"), &l.description);
    c.hs_code(&format!("{at}.hs_code"), &l.hs_code);
    c.country(&format!("{at}.origin_country"), &l.origin_country, true);
    c.required_text(&format!("{at}.origin_criterion"), &l.origin_criterion);
    c.quantity(&format!("{at}.quantity"), &l.quantity, true);
    c.code(&format!("{at}.unit"), &l.unit, List::Unit, true);
    c.quantity(&format!("{at}.gross_weight_kg"), &l.gross_weight_kg, false);
}

/// A document number: required, one line, at most [`MAX_NUMBER`] characters. Whether it is.
fn number(c: &mut Checker, field: &str, value: &str) -> bool {
    let before = c.problems.len();
    if c.required_text(field, value) && value.trim().chars().count() > MAX_NUMBER {
        c.push(
            field,
            "document-number",
            "document_number",
            &[("max", &MAX_NUMBER.to_string())],
        );
    }
    c.problems.len() == before
}

/// A value quoted in a message: at most 40 characters, control characters escaped.
fn shown(value: &str) -> String {
    let short: String = value.chars().take(40).collect();
    let more = if value.chars().count() > 40 {
        "…"
    } else {
        ""
    };
    format!("{:?}{more}", short)
}

/// Whether `c` may stand in an issued document's text: not a control character (tab and
/// newline only in multi-line fields), not a non-character XML forbids, not a bidirectional
/// embedding, override or isolate that could make printed text read other than it is.
fn allowed(ch: char, multiline: bool) -> bool {
    match ch {
        '\n' | '\t' => multiline,
        '\u{FFFE}' | '\u{FFFF}' => false,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => false,
        c => !c.is_control(),
    }
}

#[derive(Default)]
struct Checker {
    problems: Vec<FieldProblem>,
}

impl Checker {
    fn push(&mut self, field: impl Into<String>, rule: &str, what: &str, params: &[(&str, &str)]) {
        self.problems
            .push(FieldProblem::new(field, rule, what, params));
    }

    /// Text of at most `max` characters with only allowed characters; `required`: not blank.
    /// Whether it passed.
    fn text_of(
        &mut self,
        field: &str,
        value: &str,
        required: bool,
        max: usize,
        multiline: bool,
    ) -> bool {
        let v = value.trim();
        if v.is_empty() {
            if required {
                self.push(field, "required", "required", &[]);
            }
            return !required;
        }
        if v.chars().count() > max {
            self.push(
                field,
                "length",
                "length",
                &[
                    ("max", &max.to_string()),
                    ("found", &v.chars().count().to_string()),
                ],
            );
            return false;
        }
        // Windows line ends are line ends.
        if let Some(bad) = v
            .chars()
            .find(|&ch| !(allowed(ch, multiline) || (multiline && ch == '\r')))
        {
            let what = if multiline {
                "text_multiline"
            } else {
                "text_line"
            };
            let found = format!("U+{:04X}", u32::from(bad));
            self.push(field, "text", what, &[("found", &found)]);
            return false;
        }
        true
    }

    fn text(&mut self, field: &str, value: &str, required: bool) -> bool {
        self.text_of(field, value, required, MAX_TEXT, false)
    }

    fn required_text(&mut self, field: &str, value: &str) -> bool {
        self.text(field, value, true)
    }

    fn long_text(&mut self, field: &str, value: &str, required: bool) -> bool {
        self.text_of(field, value, required, MAX_LONG_TEXT, true)
    }

    /// Between one and `max` entries (`lines` needs one; other lists may be empty).
    fn list(&mut self, field: &str, len: usize, max: usize) -> bool {
        if field == "lines" && len == 0 {
            self.push(field, "lines", "lines", &[]);
            return false;
        }
        if len > max {
            self.push(
                field,
                "list-length",
                "list_length",
                &[("max", &max.to_string()), ("found", &len.to_string())],
            );
            return false;
        }
        true
    }

    fn country(&mut self, field: &str, value: &str, required: bool) -> bool {
        if !self.text(field, value, required) {
            return false;
        }
        let v = value.trim();
        if v.is_empty() {
            return true;
        }
        match CountryCode::assigned(v) {
            Ok(_) => true,
            Err(_) => {
                self.push(
                    field,
                    "country-code",
                    "country_code",
                    &[("value", &shown(v))],
                );
                false
            }
        }
    }

    /// A code of one of the lists the spoke ships.
    fn code(&mut self, field: &str, value: &str, list: List, required: bool) -> bool {
        if !self.text(field, value, required) {
            return false;
        }
        let v = value.trim();
        if v.is_empty() || codes::name(list, v, Lang::default()).is_some() {
            return true;
        }
        let (rule, what) = match list {
            List::Unit => ("unit-code", "unit_code"),
            List::Package => ("package-code", "package_code"),
            List::TransportMode => ("transport-mode", "transport_mode"),
            _ => ("code", "code"),
        };
        self.push(field, rule, what, &[("value", &shown(v))]);
        false
    }

    fn hs_code(&mut self, field: &str, value: &str) -> bool {
        if !self.required_text(field, value) {
            return false;
        }
        let v = value.trim();
        let digits = v.bytes().filter(u8::is_ascii_digit).count();
        let shape = v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && v.starts_with(|c: char| c.is_ascii_digit())
            && !v.ends_with('.')
            && !v.contains("..");
        if !(shape && (4..=10).contains(&digits)) {
            self.push(field, "hs-code", "hs_code", &[("value", &shown(v))]);
            return false;
        }
        // The shape holds; its heading must be one of HS 2022's (the list the spoke ships).
        if codes::hs(v, Lang::default()).is_some() {
            return true;
        }
        let heading: String = v.chars().filter(char::is_ascii_digit).take(4).collect();
        self.push(
            field,
            "hs-heading",
            "hs_heading",
            &[("value", &shown(v)), ("heading", &heading)],
        );
        false
    }

    /// A positive decimal (`12`, `12.5`), at most 15 digits before the point and 6 after.
    fn quantity(&mut self, field: &str, value: &str, required: bool) -> bool {
        if !self.text(field, value, required) {
            return false;
        }
        let v = value.trim();
        if v.is_empty() {
            return true;
        }
        if decimal_shape(v) && v.bytes().any(|b| matches!(b, b'1'..=b'9')) {
            return true;
        }
        self.push(field, "quantity", "quantity", &[("value", &shown(v))]);
        false
    }

    /// A decimal that may be negative (a temperature).
    fn decimal(&mut self, field: &str, value: &str) -> bool {
        if !self.text(field, value, false) {
            return false;
        }
        let v = value.trim();
        if v.is_empty() || decimal_shape(v.strip_prefix('-').unwrap_or(v)) {
            return true;
        }
        self.push(field, "decimal", "decimal", &[("value", &shown(v))]);
        false
    }

    /// A calendar date, YYYY-MM-DD.
    fn date(&mut self, field: &str, value: &str) -> bool {
        if !self.text(field, value, false) {
            return false;
        }
        let v = value.trim();
        if v.is_empty() || is_date(v) {
            return true;
        }
        self.push(field, "date", "date", &[("value", &shown(v))]);
        false
    }
}

/// Digits, with one optional decimal point between digits: 1 to 15 before it, 1 to 6 after.
fn decimal_shape(v: &str) -> bool {
    let (int, frac) = match v.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (v, None),
    };
    let digits = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
    };
    digits(int, 15) && frac.is_none_or(|f| digits(f, 6))
}

/// A real calendar date written YYYY-MM-DD.
fn is_date(v: &str) -> bool {
    let b = v.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = v.get(r)?;
        s.bytes()
            .all(|x| x.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    y >= 1 && (1..=days).contains(&d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_and_dates() {
        for ok in ["1", "12.5", "0.001", "100000000000000"] {
            assert!(decimal_shape(ok), "{ok}");
        }
        for bad in [
            "",
            ".5",
            "5.",
            "1e3",
            "1,5",
            "-1",
            "1.2.3",
            "1234567890123456",
            "1.1234567",
        ] {
            assert!(!decimal_shape(bad), "{bad}");
        }
        for ok in ["2026-11-27", "2024-02-29", "2000-02-29"] {
            assert!(is_date(ok), "{ok}");
        }
        for bad in [
            "2026-13-01",
            "2025-02-29",
            "1900-02-29",
            "2026-1-01",
            "2026/11/27",
            "２０２６-11-27",
            "0000-01-01",
        ] {
            assert!(!is_date(bad), "{bad}");
        }
    }

    #[test]
    fn hs_codes_need_a_heading_of_hs_2022() {
        let mut c = Checker::default();
        for ok in [
            "0808.10",
            "080810",
            "0808.10.80",
            "06022010",
            "5201",
            "9701.21",
        ] {
            assert!(c.hs_code("lines[0].hs_code", ok), "{ok}");
        }
        assert_eq!(c.problems, []);
        // The shape is right, the heading is not HS 2022's: 9999 is UN Comtrade's, 0899 and
        // 7701 (chapter 77 is reserved) are no headings.
        for bad in ["9999.10", "0899.10", "770100", "808100"] {
            assert!(!c.hs_code("lines[1].hs_code", bad), "{bad}");
        }
        let rules: Vec<_> = c.problems.iter().map(|p| (&*p.field, &*p.rule)).collect();
        assert_eq!(rules, [("lines[1].hs_code", "hs-heading"); 4]);
        assert_eq!(
            c.problems[0].message,
            "\"9999.10\" is not an HS 2022 code: its heading 9999 (the first four digits) is not a heading of HS 2022"
        );
        assert_eq!(
            c.problems[3].message,
            "\"808100\" is not an HS 2022 code: its heading 8081 (the first four digits) is not a heading of HS 2022"
        );
        // A wrong shape is only `hs-code`, never also `hs-heading`.
        let mut c = Checker::default();
        assert!(!c.hs_code("lines[0].hs_code", "99.9x"));
        let rules: Vec<_> = c.problems.iter().map(|p| &*p.rule).collect();
        assert_eq!(rules, ["hs-code"]);
    }

    #[test]
    fn characters_xml_cannot_hold_or_that_spoof_print_are_refused() {
        assert!(allowed('a', false) && allowed('ب', false) && allowed('中', false));
        assert!(!allowed('\u{0}', true) && !allowed('\u{1B}', true) && !allowed('\u{85}', true));
        assert!(!allowed('\u{FFFE}', true) && !allowed('\u{202E}', true));
        assert!(allowed('\n', true) && !allowed('\n', false));
    }
}
