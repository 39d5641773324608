//! What every Caravan binary does the same way: logging set-up, shutdown signals, the file
//! descriptor limit, and binding the listeners its config names.

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
