//! The conformance kit: proof that a candidate participant (Caravan's spoke or another
//! implementation of docs/protocol.md) keeps the protocol's rules before its corridors open.
//!
//! [`report`] is what a run produces and the hub records.

pub mod report;
