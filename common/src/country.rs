//! Countries as ISO 3166-1 alpha-2 codes: the country a participant of the network stands
//! for, which content checks compare with the countries a document names.
//!
//! A code has two letters A-Z ([`CountryCode`]); whether ISO assigned it is a separate question
//! ([`CountryCode::assigned`]): the hub records only assigned codes, while a verifier takes a
//! well-formed code from a signed trust list as it is, so that a code ISO adds later never
//! makes an older spoke refuse the whole list.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// The officially assigned ISO 3166-1 alpha-2 codes (249), sorted. Source: the ISO 3166
/// Maintenance Agency's list as shipped by Debian's `iso-codes` 4.15.0
/// (`/usr/share/iso-codes/json/iso_3166-1.json`). User-assigned codes (AA, QM-QZ, XA-XZ, ZZ,
/// e.g. XK) and exceptionally reserved ones (EU, UK, ...) are not in it.
const ASSIGNED: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// A two-letter country code, `KZ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CountryCode([u8; 2]);

/// Why a text is not a country code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CountryError {
    /// Not two capital letters A-Z.
    #[error("country {0:?} is not an ISO 3166-1 alpha-2 code: two capital letters A-Z, e.g. KZ")]
    Malformed(String),
    /// Two letters, but not a code ISO 3166-1 assigned to a country.
    #[error(
        "country {0} is not an officially assigned ISO 3166-1 alpha-2 code (user-assigned and reserved codes such as XK or EU are not countries here)"
    )]
    Unassigned(CountryCode),
}

impl CountryCode {
    pub fn as_str(&self) -> &str {
        // Only ever built from two ASCII capital letters, so this cannot fail.
        std::str::from_utf8(&self.0).expect("country code is ASCII")
    }

    /// Whether ISO 3166-1 assigned the code to a country.
    pub fn is_assigned(&self) -> bool {
        ASSIGNED.binary_search(&self.as_str()).is_ok()
    }

    /// `text` as a code ISO 3166-1 assigned, or why it is not one.
    pub fn assigned(text: &str) -> Result<Self, CountryError> {
        let code: Self = text.parse()?;
        if code.is_assigned() {
            Ok(code)
        } else {
            Err(CountryError::Unassigned(code))
        }
    }
}

impl FromStr for CountryCode {
    type Err = CountryError;
    /// Two capital letters A-Z; assigned or not (see [`CountryCode::assigned`]).
    fn from_str(s: &str) -> Result<Self, CountryError> {
        match s.as_bytes() {
            [a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => Ok(Self([*a, *b])),
            _ => Err(CountryError::Malformed(crate::trust::shortened(s))),
        }
    }
}

impl TryFrom<String> for CountryCode {
    type Error = CountryError;
    fn try_from(s: String) -> Result<Self, CountryError> {
        s.parse()
    }
}

impl From<CountryCode> for String {
    fn from(code: CountryCode) -> String {
        code.as_str().to_owned()
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_sorted_unique_and_well_formed() {
        assert!(
            ASSIGNED.windows(2).all(|w| w[0] < w[1]),
            "sorted, no duplicates"
        );
        for code in ASSIGNED {
            assert!(code.parse::<CountryCode>().is_ok(), "{code}");
        }
    }

    #[test]
    fn only_assigned_codes_are_countries() {
        for code in [
            "KZ", "CN", "UZ", "MN", "AF", "AR", "EC", "GB", "SE", "AD", "ZW",
        ] {
            assert_eq!(CountryCode::assigned(code).unwrap().as_str(), code);
        }
        for code in ["XK", "EU", "UK", "AA", "ZZ", "QM"] {
            assert_eq!(
                CountryCode::assigned(code),
                Err(CountryError::Unassigned(code.parse().unwrap())),
                "{code}"
            );
        }
        for text in ["kz", "K", "KAZ", "", "K1", "ÄZ", " KZ"] {
            assert!(
                matches!(CountryCode::assigned(text), Err(CountryError::Malformed(_))),
                "{text:?}"
            );
        }
        let text = CountryCode::assigned("XK").unwrap_err().to_string();
        assert!(
            text.contains("not an officially assigned ISO 3166-1 alpha-2 code"),
            "{text}"
        );
    }
}
