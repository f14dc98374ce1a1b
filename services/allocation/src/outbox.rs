//! Relays the outbox to JetStream: oldest first, with the row's message id as `Nats-Msg-Id`, deleting rows only
//! once the stream acked them. A crash between the ack and the delete publishes the row again, and the stream's
//! duplicate window drops it; consumers dedupe by the same id beyond that.

use std::sync::Arc;
use std::time::Duration;

use backorder_runtime::jetstream::Bus;
use sqlx::PgPool;
use tokio::sync::Notify;

const BATCH: i64 = 500;
/// How often the outbox is looked at when nobody rang: covers rows committed by another instance.
const POLL: Duration = Duration::from_millis(500);

pub struct Relay {
    pub pool: PgPool,
    pub bus: Bus,
    /// Rung by the engine after each commit, so events leave at once instead of at the next poll.
    pub wake: Arc<Notify>,
}

impl Relay {
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(shutdown);
        loop {
            loop {
                match self.relay_once().await {
                    Ok(n) if n < BATCH as usize => break,
                    Ok(_) => continue,
                    Err(error) => {
                        tracing::warn!(
                            error = format!("{error:#}"),
                            "outbox relay failed, will retry"
                        );
                        break;
                    }
                }
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
        // Drain what the last batches committed before stopping.
        while matches!(self.relay_once().await, Ok(n) if n > 0) {}
        Ok(())
    }

    /// Publishes up to one batch; returns how many rows went out.
    pub async fn relay_once(&self) -> anyhow::Result<usize> {
        let mut tx = self.pool.begin().await?;
        // skip locked: two instances relay different rows instead of waiting on each other.
        type Row = (i64, String, String, Vec<u8>, Option<String>);
        let rows: Vec<Row> = sqlx::query_as(
            "select id, message_id, subject, payload, traceparent from outbox
             order by id limit $1 for update skip locked",
        )
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        // All in flight at once, then every ack awaited: a publish is cheap, a round trip is not.
        let mut acks = Vec::with_capacity(rows.len());
        for (_, message_id, subject, payload, traceparent) in &rows {
            // In the trace of the message that caused the event, which committed it here.
            let trace: Vec<(String, String)> = traceparent
                .iter()
                .map(|t| (backorder_runtime::trace::TRACEPARENT.to_string(), t.clone()))
                .collect();
            acks.push(
                self.bus
                    .send_traced(subject.clone(), message_id, payload.clone().into(), &trace)
                    .await?,
            );
        }
        for ack in acks {
            ack.await?;
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        sqlx::query("delete from outbox where id = any($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        metrics::counter!("bo_outbox_relayed_total").increment(rows.len() as u64);
        tracing::debug!(published = rows.len(), "outbox relayed");
        Ok(rows.len())
    }
}
