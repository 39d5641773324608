//! Types and rules that the Caravan hub and spokes share.
//!
//! Everything here is pure (no sockets, no gRPC), except behind features: `process` (logging,
//! signals, the descriptor limit), `store` (the storage engines, [`kv`]) and `net` (the
//! connection hygiene of every listener), and the payload files of [`segments`] and the
//! descriptor accounting of [`fd`]. The wire encoding lives in
//! `caravan-proto`; this crate holds what the encoding carries (participant ids, document types,
//! headers, receipts, acknowledgements), how signatures are made and checked, the stable refusal
//! codes both sides report, and the set of participants and keys a verifier trusts.
//!
//! **Architecture invariant:** signatures cover bytes that travel, framed by
//! [`signing::pae`] with a payload type per kind of object ([`signing::Purpose`]); nothing is
//! re-encoded before it is verified.

#![forbid(unsafe_code)]

#[cfg(feature = "store")]
pub mod check;
pub mod config;
pub mod document;
pub mod envelope;
pub mod fd;
pub mod html;
pub mod ids;
#[cfg(feature = "store")]
pub mod kv;
pub mod merkle;
#[cfg(feature = "net")]
pub mod net;
#[cfg(feature = "process")]
pub mod process;
#[cfg(feature = "store")]
pub mod recovery;
pub mod refusal;
pub mod segments;
pub mod signing;
pub mod time;
pub mod trust;

pub use document::DocumentType;
pub use ids::{KeyId, MessageId, ParticipantId};
pub use refusal::{Refusal, RefusalCode};
pub use time::Timestamp;
