//! The consume loop every service runs: take what is ready (up to a batch), hand it to the service's handler,
//! then settle each message by the outcome the handler gave. A message is acked only after the handler
//! returned, that is after its effects are stored; one that keeps failing is parked in the dead-letter stream
//! with its error instead of being retried forever, so the flow behind it keeps moving.
//!
//! Three faults the handler never sees are handled here too: a message whose earlier deliveries crashed the
//! process or hung (delivered more than `max_deliver` times) is parked before it is handed out again; a batch
//! still being handled is kept by in-progress acks, so slow work is not delivered a second time meanwhile;
//! and a durable consumer deleted on the server is made again (`/ready` fails until it is).

mod in_progress;
mod settle;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull::MessagesErrorKind};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::jetstream::{Bus, Messages};
use in_progress::{Arriving, Pulled, keep_in_progress, next_from_backlog};

/// One message as a handler sees it.
pub struct Delivery {
    pub subject: String,
    pub payload: Bytes,
    /// The publisher's `Nats-Msg-Id`, if it sent one.
    pub message_id: Option<String>,
    pub stream: String,
    pub stream_sequence: u64,
    /// 1 on first delivery.
    pub deliveries: i64,
    /// When the stream stored it.
    pub published: DateTime<Utc>,
    /// The publisher's trace context (`traceparent`, `tracestate`), for the span that handles it.
    pub trace: Vec<(String, String)>,
    message: jetstream::Message,
}

impl Delivery {
    fn new(message: jetstream::Message) -> Result<Self, async_nats::Error> {
        let info = message.info()?;
        let (stream, stream_sequence, deliveries, published) = (
            info.stream.to_string(),
            info.stream_sequence,
            info.delivered,
            info.published,
        );
        let message_id = message
            .headers
            .as_ref()
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
            .map(|v| v.as_str().to_string());
        Ok(Self {
            subject: message.subject.to_string(),
            payload: message.payload.clone(),
            message_id,
            stream,
            stream_sequence,
            deliveries,
            published,
            trace: crate::trace::from_headers(message.headers.as_ref()),
            message,
        })
    }

    /// An id for this stored message that is the same on every delivery.
    pub fn stream_id(&self) -> String {
        format!("{}/{}", self.stream, self.stream_sequence)
    }
}

/// What became of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Handled (or found already handled): ack it.
    Done,
    /// It can never succeed (bad input the service cannot answer otherwise): park it now.
    Reject(String),
    /// It failed in a way that may pass (a lost connection): deliver it again after a pause; after
    /// `max_deliver` deliveries it is parked.
    Retry(String),
    /// It depends on another message that is not handled yet (a cancellation that overtook its order):
    /// deliver it again after a pause, for up to `max_wait` after it was stored; then it is parked.
    Wait(String),
}

/// A service's handling of a batch: one outcome per delivery, in order.
pub trait Handler: Send {
    fn handle(&mut self, batch: &[Delivery]) -> impl Future<Output = Vec<Outcome>> + Send;
}

pub struct Worker {
    pub bus: Bus,
    /// Names the dead-letter subject and the `service` field of parked messages.
    pub service: &'static str,
    pub batch_size: usize,
    pub max_deliver: i64,
    pub max_wait: Duration,
}

impl Worker {
    /// Runs until `shutdown` resolves; the batch in hand is finished and settled first. A consumer deleted on
    /// the server is made again with the configuration it was made with (one from a bare pull stream cannot
    /// be: then this returns an error, as before).
    pub async fn run(
        &self,
        messages: impl Into<Messages>,
        handler: &mut impl Handler,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let mut messages = messages.into();
        messages
            .set_server_max_deliver(crate::jetstream::server_max_deliver(self.max_deliver))
            .await?;
        let mut advisories = match messages.consumer() {
            Some((stream, name)) => Some(
                self.bus
                    .client
                    .subscribe(max_deliveries_advisory(stream, name))
                    .await?,
            ),
            None => None,
        };
        tokio::pin!(shutdown);
        loop {
            let Some(why) = self
                .consume(&mut messages, handler, &mut advisories, shutdown.as_mut())
                .await
            else {
                messages.release().await;
                return Ok(());
            };
            if !messages.can_reopen() {
                anyhow::bail!("the consumer's message stream ended ({why})");
            }
            if self.reopen(&mut messages, &why, shutdown.as_mut()).await {
                return Ok(());
            }
        }
    }

    /// Takes batches until `shutdown` (`None`) or until the pull stream ended or its consumer is gone on the
    /// server (`Some(why)`).
    async fn consume(
        &self,
        messages: &mut Messages,
        handler: &mut impl Handler,
        advisories: &mut Option<async_nats::Subscriber>,
        mut shutdown: Pin<&mut impl Future<Output = ()>>,
    ) -> Option<String> {
        let progress_every = (messages.ack_wait() / 3).max(Duration::from_millis(100));
        let mut batches = (&mut *messages).ready_chunks(self.batch_size);
        // What arrived while a batch was being handled: kept in progress meanwhile, handled next.
        let mut backlog: VecDeque<Vec<Pulled>> = VecDeque::new();
        loop {
            let batch = match next_from_backlog(&mut backlog, self.batch_size) {
                Some(batch) => Some(batch),
                None => tokio::select! {
                    biased;
                    _ = &mut shutdown => {
                        hand_back(&mut batches).await;
                        return None;
                    }
                    advisory = next_advisory(advisories) => {
                        self.max_deliveries_reached(&advisory.payload);
                        continue;
                    }
                    batch = batches.next() => batch,
                },
            };
            let Some(batch) = batch else {
                return Some("the consumer's message stream ended".into());
            };
            let (deliveries, suspect) = self.read(batch);
            let deliveries = self.park_exhausted(deliveries).await;
            for part in segments(&deliveries) {
                let arriving = Arriving {
                    batches: &mut batches,
                    backlog: &mut backlog,
                };
                self.handle_and_settle(handler, &deliveries[part], progress_every, arriving)
                    .await;
            }
            if let Some(error) = suspect {
                drop(batches);
                if messages.is_missing().await {
                    return Some(format!("{error}; the server does not know the consumer"));
                }
                batches = (&mut *messages).ready_chunks(self.batch_size);
            }
        }
    }

    /// The readable deliveries of `batch`, the others logged and skipped.
    fn read(&self, batch: Vec<Pulled>) -> (Vec<Delivery>, Option<String>) {
        // An error that may mean the consumer is gone; asked of the server after the batch.
        let mut suspect = None;
        let mut deliveries = Vec::with_capacity(batch.len());
        for message in batch {
            let error = match message {
                Ok(message) => match Delivery::new(message) {
                    Ok(delivery) => {
                        deliveries.push(delivery);
                        continue;
                    }
                    Err(error) => error.to_string(),
                },
                Err(error) => {
                    if matches!(
                        error.kind(),
                        MessagesErrorKind::ConsumerDeleted
                            | MessagesErrorKind::NoResponders
                            | MessagesErrorKind::MissingHeartbeat
                    ) {
                        suspect = Some(error.to_string());
                    }
                    error.to_string()
                }
            };
            // Missed heartbeats and the like: the pull stream recovers by itself, and an unacked
            // message comes again after ack_wait.
            tracing::warn!(service = self.service, %error, "skipping an unreadable delivery");
        }
        (deliveries, suspect)
    }

    /// Parks the deliveries that must not reach the handler again and returns the rest.
    async fn park_exhausted(&self, deliveries: Vec<Delivery>) -> Vec<Delivery> {
        // Delivered more often than a failing handler may be: earlier deliveries crashed the process or
        // hung past the ack wait without settling. Parked before the handler sees it again.
        let (exhausted, deliveries): (Vec<_>, Vec<_>) = deliveries
            .into_iter()
            .partition(|d| d.deliveries > self.max_deliver);
        for delivery in &exhausted {
            let why = exhausted_reason(delivery.deliveries, self.max_deliver);
            self.count(delivery, "exhausted");
            if let Err(error) = self.park(delivery, why).await {
                tracing::warn!(service = self.service, id = %delivery.stream_id(), %error, "could not settle a message");
            }
        }
        deliveries
    }

    /// Hands `part` to the handler, keeping it and what arrives meanwhile in progress, then settles each
    /// message by its outcome.
    async fn handle_and_settle<S>(
        &self,
        handler: &mut impl Handler,
        part: &[Delivery],
        progress_every: Duration,
        arriving: Arriving<'_, S>,
    ) where
        S: futures::Stream<Item = Vec<Pulled>> + Unpin,
    {
        let started = std::time::Instant::now();
        let outcomes = keep_in_progress(handler.handle(part), part, progress_every, arriving).await;
        metrics::histogram!("bo_batch_seconds", "service" => self.service)
            .record(started.elapsed().as_secs_f64());
        debug_assert_eq!(outcomes.len(), part.len());
        for (delivery, outcome) in part.iter().zip(outcomes) {
            self.settle(delivery, outcome).await;
        }
    }

    /// Makes the consumer again, retrying with a growing pause; true when `shutdown` came first.
    async fn reopen(
        &self,
        messages: &mut Messages,
        why: &str,
        mut shutdown: Pin<&mut impl Future<Output = ()>>,
    ) -> bool {
        let consumer = messages.label().unwrap_or_default();
        tracing::error!(service = self.service, %consumer, %why, "consumer lost; making it again");
        metrics::counter!("bo_consumer_reopened_total", "service" => self.service).increment(1);
        for attempt in 1.. {
            match messages.reopen(why).await {
                Ok(()) => {
                    tracing::info!(service = self.service, %consumer, "consumer made again; consuming");
                    return false;
                }
                Err(error) => {
                    let delay = retry_delay(attempt);
                    tracing::error!(
                        service = self.service, %consumer, error = format!("{error:#}"), retry_in = ?delay,
                        "could not make the consumer again; /ready fails until it is"
                    );
                    tokio::select! {
                        _ = &mut shutdown => return true,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        unreachable!("the attempts never run out")
    }
}

/// On shutdown, what was pulled and not handled yet goes back at once (a nak without delay): the instance
/// that takes over gets it before anything newer, instead of after its ack wait.
async fn hand_back(batches: &mut (impl futures::Stream<Item = Vec<Pulled>> + Unpin)) {
    use futures::FutureExt as _;
    while let Some(Some(batch)) = batches.next().now_or_never() {
        for message in batch.into_iter().flatten() {
            if let Err(error) = message.ack_with(jetstream::AckKind::Nak(None)).await {
                tracing::debug!(%error, "could not hand a message back; it comes again after its ack wait");
            }
        }
    }
}

/// Why a message delivered `deliveries` times is parked without being handed out again: each delivery but
/// this one ended without the handler settling it (it crashed the process, or hung past the ack wait).
pub fn exhausted_reason(deliveries: i64, max_deliver: i64) -> String {
    format!(
        "crashed or timed out {} times (delivery {deliveries}, more than BO_MAX_DELIVER={max_deliver})",
        deliveries - 1
    )
}

/// How a batch is handed to the handler, in order: runs of first deliveries together, each redelivered
/// message on its own. A redelivery may follow a crash in the handler; alone, it cannot take the work of a
/// whole batch down with it again, and what came before it in the crashed batch is settled first.
pub fn segments(deliveries: &[Delivery]) -> Vec<std::ops::Range<usize>> {
    segment_by(&deliveries.iter().map(|d| d.deliveries).collect::<Vec<_>>())
}

fn segment_by(deliveries: &[i64]) -> Vec<std::ops::Range<usize>> {
    let mut parts: Vec<std::ops::Range<usize>> = Vec::new();
    for (i, &count) in deliveries.iter().enumerate() {
        match parts.last_mut() {
            Some(last) if count <= 1 && deliveries[last.start] <= 1 => last.end = i + 1,
            _ => parts.push(i..i + 1),
        }
    }
    parts
}

/// The advisory the server publishes when it stops delivering a message of `stream`'s `consumer`.
pub fn max_deliveries_advisory(stream: &str, consumer: &str) -> String {
    format!("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{consumer}")
}

/// The next advisory, or never when there is no subscription (or it ended).
async fn next_advisory(advisories: &mut Option<async_nats::Subscriber>) -> async_nats::Message {
    if let Some(subscription) = advisories
        && let Some(message) = subscription.next().await
    {
        return message;
    }
    *advisories = None;
    futures::future::pending().await
}

/// 1 s, 2 s, 4 s ... capped at a minute.
pub fn retry_delay(deliveries: i64) -> Duration {
    let exponent = deliveries.clamp(1, 7) as u32 - 1;
    Duration::from_secs(2u64.pow(exponent).min(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_and_caps() {
        let delays: Vec<u64> = (0..10).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn first_deliveries_go_together_and_redeliveries_alone() {
        assert_eq!(segment_by(&[]), Vec::<std::ops::Range<usize>>::new());
        assert_eq!(segment_by(&[1, 1, 1]), vec![0..3_usize]);
        assert_eq!(
            segment_by(&[1, 2, 1, 1, 3, 3, 1]),
            [0..1, 1..2, 2..4, 4..5, 5..6, 6..7]
        );
        assert_eq!(segment_by(&[2, 1]), [0..1, 1..2]);
    }

    #[test]
    fn the_backlog_is_joined_into_full_batches_in_order() {
        let mut backlog: VecDeque<Vec<u32>> = [vec![1], vec![2, 3], vec![4, 5, 6], vec![7]].into();
        assert_eq!(next_from_backlog(&mut backlog, 4), Some(vec![1, 2, 3, 4]));
        assert_eq!(next_from_backlog(&mut backlog, 4), Some(vec![5, 6, 7]));
        assert_eq!(next_from_backlog(&mut backlog, 4), None);

        let mut oversized: VecDeque<Vec<u32>> = [vec![1, 2, 3, 4, 5], vec![6]].into();
        assert_eq!(next_from_backlog(&mut oversized, 2), Some(vec![1, 2]));
        assert_eq!(next_from_backlog(&mut oversized, 2), Some(vec![3, 4]));
        assert_eq!(next_from_backlog(&mut oversized, 2), Some(vec![5, 6]));
        assert_eq!(next_from_backlog(&mut oversized, 2), None);
    }

    proptest::proptest! {
        #[test]
        fn every_message_comes_out_once_in_order_in_full_batches(
            chunks in proptest::collection::vec(proptest::collection::vec(0u8..1, 1..8), 0..20),
            limit in 1usize..10,
        ) {
            let total: usize = chunks.iter().map(Vec::len).sum();
            let mut n = 0u32;
            let mut backlog: VecDeque<Vec<u32>> = chunks
                .iter()
                .map(|c| c.iter().map(|_| { n += 1; n }).collect())
                .collect();
            let mut batches = Vec::new();
            while let Some(batch) = next_from_backlog(&mut backlog, limit) {
                batches.push(batch);
            }
            let out: Vec<u32> = batches.iter().flatten().copied().collect();
            proptest::prop_assert_eq!(out, (1..=total as u32).collect::<Vec<_>>());
            for (i, batch) in batches.iter().enumerate() {
                proptest::prop_assert!(!batch.is_empty() && batch.len() <= limit);
                if i + 1 < batches.len() {
                    proptest::prop_assert_eq!(batch.len(), limit, "only the last batch may be short");
                }
            }
        }
    }

    #[test]
    fn the_exhausted_reason_counts_the_deliveries_that_did_not_settle() {
        assert_eq!(
            exhausted_reason(6, 5),
            "crashed or timed out 5 times (delivery 6, more than BO_MAX_DELIVER=5)"
        );
    }
}
