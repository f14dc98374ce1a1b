//! Throughput of the whole pipeline: starts the four services (from the binaries beside this one, so
//! `cargo run --release --bin backorder-bench` measures release builds) under a prefix and database of their
//! own, publishes N orders as fast as JetStream takes them, and reports how long until allocation has stored
//! every order and relayed every event, and until every service's consumers have settled what they were
//! given (the notifier's mails, the replenishment trigger's purchase requests).
//!
//! `backorder-bench [orders] [lines per order]`, defaults 5000 and 4, on `NATS_URL` and `DATABASE_URL` like
//! the tests. With `--compare-cluster` it brings its own NATS instead and runs the same load twice in one
//! go: on one server with one replica per stream (NATS' default sync), then on a three-node cluster on
//! loopback with three replicas and `sync_interval: always` (each write on disk before it is acknowledged),
//! both with the users of `backorder-provision accounts` and each service as its role.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::bail;
use backorder_runtime::subjects::StreamKind;
use backorder_test_support::infra::{Cluster, Nats, Scratch};
use backorder_test_support::stream::unsettled;
use backorder_test_support::{System, messages};
use clap::Parser;
use sqlx::PgPool;

const SKUS: usize = 1_000;
/// How long the bench waits for the services to take in the load before it gives up.
const PATIENCE: Duration = Duration::from_secs(900);

#[derive(Parser)]
#[command(
    about = "Throughput of the four services end to end (orders published to every event relayed)",
    after_help = "Environment: NATS_URL, NATS_CREDS (without --compare-cluster), DATABASE_URL (a PostgreSQL server; \
                  each run creates a database of its own there), BO_BIN_DIR (the service binaries, default beside this one)."
)]
struct Args {
    /// Orders to publish.
    #[arg(default_value_t = 5_000)]
    orders: usize,
    /// Lines per order (over 1,000 SKUs, stock for about half the demand).
    #[arg(default_value_t = 4)]
    lines: usize,
    /// Run on NATS of its own, twice: one server with one replica, then a three-node cluster with three
    /// replicas and a fsync on every write.
    #[arg(long)]
    compare_cluster: bool,
}

struct Figures {
    published: Duration,
    stored: Duration,
    relayed: Duration,
    settled: Duration,
    applied: i64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.orders == 0 || args.lines == 0 {
        bail!("orders and lines per order must be at least 1");
    }
    if !args.compare_cluster {
        let figures = run(System::start().await?, &args).await?;
        report("NATS_URL", &args, &figures);
        return Ok(());
    }
    let database_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/test".into());
    let mut scratch = Scratch::new("bench")?;

    let users = scratch.dir.join("nats-users");
    backorder_provision::accounts::write(&users, &[backorder_runtime::Subjects::any()])?;
    let single = Nats::start_configured(&scratch, "include ./nats-users/accounts.conf").await?;
    let system =
        System::start_on_with_users(&single.url(), &users, &database_url, &HashMap::new()).await?;
    let one = run(system, &args).await?;
    drop(single);

    let cluster = Cluster::start(&scratch, 3, true).await?;
    let env = HashMap::from([("BO_STREAM_REPLICAS", "3")]);
    let system =
        System::start_on_with_users(&cluster.url(), cluster.creds_dir(), &database_url, &env)
            .await?;
    let three = run(system, &args).await?;
    drop(cluster);

    report("one server, 1 replica, default sync", &args, &one);
    report(
        "three-node cluster, 3 replicas, sync_interval always",
        &args,
        &three,
    );
    scratch.passed();
    Ok(())
}

async fn run(system: System, args: &Args) -> anyhow::Result<Figures> {
    let (orders, lines) = (args.orders, args.lines);
    let s = system.subjects().clone();

    // Stock for about half the demand, so orders split into allocations and backorders.
    let per_sku = (orders * lines / SKUS / 2).max(1) as i64;
    for sku in 0..SKUS {
        let id = format!("init-{sku}");
        system
            .publish(
                s.stock_adjusted(),
                &id,
                &messages::adjustment(&id, &format!("SKU-{sku:04}"), per_sku, "load"),
            )
            .await?;
    }
    wait_for_count(&system.db, "select count(*) from stock", SKUS as i64).await?;

    let customer = messages::customer("C-1", "c@shop.example", "+4915112345678", "en");
    let start = Instant::now();
    let mut acks = Vec::with_capacity(256);
    for i in 0..orders {
        let id = format!("SO-{i:07}");
        let order_lines: Vec<(String, i64)> = (0..lines)
            .map(|l| {
                (
                    format!("SKU-{:04}", (i * 7 + l * 13) % SKUS),
                    1 + (l as i64 % 3),
                )
            })
            .collect();
        let refs: Vec<(&str, i64)> = order_lines.iter().map(|(s, q)| (s.as_str(), *q)).collect();
        let payload = prost::Message::encode_to_vec(&messages::order(&id, customer.clone(), &refs));
        acks.push(
            system
                .bus
                .send(s.order_placed(), &id, payload.into())
                .await?,
        );
        if acks.len() == 256 {
            for ack in acks.drain(..) {
                ack.await?;
            }
        }
    }
    for ack in acks {
        ack.await?;
    }
    let published = start.elapsed();
    wait_for_count(&system.db, "select count(*) from orders", orders as i64).await?;
    let stored = start.elapsed();
    wait_for_count(&system.db, "select count(*) from outbox", 0).await?;
    let relayed = start.elapsed();
    wait_until_settled(&system).await?;
    let settled = start.elapsed();
    let applied: i64 = sqlx::query_scalar("select count(*) from processed_messages")
        .fetch_one(&system.db)
        .await?;
    system.stop().await?;
    Ok(Figures {
        published,
        stored,
        relayed,
        settled,
        applied,
    })
}

/// Waits until no durable consumer of the prefix's streams has a message stored for it or in hand, for up to
/// [`PATIENCE`]: then the other services are done too, and stopping them measures nothing they still owed.
async fn wait_until_settled(system: &System) -> anyhow::Result<()> {
    let deadline = Instant::now() + PATIENCE;
    let s = system.subjects();
    let streams = [
        StreamKind::Inbound,
        StreamKind::Internal,
        StreamKind::Outbound,
    ];
    loop {
        let mut left = 0;
        for kind in streams {
            left += unsettled(&system.bus, &s.stream(kind))
                .await?
                .values()
                .sum::<u64>();
        }
        if left == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{left} messages still unsettled after {PATIENCE:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `query` (a count) is `expected`, for up to [`PATIENCE`].
async fn wait_for_count(db: &PgPool, query: &'static str, expected: i64) -> anyhow::Result<()> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let value: Option<i64> = sqlx::query_scalar(query).fetch_one(db).await.ok();
        if value == Some(expected) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{query} is {value:?} after {PATIENCE:?}, expected {expected}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn report(on: &str, args: &Args, f: &Figures) {
    let per_sec = |n: usize, d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "{on}: orders {}, lines per order {}, SKUs {SKUS}, messages applied {}",
        args.orders, args.lines, f.applied
    );
    println!(
        "  published in {:.2} s ({:.0} orders/s)",
        f.published.as_secs_f64(),
        per_sec(args.orders, f.published)
    );
    println!(
        "  stored in {:.2} s: {:.0} orders/s, {:.0} order lines/s",
        f.stored.as_secs_f64(),
        per_sec(args.orders, f.stored),
        per_sec(args.orders * args.lines, f.stored)
    );
    println!(
        "  all events relayed in {:.2} s: {:.0} orders/s end to end",
        f.relayed.as_secs_f64(),
        per_sec(args.orders, f.relayed)
    );
    println!(
        "  every consumer settled in {:.2} s: {:.0} orders/s through all four services",
        f.settled.as_secs_f64(),
        per_sec(args.orders, f.settled)
    );
}
