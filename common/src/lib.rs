//! Types and rules that the Caravan hub and spokes share.
//!
//! Everything here is pure (no sockets, no gRPC), except behind features: `process` (logging,
//! signals, the descriptor limit), `store` (the foundation under both stores: engines,
//! tables, transactions, payload segments, [`store`]), `net` (the connection hygiene of every
//! listener) and `metrics` (the Prometheus exposition both serve), and the descriptor
//! accounting of [`fd`]. The wire encoding lives in `caravan-proto`; this crate holds what the
//! encoding carries (participant ids, document types, headers, receipts, acknowledgements), how
//! signatures are made and checked, the stable refusal codes both sides report, and the set of
//! participants and keys a verifier trusts.
//!
//! **Architecture invariant:** signatures cover bytes that travel, framed by
//! [`signing::pae`] with a payload type per kind of object ([`signing::Purpose`]); nothing is
//! re-encoded before it is verified.

#![forbid(unsafe_code)]

#[cfg(feature = "store")]
pub mod check;
pub mod config;
pub mod country;
pub mod document;
pub mod envelope;
pub mod fd;
pub mod ids;
pub mod merkle;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "net")]
pub mod net;
#[cfg(feature = "process")]
pub mod process;
#[cfg(feature = "store")]
pub mod recovery;
pub mod refusal;
pub mod signing;
#[cfg(feature = "store")]
pub mod store;
pub mod time;
pub mod trust;

/// The payload segment files are part of the store foundation; this path stays for their users.
#[cfg(feature = "store")]
pub use store::segments;

pub use country::CountryCode;
pub use document::DocumentType;
pub use ids::{KeyId, MessageId, ParticipantId};
pub use refusal::{BusinessCode, Refusal, RefusalCode, RejectCode};
pub use time::Timestamp;
