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
//! lines before its first change in the batch and after its last ([`announce`]).

mod announce;
mod cancel;
mod intake;
mod preview;
mod priority;
mod promise;
mod ship;
mod sku;
mod stock;
mod supply;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use backorder_runtime::Clock;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use tracing::Instrument;

use crate::command::Command;
use crate::events::{self, LineState, Outgoing};
use crate::rules::{LineUnits, LineView};
use backorder_runtime::Subjects;

pub use preview::{OpenSupply, OrderAfter, PreviewFill, QueuedAfter, ReceiptPreview, StockAfter};

/// What the record of handled messages says of a message's id.
enum Claim {
    New,
    Duplicate,
    /// Another message under a used id: refused, recorded under `claim`.
    Conflict {
        claim: String,
        reason: String,
    },
}

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
}

impl Engine {
    pub fn new(pool: PgPool, subjects: Subjects) -> Self {
        Self {
            pool,
            subjects,
            policy: Policy::default(),
            clock: Clock::wall(),
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
        Ok(Work {
            tx: self.pool.begin().await?,
            subjects: &self.subjects,
            policy: &self.policy,
            now,
            stock: HashMap::new(),
            before: BTreeMap::new(),
            causes: HashMap::new(),
            withdrawn: BTreeMap::new(),
            allocations: Vec::new(),
            cancellations: Vec::new(),
            short_skus: BTreeSet::new(),
            answers: BTreeMap::new(),
            eta_skus: BTreeMap::new(),
            appended: BTreeMap::new(),
            eta_moved: BTreeSet::new(),
            eta_owed: BTreeSet::new(),
            consent_needed: BTreeSet::new(),
            consent_settled: BTreeSet::new(),
            outbox: Vec::new(),
            traces: HashMap::new(),
            history: Vec::new(),
            demand: BTreeMap::new(),
        })
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

#[derive(Debug, Clone, Copy, Default)]
struct Stock {
    on_hand: i64,
    allocated: i64,
    received: i64,
    adjusted: i64,
    shipped: i64,
    /// Open backordered units of the SKU (the sum over its waiting lines).
    backordered: i64,
    /// When the SKU's projection changes by itself.
    eta_check_at: Option<DateTime<Utc>>,
}

/// New supply of one SKU in a batch, as replenishment-trigger needs it to close its requests.
#[derive(Debug, Default)]
pub(crate) struct SupplyAnswers {
    /// Requests named by the PO lines (`SupplyUpdated.request_id`).
    requests: Vec<String>,
    /// Units added by PO lines naming no request, and received on a PO beyond what its lines expected.
    added: i64,
}

impl Stock {
    fn available(&self) -> i64 {
        self.on_hand - self.allocated
    }
}

struct HistoryRow {
    order_id: String,
    line_no: i32,
    sku: String,
    change: &'static str,
    quantity: i64,
    cause: String,
    detail: String,
}

/// Allocated units withdrawn from the WMS, per order: why, and per line the SKU and units.
#[derive(Default)]
struct Withdrawal {
    reason: String,
    lines: BTreeMap<i32, (String, i64)>,
}

/// An announcement to the WMS, to store beside the outbox row: new units to pick, or units withdrawn.
struct Announced {
    id: String,
    order_id: String,
    cause: String,
    reason: String,
    lines: Vec<(i32, String, i64)>,
}

/// Why a SKU is re-projected: the (latest) message that moved it, and whether its projection may have changed
/// for lines already dated (anything but new backorders).
#[derive(Debug, Clone)]
struct Marked {
    cause: String,
    full: bool,
}

/// A backorder line a new order added: its place in the queue and its waiting units.
#[derive(Debug, Clone)]
struct Appended {
    priority: i32,
    placed_at: DateTime<Utc>,
    order_id: String,
    line_no: i32,
    units: i64,
}

/// Per SKU and day: what was ordered and what of it could not be allocated at once.
#[derive(Debug, Clone, Copy, Default)]
struct Demand {
    ordered: i64,
    backordered: i64,
    cancelled_short: i64,
}

/// One transaction's state: the locked stock rows (changed in memory, written back at the end), the touched
/// orders' lines as they were before the batch, and what the commands decided to record and emit.
struct Work<'a> {
    tx: Transaction<'static, Postgres>,
    subjects: &'a Subjects,
    policy: &'a Policy,
    now: DateTime<Utc>,
    stock: HashMap<String, Stock>,
    /// Every order the batch changes, with its lines before the first change (none for a new order).
    before: BTreeMap<String, Vec<LineRow>>,
    /// The last message that changed each order, recorded as the cause of its allocation.
    causes: HashMap<String, String>,
    withdrawn: BTreeMap<String, Withdrawal>,
    allocations: Vec<Announced>,
    cancellations: Vec<Announced>,
    /// SKUs that got new backorders or supply: each gets one ReorderNeeded at the end.
    short_skus: BTreeSet<String>,
    /// Per SKU, what purchasing answered in this batch: replenishment-trigger learns it from the SKU's
    /// ReorderNeeded, which is then sent even when nothing is short.
    answers: BTreeMap<String, SupplyAnswers>,
    /// SKUs whose queue or supply moved, with the message that moved them and whether anything but new
    /// backorders did: re-projected at the end.
    eta_skus: BTreeMap<String, Marked>,
    /// The backorder lines new orders of this batch added, per SKU: when nothing else moved a SKU, only they
    /// need a date.
    appended: BTreeMap<String, Vec<Appended>>,
    /// Orders with a line whose ETA moved by the threshold or more: they get a new status.
    eta_moved: BTreeSet<String>,
    /// Orders with a line the customer was told a date for that is now off by the threshold or more.
    eta_owed: BTreeSet<String>,
    /// Orders with a line now expected too long after the date first promised.
    consent_needed: BTreeSet<String>,
    /// Orders whose awaited consent was answered (or given up on) in this batch.
    consent_settled: BTreeSet<String>,
    outbox: Vec<Outgoing>,
    /// The trace context of each command applied, by message id: events it causes are published in its trace.
    traces: HashMap<String, Option<String>>,
    history: Vec<HistoryRow>,
    demand: BTreeMap<(String, NaiveDate), Demand>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct LineRow {
    order_id: String,
    line_no: i32,
    sku: String,
    ordered: i64,
    allocated: i64,
    backordered: i64,
    shipped: i64,
    cancelled: i64,
    released: i64,
    preorder: bool,
    eta: Option<DateTime<Utc>>,
    eta_estimated: bool,
    eta_late: bool,
    eta_told: Option<DateTime<Utc>>,
    promised_eta: Option<DateTime<Utc>>,
}

impl LineRow {
    fn units(&self) -> LineUnits {
        LineUnits {
            ordered: self.ordered,
            allocated: self.allocated,
            backordered: self.backordered,
            shipped: self.shipped,
            cancelled: self.cancelled,
        }
    }

    fn state(&self) -> LineState {
        LineState {
            line_no: self.line_no,
            sku: self.sku.clone(),
            units: self.units(),
            preorder: self.preorder,
            held: self.allocated - self.released,
            eta: self.eta,
            eta_estimated: self.eta_estimated,
            eta_late: self.eta_late,
            promised_eta: self.promised_eta,
        }
    }

    fn view(&self) -> LineView {
        LineView {
            units: self.units(),
            released: self.released,
            preorder: self.preorder,
        }
    }
}

/// The columns of a [`LineRow`], as a literal so queries stay static strings.
macro_rules! line_columns {
    ($t:literal) => {
        concat!(
            $t,
            "order_id, ",
            $t,
            "line_no, ",
            $t,
            "sku, ",
            $t,
            "ordered, ",
            $t,
            "allocated, ",
            $t,
            "backordered, ",
            $t,
            "shipped, ",
            $t,
            "cancelled, ",
            $t,
            "released, ",
            $t,
            "preorder, ",
            $t,
            "eta, ",
            $t,
            "eta_estimated, ",
            $t,
            "eta_late, ",
            $t,
            "eta_told, ",
            $t,
            "promised_eta"
        )
    };
}

/// A change of a line's units, as differences.
#[derive(Debug, Clone, Copy, Default)]
struct Delta {
    allocated: i64,
    backordered: i64,
    shipped: i64,
    cancelled: i64,
    released: i64,
}

impl Work<'_> {
    /// Locks (creating where missing) the stock row of every SKU the batch may touch, in SKU order: those the
    /// messages name, and those of the orders that shipments and cancellations name.
    async fn lock_stock(&mut self, commands: &[Command]) -> Result<(), sqlx::Error> {
        let mut skus: BTreeSet<String> = commands
            .iter()
            .flat_map(|c| c.named_skus())
            .map(str::to_string)
            .collect();
        let orders: Vec<String> = commands
            .iter()
            .filter_map(|c| c.named_order())
            .map(str::to_string)
            .collect();
        skus.extend(self.skus_of(&orders).await?);
        self.lock_skus(skus.into_iter().collect()).await
    }

    /// The SKUs the lines of `order_ids` are on.
    async fn skus_of(&mut self, order_ids: &[String]) -> Result<Vec<String>, sqlx::Error> {
        if order_ids.is_empty() {
            return Ok(Vec::new());
        }
        sqlx::query_scalar("select distinct sku from order_lines where order_id = any($1)")
            .bind(order_ids)
            .fetch_all(&mut *self.tx)
            .await
    }

    /// The lines of `order_ids` as they are now, by order and line.
    async fn lines_of_orders(&mut self, order_ids: &[String]) -> Result<Vec<LineRow>, sqlx::Error> {
        sqlx::query_as(concat!(
            "select ",
            line_columns!(""),
            " from order_lines where order_id = any($1) order by order_id, line_no"
        ))
        .bind(order_ids)
        .fetch_all(&mut *self.tx)
        .await
    }

    /// `skus` sorted; rows already locked by this transaction are skipped.
    async fn lock_skus(&mut self, mut skus: Vec<String>) -> Result<(), sqlx::Error> {
        skus.retain(|sku| !self.stock.contains_key(sku));
        if skus.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "insert into stock (sku) select unnest($1::text[]) order by 1 on conflict do nothing",
        )
        .bind(&skus)
        .execute(&mut *self.tx)
        .await?;
        type Row = (String, i64, i64, i64, i64, i64, i64, Option<DateTime<Utc>>);
        let rows: Vec<Row> = sqlx::query_as(
            "select sku, on_hand, allocated, received, adjusted, shipped, backordered, eta_check_at from stock
             where sku = any($1) order by sku for update",
        )
        .bind(&skus)
        .fetch_all(&mut *self.tx)
        .await?;
        for (sku, on_hand, allocated, received, adjusted, shipped, backordered, eta_check_at) in
            rows
        {
            let row = Stock {
                on_hand,
                allocated,
                received,
                adjusted,
                shipped,
                backordered,
                eta_check_at,
            };
            self.stock.insert(sku, row);
        }
        Ok(())
    }

    /// The lines' SKUs were looked up and locked before the batch ran; an order accepted earlier in the same
    /// batch named its own. This only guards against a line no lookup saw.
    async fn lock_skus_of(&mut self, lines: &[LineRow]) -> Result<(), sqlx::Error> {
        let skus: BTreeSet<String> = lines.iter().map(|l| l.sku.clone()).collect();
        self.lock_skus(skus.into_iter().collect()).await
    }

    async fn apply(&mut self, command: &Command) -> Result<Applied, sqlx::Error> {
        let id = command.message_id();
        self.traces
            .insert(id.clone(), backorder_runtime::trace::traceparent());
        let claim = match self.claim(&id, command).await? {
            Claim::New => id.clone(),
            Claim::Duplicate => {
                tracing::info!("already applied, skipping");
                return Ok(Applied::Duplicate);
            }
            Claim::Conflict { claim, reason } => {
                self.refuse(&claim, &id, command, &reason).await?;
                return Ok(Applied::Refused(reason));
            }
        };
        let applied = match command {
            // A batch accepts its orders in runs (`accept_orders`); one that comes this way was claimed just now.
            Command::AcceptOrder { order, .. } => self.accept_claimed_order(order, &id).await?,
            Command::ReceiveStock(receipt) => self.receive(receipt, &id).await?,
            Command::AdjustStock(adjustment) => self.adjust(adjustment, &id).await?,
            Command::ConfirmShipment {
                shipment,
                shipped_at,
            } => self.ship(shipment, *shipped_at, &id).await?,
            Command::CancelOrder(request) => self.cancel(request, &id).await?,
            Command::UpsertSku {
                sku,
                published,
                sequence,
            } => self.upsert_sku(sku, *published, *sequence, &id).await?,
            Command::UpdateSupply {
                supply,
                published,
                sequence,
            } => {
                self.update_supply(supply, *published, *sequence, &id)
                    .await?
            }
            Command::AnswerDelay(answer) => self.answer_delay(answer, &id).await?,
            Command::ChangePriority(change) => self.change_priority(change, &id).await?,
            Command::Refuse { reason, .. } => Applied::Refused(reason.clone()),
        };
        match &applied {
            Applied::Refused(reason) => self.refuse(&claim, &id, command, reason).await?,
            Applied::Done | Applied::Duplicate => {}
        }
        Ok(applied)
    }

    /// Claims the message's id with its digest. The same id with the same content is a duplicate; with other
    /// content it is a conflict, claimed in turn as `<id>#<digest>` so that its redeliveries are duplicates of
    /// the refusal.
    async fn claim(&mut self, id: &str, command: &Command) -> Result<Claim, sqlx::Error> {
        let digest = command.digest();
        let summary = command.summary();
        let claimed = |id: String| {
            sqlx::query(
                "insert into processed_messages (message_id, digest, summary) values ($1, $2, $3)
                 on conflict do nothing",
            )
            .bind(id)
            .bind(&digest)
            .bind(&summary)
        };
        if claimed(id.to_string())
            .execute(&mut *self.tx)
            .await?
            .rows_affected()
            == 1
        {
            return Ok(Claim::New);
        }
        let (first, first_summary, at): (Option<String>, String, DateTime<Utc>) = sqlx::query_as(
            "select digest, summary, processed_at from processed_messages where message_id = $1",
        )
        .bind(id)
        .fetch_one(&mut *self.tx)
        .await?;
        // Rows from before digests were kept have none: taken as the same content, as before.
        if first.is_none_or(|first| first == digest) {
            return Ok(Claim::Duplicate);
        }
        let claim = format!("{id}#{digest}");
        if claimed(claim.clone())
            .execute(&mut *self.tx)
            .await?
            .rows_affected()
            == 0
        {
            return Ok(Claim::Duplicate);
        }
        let first_summary = if first_summary.is_empty() {
            String::new()
        } else {
            format!(" for {first_summary}")
        };
        let reason = format!(
            "{} was already used{first_summary} on {}; this message has other content ({summary}) and is \
             refused as a conflict: send it under an id of its own",
            command.what(),
            at.format("%Y-%m-%d %H:%M:%S UTC"),
        );
        tracing::warn!(%reason, "id reused for other content");
        Ok(Claim::Conflict { claim, reason })
    }

    /// Records the refusal on its claim and tells the sender: the OMS hears of a refused order where
    /// order-intake tells it of orders it refuses, everyone else by `RequestRefused`.
    async fn refuse(
        &mut self,
        claim: &str,
        id: &str,
        command: &Command,
        reason: &str,
    ) -> Result<(), sqlx::Error> {
        // The claim stays, with the reason: a redelivery is neither applied nor refused again.
        tracing::warn!(%reason, "refused");
        sqlx::query("update processed_messages set refusal = $2 where message_id = $1")
            .bind(claim)
            .bind(reason)
            .execute(&mut *self.tx)
            .await?;
        let refusal = match command {
            Command::AcceptOrder { order, .. } => {
                events::order_rejected(self.subjects, claim, order, reason)
            }
            _ => events::request_refused(self.subjects, claim, id, command, reason, self.now),
        };
        self.emit(Some(id), refusal);
        Ok(())
    }

    fn stock_mut(&mut self, sku: &str) -> &mut Stock {
        self.stock
            .get_mut(sku)
            .expect("stock rows of a batch are locked before it runs")
    }

    /// Remembers the lines of `order_ids` as they are before this batch changes them (once per order), and
    /// `cause` as the latest message to change them.
    ///
    /// The order rows are locked before their lines are read: a transaction changing the same order on a SKU
    /// this one did not lock (a receipt beside a timer, two instances) has committed by then, so its change is
    /// in these lines and is not announced a second time. A later call of the batch may lock an order sorting
    /// before one locked earlier; a deadlock that causes is retried as a whole (`is_retryable`).
    async fn touch(&mut self, order_ids: &[String], cause: &str) -> Result<(), sqlx::Error> {
        let new: Vec<String> = order_ids
            .iter()
            .filter(|id| !self.before.contains_key(*id))
            .cloned()
            .collect();
        if !new.is_empty() {
            sqlx::query(
                "select 1 from orders where order_id = any($1) order by order_id for update",
            )
            .bind(&new)
            .execute(&mut *self.tx)
            .await?;
            let rows = self.lines_of_orders(&new).await?;
            for id in new {
                self.before.insert(id.clone(), Vec::new());
            }
            for row in rows {
                self.before
                    .get_mut(&row.order_id)
                    .expect("inserted above")
                    .push(row);
            }
        }
        for id in order_ids {
            self.causes.insert(id.clone(), cause.to_string());
        }
        Ok(())
    }

    /// The lines of one order as they are now.
    async fn lines_of(&mut self, order_id: &str) -> Result<Vec<LineRow>, sqlx::Error> {
        sqlx::query_as(concat!(
            "select ",
            line_columns!(""),
            " from order_lines where order_id = $1 order by line_no"
        ))
        .bind(order_id)
        .fetch_all(&mut *self.tx)
        .await
    }

    /// Adds `changes` to the lines; a line that gets allocated units is stamped as allocated now. A SKU whose
    /// queue changed is marked for a new projection, caused by `cause`.
    async fn change_lines(
        &mut self,
        changes: &[(String, i32, Delta)],
        cause: &str,
    ) -> Result<Vec<LineRow>, sqlx::Error> {
        let column = |f: fn(&Delta) -> i64| changes.iter().map(|c| f(&c.2)).collect::<Vec<_>>();
        let rows: Vec<LineRow> = sqlx::query_as(concat!(
            "update order_lines l set
                 allocated = l.allocated + d.allocated, backordered = l.backordered + d.backordered,
                 shipped = l.shipped + d.shipped, cancelled = l.cancelled + d.cancelled,
                 released = l.released + d.released,
                 allocated_at = case when d.allocated > 0 then $8 else l.allocated_at end,
                 eta = case when l.backordered + d.backordered = 0 then null else l.eta end,
                 backordered_since = case when l.backordered + d.backordered = 0 then null
                                          when l.backordered = 0 then $8
                                          else l.backordered_since end,
                 first_backordered_at = case when l.backordered + d.backordered > 0
                                             then coalesce(l.first_backordered_at, $8)
                                             else l.first_backordered_at end,
                 ready_at = case when l.backordered + d.backordered > 0 then null
                                 when l.backordered > 0
                                      and l.allocated + d.allocated + l.shipped + d.shipped > 0 then $8
                                 else l.ready_at end
             from unnest($1::text[], $2::int[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[])
                  as d(order_id, line_no, allocated, backordered, shipped, cancelled, released)
             where l.order_id = d.order_id and l.line_no = d.line_no
             returning ",
            line_columns!("l.")
        ))
        .bind(changes.iter().map(|c| c.0.clone()).collect::<Vec<_>>())
        .bind(changes.iter().map(|c| c.1).collect::<Vec<_>>())
        .bind(column(|d| d.allocated))
        .bind(column(|d| d.backordered))
        .bind(column(|d| d.shipped))
        .bind(column(|d| d.cancelled))
        .bind(column(|d| d.released))
        .bind(self.now)
        .fetch_all(&mut *self.tx)
        .await?;
        // `returning` comes in no particular order: pair each row with its change by key.
        let waiting: HashMap<(&str, i32), i64> = changes
            .iter()
            .map(|(order_id, line_no, delta)| ((order_id.as_str(), *line_no), delta.backordered))
            .collect();
        for row in &rows {
            let change = waiting[&(row.order_id.as_str(), row.line_no)];
            if change != 0 {
                self.stock_mut(&row.sku).backordered += change;
                self.mark_eta(&row.sku, cause, true);
            }
        }
        Ok(rows)
    }

    /// Marks a SKU for re-projection at the end of the batch; `full` unless only new backorders moved it.
    fn mark_eta(&mut self, sku: &str, cause: &str, full: bool) {
        let marked = self.eta_skus.entry(sku.to_string()).or_insert(Marked {
            cause: cause.to_string(),
            full,
        });
        marked.cause = cause.to_string();
        marked.full |= full;
    }

    /// Queues an event for the outbox, in the trace of the message `cause` (when it has one).
    fn emit(&mut self, cause: Option<&str>, mut outgoing: Outgoing) {
        outgoing.traceparent = cause.and_then(|c| self.traces.get(c).cloned().flatten());
        self.outbox.push(outgoing);
    }

    /// [`emit`](Self::emit) for an event about an order: in the trace of the last message that changed it.
    fn emit_for(&mut self, order_id: &str, outgoing: Outgoing) {
        let cause = self.causes.get(order_id).cloned();
        self.emit(cause.as_deref(), outgoing);
    }

    /// Records that `units` of a line's released units are withdrawn from the WMS, and why.
    fn withdraw(&mut self, order_id: &str, line_no: i32, sku: &str, units: i64, reason: &str) {
        if units <= 0 {
            return;
        }
        let withdrawal = self.withdrawn.entry(order_id.to_string()).or_default();
        if withdrawal.reason.is_empty() {
            withdrawal.reason = reason.to_string();
        }
        withdrawal
            .lines
            .entry(line_no)
            .or_insert_with(|| (sku.to_string(), 0))
            .1 += units;
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        order_id: &str,
        line_no: i32,
        sku: &str,
        change: &'static str,
        quantity: i64,
        cause: &str,
        detail: String,
    ) {
        if quantity > 0 {
            self.history.push(HistoryRow {
                order_id: order_id.to_string(),
                line_no,
                sku: sku.to_string(),
                change,
                quantity,
                cause: cause.to_string(),
                detail,
            });
        }
    }

    /// Decides what the batch leads to, writes the stock rows, the audit trail, the demand and the outbox, and
    /// commits.
    async fn finish(mut self) -> Result<(), sqlx::Error> {
        self.decide().await?;
        self.write_stock().await?;
        self.write_history().await?;
        self.write_demand().await?;
        self.write_outbox().await?;
        self.tx.commit().await
    }

    /// What the batch's changes lead to: the new ETAs, and what the WMS, the customers, the OMS and purchasing
    /// are told (the lines' released units, promises and order statuses are stored in the transaction as they
    /// are decided). A receipt preview stops here and rolls back (`preview.rs`).
    async fn decide(&mut self) -> Result<(), sqlx::Error> {
        self.project_etas().await?;
        self.announce().await?;
        self.emit_reorders().await
    }

    async fn write_stock(&mut self) -> Result<(), sqlx::Error> {
        if self.stock.is_empty() {
            return Ok(());
        }
        let rows: Vec<(&String, &Stock)> = self.stock.iter().collect();
        sqlx::query(
            "update stock s set on_hand = n.on_hand, allocated = n.allocated, received = n.received,
                                adjusted = n.adjusted, shipped = n.shipped, eta_check_at = n.eta_check_at,
                                backordered = n.backordered
             from unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
                         $7::timestamptz[], $8::bigint[])
                  as n(sku, on_hand, allocated, received, adjusted, shipped, eta_check_at, backordered)
             where s.sku = n.sku",
        )
        .bind(rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.on_hand).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.allocated).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.received).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.adjusted).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.shipped).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.eta_check_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.backordered).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn write_history(&mut self) -> Result<(), sqlx::Error> {
        if self.history.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.history);
        let n = rows.len();
        let (mut orders, mut lines, mut skus) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut changes, mut quantities) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut causes, mut details) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for row in rows {
            orders.push(row.order_id);
            lines.push(row.line_no);
            skus.push(row.sku);
            changes.push(row.change);
            quantities.push(row.quantity);
            causes.push(row.cause);
            details.push(row.detail);
        }
        sqlx::query(
            "insert into line_history (order_id, line_no, sku, change, quantity, cause, detail, at)
             select *, $8 from unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[])",
        )
        .bind(orders)
        .bind(lines)
        .bind(skus)
        .bind(changes)
        .bind(quantities)
        .bind(causes)
        .bind(details)
        .bind(self.now)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn write_demand(&mut self) -> Result<(), sqlx::Error> {
        if self.demand.is_empty() {
            return Ok(());
        }
        let d = &self.demand;
        sqlx::query(
            "insert into demand (sku, day, ordered, short, backordered, cancelled_short)
             select sku, day, ordered, backordered + cancelled_short, backordered, cancelled_short
             from unnest($1::text[], $2::date[], $3::bigint[], $4::bigint[], $5::bigint[])
                  as d(sku, day, ordered, backordered, cancelled_short)
             order by sku, day
             on conflict (sku, day) do update set
                 ordered = demand.ordered + excluded.ordered,
                 short = demand.short + excluded.short,
                 backordered = demand.backordered + excluded.backordered,
                 cancelled_short = demand.cancelled_short + excluded.cancelled_short",
        )
        .bind(d.keys().map(|k| k.0.clone()).collect::<Vec<_>>())
        .bind(d.keys().map(|k| k.1).collect::<Vec<_>>())
        .bind(d.values().map(|v| v.ordered).collect::<Vec<_>>())
        .bind(d.values().map(|v| v.backordered).collect::<Vec<_>>())
        .bind(d.values().map(|v| v.cancelled_short).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn write_outbox(&mut self) -> Result<(), sqlx::Error> {
        if self.outbox.is_empty() {
            return Ok(());
        }
        // Moved into the columns, not copied: a big batch's payloads are most of its memory.
        let rows = std::mem::take(&mut self.outbox);
        let n = rows.len();
        let (mut ids, mut subjects) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut payloads, mut traceparents) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for row in rows {
            ids.push(row.message_id);
            subjects.push(row.subject);
            payloads.push(row.payload);
            traceparents.push(row.traceparent);
        }
        // `with ordinality` keeps the emit order in the outbox ids, which is the publish order.
        sqlx::query(
            "insert into outbox (message_id, subject, payload, traceparent)
             select message_id, subject, payload, traceparent
             from unnest($1::text[], $2::text[], $3::bytea[], $4::text[])
                  with ordinality as o(message_id, subject, payload, traceparent, n)
             order by n",
        )
        .bind(ids)
        .bind(subjects)
        .bind(payloads)
        .bind(traceparents)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}
