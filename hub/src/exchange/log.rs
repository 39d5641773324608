//! LogConsistency: proofs that the exchange log of one size extends the logs of smaller sizes,
//! for spokes auditing the heads they were shown.

use caravan_common::RefusalCode;
use caravan_proto::v1;

use super::state::Exchange;
use crate::error::HubError;

impl Exchange {
    /// Prove that the log of size `second` extends the logs of each size in `first`.
    pub(super) async fn log_consistency(
        &self,
        request: v1::LogConsistencyRequest,
    ) -> Result<v1::LogConsistencyResponse, HubError> {
        const MAX_PROOFS: usize = 1024;
        let head = self.commit.heads().current();
        let (firsts, second) = (request.first, request.second);
        if firsts.len() > MAX_PROOFS {
            return Err(HubError::refused(
                RefusalCode::MalformedRequest,
                format!(
                    "at most {MAX_PROOFS} consistency proofs per request; asked for {}",
                    firsts.len()
                ),
            ));
        }
        if let Some(bad) = firsts
            .iter()
            .find(|&&first| first == 0 || first > second || second > head.tree_size)
        {
            return Err(HubError::refused(
                RefusalCode::MalformedRequest,
                format!(
                    "a consistency proof needs 1 <= first <= second <= {} (the log's size); asked for {bad} and {second}",
                    head.tree_size
                ),
            ));
        }
        let heads = self.commit.heads().clone();
        let proofs = self
            .store
            .run(move |b| {
                firsts
                    .iter()
                    .map(|&first| {
                        heads
                            .consistency(b, first, second)
                            .map(|hashes| v1::ConsistencyProof { hashes })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        Ok(v1::LogConsistencyResponse {
            proofs,
            latest: Some(head.to_wire()),
        })
    }
}
