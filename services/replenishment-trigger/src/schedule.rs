//! When something is due (a gathered request at the end of its window, a sent one at its re-raise time), the
//! scheduler publishes a `ReplenishmentTick` to the service's own consumer instead of acting itself: the
//! tick is then handled in stream order with the shortage reports, by whichever instance holds the consumer,
//! so a report and the sending of its request never race. A tick handled twice does nothing twice.

use std::time::Duration;

use async_nats::jetstream::kv as js_kv;
use backorder_proto::v1::ReplenishmentTick;
use backorder_runtime::jetstream::Bus;
use backorder_runtime::{Clock, time};
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::kv;
use crate::store::{Batch, Sent, keys};

/// Due times are read from the bucket again at least this often (another instance may have gathered a
/// request).
const POLL: Duration = Duration::from_secs(30);
/// After a tick, how long to wait for it to be handled before reading the due times again.
const HANDLED: Duration = Duration::from_secs(30);

/// What the handler tells the scheduler, so that it reads the bucket only when due times may have moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A request being gathered is due at this time.
    Due(DateTime<Utc>),
    /// A tick was handled: requests were sent or re-raised, so the due times are read again.
    Ticked,
}

pub struct Scheduler {
    pub bus: Bus,
    pub bucket: js_kv::Store,
    pub clock: Clock,
    pub changes: mpsc::UnboundedReceiver<Change>,
}

impl Scheduler {
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(shutdown);
        let mut next = self.read_next().await;
        loop {
            let clock = self.clock.clone();
            let due = async move {
                match next {
                    Some(at) => clock.until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                change = self.changes.recv() => {
                    match change {
                        Some(Change::Due(at)) => next = Some(next.map_or(at, |n| n.min(at))),
                        Some(Change::Ticked) => next = self.read_next().await,
                        // The handler is gone: the service is stopping.
                        None => return Ok(()),
                    }
                    continue;
                }
                _ = tokio::time::sleep(POLL) => {
                    next = self.read_next().await;
                    continue;
                }
                _ = due => {}
            }
            let at = self.clock.now();
            let tick = ReplenishmentTick {
                at: Some(time::to_proto(at)),
            };
            // Unique: two ticks at one (simulated) instant must both be handled.
            let id = format!("tick/{}/{}", at.to_rfc3339(), uuid::Uuid::new_v4().simple());
            match self
                .bus
                .publish(self.bus.subjects.replenishment_tick(), &id, &tick)
                .await
            {
                Ok(()) => tracing::debug!(%at, "tick published"),
                Err(error) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "tick not published; trying again"
                    )
                }
            }
            // Until the tick is handled the due time stays in the bucket: wait for it, then read again.
            let handled = async {
                while let Some(change) = self.changes.recv().await {
                    if change == Change::Ticked {
                        return;
                    }
                }
            };
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                _ = handled => {}
                _ = tokio::time::sleep(HANDLED) => {}
            }
            next = self.read_next().await;
        }
    }

    async fn read_next(&self) -> Option<DateTime<Utc>> {
        match self.next_due().await {
            Ok(next) => next,
            Err(error) => {
                tracing::warn!(%error, "due times not readable; reading them again shortly");
                None
            }
        }
    }

    /// The earliest time a gathered request is due or a sent one is to be re-raised.
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, String> {
        let mut next: Option<DateTime<Utc>> = None;
        let mut consider = |at: DateTime<Utc>| next = Some(next.map_or(at, |n| n.min(at)));
        for key in kv::keys(&self.bucket, keys::BATCHES).await? {
            if let Some(batch) = kv::read::<Batch>(&self.bucket, &key).await?.value {
                consider(batch.due_at);
            }
        }
        for key in kv::keys(&self.bucket, keys::SENT).await? {
            if let Some(sent) = kv::read::<Sent>(&self.bucket, &key).await?.value
                && !sent.reraised
            {
                consider(sent.reraise_at);
            }
        }
        Ok(next)
    }
}
