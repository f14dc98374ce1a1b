//! Stock coming in (receipts, corrections up) goes to the backorder queue; a correction down below what is
//! allocated takes units back from the lines that have the weakest claim to them.

use backorder_proto::v1::{StockAdjusted, StockReceived};

use super::lines::Delta;
use super::{Applied, Work};
use crate::rules::{self, Queued};

impl Work<'_> {
    pub(super) async fn receive(
        &mut self,
        receipt: &StockReceived,
        cause: &str,
    ) -> Result<Applied, sqlx::Error> {
        tracing::Span::current().record("sku", receipt.sku.as_str());
        let stock = self.stock_mut(&receipt.sku);
        stock.on_hand += receipt.quantity;
        stock.received += receipt.quantity;
        tracing::info!(quantity = receipt.quantity, po = %receipt.po_id, "stock received");
        if !receipt.po_id.is_empty() {
            let unexpected = self
                .receive_on_po(&receipt.po_id, &receipt.sku, receipt.quantity)
                .await?;
            // Purchased goods no reported PO line expected: they answer the SKU's oldest purchase requests,
            // as a new PO line would.
            if unexpected > 0 {
                self.skus
                    .answers
                    .entry(receipt.sku.clone())
                    .or_default()
                    .added += unexpected;
            }
            self.skus.reproject(&receipt.sku, cause, true);
            self.skus.short.insert(receipt.sku.clone());
        }
        self.fill_backorders(&receipt.sku, cause).await?;
        Ok(Applied::Done)
    }

    pub(super) async fn adjust(
        &mut self,
        adjustment: &StockAdjusted,
        cause: &str,
    ) -> Result<Applied, sqlx::Error> {
        let sku = adjustment.sku.as_str();
        tracing::Span::current().record("sku", sku);
        let stock = *self.stock_mut(sku);
        let on_hand = stock.on_hand + adjustment.delta;
        if on_hand < 0 {
            return Ok(Applied::Refused(format!(
                "adjustment {} of {} for {sku}: only {} on hand, so on hand would be {on_hand}",
                adjustment.adjustment_id, adjustment.delta, stock.on_hand
            )));
        }
        let stock = self.stock_mut(sku);
        stock.on_hand = on_hand;
        stock.adjusted += adjustment.delta;
        let short = stock.allocated - on_hand;
        tracing::info!(delta = adjustment.delta, reason = %adjustment.reason, "stock adjusted");
        if short > 0 {
            self.take_back(sku, short, cause, &adjustment.reason)
                .await?;
        } else if adjustment.delta > 0 {
            self.fill_backorders(sku, cause).await?;
        }
        Ok(Applied::Done)
    }

    /// Gives the SKU's available stock to its backorder queue: priority first, then first come first served.
    pub(super) async fn fill_backorders(
        &mut self,
        sku: &str,
        cause: &str,
    ) -> Result<(), sqlx::Error> {
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
        let fills = rules::fill_queue(available, &queued(&queue));
        if fills.is_empty() {
            return Ok(());
        }
        let orders: Vec<String> = fills.iter().map(|f| f.order_id.clone()).collect();
        self.touch(&orders, cause).await?;
        let changes: Vec<(String, i32, Delta)> = fills
            .iter()
            .map(|f| {
                let delta = Delta {
                    allocated: f.quantity,
                    backordered: -f.quantity,
                    ..Default::default()
                };
                (f.order_id.clone(), f.line_no, delta)
            })
            .collect();
        self.change_lines(&changes, cause).await?;
        let given: i64 = fills.iter().map(|f| f.quantity).sum();
        self.stock_mut(sku).allocated += given;
        for (fill, (_, _, _, priority)) in fills.iter().zip(&queue) {
            let detail = format!("queue position {} at priority {priority}", fill.position);
            self.record(
                &fill.order_id,
                fill.line_no,
                sku,
                "filled",
                fill.quantity,
                cause,
                detail,
            );
        }
        tracing::info!(given, lines = fills.len(), "backorders filled");
        Ok(())
    }

    /// Takes `units` allocated, unshipped units of the SKU back, from the lowest priority and most recently
    /// allocated lines first; they become backorders again at their old place in the queue.
    async fn take_back(
        &mut self,
        sku: &str,
        units: i64,
        cause: &str,
        reason: &str,
    ) -> Result<(), sqlx::Error> {
        let tail: Vec<(String, i32, i64, i32, i64)> = sqlx::query_as(
            "select order_id, line_no, allocated, priority, released from (
                 select order_id, line_no, allocated, priority, released, allocated_at, placed_at,
                        sum(allocated) over tail - allocated as behind
                 from order_lines where sku = $1 and allocated > 0
                 window tail as (order by priority, allocated_at desc nulls last, placed_at desc,
                                          order_id desc, line_no desc)
             ) t where behind < $2
             order by priority, allocated_at desc nulls last, placed_at desc, order_id desc, line_no desc",
        )
        .bind(sku)
        .bind(units)
        .fetch_all(&mut *self.tx)
        .await?;
        let queue: Vec<Queued> = tail
            .iter()
            .map(|(order_id, line_no, allocated, _, _)| Queued {
                order_id: order_id.clone(),
                line_no: *line_no,
                units: *allocated,
            })
            .collect();
        let takes = rules::fill_queue(units, &queue);
        let orders: Vec<String> = takes.iter().map(|t| t.order_id.clone()).collect();
        self.touch(&orders, cause).await?;
        let mut changes = Vec::with_capacity(takes.len());
        for (take, (_, _, allocated, priority, released)) in takes.iter().zip(&tail) {
            // Released units beyond what stays allocated are no longer there to pick.
            let withdrawn = (released - (allocated - take.quantity)).max(0);
            let delta = Delta {
                allocated: -take.quantity,
                backordered: take.quantity,
                released: -withdrawn,
                ..Default::default()
            };
            changes.push((take.order_id.clone(), take.line_no, delta));
            self.withdraw(
                &take.order_id,
                take.line_no,
                sku,
                withdrawn,
                "stock correction",
            );
            let detail = format!(
                "stock correction ({reason}): taken back as position {} at priority {priority}",
                take.position
            );
            self.record(
                &take.order_id,
                take.line_no,
                sku,
                "taken back",
                take.quantity,
                cause,
                detail,
            );
        }
        self.change_lines(&changes, cause).await?;
        let taken: i64 = takes.iter().map(|t| t.quantity).sum();
        self.stock_mut(sku).allocated -= taken;
        self.skus.short.insert(sku.to_string());
        tracing::info!(taken, lines = takes.len(), "allocations taken back");
        Ok(())
    }
}

fn queued(queue: &[(String, i32, i64, i32)]) -> Vec<Queued> {
    queue
        .iter()
        .map(|(order_id, line_no, backordered, _)| Queued {
            order_id: order_id.clone(),
            line_no: *line_no,
            units: *backordered,
        })
        .collect()
}
