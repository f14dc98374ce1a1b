//! Throughput of the whole pipeline: starts the four services (from the binaries beside this one, so
//! `cargo run --release --bin backorder-bench` measures release builds) under a prefix and database of their
//! own, publishes N orders as fast as JetStream takes them, and reports how long until allocation has stored
//! every order and relayed every event.
//!
//! `backorder-bench [orders] [lines per order]`, defaults 5000 and 4. Needs NATS_URL and DATABASE_URL like the
//! tests.

use std::time::Instant;

use backorder_e2e::{System, messages, wait_for_value};

const SKUS: usize = 1_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let orders: usize = args.next().map_or(Ok(5_000), |a| a.parse())?;
    let lines: usize = args.next().map_or(Ok(4), |a| a.parse())?;
    let system = System::start().await?;
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
    wait_for_value(
        &system.db,
        "select count(*) from stock where $1 = ''",
        "",
        SKUS as i64,
    )
    .await?;

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
    wait_for_value(
        &system.db,
        "select count(*) from orders where $1 = ''",
        "",
        orders as i64,
    )
    .await?;
    let stored = start.elapsed();
    wait_for_value(
        &system.db,
        "select count(*) from outbox where $1 = ''",
        "",
        0,
    )
    .await?;
    let relayed = start.elapsed();
    let events: i64 = sqlx::query_scalar("select count(*) from processed_messages")
        .fetch_one(&system.db)
        .await?;

    let per_sec = |n: usize, d: std::time::Duration| n as f64 / d.as_secs_f64();
    println!("orders {orders}, lines per order {lines}, SKUs {SKUS}, messages applied {events}");
    println!(
        "published in {:.2} s ({:.0} orders/s)",
        published.as_secs_f64(),
        per_sec(orders, published)
    );
    println!(
        "stored in {:.2} s: {:.0} orders/s, {:.0} order lines/s",
        stored.as_secs_f64(),
        per_sec(orders, stored),
        per_sec(orders * lines, stored)
    );
    println!("all events relayed in {:.2} s", relayed.as_secs_f64());
    system.stop().await
}
