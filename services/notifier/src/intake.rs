//! Intake: the consumer of `<p>.customer.event`. An event is checked ([`read_event`]; a bad one is parked)
//! and, per channel the customer has an address for, added to its order's pending entry, or, without a
//! coalescing window, its message decided at once (`send.rs`).

use std::sync::Arc;

use backorder_proto::v1::CustomerEvent;
use backorder_proto::v1::customer_event::Kind;
use backorder_runtime::consume::{Delivery, Handler, Outcome};
use futures::StreamExt as _;
use prost::Message as _;
use tracing::Instrument;

use crate::coalesce::Channel;
use crate::send;
use crate::shared::Shared;
use crate::store::{self, Pending};

/// Decodes a customer event and checks it has what every notification needs. Pure; the error is the reason
/// the event is parked.
pub fn read_event(bytes: &[u8]) -> Result<CustomerEvent, String> {
    let event =
        CustomerEvent::decode(bytes).map_err(|e| format!("cannot decode CustomerEvent: {e}"))?;
    let mut missing = Vec::new();
    if event.event_id.trim().is_empty() {
        missing
            .push("event_id is missing, so the notifications would have no stable id".to_string());
    }
    if event.order_id.trim().is_empty() {
        missing.push(
            "order_id is missing, so the customer could not tell which order it is about"
                .to_string(),
        );
    }
    if event.customer.is_none() {
        missing.push("customer is missing, so there is nobody to notify".to_string());
    }
    match Kind::try_from(event.kind) {
        Ok(Kind::Unspecified) => {
            missing.push("kind is KIND_UNSPECIFIED, so there is nothing to tell".to_string())
        }
        Ok(_) => {}
        Err(_) => missing.push(format!(
            "kind {} is not a known CustomerEvent.Kind",
            event.kind
        )),
    }
    if missing.is_empty() {
        Ok(event)
    } else {
        Err(missing.join("; "))
    }
}

pub(crate) struct Intake {
    pub shared: Arc<Shared>,
}

impl Handler for Intake {
    async fn handle(&mut self, batch: &[Delivery]) -> Vec<Outcome> {
        // Events of one order are taken in order (they coalesce in arrival order); orders side by side.
        let mut orders: std::collections::HashMap<String, Vec<usize>> = Default::default();
        for (i, delivery) in batch.iter().enumerate() {
            let order = CustomerEvent::decode(delivery.payload.as_ref())
                .map(|e| e.order_id)
                .unwrap_or_default();
            orders.entry(order).or_default().push(i);
        }
        let this = &*self;
        let taken: Vec<Vec<(usize, Outcome)>> = futures::stream::iter(orders.into_values())
            .map(|indices| async move {
                let mut out = Vec::with_capacity(indices.len());
                for i in indices {
                    let delivery = &batch[i];
                    let span = tracing::info_span!(
                        "customer_event",
                        order_id = tracing::field::Empty,
                        event_id = tracing::field::Empty,
                        seq = delivery.stream_sequence
                    );
                    backorder_runtime::trace::follow(&span, &delivery.trace);
                    out.push((i, this.take(delivery).instrument(span).await));
                }
                out
            })
            .buffer_unordered(32)
            .collect()
            .await;
        let mut outcomes = vec![Outcome::Done; batch.len()];
        for (i, outcome) in taken.into_iter().flatten() {
            outcomes[i] = outcome;
        }
        if outcomes.contains(&Outcome::Done) {
            self.shared.stored.notify_one();
        }
        outcomes
    }
}

impl Intake {
    async fn take(&self, delivery: &Delivery) -> Outcome {
        let event = match read_event(&delivery.payload) {
            Ok(event) => event,
            Err(reason) => {
                tracing::warn!(%reason, "customer event refused");
                return Outcome::Reject(reason);
            }
        };
        let span = tracing::Span::current();
        span.record("order_id", event.order_id.as_str());
        span.record("event_id", event.event_id.as_str());
        let customer = event.customer.clone().unwrap_or_default();
        let kind = Kind::try_from(event.kind).map_or("?", |k| k.as_str_name());
        for channel in Channel::ALL {
            if channel.address(&customer).is_none() {
                tracing::debug!(
                    channel = channel.name(),
                    kind,
                    "no address, channel skipped"
                );
                continue;
            }
            match self.store(&event, &delivery.trace, channel).await {
                Ok(what) => {
                    metrics::counter!("bo_notifier_events_total", "channel" => channel.name(), "outcome" => what)
                        .increment(1);
                    tracing::info!(channel = channel.name(), kind, what, "customer event taken");
                }
                Err(error) => return Outcome::Retry(format!("{error:#}")),
            }
        }
        Outcome::Done
    }

    /// Adds the event to its order's pending entry for `channel`; what became of it.
    async fn store(
        &self,
        event: &CustomerEvent,
        trace: &[(String, String)],
        channel: Channel,
    ) -> anyhow::Result<&'static str> {
        // Whether the event was told already, and whether the customer opted out, is asked when the entry is
        // sent (an opt-out may come during the window): here the event is only stored.
        let buckets = &self.shared.buckets;
        let key = store::pending_key(channel, &event.order_id);
        // Without a coalescing window a new entry is due as it is made: its message is decided now.
        if self.shared.config.coalesce.is_zero() {
            let now = self.shared.config.common.clock.now();
            let mut pending = Pending::new(&event.order_id, channel, now);
            pending.add(event);
            pending.trace = trace.to_vec();
            if send::send_at_once(&self.shared, &key, pending, event.clone(), now).await? {
                return Ok("decided");
            }
        }
        // Another instance (or the flusher) may write the same key: compare and swap, and read again on a
        // conflict.
        for _ in 0..10 {
            let (value, revision) = store::read(&buckets.state, &key).await?;
            let mut pending = match value {
                Some(bytes) => Pending::decode(&bytes).unwrap_or_else(|error| {
                    tracing::warn!(%error, key, "unreadable pending entry replaced");
                    Pending::new(
                        &event.order_id,
                        channel,
                        self.shared.config.common.clock.now(),
                    )
                }),
                None => Pending::new(
                    &event.order_id,
                    channel,
                    self.shared.config.common.clock.now(),
                ),
            };
            if !pending.add(event) {
                return Ok("already_pending");
            }
            pending.trace = trace.to_vec();
            if store::write(&buckets.state, &key, pending.encode(), revision)
                .await?
                .is_some()
            {
                self.shared.note_stored(&key);
                return Ok("pending");
            }
        }
        anyhow::bail!("{key} kept changing while the event was added")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backorder_proto::v1::Customer;

    fn event() -> CustomerEvent {
        CustomerEvent {
            event_id: "ev-1".into(),
            kind: Kind::Backordered as i32,
            order_id: "SO-1".into(),
            customer: Some(Customer {
                email: "buyer@example.com".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_complete_event_is_read() {
        assert_eq!(read_event(&event().encode_to_vec()), Ok(event()));
    }

    #[test]
    fn events_that_cannot_be_told_are_refused_with_the_reason() {
        let refused = |change: fn(&mut CustomerEvent)| {
            let mut e = event();
            change(&mut e);
            read_event(&e.encode_to_vec()).unwrap_err()
        };
        assert!(refused(|e| e.event_id.clear()).starts_with("event_id is missing"));
        assert!(refused(|e| e.customer = None).starts_with("customer is missing"));
        assert!(refused(|e| e.order_id = " ".into()).starts_with("order_id is missing"));
        assert!(refused(|e| e.kind = Kind::Unspecified as i32).contains("KIND_UNSPECIFIED"));
        assert!(refused(|e| e.kind = 17).contains("kind 17 is not a known"));
        let all = refused(|e| *e = CustomerEvent::default());
        assert_eq!(all.split("; ").count(), 4, "{all}");
        assert!(
            read_event(b"\xff\xff")
                .unwrap_err()
                .starts_with("cannot decode CustomerEvent")
        );
    }
}
