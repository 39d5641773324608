//! How the hub reaches its database: the URL, the password kept apart, TLS with the
//! server's certificate checked, and the session settings every connection runs with.

use super::*;

/// How the hub reaches its database (`[store]` settings, checked by the configuration).
#[derive(Clone)]
pub struct PostgresSettings {
    /// The connection URL, without a password if one is given apart.
    pub url: String,
    /// The password, from `postgres_password_file` or `CARAVAN_POSTGRES_PASSWORD`; never logged.
    pub password: Option<String>,
    /// The CA that signed the database server's certificate: TLS is required when set.
    pub ca_file: Option<PathBuf>,
    /// Connections per replica.
    pub pool_size: usize,
}

impl std::fmt::Debug for PostgresSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSettings")
            .field("url", &redact(&self.url))
            .field("password", &self.password.as_ref().map(|_| "(set)"))
            .field("ca_file", &self.ca_file)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// The URL without a password written into it, for logs and errors.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user = &url[scheme + 3..at];
            let user = user.split(':').next().unwrap_or_default();
            format!("{}{user}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

impl PostgresSettings {
    /// The driver's configuration: the URL's, the password, and the session settings every
    /// connection runs with.
    pub fn driver_config(&self) -> Result<tokio_postgres::Config, String> {
        let mut config = tokio_postgres::Config::from_str(&self.url)
            .map_err(|e| format!("postgres_url: {e}"))?;
        if let Some(password) = &self.password {
            config.password(password);
        }
        if config.get_dbname().is_none() {
            return Err("postgres_url: names no database".into());
        }
        let require_tls = config.get_ssl_mode() == tokio_postgres::config::SslMode::Require;
        if require_tls && self.ca_file.is_none() {
            return Err(
                "postgres_url asks for sslmode=require: set postgres_ca_file to the CA that signed the database server's certificate"
                    .into(),
            );
        }
        if self.ca_file.is_some() {
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
        }
        config
            .connect_timeout(CONNECT_TIMEOUT)
            .keepalives_idle(Duration::from_secs(30))
            .application_name("caravan-hub")
            .options(format!(
                "-c synchronous_commit=on -c statement_timeout={STATEMENT_TIMEOUT_MS} -c lock_timeout={STATEMENT_TIMEOUT_MS} -c idle_in_transaction_session_timeout=60000"
            ));
        Ok(config)
    }

    pub(super) fn tls(
        &self,
    ) -> Result<Option<tokio_postgres_rustls::MakeRustlsConnect>, StoreError> {
        let Some(ca_file) = &self.ca_file else {
            return Ok(None);
        };
        let pem = std::fs::read(ca_file).map_err(StoreError::io(ca_file))?;
        use rustls_pki_types::pem::PemObject;
        use tokio_rustls::rustls;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| StoreError::engine_at("postgres_ca_file", e))?;
            roots
                .add(cert)
                .map_err(|e| StoreError::engine_at("postgres_ca_file", e))?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::engine_at("postgres TLS", e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Some(tokio_postgres_rustls::MakeRustlsConnect::new(config)))
    }
}

/// A connection of its own, outside the pool (the notifications, the tree-head lease).
pub(super) struct Connected {
    pub(super) client: tokio_postgres::Client,
    /// The notifications the connection receives (after a `LISTEN`).
    pub(super) notifications: tokio::sync::mpsc::UnboundedReceiver<tokio_postgres::Notification>,
    /// The task driving the connection; it ends with why the connection ended.
    pub(super) ended: tokio::task::JoinHandle<String>,
}

pub(super) async fn connect(
    settings: &PostgresSettings,
    config: &tokio_postgres::Config,
) -> Result<Connected, String> {
    let (tx, notifications) = tokio::sync::mpsc::unbounded_channel();
    let (client, ended) = match settings.tls().map_err(|e| e.to_string())? {
        Some(tls) => {
            let (client, connection) = config.connect(tls).await.map_err(|e| e.to_string())?;
            (client, tokio::spawn(drive(connection, tx)))
        }
        None => {
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            (client, tokio::spawn(drive(connection, tx)))
        }
    };
    Ok(Connected {
        client,
        notifications,
        ended,
    })
}

/// Drive `connection`, passing its notifications on, until it ends; returns why.
async fn drive<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    notifications: tokio::sync::mpsc::UnboundedSender<tokio_postgres::Notification>,
) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                // Nobody listening (the lease's connection): dropped.
                let _ = notifications.send(n);
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return e.to_string(),
            None => return "the connection closed".to_string(),
        }
    }
}
