//! Who is calling: read from the TLS client certificate the hub's CA issued, never from what
//! the request claims. A leaf: what a caller may do is judged by the registry in force
//! ([`crate::registry::Snapshot::authorize_participant`] and its siblings).

use std::collections::HashMap;

use tonic::Request;
use x509_parser::{extensions::GeneralName, prelude::FromDer};

use caravan_common::ParticipantId;

/// URI SAN prefix naming a participant (a country's spoke).
pub const PARTICIPANT_URI_PREFIX: &str = "urn:caravan:participant:";
/// URI SAN prefix naming a hub operator.
pub const OPERATOR_URI_PREFIX: &str = "urn:caravan:operator:";

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A country's spoke.
    Participant(ParticipantId),
    /// A hub operator.
    Operator(String),
}

/// An authenticated caller and the certificate it presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub caller: Caller,
    /// Serial number of the client certificate, lowercase hex: what revocation names.
    pub serial: String,
    /// SHA-256 of the DER certificate, lowercase hex.
    pub fingerprint: String,
    pub not_before_ms: i64,
    pub not_after_ms: i64,
}

impl Caller {
    /// `participant:KZ` or `operator:alice`.
    pub fn subject(&self) -> String {
        match self {
            Caller::Participant(p) => format!("participant:{p}"),
            Caller::Operator(op) => format!("operator:{op}"),
        }
    }
}

/// The caller named by the leaf certificate of a request's TLS peer chain, if any. The chain
/// itself was verified against the hub's CA during the handshake.
pub fn peer<T>(request: &Request<T>) -> Option<Peer> {
    let certs = request.peer_certs()?;
    let der = certs.first()?.as_ref();
    // Every request presents its connection's certificate again, and parsing it three times
    // (caller, serial, validity) took about 5% of the hub's CPU under load: the parse is kept
    // per certificate. It depends on the certificate's bytes alone; revocation and suspension
    // are judged on every request from the registry, not here.
    static PARSED: std::sync::Mutex<Option<HashMap<Vec<u8>, Option<Peer>>>> =
        std::sync::Mutex::new(None);
    /// Certificates whose parse is kept at once (the network has a few dozen).
    const KEPT: usize = 1024;
    let mut parsed = PARSED.lock().unwrap_or_else(|e| e.into_inner());
    let parsed = parsed.get_or_insert_with(HashMap::new);
    if let Some(peer) = parsed.get(der) {
        return peer.clone();
    }
    let peer = peer_from_der(der);
    if parsed.len() >= KEPT {
        parsed.clear();
    }
    parsed.insert(der.to_vec(), peer.clone());
    peer
}

/// Lowercase hex of a certificate's serial number.
pub fn serial_hex(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).ok()?;
    Some(hex::encode(cert.tbs_certificate.raw_serial()))
}

/// The peer named by a DER certificate: exactly one Caravan URI SAN.
pub fn peer_from_der(der: &[u8]) -> Option<Peer> {
    let caller = caller_from_der(der)?;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).ok()?;
    let validity = cert.validity();
    Some(Peer {
        caller,
        serial: serial_hex(der)?,
        fingerprint: caravan_common::envelope::to_hex(&caravan_common::signing::sha256(der)),
        not_before_ms: validity.not_before.timestamp().saturating_mul(1000),
        not_after_ms: validity.not_after.timestamp().saturating_mul(1000),
    })
}

/// The caller named by a DER certificate: exactly one Caravan URI SAN.
pub fn caller_from_der(der: &[u8]) -> Option<Caller> {
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    let mut found = san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => {
                if let Some(id) = uri.strip_prefix(PARTICIPANT_URI_PREFIX) {
                    id.parse().ok().map(Caller::Participant)
                } else {
                    uri.strip_prefix(OPERATOR_URI_PREFIX)
                        .map(|op| Caller::Operator(op.to_owned()))
                }
            }
            _ => None,
        });
    let first = found.next()?;
    // A certificate naming two identities is ambiguous; trust neither.
    found.next().is_none().then_some(first)
}
