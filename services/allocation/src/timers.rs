//! Fires the engine's timers on the service's clock: a SKU whose projection changes by itself, an ETA notice
//! owed after its coalescing interval, a consent deadline. Each fires at its own due time, in order, also when a
//! simulated clock jumps past several at once.

use std::sync::Arc;
use std::time::Duration;

use backorder_runtime::Clock;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::engine::Engine;

pub struct Timers {
    pub engine: Engine,
    pub clock: Clock,
    /// Rung after every batch: it may have set an earlier timer.
    pub wake: Arc<Notify>,
}

/// How long to wait when no timer is set, or after a failure, before looking again.
const IDLE: Duration = Duration::from_secs(60);

impl Timers {
    fn fire_at(&self, due: DateTime<Utc>) -> DateTime<Utc> {
        if self.clock.is_simulated() {
            due
        } else {
            self.clock.now()
        }
    }

    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(shutdown);
        let mut last_fired = None;
        loop {
            let pause = match self.engine.next_due().await {
                // Firing a timer moves it on; one that stays put is a bug, and must not spin the loop.
                Ok(Some(due)) if last_fired == Some(due) => {
                    tracing::error!(%due, "a timer did not move on when fired; looking again in a minute");
                    last_fired = None;
                    Some(IDLE)
                }
                // A simulated clock replays each timer at its own time. On the wall clock a timer found overdue
                // (the service was down) fires as of now, so customers are not told dates already past.
                Ok(Some(due)) if due <= self.clock.now() => {
                    match self.engine.tick(self.fire_at(due)).await {
                        Ok(()) => {
                            metrics::counter!("bo_timers_fired_total").increment(1);
                            last_fired = Some(due);
                            continue;
                        }
                        Err(error) => {
                            tracing::warn!(%error, %due, "firing timers failed; trying again shortly");
                            Some(Duration::from_secs(1))
                        }
                    }
                }
                Ok(due) => {
                    tokio::select! {
                        _ = &mut shutdown => return Ok(()),
                        _ = self.wake.notified() => {}
                        _ = async {
                            match due {
                                Some(due) => self.clock.until(due).await,
                                None => std::future::pending().await,
                            }
                        } => {}
                        // A timer set by another instance is seen within a minute.
                        _ = tokio::time::sleep(IDLE) => {}
                    }
                    None
                }
                Err(error) => {
                    tracing::warn!(%error, "reading the next timer failed; trying again shortly");
                    Some(Duration::from_secs(1))
                }
            };
            if let Some(pause) = pause {
                tokio::select! {
                    _ = &mut shutdown => return Ok(()),
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}
