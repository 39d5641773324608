//! Pieces of configuration that the hub and spokes share, and the way both load and check a
//! config file: read TOML strictly (`deny_unknown_fields`), then turn it into typed values while
//! collecting every problem, so an operator fixes them all in one go.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{
    DocumentType, KeyId, ParticipantId,
    signing::PublicKey,
    time::parse_rfc3339,
    trust::{Participant, SigningKeyEntry, TrustSet},
};

/// Everything wrong with a config file, one line per problem.
#[derive(Debug)]
pub struct ConfigError {
    pub path: PathBuf,
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for problem in &self.problems {
            if !first {
                writeln!(f)?;
            }
            first = false;
            write!(f, "{}: {problem}", self.path.display())?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Collects problems while a config is turned into typed values.
#[derive(Debug, Default)]
pub struct Problems(Vec<String>);

impl Problems {
    pub fn push(&mut self, problem: impl Into<String>) {
        self.0.push(problem.into());
    }

    /// Keep the value of `result`, or record its error under `field`.
    pub fn check<T, E: fmt::Display>(&mut self, field: &str, result: Result<T, E>) -> Option<T> {
        result.map_err(|e| self.push(format!("{field}: {e}"))).ok()
    }

    /// `Ok(value)` when no problem was recorded.
    pub fn finish<T>(self, path: &Path, value: impl FnOnce() -> T) -> Result<T, ConfigError> {
        if self.0.is_empty() {
            Ok(value())
        } else {
            Err(ConfigError {
                path: path.to_owned(),
                problems: self.0,
            })
        }
    }
}

/// Read `path` as TOML into `T`. Unknown fields and type errors are reported with the path.
pub fn read_toml<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let fail = |problem: String| ConfigError {
        path: path.to_owned(),
        problems: vec![problem],
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    toml::from_str(&text).map_err(|e| fail(e.to_string().trim_end().replace('\n', " ")))
}

/// A path from a config file: relative paths are taken from the file's folder, so a config can
/// be moved together with the files it names.
pub fn resolve(config_path: &Path, value: &Path) -> PathBuf {
    if value.is_absolute() {
        value.to_owned()
    } else {
        config_path.parent().unwrap_or(Path::new(".")).join(value)
    }
}

/// A participant as written in a config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantConfig {
    /// ISO 3166-1 alpha-2 code, e.g. "KZ".
    pub id: String,
    /// Display name, e.g. "Kazakhstan".
    pub name: String,
    /// The participant's document-signing keys.
    #[serde(default)]
    pub keys: Vec<SigningKeyConfig>,
}

/// A document-signing key as written in a config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKeyConfig {
    /// The key id that `caravan-spoke keygen` printed; optional, checked against the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The ed25519 public key, base64 (as printed by `caravan-spoke keygen`).
    pub public_key: String,
    /// Document types the key may sign: any of "e-co", "e-phyto", "e-invoice".
    pub document_types: Vec<String>,
    /// Start of validity, RFC 3339 (e.g. "2026-01-01T00:00:00Z"); absent means always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    /// End of validity, RFC 3339; absent means no end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
}

/// Build the trust set from configured participants and hub keys, recording every problem.
pub fn trust_set(
    participants: &[ParticipantConfig],
    hub_keys: &[String],
    problems: &mut Problems,
) -> TrustSet {
    let mut parsed_participants = Vec::new();
    let mut parsed_keys = Vec::new();
    for (i, p) in participants.iter().enumerate() {
        let at = format!("participants[{i}]");
        let Some(id) = problems.check(&format!("{at}.id"), p.id.parse::<ParticipantId>()) else {
            continue;
        };
        parsed_participants.push(Participant {
            id,
            name: p.name.clone(),
        });
        for (j, k) in p.keys.iter().enumerate() {
            let at = format!("{at}.keys[{j}]");
            if let Some(entry) = signing_key(id, k, &at, problems) {
                parsed_keys.push(entry);
            }
        }
    }
    let hub_keys: Vec<PublicKey> = hub_keys
        .iter()
        .enumerate()
        .filter_map(|(i, k)| {
            problems.check(&format!("hub_receipt_keys[{i}]"), PublicKey::from_base64(k))
        })
        .collect();
    match TrustSet::new(parsed_participants, parsed_keys, hub_keys) {
        Ok(set) => set,
        Err(e) => {
            problems.push(format!("participants: {e}"));
            TrustSet::default()
        }
    }
}

fn signing_key(
    participant: ParticipantId,
    k: &SigningKeyConfig,
    at: &str,
    problems: &mut Problems,
) -> Option<SigningKeyEntry> {
    let public_key = problems.check(
        &format!("{at}.public_key"),
        PublicKey::from_base64(&k.public_key),
    );
    if let (Some(declared), Some(public_key)) = (&k.key_id, &public_key) {
        match declared.parse::<KeyId>() {
            Ok(id) if id == public_key.key_id() => {}
            Ok(_) => problems.push(format!(
                "{at}.key_id: {declared} does not match the public key, whose id is {}",
                public_key.key_id()
            )),
            Err(e) => problems.push(format!("{at}.key_id: {e}")),
        }
    }
    let document_types: Vec<DocumentType> = k
        .document_types
        .iter()
        .filter_map(|t| problems.check(&format!("{at}.document_types"), t.parse()))
        .collect();
    if k.document_types.is_empty() {
        problems.push(format!(
            "{at}.document_types: must name at least one document type"
        ));
    }
    let time = |field: &str, value: &Option<String>, problems: &mut Problems| match value {
        None => Some(None),
        Some(text) => problems
            .check(&format!("{at}.{field}"), parse_rfc3339(text))
            .map(Some),
    };
    let not_before = time("not_before", &k.not_before, problems)?;
    let not_after = time("not_after", &k.not_after, problems)?;
    Some(SigningKeyEntry {
        participant,
        public_key: public_key?,
        document_types,
        not_before,
        not_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::SigningKey;

    #[test]
    fn reports_every_problem() {
        let key = SigningKey::generate();
        let participants = vec![
            ParticipantConfig {
                id: "kz".into(),
                name: "Kazakhstan".into(),
                keys: vec![],
            },
            ParticipantConfig {
                id: "CN".into(),
                name: "China".into(),
                keys: vec![SigningKeyConfig {
                    key_id: Some("0000000000000000".into()),
                    public_key: key.public().to_base64(),
                    document_types: vec!["e-cert".into()],
                    not_before: Some("yesterday".into()),
                    not_after: None,
                }],
            },
        ];
        let mut problems = Problems::default();
        trust_set(&participants, &["xx".into()], &mut problems);
        let text = problems
            .finish(Path::new("hub.toml"), || ())
            .unwrap_err()
            .to_string();
        for needle in [
            "participants[0].id",
            "participants[1].keys[0].key_id",
            "participants[1].keys[0].document_types",
            "participants[1].keys[0].not_before",
            "hub_receipt_keys[0]",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        assert_eq!(text.lines().count(), 5, "{text}");
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        assert_eq!(
            resolve(Path::new("/etc/caravan/hub.toml"), Path::new("tls/ca.pem")),
            PathBuf::from("/etc/caravan/tls/ca.pem")
        );
        assert_eq!(
            resolve(Path::new("hub.toml"), Path::new("/abs")),
            PathBuf::from("/abs")
        );
    }
}
