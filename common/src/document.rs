//! The kinds of trade document Caravan carries.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// A kind of document. The wire spelling (`e-co`, `e-phyto`, `e-invoice`) is stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DocumentType {
    /// Certificate of origin (OASIS UBL 2.1 CertificateOfOrigin).
    CertificateOfOrigin,
    /// Phytosanitary certificate (UN/CEFACT SPS certificate, as on the IPPC ePhyto Hub).
    Phytosanitary,
    /// Electronic invoice (UBL 2.1 Invoice/CreditNote or UN/CEFACT Cross Industry Invoice).
    Invoice,
}

impl DocumentType {
    pub const ALL: [DocumentType; 3] = [
        Self::CertificateOfOrigin,
        Self::Phytosanitary,
        Self::Invoice,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::CertificateOfOrigin => "e-co",
            Self::Phytosanitary => "e-phyto",
            Self::Invoice => "e-invoice",
        }
    }
}

/// The string names no known document type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown document type {0:?} (expected one of: e-co, e-phyto, e-invoice)")]
pub struct UnknownDocumentType(pub String);

impl FromStr for DocumentType {
    type Err = UnknownDocumentType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownDocumentType(s.to_owned()))
    }
}

impl TryFrom<String> for DocumentType {
    type Error = UnknownDocumentType;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DocumentType> for String {
    fn from(t: DocumentType) -> String {
        t.as_str().to_owned()
    }
}

impl fmt::Display for DocumentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_lists_options_on_error() {
        for t in DocumentType::ALL {
            assert_eq!(t.as_str().parse::<DocumentType>().unwrap(), t);
        }
        let err = "e-cert".parse::<DocumentType>().unwrap_err().to_string();
        assert!(err.contains("e-co, e-phyto, e-invoice"), "{err}");
    }
}
