//! The Caravan hub: the region's trust anchor and router.
//!
//! It accepts ed25519-signed documents from spokes over gRPC with mutual TLS, identifies each
//! caller by its client certificate, verifies every signature and rule before storing anything,
//! commits what it accepts durably (with group commit) before answering with a signed receipt,
//! and streams each document to its recipient until the recipient acknowledges it.
//!
//! Code map: [`config`] (the checked TOML file), [`pki`] (CA and certificates), [`identity`]
//! (caller from the client certificate), [`registry`] (participants, keys, corridors: the
//! signed trust list, and who may call what), [`exchange`] (the gRPC service and its rules, one
//! module per RPC family), [`anchor`] (the trust-list service), [`admin`] (the operators'
//! service), [`onboarding`] (participants' stages and the conformance reports that let them
//! advance), [`store`] (durable state behind a narrow trait, on sled or redb), [`commit`] (the
//! write path: one writer thread, batches, group commit), [`metrics`], [`observed`] (what
//! `/metrics` and the dashboard read), [`dashboard`], [`server`] (wiring and shutdown). The
//! binary's commands are in `src/cli/`, outside the library.
//!
//! **Architecture invariant:** the hub never parses payloads; it routes bytes with a declared
//! document type and content type. (The conformance kit, [`conformance`], runs in its own
//! process as a participant and reads what a candidate sends it, as any recipient would.)

#![forbid(unsafe_code)]

pub mod admin;
pub mod anchor;
pub mod commit;
pub mod config;
pub mod conformance;
pub mod dashboard;
pub mod error;
pub mod exchange;
pub mod identity;
pub mod log;
pub mod metrics;
pub mod migrate;
pub mod observed;
pub mod onboarding;
pub mod operator;
pub mod pki;
pub mod registry;
pub mod restore;
pub mod scorecard;
pub mod server;
pub mod store;

pub use config::Config;
pub use server::run;
