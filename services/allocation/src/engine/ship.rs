//! Shipment confirmations from the WMS: partial, in several parts, and only of units it was told to pick.

use std::collections::HashMap;

use backorder_proto::v1::ShipmentConfirmed;
use chrono::{DateTime, Utc};

use super::lines::Delta;
use super::{Applied, Work};
use crate::rules::{self, Shippable};

impl Work<'_> {
    pub(super) async fn ship(
        &mut self,
        shipment: &ShipmentConfirmed,
        shipped_at: DateTime<Utc>,
        cause: &str,
    ) -> Result<Applied, sqlx::Error> {
        let order_id = &shipment.order_id;
        let lines = self.lines_of(order_id).await?;
        if lines.is_empty() {
            return Ok(Applied::Refused(format!(
                "shipment {}: order {order_id} is unknown",
                shipment.shipment_id
            )));
        }
        let shippable: HashMap<i32, Shippable> = lines
            .iter()
            .map(|l| {
                let units = Shippable {
                    allocated: l.allocated,
                    released: l.released,
                };
                (l.line_no, units)
            })
            .collect();
        let shipped: Vec<(i32, i64)> = shipment
            .lines
            .iter()
            .map(|l| (l.line_no as i32, l.quantity))
            .collect();
        if let Err(error) = rules::check_shipment(&shippable, &shipped) {
            return Ok(Applied::Refused(format!(
                "shipment {} for order {order_id}: {error}",
                shipment.shipment_id
            )));
        }
        self.lock_skus_of(&lines).await?;
        self.touch(std::slice::from_ref(order_id), cause).await?;
        sqlx::query(
            "insert into shipments (shipment_id, order_id, shipped_at) values ($1, $2, $3)",
        )
        .bind(&shipment.shipment_id)
        .bind(order_id)
        .bind(shipped_at)
        .execute(&mut *self.tx)
        .await?;
        let sku_of: HashMap<i32, String> =
            lines.iter().map(|l| (l.line_no, l.sku.clone())).collect();
        let mut changes = Vec::with_capacity(shipped.len());
        for &(line_no, quantity) in &shipped {
            let sku = &sku_of[&line_no];
            let stock = self.stock_mut(sku);
            stock.on_hand -= quantity;
            stock.allocated -= quantity;
            stock.shipped += quantity;
            let delta = Delta {
                allocated: -quantity,
                shipped: quantity,
                released: -quantity,
                ..Default::default()
            };
            changes.push((order_id.clone(), line_no, delta));
            let detail = format!("shipment {}", shipment.shipment_id);
            self.record(order_id, line_no, sku, "shipped", quantity, cause, detail);
        }
        self.change_lines(&changes, cause).await?;
        tracing::info!(
            units = shipped.iter().map(|s| s.1).sum::<i64>(),
            "shipment booked"
        );
        Ok(Applied::Done)
    }
}
