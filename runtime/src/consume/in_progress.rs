//! Keeping a batch, and what arrives while it is handled, from running out its ack wait.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull::MessagesError};
use futures::StreamExt;

use super::Delivery;

pub(super) type Pulled = Result<jetstream::Message, MessagesError>;

/// The messages the pull stream hands out while a batch is being handled. They are taken in as they come
/// and kept in progress too: left in the client's buffer they would run out their ack wait while the
/// handler waits (for a database that is down, say), be delivered again and again, and arrive with a
/// delivery count that makes them look like poison. The consumer's `max_ack_pending` bounds how many.
pub(super) struct Arriving<'a, S> {
    pub(super) batches: &'a mut S,
    pub(super) backlog: &'a mut VecDeque<Vec<Pulled>>,
}

/// Drives `handling` and meanwhile tells the server every `every` that each of `deliveries`, and each
/// message arriving meanwhile, is still being worked on: a batch slower than the ack wait is not delivered
/// again while it is handled, and neither is what waits behind it.
pub(super) async fn keep_in_progress<T, S>(
    handling: impl Future<Output = T>,
    deliveries: &[Delivery],
    every: Duration,
    arriving: Arriving<'_, S>,
) -> T
where
    S: futures::Stream<Item = Vec<Pulled>> + Unpin,
{
    let Arriving { batches, backlog } = arriving;
    tokio::pin!(handling);
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let mut stream_ended = false;
    loop {
        let take = !stream_ended;
        tokio::select! {
            done = &mut handling => return done,
            _ = ticks.tick() => {
                let waiting = backlog.iter().flatten().filter_map(|m| m.as_ref().ok());
                for message in deliveries.iter().map(|d| &d.message).chain(waiting) {
                    if let Err(error) = message.ack_with(AckKind::Progress).await {
                        tracing::warn!(subject = %message.subject, %error, "could not extend the ack wait");
                    }
                }
            }
            batch = batches.next(), if take => match batch {
                Some(batch) => backlog.push_back(batch),
                // Seen again by the loop when the backlog is empty.
                None => stream_ended = true,
            },
        }
    }
}

/// The next batch from what arrived while the last one was handled: its chunks joined in order, up to
/// `limit` messages. The pull stream hands out whatever is ready, often a message or two at a time; handled
/// chunk by chunk, a backlog of hundreds would cost a transaction per chunk instead of one per batch.
pub(super) fn next_from_backlog<T>(backlog: &mut VecDeque<Vec<T>>, limit: usize) -> Option<Vec<T>> {
    let limit = limit.max(1);
    let mut batch = backlog.pop_front()?;
    if batch.len() > limit {
        backlog.push_front(batch.split_off(limit));
        return Some(batch);
    }
    while batch.len() < limit {
        let Some(mut chunk) = backlog.pop_front() else {
            break;
        };
        let room = limit - batch.len();
        if chunk.len() > room {
            backlog.push_front(chunk.split_off(room));
        }
        batch.append(&mut chunk);
    }
    Some(batch)
}
