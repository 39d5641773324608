//! Expiry: messages not settled within their document type's time to live become EXPIRED,
//! recorded and flushed, and their senders' status streams are woken.

use tracing::info;

use caravan_common::Timestamp;

use super::state::Exchange;
use crate::{
    metrics::{Corridor, Event},
    store::StoreError,
};

impl Exchange {
    /// Expire what waited longer than its document type's time to live; run periodically.
    pub async fn expire(&self, ttl: &crate::config::MessageTtl) {
        let ttl = ttl.clone();
        let expired = match self
            .store
            .run(move |b| b.expire(Timestamp::now(), &|doc| ttl.millis(doc)))
            .await
        {
            Ok(expired) => expired,
            Err(StoreError::Unavailable(_)) => return,
            Err(e) => {
                tracing::error!(cause = %e, "expiry failed");
                return;
            }
        };
        if expired.is_empty() {
            return;
        }
        match self.commit.wait().await {
            Ok(_) | Err(StoreError::Unavailable(_)) => {}
            Err(e) => tracing::error!(cause = %e, "expiry not flushed"),
        }
        for message in &expired {
            self.metrics.count(&Corridor::of(message), Event::Expired);
            self.status_signals.notify(message.sender, 0);
        }
        info!(count = expired.len(), "messages expired");
    }
}
