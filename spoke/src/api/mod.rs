//! The spoke's interfaces to people and systems: the local control API ([`control`]), the
//! national single window's API ([`nsw`]) and its webhook ([`webhook`]), the officers' console
//! ([`console`], its login throttling in [`login_guard`]), metrics and health ([`metrics`]), and the answers they give ([`views`]).
//!
//! They hold [`Api`]: handles to the stages they call, never the stages' insides.

pub mod console;
pub mod control;
pub mod login_guard;
pub mod metrics;
pub mod nsw;
pub mod views;
pub mod webhook;

use std::sync::Arc;

use caravan_common::ParticipantId;

use crate::{hub::Hub, inbound::Inbound, outbound::Outbound, store::SpokeStore};

/// What the interfaces reach: this spoke's identity and its stages.
#[derive(Clone)]
pub struct Api {
    /// This spoke's participant id.
    pub me: ParticipantId,
    /// The store, read for listings, records and payloads.
    pub store: Arc<SpokeStore>,
    /// The link to the hub: connection, trust list held, log audit.
    pub hub: Arc<Hub>,
    /// Sending: `send`, taking a document in.
    pub outbound: Arc<Outbound>,
    /// Receiving: arrivals in the inbox.
    pub inbound: Arc<Inbound>,
}
