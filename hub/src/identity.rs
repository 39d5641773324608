//! Who is calling: read from the TLS client certificate the hub's CA issued, never from what
//! the request claims.

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

/// The caller named by the leaf certificate of a request's TLS peer chain, if any. The chain
/// itself was verified against the hub's CA during the handshake.
pub fn caller<T>(request: &Request<T>) -> Option<Caller> {
    let certs = request.peer_certs()?;
    caller_from_der(certs.first()?.as_ref())
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
