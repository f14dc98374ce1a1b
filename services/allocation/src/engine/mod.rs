//! Applies a batch of commands in one transaction: the state change, the audit trail and the events it emits
//! (into the outbox) commit together or not at all.
//!
//! Locking: every stock row the batch may touch is locked up front, in SKU order, before anything else is
//! written (a line is only ever changed under its SKU's lock); order rows are locked last, in order-id order.
//! Two instances working on the same SKUs therefore queue behind each other instead of deadlocking, and stock
//! is never given out twice.
//!
//! Commands write their line changes and audit rows as they go, so a later command of the batch sees them; the
//! new orders that follow each other are accepted together, with a constant number of statements ([`intake`]).
//! What the WMS, the customer and the OMS are told is worked out once at the end, per order, from the order's
//! lines before its first change in the batch and after its last ([`announce`]). The phases of the end of a
//! batch and the ledgers they read are in [`write`] and [`ledger`].

mod announce;
mod cancel;
mod claim;
mod intake;
mod ledger;
mod lines;
mod preview;
mod priority;
mod promise;
mod queues;
mod release;
mod reorder;
mod reproject;
mod ship;
mod sku;
mod stock;
mod supply;
mod work;
mod write;

use backorder_runtime::Clock;
use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;
use tracing::Instrument;

use crate::command::Command;
use crate::decide::promises::PromiseRules;
use backorder_runtime::Subjects;
use work::Work;

pub use preview::{OpenSupply, OrderAfter, PreviewFill, QueuedAfter, ReceiptPreview, StockAfter};
pub use queues::QueueCache;

/// What became of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Done,
    /// Its effects were already stored by an earlier delivery.
    Duplicate,
    /// It can never be carried out. Nothing changed but the record of the refusal, and the sender is told
    /// (`RequestRefused`).
    Refused(String),
}

/// Rules that are configured rather than sent (see `Config` for their variables).
#[derive(Debug, Clone)]
pub struct Policy {
    /// May a SKU the product master never sent be backordered?
    pub unknown_sku_backorderable: bool,
    /// From receipt to ready to ship, added to a supply date.
    pub handling: Duration,
    /// How far an overdue purchase order slips from now.
    pub overdue_grace: Duration,
    /// For SKUs without a lead time of their own.
    pub default_lead_time: Duration,
    /// The least move of an ETA the customer is told about.
    pub eta_threshold: Duration,
    /// At most one ETA_CHANGED per order in this interval; changes in between are coalesced.
    pub eta_interval: Duration,
    /// An ETA this far past the first date promised needs the customer's consent.
    pub consent_after: Duration,
    /// How long the customer has to answer.
    pub consent_wait: Duration,
    /// Without an answer: cancel the waiting units (true) or keep them.
    pub cancel_without_consent: bool,
}

impl Policy {
    /// The projection's settings for a SKU with `lead_time_days` of its own (none, or 0: the default).
    pub fn settings(&self, lead_time_days: Option<i32>) -> crate::eta::Settings {
        crate::eta::Settings {
            handling: self.handling,
            grace: self.overdue_grace,
            lead_time: lead_time_days
                .filter(|days| *days > 0)
                // Bounded where the SKU comes in; a stored row from before the bound still cannot overflow.
                .map_or(self.default_lead_time, |days| {
                    backorder_runtime::limits::days(days.into())
                }),
        }
    }
}

impl Policy {
    /// The settings of [`promises`](crate::decide::promises).
    pub fn promises(&self) -> PromiseRules {
        PromiseRules {
            threshold: self.eta_threshold,
            interval: self.eta_interval,
            consent_after: self.consent_after,
            consent_wait: self.consent_wait,
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            unknown_sku_backorderable: true,
            handling: Duration::days(1),
            overdue_grace: Duration::days(3),
            default_lead_time: Duration::days(14),
            eta_threshold: Duration::days(1),
            eta_interval: Duration::days(1),
            consent_after: Duration::days(30),
            consent_wait: Duration::days(7),
            cancel_without_consent: true,
        }
    }
}

#[derive(Clone)]
pub struct Engine {
    pub pool: PgPool,
    pub subjects: Subjects,
    pub policy: Policy,
    pub clock: Clock,
    /// Waiting queues kept across batches ([`queues`]); clones share them.
    pub queues: QueueCache,
}

impl Engine {
    pub fn new(pool: PgPool, subjects: Subjects) -> Self {
        Self {
            pool,
            subjects,
            policy: Policy::default(),
            clock: Clock::wall(),
            queues: QueueCache::default(),
        }
    }

    /// The earliest timer: a SKU whose projection changes by itself, an ETA notice owed, a consent deadline.
    pub async fn next_due(&self) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        sqlx::query_scalar(
            "select least((select min(eta_check_at) from stock),
                          (select min(eta_notify_due) from orders),
                          (select min(consent_due) from orders))",
        )
        .fetch_one(&self.pool)
        .await
    }

    /// Fires the timers due at `at`, as of `at`: re-projects SKUs, sends owed ETA notices, handles consent
    /// deadlines that passed.
    pub async fn tick(&self, at: DateTime<Utc>) -> Result<(), sqlx::Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.tick_once(at).await {
                Err(error) if attempt < 5 && is_retryable(&error) => {
                    tracing::info!(%error, attempt, "timer transaction lost a lock race, retrying");
                }
                result => return result,
            }
        }
    }

    async fn tick_once(&self, at: DateTime<Utc>) -> Result<(), sqlx::Error> {
        let mut work = self.work(at).await?;
        work.fire_timers().await?;
        work.finish().await
    }

    async fn work(&self, now: DateTime<Utc>) -> Result<Work<'_>, sqlx::Error> {
        Work::begin(&self.pool, &self.subjects, &self.policy, &self.queues, now).await
    }

    /// Applies `commands` in one transaction, retrying it when Postgres picked it as a deadlock or
    /// serialization victim.
    pub async fn apply(&self, commands: &[Command]) -> Result<Vec<Applied>, sqlx::Error> {
        self.apply_traced(commands, &[]).await
    }

    /// [`apply`](Self::apply), each command handled in the trace its message arrived in (`traces[i]` are the
    /// trace headers of `commands[i]`; missing ones start no link).
    pub async fn apply_traced(
        &self,
        commands: &[Command],
        traces: &[Vec<(String, String)>],
    ) -> Result<Vec<Applied>, sqlx::Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.apply_once(commands, traces).await {
                Err(error) if attempt < 5 && is_retryable(&error) => {
                    tracing::info!(%error, attempt, "transaction lost a lock race, retrying");
                }
                result => return result,
            }
        }
    }

    async fn apply_once(
        &self,
        commands: &[Command],
        traces: &[Vec<(String, String)>],
    ) -> Result<Vec<Applied>, sqlx::Error> {
        let mut work = self.work(self.clock.now()).await?;
        work.lock_stock(commands).await?;
        let mut results = Vec::with_capacity(commands.len());
        let mut i = 0;
        while i < commands.len() {
            let new_order = |c: &Command| matches!(c, Command::AcceptOrder { .. });
            // New orders that follow each other are accepted together (see `intake.rs`).
            let run = commands[i..].iter().take_while(|c| new_order(c)).count();
            if run > 0 {
                let end = i + run;
                let traces = traces.get(i..end.min(traces.len())).unwrap_or_default();
                results.extend(work.accept_orders(&commands[i..end], traces).await?);
                i = end;
                continue;
            }
            let command = &commands[i];
            let span = tracing::info_span!(
                "command",
                id = %command.message_id(),
                order_id = command.order_id().unwrap_or_default(),
                sku = tracing::field::Empty,
            );
            if let Some(trace) = traces.get(i) {
                backorder_runtime::trace::follow(&span, trace);
            }
            results.push(work.apply(command).instrument(span).await?);
            i += 1;
        }
        work.finish().await?;
        Ok(results)
    }
}

fn is_retryable(error: &sqlx::Error) -> bool {
    // 40001 serialization_failure, 40P01 deadlock_detected
    matches!(error.as_database_error().and_then(|e| e.code()), Some(code) if code == "40001" || code == "40P01")
}
