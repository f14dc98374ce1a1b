//! allocation: owns the Postgres store of stock, orders, allocations and backorders. It ships what is in stock,
//! backorders the rest, gives incoming stock to the backorder queue, books shipments and closes finished
//! orders; every change and the events it causes commit in one transaction and leave through the outbox.

mod allocator;
pub mod api;
pub mod command;
pub mod decide;
pub mod engine;
pub mod eta;
pub mod events;
pub mod invariants;
pub mod outbox;
pub mod report;
pub mod rules;
pub mod timers;

use backorder_runtime::vars::Var;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context as _;
use backorder_runtime::config::{Source, parse_or};
use backorder_runtime::subjects::StreamKind;
use backorder_runtime::topology;
use backorder_runtime::{CommonConfig, ConfigError, Service, ops};
use chrono::Duration;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};
use tokio::sync::Notify;

use crate::allocator::Allocator;
use crate::engine::{Engine, Policy};

/// The environment variables this service reads besides [`backorder_runtime::vars::COMMON`].
pub const ENV: &[Var] = &[
    Var {
        name: "DATABASE_URL",
        default: Some("postgres://postgres:postgres@127.0.0.1:5432/backorder"),
        about: "the PostgreSQL database (created if missing)",
        secret: true,
    },
    Var {
        name: "BO_DB_POOL_SIZE",
        default: Some("8"),
        about: "connections to the database",
        secret: false,
    },
    Var {
        name: "BO_UNKNOWN_SKU_BACKORDERABLE",
        default: Some("true"),
        about: "false: a SKU never upserted takes no backorders",
        secret: false,
    },
    Var {
        name: "BO_ETA_HANDLING_HOURS",
        default: Some("24"),
        about: "from receipt to ready to ship, added to a supply date",
        secret: false,
    },
    Var {
        name: "BO_OVERDUE_GRACE_DAYS",
        default: Some("3"),
        about: "how far an overdue purchase order slips from now",
        secret: false,
    },
    Var {
        name: "BO_DEFAULT_LEAD_TIME_DAYS",
        default: Some("14"),
        about: "the lead time of SKUs without one of their own, for estimated ETAs",
        secret: false,
    },
    Var {
        name: "BO_ETA_CHANGE_THRESHOLD_HOURS",
        default: Some("24"),
        about: "the least move of a date the customer is told about",
        secret: false,
    },
    Var {
        name: "BO_ETA_NOTIFY_INTERVAL_HOURS",
        default: Some("24"),
        about: "at most one ETA_CHANGED per order in this interval",
        secret: false,
    },
    Var {
        name: "BO_DELAY_CONSENT_DAYS",
        default: Some("30"),
        about: "a date this far past the first one promised needs the customer's consent",
        secret: false,
    },
    Var {
        name: "BO_DELAY_CONSENT_WAIT_DAYS",
        default: Some("7"),
        about: "how long the customer has to answer",
        secret: false,
    },
    Var {
        name: "BO_DELAY_CONSENT_TIMEOUT",
        default: Some("cancel"),
        about: "cancel or keep: what happens to the waiting units without an answer",
        secret: false,
    },
];

/// Every environment variable the binary reads: the shared ones, then [`ENV`].
pub fn env_vars() -> Vec<Var> {
    backorder_runtime::vars::service_vars(SERVICE, ENV)
}

pub const SERVICE: &str = "allocation";

pub struct Config {
    pub common: CommonConfig,
    /// `DATABASE_URL`; the database is created if it does not exist.
    pub database_url: String,
    /// `BO_DB_POOL_SIZE`, default 8.
    pub pool_size: u32,
    pub policy: Policy,
}

impl Config {
    pub fn from_source(source: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            common: CommonConfig::from_source(source)?,
            database_url: source.get("DATABASE_URL").unwrap_or_else(|| {
                "postgres://postgres:postgres@127.0.0.1:5432/backorder".to_string()
            }),
            pool_size: parse_or(source, "BO_DB_POOL_SIZE", 8u32)?,
            policy: policy(source)?,
        })
    }
}

/// The configured rules; each variable is documented in docs/contract.md.
fn policy(source: &impl Source) -> Result<Policy, ConfigError> {
    let hours = |key: &str, default: i64| -> Result<Duration, ConfigError> {
        Ok(Duration::hours(parse_or(source, key, default)?))
    };
    let days = |key: &str, default: i64| -> Result<Duration, ConfigError> {
        Ok(Duration::days(parse_or(source, key, default)?))
    };
    let on_timeout = source
        .get("BO_DELAY_CONSENT_TIMEOUT")
        .unwrap_or_else(|| "cancel".into());
    let cancel_without_consent = match on_timeout.as_str() {
        "cancel" => true,
        "keep" => false,
        _ => {
            return Err(ConfigError::Invalid {
                key: "BO_DELAY_CONSENT_TIMEOUT".into(),
                value: on_timeout,
                reason: "must be cancel or keep".into(),
            });
        }
    };
    Ok(Policy {
        unknown_sku_backorderable: parse_or(source, "BO_UNKNOWN_SKU_BACKORDERABLE", true)?,
        handling: hours("BO_ETA_HANDLING_HOURS", 24)?,
        overdue_grace: days("BO_OVERDUE_GRACE_DAYS", 3)?,
        default_lead_time: days("BO_DEFAULT_LEAD_TIME_DAYS", 14)?,
        eta_threshold: hours("BO_ETA_CHANGE_THRESHOLD_HOURS", 24)?,
        eta_interval: hours("BO_ETA_NOTIFY_INTERVAL_HOURS", 24)?,
        consent_after: days("BO_DELAY_CONSENT_DAYS", 30)?,
        consent_wait: days("BO_DELAY_CONSENT_WAIT_DAYS", 7)?,
        cancel_without_consent,
    })
}

/// Connects to the database (creating it when missing) and applies the migrations.
pub async fn connect_database(url: &str, pool_size: u32) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(url).context("DATABASE_URL is not a Postgres URL")?;
    let name = options.get_database().unwrap_or("postgres").to_string();
    let admin = options.clone().database("postgres");
    let mut conn = admin
        .connect()
        .await
        .with_context(|| format!("connecting to Postgres for {name}"))?;
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        let create = format!("create database \"{}\"", name.replace('"', "\"\""));
        // Another instance may win the race; that is fine.
        if let Err(error) = sqlx::raw_sql(sqlx::AssertSqlSafe(create))
            .execute(&mut conn)
            .await
        {
            tracing::info!(%error, database = name, "create database");
        }
    }
    let pool = PgPoolOptions::new()
        .max_connections(pool_size)
        .connect_with(options)
        .await
        .with_context(|| format!("connecting to database {name}"))?;
    sqlx::migrate!("./migrations")
        .run(&pool)
        .await
        .context("applying migrations")?;
    Ok(pool)
}

pub struct Application {
    pool: PgPool,
    service: Service,
    policy: Policy,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let pool = connect_database(&config.database_url, config.pool_size).await?;
        let mut service = Service::connect(&config.common, SERVICE).await?;
        service.check(database_check(pool.clone()));
        Ok(Self {
            pool,
            service,
            policy: config.policy,
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs until `shutdown`: the two consumers (accepted orders; what the WMS, the OMS, purchasing and the
    /// product master send), the outbox relay, the timers and the query API, beside the runtime's clock
    /// follower and health and metrics server. Each finishes what it holds first.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let service = &self.service;
        let consumer = topology::consumer::ALLOCATION;
        let orders = service.consumer(StreamKind::Internal, consumer).await?;
        let warehouse = service.consumer(StreamKind::Inbound, consumer).await?;
        let wake = Arc::new(Notify::new());
        let engine = Engine {
            pool: self.pool.clone(),
            subjects: service.config().subjects.clone(),
            policy: self.policy.clone(),
            clock: service.clock.clone(),
            queues: Default::default(),
        };
        let worker = service.worker(SERVICE);
        let relay = outbox::Relay {
            pool: self.pool.clone(),
            bus: service.bus.clone(),
            wake: wake.clone(),
        };
        let timers = timers::Timers {
            engine: engine.clone(),
            clock: service.clock.clone(),
            wake: Arc::new(Notify::new()),
        };
        let api = api::Api {
            pool: self.pool.clone(),
            engine: engine.clone(),
            bus: service.bus.clone(),
        };
        let mut on_orders = Allocator {
            engine: engine.clone(),
            relay: wake.clone(),
            timers: timers.wake.clone(),
        };
        let mut on_warehouse = Allocator {
            engine,
            relay: wake,
            timers: timers.wake.clone(),
        };
        service
            .run(shutdown, |shutdown| async move {
                tokio::try_join!(
                    worker.run(orders, &mut on_orders, shutdown.clone()),
                    worker.run(warehouse, &mut on_warehouse, shutdown.clone()),
                    relay.run(shutdown.clone()),
                    timers.run(shutdown.clone()),
                    api.serve(shutdown),
                )?;
                Ok(())
            })
            .await
    }
}

/// Ready only while the database answers.
fn database_check(pool: PgPool) -> ops::Check {
    Arc::new(move || {
        let pool = pool.clone();
        Box::pin(async move {
            sqlx::query("select 1")
                .execute(&pool)
                .await
                .map(drop)
                .map_err(|e| format!("the database does not answer: {e}"))
        })
    })
}

/// A database that cannot be reached or is shutting down (as opposed to a statement that failed).
pub(crate) fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|code| {
            // 08: connection exception; 57P01-57P03: admin shutdown, crash shutdown, cannot connect now.
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

#[cfg(test)]
mod env_tests {
    #[test]
    fn every_variable_the_source_reads_is_listed() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        backorder_runtime::vars::assert_listed_as_read(&src, &super::env_vars(), super::ENV);
    }
}
