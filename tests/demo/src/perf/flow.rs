//! The load `backorder-perf` puts through the four services, one phase per function, each on SKUs and order
//! ids of its own (prefixes `F-`/`FO-`, `L-`/`LT-`, `R-`/`RC-`) so the phases can share one system and the
//! services' peak memory covers them all.

use std::time::{Duration, Instant};

use anyhow::bail;
use backorder_proto::v1::OrderPlaced;
use backorder_runtime::subjects::StreamKind;
use prost::Message;
use sqlx::PgPool;

use super::cpu::{self, CpuUse};
use super::watch::{Seen, Watch};
use backorder_test_support::stream::unsettled;
use backorder_test_support::{System, messages};

pub const SKUS: usize = 1_000;
pub const LINES_PER_ORDER: usize = 3;
/// The share of the demand the seeded stock covers.
const IN_STOCK: f64 = 0.7;
/// Publish acks awaited at once (as backorder-bench does): the publisher never waits for one round trip per
/// order.
const ACK_WINDOW: usize = 512;
/// How long a phase waits for the services before it gives up.
pub const PATIENCE: Duration = Duration::from_secs(600);

/// Order `i` of a phase: 3 lines of 1, 2 and 3 units on SKUs spread evenly over the phase's 1,000.
fn order(id: &str, i: usize, sku_prefix: &str) -> OrderPlaced {
    let lines: Vec<(String, i64)> = (0..LINES_PER_ORDER)
        .map(|l| {
            let sku = format!("{sku_prefix}{:04}", (i * 7 + l * 13) % SKUS);
            (sku, 1 + l as i64)
        })
        .collect();
    let refs: Vec<(&str, i64)> = lines.iter().map(|(s, q)| (s.as_str(), *q)).collect();
    let customer = messages::customer("C-1", "c@shop.example", "+4915112345678", "en");
    messages::order(id, customer, &refs)
}

/// Stock for [`IN_STOCK`] of what `orders` orders of [`order`] ask of each SKU, loaded as the WMS's
/// `StockAdjusted` and waited for in allocation's books.
pub async fn seed_stock(system: &System, sku_prefix: &str, orders: usize) -> anyhow::Result<()> {
    let units_per_order: usize = (1..=LINES_PER_ORDER).sum();
    let per_sku = (IN_STOCK * (orders * units_per_order) as f64 / SKUS as f64).ceil() as i64;
    let s = system.subjects();
    for sku in 0..SKUS {
        let id = format!("init-{sku_prefix}{sku:04}");
        let sku = format!("{sku_prefix}{sku:04}");
        let adjustment = messages::adjustment(&id, &sku, per_sku.max(1), "load");
        system.publish(s.stock_adjusted(), &id, &adjustment).await?;
    }
    wait_for_count(
        &system.db,
        "select count(*) from stock where sku like $1 || '%'",
        sku_prefix,
        SKUS as i64,
    )
    .await
}

/// Publishes every order, many acks in flight; returns when the last is acknowledged.
async fn publish_all(
    system: &System,
    orders: impl Iterator<Item = (String, OrderPlaced)>,
) -> anyhow::Result<()> {
    let subject = system.subjects().order_placed();
    let mut acks = Vec::with_capacity(ACK_WINDOW);
    for (id, order) in orders {
        let payload = order.encode_to_vec().into();
        acks.push(system.bus.send(subject.clone(), &id, payload).await?);
        if acks.len() == ACK_WINDOW {
            for ack in acks.drain(..) {
                ack.await?;
            }
        }
    }
    for ack in acks {
        ack.await?;
    }
    Ok(())
}

pub struct FlatOut {
    pub orders: usize,
    /// Until the last order was acknowledged by the stream.
    pub published: Duration,
    /// Until the last order's first `OrderStatus` was seen.
    pub elapsed: Duration,
    /// When that was.
    pub last: Instant,
    /// Where the cores went meanwhile (`None`: /proc could not be read).
    pub cpu: Option<CpuUse>,
}

impl FlatOut {
    pub fn lines_per_sec(&self) -> f64 {
        (self.orders * LINES_PER_ORDER) as f64 / self.elapsed.as_secs_f64()
    }
}

/// Phase 3: `orders` orders as fast as JetStream takes them, until every one's first status is out.
pub async fn flat_out(system: &System, watch: &Watch, orders: usize) -> anyhow::Result<FlatOut> {
    seed_stock(system, "F-", orders).await?;
    let cpu = cpu::snapshot(&system.pids()).ok();
    let start = Instant::now();
    let load = (0..orders).map(|i| {
        let id = format!("FO-{i:07}");
        let order = order(&id, i, "F-");
        (id, order)
    });
    publish_all(system, load).await?;
    let published = start.elapsed();
    let last = watch
        .wait_for(Seen::Status, "FO-", orders, PATIENCE)
        .await?;
    let cpu = cpu.and_then(|at| Some(at.until(&cpu::snapshot(&system.pids()).ok()?)));
    Ok(FlatOut {
        orders,
        published,
        elapsed: last - start,
        last,
        cpu,
    })
}

/// How long after a moment a durable consumer needed to have nothing stored for it or in hand.
pub struct Drained {
    pub stream: String,
    pub consumer: String,
    /// `None`: still unsettled when the bench gave up.
    pub after: Option<Duration>,
}

/// Phase 4: polls every durable consumer of the inbound, internal and outbound streams until all have
/// settled; a consumer counts as drained from the poll after which it stayed at zero.
pub async fn drain(system: &System, since: Instant) -> anyhow::Result<Vec<Drained>> {
    let s = system.subjects();
    let streams = [
        StreamKind::Inbound,
        StreamKind::Internal,
        StreamKind::Outbound,
    ]
    .map(|kind| s.stream(kind));
    let mut zero_since: std::collections::BTreeMap<(String, String), Option<Instant>> =
        Default::default();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = Instant::now();
        for stream in &streams {
            for (consumer, left) in unsettled(&system.bus, stream).await? {
                let entry = zero_since.entry((stream.clone(), consumer)).or_default();
                *entry = if left > 0 { None } else { entry.or(Some(now)) };
            }
        }
        // Settled once every consumer has stayed at zero for a second: a moment's zero between two
        // deliveries is not the end.
        let done = zero_since
            .values()
            .all(|at| at.is_some_and(|at| now - at >= Duration::from_secs(1)));
        if done || now > deadline {
            return Ok(zero_since
                .into_iter()
                .map(|((stream, consumer), at)| Drained {
                    stream,
                    consumer,
                    after: at.map(|at| at.saturating_duration_since(since)),
                })
                .collect());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub struct Latency {
    pub orders: usize,
    pub rate: f64,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
}

/// Phase 5: `rate` orders a second for `phase`, each timed from just before its publish to its first
/// status.
pub async fn latency(
    system: &System,
    watch: &Watch,
    rate: f64,
    phase: Duration,
) -> anyhow::Result<Latency> {
    let total = ((rate * phase.as_secs_f64()).round() as usize).max(1);
    seed_stock(system, "L-", total).await?;
    let subject = system.subjects().order_placed();
    // Acks are awaited off the pacing loop, in order, so a slow one never holds back the next order.
    let (acks, mut pending) = tokio::sync::mpsc::unbounded_channel();
    let settle = tokio::spawn(async move {
        while let Some(ack) = pending.recv().await {
            let ack: async_nats::jetstream::context::PublishAckFuture = ack;
            ack.await?;
        }
        anyhow::Ok(())
    });
    let mut published = Vec::with_capacity(total);
    let mut ticks =
        tokio::time::interval(Duration::from_secs_f64(1.0 / rate).max(Duration::from_millis(1)));
    let start = Instant::now();
    while published.len() < total {
        ticks.tick().await;
        let due = ((start.elapsed().as_secs_f64() * rate) as usize + 1).min(total);
        while published.len() < due {
            let i = published.len();
            let id = format!("LT-{i:07}");
            let payload = order(&id, i, "L-").encode_to_vec().into();
            published.push((id.clone(), Instant::now()));
            acks.send(system.bus.send(subject.clone(), &id, payload).await?)?;
        }
    }
    drop(acks);
    settle.await??;
    watch.wait_for(Seen::Status, "LT-", total, PATIENCE).await?;
    let mut latencies: Vec<Duration> = published
        .iter()
        .filter_map(|(id, at)| Some(watch.first(Seen::Status, id)? - *at))
        .collect();
    latencies.sort();
    Ok(Latency {
        orders: total,
        rate,
        p50: super::quantile(&latencies, 0.5),
        p90: super::quantile(&latencies, 0.9),
        p99: super::quantile(&latencies, 0.99),
    })
}

pub struct Receipt {
    pub lines: usize,
    /// From the receipt's publish to the last `AllocationCreated`, and to the last ALLOCATED status.
    pub allocations: Duration,
    pub statuses: Duration,
    /// Where the cores went meanwhile (`None`: /proc could not be read).
    pub cpu: Option<CpuUse>,
}

impl Receipt {
    pub fn lines_per_sec(&self) -> f64 {
        self.lines as f64 / self.allocations.max(self.statuses).as_secs_f64()
    }
}

/// The SKU phase 6 backorders and fills.
const RECEIPT_SKU: &str = "R-HOT";

/// Phase 6: `lines` one-line orders of one unit of a SKU without stock, all backordered and announced,
/// then one `StockReceived` of as many units, timed until every order's allocation and status are out.
pub async fn receipt(system: &System, watch: &Watch, lines: usize) -> anyhow::Result<Receipt> {
    let load = (0..lines).map(|i| {
        let id = format!("RC-{i:07}");
        let customer = messages::customer("C-1", "c@shop.example", "+4915112345678", "en");
        let order = messages::order(&id, customer, &[(RECEIPT_SKU, 1)]);
        (id, order)
    });
    publish_all(system, load).await?;
    wait_for_count(
        &system.db,
        "select count(*) from order_lines where sku = $1 and backordered > 0",
        RECEIPT_SKU,
        lines as i64,
    )
    .await?;
    watch.wait_for(Seen::Status, "RC-", lines, PATIENCE).await?;
    // The notices and shortage reports of the backorders are not part of what the receipt costs.
    drain(system, Instant::now()).await?;
    let s = system.subjects();
    let cpu = cpu::snapshot(&system.pids()).ok();
    let start = Instant::now();
    let receipt = messages::receipt("RCPT-1", RECEIPT_SKU, lines as i64, "");
    system
        .publish(s.stock_received(), "RCPT-1", &receipt)
        .await?;
    let allocated = watch
        .wait_for(Seen::Allocation, "RC-", lines, PATIENCE)
        .await?;
    let statuses = watch
        .wait_for(Seen::Allocated, "RC-", lines, PATIENCE)
        .await?;
    let cpu = cpu.and_then(|at| Some(at.until(&cpu::snapshot(&system.pids()).ok()?)));
    Ok(Receipt {
        lines,
        allocations: allocated - start,
        statuses: statuses - start,
        cpu,
    })
}

/// How many messages the services parked in the dead-letter stream: each one is a failure or a message
/// redelivered too often, either of which skews the figures.
pub async fn dead_letters(system: &System) -> anyhow::Result<u64> {
    let name = system.subjects().stream(StreamKind::DeadLetter);
    let mut stream = system.bus.js.get_stream(&name).await?;
    Ok(stream.info().await?.state.messages)
}

/// Waits until `query` (a count, bound to `bind`) is `expected`, for up to [`PATIENCE`].
async fn wait_for_count(
    db: &PgPool,
    query: &'static str,
    bind: &str,
    expected: i64,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let value: Option<i64> = sqlx::query_scalar(query)
            .bind(bind)
            .fetch_one(db)
            .await
            .ok();
        if value == Some(expected) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{query} ({bind}) is {value:?} after {PATIENCE:?}, expected {expected}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
