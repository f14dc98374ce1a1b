//! The pieces of `backorder-perf` (`make bench`, docs/performance.md): baselines on plain PostgreSQL, the
//! pipeline measured end to end through the four services, and the ETA re-projection (shared with
//! `backorder-eta-bench`).

pub mod baseline;
pub mod cpu;
pub mod eta;
pub mod flow;
pub mod report;
pub mod watch;

use std::time::Duration;

use anyhow::Context;
use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;

/// `DATABASE_URL`, as the tests read it.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/test".into())
}

/// Whether a connection to `url` is encrypted: sqlx asks for TLS by default, and a server with `ssl = on`
/// (Debian's default) grants it, also on loopback, where it costs the bytes-heavy phases far more than the
/// baseline's small transactions. The report says which it measured.
pub async fn uses_tls(url: &str) -> anyhow::Result<bool> {
    let options: PgConnectOptions = url.parse().context("DATABASE_URL")?;
    let mut connection = options.connect().await?;
    let tls: Option<bool> =
        sqlx::query_scalar("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
            .fetch_optional(&mut connection)
            .await?;
    Ok(tls.unwrap_or(false))
}

/// A database of its own on the server of a URL, dropped by [`drop`](Self::drop), so a bench leaves
/// nothing behind and never shares tables with the services' databases.
pub struct ScratchDb {
    admin: PgConnectOptions,
    name: String,
}

impl ScratchDb {
    /// `name` gets the process id appended, so two runs side by side do not collide.
    pub async fn create(url: &str, name: &str) -> anyhow::Result<Self> {
        let admin = url.parse::<PgConnectOptions>()?.database("postgres");
        let name = format!("{name}_{}", std::process::id());
        let mut conn = admin.connect().await.context("connecting to PostgreSQL")?;
        // Two statements: CREATE DATABASE may not share an (implicit) transaction with anything.
        backorder_test_support::drop_database(&mut conn, &name).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("create database \"{name}\"")))
            .execute(&mut conn)
            .await?;
        Ok(Self { admin, name })
    }

    pub fn options(&self) -> PgConnectOptions {
        self.admin.clone().database(&self.name)
    }

    pub fn url(&self) -> String {
        self.options().to_url_lossy().to_string()
    }

    pub async fn drop(self) -> anyhow::Result<()> {
        let mut conn = self.admin.connect().await?;
        backorder_test_support::drop_database(&mut conn, &self.name).await?;
        Ok(())
    }
}

/// xorshift64*: enough to spread SKUs evenly without another dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// The `q` quantile (0..=1) of sorted durations, nearest rank.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Peak resident set (`VmHWM`) of a process in MB, from `/proc/<pid>/status`.
pub fn peak_rss_mb(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .context("no VmHWM in /proc/<pid>/status")?
        .parse()?;
    Ok(kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let runs: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&runs, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&runs, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&runs[..1], 0.99), Duration::from_millis(1));
    }

    #[test]
    fn rng_stays_below_its_bound() {
        let mut rng = Rng::new(7);
        assert!((0..1000).all(|_| rng.below(10) < 10));
    }
}
