//! order-intake: reads orders the OMS publishes on `<p>.in.order.placed`, refuses bad ones with every reason
//! (`<p>.out.order.rejected`), and hands good ones to allocation (`<p>.order.accepted`).

pub mod validate;

use backorder_proto::v1::{FieldError, OrderAccepted, OrderPlaced, OrderRejected};
use backorder_runtime::config::{ConfigError, Source};
use backorder_runtime::consume::{Delivery, Handler, Outcome};
use backorder_runtime::jetstream::Bus;
use backorder_runtime::subjects::StreamKind;
use backorder_runtime::vars::Var;
use backorder_runtime::{CommonConfig, Service, time};
use prost::Message as _;
use tracing::Instrument;

pub use validate::Limits;

/// The environment variables this service reads besides [`backorder_runtime::vars::COMMON`].
pub const ENV: &[Var] = &[Var {
    name: "BO_MAX_ORDER_LINES",
    default: Some("1000"),
    about: "the most lines of one order (1..=1000000); an order with more is rejected",
    secret: false,
}];

/// Every environment variable the binary reads: the shared ones, then [`ENV`].
pub fn env_vars() -> Vec<Var> {
    backorder_runtime::vars::service_vars(SERVICE, ENV)
}

pub const SERVICE: &str = "order-intake";

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub limits: Limits,
}

impl Config {
    pub fn from_source(source: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            common: CommonConfig::from_source(source)?,
            limits: Limits::from_source(source)?,
        })
    }
}

pub struct Application {
    service: Service,
    messages: backorder_runtime::jetstream::Messages,
    limits: Limits,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let service = Service::connect(&config.common, SERVICE).await?;
        let messages = service.consumer(StreamKind::Inbound, SERVICE).await?;
        Ok(Self {
            service,
            messages,
            limits: config.limits,
        })
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let mut intake = Intake {
            bus: self.service.bus.clone(),
            limits: self.limits,
        };
        let worker = self.service.worker(SERVICE);
        let messages = self.messages;
        self.service
            .run(shutdown, |shutdown| {
                worker.run(messages, &mut intake, shutdown)
            })
            .await
    }
}

struct Intake {
    bus: Bus,
    limits: Limits,
}

impl Handler for Intake {
    /// Decides each order, then publishes every answer with its ack in flight and awaits the acks: one round
    /// trip per batch instead of one per order. The publishes leave in the batch's order.
    async fn handle(&mut self, batch: &[Delivery]) -> Vec<Outcome> {
        let mut pending = Vec::with_capacity(batch.len());
        for delivery in batch {
            let span = tracing::info_span!(
                "order",
                order_id = tracing::field::Empty,
                seq = delivery.stream_sequence
            );
            backorder_runtime::trace::follow(&span, &delivery.trace);
            let sent = self.send(delivery).instrument(span.clone()).await;
            pending.push((span, sent));
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        for (span, sent) in pending {
            outcomes.push(sent.settle().instrument(span).await);
        }
        outcomes
    }
}

/// An answer on its way: the publish's ack still to come, and what the order's outcome is once it came.
enum Sent {
    Published {
        ack: async_nats::jetstream::context::PublishAckFuture,
        subject: String,
        id: String,
        /// `Done`, or `Reject` for a rejection nobody can tie to an order.
        then: Outcome,
    },
    Failed(Outcome),
}

impl Sent {
    async fn settle(self) -> Outcome {
        match self {
            Sent::Published {
                ack,
                subject,
                id,
                then,
            } => match ack.await {
                Ok(_) => then,
                Err(error) => {
                    Outcome::Retry(format!("waiting for the ack of {id} on {subject}: {error}"))
                }
            },
            Sent::Failed(outcome) => outcome,
        }
    }
}

impl Intake {
    async fn send(&self, delivery: &Delivery) -> Sent {
        let subjects = &self.bus.subjects;
        // Headers count against the server's max_payload too.
        let room = self
            .bus
            .client
            .server_info()
            .max_payload
            .saturating_sub(HEADER_ROOM);
        let checked = validate::validate_with(&delivery.payload, &self.limits)
            .and_then(|order| accept(order, delivery.published, room));
        let (subject, id, payload, then) = match checked {
            Ok((id, accepted)) => {
                let order = accepted.order.as_ref();
                tracing::Span::current()
                    .record("order_id", order.map_or("", |o| o.order_id.as_str()));
                tracing::info!(lines = order.map_or(0, |o| o.lines.len()), "order accepted");
                (
                    subjects.order_accepted(),
                    id,
                    accepted.encode_to_vec(),
                    Outcome::Done,
                )
            }
            Err(rejection) => {
                let order_id = rejection.order_id.clone().unwrap_or_default();
                tracing::Span::current().record("order_id", order_id.as_str());
                tracing::warn!(errors = %rejection.summary(), "order rejected");
                let rejected = reject(&rejection, delivery, room);
                let then = match rejection.order_id {
                    Some(_) => Outcome::Done,
                    // Nobody can tie this rejection to an order: park the bytes for an operator as well.
                    None => Outcome::Reject(format!(
                        "order rejected, no readable order id: {}",
                        rejection.summary()
                    )),
                };
                let id = rejected.rejection_id.clone();
                (
                    subjects.order_rejected(),
                    id,
                    rejected.encode_to_vec(),
                    then,
                )
            }
        };
        match self.bus.send(subject.clone(), &id, payload.into()).await {
            Ok(ack) => Sent::Published {
                ack,
                subject,
                id,
                then,
            },
            Err(error) => Sent::Failed(Outcome::Retry(format!("{error:#}"))),
        }
    }
}

/// What a message leaves of the server's `max_payload` for the body: room for `Nats-Msg-Id` and the trace
/// context.
const HEADER_ROOM: usize = 4 * 1024;

/// The valid order as allocation gets it, with its `Nats-Msg-Id`; refused when it would not fit in `room`
/// bytes (only possible with a raised `BO_MAX_ORDER_LINES`), as a publish that can never succeed would
/// otherwise be retried until the order is parked, unanswered.
fn accept(
    mut order: OrderPlaced,
    published: chrono::DateTime<chrono::Utc>,
    room: usize,
) -> Result<(String, OrderAccepted), validate::Rejection> {
    let digest = backorder_runtime::digest::of(&order);
    if order.placed_at.is_none() {
        order.placed_at = Some(time::to_proto(published));
    }
    // Order id and digest as Nats-Msg-Id: a redelivered or re-sent order is stored once in the window, while
    // another order under the same id reaches allocation, which refuses it as a conflict (and a re-sent order
    // beyond the window as a duplicate).
    let id = format!("{}/{digest}", order.order_id);
    let accepted = OrderAccepted {
        order: Some(order),
        accepted_at: Some(time::to_proto(chrono::Utc::now())),
        digest,
    };
    let size = accepted.encoded_len();
    if size > room {
        let order = accepted.order.unwrap_or_default();
        return Err(validate::Rejection {
            order_id: Some(order.order_id),
            errors: vec![FieldError {
                field: "lines".into(),
                message: format!(
                    "the accepted order would be {size} bytes, more than the {room} a message can carry; send fewer lines"
                ),
            }],
        });
    }
    Ok((id, accepted))
}

/// The answer to a refused order. It repeats the order's bytes unless that would not fit in `room` bytes
/// (an order near the server's limit): then it says where they are kept instead of never being published.
fn reject(rejection: &validate::Rejection, delivery: &Delivery, room: usize) -> OrderRejected {
    let mut rejected = OrderRejected {
        order_id: rejection.order_id.clone().unwrap_or_default(),
        errors: rejection.errors.clone(),
        rejection_id: format!("rejected/{}", delivery.stream_id()),
        subject: delivery.subject.clone(),
        stream_sequence: delivery.stream_sequence,
        payload: delivery.payload.to_vec(),
    };
    fit(&mut rejected, &delivery.stream, room);
    rejected
}

fn fit(rejected: &mut OrderRejected, stream: &str, room: usize) {
    if rejected.encoded_len() > room {
        let size = rejected.payload.len();
        rejected.payload = Vec::new();
        rejected.errors.push(FieldError {
            field: String::new(),
            message: format!(
                "the order's {size} bytes are not repeated here, they would make this message too large; \
                 they are kept in stream {stream} at sequence {}",
                rejected.stream_sequence
            ),
        });
    }
}

#[cfg(test)]
mod env_tests {
    #[test]
    fn every_variable_the_source_reads_is_listed() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        backorder_runtime::vars::assert_listed_as_read(&src, &super::env_vars(), super::ENV);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backorder_proto::v1::OrderLine;

    fn order(lines: usize) -> OrderPlaced {
        OrderPlaced {
            order_id: "SO-1".into(),
            lines: (1..=lines as u32)
                .map(|line_no| OrderLine {
                    line_no,
                    sku: "S".repeat(128),
                    quantity: 1,
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn an_order_too_large_to_hand_on_is_refused_by_name() {
        let now = chrono::Utc::now();
        let (id, accepted) = accept(order(2), now, 1024).unwrap();
        assert!(id.starts_with("SO-1/"));
        assert_eq!(
            accepted.order.unwrap().placed_at,
            Some(time::to_proto(now)),
            "an order without placed_at is placed when it was stored"
        );
        let rejection = accept(order(10), now, 1024).unwrap_err();
        assert_eq!(rejection.order_id.as_deref(), Some("SO-1"));
        assert_eq!(rejection.errors[0].field, "lines");
        assert!(
            rejection.errors[0].message.contains("more than the 1024"),
            "{:?}",
            rejection.errors
        );
    }

    #[test]
    fn a_rejection_repeats_the_bytes_when_they_fit_and_says_where_they_are_otherwise() {
        let mut rejected = OrderRejected {
            order_id: "SO-1".into(),
            stream_sequence: 7,
            payload: vec![1; 100],
            ..Default::default()
        };
        fit(&mut rejected, "BO_IN", 200);
        assert_eq!(rejected.payload.len(), 100);
        assert!(rejected.errors.is_empty());
        rejected.payload = vec![1; 300];
        fit(&mut rejected, "BO_IN", 200);
        assert!(rejected.payload.is_empty());
        assert_eq!(rejected.errors[0].field, "");
        assert!(
            rejected.errors[0]
                .message
                .contains("300 bytes are not repeated here")
                && rejected.errors[0]
                    .message
                    .contains("stream BO_IN at sequence 7"),
            "{:?}",
            rejected.errors
        );
        assert!(rejected.encoded_len() <= 200);
    }
}
