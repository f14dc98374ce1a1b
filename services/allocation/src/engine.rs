//! Applies a batch of commands in one transaction: the state change, the audit trail and the events it emits
//! (into the outbox) commit together or not at all.
//!
//! Locking: every stock row the batch may touch is locked up front, in SKU order, before anything else is
//! written; order rows are locked last, in order-id order. Two instances working on the same SKUs therefore
//! queue behind each other instead of deadlocking, and stock is never given out twice.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use backorder_proto::v1::{
    Customer, OrderPlaced, ShipmentConfirmed, StockAdjusted, StockReceived, customer_event::Kind,
};
use backorder_runtime::Subjects;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use tracing::Instrument;

use crate::command::Command;
use crate::events::{self, LineState, Outgoing, StockFigures};
use crate::rules::{self, LineUnits, Waiting};

/// What became of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Done,
    /// Its effects were already stored by an earlier delivery.
    Duplicate,
    /// It can never be applied; nothing was written.
    Refused(String),
}

#[derive(Clone)]
pub struct Engine {
    pub pool: PgPool,
    pub subjects: Subjects,
}

impl Engine {
    /// Applies `commands` in one transaction, retrying it when Postgres picked it as a deadlock or
    /// serialization victim.
    pub async fn apply(&self, commands: &[Command]) -> Result<Vec<Applied>, sqlx::Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.apply_once(commands).await {
                Err(error) if attempt < 5 && is_retryable(&error) => {
                    tracing::info!(%error, attempt, "transaction lost a lock race, retrying");
                }
                result => return result,
            }
        }
    }

    async fn apply_once(&self, commands: &[Command]) -> Result<Vec<Applied>, sqlx::Error> {
        let tx = self.pool.begin().await?;
        let mut work = Work {
            tx,
            subjects: &self.subjects,
            now: Utc::now(),
            stock: HashMap::new(),
            touched_orders: BTreeSet::new(),
            short_skus: BTreeSet::new(),
            outbox: Vec::new(),
            history: Vec::new(),
        };
        work.lock_stock(commands).await?;
        let mut results = Vec::with_capacity(commands.len());
        for command in commands {
            let span = tracing::info_span!(
                "command",
                id = %command.message_id(),
                order_id = command.order_id().unwrap_or_default(),
                sku = tracing::field::Empty,
            );
            results.push(work.apply(command).instrument(span).await?);
        }
        work.finish().await?;
        Ok(results)
    }
}

fn is_retryable(error: &sqlx::Error) -> bool {
    // 40001 serialization_failure, 40P01 deadlock_detected
    matches!(error.as_database_error().and_then(|e| e.code()), Some(code) if code == "40001" || code == "40P01")
}

#[derive(Debug, Clone, Copy, Default, sqlx::FromRow)]
struct Stock {
    on_hand: i64,
    allocated: i64,
    received: i64,
    adjusted: i64,
    shipped: i64,
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

/// One transaction's state: the locked stock rows (changed in memory, written back at the end) and what the
/// commands decided to emit.
struct Work<'a> {
    tx: Transaction<'static, Postgres>,
    subjects: &'a Subjects,
    now: DateTime<Utc>,
    stock: HashMap<String, Stock>,
    touched_orders: BTreeSet<String>,
    /// SKUs that got new backorders: each gets one ReorderNeeded at the end.
    short_skus: BTreeSet<String>,
    outbox: Vec<Outgoing>,
    history: Vec<HistoryRow>,
}

#[derive(sqlx::FromRow)]
struct LineRow {
    order_id: String,
    line_no: i32,
    sku: String,
    ordered: i64,
    allocated: i64,
    backordered: i64,
    shipped: i64,
    cancelled: i64,
}

impl LineRow {
    fn state(&self) -> LineState {
        LineState {
            line_no: self.line_no,
            sku: self.sku.clone(),
            units: LineUnits {
                ordered: self.ordered,
                allocated: self.allocated,
                backordered: self.backordered,
                shipped: self.shipped,
                cancelled: self.cancelled,
            },
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
            "cancelled"
        )
    };
}

impl Work<'_> {
    /// Locks (creating where missing) the stock row of every SKU the batch may touch, in SKU order.
    async fn lock_stock(&mut self, commands: &[Command]) -> Result<(), sqlx::Error> {
        let mut skus: BTreeSet<String> = commands
            .iter()
            .flat_map(|c| c.named_skus())
            .map(str::to_string)
            .collect();
        let shipped_orders: Vec<&str> = commands
            .iter()
            .filter_map(|c| match c {
                Command::ConfirmShipment { shipment, .. } => Some(shipment.order_id.as_str()),
                _ => None,
            })
            .collect();
        if !shipped_orders.is_empty() {
            let order_skus: Vec<String> =
                sqlx::query_scalar("select distinct sku from order_lines where order_id = any($1)")
                    .bind(&shipped_orders)
                    .fetch_all(&mut *self.tx)
                    .await?;
            skus.extend(order_skus);
        }
        self.lock_skus(skus.into_iter().collect()).await
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
        let rows: Vec<(String, i64, i64, i64, i64, i64)> = sqlx::query_as(
            "select sku, on_hand, allocated, received, adjusted, shipped from stock
             where sku = any($1) order by sku for update",
        )
        .bind(&skus)
        .fetch_all(&mut *self.tx)
        .await?;
        for (sku, on_hand, allocated, received, adjusted, shipped) in rows {
            let row = Stock {
                on_hand,
                allocated,
                received,
                adjusted,
                shipped,
            };
            self.stock.insert(sku, row);
        }
        Ok(())
    }

    async fn apply(&mut self, command: &Command) -> Result<Applied, sqlx::Error> {
        let id = command.message_id();
        let claimed = sqlx::query(
            "insert into processed_messages (message_id) values ($1) on conflict do nothing",
        )
        .bind(&id)
        .execute(&mut *self.tx)
        .await?
        .rows_affected()
            == 1;
        if !claimed {
            tracing::info!("already applied, skipping");
            return Ok(Applied::Duplicate);
        }
        let applied = match command {
            Command::AcceptOrder(order) => self.accept_order(order, &id).await?,
            Command::ReceiveStock(receipt) => self.receive(receipt, &id).await?,
            Command::AdjustStock(adjustment) => self.adjust(adjustment, &id).await?,
            Command::ConfirmShipment {
                shipment,
                shipped_at,
            } => self.ship(shipment, *shipped_at, &id).await?,
        };
        if let Applied::Refused(reason) = &applied {
            // Refusals write nothing, so a redelivery is refused again (and parked again under the same id).
            sqlx::query("delete from processed_messages where message_id = $1")
                .bind(&id)
                .execute(&mut *self.tx)
                .await?;
            tracing::warn!(%reason, "refused");
        }
        Ok(applied)
    }

    fn stock_mut(&mut self, sku: &str) -> &mut Stock {
        self.stock
            .get_mut(sku)
            .expect("stock rows of a batch are locked before it runs")
    }

    async fn accept_order(
        &mut self,
        order: &OrderPlaced,
        cause: &str,
    ) -> Result<Applied, sqlx::Error> {
        let customer = order.customer.clone().unwrap_or_default();
        let placed_at = order
            .placed_at
            .as_ref()
            .and_then(backorder_runtime::time::from_proto)
            .unwrap_or(self.now);
        let inserted = sqlx::query(
            "insert into orders (order_id, customer_id, email, phone, locale, priority, ship_policy, placed_at,
                                 channel, status)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'OPEN') on conflict do nothing",
        )
        .bind(&order.order_id)
        .bind(&customer.id)
        .bind(&customer.email)
        .bind(&customer.phone)
        .bind(&customer.locale)
        .bind(order.priority)
        .bind(order.ship_policy as i16)
        .bind(placed_at)
        .bind(&order.channel)
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            tracing::info!("order already known, nothing new");
            return Ok(Applied::Duplicate);
        }

        let mut available: HashMap<String, i64> = self
            .stock
            .iter()
            .map(|(sku, s)| (sku.clone(), s.available()))
            .collect();
        let splits = rules::split_order(
            order.lines.iter().map(|l| (l.sku.as_str(), l.quantity)),
            &mut available,
        );

        let mut lines = Vec::with_capacity(order.lines.len());
        for (line, split) in order.lines.iter().zip(&splits) {
            let state = LineState {
                line_no: line.line_no as i32,
                sku: line.sku.clone(),
                units: LineUnits {
                    ordered: line.quantity,
                    allocated: split.allocated,
                    backordered: split.backordered,
                    ..Default::default()
                },
            };
            self.stock_mut(&line.sku).allocated += split.allocated;
            for (change, quantity) in [
                ("allocated", split.allocated),
                ("backordered", split.backordered),
            ] {
                if quantity > 0 {
                    self.history.push(HistoryRow {
                        order_id: order.order_id.clone(),
                        line_no: state.line_no,
                        sku: line.sku.clone(),
                        change,
                        quantity,
                        cause: cause.to_string(),
                        detail: match change {
                            "allocated" => "in stock when the order arrived".to_string(),
                            _ => "not in stock when the order arrived; queued".to_string(),
                        },
                    });
                }
            }
            if split.backordered > 0 {
                self.short_skus.insert(line.sku.clone());
            }
            lines.push(state);
        }

        sqlx::query(
            "insert into order_lines (order_id, line_no, sku, priority, placed_at, ordered, allocated, backordered)
             select $1, line_no, sku, $2, $3, ordered, allocated, backordered
             from unnest($4::int[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[])
                  as l(line_no, sku, ordered, allocated, backordered)",
        )
        .bind(&order.order_id)
        .bind(order.priority)
        .bind(placed_at)
        .bind(lines.iter().map(|l| l.line_no).collect::<Vec<_>>())
        .bind(lines.iter().map(|l| l.sku.clone()).collect::<Vec<_>>())
        .bind(lines.iter().map(|l| l.units.ordered).collect::<Vec<_>>())
        .bind(lines.iter().map(|l| l.units.allocated).collect::<Vec<_>>())
        .bind(lines.iter().map(|l| l.units.backordered).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await?;

        let allocated: Vec<(i32, String, i64)> = lines
            .iter()
            .filter(|l| l.units.allocated > 0)
            .map(|l| (l.line_no, l.sku.clone(), l.units.allocated))
            .collect();
        self.record_allocation(&order.order_id, &allocated, cause)
            .await?;

        let backordered = lines.iter().any(|l| l.units.backordered > 0);
        let (kind, about): (Kind, fn(&LineUnits) -> i64) = if backordered {
            (Kind::Backordered, |u| u.backordered)
        } else {
            (Kind::ReadyToShip, |u| u.allocated)
        };
        let event_lines: Vec<(LineState, i64)> =
            lines.iter().map(|l| (l.clone(), about(&l.units))).collect();
        self.outbox.push(events::customer_event(
            self.subjects,
            kind,
            &order.order_id,
            &customer,
            &event_lines,
            self.now,
        ));
        self.touched_orders.insert(order.order_id.clone());
        tracing::info!(
            allocated = allocated.iter().map(|a| a.2).sum::<i64>(),
            backordered = lines.iter().map(|l| l.units.backordered).sum::<i64>(),
            "order accepted"
        );
        Ok(Applied::Done)
    }

    /// Stores an allocation and announces it to the WMS. Nothing for an empty list.
    async fn record_allocation(
        &mut self,
        order_id: &str,
        lines: &[(i32, String, i64)],
        cause: &str,
    ) -> Result<(), sqlx::Error> {
        if lines.is_empty() {
            return Ok(());
        }
        let allocation_id = events::new_id();
        sqlx::query("insert into allocations (allocation_id, order_id, cause) values ($1, $2, $3)")
            .bind(&allocation_id)
            .bind(order_id)
            .bind(cause)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query(
            "insert into allocation_lines (allocation_id, line_no, sku, quantity)
             select $1, * from unnest($2::int[], $3::text[], $4::bigint[])",
        )
        .bind(&allocation_id)
        .bind(lines.iter().map(|l| l.0).collect::<Vec<_>>())
        .bind(lines.iter().map(|l| l.1.clone()).collect::<Vec<_>>())
        .bind(lines.iter().map(|l| l.2).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await?;
        self.outbox.push(events::allocation_created(
            self.subjects,
            &allocation_id,
            order_id,
            lines,
            self.now,
        ));
        Ok(())
    }

    async fn receive(
        &mut self,
        receipt: &StockReceived,
        cause: &str,
    ) -> Result<Applied, sqlx::Error> {
        tracing::Span::current().record("sku", receipt.sku.as_str());
        let stock = self.stock_mut(&receipt.sku);
        stock.on_hand += receipt.quantity;
        stock.received += receipt.quantity;
        tracing::info!(quantity = receipt.quantity, "stock received");
        self.fill_backorders(&receipt.sku, cause).await?;
        Ok(Applied::Done)
    }

    async fn adjust(
        &mut self,
        adjustment: &StockAdjusted,
        cause: &str,
    ) -> Result<Applied, sqlx::Error> {
        tracing::Span::current().record("sku", adjustment.sku.as_str());
        let stock = *self.stock_mut(&adjustment.sku);
        let on_hand = stock.on_hand + adjustment.delta;
        if on_hand < stock.allocated {
            return Ok(Applied::Refused(format!(
                "adjustment {} of {} for {}: on hand would be {on_hand}, below the {} units allocated to orders; \
                 taking allocations back is not supported yet",
                adjustment.adjustment_id, adjustment.delta, adjustment.sku, stock.allocated
            )));
        }
        let stock = self.stock_mut(&adjustment.sku);
        stock.on_hand = on_hand;
        stock.adjusted += adjustment.delta;
        tracing::info!(delta = adjustment.delta, reason = %adjustment.reason, "stock adjusted");
        if adjustment.delta > 0 {
            self.fill_backorders(&adjustment.sku, cause).await?;
        }
        Ok(Applied::Done)
    }

    /// Gives the SKU's available stock to its backorder queue: priority first, then first come first served.
    async fn fill_backorders(&mut self, sku: &str, cause: &str) -> Result<(), sqlx::Error> {
        let available = self.stock[sku].available();
        if available <= 0 {
            return Ok(());
        }
        // Only the head of the queue that the stock can reach.
        let queue: Vec<(String, i32, i64, i32)> = sqlx::query_as(
            "select order_id, line_no, backordered, priority from (
                 select order_id, line_no, backordered, priority, placed_at,
                        sum(backordered) over queue - backordered as ahead
                 from order_lines where sku = $1 and backordered > 0
                 window queue as (order by priority desc, placed_at, order_id, line_no)
             ) q where ahead < $2
             order by priority desc, placed_at, order_id, line_no",
        )
        .bind(sku)
        .bind(available)
        .fetch_all(&mut *self.tx)
        .await?;
        let waiting: Vec<Waiting> = queue
            .iter()
            .map(|(order_id, line_no, backordered, _)| Waiting {
                order_id: order_id.clone(),
                line_no: *line_no,
                backordered: *backordered,
            })
            .collect();
        let fills = rules::fill_queue(available, &waiting);
        if fills.is_empty() {
            return Ok(());
        }
        let updated: Vec<LineRow> = sqlx::query_as(concat!(
            "update order_lines l set allocated = l.allocated + f.quantity, backordered = l.backordered - f.quantity
             from unnest($1::text[], $2::int[], $3::bigint[]) as f(order_id, line_no, quantity)
             where l.order_id = f.order_id and l.line_no = f.line_no
             returning ",
            line_columns!("l.")
        ))
        .bind(fills.iter().map(|f| f.order_id.clone()).collect::<Vec<_>>())
        .bind(fills.iter().map(|f| f.line_no).collect::<Vec<_>>())
        .bind(fills.iter().map(|f| f.quantity).collect::<Vec<_>>())
        .fetch_all(&mut *self.tx)
        .await?;
        let updated: HashMap<(String, i32), LineRow> = updated
            .into_iter()
            .map(|r| ((r.order_id.clone(), r.line_no), r))
            .collect();

        let given: i64 = fills.iter().map(|f| f.quantity).sum();
        self.stock_mut(sku).allocated += given;
        tracing::info!(given, lines = fills.len(), "backorders filled");

        let mut by_order: BTreeMap<&str, Vec<(LineState, i64)>> = BTreeMap::new();
        for (fill, (_, _, _, priority)) in fills.iter().zip(&queue) {
            self.history.push(HistoryRow {
                order_id: fill.order_id.clone(),
                line_no: fill.line_no,
                sku: sku.to_string(),
                change: "filled",
                quantity: fill.quantity,
                cause: cause.to_string(),
                detail: format!("queue position {} at priority {priority}", fill.position),
            });
            let line = updated[&(fill.order_id.clone(), fill.line_no)].state();
            by_order
                .entry(&fill.order_id)
                .or_default()
                .push((line, fill.quantity));
        }
        let order_ids: Vec<String> = by_order.keys().map(|id| id.to_string()).collect();
        let customers = self.customers(&order_ids).await?;
        for (order_id, lines) in by_order {
            let allocation: Vec<(i32, String, i64)> = lines
                .iter()
                .map(|(l, q)| (l.line_no, l.sku.clone(), *q))
                .collect();
            self.record_allocation(order_id, &allocation, cause).await?;
            let customer = customers.get(order_id).cloned().unwrap_or_default();
            self.outbox.push(events::customer_event(
                self.subjects,
                Kind::ReadyToShip,
                order_id,
                &customer,
                &lines,
                self.now,
            ));
            self.touched_orders.insert(order_id.to_string());
        }
        Ok(())
    }

    async fn customers(
        &mut self,
        order_ids: &[String],
    ) -> Result<HashMap<String, Customer>, sqlx::Error> {
        let rows: Vec<(String, String, String, String, String)> = sqlx::query_as(
            "select order_id, customer_id, email, phone, locale from orders where order_id = any($1)",
        )
        .bind(order_ids)
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(order_id, id, email, phone, locale)| {
                (
                    order_id,
                    Customer {
                        id,
                        email,
                        phone,
                        locale,
                    },
                )
            })
            .collect())
    }

    async fn ship(
        &mut self,
        shipment: &ShipmentConfirmed,
        shipped_at: DateTime<Utc>,
        cause: &str,
    ) -> Result<Applied, sqlx::Error> {
        let order_id = &shipment.order_id;
        let lines: Vec<LineRow> = sqlx::query_as(concat!(
            "select ",
            line_columns!(""),
            " from order_lines where order_id = $1 order by line_no"
        ))
        .bind(order_id)
        .fetch_all(&mut *self.tx)
        .await?;
        if lines.is_empty() {
            return Ok(Applied::Refused(format!(
                "shipment {}: order {order_id} is unknown",
                shipment.shipment_id
            )));
        }
        let units: HashMap<i32, LineUnits> =
            lines.iter().map(|l| (l.line_no, l.state().units)).collect();
        let shipped: Vec<(i32, i64)> = shipment
            .lines
            .iter()
            .map(|l| (l.line_no as i32, l.quantity))
            .collect();
        if let Err(error) = rules::check_shipment(&units, &shipped) {
            return Ok(Applied::Refused(format!(
                "shipment {} for order {order_id}: {error}",
                shipment.shipment_id
            )));
        }
        sqlx::query(
            "insert into shipments (shipment_id, order_id, shipped_at) values ($1, $2, $3)",
        )
        .bind(&shipment.shipment_id)
        .bind(order_id)
        .bind(shipped_at)
        .execute(&mut *self.tx)
        .await?;
        let updated: Vec<LineRow> = sqlx::query_as(concat!(
            "update order_lines l set allocated = l.allocated - s.quantity, shipped = l.shipped + s.quantity
             from unnest($2::int[], $3::bigint[]) as s(line_no, quantity)
             where l.order_id = $1 and l.line_no = s.line_no
             returning ",
            line_columns!("l.")
        ))
        .bind(order_id)
        .bind(shipped.iter().map(|s| s.0).collect::<Vec<_>>())
        .bind(shipped.iter().map(|s| s.1).collect::<Vec<_>>())
        .fetch_all(&mut *self.tx)
        .await?;

        // Shipped lines' SKUs were looked up and locked before the batch ran; an order accepted earlier in the
        // same batch named its own. This only guards against a line no lookup saw.
        let mut unlocked: Vec<String> = updated.iter().map(|r| r.sku.clone()).collect();
        unlocked.sort();
        unlocked.dedup();
        self.lock_skus(unlocked).await?;

        let mut event_lines = Vec::new();
        for row in &updated {
            let quantity = shipped
                .iter()
                .find(|s| s.0 == row.line_no)
                .map_or(0, |s| s.1);
            let stock = self.stock_mut(&row.sku);
            stock.on_hand -= quantity;
            stock.allocated -= quantity;
            stock.shipped += quantity;
            self.history.push(HistoryRow {
                order_id: order_id.clone(),
                line_no: row.line_no,
                sku: row.sku.clone(),
                change: "shipped",
                quantity,
                cause: cause.to_string(),
                detail: format!("shipment {}", shipment.shipment_id),
            });
            event_lines.push((row.state(), quantity));
        }
        let finished: HashMap<i32, bool> = updated
            .iter()
            .map(|r| (r.line_no, r.state().units.is_finished()))
            .collect();
        let complete = lines.iter().all(|l| {
            finished
                .get(&l.line_no)
                .copied()
                .unwrap_or_else(|| l.state().units.is_finished())
        });
        let kind = if complete {
            Kind::Completed
        } else {
            Kind::Shipped
        };
        let customer = self
            .customers(std::slice::from_ref(order_id))
            .await?
            .remove(order_id)
            .unwrap_or_default();
        self.outbox.push(events::customer_event(
            self.subjects,
            kind,
            order_id,
            &customer,
            &event_lines,
            self.now,
        ));
        self.touched_orders.insert(order_id.clone());
        tracing::info!(
            units = shipped.iter().map(|s| s.1).sum::<i64>(),
            complete,
            "shipment booked"
        );
        Ok(Applied::Done)
    }

    /// Emits one status per changed order and one reorder event per newly short SKU, writes the stock rows, the
    /// audit trail and the outbox, and commits.
    async fn finish(mut self) -> Result<(), sqlx::Error> {
        self.emit_statuses().await?;
        self.emit_reorders().await?;
        self.write_stock().await?;
        self.write_history().await?;
        self.write_outbox().await?;
        self.tx.commit().await
    }

    async fn emit_statuses(&mut self) -> Result<(), sqlx::Error> {
        if self.touched_orders.is_empty() {
            return Ok(());
        }
        let order_ids: Vec<String> = self.touched_orders.iter().cloned().collect();
        // Order rows are the last locks taken, in order-id order (see the module comment).
        sqlx::query("select 1 from orders where order_id = any($1) order by order_id for update")
            .bind(&order_ids)
            .execute(&mut *self.tx)
            .await?;
        let rows: Vec<LineRow> = sqlx::query_as(concat!(
            "select ",
            line_columns!(""),
            " from order_lines where order_id = any($1) order by order_id, line_no"
        ))
        .bind(&order_ids)
        .fetch_all(&mut *self.tx)
        .await?;
        let mut by_order: BTreeMap<String, Vec<LineState>> = BTreeMap::new();
        for row in rows {
            by_order
                .entry(row.order_id.clone())
                .or_default()
                .push(row.state());
        }
        let statuses: Vec<(String, rules::Status)> = by_order
            .iter()
            .map(|(id, lines)| {
                let units: Vec<LineUnits> = lines.iter().map(|l| l.units).collect();
                (id.clone(), rules::order_status(&units))
            })
            .collect();
        let versions: Vec<(String, i64)> = sqlx::query_as(
            "update orders o set status = s.status, version = o.version + 1, updated_at = $3
             from unnest($1::text[], $2::text[]) as s(order_id, status)
             where o.order_id = s.order_id
             returning o.order_id, o.version",
        )
        .bind(statuses.iter().map(|s| s.0.clone()).collect::<Vec<_>>())
        .bind(statuses.iter().map(|s| s.1.as_str()).collect::<Vec<_>>())
        .bind(self.now)
        .fetch_all(&mut *self.tx)
        .await?;
        let versions: HashMap<String, i64> = versions.into_iter().collect();
        for (order_id, status) in statuses {
            let version = versions[&order_id];
            let outgoing = events::order_status(
                self.subjects,
                &order_id,
                status,
                version,
                &by_order[&order_id],
                self.now,
            );
            self.outbox.push(outgoing);
        }
        Ok(())
    }

    async fn emit_reorders(&mut self) -> Result<(), sqlx::Error> {
        if self.short_skus.is_empty() {
            return Ok(());
        }
        let skus: Vec<String> = self.short_skus.iter().cloned().collect();
        let backordered: Vec<(String, i64)> = sqlx::query_as(
            "select sku, sum(backordered)::bigint from order_lines
             where sku = any($1) and backordered > 0 group by sku order by sku",
        )
        .bind(&skus)
        .fetch_all(&mut *self.tx)
        .await?;
        for (sku, backordered) in backordered {
            let stock = self.stock[&sku];
            let figures = StockFigures {
                backordered,
                on_hand: stock.on_hand,
                available: stock.available(),
                inbound: 0,
            };
            if rules::shortage(figures.backordered, figures.available, figures.inbound) > 0 {
                self.outbox.push(events::reorder_needed(
                    self.subjects,
                    &sku,
                    &figures,
                    self.now,
                ));
            }
        }
        Ok(())
    }

    async fn write_stock(&mut self) -> Result<(), sqlx::Error> {
        if self.stock.is_empty() {
            return Ok(());
        }
        let rows: Vec<(&String, &Stock)> = self.stock.iter().collect();
        sqlx::query(
            "update stock s set on_hand = n.on_hand, allocated = n.allocated, received = n.received,
                                adjusted = n.adjusted, shipped = n.shipped
             from unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[])
                  as n(sku, on_hand, allocated, received, adjusted, shipped)
             where s.sku = n.sku",
        )
        .bind(rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.on_hand).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.allocated).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.received).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.adjusted).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.shipped).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn write_history(&mut self) -> Result<(), sqlx::Error> {
        if self.history.is_empty() {
            return Ok(());
        }
        let h = &self.history;
        sqlx::query(
            "insert into line_history (order_id, line_no, sku, change, quantity, cause, detail)
             select * from unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[])",
        )
        .bind(h.iter().map(|r| r.order_id.clone()).collect::<Vec<_>>())
        .bind(h.iter().map(|r| r.line_no).collect::<Vec<_>>())
        .bind(h.iter().map(|r| r.sku.clone()).collect::<Vec<_>>())
        .bind(h.iter().map(|r| r.change).collect::<Vec<_>>())
        .bind(h.iter().map(|r| r.quantity).collect::<Vec<_>>())
        .bind(h.iter().map(|r| r.cause.clone()).collect::<Vec<_>>())
        .bind(h.iter().map(|r| r.detail.clone()).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn write_outbox(&mut self) -> Result<(), sqlx::Error> {
        if self.outbox.is_empty() {
            return Ok(());
        }
        let o = &self.outbox;
        // `with ordinality` keeps the emit order in the outbox ids, which is the publish order.
        sqlx::query(
            "insert into outbox (message_id, subject, payload)
             select message_id, subject, payload
             from unnest($1::text[], $2::text[], $3::bytea[]) with ordinality as o(message_id, subject, payload, n)
             order by n",
        )
        .bind(o.iter().map(|r| r.message_id.clone()).collect::<Vec<_>>())
        .bind(o.iter().map(|r| r.subject.clone()).collect::<Vec<_>>())
        .bind(o.iter().map(|r| r.payload.clone()).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}
