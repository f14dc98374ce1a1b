//! Re-prioritisation: every line of an order takes its new priority. A SKU's queue is ordered by the lines'
//! priority, so the order's waiting lines move in their queues at once; their SKUs are re-projected, and
//! everyone whose date moved (this order's lines and those it jumped ahead of or fell behind) is told, as after
//! any other change of a queue (`promise`, `announce`). What is allocated stays allocated: the priority decides
//! who gets stock next, and who gives it back first when a correction takes units away.

use backorder_proto::v1::OrderPriorityChanged;
use prost::Message;

use super::{Applied, Work};

impl Work<'_> {
    pub(super) async fn change_priority(
        &mut self,
        change: &OrderPriorityChanged,
        cause: &str,
    ) -> Result<Applied, sqlx::Error> {
        let order_id = &change.order_id;
        let mut lines = self.lines_of(order_id).await?;
        if lines.is_empty() {
            // An OMS raising a rush order right after placing it may overtake the order (it goes through
            // order-intake first): kept until the order comes, like a cancellation.
            let payload = change.encode_to_vec();
            if self
                .keep_for_order(order_id, cause, "priority", payload, &change.request_id)
                .await?
            {
                return Ok(Applied::Done);
            }
            lines = self.lines_of(order_id).await?;
        }
        self.lock_skus_of(&lines).await?;
        // The order row is locked here as `touch` locks it (after the stock rows): the priority read is the one
        // this transaction changes.
        let old: i32 =
            sqlx::query_scalar("select priority from orders where order_id = $1 for update")
                .bind(order_id)
                .fetch_one(&mut *self.tx)
                .await?;
        let new = change.priority;
        if old == new {
            tracing::info!(priority = new, "priority unchanged, nothing to do");
            return Ok(Applied::Done);
        }
        self.touch(std::slice::from_ref(order_id), cause).await?;
        sqlx::query("update orders set priority = $2 where order_id = $1")
            .bind(order_id)
            .bind(new)
            .execute(&mut *self.tx)
            .await?;
        // The queue index is on the line's own priority.
        let written: Vec<String> = sqlx::query_scalar(
            "update order_lines set priority = $2 where order_id = $1 returning sku",
        )
        .bind(order_id)
        .bind(new)
        .fetch_all(&mut *self.tx)
        .await?;
        self.lines_written(written);
        let reason = change.reason.trim();
        let detail = if reason.is_empty() {
            format!("priority {old} -> {new}")
        } else {
            format!("priority {old} -> {new}: {reason}")
        };
        for line in &lines {
            // The units the priority rules over: those waiting and those allocated. A finished line has none
            // and gets no row.
            self.record(
                order_id,
                line.line_no,
                &line.sku,
                "reprioritised",
                line.allocated + line.backordered,
                cause,
                detail.clone(),
            );
            if line.backordered > 0 {
                self.skus.reproject(&line.sku, cause, true);
            }
        }
        metrics::counter!("bo_priority_changes_total").increment(1);
        tracing::info!(from = old, to = new, "order reprioritised");
        Ok(Applied::Done)
    }
}
