//! The end of a batch: per changed order, release to the WMS what it may pick (or withdraw what it may no
//! longer), tell the customer what changed, and send the OMS the new status; per SKU that got new backorders,
//! one reorder event.

use std::collections::{BTreeMap, HashMap};

use backorder_proto::v1::{Customer, ShipPolicy, customer_event::Kind};

use super::{Announced, LineRow, Work, line_columns};
use crate::events::{self, LineState, StockFigures};
use crate::rules::{self, LineView, Notice};

#[derive(sqlx::FromRow)]
struct OrderRow {
    order_id: String,
    customer_id: String,
    email: String,
    phone: String,
    locale: String,
    ship_policy: i16,
}

impl OrderRow {
    fn customer(&self) -> Customer {
        Customer {
            id: self.customer_id.clone(),
            email: self.email.clone(),
            phone: self.phone.clone(),
            locale: self.locale.clone(),
        }
    }
}

impl Work<'_> {
    pub(super) async fn announce(&mut self) -> Result<(), sqlx::Error> {
        if self.before.is_empty() {
            return Ok(());
        }
        let order_ids: Vec<String> = self.before.keys().cloned().collect();
        // Order rows are the last locks taken, in order-id order (see the module comment).
        let orders: Vec<OrderRow> = sqlx::query_as(
            "select order_id, customer_id, email, phone, locale, ship_policy from orders
             where order_id = any($1) order by order_id for update",
        )
        .bind(&order_ids)
        .fetch_all(&mut *self.tx)
        .await?;
        // A line of these orders on a SKU this batch did not lock may be changing in another transaction (two
        // instances filling two SKUs of one ship-complete order). That transaction gets here only after this one
        // commits, since the order rows are locked first, and then reads both changes and announces the rest.
        let rows: Vec<LineRow> = sqlx::query_as(concat!(
            "select ",
            line_columns!(""),
            " from order_lines where order_id = any($1) order by order_id, line_no"
        ))
        .bind(&order_ids)
        .fetch_all(&mut *self.tx)
        .await?;
        let mut after: BTreeMap<String, Vec<LineRow>> = BTreeMap::new();
        for row in rows {
            after.entry(row.order_id.clone()).or_default().push(row);
        }

        let mut releases = Vec::new();
        let mut statuses = Vec::new();
        for order in &orders {
            let lines = after.get_mut(&order.order_id).expect("orders have lines");
            releases.extend(self.release(order, lines));
            self.notify(order, lines);
            let units: Vec<rules::LineUnits> = lines.iter().map(LineRow::units).collect();
            let preorders_only = lines.iter().all(|l| l.backordered == 0 || l.preorder);
            statuses.push((
                order.order_id.clone(),
                rules::order_status(&units, preorders_only),
            ));
        }
        self.write_releases(&releases).await?;
        self.emit_statuses(&statuses, &after).await
    }

    /// Brings each line's released units to what the order's policy allows, announcing the difference to the
    /// WMS: new units to pick, or units it may no longer pick. Returns the lines whose released units changed.
    fn release(&mut self, order: &OrderRow, lines: &mut [LineRow]) -> Vec<(String, i32, i64)> {
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
        let cause = self.causes[&order.order_id].clone();
        if !created.is_empty() {
            let allocation_id = events::new_id();
            self.outbox.push(events::allocation_created(
                self.subjects,
                &allocation_id,
                &order.order_id,
                &created,
                self.now,
            ));
            self.allocations.push(Announced {
                id: allocation_id,
                order_id: order.order_id.clone(),
                cause: cause.clone(),
                reason: String::new(),
                lines: created,
            });
        }
        if let Some(withdrawal) = self.withdrawn.remove(&order.order_id) {
            let lines: Vec<(i32, String, i64)> = withdrawal
                .lines
                .into_iter()
                .map(|(line_no, (sku, units))| (line_no, sku, units))
                .collect();
            let cancellation_id = events::new_id();
            self.outbox.push(events::allocation_cancelled(
                self.subjects,
                &cancellation_id,
                &order.order_id,
                &lines,
                &withdrawal.reason,
                self.now,
            ));
            self.cancellations.push(Announced {
                id: cancellation_id,
                order_id: order.order_id.clone(),
                cause,
                reason: withdrawal.reason,
                lines,
            });
        }
        changed
    }

    /// One customer event per kind of change the order went through in this batch.
    fn notify(&mut self, order: &OrderRow, lines: &[LineRow]) {
        let before: HashMap<i32, LineView> = self.before[&order.order_id]
            .iter()
            .map(|l| (l.line_no, l.view()))
            .collect();
        let before: Vec<LineView> = lines
            .iter()
            .map(|l| before.get(&l.line_no).copied().unwrap_or_default())
            .collect();
        let after: Vec<LineView> = lines.iter().map(LineRow::view).collect();
        let customer = order.customer();
        for (notice, units) in rules::notices(&before, &after) {
            let kind = match notice {
                Notice::Cancelled => Kind::Cancelled,
                Notice::Backordered => Kind::Backordered,
                Notice::Preordered => Kind::Preordered,
                Notice::ReadyToShip => Kind::ReadyToShip,
                Notice::Shipped => Kind::Shipped,
                Notice::Completed => Kind::Completed,
            };
            let event_lines: Vec<(LineState, i64)> =
                lines.iter().map(LineRow::state).zip(units).collect();
            self.outbox.push(events::customer_event(
                self.subjects,
                kind,
                &order.order_id,
                &customer,
                &event_lines,
                self.now,
            ));
        }
    }

    /// Stores the new released units, the allocations and the withdrawals announced.
    async fn write_releases(&mut self, releases: &[(String, i32, i64)]) -> Result<(), sqlx::Error> {
        if !releases.is_empty() {
            sqlx::query(
                "update order_lines l set released = r.released
                 from unnest($1::text[], $2::int[], $3::bigint[]) as r(order_id, line_no, released)
                 where l.order_id = r.order_id and l.line_no = r.line_no",
            )
            .bind(releases.iter().map(|r| r.0.clone()).collect::<Vec<_>>())
            .bind(releases.iter().map(|r| r.1).collect::<Vec<_>>())
            .bind(releases.iter().map(|r| r.2).collect::<Vec<_>>())
            .execute(&mut *self.tx)
            .await?;
        }
        for Announced {
            id: allocation_id,
            order_id,
            cause,
            lines,
            ..
        } in std::mem::take(&mut self.allocations)
        {
            sqlx::query(
                "insert into allocations (allocation_id, order_id, cause, created_at) values ($1, $2, $3, $4)",
            )
            .bind(&allocation_id)
            .bind(&order_id)
            .bind(&cause)
            .bind(self.now)
            .execute(&mut *self.tx)
            .await?;
            self.insert_lines(
                "insert into allocation_lines (allocation_id, line_no, sku, quantity)
                 select $1, * from unnest($2::int[], $3::text[], $4::bigint[])",
                &allocation_id,
                &lines,
            )
            .await?;
        }
        for Announced {
            id: cancellation_id,
            order_id,
            cause,
            reason,
            lines,
        } in std::mem::take(&mut self.cancellations)
        {
            sqlx::query(
                "insert into allocation_cancellations (cancellation_id, order_id, cause, reason, created_at)
                 values ($1, $2, $3, $4, $5)",
            )
            .bind(&cancellation_id)
            .bind(&order_id)
            .bind(&cause)
            .bind(&reason)
            .bind(self.now)
            .execute(&mut *self.tx)
            .await?;
            self.insert_lines(
                "insert into allocation_cancellation_lines (cancellation_id, line_no, sku, quantity)
                 select $1, * from unnest($2::int[], $3::text[], $4::bigint[])",
                &cancellation_id,
                &lines,
            )
            .await?;
        }
        Ok(())
    }

    /// The (line, SKU, units) of an announcement, under its id.
    async fn insert_lines(
        &mut self,
        query: &'static str,
        id: &str,
        lines: &[(i32, String, i64)],
    ) -> Result<(), sqlx::Error> {
        sqlx::query(query)
            .bind(id)
            .bind(lines.iter().map(|l| l.0).collect::<Vec<_>>())
            .bind(lines.iter().map(|l| l.1.clone()).collect::<Vec<_>>())
            .bind(lines.iter().map(|l| l.2).collect::<Vec<_>>())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn emit_statuses(
        &mut self,
        statuses: &[(String, rules::Status)],
        lines: &BTreeMap<String, Vec<LineRow>>,
    ) -> Result<(), sqlx::Error> {
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
            self.outbox.push(events::order_status(
                self.subjects,
                order_id,
                *status,
                versions[order_id],
                &lines[order_id]
                    .iter()
                    .map(LineRow::state)
                    .collect::<Vec<_>>(),
                self.now,
            ));
        }
        Ok(())
    }

    pub(super) async fn emit_reorders(&mut self) -> Result<(), sqlx::Error> {
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
}
