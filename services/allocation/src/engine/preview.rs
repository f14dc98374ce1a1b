//! The what-if of a receipt: the real receipt run through the real engine in a transaction that is rolled
//! back. It takes the path a `StockReceived` takes ([`Work::apply`], then [`Work::decide`]: the fills, the new
//! ETAs, the releases to the WMS, the statuses) and reads the outcome off inside the transaction instead of
//! writing the stock rows, the audit trail and the outbox and committing. The rules are therefore the same by
//! construction, and a real receipt of the same quantity right after, with nothing else in between, gives
//! exactly what the preview said.
//!
//! Locks: the preview takes the locks a real receipt takes — the SKU's stock row (`for update`, created if
//! missing and removed again by the rollback), the rows of the orders it fills or whose dates it moves, and the
//! purchase order's open lines when it names one — and holds them for the preview's milliseconds. A batch of
//! the consumers on the same SKU waits behind it (and it behind the batch), so the preview never reads a
//! half-applied batch, and it cannot deadlock with them: it locks in the engine's order.

use backorder_proto::v1::{StockReceived, order_status};
use backorder_runtime::time;
use chrono::{DateTime, Utc};
use tracing::Instrument;

use super::lines::LineRow;
use super::{Applied, Engine, Work, is_retryable};
use crate::command::Command;
use crate::eta::Settings;

/// What a receipt would do, as read off before the rollback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptPreview {
    pub sku: String,
    pub quantity: i64,
    /// The engine's clock when the preview ran: "now" for every rule.
    pub as_of: DateTime<Utc>,
    /// Units given to waiting lines, in fill order.
    pub fills: Vec<PreviewFill>,
    /// Every order the fills touch, in the order of their first fill.
    pub orders: Vec<OrderAfter>,
    /// The SKU's queue after the receipt, in fill order.
    pub waiting: Vec<QueuedAfter>,
    /// The SKU's open purchase-order lines after the receipt, earliest first, and the projection's settings
    /// for it: what the queue's places and covering supply are worked out from (`api::view`).
    pub supply: Vec<OpenSupply>,
    pub settings: Settings,
    pub stock: StockAfter,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewFill {
    pub order_id: String,
    pub line_no: i32,
    pub quantity: i64,
    /// The line's queue position before the receipt (1 is served first).
    pub position: usize,
    pub backordered_after: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderAfter {
    pub order_id: String,
    /// (line, SKU, units) the WMS is told to pick; empty when the order's policy holds the units.
    pub released: Vec<(i32, String, i64)>,
    /// Nothing of the order waits any more.
    pub complete: bool,
    pub status: order_status::Status,
}

/// A waiting line after the receipt: its new promise and its ETA before.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct QueuedAfter {
    pub order_id: String,
    pub line_no: i32,
    pub customer_id: String,
    pub priority: i32,
    pub placed_at: DateTime<Utc>,
    pub backordered: i64,
    pub preorder: bool,
    pub eta: Option<DateTime<Utc>>,
    pub eta_estimated: bool,
    pub eta_late: bool,
    pub promised_eta: Option<DateTime<Utc>>,
    #[sqlx(skip)]
    pub eta_before: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockAfter {
    pub on_hand: i64,
    pub allocated: i64,
    pub backordered: i64,
    pub received: i64,
    pub shipped: i64,
    /// Open units of the SKU's purchase-order lines.
    pub inbound: i64,
}

/// An open purchase-order line of the SKU.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OpenSupply {
    pub po_id: String,
    pub line_no: i32,
    pub expected_at: DateTime<Utc>,
    pub quantity_open: i64,
}

impl Engine {
    /// What a receipt of `quantity` units of `sku` (on the purchase order `po_id`, when not empty) would do now;
    /// `None` when nothing is known of the SKU (no stock row, no product-master rule). The request is checked
    /// by the caller, as the consumer checks a `StockReceived`.
    pub async fn preview_receipt(
        &self,
        sku: &str,
        quantity: i64,
        po_id: &str,
    ) -> Result<Option<ReceiptPreview>, sqlx::Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.preview_once(sku, quantity, po_id).await {
                Err(error) if attempt < 5 && is_retryable(&error) => {
                    tracing::info!(%error, attempt, "preview lost a lock race, retrying");
                }
                result => return result,
            }
        }
    }

    async fn preview_once(
        &self,
        sku: &str,
        quantity: i64,
        po_id: &str,
    ) -> Result<Option<ReceiptPreview>, sqlx::Error> {
        let now = self.clock.now();
        // An id of its own: the claim it makes in processed_messages is rolled back with the rest.
        let command = Command::ReceiveStock(StockReceived {
            receipt_id: format!("preview/{}", uuid::Uuid::new_v4()),
            sku: sku.to_string(),
            quantity,
            po_id: po_id.to_string(),
            received_at: Some(time::to_proto(now)),
        });
        let cause = command.message_id();
        let mut work = self.work(now).await?;
        if !work.known(sku).await? {
            work.tx.rollback().await?;
            return Ok(None);
        }
        work.lock_stock(std::slice::from_ref(&command)).await?;
        let before = work.queue(sku).await?;
        let span = tracing::info_span!("preview", id = %cause, sku);
        match work.apply(&command).instrument(span).await? {
            Applied::Done => {}
            // A fresh id is never a duplicate nor a conflict, and a receipt refuses nothing else.
            other => {
                return Err(sqlx::Error::Protocol(format!(
                    "the previewed receipt was not applied: {other:?}"
                )));
            }
        }
        work.decide().await?;
        let preview = work.read_off(sku, quantity, &cause, &before).await?;
        work.tx.rollback().await?;
        tracing::info!(
            sku,
            quantity,
            fills = preview.fills.len(),
            orders = preview.orders.len(),
            "receipt previewed"
        );
        Ok(Some(preview))
    }
}

impl Work<'_> {
    async fn known(&mut self, sku: &str) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar(
            "select exists (select 1 from stock where sku = $1) or exists (select 1 from skus where sku = $1)",
        )
        .bind(sku)
        .fetch_one(&mut *self.tx)
        .await
    }

    /// The SKU's waiting lines in fill order, as they are now in the transaction.
    async fn queue(&mut self, sku: &str) -> Result<Vec<QueuedAfter>, sqlx::Error> {
        sqlx::query_as(
            "select l.order_id, l.line_no, o.customer_id, l.priority, l.placed_at, l.backordered, l.preorder,
                    l.eta, l.eta_estimated, l.eta_late, l.promised_eta
             from order_lines l join orders o using (order_id)
             where l.sku = $1 and l.backordered > 0
             order by l.priority desc, l.placed_at, l.order_id, l.line_no",
        )
        .bind(sku)
        .fetch_all(&mut *self.tx)
        .await
    }

    /// The outcome of the receipt `cause`, decided and not yet written: the fills from its audit rows, the
    /// releases it stored, the touched orders' lines and statuses, the queue and the supply after it.
    async fn read_off(
        &mut self,
        sku: &str,
        quantity: i64,
        cause: &str,
        before: &[QueuedAfter],
    ) -> Result<ReceiptPreview, sqlx::Error> {
        let (fills, order_ids, lines) = self.fills(sku, before).await?;
        let orders = self.orders_after(cause, &order_ids, &lines).await?;
        let supply: Vec<OpenSupply> = sqlx::query_as(
            "select po_id, line_no, expected_at, quantity_open from supply
             where sku = $1 and quantity_open > 0 and not cancelled
             order by expected_at, po_id, line_no",
        )
        .bind(sku)
        .fetch_all(&mut *self.tx)
        .await?;
        let lead_time: Option<i32> =
            sqlx::query_scalar("select lead_time_days from skus where sku = $1")
                .bind(sku)
                .fetch_optional(&mut *self.tx)
                .await?;
        let mut waiting = self.queue(sku).await?;
        for line in &mut waiting {
            line.eta_before = before
                .iter()
                .find(|b| b.order_id == line.order_id && b.line_no == line.line_no)
                .and_then(|b| b.eta);
        }

        let stock = self.stock[sku];
        let inbound = supply
            .iter()
            .fold(0i64, |sum, s| sum.saturating_add(s.quantity_open));
        Ok(ReceiptPreview {
            sku: sku.to_string(),
            quantity,
            as_of: self.now,
            fills,
            orders,
            waiting,
            supply,
            settings: self.policy.settings(lead_time),
            stock: StockAfter {
                on_hand: stock.on_hand,
                allocated: stock.allocated,
                backordered: stock.backordered,
                received: stock.received,
                shipped: stock.shipped,
                inbound,
            },
        })
    }

    /// The receipt's fills from its audit rows, with each line's place in the queue `before` it; the orders
    /// filled, in fill order, and their lines after it.
    async fn fills(
        &mut self,
        sku: &str,
        before: &[QueuedAfter],
    ) -> Result<(Vec<PreviewFill>, Vec<String>, Vec<LineRow>), sqlx::Error> {
        let position = |order_id: &str, line_no: i32| {
            before
                .iter()
                .position(|q| q.order_id == order_id && q.line_no == line_no)
                .map_or(0, |i| i + 1)
        };
        let filled: Vec<(String, i32, i64)> = self
            .records
            .history
            .iter()
            .filter(|h| h.change == "filled" && h.sku == sku)
            .map(|h| (h.order_id.clone(), h.line_no, h.quantity))
            .collect();
        let mut order_ids: Vec<String> = Vec::new();
        for (order_id, _, _) in &filled {
            if !order_ids.contains(order_id) {
                order_ids.push(order_id.clone());
            }
        }
        let lines = self.lines_of_orders(&order_ids).await?;
        let fills: Vec<PreviewFill> = filled
            .into_iter()
            .map(|(order_id, line_no, quantity)| PreviewFill {
                position: position(&order_id, line_no),
                backordered_after: lines
                    .iter()
                    .find(|l| l.order_id == order_id && l.line_no == line_no)
                    .map_or(0, |l| l.backordered),
                order_id,
                line_no,
                quantity,
            })
            .collect();
        Ok((fills, order_ids, lines))
    }

    /// Per order filled: what it released, whether it is complete, its status.
    async fn orders_after(
        &mut self,
        cause: &str,
        order_ids: &[String],
        lines: &[LineRow],
    ) -> Result<Vec<OrderAfter>, sqlx::Error> {
        let released: Vec<(String, i32, String, i64)> = sqlx::query_as(
            "select a.order_id, l.line_no, l.sku, l.quantity
             from allocations a join allocation_lines l using (allocation_id)
             where a.cause = $1 order by a.order_id, l.line_no",
        )
        .bind(cause)
        .fetch_all(&mut *self.tx)
        .await?;
        let statuses: Vec<(String, String)> =
            sqlx::query_as("select order_id, status from orders where order_id = any($1)")
                .bind(order_ids)
                .fetch_all(&mut *self.tx)
                .await?;
        Ok(order_ids
            .iter()
            .map(|id| OrderAfter {
                order_id: id.clone(),
                released: released
                    .iter()
                    .filter(|r| &r.0 == id)
                    .map(|r| (r.1, r.2.clone(), r.3))
                    .collect(),
                complete: lines
                    .iter()
                    .filter(|l| &l.order_id == id)
                    .all(|l| l.backordered == 0),
                status: statuses
                    .iter()
                    .find(|s| &s.0 == id)
                    .and_then(|s| order_status::Status::from_str_name(&s.1))
                    .unwrap_or(order_status::Status::Unspecified),
            })
            .collect())
    }
}
