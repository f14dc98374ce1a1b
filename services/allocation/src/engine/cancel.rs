//! Cancellation: backordered units leave the queue, allocated units go back to stock and at once to the next
//! backorders in line; shipped units stay shipped.

use std::collections::{BTreeMap, BTreeSet};

use backorder_proto::v1::OrderCancelRequested;

use super::{Applied, Delta, LineRow, Work};
use crate::rules;

impl Work<'_> {
    pub(super) async fn cancel(
        &mut self,
        request: &OrderCancelRequested,
        cause: &str,
    ) -> Result<Applied, sqlx::Error> {
        let order_id = &request.order_id;
        let lines = self.lines_of(order_id).await?;
        if lines.is_empty() {
            // Orders reach allocation through order-intake; a cancellation sent right after its order may
            // overtake it.
            return Ok(Applied::NotYet(format!(
                "cancel {}: order {order_id} is not known (yet)",
                request.request_id
            )));
        }
        let units: BTreeMap<i32, rules::LineUnits> =
            lines.iter().map(|l| (l.line_no, l.units())).collect();
        let requested: Vec<(i32, i64)> = request
            .lines
            .iter()
            .map(|l| (l.line_no as i32, l.quantity))
            .collect();
        let plan = match rules::plan_cancel(&units, &requested) {
            Ok(plan) => plan,
            Err(error) => {
                return Ok(Applied::Refused(format!(
                    "cancel {} for order {order_id}: {error}",
                    request.request_id
                )));
            }
        };
        let reason = if request.reason.trim().is_empty() {
            "cancelled".to_string()
        } else {
            format!("cancelled: {}", request.reason.trim())
        };
        self.cancel_units(order_id, &lines, &plan, &reason, cause)
            .await?;
        Ok(Applied::Done)
    }

    /// Carries out a planned cancellation of `lines` (the order's lines as they are): backordered units leave
    /// the queue, allocated ones go back to stock and on to the next backorders in line.
    pub(super) async fn cancel_units(
        &mut self,
        order_id: &str,
        lines: &[LineRow],
        plan: &[rules::Cancel],
        reason: &str,
        cause: &str,
    ) -> Result<(), sqlx::Error> {
        self.lock_skus_of(lines).await?;
        self.touch(&[order_id.to_string()], cause).await?;
        let by_line: BTreeMap<i32, &LineRow> = lines.iter().map(|l| (l.line_no, l)).collect();
        let mut freed = BTreeSet::new();
        let mut changes = Vec::with_capacity(plan.len());
        for cancel in plan {
            let line = by_line[&cancel.line_no];
            let withdrawn = (line.released - (line.allocated - cancel.from_allocated)).max(0);
            let delta = Delta {
                allocated: -cancel.from_allocated,
                backordered: -cancel.from_backordered,
                cancelled: cancel.from_allocated + cancel.from_backordered,
                released: -withdrawn,
                ..Default::default()
            };
            changes.push((order_id.to_string(), cancel.line_no, delta));
            self.withdraw(order_id, cancel.line_no, &line.sku, withdrawn, reason);
            if cancel.from_allocated > 0 {
                self.stock_mut(&line.sku).allocated -= cancel.from_allocated;
                freed.insert(line.sku.clone());
            }
            let detail = format!(
                "{reason} ({} backordered, {} allocated)",
                cancel.from_backordered, cancel.from_allocated
            );
            self.record(
                order_id,
                cancel.line_no,
                &line.sku,
                "cancelled",
                cancel.from_allocated + cancel.from_backordered,
                cause,
                detail,
            );
        }
        self.change_lines(&changes, cause).await?;
        tracing::info!(
            units = plan
                .iter()
                .map(|c| c.from_allocated + c.from_backordered)
                .sum::<i64>(),
            "order cancelled"
        );
        for sku in freed {
            self.fill_backorders(&sku, cause).await?;
        }
        Ok(())
    }
}
