//! One batch's transaction and what it holds while its commands run: the locked stock rows, the ledgers the
//! end of the batch reads (see [`ledger`](super::ledger)), and the helpers every command shares (locks,
//! touching an order, recording, emitting).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};

use super::claim::Claim;
use super::ledger::{HistoryRow, OrderLedger, Records, SkuLedger};
use super::lines::LineRow;
use super::queues::{Queue, QueueCache};
use super::{Applied, Policy};
use crate::command::Command;
use crate::events::Outgoing;
use backorder_runtime::Subjects;

/// A SKU's stock row, locked for the batch.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Stock {
    pub on_hand: i64,
    pub allocated: i64,
    pub received: i64,
    pub adjusted: i64,
    pub shipped: i64,
    /// Open backordered units of the SKU (the sum over its waiting lines).
    pub backordered: i64,
    /// When the SKU's projection changes by itself.
    pub eta_check_at: Option<DateTime<Utc>>,
    /// The version of the SKU's waiting lines ([`queues`](super::queues)), as locked.
    pub queue_version: i64,
}

impl Stock {
    pub fn available(&self) -> i64 {
        self.on_hand - self.allocated
    }
}

/// One transaction's state: the locked stock rows (changed in memory, written back at the end) and the
/// ledgers of what the commands changed, for the end of the batch to announce and write.
pub(super) struct Work<'a> {
    pub tx: Transaction<'static, Postgres>,
    pub subjects: &'a Subjects,
    pub policy: &'a Policy,
    pub now: DateTime<Utc>,
    pub stock: HashMap<String, Stock>,
    pub skus: SkuLedger,
    pub orders: OrderLedger,
    pub records: Records,
    /// SKUs whose lines the batch wrote: their stock rows get a new `queue_version`.
    pub written: BTreeSet<String>,
    /// The queues the batch read or took from `cache`, with the version they are at.
    pub read: BTreeMap<String, (i64, Queue)>,
    pub cache: &'a QueueCache,
}

impl<'a> Work<'a> {
    /// Begins a batch's transaction, as of `now`.
    pub async fn begin(
        pool: &PgPool,
        subjects: &'a Subjects,
        policy: &'a Policy,
        cache: &'a QueueCache,
        now: DateTime<Utc>,
    ) -> Result<Self, sqlx::Error> {
        Ok(Work {
            tx: pool.begin().await?,
            subjects,
            policy,
            now,
            stock: HashMap::new(),
            skus: SkuLedger::default(),
            orders: OrderLedger::default(),
            records: Records::default(),
            written: BTreeSet::new(),
            read: BTreeMap::new(),
            cache,
        })
    }
}

impl Work<'_> {
    /// Locks (creating where missing) the stock row of every SKU the batch may touch, in SKU order: those the
    /// messages name, and those of the orders that shipments and cancellations name.
    pub(super) async fn lock_stock(&mut self, commands: &[Command]) -> Result<(), sqlx::Error> {
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
    pub(super) async fn skus_of(
        &mut self,
        order_ids: &[String],
    ) -> Result<Vec<String>, sqlx::Error> {
        if order_ids.is_empty() {
            return Ok(Vec::new());
        }
        sqlx::query_scalar("select distinct sku from order_lines where order_id = any($1)")
            .bind(order_ids)
            .fetch_all(&mut *self.tx)
            .await
    }

    /// `skus` sorted; rows already locked by this transaction are skipped.
    pub(super) async fn lock_skus(&mut self, mut skus: Vec<String>) -> Result<(), sqlx::Error> {
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
        type Row = (
            String,
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
            Option<DateTime<Utc>>,
            i64,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "select sku, on_hand, allocated, received, adjusted, shipped, backordered, eta_check_at,
                    queue_version
             from stock where sku = any($1) order by sku for update",
        )
        .bind(&skus)
        .fetch_all(&mut *self.tx)
        .await?;
        for (
            sku,
            on_hand,
            allocated,
            received,
            adjusted,
            shipped,
            backordered,
            eta_check_at,
            queue_version,
        ) in rows
        {
            let row = Stock {
                on_hand,
                allocated,
                received,
                adjusted,
                shipped,
                backordered,
                eta_check_at,
                queue_version,
            };
            self.stock.insert(sku, row);
        }
        Ok(())
    }

    /// The lines' SKUs were looked up and locked before the batch ran; an order accepted earlier in the same
    /// batch named its own. This only guards against a line no lookup saw.
    pub(super) async fn lock_skus_of(&mut self, lines: &[LineRow]) -> Result<(), sqlx::Error> {
        let skus: BTreeSet<String> = lines.iter().map(|l| l.sku.clone()).collect();
        self.lock_skus(skus.into_iter().collect()).await
    }

    pub(super) async fn apply(&mut self, command: &Command) -> Result<Applied, sqlx::Error> {
        let id = command.message_id();
        self.records
            .traces
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

    /// Notes that the batch writes lines of `skus` (every statement that writes `order_lines` says so): their
    /// kept queues are no longer what is stored.
    pub(super) fn lines_written(&mut self, skus: impl IntoIterator<Item = String>) {
        self.written.extend(skus);
    }

    pub(super) fn stock_mut(&mut self, sku: &str) -> &mut Stock {
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
    pub(super) async fn touch(
        &mut self,
        order_ids: &[String],
        cause: &str,
    ) -> Result<(), sqlx::Error> {
        let each: Vec<(String, String)> = order_ids
            .iter()
            .map(|id| (id.clone(), cause.to_string()))
            .collect();
        self.touch_each(&each).await
    }

    /// [`touch`](Self::touch) with a cause per order (a later one for the same order wins), in one lock and
    /// one read for all of them.
    pub(super) async fn touch_each(
        &mut self,
        orders: &[(String, String)],
    ) -> Result<(), sqlx::Error> {
        let new: Vec<String> = orders
            .iter()
            .map(|(id, _)| id)
            .filter(|id| !self.orders.before.contains_key(*id))
            .cloned()
            .collect::<BTreeSet<String>>()
            .into_iter()
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
                self.orders.before.insert(id.clone(), Vec::new());
            }
            for row in rows {
                self.orders
                    .before
                    .get_mut(&row.order_id)
                    .expect("inserted above")
                    .push(row);
            }
        }
        for (id, cause) in orders {
            self.orders.causes.insert(id.clone(), cause.clone());
        }
        Ok(())
    }

    /// Queues an event for the outbox, in the trace of the message `cause` (when it has one).
    pub(super) fn emit(&mut self, cause: Option<&str>, mut outgoing: Outgoing) {
        outgoing.traceparent = cause.and_then(|c| self.records.traces.get(c).cloned().flatten());
        self.records.outbox.push(outgoing);
    }

    /// [`emit`](Self::emit) for an event about an order: in the trace of the last message that changed it.
    pub(super) fn emit_for(&mut self, order_id: &str, outgoing: Outgoing) {
        let cause = self.orders.causes.get(order_id).cloned();
        self.emit(cause.as_deref(), outgoing);
    }

    /// Records that `units` of a line's released units are withdrawn from the WMS, and why.
    pub(super) fn withdraw(
        &mut self,
        order_id: &str,
        line_no: i32,
        sku: &str,
        units: i64,
        reason: &str,
    ) {
        if units <= 0 {
            return;
        }
        let withdrawal = self
            .orders
            .withdrawn
            .entry(order_id.to_string())
            .or_default();
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
    pub(super) fn record(
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
            self.records.history.push(HistoryRow {
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
}
