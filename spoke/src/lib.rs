//! The Caravan spoke: a country's gateway between its national single window and the hub.
//!
//! It signs outgoing documents with the country's ed25519 key and submits them to the hub; it
//! keeps a delivery stream open to the hub and verifies every received document end to end
//! against the keys it holds, stores it durably in its inbox, and signs an acknowledgement
//! (accepted, or rejected with the reason).
//!
//! Modules in the order a document moves, each using only those before it: the leaves
//! [`i18n`] (the console's languages, time zone and code lists), [`config`] (the checked TOML
//! file), [`rt`] (store work off the async threads, backoff, shutdown), [`document`]
//! (recognising documents and what they say), [`checks`] (whether what a document says fits its
//! signer, recipient, header, the clock and the inbox) and [`store`] (inbox, outbox, sent
//! records, on sled or redb); [`hub`] (the link to the hub, the trust list held, the log
//! audit); [`outbound`] (send, upload, outbox, status following); [`inbound`] (receive,
//! assemble, verify, take, acknowledge); [`evidence`] (bundles and the offline verifier);
//! [`api`] (control API, NSW API and webhook, console, metrics, and their views); [`client`]
//! (the typed control-API client); [`spoke`] (the wiring and [`run`]).

#![forbid(unsafe_code)]

pub mod i18n;

pub mod config;
pub mod rt;

pub mod checks;
pub mod document;
pub mod issuance;
pub mod issuing;
pub mod store;

pub mod hub;

pub mod outbound;

pub mod inbound;

pub mod evidence;

pub mod api;

pub mod client;

pub mod spoke;

pub use config::Config;
pub use spoke::{RunError, Spoke, run};
