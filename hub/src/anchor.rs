//! The TrustAnchor gRPC service: the current signed trust list, and a stream of new versions.
//! Open to every holder of a valid Caravan certificate, participant or operator.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::debug;

use caravan_proto::v1;

use crate::{identity, registry::Registry};

/// The service; cheap to clone.
#[derive(Clone)]
pub struct TrustAnchorService {
    pub registry: Arc<Registry>,
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

impl TrustAnchorService {
    fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let snapshot = self.registry.snapshot();
        let peer = identity::peer(request);
        let peer = snapshot
            .authorize_any(peer.as_ref())
            .map_err(|r| caravan_proto::status::to_status(&r))?;
        self.registry.note_certificate(peer);
        Ok(())
    }
}

#[tonic::async_trait]
impl v1::trust_anchor_server::TrustAnchor for TrustAnchorService {
    async fn current(
        &self,
        request: Request<v1::CurrentTrustListRequest>,
    ) -> Result<Response<v1::SignedTrustList>, Status> {
        self.authorize(&request)?;
        Ok(Response::new(self.registry.snapshot().signed.clone()))
    }

    type WatchStream = ReceiverStream<Result<v1::SignedTrustList, Status>>;

    async fn watch(
        &self,
        request: Request<v1::WatchTrustListRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.authorize(&request)?;
        let mut after = request.into_inner().after_version;
        let mut changes = self.registry.subscribe();
        let mut shutdown = self.shutdown.clone();
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(async move {
            loop {
                let snapshot = changes.borrow_and_update().clone();
                if snapshot.list.version > after {
                    after = snapshot.list.version;
                    debug!(version = after, "sending trust list");
                    if tx.send(Ok(snapshot.signed.clone())).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return },
                    _ = tx.closed() => return,
                    _ = shutdown.changed() => return,
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
