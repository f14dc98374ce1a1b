//! How fast replenishment-trigger takes shortage reports and sends what it gathered, against the NATS server of
//! `NATS_URL` (a prefix of its own, deleted afterwards). Run:
//!
//!     NATS_URL=nats://127.0.0.1:4333 cargo run --release -p replenishment-trigger --example reorder-bench -- \
//!         [REPORTS] [SKUS] [SUPPLIERS]
//!
//! Publishes REPORTS `ReorderNeeded` (default 5,000) spread over SKUS SKUs (500) whose policies (a generated
//! file) name SUPPLIERS suppliers (10), each report a growing shortage, waits until the last is handled, then
//! moves the simulated clock past the window and waits for one request per supplier.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, pull};
use backorder_proto::v1::{ClockAdvanced, DeadLetter, PurchaseRequest, ReorderNeeded};
use backorder_runtime::jetstream::Bus;
use backorder_runtime::subjects::StreamKind;
use backorder_runtime::{Subjects, time};
use futures::StreamExt;
use prost::Message as _;
use replenishment_trigger::{Application, Config};

const START: &str = "2026-11-02T09:00:00Z";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let reports = args.next().transpose()?.unwrap_or(5_000);
    let skus = args.next().transpose()?.unwrap_or(500).max(1);
    let suppliers = args.next().transpose()?.unwrap_or(10).max(1);
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let prefix = format!("bench{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let dir = std::env::temp_dir().join(&prefix);
    std::fs::create_dir_all(&dir)?;
    let mut policies = String::new();
    for sku in 0..skus {
        writeln!(
            policies,
            "[sku.S{sku}]\nsupplier = \"SUP{}\"\npack_size = 6\n",
            sku % suppliers
        )?;
    }
    let file = dir.join("policies.toml");
    std::fs::write(&file, policies)?;

    let bus = Bus::connect(
        &backorder_runtime::nats::NatsOptions::env_with_url(&url).unwrap(),
        Subjects::new(&prefix).map_err(anyhow::Error::msg)?,
        "reorder-bench",
    )
    .await?;
    let result = run(&bus, &url, &prefix, &file, reports, skus, suppliers).await;
    let _ = bus
        .js
        .delete_key_value(bus.subjects.replenishment_bucket())
        .await;
    for kind in StreamKind::ALL {
        let _ = bus.js.delete_stream(bus.subjects.stream(kind)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(
    bus: &Bus,
    url: &str,
    prefix: &str,
    file: &std::path::Path,
    reports: usize,
    skus: usize,
    suppliers: usize,
) -> anyhow::Result<()> {
    let (stop, running) = start_trigger(url, prefix, file).await?;

    let started = Instant::now();
    publish_reports(bus, reports, skus).await?;
    let published = started.elapsed();
    wait_until_handled(bus).await?;
    let handled = started.elapsed();

    let sending = Instant::now();
    let requests = close_window(bus, suppliers.min(skus)).await?;
    let sent = sending.elapsed();
    let lines: usize = requests
        .iter()
        .map(|b| PurchaseRequest::decode(b.as_slice()).map_or(0, |r| r.lines.len()))
        .sum();

    println!(
        "{reports} reports over {skus} SKUs: published in {:.2} s, handled in {:.2} s ({:.0} reports/s)",
        published.as_secs_f64(),
        handled.as_secs_f64(),
        reports as f64 / handled.as_secs_f64()
    );
    println!(
        "window closed: {} requests with {lines} lines sent in {:.2} s",
        requests.len(),
        sent.as_secs_f64()
    );
    let _ = stop.send(());
    running.await??;
    Ok(())
}

/// The service in this process on the simulated clock, with the generated policies; send on the returned
/// sender to stop it, then await the handle for how it ended.
async fn start_trigger(
    url: &str,
    prefix: &str,
    file: &std::path::Path,
) -> anyhow::Result<(
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
)> {
    let file = file.to_string_lossy();
    let source = std::collections::HashMap::from([
        ("NATS_URL", url),
        ("BO_PREFIX", prefix),
        ("BO_HTTP_ADDR", "127.0.0.1:0"),
        ("BO_CLOCK", "simulated"),
        ("BO_CLOCK_START", START),
        ("BO_REORDER_POLICY_FILE", file.as_ref()),
    ]);
    let app = Application::build(Config::from_source(&source)?).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    Ok((stop, running))
}

/// Publishes `reports` shortage reports round-robin over `skus` SKUs, each SKU's shortage growing; waits for
/// the stream's acks 256 at a time, so publishing is not one round trip per report.
async fn publish_reports(bus: &Bus, reports: usize, skus: usize) -> anyhow::Result<()> {
    let subject = bus.subjects.reorder_needed();
    let mut acks = Vec::with_capacity(256);
    for n in 0..reports {
        let sku = n % skus;
        let shortage = (n / skus + 1) as i64 * 5;
        let report = ReorderNeeded {
            sku: format!("S{sku}"),
            shortage,
            backordered: shortage,
            orders_waiting: (n / skus + 1) as i64,
            event_id: format!("ev-{n}"),
            ..Default::default()
        };
        acks.push(
            bus.send(
                subject.clone(),
                &report.event_id,
                report.encode_to_vec().into(),
            )
            .await?,
        );
        if acks.len() == 256 {
            for ack in acks.drain(..) {
                ack.await?;
            }
        }
    }
    for ack in acks.drain(..) {
        ack.await?;
    }
    Ok(())
}

/// Returns once the service has handled every report published so far.
async fn wait_until_handled(bus: &Bus) -> anyhow::Result<()> {
    // A bad report last: once it is parked, every report before it was handled.
    let marker = ReorderNeeded {
        sku: "S0".into(),
        shortage: -1,
        event_id: "marker".into(),
        ..Default::default()
    };
    bus.publish(bus.subjects.reorder_needed(), "marker", &marker)
        .await?;
    wait_for(
        bus,
        StreamKind::DeadLetter,
        &bus.subjects.dead_letter(replenishment_trigger::SERVICE),
        1,
        |b| {
            DeadLetter::decode(b)
                .map(|d| d.message_id == "marker")
                .unwrap_or(false)
        },
    )
    .await?;
    Ok(())
}

/// Moves the simulated clock past the gathering window and waits for the `expected` purchase requests it
/// sends; returns their payloads.
async fn close_window(bus: &Bus, expected: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    let to = chrono::DateTime::parse_from_rfc3339(START)?.to_utc() + chrono::TimeDelta::minutes(6);
    let advanced = ClockAdvanced {
        to: Some(time::to_proto(to)),
    };
    bus.publish(bus.subjects.clock(), "clock/bench", &advanced)
        .await?;
    wait_for(
        bus,
        StreamKind::Outbound,
        &bus.subjects.purchase_request(),
        expected,
        |b| PurchaseRequest::decode(b).is_ok(),
    )
    .await
}

/// Waits (up to 10 minutes) until `count` messages on `subject` satisfy `matches`; returns their payloads.
async fn wait_for(
    bus: &Bus,
    kind: StreamKind,
    subject: &str,
    count: usize,
    matches: impl Fn(&[u8]) -> bool,
) -> anyhow::Result<Vec<Vec<u8>>> {
    let stream = bus.js.get_stream(bus.subjects.stream(kind)).await?;
    let consumer = stream
        .create_consumer(pull::Config {
            filter_subject: subject.to_string(),
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(60),
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let mut found = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    while found.len() < count {
        let message = tokio::time::timeout_at(deadline, messages.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("{subject} ended"))??;
        if matches(&message.payload) {
            found.push(message.payload.to_vec());
        }
    }
    Ok(found)
}
