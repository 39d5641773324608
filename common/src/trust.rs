//! The participants, keys and corridors a verifier trusts, and the rules that judge them.
//!
//! A [`TrustSet`] is what a verified trust list says. The hub builds its own from the list it
//! signs, and spokes from the list they receive, so both judge by the same rules. Besides keys
//! and corridors, it says for each participant which country it stands for and which issuing
//! authorities (plant-health service, chamber of commerce, ...) it signs documents for: what a
//! document *says* about its issuer can then be held against who signed and sent it.

use std::collections::{BTreeMap, HashMap};

use crate::{
    CountryCode, DocumentType, KeyId, ParticipantId, Refusal, RefusalCode, Timestamp,
    signing::PublicKey,
};

/// Whether a participant may exchange documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParticipantStatus {
    Active,
    /// Refused as sender and as recipient until resumed.
    Suspended,
}

/// Where a participant is in its onboarding. A new participant is tested (the conformance
/// kit) before it exchanges for real: the hub lets a pilot corridor join only participants
/// at pilot or production, and an open corridor only participants at production. Ordered:
/// testing < pilot < production.
///
/// Lists from before stages carry none; they read as [`Self::Production`], so that an
/// upgrade never cuts a corridor that was open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ParticipantStage {
    Testing,
    Pilot,
    Production,
}

impl ParticipantStage {
    pub const ALL: [Self; 3] = [Self::Testing, Self::Pilot, Self::Production];

    /// The stable spelling: `testing`, `pilot`, `production`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Testing => "testing",
            Self::Pilot => "pilot",
            Self::Production => "production",
        }
    }

    /// The stage both ends of a corridor in `state` must have reached; `None`: any (closed).
    pub fn needed_for(state: CorridorState) -> Option<Self> {
        match state {
            CorridorState::Open => Some(Self::Production),
            CorridorState::Pilot => Some(Self::Pilot),
            CorridorState::Closed => None,
        }
    }
}

impl std::fmt::Display for ParticipantStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ParticipantStage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|stage| stage.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a stage: testing, pilot or production"))
    }
}

/// A participant of the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub id: ParticipantId,
    /// Display name, e.g. "Kazakhstan".
    pub name: String,
    pub contact: String,
    pub status: ParticipantStatus,
    /// The country it stands for; `None` until an operator records it (and in lists from
    /// before countries).
    pub country: Option<CountryCode>,
    /// The authorities whose documents it signs and sends, in the order they were recorded.
    pub issuing_authorities: Vec<IssuingAuthority>,
    /// Its onboarding stage (production in lists from before stages).
    pub stage: ParticipantStage,
}

impl Participant {
    /// The issuing authority recorded under `name`, compared as [`IssuingAuthority::is_named`]
    /// does.
    pub fn authority_named(&self, name: &str) -> Option<&IssuingAuthority> {
        self.issuing_authorities.iter().find(|a| a.is_named(name))
    }

    /// The issuing authority that carries the identifier `scheme`/`value`, compared as
    /// [`IssuingAuthority::has_identifier`] does.
    pub fn authority_identified(&self, scheme: &str, value: &str) -> Option<&IssuingAuthority> {
        self.issuing_authorities
            .iter()
            .find(|a| a.has_identifier(scheme, value))
    }
}

/// Longest name of an issuing authority, in characters.
pub const MAX_AUTHORITY_NAME_CHARS: usize = 200;
/// Most identifiers one issuing authority carries.
pub const MAX_AUTHORITY_IDENTIFIERS: usize = 8;
/// Longest identifier scheme, in characters.
pub const MAX_IDENTIFIER_SCHEME_CHARS: usize = 32;
/// Longest identifier value, in characters.
pub const MAX_IDENTIFIER_VALUE_CHARS: usize = 100;
/// Most issuing authorities one participant records.
pub const MAX_AUTHORITIES_PER_PARTICIPANT: usize = 64;

/// An authority whose documents a participant signs: the plant-health service that issues its
/// e-Phyto, the chamber of commerce that issues its certificates of origin. Documents name
/// their issuer by name, and sometimes by an identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuingAuthority {
    /// As documents give it, e.g. "Committee of State Inspection in the Agro-Industrial
    /// Complex"; spaces collapsed, no control characters.
    pub name: String,
    /// Identifiers documents may give instead of, or beside, the name.
    pub identifiers: Vec<AuthorityIdentifier>,
}

/// An identifier of an issuing authority in some scheme: an IPPC or UN/LOCODE-like code, a
/// registration number (scheme `kz-bin`, value `123456789012`), a GLN (`gln`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorityIdentifier {
    /// Lowercase letters, digits, `.`, `_`, `-`, `:`; at most 32 characters.
    pub scheme: String,
    /// As documents give it; no control characters, at most 100 characters.
    pub value: String,
}

/// Why an issuing authority cannot be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorityError {
    #[error("an issuing authority needs a name, as its documents give it")]
    EmptyName,
    #[error(
        "the issuing authority's name is {chars} characters long; at most {MAX_AUTHORITY_NAME_CHARS}"
    )]
    NameTooLong { chars: usize },
    #[error("the issuing authority's {0} contains a control character")]
    ControlCharacter(&'static str),
    #[error(
        "identifier scheme {0:?} must be 1 to {MAX_IDENTIFIER_SCHEME_CHARS} characters of a-z, 0-9, '.', '_', '-', ':'"
    )]
    BadScheme(String),
    #[error(
        "identifier value of scheme {scheme} must be 1 to {MAX_IDENTIFIER_VALUE_CHARS} characters"
    )]
    BadValue { scheme: String },
    #[error("an issuing authority carries at most {MAX_AUTHORITY_IDENTIFIERS} identifiers")]
    TooManyIdentifiers,
    #[error("identifier {scheme}={value} is given twice")]
    DuplicateIdentifier { scheme: String, value: String },
}

/// `text` as an error may quote it: at most 40 characters, then an ellipsis.
pub fn shortened(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// `text` with its spaces trimmed and every run of white space made one space.
fn collapse_spaces(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl AuthorityIdentifier {
    /// Check and normalise an identifier: the scheme lowercased, the value trimmed.
    pub fn new(scheme: &str, value: &str) -> Result<Self, AuthorityError> {
        let scheme = scheme.trim().to_ascii_lowercase();
        let scheme_ok = (1..=MAX_IDENTIFIER_SCHEME_CHARS).contains(&scheme.len())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-_:".contains(&b));
        if !scheme_ok {
            return Err(AuthorityError::BadScheme(shortened(&scheme)));
        }
        let value = value.trim();
        if value.chars().any(char::is_control) {
            return Err(AuthorityError::ControlCharacter("identifier value"));
        }
        if !(1..=MAX_IDENTIFIER_VALUE_CHARS).contains(&value.chars().count()) {
            return Err(AuthorityError::BadValue { scheme });
        }
        Ok(Self {
            scheme,
            value: value.to_owned(),
        })
    }
}

impl IssuingAuthority {
    /// Check and normalise an authority as an operator records it: the name's spaces
    /// collapsed, within the limits, identifiers each checked and none twice.
    pub fn new(
        name: &str,
        identifiers: impl IntoIterator<Item = AuthorityIdentifier>,
    ) -> Result<Self, AuthorityError> {
        if name.chars().any(|c| c.is_control() && !c.is_whitespace()) {
            return Err(AuthorityError::ControlCharacter("name"));
        }
        let name = collapse_spaces(name);
        if name.is_empty() {
            return Err(AuthorityError::EmptyName);
        }
        let chars = name.chars().count();
        if chars > MAX_AUTHORITY_NAME_CHARS {
            return Err(AuthorityError::NameTooLong { chars });
        }
        let mut checked: Vec<AuthorityIdentifier> = Vec::new();
        for id in identifiers {
            if checked.iter().any(|c| c == &id) {
                return Err(AuthorityError::DuplicateIdentifier {
                    scheme: id.scheme,
                    value: id.value,
                });
            }
            checked.push(id);
        }
        if checked.len() > MAX_AUTHORITY_IDENTIFIERS {
            return Err(AuthorityError::TooManyIdentifiers);
        }
        Ok(Self {
            name,
            identifiers: checked,
        })
    }

    /// Whether `name` names this authority: the same words, whatever the case and spacing
    /// ("STATE  Plant Quarantine service" names "State Plant Quarantine Service").
    pub fn is_named(&self, name: &str) -> bool {
        let fold = |t: &str| collapse_spaces(t).to_lowercase();
        fold(name) == fold(&self.name)
    }

    /// Whether the authority carries identifier `value` in `scheme` (the scheme compared
    /// without regard to case, the value exactly once trimmed).
    pub fn has_identifier(&self, scheme: &str, value: &str) -> bool {
        let (scheme, value) = (scheme.trim(), value.trim());
        self.identifiers
            .iter()
            .any(|i| i.scheme.eq_ignore_ascii_case(scheme) && i.value == value)
    }
}

/// Why and when a key was revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub at: Timestamp,
    pub reason: String,
}

/// A participant's document-signing key and what it may sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyEntry {
    pub participant: ParticipantId,
    pub public_key: PublicKey,
    /// Document types this key may sign.
    pub document_types: Vec<DocumentType>,
    /// Start of validity; `None` for "since always".
    pub not_before: Option<Timestamp>,
    /// End of validity; `None` for "until revoked".
    pub not_after: Option<Timestamp>,
    pub revoked: Option<Revocation>,
}

impl SigningKeyEntry {
    pub fn key_id(&self) -> KeyId {
        self.public_key.key_id()
    }

    /// The key's state at `at`, as an operator reads it.
    pub fn status(&self, at: Timestamp) -> KeyStatus {
        match (&self.revoked, self.not_before, self.not_after) {
            (Some(r), _, _) if r.at <= at => KeyStatus::Revoked,
            (_, Some(nb), _) if at < nb => KeyStatus::NotYetValid,
            (_, _, Some(na)) if at > na => KeyStatus::Expired,
            _ => KeyStatus::Active,
        }
    }
}

/// A key's state at some time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    Active,
    NotYetValid,
    Expired,
    Revoked,
}

impl KeyStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::NotYetValid => "not_yet_valid",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

/// A hub receipt-signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubKey {
    pub public_key: PublicKey,
    pub not_before: Option<Timestamp>,
    pub not_after: Option<Timestamp>,
}

impl HubKey {
    /// Whether the key could sign at `at` (a receipt's acceptance time, a tree head's
    /// timestamp): a key rotated out stays valid for what it signed before, and a key signs
    /// nothing dated before it was added.
    pub fn valid_at(&self, at: Timestamp) -> bool {
        self.not_before.is_none_or(|nb| at >= nb) && self.not_after.is_none_or(|na| at <= na)
    }
}

/// Whether documents may flow along a corridor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CorridorState {
    Open,
    /// Open for trials; receivers mark what arrives on it.
    Pilot,
    Closed,
}

impl CorridorState {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Pilot => "pilot",
            Self::Closed => "closed",
        }
    }
}

/// (sender, recipient, document type).
pub type CorridorKey = (ParticipantId, ParticipantId, DocumentType);

/// Why a trust set could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustSetError {
    #[error("participant {0} is listed twice")]
    DuplicateParticipant(ParticipantId),
    #[error("key {0} is listed twice")]
    DuplicateKey(KeyId),
    #[error("key {key} belongs to {participant}, which is not a listed participant")]
    KeyWithoutParticipant {
        key: KeyId,
        participant: ParticipantId,
    },
    #[error("corridor {0}->{1} names an unlisted participant")]
    CorridorWithoutParticipant(ParticipantId, ParticipantId),
}

/// The version and freshness of the list a trust set came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListInfo {
    pub version: u64,
    pub issued_at: Option<Timestamp>,
    pub next_update: Option<Timestamp>,
}

impl ListInfo {
    /// A list is fresh until its next-update time.
    pub fn is_fresh(&self, now: Timestamp) -> bool {
        self.next_update.is_none_or(|n| now <= n)
    }
}

/// Everything needed to judge signatures: participants, their keys, corridors, the hub's keys.
#[derive(Debug, Clone, Default)]
pub struct TrustSet {
    pub info: ListInfo,
    participants: BTreeMap<ParticipantId, Participant>,
    keys: HashMap<KeyId, SigningKeyEntry>,
    hub_keys: HashMap<KeyId, HubKey>,
    corridors: BTreeMap<CorridorKey, CorridorState>,
}

impl TrustSet {
    pub fn new(
        info: ListInfo,
        participants: impl IntoIterator<Item = Participant>,
        keys: impl IntoIterator<Item = SigningKeyEntry>,
        hub_keys: impl IntoIterator<Item = HubKey>,
        corridors: impl IntoIterator<Item = (CorridorKey, CorridorState)>,
    ) -> Result<Self, TrustSetError> {
        let mut set = Self {
            info,
            ..Self::default()
        };
        for p in participants {
            if set.participants.insert(p.id, p.clone()).is_some() {
                return Err(TrustSetError::DuplicateParticipant(p.id));
            }
        }
        for k in keys {
            let key = k.key_id();
            if !set.participants.contains_key(&k.participant) {
                return Err(TrustSetError::KeyWithoutParticipant {
                    key,
                    participant: k.participant,
                });
            }
            if set.keys.insert(key, k).is_some() {
                return Err(TrustSetError::DuplicateKey(key));
            }
        }
        set.hub_keys = hub_keys
            .into_iter()
            .map(|k| (k.public_key.key_id(), k))
            .collect();
        for ((from, to, doc), state) in corridors {
            if !set.participants.contains_key(&from) || !set.participants.contains_key(&to) {
                return Err(TrustSetError::CorridorWithoutParticipant(from, to));
            }
            set.corridors.insert((from, to, doc), state);
        }
        Ok(set)
    }

    pub fn participant(&self, id: ParticipantId) -> Option<&Participant> {
        self.participants.get(&id)
    }

    pub fn participants(&self) -> impl Iterator<Item = &Participant> {
        self.participants.values()
    }

    pub fn key(&self, id: KeyId) -> Option<&SigningKeyEntry> {
        self.keys.get(&id)
    }

    /// The key `id`, or the refusal `UNKNOWN_KEY`.
    pub fn registered_key(&self, id: KeyId) -> Result<&SigningKeyEntry, Refusal> {
        self.key(id).ok_or_else(|| {
            Refusal::new(
                RefusalCode::UnknownKey,
                format!("key {id} is not registered"),
            )
        })
    }

    /// Every signing key, ordered by participant then key id.
    pub fn keys(&self) -> Vec<&SigningKeyEntry> {
        let mut keys: Vec<_> = self.keys.values().collect();
        keys.sort_by_key(|k| (k.participant, k.key_id()));
        keys
    }

    pub fn hub_key(&self, id: KeyId) -> Option<&HubKey> {
        self.hub_keys.get(&id)
    }

    pub fn hub_keys(&self) -> impl Iterator<Item = &HubKey> {
        self.hub_keys.values()
    }

    pub fn corridors(&self) -> impl Iterator<Item = (&CorridorKey, &CorridorState)> {
        self.corridors.iter()
    }

    /// The state of a corridor; one not listed is closed.
    pub fn corridor(
        &self,
        from: ParticipantId,
        to: ParticipantId,
        doc: DocumentType,
    ) -> CorridorState {
        self.corridors
            .get(&(from, to, doc))
            .copied()
            .unwrap_or(CorridorState::Closed)
    }

    /// Check that `from` may send `doc` to `to`; returns the corridor's state (open or pilot).
    pub fn check_corridor(
        &self,
        from: ParticipantId,
        to: ParticipantId,
        doc: DocumentType,
    ) -> Result<CorridorState, Refusal> {
        match self.corridor(from, to, doc) {
            CorridorState::Closed => Err(Refusal::new(
                RefusalCode::CorridorClosed,
                format!("the corridor {from} -> {to} for {doc} is not open"),
            )),
            open => Ok(open),
        }
    }

    /// Check that `id` is a registered, active participant; `role` names it in the refusal
    /// ("caller", "recipient").
    pub fn check_active(&self, id: ParticipantId, role: &str) -> Result<&Participant, Refusal> {
        let p = self.participant(id).ok_or_else(|| {
            let code = if role == "recipient" {
                RefusalCode::UnknownRecipient
            } else {
                RefusalCode::UnknownParticipant
            };
            Refusal::new(code, format!("{role} {id} is not a registered participant"))
        })?;
        match p.status {
            ParticipantStatus::Active => Ok(p),
            ParticipantStatus::Suspended => Err(Refusal::new(
                RefusalCode::ParticipantSuspended,
                format!("{role} {id} is suspended"),
            )),
        }
    }

    /// Find the key `key_id` and check that `signer` owns it and that it was valid (not before
    /// its start, not after its end, not revoked) at `at`. Whether it may sign a given document
    /// type is checked by [`Self::check_document_type`] once the signed header has been
    /// verified and decoded.
    pub fn signer_key(
        &self,
        key_id: KeyId,
        signer: ParticipantId,
        at: Timestamp,
    ) -> Result<&SigningKeyEntry, Refusal> {
        let entry = self.registered_key(key_id)?;
        if entry.participant != signer {
            return Err(Refusal::new(
                RefusalCode::SenderMismatch,
                format!(
                    "key {key_id} belongs to {}, not to {signer}",
                    entry.participant
                ),
            ));
        }
        if let Some(r) = entry.revoked.as_ref().filter(|r| r.at <= at) {
            return Err(Refusal::new(
                RefusalCode::KeyRevoked,
                format!(
                    "key {key_id} was revoked at {} ({}), checked at {at}",
                    r.at, r.reason
                ),
            ));
        }
        if let Some(nb) = entry.not_before.filter(|nb| at < *nb) {
            return Err(Refusal::new(
                RefusalCode::KeyNotYetValid,
                format!("key {key_id} is valid from {nb}, checked at {at}"),
            ));
        }
        if let Some(na) = entry.not_after.filter(|na| at > *na) {
            return Err(Refusal::new(
                RefusalCode::KeyExpired,
                format!("key {key_id} expired at {na}, checked at {at}"),
            ));
        }
        Ok(entry)
    }

    /// Check that `key` may sign documents of type `document_type`.
    pub fn check_document_type(
        key: &SigningKeyEntry,
        document_type: DocumentType,
    ) -> Result<(), Refusal> {
        if key.document_types.contains(&document_type) {
            Ok(())
        } else {
            Err(Refusal::new(
                RefusalCode::DocumentTypeNotAllowed,
                format!(
                    "key {} of {} may not sign {document_type}",
                    key.key_id(),
                    key.participant
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::SigningKey;

    fn pid(s: &str) -> ParticipantId {
        s.parse().unwrap()
    }

    fn participant(id: &str, status: ParticipantStatus) -> Participant {
        Participant {
            id: pid(id),
            name: id.into(),
            contact: String::new(),
            status,
            country: None,
            issuing_authorities: Vec::new(),
            stage: ParticipantStage::Production,
        }
    }

    fn set(
        key: &SigningKey,
        not_before: Option<i64>,
        not_after: Option<i64>,
        revoked: Option<i64>,
    ) -> TrustSet {
        TrustSet::new(
            ListInfo::default(),
            [
                participant("KZ", ParticipantStatus::Active),
                participant("CN", ParticipantStatus::Suspended),
            ],
            [SigningKeyEntry {
                participant: pid("KZ"),
                public_key: key.public().clone(),
                document_types: vec![DocumentType::Phytosanitary],
                not_before: not_before.map(Timestamp::from_millis),
                not_after: not_after.map(Timestamp::from_millis),
                revoked: revoked.map(|at| Revocation {
                    at: Timestamp::from_millis(at),
                    reason: "lost".into(),
                }),
            }],
            [],
            [(
                (pid("KZ"), pid("CN"), DocumentType::Phytosanitary),
                CorridorState::Pilot,
            )],
        )
        .unwrap()
    }

    #[test]
    fn judges_owner_validity_revocation_and_type() {
        let key = SigningKey::generate();
        let trust = set(&key, Some(1_000), Some(2_000), Some(1_800));
        let at = Timestamp::from_millis(1_500);
        let entry = trust.signer_key(key.key_id(), pid("KZ"), at).unwrap();
        assert!(TrustSet::check_document_type(entry, DocumentType::Phytosanitary).is_ok());
        let code = |r: Result<&SigningKeyEntry, Refusal>| r.unwrap_err().code;
        assert_eq!(
            code(trust.signer_key(key.key_id(), pid("CN"), at)),
            RefusalCode::SenderMismatch
        );
        let early = Timestamp::from_millis(999);
        assert_eq!(
            code(trust.signer_key(key.key_id(), pid("KZ"), early)),
            RefusalCode::KeyNotYetValid
        );
        let revoked = Timestamp::from_millis(1_800);
        assert_eq!(
            code(trust.signer_key(key.key_id(), pid("KZ"), revoked)),
            RefusalCode::KeyRevoked
        );
        assert_eq!(entry.status(revoked), KeyStatus::Revoked);
        assert_eq!(entry.status(at), KeyStatus::Active);
        let other = SigningKey::generate();
        assert_eq!(
            code(trust.signer_key(other.key_id(), pid("KZ"), at)),
            RefusalCode::UnknownKey
        );
        assert_eq!(
            TrustSet::check_document_type(entry, DocumentType::Invoice)
                .unwrap_err()
                .code,
            RefusalCode::DocumentTypeNotAllowed
        );
        let unrevoked = set(&key, None, Some(2_000), None);
        let late = Timestamp::from_millis(2_001);
        assert_eq!(
            code(unrevoked.signer_key(key.key_id(), pid("KZ"), late)),
            RefusalCode::KeyExpired
        );
    }

    #[test]
    fn corridors_and_participant_status() {
        let trust = set(&SigningKey::generate(), None, None, None);
        let (kz, cn) = (pid("KZ"), pid("CN"));
        assert_eq!(
            trust.check_corridor(kz, cn, DocumentType::Phytosanitary),
            Ok(CorridorState::Pilot)
        );
        assert_eq!(
            trust
                .check_corridor(cn, kz, DocumentType::Phytosanitary)
                .unwrap_err()
                .code,
            RefusalCode::CorridorClosed
        );
        assert_eq!(
            trust
                .check_corridor(kz, cn, DocumentType::Invoice)
                .unwrap_err()
                .code,
            RefusalCode::CorridorClosed
        );
        assert!(trust.check_active(kz, "caller").is_ok());
        assert_eq!(
            trust.check_active(cn, "recipient").unwrap_err().code,
            RefusalCode::ParticipantSuspended
        );
        assert_eq!(
            trust.check_active(pid("TM"), "recipient").unwrap_err().code,
            RefusalCode::UnknownRecipient
        );
        assert_eq!(
            trust.check_active(pid("TM"), "caller").unwrap_err().code,
            RefusalCode::UnknownParticipant
        );
    }

    #[test]
    fn refuses_inconsistent_sets() {
        let key = SigningKey::generate();
        let entry = SigningKeyEntry {
            participant: pid("UZ"),
            public_key: key.public().clone(),
            document_types: vec![],
            not_before: None,
            not_after: None,
            revoked: None,
        };
        let err = TrustSet::new(ListInfo::default(), [], [entry], [], []).unwrap_err();
        assert!(matches!(err, TrustSetError::KeyWithoutParticipant { .. }));
    }

    #[test]
    fn authorities_are_checked_normalised_and_found_by_name_or_identifier() {
        let ippc = AuthorityIdentifier::new(" IPPC ", " KZ-NPPO ").unwrap();
        assert_eq!(
            (ippc.scheme.as_str(), ippc.value.as_str()),
            ("ippc", "KZ-NPPO")
        );
        let authority = IssuingAuthority::new(
            "  Committee of State Inspection\tin the  Agro-Industrial Complex ",
            [
                ippc.clone(),
                AuthorityIdentifier::new("kz-bin", "123456789012").unwrap(),
            ],
        )
        .unwrap();
        assert_eq!(
            authority.name,
            "Committee of State Inspection in the Agro-Industrial Complex"
        );
        let mut kz = participant("KZ", ParticipantStatus::Active);
        kz.issuing_authorities.push(authority.clone());
        assert_eq!(
            kz.authority_named("committee of state inspection IN THE agro-industrial complex"),
            Some(&authority)
        );
        assert_eq!(kz.authority_named("Committee of State Inspection"), None);
        assert_eq!(kz.authority_identified("IPPC", "KZ-NPPO"), Some(&authority));
        assert_eq!(kz.authority_identified("ippc", "kz-nppo"), None);
        assert_eq!(kz.authority_identified("gln", "KZ-NPPO"), None);

        // Each rule, with its own error.
        assert_eq!(
            IssuingAuthority::new(" \n ", []),
            Err(AuthorityError::EmptyName)
        );
        let long = "x".repeat(MAX_AUTHORITY_NAME_CHARS + 1);
        assert_eq!(
            IssuingAuthority::new(&long, []),
            Err(AuthorityError::NameTooLong {
                chars: MAX_AUTHORITY_NAME_CHARS + 1
            })
        );
        // The limit counts characters, not bytes: 200 Cyrillic letters pass.
        assert!(IssuingAuthority::new(&"Ж".repeat(MAX_AUTHORITY_NAME_CHARS), []).is_ok());
        assert_eq!(
            IssuingAuthority::new("Bad\u{7}name", []),
            Err(AuthorityError::ControlCharacter("name"))
        );
        assert_eq!(
            IssuingAuthority::new("Twice", [ippc.clone(), ippc.clone()]),
            Err(AuthorityError::DuplicateIdentifier {
                scheme: "ippc".into(),
                value: "KZ-NPPO".into()
            })
        );
        let many: Vec<_> = (0..=MAX_AUTHORITY_IDENTIFIERS)
            .map(|n| AuthorityIdentifier::new("gln", &n.to_string()).unwrap())
            .collect();
        assert_eq!(
            IssuingAuthority::new("Many", many),
            Err(AuthorityError::TooManyIdentifiers)
        );
        let quoted = AuthorityIdentifier::new(&"s".repeat(10_000), "1").unwrap_err();
        assert_eq!(
            quoted,
            AuthorityError::BadScheme(format!("{}…", "s".repeat(40)))
        );
        for bad in [
            "",
            "has space",
            "é",
            &"s".repeat(MAX_IDENTIFIER_SCHEME_CHARS + 1),
            "a=b",
        ] {
            assert!(
                matches!(
                    AuthorityIdentifier::new(bad, "1"),
                    Err(AuthorityError::BadScheme(_))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            AuthorityIdentifier::new("gln", "  "),
            Err(AuthorityError::BadValue {
                scheme: "gln".into()
            })
        );
        assert!(
            AuthorityIdentifier::new("gln", &"1".repeat(MAX_IDENTIFIER_VALUE_CHARS + 1)).is_err()
        );
        assert_eq!(
            AuthorityIdentifier::new("gln", "12\u{0}3"),
            Err(AuthorityError::ControlCharacter("identifier value"))
        );
    }

    #[test]
    fn stages_are_ordered_spelled_and_needed_by_corridors() {
        use ParticipantStage::*;
        assert!(Testing < Pilot && Pilot < Production);
        for stage in ParticipantStage::ALL {
            assert_eq!(stage.as_str().parse::<ParticipantStage>(), Ok(stage));
        }
        assert!("Production".parse::<ParticipantStage>().is_err());
        assert_eq!(
            ParticipantStage::needed_for(CorridorState::Open),
            Some(Production)
        );
        assert_eq!(
            ParticipantStage::needed_for(CorridorState::Pilot),
            Some(Pilot)
        );
        assert_eq!(ParticipantStage::needed_for(CorridorState::Closed), None);
        // A view from before stages reads as production, as its list does.
        let old: view::ParticipantView = serde_json::from_str(
            r#"{"id":"KZ","name":"Kazakhstan","status":"active","contact":""}"#,
        )
        .unwrap();
        assert_eq!(old.stage, "production");
    }

    #[test]
    fn freshness() {
        let info = ListInfo {
            version: 1,
            issued_at: None,
            next_update: Some(Timestamp::from_millis(10)),
        };
        assert!(info.is_fresh(Timestamp::from_millis(10)));
        assert!(!info.is_fresh(Timestamp::from_millis(11)));
    }
}

/// A trust set as people and scripts read it (`trust-list show --json`, `key list --json`).
pub mod view {
    use serde::{Deserialize, Serialize};

    use super::{ParticipantStatus, TrustSet};
    use crate::Timestamp;

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct TrustListView {
        pub version: u64,
        pub issued_at: Option<Timestamp>,
        pub next_update: Option<Timestamp>,
        /// Whether the list is before its next-update time.
        pub fresh: bool,
        pub participants: Vec<ParticipantView>,
        pub keys: Vec<KeyView>,
        pub corridors: Vec<CorridorView>,
        pub hub_keys: Vec<HubKeyView>,
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct ParticipantView {
        pub id: String,
        pub name: String,
        pub status: String,
        pub contact: String,
        /// ISO 3166-1 alpha-2 code of the country it stands for; `null` when not recorded.
        #[serde(default)]
        pub country: Option<String>,
        /// The authorities whose documents it signs.
        #[serde(default)]
        pub issuing_authorities: Vec<AuthorityView>,
        /// Its onboarding stage: `testing`, `pilot` or `production` (views from before
        /// stages: `production`, as their lists read).
        #[serde(default = "production")]
        pub stage: String,
    }

    fn production() -> String {
        super::ParticipantStage::Production.as_str().into()
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct AuthorityView {
        pub name: String,
        #[serde(default)]
        pub identifiers: Vec<IdentifierView>,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct IdentifierView {
        pub scheme: String,
        pub value: String,
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct KeyView {
        pub key_id: String,
        pub participant: String,
        /// `active`, `not_yet_valid`, `expired` or `revoked`, now.
        pub status: String,
        pub document_types: Vec<String>,
        pub public_key: String,
        pub not_before: Option<Timestamp>,
        pub not_after: Option<Timestamp>,
        pub revoked_at: Option<Timestamp>,
        pub revocation_reason: Option<String>,
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct CorridorView {
        pub sender: String,
        pub recipient: String,
        pub document_type: String,
        pub state: String,
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct HubKeyView {
        pub key_id: String,
        pub public_key: String,
        pub not_before: Option<Timestamp>,
        pub not_after: Option<Timestamp>,
    }

    /// The view of `set` at time `now`.
    pub fn view(set: &TrustSet, now: Timestamp) -> TrustListView {
        TrustListView {
            version: set.info.version,
            issued_at: set.info.issued_at,
            next_update: set.info.next_update,
            fresh: set.info.is_fresh(now),
            participants: set
                .participants()
                .map(|p| ParticipantView {
                    id: p.id.to_string(),
                    name: p.name.clone(),
                    status: match p.status {
                        ParticipantStatus::Active => "active",
                        ParticipantStatus::Suspended => "suspended",
                    }
                    .into(),
                    contact: p.contact.clone(),
                    country: p.country.map(|c| c.to_string()),
                    stage: p.stage.as_str().into(),
                    issuing_authorities: p
                        .issuing_authorities
                        .iter()
                        .map(|a| AuthorityView {
                            name: a.name.clone(),
                            identifiers: a
                                .identifiers
                                .iter()
                                .map(|i| IdentifierView {
                                    scheme: i.scheme.clone(),
                                    value: i.value.clone(),
                                })
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
            keys: set
                .keys()
                .into_iter()
                .map(|k| KeyView {
                    key_id: k.key_id().to_string(),
                    participant: k.participant.to_string(),
                    status: k.status(now).as_str().into(),
                    document_types: k.document_types.iter().map(|t| t.to_string()).collect(),
                    public_key: k.public_key.to_base64(),
                    not_before: k.not_before,
                    not_after: k.not_after,
                    revoked_at: k.revoked.as_ref().map(|r| r.at),
                    revocation_reason: k.revoked.as_ref().map(|r| r.reason.clone()),
                })
                .collect(),
            corridors: set
                .corridors()
                .map(|((from, to, doc), state)| CorridorView {
                    sender: from.to_string(),
                    recipient: to.to_string(),
                    document_type: doc.to_string(),
                    state: state.as_str().into(),
                })
                .collect(),
            hub_keys: {
                let mut keys: Vec<HubKeyView> = set
                    .hub_keys()
                    .map(|k| HubKeyView {
                        key_id: k.public_key.key_id().to_string(),
                        public_key: k.public_key.to_base64(),
                        not_before: k.not_before,
                        not_after: k.not_after,
                    })
                    .collect();
                keys.sort_by(|a, b| a.key_id.cmp(&b.key_id));
                keys
            },
        }
    }
}
