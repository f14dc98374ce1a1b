//! Settling a handled message by its outcome: ack, nak with a delay, or park it in the dead-letter stream.

use async_nats::jetstream::AckKind;
use chrono::Utc;
use prost::Message as _;

use super::{Delivery, Outcome, Worker, retry_delay};

impl Worker {
    /// The server stopped delivering a message (it reached the consumer's `max_deliver`, set above ours): our
    /// own parking of it failed. Logged with its stream sequence for an operator, and counted.
    pub(super) fn max_deliveries_reached(&self, advisory: &[u8]) {
        let advisory: serde_json::Value = serde_json::from_slice(advisory).unwrap_or_default();
        let field = |name: &str| advisory.get(name).cloned().unwrap_or_default();
        tracing::error!(
            service = self.service, stream = %field("stream"), consumer = %field("consumer"),
            stream_sequence = %field("stream_seq"), deliveries = %field("deliveries"),
            "the server stopped delivering a message that reached max_deliver; it is still in its stream at \
             that sequence, not in the dead-letter stream"
        );
        metrics::counter!("bo_max_deliveries_total", "service" => self.service).increment(1);
    }

    pub(super) fn count(&self, delivery: &Delivery, outcome: &'static str) {
        metrics::counter!(
            "bo_messages_total",
            "service" => self.service,
            "subject" => delivery.subject.clone(),
            "outcome" => outcome
        )
        .increment(1);
    }

    pub(super) async fn settle(&self, delivery: &Delivery, outcome: Outcome) {
        let name = match &outcome {
            Outcome::Done => "done",
            Outcome::Reject(_) => "rejected",
            Outcome::Retry(_) => "retried",
            Outcome::Wait(_) => "waiting",
        };
        self.count(delivery, name);
        let result = match outcome {
            Outcome::Done => delivery.message.ack().await,
            Outcome::Retry(error) if delivery.deliveries < self.max_deliver => {
                let delay = retry_delay(delivery.deliveries);
                tracing::warn!(
                    service = self.service, subject = %delivery.subject, id = %delivery.stream_id(),
                    deliveries = delivery.deliveries, retry_in = ?delay, %error, "handling failed, will retry"
                );
                delivery.message.ack_with(AckKind::Nak(Some(delay))).await
            }
            Outcome::Wait(reason) if Utc::now() - delivery.published < self.max_wait_chrono() => {
                let delay = retry_delay(delivery.deliveries);
                tracing::info!(
                    service = self.service, subject = %delivery.subject, id = %delivery.stream_id(),
                    deliveries = delivery.deliveries, retry_in = ?delay, %reason, "waiting for what it depends on"
                );
                delivery.message.ack_with(AckKind::Nak(Some(delay))).await
            }
            Outcome::Wait(reason) => {
                let waited = format!("{reason}; gave up after waiting {:?}", self.max_wait);
                self.park(delivery, waited).await
            }
            Outcome::Retry(error) | Outcome::Reject(error) => self.park(delivery, error).await,
        };
        if let Err(error) = result {
            // The message comes again after ack_wait; handlers are idempotent, so that costs time, not data.
            tracing::warn!(service = self.service, id = %delivery.stream_id(), %error, "could not settle a message");
        }
    }

    fn max_wait_chrono(&self) -> chrono::TimeDelta {
        chrono::TimeDelta::from_std(self.max_wait).unwrap_or(chrono::TimeDelta::MAX)
    }

    /// Stores the message with its error in the dead-letter stream, then acks it.
    pub(super) async fn park(
        &self,
        delivery: &Delivery,
        error: String,
    ) -> Result<(), async_nats::Error> {
        tracing::error!(
            service = self.service, subject = %delivery.subject, id = %delivery.stream_id(),
            deliveries = delivery.deliveries, %error, "parking message in the dead-letter stream"
        );
        // A message near the server's max payload does not fit in a letter with its error around it: the
        // letter then says where the bytes are (its stream keeps them for its max age) instead of naking
        // for ever.
        let room = self
            .bus
            .client
            .server_info()
            .max_payload
            .saturating_sub(4096 + error.len());
        let (payload, error) = if delivery.payload.len() > room {
            let error = format!(
                "{error}; payload of {} bytes left out (too large for a dead letter): it is in stream {} at \
                 sequence {}",
                delivery.payload.len(),
                delivery.stream,
                delivery.stream_sequence
            );
            (Vec::new(), error)
        } else {
            (delivery.payload.to_vec(), error)
        };
        let letter = backorder_proto::v1::DeadLetter {
            service: self.service.to_string(),
            subject: delivery.subject.clone(),
            stream: delivery.stream.clone(),
            stream_sequence: delivery.stream_sequence,
            payload,
            error,
            deliveries: delivery.deliveries.max(0) as u64,
            failed_at: Some(crate::time::to_proto(Utc::now())),
            message_id: delivery.message_id.clone().unwrap_or_default(),
        };
        metrics::counter!("bo_dead_letters_total", "service" => self.service).increment(1);
        let id = format!("{}/{}", self.service, delivery.stream_id());
        let subject = self.bus.subjects.dead_letter(self.service);
        match self
            .bus
            .publish_bytes(subject, &id, letter.encode_to_vec().into())
            .await
        {
            Ok(()) => delivery.message.ack().await,
            Err(error) => {
                tracing::warn!(%error, "dead-letter stream unreachable; the message stays unacked");
                delivery
                    .message
                    .ack_with(AckKind::Nak(Some(retry_delay(delivery.deliveries))))
                    .await
            }
        }
    }
}
