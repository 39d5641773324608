//! What the officers' console says, in the officer's language: message catalogues, the choice
//! of language, times in the spoke's time zone (`clock`) and code lists decoded (`codes`).
//!
//! A catalogue is one TOML file per language in `spoke/locales/`, named by its language tag
//! (`en.toml`, `ru.toml`, `zh.toml`): a `language` key (the language's own name, for the switch
//! on the login page) and tables of messages, addressed by their dotted path
//! (`check.signature`). `{name}` in a message is a placeholder filled by the console. `build.rs`
//! embeds every file of the folder, so adding Kazakh is adding `kk.toml`; the tests refuse a
//! catalogue that lacks a key English has, has a key English lacks, or changes a message's
//! placeholders, so a half-translated language cannot ship.
//!
//! Why a small catalogue over TOML rather than Fluent (`fluent-bundle`): the console's texts
//! are whole sentences with named values and no plural or gender agreement that depends on a
//! number (counts are shown as "Documents: 7"), so Fluent's selectors would be unused, while
//! TOML is already a dependency, is what operators edit for the config, and lets a translator
//! see every message of a page in one table. Should plural rules be needed, the catalogue's
//! keys and placeholders map one to one onto Fluent messages.

pub mod clock;
pub mod codes;

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    sync::LazyLock,
};

include!(concat!(env!("OUT_DIR"), "/locales.rs"));

/// The language every other catalogue is checked against, and the fallback.
pub const DEFAULT: &str = "en";

/// One language's messages, flattened to dotted keys.
#[derive(Debug)]
struct Catalogue {
    tag: &'static str,
    /// The language's own name ("Русский").
    name: String,
    messages: HashMap<String, String>,
}

/// Why an embedded catalogue cannot be used (caught by the tests, never at an officer's page).
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("locales/{tag}.toml: {source}")]
    Toml {
        tag: &'static str,
        source: toml::de::Error,
    },
    #[error("locales/{tag}.toml: {key}: a message must be a string")]
    NotText { tag: &'static str, key: String },
    #[error("locales/{tag}.toml: the `language` key (the language's own name) is missing")]
    NoName { tag: &'static str },
}

fn flatten(
    tag: &'static str,
    prefix: &str,
    table: &toml::Table,
    out: &mut HashMap<String, String>,
) -> Result<(), CatalogueError> {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::String(text) => {
                out.insert(path, text.clone());
            }
            toml::Value::Table(inner) => flatten(tag, &path, inner, out)?,
            _ => return Err(CatalogueError::NotText { tag, key: path }),
        }
    }
    Ok(())
}

fn parse(tag: &'static str, text: &str) -> Result<Catalogue, CatalogueError> {
    let table: toml::Table =
        toml::from_str(text).map_err(|source| CatalogueError::Toml { tag, source })?;
    let mut messages = HashMap::new();
    flatten(tag, "", &table, &mut messages)?;
    let name = messages
        .remove("language")
        .ok_or(CatalogueError::NoName { tag })?;
    Ok(Catalogue {
        tag,
        name,
        messages,
    })
}

/// Every embedded catalogue that parses, English first (the tests require all of them).
static CATALOGUES: LazyLock<Vec<Catalogue>> = LazyLock::new(|| {
    let mut all: Vec<Catalogue> = LOCALES
        .iter()
        .filter_map(|(tag, text)| parse(tag, text).ok())
        .collect();
    all.sort_by_key(|c| (c.tag != DEFAULT, c.tag));
    all
});

/// A language the console speaks: an index into the embedded catalogues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lang(usize);

impl Default for Lang {
    /// English.
    fn default() -> Self {
        Self(0)
    }
}

impl Lang {
    /// The language of tag `tag` ("ru", "zh"), if the console has its catalogue.
    pub fn from_tag(tag: &str) -> Option<Self> {
        CATALOGUES
            .iter()
            .position(|c| c.tag.eq_ignore_ascii_case(tag))
            .map(Self)
    }

    /// Every language the console speaks, English first.
    pub fn all() -> impl Iterator<Item = Self> {
        (0..CATALOGUES.len()).map(Self)
    }

    /// Every language tag the console speaks (for the config's check).
    pub fn tags() -> Vec<&'static str> {
        CATALOGUES.iter().map(|c| c.tag).collect()
    }

    fn catalogue(self) -> Option<&'static Catalogue> {
        CATALOGUES.get(self.0)
    }

    /// The language tag, for `<html lang>` and the code lists.
    pub fn tag(self) -> &'static str {
        self.catalogue().map(|c| c.tag).unwrap_or(DEFAULT)
    }

    /// The language's own name.
    pub fn name(self) -> &'static str {
        self.catalogue().map(|c| c.name.as_str()).unwrap_or(DEFAULT)
    }

    /// The message `key` in this language (English if this language lacks it, which the tests
    /// rule out; the key itself if English lacks it too).
    pub fn t(self, key: &'static str) -> &'static str {
        self.lookup(key).unwrap_or(key)
    }

    /// The message `key` if this language or English has it (for keys made at run time, such
    /// as a field's label).
    pub fn lookup(self, key: &str) -> Option<&'static str> {
        [self.0, 0]
            .into_iter()
            .filter_map(|i| CATALOGUES.get(i)?.messages.get(key))
            .map(String::as_str)
            .next()
    }

    /// The message `key` with each `{name}` of `args` filled in ([`fill`]).
    pub fn f(self, key: &'static str, args: &[(&str, &dyn fmt::Display)]) -> String {
        fill(self.t(key), args)
    }

    /// A message whose key and parameters were made at run time (a content check's
    /// `message_key` and `params`), in this language; the key itself if no catalogue has it.
    pub fn message(self, key: &str, params: &BTreeMap<String, String>) -> String {
        let args: Vec<(&str, &dyn fmt::Display)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v as &dyn fmt::Display))
            .collect();
        fill(self.lookup(key).unwrap_or(key), &args)
    }
}

/// `template` with each `{name}` of `args` filled in, in one pass: a value that itself
/// contains `{name}` (a document number, say) is never filled in again.
fn fill(template: &str, args: &[(&str, &dyn fmt::Display)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after
            .find('}')
            .and_then(|close| Some((args.iter().find(|(n, _)| *n == &after[..close])?, close)));
        match value {
            Some(((_, value), close)) => {
                out.push_str(&value.to_string());
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Longest `Accept-Language` header read, and most entries weighed: the header comes from
/// anyone who opens the login page.
const ACCEPT_LANGUAGE_MAX: usize = 1024;
const ACCEPT_LANGUAGE_ENTRIES: usize = 32;

/// The language to show a browser that is not logged in, from its `Accept-Language` header
/// (RFC 9110 §12.5.4): the highest quality value first (ties in the header's order), a tag
/// matched whole ("zh-cn" is not a catalogue) or by its primary subtag ("zh-CN" → "zh"); a
/// quality of 0 means "not this one"; `*` or nothing the console speaks: English.
pub fn negotiate(accept_language: Option<&str>) -> Lang {
    let Some(header) = accept_language.filter(|h| h.len() <= ACCEPT_LANGUAGE_MAX) else {
        return Lang::default();
    };
    let mut ranges: Vec<(&str, u16)> = header
        .split(',')
        .take(ACCEPT_LANGUAGE_ENTRIES)
        .filter_map(|part| {
            let mut pieces = part.split(';');
            let tag = pieces.next()?.trim();
            let mut quality = 1000;
            for param in pieces {
                let (k, v) = param.split_once('=')?;
                if k.trim().eq_ignore_ascii_case("q") {
                    quality = parse_quality(v.trim())?;
                }
            }
            (!tag.is_empty() && quality > 0).then_some((tag, quality))
        })
        .collect();
    // A stable sort keeps the header's order among equal qualities.
    ranges.sort_by_key(|r| std::cmp::Reverse(r.1));
    ranges
        .into_iter()
        .find_map(|(tag, _)| {
            if tag == "*" {
                return Some(Lang::default());
            }
            Lang::from_tag(tag).or_else(|| Lang::from_tag(tag.split('-').next()?))
        })
        .unwrap_or_default()
}

/// A quality value ("1", "0.8", "0.125") in thousandths; `None` if it is not one.
fn parse_quality(v: &str) -> Option<u16> {
    let (whole, fraction) = v.split_once('.').unwrap_or((v, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{fraction:0<3}").parse::<u16>().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn placeholders(text: &str) -> BTreeSet<&str> {
        text.split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
            .collect()
    }

    #[test]
    fn every_catalogue_parses_and_english_comes_first() {
        for (tag, text) in LOCALES {
            parse(tag, text).unwrap();
        }
        assert_eq!(CATALOGUES.len(), LOCALES.len());
        assert_eq!(Lang::default().tag(), "en");
        for tag in ["en", "ru", "zh"] {
            assert!(Lang::from_tag(tag).is_some(), "{tag} is missing");
        }
    }

    /// A language ships complete: every key English has, no other, the same placeholders, and
    /// no message left empty.
    #[test]
    fn every_catalogue_has_exactly_the_english_keys_and_placeholders() {
        let english = &CATALOGUES[0];
        for c in CATALOGUES.iter().skip(1) {
            let missing: Vec<_> = english
                .messages
                .keys()
                .filter(|k| !c.messages.contains_key(*k))
                .collect();
            assert!(
                missing.is_empty(),
                "locales/{}.toml lacks {missing:?}",
                c.tag
            );
            let unknown: Vec<_> = c
                .messages
                .keys()
                .filter(|k| !english.messages.contains_key(*k))
                .collect();
            assert!(
                unknown.is_empty(),
                "locales/{}.toml has keys English lacks: {unknown:?}",
                c.tag
            );
            for (key, text) in &c.messages {
                assert!(!text.is_empty(), "locales/{}.toml: {key} is empty", c.tag);
                assert_eq!(
                    placeholders(text),
                    placeholders(&english.messages[key]),
                    "locales/{}.toml: {key} changes the placeholders",
                    c.tag
                );
            }
        }
    }

    #[test]
    fn a_broken_catalogue_is_refused_with_its_reason() {
        assert!(matches!(
            parse("xx", "language = \"X\"\n[page]\ntitle = 3\n"),
            Err(CatalogueError::NotText { key, .. }) if key == "page.title"
        ));
        assert!(matches!(
            parse("xx", "[page]\ntitle = \"T\"\n"),
            Err(CatalogueError::NoName { .. })
        ));
        assert!(matches!(
            parse("xx", "title = "),
            Err(CatalogueError::Toml { .. })
        ));
    }

    #[test]
    fn messages_are_filled_and_fall_back_to_english() {
        let ru = Lang::from_tag("ru").unwrap();
        assert_eq!(ru.name(), "Русский");
        assert_ne!(ru.t("page.console"), Lang::default().t("page.console"));
        assert_eq!(
            Lang::default().f("inbox.count", &[("count", &7)]),
            "Documents in the inbox: 7"
        );
        assert_eq!(Lang::default().t("no.such.key"), "no.such.key");
        // One pass: a value that looks like a placeholder stays as it is.
        assert_eq!(
            Lang::default().f("detail.replaces", &[("message", &"{message}")]),
            "This document replaces message {message}."
        );
        assert_eq!(
            Lang::default().f("detail.note", &[("code", &"A"), ("message", &"{code} b")]),
            "A: {code} b"
        );
    }

    #[test]
    fn accept_language_is_weighed() {
        let tag = |h: &str| negotiate(Some(h)).tag();
        assert_eq!(negotiate(None).tag(), "en");
        assert_eq!(tag("ru-RU,ru;q=0.9,en-US;q=0.8,en;q=0.7"), "ru");
        assert_eq!(tag("zh-CN,zh;q=0.9"), "zh");
        // The highest quality wins, wherever it stands.
        assert_eq!(tag("en;q=0.5, zh;q=0.8, ru;q=0.7"), "zh");
        // q=0 means "not this one"; unknown languages are passed over.
        assert_eq!(tag("ru;q=0, de, zh;q=0.1"), "zh");
        assert_eq!(tag("kk-KZ, ru;q=0.5"), "ru");
        assert_eq!(tag("de-DE, fr"), "en");
        assert_eq!(tag("*"), "en");
        // Malformed weights drop their entry, not the header.
        assert_eq!(tag("ru;q=2, zh;q=abc, zh;q=0.0001, en;q=0.3"), "en");
        assert_eq!(tag("ru;q=1.0"), "ru");
        assert_eq!(tag(""), "en");
        assert_eq!(tag(&"x,".repeat(2000)), "en");
    }
}
