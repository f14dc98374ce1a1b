//! order-intake: reads orders the OMS publishes on `<p>.in.order.placed`, refuses bad ones with every reason
//! (`<p>.out.order.rejected`), and hands good ones to allocation (`<p>.order.accepted`).

pub mod validate;

use backorder_proto::v1::{OrderAccepted, OrderRejected};
use backorder_runtime::consume::{Delivery, Handler, Outcome, Worker};
use backorder_runtime::jetstream::Bus;
use backorder_runtime::subjects::StreamKind;
use backorder_runtime::{CommonConfig, time};
use tracing::Instrument;

pub const SERVICE: &str = "order-intake";

pub struct Application {
    worker: Worker,
    messages: backorder_runtime::jetstream::Messages,
}

impl Application {
    pub async fn build(config: CommonConfig) -> anyhow::Result<Self> {
        let filters = vec![config.subjects.order_placed()];
        let (worker, messages) =
            Worker::connect(&config, SERVICE, StreamKind::Inbound, filters).await?;
        Ok(Self { worker, messages })
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(
            prefix = self.worker.bus.subjects.prefix(),
            "order-intake running"
        );
        let mut intake = Intake {
            bus: self.worker.bus.clone(),
        };
        self.worker
            .run_service(self.messages, &mut intake, shutdown)
            .await
    }
}

struct Intake {
    bus: Bus,
}

impl Handler for Intake {
    async fn handle(&mut self, batch: &[Delivery]) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(batch.len());
        for delivery in batch {
            let span = tracing::info_span!(
                "order",
                order_id = tracing::field::Empty,
                seq = delivery.stream_sequence
            );
            backorder_runtime::trace::follow(&span, &delivery.trace);
            outcomes.push(self.take(delivery).instrument(span).await);
        }
        outcomes
    }
}

impl Intake {
    async fn take(&self, delivery: &Delivery) -> Outcome {
        let subjects = &self.bus.subjects;
        match validate::validate(&delivery.payload) {
            Ok(mut order) => {
                tracing::Span::current().record("order_id", order.order_id.as_str());
                let digest = backorder_runtime::digest::of(&order);
                if order.placed_at.is_none() {
                    order.placed_at = Some(time::to_proto(delivery.published));
                }
                // Order id and digest as Nats-Msg-Id: a redelivered or re-sent order is stored once in the
                // window, while another order under the same id reaches allocation, which refuses it as a
                // conflict (and a re-sent order beyond the window as a duplicate).
                let id = format!("{}/{digest}", order.order_id);
                let accepted = OrderAccepted {
                    order: Some(order),
                    accepted_at: Some(time::to_proto(chrono::Utc::now())),
                    digest,
                };
                match self
                    .bus
                    .publish(subjects.order_accepted(), &id, &accepted)
                    .await
                {
                    Ok(()) => {
                        tracing::info!(
                            lines = accepted.order.as_ref().map_or(0, |o| o.lines.len()),
                            "order accepted"
                        );
                        Outcome::Done
                    }
                    Err(error) => Outcome::Retry(format!("{error:#}")),
                }
            }
            Err(rejection) => {
                let order_id = rejection.order_id.clone().unwrap_or_default();
                tracing::Span::current().record("order_id", order_id.as_str());
                tracing::warn!(errors = %rejection.summary(), "order rejected");
                let rejected = OrderRejected {
                    order_id,
                    errors: rejection.errors.clone(),
                    rejection_id: format!("rejected/{}", delivery.stream_id()),
                    subject: delivery.subject.clone(),
                    stream_sequence: delivery.stream_sequence,
                    payload: delivery.payload.to_vec(),
                };
                if let Err(error) = self
                    .bus
                    .publish(subjects.order_rejected(), &rejected.rejection_id, &rejected)
                    .await
                {
                    return Outcome::Retry(format!("{error:#}"));
                }
                match rejection.order_id {
                    Some(_) => Outcome::Done,
                    // Nobody can tie this rejection to an order: park the bytes for an operator as well.
                    None => Outcome::Reject(format!(
                        "order rejected, no readable order id: {}",
                        rejection.summary()
                    )),
                }
            }
        }
    }
}
