//! notifier: turns the customer events allocation publishes (`<p>.customer.event`) into an email
//! (`<p>.out.notify.email`) and an SMS (`<p>.out.notify.sms`) for the gateways, each when the customer has
//! an address for it.

pub mod render;

use backorder_proto::v1::CustomerEvent;
use backorder_proto::v1::customer_event::Kind;
use backorder_runtime::CommonConfig;
use backorder_runtime::consume::{Delivery, Handler, Outcome, Worker};
use backorder_runtime::jetstream::Bus;
use backorder_runtime::subjects::StreamKind;
use prost::Message as _;
use tracing::Instrument;

pub const SERVICE: &str = "notifier";

pub struct Application {
    worker: Worker,
    messages: async_nats::jetstream::consumer::pull::Stream,
}

impl Application {
    pub async fn build(config: CommonConfig) -> anyhow::Result<Self> {
        let filters = vec![config.subjects.customer_event()];
        let (worker, messages) =
            Worker::connect(&config, SERVICE, StreamKind::Internal, filters).await?;
        Ok(Self { worker, messages })
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(
            prefix = self.worker.bus.subjects.prefix(),
            "notifier running"
        );
        let mut notifier = Notifier {
            bus: self.worker.bus.clone(),
        };
        self.worker
            .run_service(self.messages, &mut notifier, shutdown)
            .await
    }
}

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

struct Notifier {
    bus: Bus,
}

impl Handler for Notifier {
    async fn handle(&mut self, batch: &[Delivery]) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(batch.len());
        for delivery in batch {
            let span = tracing::info_span!(
                "customer_event",
                order_id = tracing::field::Empty,
                event_id = tracing::field::Empty,
                seq = delivery.stream_sequence
            );
            backorder_runtime::trace::follow(&span, &delivery.trace);
            outcomes.push(self.notify(delivery).instrument(span).await);
        }
        outcomes
    }
}

impl Notifier {
    async fn notify(&self, delivery: &Delivery) -> Outcome {
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
        let subjects = &self.bus.subjects;
        let kind = Kind::try_from(event.kind).map_or("?", |k| k.as_str_name());

        // The message ids come from the event id alone: a redelivered event (say, the SMS publish failed
        // after the email was stored) publishes the same ids again and JetStream drops the duplicates.
        let email = render::email(&event);
        let sms = render::sms(&event);
        if email.is_none() && sms.is_none() {
            tracing::info!(
                kind,
                "customer has neither email nor phone, nothing to send"
            );
            return Outcome::Done;
        }
        if let Some(email) = email {
            if let Err(error) = self
                .bus
                .publish(subjects.notify_email(), &email.message_id, &email)
                .await
            {
                return Outcome::Retry(format!("{error:#}"));
            }
            tracing::info!(message_id = %email.message_id, kind, locale = %email.locale, "email published");
        }
        if let Some(sms) = sms {
            if let Err(error) = self
                .bus
                .publish(subjects.notify_sms(), &sms.message_id, &sms)
                .await
            {
                return Outcome::Retry(format!("{error:#}"));
            }
            tracing::info!(message_id = %sms.message_id, kind, chars = sms.text.chars().count(), "sms published");
        }
        Outcome::Done
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
