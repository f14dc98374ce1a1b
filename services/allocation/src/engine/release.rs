//! What the WMS is told at the end of a batch: per order, the released units are brought to what its ship
//! policy allows, new units go out as an `AllocationCreated`, units it may no longer pick as an
//! `AllocationCancelled`; both are stored beside their outbox rows.

use backorder_proto::v1::ShipPolicy;

use super::Work;
use super::announce::OrderRow;
use super::lines::LineRow;
use crate::events;
use crate::rules;

/// An announcement to the WMS, to store beside the outbox row: new units to pick, or units withdrawn.
struct Announced {
    id: String,
    order_id: String,
    cause: String,
    reason: String,
    lines: Vec<(i32, String, i64)>,
}

/// What the WMS is told at the end of a batch.
#[derive(Default)]
pub(super) struct ToWms {
    allocations: Vec<Announced>,
    cancellations: Vec<Announced>,
}

impl Work<'_> {
    /// Brings each line's released units to what the order's policy allows, announcing the difference to the
    /// WMS: new units to pick, or units it may no longer pick. Returns the lines whose released units changed.
    pub(super) fn release(
        &mut self,
        order: &OrderRow,
        lines: &mut [LineRow],
        to_wms: &mut ToWms,
    ) -> Vec<(String, i32, i64)> {
        let ship_complete = order.ship_policy == ShipPolicy::ShipComplete as i16;
        let units: Vec<rules::LineUnits> = lines.iter().map(LineRow::units).collect();
        let target = rules::releasable(ship_complete, &units);
        let mut created = Vec::new();
        let mut changed = Vec::new();
        for (line, target) in lines.iter_mut().zip(target) {
            let difference = target - line.released;
            if difference > 0 {
                created.push((line.line_no, line.sku.clone(), difference));
            } else if difference < 0 {
                let (line_no, sku) = (line.line_no, line.sku.clone());
                self.withdraw(
                    &order.order_id,
                    line_no,
                    &sku,
                    -difference,
                    "held: the ship-complete order is incomplete again",
                );
            }
            if difference != 0 {
                line.released = target;
                changed.push((order.order_id.clone(), line.line_no, target));
            }
        }
        let cause = self.orders.causes[&order.order_id].clone();
        if !created.is_empty() {
            let allocation_id = events::new_id();
            self.emit_for(
                &order.order_id,
                events::allocation_created(
                    self.subjects,
                    &allocation_id,
                    &order.order_id,
                    &created,
                    self.now,
                ),
            );
            to_wms.allocations.push(Announced {
                id: allocation_id,
                order_id: order.order_id.clone(),
                cause: cause.clone(),
                reason: String::new(),
                lines: created,
            });
        }
        if let Some(withdrawal) = self.orders.withdrawn.remove(&order.order_id) {
            let lines: Vec<(i32, String, i64)> = withdrawal
                .lines
                .into_iter()
                .map(|(line_no, (sku, units))| (line_no, sku, units))
                .collect();
            let cancellation_id = events::new_id();
            self.emit_for(
                &order.order_id,
                events::allocation_cancelled(
                    self.subjects,
                    &cancellation_id,
                    &order.order_id,
                    &lines,
                    &withdrawal.reason,
                    self.now,
                ),
            );
            to_wms.cancellations.push(Announced {
                id: cancellation_id,
                order_id: order.order_id.clone(),
                cause,
                reason: withdrawal.reason,
                lines,
            });
        }
        changed
    }

    /// Stores the new released units, the allocations and the withdrawals announced.
    pub(super) async fn write_releases(
        &mut self,
        releases: &[(String, i32, i64)],
        to_wms: ToWms,
    ) -> Result<(), sqlx::Error> {
        if !releases.is_empty() {
            let written: Vec<String> = sqlx::query_scalar(
                "with written as (
                     update order_lines l set released = r.released
                     from unnest($1::text[], $2::int[], $3::bigint[]) as r(order_id, line_no, released)
                     where l.order_id = r.order_id and l.line_no = r.line_no
                     returning l.sku)
                 select distinct sku from written",
            )
            .bind(releases.iter().map(|r| r.0.clone()).collect::<Vec<_>>())
            .bind(releases.iter().map(|r| r.1).collect::<Vec<_>>())
            .bind(releases.iter().map(|r| r.2).collect::<Vec<_>>())
            .fetch_all(&mut *self.tx)
            .await?;
            self.lines_written(written);
        }
        let ToWms {
            allocations,
            cancellations,
        } = to_wms;
        if !allocations.is_empty() {
            sqlx::query(
                "insert into allocations (allocation_id, order_id, cause, created_at)
                 select *, $4 from unnest($1::text[], $2::text[], $3::text[])",
            )
            .bind(allocations.iter().map(|a| a.id.clone()).collect::<Vec<_>>())
            .bind(
                allocations
                    .iter()
                    .map(|a| a.order_id.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(
                allocations
                    .iter()
                    .map(|a| a.cause.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(self.now)
            .execute(&mut *self.tx)
            .await?;
            self.insert_lines(
                "insert into allocation_lines (allocation_id, line_no, sku, quantity)
                 select * from unnest($1::text[], $2::int[], $3::text[], $4::bigint[])",
                &allocations,
            )
            .await?;
        }
        if !cancellations.is_empty() {
            sqlx::query(
                "insert into allocation_cancellations (cancellation_id, order_id, cause, reason, created_at)
                 select *, $5 from unnest($1::text[], $2::text[], $3::text[], $4::text[])",
            )
            .bind(cancellations.iter().map(|c| c.id.clone()).collect::<Vec<_>>())
            .bind(cancellations.iter().map(|c| c.order_id.clone()).collect::<Vec<_>>())
            .bind(cancellations.iter().map(|c| c.cause.clone()).collect::<Vec<_>>())
            .bind(cancellations.iter().map(|c| c.reason.clone()).collect::<Vec<_>>())
            .bind(self.now)
            .execute(&mut *self.tx)
            .await?;
            self.insert_lines(
                "insert into allocation_cancellation_lines (cancellation_id, line_no, sku, quantity)
                 select * from unnest($1::text[], $2::int[], $3::text[], $4::bigint[])",
                &cancellations,
            )
            .await?;
        }
        Ok(())
    }

    /// The (line, SKU, units) of announcements, each under its announcement's id, in one statement.
    async fn insert_lines(
        &mut self,
        query: &'static str,
        announced: &[Announced],
    ) -> Result<(), sqlx::Error> {
        let lines = || {
            announced
                .iter()
                .flat_map(|a| a.lines.iter().map(move |line| (a.id.as_str(), line)))
        };
        sqlx::query(query)
            .bind(lines().map(|(id, _)| id.to_string()).collect::<Vec<_>>())
            .bind(lines().map(|(_, l)| l.0).collect::<Vec<_>>())
            .bind(lines().map(|(_, l)| l.1.clone()).collect::<Vec<_>>())
            .bind(lines().map(|(_, l)| l.2).collect::<Vec<_>>())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }
}
