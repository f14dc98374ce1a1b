//! What the same PostgreSQL does without the services, as yardsticks for the pipeline's figures: the
//! classic design of one transaction per order line (lock the SKU's row, decrement, record the allocation,
//! commit), and the bulk-write limit of storing lines with their audit and outbox rows 1,000 at a time.

use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use super::{Rng, ScratchDb};

const SKUS: u64 = 1_000;
/// Lines per bulk transaction.
const BULK: usize = 1_000;

pub struct Figures {
    /// Transactions per second with 16 clients.
    pub tps_16: f64,
    /// Transactions per second with one client, and its mean latency.
    pub tps_1: f64,
    pub mean_1: Duration,
    /// Order lines (each with an audit and an outbox row) per second, 1,000 per transaction, 2 clients.
    pub bulk_lines: f64,
}

/// Runs the three measurements for `phase` each on a scratch database of the server of `url`.
pub async fn measure(url: &str, phase: Duration) -> anyhow::Result<Figures> {
    let scratch = ScratchDb::create(url, "perf_baseline").await?;
    let result = measure_on(&scratch, phase).await;
    scratch.drop().await?;
    result
}

async fn measure_on(scratch: &ScratchDb, phase: Duration) -> anyhow::Result<Figures> {
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .connect_with(scratch.options())
        .await?;
    create_schema(&pool).await?;
    let (count_16, _) = order_transactions(&pool, 16, phase).await?;
    let (count_1, busy_1) = order_transactions(&pool, 1, phase).await?;
    let bulk_lines = bulk_writes(&pool, 2, phase).await? as f64 / phase.as_secs_f64();
    pool.close().await;
    Ok(Figures {
        tps_16: count_16 as f64 / phase.as_secs_f64(),
        tps_1: count_1 as f64 / phase.as_secs_f64(),
        mean_1: busy_1 / count_1.max(1) as u32,
        bulk_lines,
    })
}

async fn create_schema(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::raw_sql(
        "create table stock (sku text primary key, on_hand int not null);
         create table allocations (id bigserial primary key, order_id text not null, sku text not null,
                                   qty int not null, at timestamptz not null);
         create table order_lines (order_id text not null, line_no int not null, sku text not null,
                                   qty int not null, primary key (order_id, line_no));
         create table line_audit (id bigserial primary key, order_id text not null, line_no int not null,
                                  change text not null, at timestamptz not null);
         create table outbox (id bigserial primary key, subject text not null, payload text not null);",
    )
    .execute(pool)
    .await?;
    // Plenty on hand: the baseline measures the transactions, not running out.
    sqlx::query(
        "insert into stock (sku, on_hand) select 'SKU-' || lpad(g::text, 4, '0'), 1000000000
         from generate_series(0, $1 - 1) g",
    )
    .bind(SKUS as i64)
    .execute(pool)
    .await?;
    sqlx::query("analyze").execute(pool).await?;
    Ok(())
}

/// `clients` loops of one transaction per order for `phase`: how many committed, and the time spent in them.
async fn order_transactions(
    pool: &PgPool,
    clients: usize,
    phase: Duration,
) -> anyhow::Result<(u64, Duration)> {
    let deadline = Instant::now() + phase;
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut rng = Rng::new(client as u64 + 1);
                let (mut count, mut busy) = (0u64, Duration::ZERO);
                while Instant::now() < deadline {
                    let sku = format!("SKU-{:04}", rng.below(SKUS));
                    let order = format!("SO-{client}-{count}");
                    let start = Instant::now();
                    allocate(&pool, &order, &sku, 1 + rng.below(3) as i32).await?;
                    busy += start.elapsed();
                    count += 1;
                }
                anyhow::Ok((count, busy))
            })
        })
        .collect();
    let (mut count, mut busy) = (0, Duration::ZERO);
    for task in tasks {
        let (c, b) = task.await??;
        count += c;
        busy += b;
    }
    Ok((count, busy))
}

/// One order line the per-transaction way; sqlx prepares each statement once per connection.
async fn allocate(pool: &PgPool, order: &str, sku: &str, qty: i32) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    let _on_hand: i32 = sqlx::query_scalar("select on_hand from stock where sku = $1 for update")
        .bind(sku)
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query("update stock set on_hand = on_hand - $2 where sku = $1")
        .bind(sku)
        .bind(qty)
        .execute(&mut *tx)
        .await?;
    sqlx::query("insert into allocations (order_id, sku, qty, at) values ($1, $2, $3, now())")
        .bind(order)
        .bind(sku)
        .bind(qty)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// `clients` loops of 1,000 lines per statement for `phase`: how many lines were stored.
async fn bulk_writes(pool: &PgPool, clients: usize, phase: Duration) -> anyhow::Result<u64> {
    let deadline = Instant::now() + phase;
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut rng = Rng::new(100 + client as u64);
                let mut lines = 0u64;
                for batch in 0.. {
                    if Instant::now() >= deadline {
                        break;
                    }
                    bulk_insert(&pool, &format!("B-{client}-{batch}"), &mut rng).await?;
                    lines += BULK as u64;
                }
                anyhow::Ok(lines)
            })
        })
        .collect();
    let mut lines = 0;
    for task in tasks {
        lines += task.await??;
    }
    Ok(lines)
}

/// 1,000 lines of 250 orders (4 lines each), each with an audit row and an outbox row, in one statement (and
/// so one transaction): the lines from `unnest` of the arrays, the other two from what that insert returned.
async fn bulk_insert(pool: &PgPool, batch: &str, rng: &mut Rng) -> anyhow::Result<()> {
    let orders: Vec<String> = (0..BULK).map(|i| format!("{batch}-{}", i / 4)).collect();
    let line_nos: Vec<i32> = (0..BULK).map(|i| (i % 4) as i32 + 1).collect();
    let skus: Vec<String> = (0..BULK)
        .map(|_| format!("SKU-{:04}", rng.below(SKUS)))
        .collect();
    let qtys: Vec<i32> = (0..BULK).map(|_| 1 + rng.below(3) as i32).collect();
    sqlx::query(
        "with lines as (
             insert into order_lines (order_id, line_no, sku, qty)
             select * from unnest($1::text[], $2::int[], $3::text[], $4::int[])
             returning order_id, line_no, sku, qty
         ), audit as (
             insert into line_audit (order_id, line_no, change, at)
             select order_id, line_no, 'placed', now() from lines
         )
         insert into outbox (subject, payload)
         select 'out.order.status', order_id || '/' || line_no || ' ' || sku || ' x' || qty from lines",
    )
    .bind(&orders)
    .bind(&line_nos)
    .bind(&skus)
    .bind(&qtys)
    .execute(pool)
    .await?;
    Ok(())
}
