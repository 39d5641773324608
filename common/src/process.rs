//! What every Caravan binary does the same way: logging set-up, shutdown signals, the file
//! descriptor limit, binding the listeners its config names, and telling scripts where they
//! listen (`listening.json`).

use tracing_subscriber::EnvFilter;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Install the global tracing subscriber, writing to stderr. The filter comes from the
/// environment variable `env_var` (e.g. `CARAVAN_HUB_LOG=debug`), else `default_filter`.
pub fn init_tracing(env_var: &str, default_filter: &str, format: LogFormat) {
    let filter =
        EnvFilter::try_from_env(env_var).unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Plain => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Completes on the first SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(cause = %e, "cannot listen for SIGTERM; only Ctrl-C stops this process");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("received SIGINT"),
        _ = term.recv() => tracing::info!("received SIGTERM"),
    }
}

/// `println!` for a command's output, which may go to a pipe the reader closes early
/// (`caravan-hub log export | head`): then the output ends quietly instead of the program
/// panicking on a broken pipe.
#[macro_export]
macro_rules! out {
    ($($arg:tt)+) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)+);
    }};
}

/// A listener named in a config could not bind: says which setting, and the address.
#[derive(Debug, thiserror::Error)]
#[error("{what} cannot listen on {addr}: {cause}")]
pub struct ListenError {
    pub what: &'static str,
    pub addr: std::net::SocketAddr,
    pub cause: std::io::Error,
}

/// Bind the TCP listener that the config setting `what` names.
pub async fn listen(
    addr: std::net::SocketAddr,
    what: &'static str,
) -> Result<tokio::net::TcpListener, ListenError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|cause| ListenError { what, addr, cause })
}

/// Where a running hub or spoke listens, as it bound its listeners: the file
/// `listening.json` in its `data_dir`. A config may ask for port 0 (any free port); this file
/// is how operators' scripts, probes and the end-to-end tests learn the port taken, without
/// reading logs. The process removes the file when it starts and when it stops cleanly, and
/// writes it (a temporary file renamed over it, so a reader never sees half of one) once every
/// listener is bound; `pid` tells one left by a killed process from the running one's.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listening {
    /// The process that wrote the file.
    pub pid: u32,
    /// Hub: the gRPC port (mutual TLS), `listen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<std::net::SocketAddr>,
    /// Hub and spoke: Prometheus metrics and `/healthz`, `metrics_listen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Hub: the operators' dashboard, `dashboard_listen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard: Option<std::net::SocketAddr>,
    /// Spoke: the national single window's API, `nsw.listen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nsw: Option<std::net::SocketAddr>,
    /// Spoke: the officers' console, `console.listen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console: Option<std::net::SocketAddr>,
    /// Spoke: the control API's Unix socket, `control_socket`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_socket: Option<std::path::PathBuf>,
}

/// `listening.json` could not be written or removed.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {cause}")]
pub struct ListeningError {
    pub path: std::path::PathBuf,
    #[source]
    pub cause: std::io::Error,
}

impl Listening {
    /// The file's name in a `data_dir`.
    pub const FILE: &'static str = "listening.json";

    /// The file in `data_dir`.
    pub fn path(data_dir: &std::path::Path) -> std::path::PathBuf {
        data_dir.join(Self::FILE)
    }

    /// Remove the file a previous process left in `data_dir` (none is fine): called at start,
    /// before anything is bound, and at a clean stop.
    pub fn clear(data_dir: &std::path::Path) -> Result<(), ListeningError> {
        let path = Self::path(data_dir);
        match std::fs::remove_file(&path) {
            Err(cause) if cause.kind() != std::io::ErrorKind::NotFound => {
                Err(ListeningError { path, cause })
            }
            _ => Ok(()),
        }
    }

    /// This process's listeners, with `pid` set to its own id.
    pub fn of_this_process(self) -> Self {
        Self {
            pid: std::process::id(),
            ..self
        }
    }

    /// Write the file into `data_dir` at once: a temporary file, then renamed over the old.
    pub fn write(&self, data_dir: &std::path::Path) -> Result<(), ListeningError> {
        let path = Self::path(data_dir);
        let temp = data_dir.join(format!(".{}.{}.tmp", Self::FILE, self.pid));
        let mut text = serde_json::to_string_pretty(self).map_err(|e| ListeningError {
            path: path.clone(),
            cause: e.into(),
        })?;
        text.push('\n');
        std::fs::write(&temp, text)
            .and_then(|()| std::fs::rename(&temp, &path))
            .map_err(|cause| {
                let _ = std::fs::remove_file(&temp);
                ListeningError { path, cause }
            })
    }

    /// Read the file in `data_dir`: `None` while there is none (the process has not bound its
    /// listeners yet, or stopped); an error if it cannot be read or parsed.
    pub fn read(data_dir: &std::path::Path) -> std::io::Result<Option<Self>> {
        match std::fs::read(Self::path(data_dir)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(std::io::Error::other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Raise the soft limit on open file descriptors (`RLIMIT_NOFILE`) to the hard limit, and log
/// the figure: each connection, and each payload read, takes a descriptor, and a default soft
/// limit of 1,024 is reached by a few hundred idle connections. Nothing is changed when the
/// soft limit already equals the hard one (systemd's `LimitNOFILE=`). Returns the soft limit
/// now in force.
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    let soft = current.unwrap_or(u64::MAX);
    let hard = maximum.unwrap_or(u64::MAX);
    let limit = if maximum.is_some() && hard > soft {
        let raised = Rlimit {
            current: maximum,
            maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => {
                tracing::info!(limit = hard, was = soft, hard, "file descriptor limit");
                hard
            }
            Err(e) => {
                tracing::warn!(limit = soft, hard, cause = %e, "cannot raise the file descriptor limit; keeping it");
                soft
            }
        }
    } else {
        tracing::info!(limit = soft, hard, "file descriptor limit");
        soft
    };
    crate::fd::set_limit(limit);
    limit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_is_written_whole_read_back_and_cleared() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Listening::read(dir.path()).unwrap(), None);
        // Nothing to clear is fine.
        Listening::clear(dir.path()).unwrap();
        let hub = Listening {
            grpc: Some("127.0.0.1:7443".parse().unwrap()),
            metrics: Some("127.0.0.1:9464".parse().unwrap()),
            ..Listening::default()
        }
        .of_this_process();
        hub.write(dir.path()).unwrap();
        assert_eq!(Listening::read(dir.path()).unwrap(), Some(hub.clone()));
        // Roles not served are left out of the file, so scripts can test for them.
        let text = std::fs::read_to_string(dir.path().join("listening.json")).unwrap();
        assert!(text.contains("\"grpc\": \"127.0.0.1:7443\""), "{text}");
        assert!(!text.contains("dashboard"), "{text}");
        // Overwritten whole, and no temporary file is left beside it.
        let spoke = Listening {
            control_socket: Some("/run/caravan/control.sock".into()),
            ..Listening::default()
        }
        .of_this_process();
        spoke.write(dir.path()).unwrap();
        assert_eq!(Listening::read(dir.path()).unwrap(), Some(spoke));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        Listening::clear(dir.path()).unwrap();
        assert_eq!(Listening::read(dir.path()).unwrap(), None);
        // A file that is not one is an error, not "not yet".
        std::fs::write(dir.path().join("listening.json"), "{").unwrap();
        assert!(Listening::read(dir.path()).is_err());
    }
}
