//! Stable reasons for refusing a document, an acknowledgement or a request.
//!
//! The same codes are used by the hub (in gRPC errors), by spokes (in rejections they sign and
//! in the verification results they store) and in metrics. Their spelling is part of the
//! protocol: scripts and other countries' systems match on it, so codes are only ever added.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

macro_rules! refusal_codes {
    ($( $(#[$doc:meta])* $variant:ident = $text:literal, )*) => {
        /// Why something was refused. See the variant docs for the rule each one names.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(into = "&'static str", try_from = "String")]
        pub enum RefusalCode {
            $( $(#[$doc])* $variant, )*
        }

        impl RefusalCode {
            pub const ALL: &'static [RefusalCode] = &[$(Self::$variant),*];

            /// The stable wire spelling, e.g. `BAD_SIGNATURE`.
            pub fn as_str(&self) -> &'static str {
                match self { $( Self::$variant => $text, )* }
            }
        }
    };
}

refusal_codes! {
    /// The caller presented no client certificate, or one without a Caravan identity.
    NoClientIdentity = "NO_CLIENT_IDENTITY",
    /// The caller's certificate names a participant the hub does not know.
    UnknownParticipant = "UNKNOWN_PARTICIPANT",
    /// The caller's role (participant or operator) may not use this service.
    WrongRole = "WRONG_ROLE",
    /// The header's sender, or the signing key's owner, is not the participant in the caller's
    /// certificate.
    SenderMismatch = "SENDER_MISMATCH",
    /// No registered key has the key id that signed the document.
    UnknownKey = "UNKNOWN_KEY",
    /// The signing key was revoked before the document was accepted.
    KeyRevoked = "KEY_REVOKED",
    /// The signing key's validity ended before the document was accepted.
    KeyExpired = "KEY_EXPIRED",
    /// The signing key's validity had not begun when the document was accepted.
    KeyNotYetValid = "KEY_NOT_YET_VALID",
    /// The signing key is not allowed to sign this type of document.
    DocumentTypeNotAllowed = "DOCUMENT_TYPE_NOT_ALLOWED",
    /// The signature does not verify over the signed bytes with the named key.
    BadSignature = "BAD_SIGNATURE",
    /// The signed header bytes are not a decodable header.
    MalformedHeader = "MALFORMED_HEADER",
    /// A header field breaks its rule (bad id, unknown document type, key id disagreeing with
    /// the signature's, missing document number ...).
    InvalidHeader = "INVALID_HEADER",
    /// The payload's SHA-256 differs from the one in the signed header.
    PayloadHashMismatch = "PAYLOAD_HASH_MISMATCH",
    /// The payload's length differs from the one in the signed header.
    PayloadLengthMismatch = "PAYLOAD_LENGTH_MISMATCH",
    /// The payload is larger than the configured limit.
    PayloadTooLarge = "PAYLOAD_TOO_LARGE",
    /// The recipient is not a known participant.
    UnknownRecipient = "UNKNOWN_RECIPIENT",
    /// The document was delivered to a participant other than its recipient.
    WrongRecipient = "WRONG_RECIPIENT",
    /// The message id was already used by this sender for a different header.
    DuplicateMessageId = "DUPLICATE_MESSAGE_ID",
    /// No message with this id exists for the caller.
    UnknownMessage = "UNKNOWN_MESSAGE",
    /// The hub receipt does not verify, or does not match the document it came with.
    BadReceipt = "BAD_RECEIPT",
    /// The acknowledgement does not match the message it acknowledges.
    InvalidAck = "INVALID_ACK",
    /// The request is malformed (a required field is missing).
    MalformedRequest = "MALFORMED_REQUEST",
    /// The document's content is not what its header declares (not well-formed, another type).
    InvalidDocument = "INVALID_DOCUMENT",
    /// No open or pilot corridor lets this sender send this document type to this recipient.
    CorridorClosed = "CORRIDOR_CLOSED",
    /// The participant (caller or recipient) is suspended.
    ParticipantSuspended = "PARTICIPANT_SUSPENDED",
    /// The caller's TLS client certificate was revoked.
    CertificateRevoked = "CERTIFICATE_REVOKED",
    /// The participant or key named in an administrative request is not registered.
    NotRegistered = "NOT_REGISTERED",
    /// The participant or key is registered already.
    AlreadyRegistered = "ALREADY_REGISTERED",
    /// A trust list's signature does not verify with the pinned anchor key, or it is malformed.
    InvalidTrustList = "INVALID_TRUST_LIST",
    /// A trust list is older than the one already held.
    TrustListRollback = "TRUST_LIST_ROLLBACK",
    /// A signed tree head or an inclusion proof of the hub's exchange log does not verify, or
    /// the entry it proves is not the event it came with.
    BadLogProof = "BAD_LOG_PROOF",
    /// The hub's exchange log is not an extension of a tree head seen before: history was
    /// rewritten, or the hub shows different logs to different participants.
    LogInconsistent = "LOG_INCONSISTENT",
    /// The header's `created_at` is later than the hub's clock plus the clock skew it allows
    /// (`created_at_skew_secs`): the sender's clock runs ahead, or the time was made up.
    CreatedAtFuture = "CREATED_AT_FUTURE",
    /// The header's `created_at` is further in the past than its document type's message
    /// lifetime (`message_ttl_secs`): the hub would only hold it to let it expire.
    CreatedAtExpired = "CREATED_AT_EXPIRED",
    /// Admin: a conformance report is not one the hub can record (not JSON of the report
    /// format, another format version, no cases, no document types, or a verdict its cases
    /// contradict).
    InvalidConformanceReport = "INVALID_CONFORMANCE_REPORT",
    /// Admin: a promotion, or a pilot or open corridor, needs a recorded conformance report
    /// that passed (for a corridor: one covering its document type), and there is none; an
    /// operator may override with a reason, which the exchange log keeps.
    ConformanceRequired = "CONFORMANCE_REQUIRED",
    /// Admin: a corridor's end is at too early an onboarding stage (a pilot corridor needs
    /// both at pilot or production, an open one both at production), or a participant is
    /// added at pilot or production without an override reason.
    StageTooLow = "STAGE_TOO_LOW",
    /// Admin: a participant cannot be moved back to a stage while corridors above it (open,
    /// or pilot for testing) join it: close them first.
    CorridorsAboveStage = "CORRIDORS_ABOVE_STAGE",
    /// Admin: a Readiness Scorecard entry breaks a rule of the framework (a country or KPI it
    /// does not have, a score outside 1 to 5, an assessment of a measured KPI or an override
    /// of an assessed one, no evidence or reason, no assessor, a date that is not a past day).
    InvalidScorecardEntry = "INVALID_SCORECARD_ENTRY",
    /// Admin: the scorecard round is closed: its entries stand as they are; record into a new
    /// round.
    RoundClosed = "ROUND_CLOSED",
}

impl From<RefusalCode> for &'static str {
    fn from(code: RefusalCode) -> &'static str {
        code.as_str()
    }
}

impl FromStr for RefusalCode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| s.to_owned())
    }
}

impl TryFrom<String> for RefusalCode {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a recipient rejected a document in its acknowledgement: one of Caravan's own
/// [`RefusalCode`]s (the document failed a check of the protocol), or a business reason of the
/// recipient's own, namespaced so that codes of different systems never collide.
///
/// On the wire both travel in `AckBody.reason_code`: Caravan's codes are `UPPER_SNAKE` and
/// never contain a colon; a business code is `namespace:CODE` ([`BusinessCode`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum RejectCode {
    Caravan(RefusalCode),
    Business(BusinessCode),
}

impl RejectCode {
    /// Why a reason code is refused, for error messages.
    pub const RULE: &str = "one of Caravan's refusal codes, or a business code `namespace:CODE` (namespace 1-64 of a-z 0-9 . _ -, starting with a letter or digit, e.g. `kz.customs` or `untdid.4343`; code 1-64 of A-Z a-z 0-9 . _ -)";
}

impl FromStr for RejectCode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.contains(':') {
            s.parse().map(Self::Business)
        } else {
            s.parse().map(Self::Caravan)
        }
    }
}

impl TryFrom<String> for RejectCode {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<RejectCode> for String {
    fn from(c: RejectCode) -> Self {
        c.to_string()
    }
}

impl From<RefusalCode> for RejectCode {
    fn from(c: RefusalCode) -> Self {
        Self::Caravan(c)
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Caravan(c) => c.fmt(f),
            Self::Business(c) => f.write_str(&c.0),
        }
    }
}

/// A recipient's own reason for rejecting a document, `namespace:CODE`: the namespace names
/// the system or code list the code comes from (`kz.customs`, `untdid.4343`), the code is that
/// system's. Caravan carries it and shows it; it never interprets it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BusinessCode(String);

impl BusinessCode {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn namespace(&self) -> &str {
        self.0.split_once(':').map_or("", |(n, _)| n)
    }
}

impl FromStr for BusinessCode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let valid = |part: &str, extra: fn(char) -> bool| {
            (1..=64).contains(&part.len())
                && part.starts_with(|c: char| c.is_ascii_alphanumeric())
                && part
                    .chars()
                    .all(|c| c.is_ascii_digit() || extra(c) || ".-_".contains(c))
        };
        match s.split_once(':') {
            Some((namespace, code))
                if valid(namespace, |c| c.is_ascii_lowercase())
                    && valid(code, |c| c.is_ascii_alphabetic()) =>
            {
                Ok(Self(s.to_owned()))
            }
            _ => Err(s.to_owned()),
        }
    }
}

/// A refusal: the rule that failed and a sentence for people. The detail never contains
/// document content or key material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct Refusal {
    pub code: RefusalCode,
    pub detail: String,
}

impl Refusal {
    pub fn new(code: RefusalCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in RefusalCode::ALL {
            assert!(seen.insert(code.as_str()), "duplicate {code}");
            assert_eq!(code.as_str().parse::<RefusalCode>().unwrap(), *code);
            assert!(
                code.as_str()
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_')
            );
        }
    }

    #[test]
    fn a_reject_code_is_caravans_own_or_a_namespaced_business_code() {
        assert_eq!(
            "BAD_SIGNATURE".parse::<RejectCode>(),
            Ok(RejectCode::Caravan(RefusalCode::BadSignature))
        );
        for ok in [
            "kz.customs:QUOTA_EXCEEDED",
            "untdid.4343:RE",
            "a:b",
            "cn-ciq_2:Rule.7",
        ] {
            let code: RejectCode = ok.parse().unwrap();
            assert_eq!(code.to_string(), ok);
            assert!(matches!(code, RejectCode::Business(_)));
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(serde_json::from_str::<RejectCode>(&json).unwrap(), code);
        }
        let long = format!("{}:X", "a".repeat(65));
        for bad in [
            "BUSINESS_RULE",
            "",
            ":X",
            "kz:",
            "KZ.Customs:X",
            "kz customs:X",
            "kz:a:b",
            ".kz:X",
            "kz:-X",
            "kz:X\n",
            long.as_str(),
        ] {
            assert!(bad.parse::<RejectCode>().is_err(), "{bad:?}");
        }
    }

    /// The README's "Refusals" section names every code: a code added without a word there
    /// fails here.
    #[test]
    fn the_readme_names_every_code() {
        let readme = include_str!("../../README.md");
        let section = &readme[readme.find("## Refusals").expect("the section")..];
        let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
        for code in RefusalCode::ALL {
            assert!(
                section.contains(&format!("`{code}`")),
                "README's Refusals section does not name {code}"
            );
        }
    }
}
