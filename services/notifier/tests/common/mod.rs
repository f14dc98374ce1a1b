//! The notifier in-process against a real NATS server (`NATS_URL`, as `make test` sets it), on a prefix and a
//! simulated clock of its own; streams and buckets are deleted afterwards, whatever happens.

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use backorder_proto::v1::customer_event::Kind;
use backorder_proto::v1::{ClockAdvanced, Customer, CustomerEvent, CustomerEventLine};
use backorder_runtime::jetstream::Bus;
use backorder_runtime::subjects::StreamKind;
use backorder_test_support::Seen;
use backorder_test_support::stream::{nats_url, role_creds, stored};
use chrono::{DateTime, Utc};
use futures::FutureExt as _;

pub const START: &str = "2026-01-10T10:00:00Z";

pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// A test's world: the bus, everything seen on the prefix, and the notifier's environment.
pub struct World {
    pub bus: Bus,
    pub seen: Seen,
    pub env: HashMap<String, String>,
    running: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    )>,
}

impl World {
    /// Starts the notifier (again).
    pub async fn start(&mut self) -> anyhow::Result<()> {
        let config = notifier::Config::from_source(&self.env)?;
        let app = notifier::Application::build(config).await?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        self.running = Some((stop, handle));
        Ok(())
    }

    /// Stops the notifier and waits for it to finish.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some((stop, handle)) = self.running.take() {
            let _ = stop.send(());
            handle.await??;
        }
        Ok(())
    }

    /// Moves the simulated clock to `to` and gives the notifier time to see it.
    pub async fn advance(&self, to: &str) -> anyhow::Result<()> {
        let message = ClockAdvanced {
            to: Some(backorder_runtime::time::to_proto(at(to))),
        };
        self.bus
            .publish(self.bus.subjects.clock(), &format!("clock/{to}"), &message)
            .await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(())
    }

    pub async fn publish_event(&self, event: &CustomerEvent) -> anyhow::Result<()> {
        self.bus
            .publish(self.bus.subjects.customer_event(), &event.event_id, event)
            .await
    }

    /// What the stream stored on `subject`: (Nats-Msg-Id, decoded message).
    pub async fn stored<M: prost::Message + Default>(
        &self,
        kind: StreamKind,
        subject: &str,
    ) -> anyhow::Result<Vec<(String, M)>> {
        Ok(stored(&self.bus, kind, subject)
            .await?
            .iter()
            .map(|m| {
                (
                    backorder_test_support::stream::message_id(m),
                    M::decode(m.payload.clone()).unwrap(),
                )
            })
            .collect())
    }

    /// Waits (up to 20 s) until `count` messages are stored on `subject`.
    pub async fn wait_stored<M: prost::Message + Default>(
        &self,
        kind: StreamKind,
        subject: &str,
        count: usize,
    ) -> anyhow::Result<Vec<(String, M)>> {
        backorder_test_support::stream::wait_for_stored(&self.bus, kind, subject, count).await?;
        self.stored(kind, subject).await
    }

    pub async fn emails(&self) -> anyhow::Result<Vec<(String, backorder_proto::v1::EmailMessage)>> {
        self.stored(StreamKind::Outbound, &self.bus.subjects.notify_email())
            .await
    }

    pub async fn sms(&self) -> anyhow::Result<Vec<(String, backorder_proto::v1::SmsMessage)>> {
        self.stored(StreamKind::Outbound, &self.bus.subjects.notify_sms())
            .await
    }
}

/// Runs `test` against a notifier started with the defaults plus `env` on a fresh prefix.
pub async fn with_notifier<F, Fut>(env: &[(&str, &str)], test: F) -> anyhow::Result<()>
where
    F: FnOnce(World) -> Fut,
    Fut: Future<Output = anyhow::Result<World>>,
{
    let url = nats_url();
    let creds = role_creds("notifier")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    let mut vars: HashMap<String, String> = [
        ("NATS_URL", url.as_str()),
        ("NATS_CREDS", creds.as_str()),
        ("BO_PREFIX", prefix.as_str()),
        ("BO_CLOCK", "simulated"),
        ("BO_CLOCK_START", START),
        ("BO_HTTP_ADDR", "127.0.0.1:0"),
        ("BO_SMS_QUIET_HOURS", "off"),
        ("BO_NOTIFY_COALESCE_SECS", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let bus = backorder_test_support::connect(&url, &prefix).await?;
    let seen = Seen::subscribe(&bus).await?;
    let mut world = World {
        bus: bus.clone(),
        seen,
        env: vars,
        running: None,
    };
    let result = std::panic::AssertUnwindSafe(async move {
        world.start().await?;
        let mut world = test(world).await?;
        world.stop().await
    })
    .catch_unwind()
    .await;
    let _ = backorder_test_support::delete_streams(&bus).await;
    result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

pub fn line(line_no: u32, quantity: i64, allocated: i64, backordered: i64) -> CustomerEventLine {
    CustomerEventLine {
        line_no,
        sku: format!("SKU-{line_no}"),
        quantity,
        ordered: allocated + backordered,
        allocated,
        backordered,
        eta: (backordered > 0)
            .then(|| backorder_runtime::time::to_proto(at("2026-02-01T00:00:00Z"))),
        ..Default::default()
    }
}

pub fn customer(email: &str, phone: &str) -> Customer {
    Customer {
        id: "C-1".into(),
        email: email.into(),
        phone: phone.into(),
        locale: "de-DE".into(),
        time_zone: "Europe/Berlin".into(),
    }
}

pub fn event(
    event_id: &str,
    order_id: &str,
    kind: Kind,
    customer: Customer,
    lines: Vec<CustomerEventLine>,
) -> CustomerEvent {
    CustomerEvent {
        event_id: event_id.into(),
        kind: kind as i32,
        order_id: order_id.into(),
        customer: Some(customer),
        lines,
        occurred_at: None,
        respond_by: None,
    }
}

/// Lets the notifier work for a moment (for checks that something did not happen).
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(1500)).await;
}
