//! `<p>.api.order.get`: an order as the desk sees it: its lines with their promises and queue places, and its
//! audit trail.

use std::collections::HashMap;

use backorder_proto::v1::{AuditEntry, GetOrderReply, GetOrderRequest, OrderLineView, QueuePlace};
use backorder_runtime::limits::Check;
use backorder_runtime::time::to_proto;
use chrono::{DateTime, Utc};

use super::view::{self, Dates, Waiter};
use super::{Api, ApiError};

#[derive(sqlx::FromRow)]
struct OrderRow {
    order_id: String,
    customer_id: String,
    status: String,
    priority: i32,
    ship_policy: i16,
    channel: String,
    placed_at: DateTime<Utc>,
    accepted_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: i64,
    consent_due: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct LineRow {
    line_no: i32,
    sku: String,
    ordered: i64,
    allocated: i64,
    released: i64,
    backordered: i64,
    shipped: i64,
    cancelled: i64,
    preorder: bool,
    #[sqlx(flatten)]
    dates: Dates,
    backordered_since: Option<DateTime<Utc>>,
    ready_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct HistoryRow {
    at: DateTime<Utc>,
    line_no: i32,
    sku: String,
    change: String,
    quantity: i64,
    cause: String,
    detail: String,
}

/// What the store holds of an order, read in one snapshot.
struct StoredOrder {
    order: OrderRow,
    lines: Vec<LineRow>,
    history: Vec<HistoryRow>,
    /// The waiting lines' places, by (order id, line no).
    places: HashMap<(String, i32), QueuePlace>,
}

impl Api {
    pub async fn order_get(&self, request: GetOrderRequest) -> Result<GetOrderReply, ApiError> {
        let order_id = request.order_id;
        let mut check = Check::new();
        check.id("order_id", &order_id);
        check.result().map_err(ApiError::BadRequest)?;
        tracing::Span::current().record("order_id", order_id.as_str());
        let now = self.engine.clock.now();
        let Some(stored) = self.stored_order(&order_id, now).await? else {
            return Err(ApiError::NotFound(format!("order {order_id} is not known")));
        };
        Ok(order_reply(now, stored))
    }

    /// The order, its lines, its audit trail and its waiting lines' places, in one snapshot; `None` when the
    /// order is not known.
    async fn stored_order(
        &self,
        order_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredOrder>, ApiError> {
        let mut tx = view::snapshot(&self.pool).await?;
        let order: Option<OrderRow> = sqlx::query_as(
            "select order_id, customer_id, status, priority, ship_policy, channel, placed_at, accepted_at,
                    updated_at, version, consent_due
             from orders where order_id = $1",
        )
        .bind(order_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(order) = order else {
            return Ok(None);
        };
        let lines: Vec<LineRow> = sqlx::query_as(
            "select line_no, sku, ordered, allocated, released, backordered, shipped, cancelled, preorder,
                    eta, eta_estimated, eta_late, promised_eta, backordered_since, ready_at
             from order_lines where order_id = $1 order by line_no",
        )
        .bind(order_id)
        .fetch_all(&mut *tx)
        .await?;
        let history: Vec<HistoryRow> = sqlx::query_as(
            "select at, line_no, sku, change, quantity, cause, detail from line_history
             where order_id = $1 order by id",
        )
        .bind(order_id)
        .fetch_all(&mut *tx)
        .await?;
        let waiters: Vec<Waiter> = lines
            .iter()
            .map(|l| Waiter {
                order_id,
                line_no: l.line_no,
                sku: &l.sku,
                backordered: l.backordered,
            })
            .collect();
        let places = view::places(&mut tx, now, &self.engine.policy, &waiters).await?;
        tx.commit().await?;
        Ok(Some(StoredOrder {
            order,
            lines,
            history,
            places,
        }))
    }
}

/// The reply for an order as the store has it, its promises as of `now`.
fn order_reply(now: DateTime<Utc>, stored: StoredOrder) -> GetOrderReply {
    let StoredOrder {
        order,
        lines,
        history,
        mut places,
    } = stored;
    let lines = lines
        .into_iter()
        .map(|l| {
            let place = places.remove(&(order.order_id.clone(), l.line_no));
            line_view(now, l, place)
        })
        .collect();
    let history = history.into_iter().map(audit_entry).collect();
    GetOrderReply {
        status: view::status(&order.status) as i32,
        order_id: order.order_id,
        customer_id: order.customer_id,
        priority: order.priority,
        ship_policy: i32::from(order.ship_policy),
        channel: order.channel,
        placed_at: Some(to_proto(order.placed_at)),
        accepted_at: Some(to_proto(order.accepted_at)),
        updated_at: Some(to_proto(order.updated_at)),
        version: order.version.max(0) as u64,
        lines,
        history,
        delay_consent_due: order.consent_due.map(to_proto),
    }
}

/// A line with its promise as of `now` and, while it waits, its place in its SKU's queue.
fn line_view(now: DateTime<Utc>, line: LineRow, queue: Option<QueuePlace>) -> OrderLineView {
    let waiting = line.backordered > 0;
    OrderLineView {
        line_no: line.line_no as u32,
        promise: Some(view::promise(now, waiting, &line.dates)),
        queue,
        sku: line.sku,
        ordered: line.ordered,
        allocated: line.allocated,
        held: line.allocated - line.released,
        backordered: line.backordered,
        shipped: line.shipped,
        cancelled: line.cancelled,
        preorder: line.preorder,
        backordered_since: line.backordered_since.map(to_proto),
        ready_at: line.ready_at.map(to_proto),
    }
}

fn audit_entry(h: HistoryRow) -> AuditEntry {
    AuditEntry {
        at: Some(to_proto(h.at)),
        line_no: h.line_no as u32,
        sku: h.sku,
        change: h.change,
        quantity: h.quantity,
        cause: h.cause,
        detail: h.detail,
    }
}
