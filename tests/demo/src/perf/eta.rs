//! Re-projecting the ETAs of one SKU with many open backorder lines and many purchase-order lines: the pure
//! projection in memory against the engine's whole transaction (read queue and supply, project, write what
//! changed with its audit rows and statuses). Shared by `backorder-eta-bench` and `backorder-perf`.

use std::time::{Duration, Instant};

use allocation::command::Command;
use allocation::engine::Engine;
use allocation::eta::{self, Settings, Supply, Waiting};
use backorder_proto::v1::SupplyUpdated;
use backorder_runtime::{Subjects, time};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgPool};

/// The SKU every line waits for.
pub const SKU: &str = "HOT";

/// Runs `f` on a database of its own (allocation's schema, migrated) on the server of `url`, then drops it,
/// whether `f` succeeded or not.
pub async fn on_scratch_database<T>(
    url: &str,
    database: &str,
    f: impl AsyncFnOnce(&PgPool) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let admin = url.parse::<PgConnectOptions>()?.database("postgres");
    let db_url = admin.clone().database(database).to_url_lossy().to_string();
    let pool = allocation::connect_database(&db_url, 4).await?;
    let result = f(&pool).await;
    pool.close().await;
    let mut conn = admin.connect().await?;
    backorder_test_support::drop_database(&mut conn, database).await?;
    result
}

/// One SKU's queue and supply, as stored.
pub struct Fixture {
    pub now: DateTime<Utc>,
    pub lines: i64,
    pub supply_lines: i64,
}

impl Fixture {
    /// Every line waits for 1 to 3 units; purchase orders of 150 units arrive every 6 hours, covering about
    /// three quarters of the queue (at the defaults), so the tail gets estimates.
    pub async fn seed(pool: &PgPool, lines: i64, supply_lines: i64) -> anyhow::Result<Self> {
        let now = Utc::now();
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
        Ok(Self {
            now,
            lines,
            supply_lines,
        })
    }

    /// How long the pure projection of the same queue over the same supply takes, `runs` times.
    pub fn pure_runs(&self, runs: usize) -> Vec<Duration> {
        let queue: Vec<Waiting> = (1..=self.lines)
            .map(|g| Waiting {
                units: 1 + g % 3,
                current: None,
            })
            .collect();
        let supply: Vec<Supply> = (1..=self.supply_lines)
            .map(|g| Supply {
                id: format!("PO-{g:05}/1"),
                expected_at: self.now + chrono::Duration::hours(6 * g),
                open: 150,
            })
            .collect();
        let settings = Settings {
            handling: chrono::Duration::days(1),
            grace: chrono::Duration::days(3),
            lead_time: chrono::Duration::days(14),
        };
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                let etas = eta::project(self.now, &queue, &supply, &settings);
                let took = start.elapsed();
                assert_eq!(etas.len(), queue.len());
                took
            })
            .collect()
    }

    /// The engine the transactions run in (its subjects only name the outbox rows it writes).
    pub fn engine(pool: &PgPool) -> anyhow::Result<Engine> {
        Ok(Engine::new(
            pool.clone(),
            Subjects::new("bench").map_err(anyhow::Error::msg)?,
        ))
    }

    /// `PO-00001` re-dated to where it already is: the first time every line gets a date, afterwards
    /// (another `sequence`) nothing moves.
    pub fn same_date(&self, sequence: u64) -> Command {
        redate("PO-00001", self.now + chrono::Duration::hours(6), sequence)
    }
}

/// Applies `commands` in one engine transaction: how long it took, and how many ETAs it changed.
pub async fn apply(engine: &Engine, commands: &[Command]) -> anyhow::Result<(Duration, i64)> {
    let start = Instant::now();
    engine.apply(commands).await?;
    let took = start.elapsed();
    let changed: i64 =
        sqlx::query_scalar("select count(*) from line_history where change = 'eta' and cause = $1")
            .bind(commands[0].message_id())
            .fetch_one(&engine.pool)
            .await?;
    Ok((took, changed))
}

/// A purchase-order line of [`SKU`] with a new expected date.
pub fn redate(po_id: &str, expected_at: DateTime<Utc>, sequence: u64) -> Command {
    Command::UpdateSupply {
        supply: SupplyUpdated {
            po_id: po_id.into(),
            line_no: 1,
            sku: SKU.into(),
            quantity_open: 150,
            expected_at: Some(time::to_proto(expected_at)),
            cancelled: false,
            request_id: String::new(),
        },
        published: DateTime::UNIX_EPOCH,
        sequence,
    }
}

pub fn median(runs: &mut [Duration]) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

/// What `backorder-perf` reports: the pure projection against the transaction in which nothing moves.
pub struct Figures {
    pub lines: i64,
    pub supply_lines: i64,
    /// Median of 20 runs.
    pub pure: Duration,
    /// Median of `repeats` re-projections in the engine's transaction after the first one dated every line.
    pub in_transaction: Duration,
    /// ETAs the nothing-moves re-projections changed (0 expected).
    pub changed: i64,
}

pub async fn measure(
    pool: &PgPool,
    lines: i64,
    supply_lines: i64,
    repeats: u64,
) -> anyhow::Result<Figures> {
    let fixture = Fixture::seed(pool, lines, supply_lines).await?;
    let pure = median(&mut fixture.pure_runs(20));
    let engine = Fixture::engine(pool)?;
    apply(&engine, &[fixture.same_date(1)]).await?;
    let mut runs = Vec::new();
    let mut changed = 0;
    for sequence in 2..2 + repeats.max(1) {
        let (took, moved) = apply(&engine, &[fixture.same_date(sequence)]).await?;
        runs.push(took);
        changed += moved;
    }
    Ok(Figures {
        lines,
        supply_lines,
        pure,
        in_transaction: median(&mut runs),
        changed,
    })
}
