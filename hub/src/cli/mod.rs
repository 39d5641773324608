//! The command families of `caravan-hub`, one module each; `main.rs` parses the command line
//! and hands each family its arguments.
//!
//! [`run`] (serve the hub), [`conformance`] (the conformance kit), [`info`] (where its interfaces are), [`pki`] (the certificate
//! authority and keys), [`admin`] (the registry of a running hub, as an operator), [`log`]
//! (audit and export the exchange log), [`store`] (commands on the stopped hub's store),
//! [`restore`] (replace the store with a backup); [`exit`] holds the exit codes they share.

pub mod admin;
pub mod conformance;
pub mod exit;
pub mod info;
pub mod log;
pub mod pki;
pub mod restore;
pub mod run;
pub mod scorecard;
pub mod store;
