//! Pieces of configuration that the hub and spokes share, and the way both load and check a
//! config file: read TOML strictly (`deny_unknown_fields`), then turn it into typed values while
//! collecting every problem, so an operator fixes them all in one go.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize, de::DeserializeOwned};

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

    /// Problems recorded so far.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
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

/// At most this many addresses of one hub.
#[cfg(feature = "net")]
pub const MAX_HUB_URLS: usize = 16;

/// The hub's address(es), as a spoke's or an operator's config gives them: `hub_url`, or
/// `hub_urls` (the addresses of one hub's replicas, in order), not both; each an
/// `https://host:port` URL, given once, at most [`MAX_HUB_URLS`]. Every problem is recorded.
#[cfg(feature = "net")]
pub fn hub_addresses(
    hub_url: Option<&str>,
    hub_urls: &[String],
    problems: &mut Problems,
) -> Vec<String> {
    let urls: Vec<String> = match (hub_url, hub_urls.is_empty()) {
        (Some(url), true) => vec![url.to_owned()],
        (None, false) => hub_urls.to_vec(),
        (Some(_), false) => {
            problems.push(
                "hub_url and hub_urls: give the hub's address as hub_url, or its replicas' as hub_urls, not both",
            );
            return Vec::new();
        }
        (None, true) => {
            problems.push("hub_url: missing (or hub_urls, for a hub's replicas)");
            return Vec::new();
        }
    };
    if urls.len() > MAX_HUB_URLS {
        problems.push(format!(
            "hub_urls: {} addresses, at most {MAX_HUB_URLS}",
            urls.len()
        ));
    }
    let key = if hub_url.is_some() {
        "hub_url"
    } else {
        "hub_urls"
    };
    for (i, url) in urls.iter().enumerate() {
        match url.parse::<hyper::Uri>() {
            Ok(uri) if uri.scheme_str() == Some("https") && uri.host().is_some() => {}
            _ => problems.push(format!("{key}: {url:?} is not an https://host:port URL")),
        }
        if urls[..i].contains(url) {
            problems.push(format!("hub_urls: {url:?} is given twice"));
        }
    }
    urls
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

/// TLS files as written in a config: the CA that peers' certificates chain to, and this
/// program's own certificate and private key (all PEM).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The CA certificate: the hub's CA, which issued every participant's and operator's.
    pub ca_cert: PathBuf,
    /// This program's certificate, issued by that CA.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// The contents of the TLS files, read at load.
#[derive(Clone)]
pub struct TlsMaterial {
    pub ca_cert: Vec<u8>,
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

impl TlsFiles {
    /// Read the three files (relative paths from `config_path`'s folder); each one missing is
    /// a problem recorded under `tls.<field>`.
    pub fn read(&self, config_path: &Path, problems: &mut Problems) -> Option<TlsMaterial> {
        let mut read = |field: &str, p: &Path| {
            let full = resolve(config_path, p);
            problems.check(
                field,
                std::fs::read(&full).map_err(|e| format!("{}: {e}", full.display())),
            )
        };
        let ca_cert = read("tls.ca_cert", &self.ca_cert);
        let cert = read("tls.cert", &self.cert);
        let key = read("tls.key", &self.key);
        Some(TlsMaterial {
            ca_cert: ca_cert?,
            cert: cert?,
            key: key?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_every_problem() {
        let mut problems = Problems::default();
        problems.check("listen", "x".parse::<std::net::SocketAddr>());
        problems.push("data_dir: missing");
        assert_eq!(problems.check("ok", Ok::<_, String>(1)), Some(1));
        let text = problems
            .finish(Path::new("hub.toml"), || ())
            .unwrap_err()
            .to_string();
        assert_eq!(text.lines().collect::<Vec<_>>().len(), 2, "{text}");
        assert!(text.starts_with("hub.toml: listen: "), "{text}");
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
