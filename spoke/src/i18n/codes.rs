//! Code lists decoded for the officers: a code as a document writes it (851, KGM, 2, KZ) to its
//! name in the officer's language, from the lists shipped in `spoke/codes/` with their sources
//! (`spoke/codes/SOURCES.md`): ISO 3166 country names from Unicode CLDR, UN/ECE Rec 19, 20, 21,
//! UN/CEFACT UNTDID 1001 and 1373, and the HS 2022 chapters and headings (English only). A code
//! that is not in its list is never guessed: it is `Decoded::Unknown`, which the console shows
//! as written and marked as not found. An HS code is decoded by its heading (its first four
//! digits) and chapter (first two), whatever its length and dots: "0808.10.80" is heading 0808.
//!
//! The lists are embedded in the binary and parsed once; a list that does not parse is empty
//! (its codes show as unknown), and the tests refuse such a file.

use std::{collections::HashMap, sync::LazyLock};

use serde::Deserialize;

use super::Lang;

/// A code list the console decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum List {
    /// ISO 3166-1 alpha-2, names from CLDR.
    Country,
    /// UN/ECE Recommendation 20, units of measure.
    Unit,
    /// UN/ECE Recommendation 21, package types.
    Package,
    /// UN/CEFACT UNTDID 1001, document names.
    DocumentName,
    /// UN/CEFACT UNTDID 1373, document status.
    DocumentStatus,
    /// UN/ECE Recommendation 19, modes of transport.
    TransportMode,
    /// HS 2022 headings (4 digits), looked up by an HS code's first four digits.
    HsHeading,
    /// HS 2022 chapters (2 digits), looked up by an HS code's first two digits.
    HsChapter,
}

/// One entry of a UN/ECE or UN/CEFACT list: names (and unit symbols) by language tag.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: HashMap<String, String>,
    #[serde(default)]
    symbol: HashMap<String, String>,
}

type Table = HashMap<String, Entry>;

fn table(text: &str) -> Result<Table, toml::de::Error> {
    toml::from_str(text)
}

static UNITS: &str = include_str!("../../codes/unece-rec20-units.toml");
static PACKAGES: &str = include_str!("../../codes/unece-rec21-packages.toml");
static DOCUMENT_NAMES: &str = include_str!("../../codes/uncefact-1001-document-names.toml");
static DOCUMENT_STATUS: &str = include_str!("../../codes/uncefact-1373-document-status.toml");
static TRANSPORT_MODES: &str = include_str!("../../codes/unece-rec19-transport-modes.toml");
/// HS 2022 chapters and headings, one table keyed by their digits ("08", "0808").
static HS: &str = include_str!("../../codes/hs2022-headings.toml");

/// The HS table's chapters (`digits` 2) or headings (4).
fn hs_part(hs: &Table, digits: usize) -> Table {
    hs.iter()
        .filter(|(code, _)| code.len() == digits)
        .map(|(code, e)| {
            let entry = Entry {
                name: e.name.clone(),
                symbol: HashMap::new(),
            };
            (code.clone(), entry)
        })
        .collect()
}

/// The digits of an HS code as written ("0808.10", "080810", "0808 10 80"): digits, with dots
/// or spaces between them and nothing else; `None` for anything else.
fn hs_digits(code: &str) -> Option<String> {
    let code = code.trim();
    let shape = code.starts_with(|c: char| c.is_ascii_digit())
        && code
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b' ');
    shape.then(|| code.chars().filter(char::is_ascii_digit).collect())
}

/// The key an HS code is looked up by in `list`: its first four digits for a heading, two for
/// a chapter; `None` if it is not an HS code or too short.
fn hs_key(list: List, code: &str) -> Option<String> {
    let n = match list {
        List::HsHeading => 4,
        List::HsChapter => 2,
        _ => return None,
    };
    let digits = hs_digits(code)?;
    digits.get(..n).map(str::to_owned)
}

/// CLDR's territory names, by language tag (the files as CLDR publishes them).
static TERRITORIES: &[(&str, &str)] = &[
    ("en", include_str!("../../codes/cldr/territories-en.json")),
    ("ru", include_str!("../../codes/cldr/territories-ru.json")),
    ("zh", include_str!("../../codes/cldr/territories-zh.json")),
];

/// The country names of one CLDR `territories.json`: only ISO 3166-1 alpha-2 codes (two
/// letters), not regions ("001") or alternative forms ("GB-alt-short").
fn territories(tag: &str, json: &str) -> Result<HashMap<String, String>, serde_json::Error> {
    let value: serde_json::Value = serde_json::from_str(json)?;
    let names = value["main"][tag]["localeDisplayNames"]["territories"]
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(code, _)| code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()))
                .filter_map(|(code, name)| Some((code.clone(), name.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    Ok(names)
}

struct Lists {
    tables: HashMap<List, Table>,
    /// Country names: language tag -> code -> name.
    countries: HashMap<&'static str, HashMap<String, String>>,
}

static LISTS: LazyLock<Lists> = LazyLock::new(|| {
    let mut tables: HashMap<List, Table> = [
        (List::Unit, UNITS),
        (List::Package, PACKAGES),
        (List::DocumentName, DOCUMENT_NAMES),
        (List::DocumentStatus, DOCUMENT_STATUS),
        (List::TransportMode, TRANSPORT_MODES),
    ]
    .into_iter()
    .map(|(list, text)| (list, table(text).unwrap_or_default()))
    .collect();
    let hs = table(HS).unwrap_or_default();
    tables.insert(List::HsHeading, hs_part(&hs, 4));
    tables.insert(List::HsChapter, hs_part(&hs, 2));
    Lists {
        tables,
        countries: TERRITORIES
            .iter()
            .map(|(tag, json)| (*tag, territories(tag, json).unwrap_or_default()))
            .collect(),
    }
});

/// A code, decoded or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// In its list: the name in the officer's language (English where the list has none).
    Known { code: &'a str, name: &'static str },
    /// Not in its list: shown as written, marked as not found.
    Unknown { code: &'a str },
}

/// The name of `code` in `list`, in `lang` (English if the list has no name in `lang`). For
/// the HS lists, `code` is any HS code as written ("0808.10"), named by its heading or chapter.
pub fn name(list: List, code: &str, lang: Lang) -> Option<&'static str> {
    let lists = &*LISTS;
    if list == List::Country {
        let code = code.trim().to_ascii_uppercase();
        return [lang.tag(), super::DEFAULT]
            .into_iter()
            .filter_map(|tag| lists.countries.get(tag)?.get(&code))
            .map(String::as_str)
            .next();
    }
    let table = lists.tables.get(&list)?;
    let entry = match hs_key(list, code) {
        Some(key) => table.get(&key)?,
        None if matches!(list, List::HsHeading | List::HsChapter) => return None,
        None => table.get(code.trim())?,
    };
    by_language(&entry.name, lang)
}

/// An HS code's heading and chapter in HS 2022, with their descriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hs {
    /// The heading's four digits ("0808").
    pub heading: &'static str,
    pub heading_name: &'static str,
    /// The chapter's two digits ("08").
    pub chapter: &'static str,
    pub chapter_name: &'static str,
}

/// The HS 2022 heading and chapter of an HS code as written in a document or a form
/// ("0808.10", "080810", "0808.10.80"): its first four and two digits. `None` if it is not
/// digits (with dots or spaces between them) or its heading is not in HS 2022: never guessed.
pub fn hs(code: &str, lang: Lang) -> Option<Hs> {
    let lists = &*LISTS;
    let key = hs_key(List::HsHeading, code)?;
    let (heading, entry) = lists.tables.get(&List::HsHeading)?.get_key_value(&key)?;
    let (chapter, chapter_entry) = lists
        .tables
        .get(&List::HsChapter)?
        .get_key_value(&key[..2])?;
    Some(Hs {
        heading,
        heading_name: by_language(&entry.name, lang)?,
        chapter,
        chapter_name: by_language(&chapter_entry.name, lang)?,
    })
}

fn by_language(names: &'static HashMap<String, String>, lang: Lang) -> Option<&'static str> {
    names
        .get(lang.tag())
        .or_else(|| names.get(super::DEFAULT))
        .map(String::as_str)
}

/// `code` of `list`, decoded for `lang`.
pub fn decode(list: List, code: &str, lang: Lang) -> Decoded<'_> {
    match name(list, code, lang) {
        Some(name) => Decoded::Known { code, name },
        None => Decoded::Unknown { code },
    }
}

/// Every code of `list` with its name in `lang` (English where the list has none), for the
/// pickers of the issuing forms: countries by name in `lang`, the other lists by code.
pub fn all(list: List, lang: Lang) -> Vec<(&'static str, &'static str)> {
    let lists = &*LISTS;
    let mut out: Vec<(&'static str, &'static str)> = if list == List::Country {
        let Some(english) = lists.countries.get(super::DEFAULT) else {
            return Vec::new();
        };
        english
            .keys()
            .filter_map(|code| Some((code.as_str(), name(list, code, lang)?)))
            .collect()
    } else {
        lists
            .tables
            .get(&list)
            .map(|t| {
                t.iter()
                    .filter_map(|(code, e)| Some((code.as_str(), by_language(&e.name, lang)?)))
                    .collect()
            })
            .unwrap_or_default()
    };
    if list == List::Country {
        out.sort_by(|a, b| a.1.cmp(b.1).then(a.0.cmp(b.0)));
    } else {
        out.sort_by(|a, b| {
            let n = |c: &str| c.parse::<u32>().ok();
            n(a.0).cmp(&n(b.0)).then(a.0.cmp(b.0))
        });
    }
    out
}

/// The HS 2022 headings that `query` finds, in code order, at most `limit`: by code when it
/// is digits ("08", "0808", "0808.10": the headings whose four digits start with its first
/// four), else by words (every word of it, in any case, in the heading's description or its
/// chapter's). Empty for an empty query.
pub fn hs_search(query: &str, lang: Lang, limit: usize) -> Vec<(&'static str, &'static str)> {
    let query = query.trim();
    let digits: String = query.chars().filter(char::is_ascii_digit).collect();
    let numeric = !digits.is_empty()
        && query
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == ' ');
    let words: Vec<String> = query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    if !numeric && words.is_empty() {
        return Vec::new();
    }
    let prefix = &digits[..digits.len().min(4)];
    all(List::HsHeading, lang)
        .into_iter()
        .filter(|(code, heading)| {
            if numeric {
                return code.starts_with(prefix);
            }
            let chapter = name(List::HsChapter, code, lang).unwrap_or_default();
            let text = format!("{heading} {chapter}").to_lowercase();
            words.iter().all(|w| text.contains(w.as_str()))
        })
        .take(limit)
        .collect()
}

/// The symbol of a Rec 20 unit in `lang` ("kg", "кг"), for units that have one.
pub fn unit_symbol(code: &str, lang: Lang) -> Option<&'static str> {
    let entry = LISTS.tables.get(&List::Unit)?.get(code.trim())?;
    by_language(&entry.symbol, lang)
}

/// A number as written in a document ("65195", "2.5000"), its whole part grouped by thousands
/// with the language's separator; anything that is not a plain decimal number is returned as
/// written.
pub fn number(value: &str, lang: Lang) -> String {
    let value = value.trim();
    let (sign, digits) = match value.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", value),
    };
    let (whole, fraction) = match digits.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (digits, None),
    };
    let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !plain(whole) || fraction.is_some_and(|f| !plain(f)) {
        return value.to_owned();
    }
    let group = lang.t("number.group");
    let mut out = String::from(sign);
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            out.push_str(group);
        }
        out.push(c);
    }
    if let Some(f) = fraction {
        out.push_str(lang.t("number.decimal"));
        out.push_str(f);
    }
    out
}

/// How a quantity with a Rec 20 unit reads: the number grouped, then the unit's symbol
/// ("65 195 кг"), or, for a unit without one, its code and name ("300 XBG (bag)"); an unknown
/// unit is kept as written and said to be unknown.
pub fn quantity(value: &str, unit: Option<&str>, lang: Lang) -> String {
    let number = number(value, lang);
    let Some(unit) = unit.map(str::trim).filter(|u| !u.is_empty()) else {
        return number;
    };
    if let Some(symbol) = unit_symbol(unit, lang) {
        return format!("{number} {symbol}");
    }
    match decode(List::Unit, unit, lang) {
        Decoded::Known { name, .. } => format!("{number} {unit} ({name})"),
        Decoded::Unknown { .. } => format!("{number} {unit} ({})", lang.t("code.unknown_unit")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lang(tag: &str) -> Lang {
        Lang::from_tag(tag).unwrap()
    }

    #[test]
    fn every_shipped_list_parses_and_names_english() {
        for (file, text) in [
            ("rec20", UNITS),
            ("rec21", PACKAGES),
            ("1001", DOCUMENT_NAMES),
            ("1373", DOCUMENT_STATUS),
            ("rec19", TRANSPORT_MODES),
        ] {
            let t = table(text).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(!t.is_empty(), "{file}");
            for (code, entry) in &t {
                for tag in ["en", "ru", "zh"] {
                    assert!(entry.name.contains_key(tag), "{file} {code}: no {tag} name");
                }
                assert!(
                    entry.symbol.is_empty() || entry.symbol.len() == entry.name.len(),
                    "{file} {code}: a symbol in some languages only"
                );
            }
        }
        for (tag, json) in TERRITORIES {
            let names = territories(tag, json).unwrap();
            assert!(names.len() > 240, "{tag}: {}", names.len());
            assert!(!names.contains_key("001") && !names.contains_key("GB-alt-short"));
        }
    }

    #[test]
    fn codes_are_decoded_in_the_officers_language() {
        let (en, ru, zh) = (Lang::default(), lang("ru"), lang("zh"));
        assert_eq!(
            name(List::DocumentName, "851", en),
            Some("Phytosanitary certificate")
        );
        assert_eq!(
            name(List::DocumentName, "851", ru),
            Some("Фитосанитарный сертификат")
        );
        assert_eq!(name(List::DocumentName, "851", zh), Some("植物检疫证书"));
        assert_eq!(name(List::DocumentName, "861", zh), Some("原产地证书"));
        assert_eq!(
            name(List::DocumentName, "380", en),
            Some("Commercial invoice")
        );
        assert_eq!(
            name(List::TransportMode, "2", ru),
            Some("Железнодорожный транспорт")
        );
        assert_eq!(name(List::TransportMode, "4", zh), Some("航空运输"));
        assert_eq!(
            name(List::DocumentStatus, "41", en),
            Some("Validity revoked")
        );
        assert_eq!(name(List::Package, "BG", ru), Some("Мешок"));
        // Countries from CLDR, whatever the case the document wrote them in.
        assert_eq!(name(List::Country, "KZ", ru), Some("Казахстан"));
        assert_eq!(name(List::Country, "kz", zh), Some("哈萨克斯坦"));
        assert_eq!(name(List::Country, "CN", en), Some("China"));
        assert_eq!(name(List::Country, "AR", ru), Some("Аргентина"));
    }

    #[test]
    fn unknown_codes_are_never_guessed() {
        let en = Lang::default();
        assert_eq!(
            decode(List::DocumentStatus, "70", en),
            Decoded::Unknown { code: "70" }
        );
        assert_eq!(
            decode(List::DocumentName, "999999", en),
            Decoded::Unknown { code: "999999" }
        );
        assert_eq!(
            decode(List::Country, "XX", en),
            Decoded::Unknown { code: "XX" }
        );
        // Regions and alternative forms of CLDR are not countries.
        assert_eq!(
            decode(List::Country, "001", en),
            Decoded::Unknown { code: "001" }
        );
        assert_eq!(
            decode(List::TransportMode, "2", en),
            Decoded::Known {
                code: "2",
                name: "Rail transport"
            }
        );
    }

    #[test]
    fn hs_2022_chapters_and_headings_are_shipped_whole() {
        let hs = table(HS).expect("hs2022-headings.toml parses");
        let headings = hs_part(&hs, 4);
        let chapters = hs_part(&hs, 2);
        // HS 2022: 96 chapters (77 is reserved), 1228 headings; UN Comtrade's 99/9999 is not
        // among them.
        assert_eq!((chapters.len(), headings.len()), (96, 1228));
        assert_eq!(hs.len(), 96 + 1228, "a key of neither 2 nor 4 digits");
        assert!(!chapters.contains_key("77") && !chapters.contains_key("99"));
        assert!(!headings.contains_key("9999"));
        for (code, entry) in &hs {
            assert!(code.bytes().all(|b| b.is_ascii_digit()), "{code}");
            assert!(
                code.len() == 2 || chapters.contains_key(&code[..2]),
                "{code}: no chapter"
            );
            let en = &entry.name["en"];
            assert_eq!(entry.name.len(), 1, "{code}: English only");
            assert!(
                !en.is_empty() && *en == en.split_whitespace().collect::<Vec<_>>().join(" "),
                "{code}: {en:?} not normalised"
            );
        }
        let en = Lang::default();
        assert_eq!(all(List::HsHeading, en).len(), 1228);
        assert_eq!(all(List::HsChapter, en).len(), 96);
        // In code order, English in every language.
        assert_eq!(
            all(List::HsHeading, lang("zh"))[..2],
            [
                ("0101", "Horses, asses, mules and hinnies; live"),
                ("0102", "Bovine animals; live")
            ]
        );
        assert_eq!(all(List::HsChapter, en).last().map(|c| c.0), Some("97"));
    }

    #[test]
    fn hs_headings_are_found_by_code_or_by_words() {
        let en = Lang::default();
        let codes = |q: &str, limit| -> Vec<&str> {
            hs_search(q, en, limit)
                .into_iter()
                .map(|(c, _)| c)
                .collect()
        };
        assert_eq!(codes("0808.10", 50), ["0808"]);
        assert_eq!(codes("0808", 50), ["0808"]);
        let chapter = codes("08", 50);
        assert_eq!(chapter.first(), Some(&"0801"));
        assert!(chapter.iter().all(|c| c.starts_with("08")) && chapter.len() > 10);
        // Words, in any case and order, in the heading's description or its chapter's.
        assert!(codes("APPLES fresh", 50).contains(&"0808"));
        assert!(
            codes("cotton", 50).contains(&"5201"),
            "{:?}",
            codes("cotton", 50)
        );
        assert_eq!(codes("fresh", 3).len(), 3, "bounded");
        for nothing in ["", "  ", "-", "zzzzqq", "9999"] {
            assert!(codes(nothing, 50).is_empty(), "{nothing:?}");
        }
    }

    #[test]
    fn hs_codes_are_decoded_by_their_heading_and_chapter() {
        let apples = Hs {
            heading: "0808",
            heading_name: "Apples, pears and quinces; fresh",
            chapter: "08",
            chapter_name: "Fruit and nuts, edible; peel of citrus fruit or melons",
        };
        for written in [
            "0808.10",
            "080810",
            "0808.10.80",
            " 0808 10 ",
            "0808",
            "08.08.10",
        ] {
            for tag in ["en", "ru", "zh"] {
                assert_eq!(hs(written, lang(tag)), Some(apples), "{written} {tag}");
            }
        }
        let en = Lang::default();
        assert_eq!(
            decode(List::HsHeading, "0808.10", en),
            Decoded::Known {
                code: "0808.10",
                name: "Apples, pears and quinces; fresh"
            }
        );
        assert_eq!(
            name(List::HsHeading, "110100", en),
            Some("Wheat or meslin flour")
        );
        assert_eq!(
            name(List::HsChapter, "52", lang("ru")),
            Some("Cotton"),
            "English where the list has no Russian"
        );
        assert_eq!(
            hs("06029048", en).map(|h| h.heading_name),
            Some(
                "Plants, live; n.e.c. in heading no. 0601, (including their roots) cuttings and slips; mushroom spawn"
            )
        );
        // Unknown headings, and what is not an HS code, are never guessed.
        for written in [
            "9999",
            "9999.10",
            "0899.10",
            "7701",
            "808.10",
            "08",
            "HS 0808",
            "0808-10",
            "",
            "０８０８",
        ] {
            assert_eq!(hs(written, en), None, "{written}");
            assert_eq!(
                decode(List::HsHeading, written, en),
                Decoded::Unknown { code: written }
            );
        }
        assert_eq!(name(List::HsChapter, "08", en), apples.chapter_name.into());
        assert_eq!(name(List::HsChapter, "99", en), None);
    }

    #[test]
    fn quantities_read_with_their_units() {
        let (en, ru, zh) = (Lang::default(), lang("ru"), lang("zh"));
        assert_eq!(quantity("65195", Some("KGM"), en), "65,195 kg");
        assert_eq!(quantity("65195", Some("KGM"), ru), "65\u{a0}195 кг");
        assert_eq!(quantity("65195", Some("KGM"), zh), "65,195 千克");
        assert_eq!(quantity("2.5", Some("KX"), ru), "2,5 мл/кг");
        assert_eq!(quantity("1000", Some("XBG"), en), "1,000 XBG (bag)");
        assert_eq!(quantity("300", Some("XBG"), zh), "300 XBG (袋)");
        assert_eq!(quantity("50", Some("MTQ"), en), "50 m³");
        assert_eq!(quantity("1234567.125", None, en), "1,234,567.125");
        assert_eq!(quantity("-1500", Some("TNE"), en), "-1,500 t");
        // An unknown unit stays as written, said to be unknown; odd numbers stay as written.
        assert_eq!(
            quantity("7", Some("QQQ"), en),
            "7 QQQ (unit not in the code list)"
        );
        assert_eq!(quantity("1e5", Some("KGM"), en), "1e5 kg");
        assert_eq!(quantity(" 12 ", Some(" "), en), "12");
    }
}
