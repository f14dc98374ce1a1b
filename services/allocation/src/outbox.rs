//! Relays the outbox to JetStream: oldest first, with the row's message id as `Nats-Msg-Id`, deleting rows only
//! once the stream acked them. A crash between the ack and the delete publishes the row again, and the stream's
//! duplicate window drops it; consumers dedupe by the same id beyond that.
//!
//! A row that can never be published (over the server's max payload, an invalid subject) must not hold up the
//! rows behind it: it is parked on `<p>.dlq.allocation-outbox` and moved to `outbox_dead`, in the transaction
//! that deletes it from the outbox. Any other failure (no connection, a timeout) leaves the row where it is, to
//! be tried again.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::{self, ErrorCode};
use backorder_proto::v1::DeadLetter;
use backorder_runtime::jetstream::Bus;
use prost::Message as _;
use sqlx::PgPool;
use tokio::sync::Notify;

const BATCH: i64 = 500;
/// How often the outbox is looked at when nobody rang: covers rows committed by another instance.
const POLL: Duration = Duration::from_millis(500);
/// Where rows that can never be published are parked: `<p>.dlq.allocation-outbox`.
pub const DEAD_LETTER_SERVICE: &str = "allocation-outbox";
/// Room left in a dead letter for its headers (message id, traceparent) beside the fields.
const HEADROOM: usize = 4096;

pub struct Relay {
    pub pool: PgPool,
    pub bus: Bus,
    /// Rung by the engine after each commit, so events leave at once instead of at the next poll.
    pub wake: Arc<Notify>,
}

/// An outbox row.
#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    message_id: String,
    subject: String,
    payload: Vec<u8>,
    traceparent: Option<String>,
}

impl Row {
    fn trace(&self) -> Vec<(String, String)> {
        // In the trace of the message that caused the event, which committed it here.
        self.traceparent
            .iter()
            .map(|t| (backorder_runtime::trace::TRACEPARENT.to_string(), t.clone()))
            .collect()
    }
}

/// What became of a chunk of rows sent: the ids published, the rows refused for good (with why), and the
/// temporary failure that stopped the sending, if any.
struct Published<'r> {
    published: Vec<i64>,
    dead: Vec<(&'r Row, String)>,
    temporary: Option<anyhow::Error>,
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

    /// Publishes up to one batch; returns how many rows left the outbox (published or parked). Rows that failed
    /// for a temporary reason stay, and the first such error is returned once the others are settled.
    pub async fn relay_once(&self) -> anyhow::Result<usize> {
        let mut tx = self.pool.begin().await?;
        // skip locked: two instances relay different rows instead of waiting on each other.
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
        let Published {
            published,
            dead,
            temporary,
        } = self.publish_all(&rows).await;
        let parked = self.park(&dead).await;
        let (parked, unparked) = match parked {
            Ok(()) => (dead, None),
            // The rows stay in the outbox and are parked on the next attempt.
            Err(error) => (Vec::new(), Some(error)),
        };
        Self::settle(&mut tx, &published, &parked).await?;
        tx.commit().await?;
        metrics::counter!("bo_outbox_relayed_total").increment(published.len() as u64);
        metrics::counter!("bo_outbox_dead_total").increment(parked.len() as u64);
        tracing::debug!(
            published = published.len(),
            dead = parked.len(),
            "outbox relayed"
        );
        match unparked.or(temporary) {
            Some(error) => Err(error),
            None => Ok(published.len() + parked.len()),
        }
    }

    /// Publishes `rows` in order, all in flight at once, then awaits every ack (a publish is cheap, a round
    /// trip is not). A temporary failure stops the sending: later rows would overtake the failed one.
    async fn publish_all<'r>(&self, rows: &'r [Row]) -> Published<'r> {
        let mut temporary: Option<anyhow::Error> = None;
        let mut dead: Vec<(&Row, String)> = Vec::new();
        let mut acks = Vec::with_capacity(rows.len());
        for row in rows {
            let sent = self
                .bus
                .send_traced(
                    row.subject.clone(),
                    &row.message_id,
                    row.payload.clone().into(),
                    &row.trace(),
                )
                .await;
            match sent {
                Ok(ack) => acks.push((row, ack)),
                Err(error) if error.downcast_ref().is_some_and(is_permanent) => {
                    dead.push((row, format!("{error:#}")));
                }
                // Later rows would overtake this one: they wait for the next attempt.
                Err(error) => {
                    temporary = Some(error);
                    break;
                }
            }
        }
        let mut published = Vec::with_capacity(acks.len());
        for (row, ack) in acks {
            match ack.await {
                Ok(_) => published.push(row.id),
                Err(error) if is_permanent(&error) => dead.push((
                    row,
                    format!("publishing {} on {}: {error}", row.message_id, row.subject),
                )),
                Err(error) => {
                    let error = anyhow::Error::new(error).context(format!(
                        "waiting for the ack of {} on {}",
                        row.message_id, row.subject
                    ));
                    temporary.get_or_insert(error);
                }
            }
        }
        Published {
            published,
            dead,
            temporary,
        }
    }

    /// Deletes the published rows and moves the parked ones to `outbox_dead`, with their errors.
    async fn settle(
        tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
        published: &[i64],
        parked: &[(&Row, String)],
    ) -> Result<(), sqlx::Error> {
        sqlx::query("delete from outbox where id = any($1)")
            .bind(published)
            .execute(&mut **tx)
            .await?;
        if !parked.is_empty() {
            sqlx::query(
                "with moved as (
                     delete from outbox o using unnest($1::bigint[], $2::text[]) as d(id, error)
                     where o.id = d.id
                     returning o.id, o.message_id, o.subject, o.payload, o.traceparent, o.created_at, d.error)
                 insert into outbox_dead (id, message_id, subject, payload, traceparent, created_at, error)
                 select * from moved",
            )
            .bind(parked.iter().map(|(row, _)| row.id).collect::<Vec<_>>())
            .bind(parked.iter().map(|(_, e)| e.as_str()).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// Publishes a dead letter for each row, awaiting every ack.
    async fn park(&self, dead: &[(&Row, String)]) -> anyhow::Result<()> {
        let max_payload = self.bus.client.server_info().max_payload;
        let mut acks = Vec::with_capacity(dead.len());
        for (row, error) in dead {
            tracing::error!(
                message_id = row.message_id, subject = row.subject, %error,
                "an outbox row can never be published; parking it in outbox_dead and the dead-letter stream"
            );
            let letter = dead_letter(row, error, max_payload);
            let id = format!("{DEAD_LETTER_SERVICE}/{}", row.message_id);
            let subject = self.bus.subjects.dead_letter(DEAD_LETTER_SERVICE);
            acks.push(
                self.bus
                    .send_traced(subject, &id, letter.encode_to_vec().into(), &row.trace())
                    .await?,
            );
        }
        for ack in acks {
            ack.await.context("parking an outbox row")?;
        }
        Ok(())
    }
}

/// Whether a publish can never succeed, however often it is tried: the message is over the server's max
/// payload or the stream's max message size, or its subject is not a valid subject. Everything else (no
/// connection, a timeout, no stream for the subject yet, full storage) may pass later.
pub fn is_permanent(error: &PublishError) -> bool {
    match error.kind() {
        PublishErrorKind::MaxPayloadExceeded
        | PublishErrorKind::WrongLastMessageId
        | PublishErrorKind::WrongLastSequence => true,
        PublishErrorKind::Other => {
            let source = std::error::Error::source(error);
            source.is_some_and(|s| {
                s.is::<async_nats::SubjectError>()
                    || s.downcast_ref::<jetstream::Error>().is_some_and(|e| {
                        e.error_code() == ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM
                    })
            })
        }
        _ => false,
    }
}

/// The dead letter of a row: its subject, id, error and payload, the payload cut so the letter fits in
/// `max_payload` (the error says so). `stream` is empty: the row never reached one.
fn dead_letter(row: &Row, error: &str, max_payload: usize) -> DeadLetter {
    let mut letter = DeadLetter {
        service: crate::SERVICE.to_string(),
        subject: row.subject.clone(),
        stream: String::new(),
        stream_sequence: 0,
        payload: Vec::new(),
        // Our own errors are short; a long one is cut, not allowed to crowd out the payload.
        error: error.chars().take(1000).collect(),
        deliveries: 1,
        failed_at: Some(backorder_runtime::time::to_proto(chrono::Utc::now())),
        message_id: row.message_id.clone(),
    };
    let room = max_payload.saturating_sub(HEADROOM + letter.encoded_len() + 100);
    if row.payload.len() > room {
        letter.error = format!(
            "{}; payload cut to its first {room} of {} bytes",
            letter.error,
            row.payload.len()
        );
    }
    letter.payload = row.payload[..row.payload.len().min(room)].to_vec();
    letter
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(payload: usize) -> Row {
        Row {
            id: 1,
            message_id: "m-1".into(),
            subject: "bo.out.order.status".into(),
            payload: vec![7; payload],
            traceparent: None,
        }
    }

    #[test]
    fn a_dead_letter_keeps_a_payload_that_fits_and_cuts_one_that_does_not() {
        let small = dead_letter(&row(100), "too big", 1 << 20);
        assert_eq!(small.payload.len(), 100);
        assert_eq!(small.error, "too big");
        assert_eq!(
            (small.message_id.as_str(), small.subject.as_str()),
            ("m-1", "bo.out.order.status")
        );
        let big = dead_letter(&row(2 << 20), "too big", 1 << 20);
        assert!(
            big.encoded_len() + HEADROOM <= 1 << 20,
            "{}",
            big.encoded_len()
        );
        assert!(big.payload.len() > 1 << 19);
        assert!(
            big.error.ends_with(&format!("of {} bytes", 2 << 20)),
            "{}",
            big.error
        );
    }

    #[test]
    fn only_errors_no_retry_can_cure_are_permanent() {
        let permanent = [
            PublishError::new(PublishErrorKind::MaxPayloadExceeded),
            PublishError::with_source(
                PublishErrorKind::Other,
                async_nats::SubjectError::InvalidFormat,
            ),
        ];
        let temporary = [
            PublishError::new(PublishErrorKind::TimedOut),
            PublishError::new(PublishErrorKind::BrokenPipe),
            PublishError::new(PublishErrorKind::StreamNotFound),
            PublishError::new(PublishErrorKind::MaxAckPending),
            PublishError::with_source(PublishErrorKind::Other, "connection closed"),
        ];
        assert!(permanent.iter().all(is_permanent));
        assert!(!temporary.iter().any(is_permanent));
    }
}
