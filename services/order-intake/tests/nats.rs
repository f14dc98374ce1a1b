//! order-intake against a real NATS server (`NATS_URL`, as `make test` sets it): duplicates, reused order ids
//! and oversized orders. Every test uses a prefix of its own and deletes its streams afterwards.

use std::collections::HashMap;
use std::time::Duration;

use backorder_proto::v1::{Customer, OrderAccepted, OrderLine, OrderPlaced, OrderRejected};
use backorder_runtime::Subjects;
use backorder_runtime::jetstream::Bus;
use backorder_runtime::subjects::StreamKind;
use backorder_test_support::stream::{message_id, nats_url, role_creds, stored, wait_for_stored};
use futures::FutureExt as _;
use prost::Message as _;

/// A test's own prefix and bus, and the service running on it.
struct Env {
    bus: Bus,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    running: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Env {
    async fn start(vars: &[(&str, &str)]) -> anyhow::Result<Self> {
        let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
        let bus = Bus::connect(
            &backorder_test_support::stream::nats(),
            Subjects::new(&prefix).map_err(anyhow::Error::msg)?,
            "order-intake-test",
        )
        .await?;
        bus.ensure_streams().await?;
        let url = nats_url();
        let creds = role_creds("order-intake")
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let mut source = HashMap::from([
            ("NATS_URL", url.as_str()),
            ("NATS_CREDS", creds.as_str()),
            ("BO_PREFIX", prefix.as_str()),
            ("BO_HTTP_ADDR", "127.0.0.1:0"),
        ]);
        source.extend(vars.iter().copied());
        let app =
            order_intake::Application::build(order_intake::Config::from_source(&source)?).await?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        Ok(Self {
            bus,
            stop: Some(stop),
            running: Some(running),
        })
    }

    /// Publishes the order as an OMS would, under the inbound message id `id`.
    async fn place(&self, id: &str, order: &OrderPlaced) -> anyhow::Result<()> {
        self.bus
            .publish(self.bus.subjects.order_placed(), id, order)
            .await
    }

    async fn accepted(&self, count: usize) -> anyhow::Result<Vec<(String, OrderAccepted)>> {
        let subject = self.bus.subjects.order_accepted();
        wait_for_stored(&self.bus, StreamKind::Internal, &subject, count)
            .await?
            .into_iter()
            .map(|m| Ok((message_id(&m), OrderAccepted::decode(m.payload.clone())?)))
            .collect()
    }

    async fn rejected(&self, count: usize) -> anyhow::Result<Vec<OrderRejected>> {
        let subject = self.bus.subjects.order_rejected();
        wait_for_stored(&self.bus, StreamKind::Outbound, &subject, count)
            .await?
            .into_iter()
            .map(|m| Ok(OrderRejected::decode(m.payload.clone())?))
            .collect()
    }

    async fn stored_count(&self, kind: StreamKind, subject: &str) -> anyhow::Result<usize> {
        Ok(stored(&self.bus, kind, subject).await?.len())
    }

    async fn clean_up(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(running) = self.running.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), running).await;
        }
        for kind in StreamKind::ALL {
            let _ = self
                .bus
                .js
                .delete_stream(self.bus.subjects.stream(kind))
                .await;
        }
    }
}

/// Runs `test` against a fresh service and cleans up whatever happens (panics included).
async fn with_intake(
    vars: &[(&str, &str)],
    test: impl AsyncFnOnce(&Env) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let env = Env::start(vars).await?;
    let result = std::panic::AssertUnwindSafe(test(&env))
        .catch_unwind()
        .await;
    env.clean_up().await;
    result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn order(order_id: &str, lines: &[(&str, i64)]) -> OrderPlaced {
    OrderPlaced {
        order_id: order_id.into(),
        customer: Some(Customer {
            id: "C-1".into(),
            email: "buyer@shop.example".into(),
            locale: "de-DE".into(),
            time_zone: "Europe/Berlin".into(),
            ..Default::default()
        }),
        lines: lines
            .iter()
            .enumerate()
            .map(|(i, (sku, quantity))| OrderLine {
                line_no: i as u32 + 1,
                sku: sku.to_string(),
                quantity: *quantity,
            })
            .collect(),
        channel: "web".into(),
        placed_at: Some(backorder_runtime::time::to_proto(chrono::Utc::now())),
        ..Default::default()
    }
}

/// What is stored once the service had a moment to (wrongly) publish more.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

#[tokio::test]
async fn the_same_order_twice_is_accepted_once_and_other_content_under_its_id_goes_on()
-> anyhow::Result<()> {
    with_intake(&[], async |env| {
        let first = order("SO-1", &[("SKU-A", 2)]);
        // The OMS sends it again under another message id (a retry of its own, a second instance): the inbound
        // stream stores both, and intake hands one on.
        env.place("oms/1", &first).await?;
        env.place("oms/2", &first).await?;
        let accepted = env.accepted(1).await?;
        settle().await;
        let subject = env.bus.subjects.order_accepted();
        assert_eq!(
            env.stored_count(StreamKind::Internal, &subject).await?,
            1,
            "the re-sent order was handed on twice"
        );
        let (id, message) = &accepted[0];
        assert_eq!(message.order.as_ref(), Some(&first));
        assert_eq!(id, &format!("SO-1/{}", message.digest));
        assert_eq!(message.digest, backorder_runtime::digest::of(&first));

        // Another order under the same id reaches allocation, with its own digest, for allocation to refuse.
        let other = order("SO-1", &[("SKU-A", 3)]);
        env.place("oms/3", &other).await?;
        let accepted = env.accepted(2).await?;
        settle().await;
        assert_eq!(env.stored_count(StreamKind::Internal, &subject).await?, 2);
        let (second_id, second) = &accepted[1];
        assert_eq!(second.order.as_ref(), Some(&other));
        assert_ne!(second.digest, message.digest);
        assert_eq!(second_id, &format!("SO-1/{}", second.digest));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn an_oversized_order_gets_one_rejection_naming_each_field_and_the_next_order_goes_on()
-> anyhow::Result<()> {
    with_intake(&[], async |env| {
        let skus: Vec<(String, i64)> = (1..=1_001).map(|i| (format!("SKU-{i}"), 1)).collect();
        let lines: Vec<(&str, i64)> = skus.iter().map(|(s, q)| (s.as_str(), *q)).collect();
        let mut big = order("SO-BIG", &lines);
        let customer = big.customer.as_mut().unwrap();
        customer.id = "C".repeat(10 * 1024);
        customer.time_zone = "Mars/Olympus_Mons".into();
        env.place("oms/big", &big).await?;
        let next = order("SO-NEXT", &[("SKU-A", 1)]);
        env.place("oms/next", &next).await?;

        let accepted = env.accepted(1).await?;
        assert_eq!(accepted.len(), 1, "the order after the bad one is stuck");
        assert_eq!(accepted[0].1.order.as_ref(), Some(&next));

        let rejected = env.rejected(1).await?;
        settle().await;
        let subject = env.bus.subjects.order_rejected();
        assert_eq!(env.stored_count(StreamKind::Outbound, &subject).await?, 1);
        let rejection = &rejected[0];
        assert_eq!(rejection.order_id, "SO-BIG");
        assert_eq!(
            rejection.payload,
            big.encode_to_vec(),
            "the bytes come back"
        );
        let fields: Vec<&str> = rejection.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["customer.id", "customer.time_zone", "lines"]);
        let messages: Vec<&str> = rejection
            .errors
            .iter()
            .map(|e| e.message.as_str())
            .collect();
        assert!(
            messages[0].contains("is 10240 bytes long; at most 128")
                && messages[0].contains("... (10240 characters)"),
            "{}",
            messages[0]
        );
        assert!(
            messages[1].contains("\"Mars/Olympus_Mons\""),
            "{}",
            messages[1]
        );
        assert!(
            messages[2].contains("1001 lines; at most 1000"),
            "{}",
            messages[2]
        );
        // Nothing went to the dead letters: the OMS was told.
        let dead = env.bus.subjects.dead_letter(order_intake::SERVICE);
        assert_eq!(env.stored_count(StreamKind::DeadLetter, &dead).await?, 0);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn bo_max_order_lines_sets_the_most_lines() -> anyhow::Result<()> {
    with_intake(&[("BO_MAX_ORDER_LINES", "2")], async |env| {
        env.place("oms/3", &order("SO-3", &[("A", 1), ("B", 1), ("C", 1)]))
            .await?;
        env.place("oms/2", &order("SO-2", &[("A", 1), ("B", 1)]))
            .await?;
        let accepted = env.accepted(1).await?;
        assert_eq!(accepted[0].1.order.as_ref().unwrap().order_id, "SO-2");
        let rejected = env.rejected(1).await?;
        assert_eq!(rejected[0].order_id, "SO-3");
        assert_eq!(rejected[0].errors[0].field, "lines");
        assert!(
            rejected[0].errors[0].message.contains("3 lines; at most 2"),
            "{:?}",
            rejected[0].errors
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_bad_order_near_the_payload_limit_is_answered_without_its_bytes() -> anyhow::Result<()> {
    with_intake(&[], async |env| {
        let max_payload = env.bus.client.server_info().max_payload;
        let mut huge = order("SO-HUGE", &[("SKU-A", 1)]);
        // As large as the OMS can publish (its message id header counts too).
        huge.channel = "x".repeat(max_payload - 150);
        env.place("oms/huge", &huge).await?;
        env.place("oms/next", &order("SO-NEXT", &[("SKU-A", 1)]))
            .await?;
        assert_eq!(env.accepted(1).await?.len(), 1);

        let rejected = env.rejected(1).await?;
        assert_eq!(rejected.len(), 1, "the OMS never heard of SO-HUGE");
        let rejection = &rejected[0];
        assert_eq!(rejection.order_id, "SO-HUGE");
        assert!(rejection.payload.is_empty());
        let fields: Vec<&str> = rejection.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["channel", ""]);
        assert!(
            rejection.errors[1].message.contains(&format!(
                "kept in stream {} at sequence {}",
                env.bus.subjects.stream(StreamKind::Inbound),
                rejection.stream_sequence
            )),
            "{:?}",
            rejection.errors[1]
        );
        // The bytes are where it says.
        let stream = env
            .bus
            .js
            .get_stream(env.bus.subjects.stream(StreamKind::Inbound))
            .await?;
        let kept = stream.get_raw_message(rejection.stream_sequence).await?;
        assert_eq!(kept.payload, huge.encode_to_vec());
        Ok(())
    })
    .await
}
