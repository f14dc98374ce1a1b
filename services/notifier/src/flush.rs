//! Sends what is due: each pending entry (one order's events for one channel) once its coalescing window has
//! passed on the service's clock (and, for SMS, the customer's quiet hours have ended) becomes one message.
//! The message is decided first and recorded in the entry (`sending`: its id, the events it settles, the
//! rendered message), then published with its id as `Nats-Msg-Id`, then every event it tells is recorded as
//! sent, then its events leave the entry. Should publishing fail or the service stop in between, the next
//! pass publishes exactly that message under that id again (the stream drops a repeat within its duplicate
//! window), or finds its events recorded and only settles the entry. Events that arrive meanwhile never
//! change it; they wait for the next message.

use std::sync::Arc;
use std::time::Duration;

use backorder_runtime::Clock;
use chrono::{DateTime, Utc};
use futures::StreamExt as _;

pub use crate::entry::due_at;
use crate::send::visit;
use crate::shared::Shared;

/// How often the flusher looks anyway, for entries another instance took (it sends its own when they fall
/// due, and this instance sends what it took).
const POLL: Duration = Duration::from_secs(5);

/// Entries sent at a time.
const CONCURRENCY: usize = 32;

/// Runs passes until `shutdown`: after each, waits for the next entry to fall due, a new event, or [`POLL`].
///
/// Which entries a pass visits: after new events, the entries this instance just stored them in; else (at
/// start, when an entry falls due, every [`POLL`], after a failed pass) every entry in the bucket, which
/// finds those stored before a restart or by another instance. Listing every entry after each batch of
/// events made the work of a burst grow with the square of its size.
pub async fn run(
    shared: Arc<Shared>,
    clock: Clock,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    let mut every_entry = true;
    let mut next: Option<DateTime<Utc>> = None;
    loop {
        let keys = (!every_entry).then(|| shared.take_stored());
        let whole = keys.is_none();
        let failed = match pass(&shared, clock.now(), keys).await {
            Ok(due) if whole => {
                next = due;
                false
            }
            // Entries this pass did not visit keep the due time the last whole pass found.
            Ok(due) => {
                next = earliest(next, due);
                false
            }
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "flush pass failed, trying again"
                );
                // Tried again on the next wake (an event, or POLL), not at once: a failing bucket must not
                // be asked in a tight loop.
                next = None;
                true
            }
        };
        let due = async {
            match next {
                Some(at) => clock.until(at).await,
                None => futures::future::pending().await,
            }
        };
        let new_events = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = shared.stored.notified() => true,
            _ = due => false,
            _ = tokio::time::sleep(POLL) => false,
        };
        every_entry = failed || !new_events;
    }
}

fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Sends the entries under `keys` (`None`: every pending entry) that are due at `now`; the earliest time an
/// entry left waiting falls due.
pub async fn pass(
    shared: &Shared,
    now: DateTime<Utc>,
    keys: Option<Vec<String>>,
) -> anyhow::Result<Option<DateTime<Utc>>> {
    let pending_keys = match keys {
        Some(keys) => keys,
        None => pending_keys(shared).await?,
    };
    // Entries are independent (one order and channel each): several are sent at a time.
    let results: Vec<anyhow::Result<Option<DateTime<Utc>>>> = futures::stream::iter(pending_keys)
        .map(|key| async move { visit(shared, &key, now).await })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut next: Option<DateTime<Utc>> = None;
    for result in results {
        next = earliest(next, result?);
    }
    Ok(next)
}

/// The key of every pending entry in the bucket.
async fn pending_keys(shared: &Shared) -> anyhow::Result<Vec<String>> {
    let mut keys = match shared.buckets.state.keys().await {
        Ok(keys) => keys.boxed(),
        Err(error) => anyhow::bail!("listing pending entries: {error}"),
    };
    let mut pending_keys = Vec::new();
    while let Some(key) = keys.next().await {
        let key = key?;
        if key.starts_with("pending.") {
            pending_keys.push(key);
        }
    }
    Ok(pending_keys)
}
