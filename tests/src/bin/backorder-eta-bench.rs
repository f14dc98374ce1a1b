//! How fast a SKU's ETAs are re-projected when it has 100,000 open backorder lines and 1,000 purchase-order
//! lines: the pure projection alone, and the engine's whole transaction (read the queue and supply, project,
//! write the lines that changed, their audit rows and the statuses of orders whose date moved).
//!
//! `backorder-eta-bench [lines] [supply lines]`, defaults 100000 and 1000. Uses a database of its own on the
//! server of DATABASE_URL and drops it afterwards.

use std::str::FromStr;
use std::time::{Duration, Instant};

use allocation::command::Command;
use allocation::engine::Engine;
use allocation::eta::{self, Settings, Supply, Waiting};
use backorder_proto::v1::{StockReceived, SupplyUpdated};
use backorder_runtime::{Subjects, time};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgPool};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let lines: i64 = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let supply_lines: i64 = args.next().map_or(Ok(1_000), |a| a.parse())?;
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let admin = PgConnectOptions::from_str(&url)?.database("postgres");
    let database = format!("eta_bench_{}", std::process::id());
    let db_url = admin.clone().database(&database).to_url_lossy().to_string();
    let pool = allocation::connect_database(&db_url, 4).await?;
    let result = run(&pool, lines, supply_lines).await;
    pool.close().await;
    let mut conn = admin.connect().await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "drop database if exists \"{database}\" with (force)"
    )))
    .execute(&mut conn)
    .await?;
    result
}

async fn run(pool: &PgPool, lines: i64, supply_lines: i64) -> anyhow::Result<()> {
    let now = Utc::now();
    // Every line waits for 1 to 3 units; purchase orders of 150 units arrive every 6 hours, covering about
    // three quarters of the queue, so the tail gets estimates.
    sqlx::query(
        "insert into orders (order_id, customer_id, email, phone, locale, priority, ship_policy, placed_at,
                             channel, status)
         select 'SO-' || lpad(g::text, 7, '0'), 'C-' || g, '', '', 'en', (g % 4 = 0)::int, 0,
                $1 - interval '30 days' + g * interval '1 second', 'bench', 'BACKORDERED'
         from generate_series(1, $2) g",
    )
    .bind(now)
    .bind(lines)
    .execute(pool)
    .await?;
    sqlx::query(
        "insert into order_lines (order_id, line_no, sku, priority, placed_at, ordered, backordered)
         select 'SO-' || lpad(g::text, 7, '0'), 1, 'HOT', (g % 4 = 0)::int,
                $1 - interval '30 days' + g * interval '1 second', 1 + g % 3, 1 + g % 3
         from generate_series(1, $2) g",
    )
    .bind(now)
    .bind(lines)
    .execute(pool)
    .await?;
    sqlx::query(
        "insert into stock (sku, backordered)
         select 'HOT', sum(backordered) from order_lines where sku = 'HOT'",
    )
    .execute(pool)
    .await?;
    sqlx::query(
        "insert into supply (po_id, line_no, sku, quantity_open, expected_at, cancelled, stream_sequence)
         select 'PO-' || lpad(g::text, 5, '0'), 1, 'HOT', 150, $1 + g * interval '6 hours', false, 0
         from generate_series(1, $2) g",
    )
    .bind(now)
    .bind(supply_lines)
    .execute(pool)
    .await?;
    sqlx::query("analyze").execute(pool).await?;
    println!("SKU HOT: {lines} open backorder lines, {supply_lines} purchase-order lines");

    // The projection alone, in memory.
    let queue: Vec<Waiting> = (1..=lines)
        .map(|g| Waiting {
            units: 1 + g % 3,
            current: None,
        })
        .collect();
    let supply: Vec<Supply> = (1..=supply_lines)
        .map(|g| Supply {
            id: format!("PO-{g:05}/1"),
            expected_at: now + chrono::Duration::hours(6 * g),
            open: 150,
        })
        .collect();
    let settings = Settings {
        handling: chrono::Duration::days(1),
        grace: chrono::Duration::days(3),
        lead_time: chrono::Duration::days(14),
    };
    let mut runs = Vec::new();
    for _ in 0..20 {
        let start = Instant::now();
        let etas = eta::project(now, &queue, &supply, &settings);
        runs.push(start.elapsed());
        assert_eq!(etas.len(), queue.len());
    }
    println!(
        "pure projection:                          median {}",
        median(&mut runs)
    );

    let engine = Engine::new(
        pool.clone(),
        Subjects::new("bench").map_err(anyhow::Error::msg)?,
    );
    let step = |name: &'static str, commands: Vec<Command>| {
        let engine = engine.clone();
        async move {
            let start = Instant::now();
            engine.apply(&commands).await?;
            let took = start.elapsed();
            let changed: i64 = sqlx::query_scalar(
                "select count(*) from line_history where change = 'eta' and cause = $1",
            )
            .bind(commands[0].message_id())
            .fetch_one(&engine.pool)
            .await?;
            println!("{name:<41} {} ({changed} ETAs changed)", ms(took));
            anyhow::Ok(())
        }
    };
    step(
        "first projection (every line gets a date):",
        vec![redate("PO-00001", now + chrono::Duration::hours(6), 1)],
    )
    .await?;
    step(
        "re-projection, nothing moves:",
        vec![redate("PO-00001", now + chrono::Duration::hours(6), 2)],
    )
    .await?;
    step(
        "re-projection, one late PO re-dated:",
        vec![redate(
            &format!("PO-{supply_lines:05}"),
            now + chrono::Duration::hours(6 * supply_lines + 3),
            3,
        )],
    )
    .await?;
    step(
        "re-projection, the first PO 10 days later:",
        vec![redate("PO-00001", now + chrono::Duration::days(10), 4)],
    )
    .await?;
    step(
        "receipt of 300 units on a PO:",
        vec![Command::ReceiveStock(StockReceived {
            receipt_id: "R-1".into(),
            sku: "HOT".into(),
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

fn redate(po_id: &str, expected_at: DateTime<Utc>, sequence: u64) -> Command {
    Command::UpdateSupply {
        supply: SupplyUpdated {
            po_id: po_id.into(),
            line_no: 1,
            sku: "HOT".into(),
            quantity_open: 150,
            expected_at: Some(time::to_proto(expected_at)),
            cancelled: false,
            request_id: String::new(),
        },
        published: DateTime::UNIX_EPOCH,
        sequence,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn median(runs: &mut [Duration]) -> String {
    runs.sort();
    ms(runs[runs.len() / 2])
}
