//! Cancellation: backordered units leave the queue, allocated units go back to stock and at once to the next
//! backorders in line; shipped units stay shipped.

use std::collections::{BTreeMap, BTreeSet};

use backorder_proto::v1::OrderCancelRequested;

use super::{Applied, Delta, Work};
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
        self.lock_skus_of(&lines).await?;
        self.touch(std::slice::from_ref(order_id), cause).await?;
        let reason = if request.reason.trim().is_empty() {
            "cancelled".to_string()
        } else {
            format!("cancelled: {}", request.reason.trim())
        };
        let by_line: BTreeMap<i32, &super::LineRow> =
            lines.iter().map(|l| (l.line_no, l)).collect();
        let mut freed = BTreeSet::new();
        let mut changes = Vec::with_capacity(plan.len());
        for cancel in &plan {
            let line = by_line[&cancel.line_no];
            let withdrawn = (line.released - (line.allocated - cancel.from_allocated)).max(0);
            let delta = Delta {
                allocated: -cancel.from_allocated,
                backordered: -cancel.from_backordered,
                cancelled: cancel.from_allocated + cancel.from_backordered,
                released: -withdrawn,
                ..Default::default()
            };
            changes.push((order_id.clone(), cancel.line_no, delta));
            self.withdraw(order_id, cancel.line_no, &line.sku, withdrawn, &reason);
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
        self.change_lines(&changes).await?;
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
        Ok(Applied::Done)
    }
}
