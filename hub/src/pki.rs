//! The hub's certificate authority: the CA, the hub's TLS certificate and receipt-signing key,
//! and the participants' TLS client certificates.
//!
//! A participant's identity is the URI SAN `urn:caravan:participant:<ID>` of a certificate
//! this CA issued; an operator's is `urn:caravan:operator:<NAME>`. Private keys are written
//! 0600 and never overwritten.

use std::{
    fs,
    path::{Path, PathBuf},
};

use caravan_common::{
    ParticipantId,
    signing::{self, SigningKey},
};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::identity::{OPERATOR_URI_PREFIX, PARTICIPANT_URI_PREFIX};

/// Problems creating or using the PKI folder.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A key could not be written (exists already, or I/O).
    #[error(transparent)]
    Key(#[from] signing::KeyError),
    /// Certificate generation failed.
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// `pki init` found an existing CA and refused to replace it.
    #[error("{0} holds a CA already; refusing to overwrite it")]
    AlreadyInitialised(PathBuf),
    /// An operator name is not usable in a URI.
    #[error("operator name {0:?} must be 1-64 characters of a-z, 0-9, '.', '_' or '-'")]
    BadOperatorName(String),
}

/// File names inside the PKI folder.
pub struct PkiLayout {
    pub dir: PathBuf,
}

impl PkiLayout {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    pub fn hub_cert(&self) -> PathBuf {
        self.dir.join("hub.pem")
    }
    pub fn hub_key(&self) -> PathBuf {
        self.dir.join("hub.key")
    }
    pub fn receipt_key(&self) -> PathBuf {
        self.dir.join("hub-receipt.key")
    }
    pub fn receipt_public_key(&self) -> PathBuf {
        self.dir.join("hub-receipt.pub")
    }
    pub fn anchor_key(&self) -> PathBuf {
        self.dir.join("hub-anchor.key")
    }
    pub fn anchor_public_key(&self) -> PathBuf {
        self.dir.join("hub-anchor.pub")
    }
    pub fn participant_cert(&self, id: ParticipantId) -> PathBuf {
        self.dir.join("participants").join(format!("{id}.pem"))
    }
    pub fn participant_key(&self, id: ParticipantId) -> PathBuf {
        self.dir.join("participants").join(format!("{id}.key"))
    }
    pub fn operator_cert(&self, name: &str) -> PathBuf {
        self.dir.join("operators").join(format!("{name}.pem"))
    }
    pub fn operator_key(&self, name: &str) -> PathBuf {
        self.dir.join("operators").join(format!("{name}.key"))
    }
}

/// What `pki init` created.
#[derive(Debug)]
pub struct Initialised {
    pub receipt_public_key: String,
    pub receipt_key_id: String,
    /// The trust anchor's public key: spokes pin it in their configuration.
    pub anchor_public_key: String,
    pub anchor_key_id: String,
}

/// A certificate `pki issue` wrote.
#[derive(Debug)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Serial number, lowercase hex: what `admin cert revoke` takes.
    pub serial: String,
    /// SHA-256 of the DER certificate, lowercase hex.
    pub fingerprint: String,
}

/// Create the CA, the hub's TLS certificate for `hub_names` (DNS names or IP addresses), the
/// hub's trust anchor key (signs trust lists) and receipt-signing key, valid for `days`.
pub fn init(layout: &PkiLayout, hub_names: &[String], days: u32) -> Result<Initialised, PkiError> {
    if layout.ca_cert().exists() || layout.ca_key().exists() {
        return Err(PkiError::AlreadyInitialised(layout.dir.clone()));
    }
    create_dir(&layout.dir)?;
    let (issuer, _) = new_ca(layout, "Caravan regional hub CA", days)?;
    write_hub_cert(layout, &issuer, hub_names, days)?;

    let receipt_key = new_key(&layout.receipt_key(), &layout.receipt_public_key())?;
    let anchor_key = new_key(&layout.anchor_key(), &layout.anchor_public_key())?;
    Ok(Initialised {
        receipt_public_key: receipt_key.public().to_base64(),
        receipt_key_id: receipt_key.key_id().to_string(),
        anchor_public_key: anchor_key.public().to_base64(),
        anchor_key_id: anchor_key.key_id().to_string(),
    })
}

/// Move `path` aside to `<stem>-<stamp>.<ext>` if it exists (renewals keep what they replace);
/// returns where it went.
fn set_aside(path: &Path, stamp: i64) -> Result<Option<PathBuf>, PkiError> {
    if !path.exists() {
        return Ok(None);
    }
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let ext = path.extension().unwrap_or_default().to_string_lossy();
    let aside = path.with_file_name(format!("{stem}-{stamp}.{ext}"));
    fs::rename(path, &aside).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(Some(aside))
}

fn stamp() -> i64 {
    caravan_common::Timestamp::now().as_millis()
}

/// A new CA named `common_name` in `ca.pem` / `ca.key` (valid five times `days`): its issuer
/// and its certificate's PEM.
fn new_ca(
    layout: &PkiLayout,
    common_name: &str,
    days: u32,
) -> Result<(Issuer<'static, KeyPair>, String), PkiError> {
    let ca_key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name(common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut params, days.saturating_mul(5));
    let ca_cert = params.self_signed(&ca_key)?;
    signing::write_secret_file(&layout.ca_key(), ca_key.serialize_pem().as_bytes())?;
    write_public(&layout.ca_cert(), ca_cert.pem().as_bytes())?;
    Ok((Issuer::new(params, ca_key), ca_cert.pem()))
}

fn ca_issuer(layout: &PkiLayout) -> Result<Issuer<'static, KeyPair>, PkiError> {
    let ca_pem = read(&layout.ca_cert())?;
    let ca_key = KeyPair::from_pem(&read(&layout.ca_key())?)?;
    Ok(Issuer::from_ca_cert_pem(&ca_pem, ca_key)?)
}

fn write_hub_cert(
    layout: &PkiLayout,
    issuer: &Issuer<'_, KeyPair>,
    hub_names: &[String],
    days: u32,
) -> Result<(), PkiError> {
    let mut params = CertificateParams::new(hub_names.to_vec())?;
    params.distinguished_name = name("Caravan hub");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf(&mut params, days);
    write_leaf(&params, issuer, &layout.hub_cert(), &layout.hub_key()).map(drop)
}

/// Renew the hub's TLS certificate for `hub_names` from the current CA; the old certificate and
/// key are kept as `hub-<ms>.pem` / `hub-<ms>.key`. Restart the hub to use it.
pub fn renew_hub_cert(layout: &PkiLayout, hub_names: &[String], days: u32) -> Result<(), PkiError> {
    let issuer = ca_issuer(layout)?;
    let stamp = stamp();
    set_aside(&layout.hub_cert(), stamp)?;
    set_aside(&layout.hub_key(), stamp)?;
    write_hub_cert(layout, &issuer, hub_names, days)
}

/// What a CA rollover wrote.
#[derive(Debug)]
pub struct RolledOver {
    /// The previous CA certificate and key, kept.
    pub old_ca_cert: PathBuf,
    pub old_ca_key: PathBuf,
    /// New and old CA certificates together: what hub and spokes trust during the change.
    pub bundle: PathBuf,
}

/// Replace the CA (before it expires, or after its key was exposed): the old one is kept as
/// `ca-<ms>.pem` / `ca-<ms>.key`, a new one takes `ca.pem` / `ca.key`, `ca-bundle.pem` holds
/// both, and the hub's certificate is renewed from the new CA. See the runbook for the steps
/// around it.
pub fn rollover_ca(
    layout: &PkiLayout,
    hub_names: &[String],
    days: u32,
) -> Result<RolledOver, PkiError> {
    let old_pem = read(&layout.ca_cert())?;
    // Refuse early, before anything moves, if the old CA is not usable.
    ca_issuer(layout)?;
    let stamp = stamp();
    let missing = |path: PathBuf| PkiError::Io {
        path,
        source: std::io::ErrorKind::NotFound.into(),
    };
    let old_ca_cert =
        set_aside(&layout.ca_cert(), stamp)?.ok_or_else(|| missing(layout.ca_cert()))?;
    let old_ca_key = set_aside(&layout.ca_key(), stamp)?.ok_or_else(|| missing(layout.ca_key()))?;
    let (issuer, new_pem) = new_ca(layout, &format!("Caravan regional hub CA {stamp}"), days)?;
    let bundle = layout.dir.join("ca-bundle.pem");
    write_public(&bundle, format!("{new_pem}{old_pem}").as_bytes())?;
    set_aside(&layout.hub_cert(), stamp)?;
    set_aside(&layout.hub_key(), stamp)?;
    write_hub_cert(layout, &issuer, hub_names, days)?;
    Ok(RolledOver {
        old_ca_cert,
        old_ca_key,
        bundle,
    })
}

/// A new ed25519 key at `path` (0600), with its base64 public key at `public_path`.
pub fn new_key(path: &Path, public_path: &Path) -> Result<SigningKey, PkiError> {
    let key = SigningKey::generate();
    key.save(path)?;
    write_public(
        public_path,
        format!("{}\n", key.public().to_base64()).as_bytes(),
    )?;
    Ok(key)
}

/// Whom a certificate is for.
#[derive(Debug, Clone)]
pub enum Subject {
    Participant(ParticipantId),
    Operator(String),
}

/// Issue a TLS client certificate from the CA in `layout`, valid for `days`. With `renew`, a
/// certificate and key already there are kept as `<name>-<ms>.pem` / `.key` (revoke the old
/// one once the new one is in use); without, an existing key is an error.
pub fn issue(
    layout: &PkiLayout,
    subject: &Subject,
    days: u32,
    renew: bool,
) -> Result<Issued, PkiError> {
    let issuer = ca_issuer(layout)?;
    let (uri, common_name, cert, key) = match subject {
        Subject::Participant(id) => (
            format!("{PARTICIPANT_URI_PREFIX}{id}"),
            format!("Caravan participant {id}"),
            layout.participant_cert(*id),
            layout.participant_key(*id),
        ),
        Subject::Operator(op) => {
            let ok = !op.is_empty()
                && op.len() <= 64
                && op
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
            if !ok {
                return Err(PkiError::BadOperatorName(op.clone()));
            }
            (
                format!("{OPERATOR_URI_PREFIX}{op}"),
                format!("Caravan operator {op}"),
                layout.operator_cert(op),
                layout.operator_key(op),
            )
        }
    };
    let mut params = CertificateParams::default();
    params.distinguished_name = name(&common_name);
    params.subject_alt_names = vec![SanType::URI(uri.as_str().try_into()?)];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    leaf(&mut params, days);
    if let Some(parent) = cert.parent() {
        create_dir(parent)?;
    }
    if renew {
        let stamp = stamp();
        set_aside(&cert, stamp)?;
        set_aside(&key, stamp)?;
    }
    let der = write_leaf(&params, &issuer, &cert, &key)?;
    Ok(Issued {
        cert,
        key,
        serial: crate::identity::serial_hex(&der).unwrap_or_default(),
        fingerprint: caravan_common::envelope::to_hex(&caravan_common::signing::sha256(&der)),
    })
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Caravan");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn validity(params: &mut CertificateParams, days: u32) {
    // Backdated a little, so that clocks slightly behind still accept a fresh certificate.
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(i64::from(days));
}

fn leaf(params: &mut CertificateParams, days: u32) {
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    validity(params, days);
    // A random serial, so that certificates can be told apart and revoked one by one.
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&random_serial()));
}

fn random_serial() -> [u8; 16] {
    let mut serial = *caravan_common::MessageId::generate().as_bytes();
    serial[0] &= 0x7f; // positive, as RFC 5280 requires
    serial
}

fn write_leaf(
    params: &CertificateParams,
    issuer: &Issuer<'_, KeyPair>,
    cert_path: &Path,
    key_path: &Path,
) -> Result<Vec<u8>, PkiError> {
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    signing::write_secret_file(key_path, key.serialize_pem().as_bytes())?;
    write_public(cert_path, cert.pem().as_bytes())?;
    Ok(cert.der().to_vec())
}

fn create_dir(path: &Path) -> Result<(), PkiError> {
    fs::create_dir_all(path).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
}

fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
}

fn write_public(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    fs::write(path, contents).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::identity::{Caller, caller_from_der};

    #[test]
    fn init_and_issue() {
        let dir = tempfile::tempdir().unwrap();
        let layout = PkiLayout::new(dir.path().join("pki"));
        let init_out = init(&layout, &["localhost".into(), "127.0.0.1".into()], 30).unwrap();
        assert_eq!(init_out.receipt_key_id.len(), 16);
        assert!(matches!(
            init(&layout, &[], 30),
            Err(PkiError::AlreadyInitialised(_))
        ));
        let kz: ParticipantId = "KZ".parse().unwrap();
        let issued = issue(&layout, &Subject::Participant(kz), 30, false).unwrap();
        assert_eq!(issued.serial.len(), 32);
        assert_eq!(issued.fingerprint.len(), 64);
        let (cert, key) = (issued.cert, issued.key);
        for secret in [
            key,
            layout.ca_key(),
            layout.hub_key(),
            layout.receipt_key(),
            layout.anchor_key(),
        ] {
            assert_eq!(
                fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let der = rustls_pemfile_der(&fs::read_to_string(cert).unwrap());
        assert_eq!(caller_from_der(&der), Some(Caller::Participant(kz)));
        // Issuing again for the same participant does not overwrite its key.
        assert!(matches!(
            issue(&layout, &Subject::Participant(kz), 30, false),
            Err(PkiError::Key(_))
        ));
        let op = issue(&layout, &Subject::Operator("alice".into()), 30, false)
            .unwrap()
            .cert;
        let der = rustls_pemfile_der(&fs::read_to_string(op).unwrap());
        assert_eq!(
            caller_from_der(&der),
            Some(Caller::Operator("alice".into()))
        );
        assert!(matches!(
            issue(&layout, &Subject::Operator("Alice Smith".into()), 30, false),
            Err(PkiError::BadOperatorName(_))
        ));
    }

    fn rustls_pemfile_der(pem: &str) -> Vec<u8> {
        use base64::Engine;
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    }
}
