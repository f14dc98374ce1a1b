//! How fast a SKU's ETAs are re-projected when it has 100,000 open backorder lines and 1,000 purchase-order
//! lines: the pure projection alone, and the engine's whole transaction (read the queue and supply, project,
//! write the lines that changed, their audit rows and the statuses of orders whose date moved).
//!
//! `backorder-eta-bench [lines] [supply lines]`, defaults 100000 and 1000. Uses a database of its own on the
//! server of DATABASE_URL and drops it afterwards. The fixture and the measurements are in
//! `backorder_demo::perf::eta`, which `backorder-perf` shares.

use std::time::Duration;

use allocation::command::Command;
use backorder_demo::perf::eta::{self, Fixture, median, on_scratch_database, redate};
use backorder_proto::v1::StockReceived;
use sqlx::PgPool;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let lines: i64 = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let supply_lines: i64 = args.next().map_or(Ok(1_000), |a| a.parse())?;
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let database = format!("eta_bench_{}", std::process::id());
    on_scratch_database(&url, &database, async |pool| {
        run(pool, lines, supply_lines).await
    })
    .await
}

async fn run(pool: &PgPool, lines: i64, supply_lines: i64) -> anyhow::Result<()> {
    let fixture = Fixture::seed(pool, lines, supply_lines).await?;
    let now = fixture.now;
    println!("SKU HOT: {lines} open backorder lines, {supply_lines} purchase-order lines");
    println!(
        "pure projection:                          median {}",
        ms(median(&mut fixture.pure_runs(20)))
    );

    let engine = Fixture::engine(pool)?;
    let step = async |name: &str, commands: Vec<Command>| {
        let (took, changed) = eta::apply(&engine, &commands).await?;
        println!("{name:<41} {} ({changed} ETAs changed)", ms(took));
        anyhow::Ok(())
    };
    step(
        "first projection (every line gets a date):",
        vec![fixture.same_date(1)],
    )
    .await?;
    step("re-projection, nothing moves:", vec![fixture.same_date(2)]).await?;
    // The run before read the queue and wrote none of it: the engine kept it (engine/queues.rs).
    step("again, the queue kept:", vec![fixture.same_date(3)]).await?;
    step(
        "re-projection, one late PO re-dated:",
        vec![redate(
            &format!("PO-{supply_lines:05}"),
            now + chrono::Duration::hours(6 * supply_lines + 3),
            4,
        )],
    )
    .await?;
    step(
        "re-projection, the first PO 10 days later:",
        vec![redate("PO-00001", now + chrono::Duration::days(10), 5)],
    )
    .await?;
    step(
        "receipt of 300 units on a PO:",
        vec![Command::ReceiveStock(StockReceived {
            receipt_id: "R-1".into(),
            sku: eta::SKU.into(),
            quantity: 300,
            po_id: "PO-00002".into(),
            received_at: None,
        })],
    )
    .await?;
    let broken = allocation::invariants::violations(pool).await?;
    anyhow::ensure!(broken.is_empty(), "invariants broken: {broken:?}");
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
