//! The hub's one error type at the gRPC boundary, and its mapping to statuses.

use caravan_common::{Refusal, RefusalCode};
use tonic::Status;

use crate::store::StoreError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The request broke a rule; the peer is told which.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The store failed; the peer is told to retry, the cause is logged here.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The hub has no room for the request now (`RESOURCE_EXHAUSTED`, no refusal): the peer
    /// retries later, as for an unreachable hub; nothing was stored.
    #[error("busy: {0}")]
    Busy(String),
}

impl HubError {
    pub fn refused(code: RefusalCode, detail: impl Into<String>) -> Self {
        Self::Refused(Refusal::new(code, detail))
    }
}

impl From<HubError> for Status {
    fn from(e: HubError) -> Status {
        match e {
            HubError::Refused(r) => caravan_proto::status::to_status(&r),
            // Logged once when the store faulted, not per request.
            HubError::Store(StoreError::Unavailable(fault)) => Status::unavailable(format!(
                "the hub's store is unavailable ({}); retry later",
                fault.kind.as_str()
            )),
            // Another replica's change came first: the caller reads again and retries.
            HubError::Store(e @ StoreError::Stale(_)) => Status::aborted(e.to_string()),
            // What this engine does not do, and what to do instead.
            HubError::Store(e @ StoreError::Unsupported(_)) => {
                Status::failed_precondition(e.to_string())
            }
            HubError::Store(e) => {
                tracing::error!(cause = %e, "store failure");
                Status::unavailable("the hub's store is unavailable; retry later")
            }
            HubError::Busy(why) => Status::resource_exhausted(why),
        }
    }
}
