//! The consume loop against a real NATS JetStream server (`NATS_URL`): poison pills that crash the process
//! end in the dead-letter stream, slow batches are not delivered twice, a deleted consumer is made again and
//! `/ready` fails while it cannot be, and the server's own redelivery limit sits above ours.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use backorder_proto::v1::DeadLetter;
use backorder_runtime::Subjects;
use backorder_runtime::consume::{Delivery, Handler, Outcome, Worker};
use backorder_runtime::jetstream::{Bus, ConsumerSettings};
use backorder_runtime::subjects::StreamKind;
use futures::TryStreamExt;
use prost::Message as _;
use tokio::sync::mpsc;

const CONSUMER: &str = "faults";

/// A bus under a prefix of its own, whose consumers have a short ack wait.
async fn bus(ack_wait: Duration, max_deliver: i64) -> anyhow::Result<Bus> {
    static N: AtomicU32 = AtomicU32::new(0);
    let prefix = format!(
        "rt{}x{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        chrono::Utc::now().timestamp_millis() % 100_000
    );
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let mut bus = Bus::connect(
        &backorder_runtime::nats::NatsOptions::env_with_url(&url).unwrap(),
        Subjects::new(&prefix).map_err(anyhow::Error::msg)?,
        "rt-test",
    )
    .await?;
    bus.consumers = ConsumerSettings {
        ack_wait,
        max_deliver,
    };
    Ok(bus)
}

async fn cleanup(bus: &Bus) {
    for kind in StreamKind::ALL {
        let _ = bus.js.delete_stream(bus.subjects.stream(kind)).await;
    }
}

fn worker(bus: &Bus, service: &'static str, max_deliver: i64) -> Worker {
    Worker {
        bus: bus.clone(),
        service,
        batch_size: 16,
        max_deliver,
        max_wait: Duration::from_secs(600),
    }
}

/// Reports every delivery it is handed (payload, deliveries). "poison" never returns, as if it crashed the
/// process (the test then aborts the task); "slow" takes `slow`; anything else is done at once.
struct Recorder {
    seen: mpsc::UnboundedSender<(String, i64)>,
    slow: Duration,
}

impl Handler for Recorder {
    async fn handle(&mut self, batch: &[Delivery]) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        for delivery in batch {
            let payload = String::from_utf8_lossy(&delivery.payload).to_string();
            let _ = self.seen.send((payload.clone(), delivery.deliveries));
            match payload.as_str() {
                "poison" => futures::future::pending::<()>().await,
                p if p.starts_with("slow") => tokio::time::sleep(self.slow).await,
                p if p.starts_with("big") => {
                    outcomes.push(Outcome::Reject("refused by the test".into()));
                    continue;
                }
                _ => {}
            }
            outcomes.push(Outcome::Done);
        }
        outcomes
    }
}

/// Runs a worker of `service` on the test consumer in a task of its own (abort it to "crash").
async fn start(
    bus: &Bus,
    service: &'static str,
    max_deliver: i64,
    slow: Duration,
) -> anyhow::Result<(
    tokio::task::JoinHandle<anyhow::Result<()>>,
    mpsc::UnboundedReceiver<(String, i64)>,
)> {
    let messages = bus
        .durable_consumer(
            StreamKind::Inbound,
            CONSUMER,
            vec![bus.subjects.order_placed()],
        )
        .await?;
    let (tx, rx) = mpsc::unbounded_channel();
    let worker = worker(bus, service, max_deliver);
    let task = tokio::spawn(async move {
        let mut handler = Recorder { seen: tx, slow };
        worker
            .run(messages, &mut handler, futures::future::pending())
            .await
    });
    Ok((task, rx))
}

async fn publish(bus: &Bus, payload: &str) -> anyhow::Result<()> {
    bus.publish_bytes(
        bus.subjects.order_placed(),
        payload,
        payload.to_string().into(),
    )
    .await
}

/// Waits (up to `within`) for the handler to be handed `payload`; returns its delivery count.
async fn handed(
    rx: &mut mpsc::UnboundedReceiver<(String, i64)>,
    payload: &str,
    within: Duration,
) -> anyhow::Result<i64> {
    tokio::time::timeout(within, async {
        while let Some((seen, deliveries)) = rx.recv().await {
            if seen == payload {
                return Ok(deliveries);
            }
        }
        anyhow::bail!("the worker stopped")
    })
    .await
    .map_err(|_| anyhow::anyhow!("{payload} was not handed out within {within:?}"))?
}

/// What the dead-letter stream of the prefix holds.
async fn dead_letters(bus: &Bus) -> anyhow::Result<Vec<DeadLetter>> {
    let stream = bus
        .js
        .get_stream(bus.subjects.stream(StreamKind::DeadLetter))
        .await?;
    let consumer: jetstream::consumer::PullConsumer = stream
        .create_consumer(pull::Config {
            ack_policy: jetstream::consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(10),
            ..Default::default()
        })
        .await?;
    let mut consumer = consumer;
    let pending = consumer.info().await?.num_pending as usize;
    if pending == 0 {
        return Ok(Vec::new());
    }
    let messages: Vec<jetstream::Message> = consumer
        .fetch()
        .max_messages(pending)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .try_collect()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(messages
        .iter()
        .filter_map(|m| DeadLetter::decode(m.payload.as_ref()).ok())
        .collect())
}

async fn wait_for_dead_letter(bus: &Bus, within: Duration) -> anyhow::Result<DeadLetter> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(letter) = dead_letters(bus).await?.into_iter().next() {
            return Ok(letter);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no dead letter within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_message_that_crashes_the_handler_every_time_is_parked_before_it_is_handed_out_again()
-> anyhow::Result<()> {
    const MAX_DELIVER: i64 = 3;
    let bus = bus(Duration::from_secs(1), MAX_DELIVER).await?;
    for payload in ["good-1", "good-2", "poison"] {
        publish(&bus, payload).await?;
    }
    // Each run "crashes" (its task is aborted) while it holds the poison; the next run gets it again after
    // the ack wait, counted by the server.
    let mut goods = Vec::new();
    for crash in 1..=MAX_DELIVER {
        let (task, mut rx) = start(&bus, "rt-poison", MAX_DELIVER, Duration::ZERO).await?;
        let deliveries = handed(&mut rx, "poison", Duration::from_secs(20)).await?;
        assert_eq!(
            deliveries, crash,
            "the poison's deliveries as the server counts them"
        );
        task.abort();
        let _ = task.await;
        while let Ok((payload, _)) = rx.try_recv() {
            goods.push(payload);
        }
    }
    let (task, mut rx) = start(&bus, "rt-poison", MAX_DELIVER, Duration::ZERO).await?;
    let letter = wait_for_dead_letter(&bus, Duration::from_secs(20)).await?;
    assert_eq!(letter.payload, b"poison");
    assert_eq!(letter.deliveries, MAX_DELIVER as u64 + 1);
    assert_eq!(
        letter.error,
        format!(
            "crashed or timed out {MAX_DELIVER} times (delivery 4, more than BO_MAX_DELIVER={MAX_DELIVER})"
        )
    );
    assert_eq!(
        dead_letters(&bus).await?.len(),
        1,
        "only the poison is parked"
    );
    // The flow behind it moves.
    publish(&bus, "good-3").await?;
    handed(&mut rx, "good-3", Duration::from_secs(10)).await?;
    while let Ok((payload, deliveries)) = rx.try_recv() {
        assert_ne!(
            payload, "poison",
            "the handler saw the poison again ({deliveries})"
        );
    }
    assert!(!task.is_finished());
    task.abort();
    cleanup(&bus).await;
    Ok(())
}

#[tokio::test]
async fn a_batch_slower_than_the_ack_wait_is_handed_out_once() -> anyhow::Result<()> {
    let bus = bus(Duration::from_secs(1), 5).await?;
    for payload in ["slow-1", "slow-2", "slow-3"] {
        publish(&bus, payload).await?;
    }
    // Each message takes 1.5 s: the batch is in hand for 4.5 s, four ack waits.
    let (task, mut rx) = start(&bus, "rt-slow", 5, Duration::from_millis(1500)).await?;
    // Everything handed out in the 4.5 s of handling and 6 s more, when a redelivery would have come.
    let mut handed_out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_millis(10_500), async {
        while let Some(seen) = rx.recv().await {
            handed_out.push(seen);
        }
    })
    .await;
    let once: Vec<(String, i64)> = (1..=3).map(|i| (format!("slow-{i}"), 1)).collect();
    assert_eq!(
        handed_out, once,
        "each handed out once, on its first delivery"
    );
    let info = bus
        .js
        .get_stream(bus.subjects.stream(StreamKind::Inbound))
        .await?
        .consumer_info(CONSUMER)
        .await?;
    assert_eq!(info.num_ack_pending, 0, "all settled");
    assert_eq!(info.num_redelivered, 0, "nothing redelivered");
    task.abort();
    cleanup(&bus).await;
    Ok(())
}

async fn consumer_info(bus: &Bus) -> anyhow::Result<Option<jetstream::consumer::Info>> {
    let stream = bus
        .js
        .get_stream(bus.subjects.stream(StreamKind::Inbound))
        .await?;
    Ok(stream.consumer_info(CONSUMER).await.ok())
}

async fn ready(bus: &Bus) -> Result<(), String> {
    (bus.consumers_check())().await
}

/// Waits (up to 20 s) until `/ready`'s consumer check gives `want` (ok, or an error containing it).
async fn wait_for_ready(bus: &Bus, want: Result<(), &str>) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = ready(bus).await;
        let matches = match (&now, want) {
            (Ok(()), Ok(())) => true,
            (Err(reason), Err(part)) => reason.contains(part),
            _ => false,
        };
        if matches {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "ready is {now:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_consumer_deleted_on_the_server_is_made_again_and_ready_fails_while_it_cannot_be()
-> anyhow::Result<()> {
    let bus = bus(Duration::from_secs(30), 5).await?;
    let (task, mut rx) = start(&bus, "rt-lost", 5, Duration::ZERO).await?;
    publish(&bus, "before").await?;
    handed(&mut rx, "before", Duration::from_secs(10)).await?;
    assert_eq!(ready(&bus).await, Ok(()));

    // Deleted while the loop pulls from it: made again with the same configuration, and consumed.
    let inbound = bus
        .js
        .get_stream(bus.subjects.stream(StreamKind::Inbound))
        .await?;
    inbound.delete_consumer(CONSUMER).await?;
    publish(&bus, "after-delete").await?;
    handed(&mut rx, "after-delete", Duration::from_secs(20)).await?;
    let info = consumer_info(&bus)
        .await?
        .expect("the consumer is there again");
    assert_eq!(info.config.filter_subjects, [bus.subjects.order_placed()]);
    assert_eq!(info.config.ack_wait, Duration::from_secs(30));
    assert_eq!(ready(&bus).await, Ok(()));
    assert!(!task.is_finished(), "the loop keeps running");

    // Its whole stream gone: the consumer cannot be made again, and /ready says so until it can.
    bus.js
        .delete_stream(bus.subjects.stream(StreamKind::Inbound))
        .await?;
    let label = format!("{}/{CONSUMER}", bus.subjects.stream(StreamKind::Inbound));
    wait_for_ready(&bus, Err(&format!("consumer {label} is missing"))).await?;
    bus.ensure_streams().await?;
    wait_for_ready(&bus, Ok(())).await?;
    publish(&bus, "after-stream").await?;
    handed(&mut rx, "after-stream", Duration::from_secs(20)).await?;
    assert!(!task.is_finished(), "the loop keeps running");
    task.abort();
    cleanup(&bus).await;
    Ok(())
}

#[tokio::test]
async fn the_server_limits_redelivery_just_above_our_limit_also_on_an_existing_consumer()
-> anyhow::Result<()> {
    let bus = bus(Duration::from_secs(2), 4).await?;
    // As an older release made it: no server limit, the default ack wait.
    let inbound = bus
        .js
        .get_stream(bus.subjects.stream(StreamKind::Inbound))
        .await?;
    let _: jetstream::consumer::PullConsumer = inbound
        .create_consumer(pull::Config {
            durable_name: Some(CONSUMER.into()),
            filter_subjects: vec![bus.subjects.order_placed()],
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            ..Default::default()
        })
        .await?;
    let (task, _rx) = start(&bus, "rt-limit", 7, Duration::ZERO).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let config = consumer_info(&bus).await?.expect("the consumer").config;
        // The worker's BO_MAX_DELIVER (7) wins over the bus's default, so our check always comes first.
        if (config.max_deliver, config.ack_wait) == (9, Duration::from_secs(2)) {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "max_deliver {} ack_wait {:?}",
            config.max_deliver,
            config.ack_wait
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    task.abort();
    cleanup(&bus).await;
    Ok(())
}

#[tokio::test]
async fn a_message_the_server_stops_delivering_is_logged_and_counted() -> anyhow::Result<()> {
    let metrics = backorder_runtime::ops::metrics();
    // Our limit 1, the server's 3; with the dead-letter stream gone, parking fails (the message is nakked)
    // at deliveries 2 and 3, and the server gives up after the third.
    let bus = bus(Duration::from_secs(1), 1).await?;
    bus.js
        .delete_stream(bus.subjects.stream(StreamKind::DeadLetter))
        .await?;
    publish(&bus, "poison").await?;
    let (task, mut rx) = start(&bus, "rt-advisory", 1, Duration::ZERO).await?;
    handed(&mut rx, "poison", Duration::from_secs(10)).await?;
    task.abort();
    let _ = task.await;
    let (task, _rx) = start(&bus, "rt-advisory", 1, Duration::ZERO).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let counted = r#"bo_max_deliveries_total{service="rt-advisory"} 1"#;
    while !metrics.render().contains(counted) {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "not counted:\n{}",
            metrics.render()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    task.abort();
    cleanup(&bus).await;
    Ok(())
}

#[tokio::test]
async fn a_refused_message_too_large_for_a_dead_letter_is_parked_without_its_bytes()
-> anyhow::Result<()> {
    let bus = bus(Duration::from_secs(30), 5).await?;
    let (task, mut rx) = start(&bus, "rt-big", 5, Duration::ZERO).await?;
    // As large as the server takes: with an error and the letter's fields around it, it would not fit.
    let max = bus.client.server_info().max_payload;
    let big = format!("big{}", "x".repeat(max - 512));
    bus.publish_bytes(bus.subjects.order_placed(), "big", big.into())
        .await?;
    publish(&bus, "after").await?;
    handed(&mut rx, "after", Duration::from_secs(20)).await?;
    let letter = wait_for_dead_letter(&bus, Duration::from_secs(20)).await?;
    assert!(letter.payload.is_empty());
    assert!(
        letter.error.starts_with("refused by the test; payload of ")
            && letter
                .error
                .contains("left out (too large for a dead letter): it is in stream"),
        "{}",
        letter.error
    );
    assert_eq!(letter.stream_sequence, 1);
    task.abort();
    cleanup(&bus).await;
    Ok(())
}
