//! What replicas tell each other: `NOTIFY` in each transaction, `LISTEN` on a connection of
//! each replica's own, reconnected with backoff, and a slow poll in case a notification was lost.

use super::*;

/// A change another replica (or this one) committed, as the notifications tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Something new for this recipient to receive.
    Queue(ParticipantId),
    /// One of this sender's messages changed state.
    Status(ParticipantId),
    /// The registry changed.
    Registry,
    /// Notifications may have been missed (a reconnection, or the slow poll): look again at
    /// everything.
    Everything,
}

/// One session of listening: LISTEN on every channel, then pass notifications on until the
/// connection ends.
pub(super) async fn listen(
    settings: &PostgresSettings,
    own: &str,
    changes: &broadcast::Sender<Change>,
    poll: &mut tokio::time::Interval,
) -> String {
    match listen_once(settings, own, changes, poll).await {
        Err(e) => e,
    }
}

pub(super) async fn listen_once(
    settings: &PostgresSettings,
    own: &str,
    changes: &broadcast::Sender<Change>,
    poll: &mut tokio::time::Interval,
) -> Result<std::convert::Infallible, String> {
    let config = settings.driver_config()?;
    let Connected {
        client,
        mut notifications,
        ended,
    } = connect(settings, &config).await?;
    let ended = async { ended.await.unwrap_or_else(|e| e.to_string()) };
    let mut driver = std::pin::pin!(ended);
    let channels =
        format!("LISTEN {QUEUE_CHANNEL}; LISTEN {STATUS_CHANNEL}; LISTEN {REGISTRY_CHANNEL}");
    let subscribe = client.batch_execute(&channels);
    tokio::select! {
        done = subscribe => done.map_err(|e| e.to_string())?,
        ended = &mut driver => return Err(ended),
    }
    // Anything committed while this replica was not listening is looked at again.
    let _ = changes.send(Change::Everything);
    loop {
        let change = tokio::select! {
            ended = &mut driver => return Err(ended),
            _ = poll.tick() => Change::Everything,
            n = notifications.recv() => match n {
                None => return Err("the connection closed".into()),
                Some(n) => {
                    // "<replica> <what>": this replica woke its own streams already.
                    let Some((replica, what)) = n.payload().split_once(' ') else {
                        continue;
                    };
                    if replica == own {
                        continue;
                    }
                    match n.channel() {
                        QUEUE_CHANNEL => match what.parse() {
                            Ok(p) => Change::Queue(p),
                            Err(_) => continue,
                        },
                        STATUS_CHANNEL => match what.parse() {
                            Ok(p) => Change::Status(p),
                            Err(_) => continue,
                        },
                        _ => Change::Registry,
                    }
                }
            },
        };
        // Nobody may be subscribed yet: the connection stays for later subscribers.
        let _ = changes.send(change);
    }
}
