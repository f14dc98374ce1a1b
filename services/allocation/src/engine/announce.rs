//! The end of a batch: per changed order, release to the WMS what it may pick (or withdraw what it may no
//! longer), tell the customer what changed (and a date change owed, or a delay that needs consent), and send
//! the OMS the new status; per SKU that got new backorders or supply, one reorder event.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use backorder_proto::v1::{Customer, ShipPolicy, customer_event::Kind};
use backorder_runtime::limits::{add, sub};
use chrono::{DateTime, Utc};

use super::promise::off_by;
use super::{Announced, LineRow, Work};
use crate::events::{self, LineState, StockFigures};
use crate::rules::{self, LineView, Notice};

#[derive(sqlx::FromRow)]
struct OrderRow {
    order_id: String,
    customer_id: String,
    email: String,
    phone: String,
    locale: String,
    time_zone: String,
    ship_policy: i16,
    eta_notify_due: Option<DateTime<Utc>>,
    eta_notified_at: Option<DateTime<Utc>>,
    consent_due: Option<DateTime<Utc>>,
}

/// The most open supply a SKU's reorder figures show: far beyond any real one (10^9 units a PO line), far
/// enough from `i64::MAX` that the shortage (backordered - available - inbound) cannot overflow.
const MAX_INBOUND: i64 = i64::MAX / 4;

/// A line's new promise: the date last told and the date first promised.
type Promise = (String, i32, Option<DateTime<Utc>>, Option<DateTime<Utc>>);

impl OrderRow {
    fn customer(&self) -> Customer {
        Customer {
            id: self.customer_id.clone(),
            email: self.email.clone(),
            phone: self.phone.clone(),
            locale: self.locale.clone(),
            time_zone: self.time_zone.clone(),
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
        let mut orders: Vec<OrderRow> = sqlx::query_as(
            "select order_id, customer_id, email, phone, locale, time_zone, ship_policy, eta_notify_due, eta_notified_at,
                    consent_due
             from orders where order_id = any($1) order by order_id for update",
        )
        .bind(&order_ids)
        .fetch_all(&mut *self.tx)
        .await?;
        // A line of these orders on a SKU this batch did not lock may be changing in another transaction (two
        // instances filling two SKUs of one ship-complete order). That transaction gets here only after this one
        // commits, since the order rows are locked first, and then reads both changes and announces the rest.
        let rows = self.lines_of_orders(&order_ids).await?;
        let mut after: BTreeMap<String, Vec<LineRow>> = BTreeMap::new();
        for row in rows {
            after.entry(row.order_id.clone()).or_default().push(row);
        }

        let mut releases = Vec::new();
        let mut promises = Vec::new();
        let mut statuses = Vec::new();
        for order in &mut orders {
            let lines = after.get_mut(&order.order_id).expect("orders have lines");
            releases.extend(self.release(order, lines));
            let told = self.notify(order, lines);
            promises.extend(self.keep_promises(order, lines, told));
            let units: Vec<rules::LineUnits> = lines.iter().map(LineRow::units).collect();
            let preorders_only = lines.iter().all(|l| l.backordered == 0 || l.preorder);
            statuses.push((
                order.order_id.clone(),
                rules::order_status(&units, preorders_only),
            ));
        }
        self.write_releases(&releases).await?;
        self.write_promises(&promises).await?;
        self.emit_statuses(&statuses, &after, &orders).await
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

    /// One customer event per kind of change the order went through in this batch. Returns the lines whose
    /// date the customer is now told (they are newly waiting).
    fn notify(&mut self, order: &OrderRow, lines: &mut [LineRow]) -> Vec<bool> {
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
        let mut told = vec![false; lines.len()];
        for (notice, units) in rules::notices(&before, &after) {
            if matches!(notice, Notice::Backordered | Notice::Preordered) {
                for ((line, told), units) in lines.iter_mut().zip(&mut told).zip(&units) {
                    if *units > 0 {
                        *told = promise(line);
                    }
                }
            }
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
            self.emit_for(
                &order.order_id,
                events::customer_event(
                    self.subjects,
                    kind,
                    &order.order_id,
                    &customer,
                    &event_lines,
                    None,
                    self.now,
                ),
            );
        }
        told
    }

    /// Asks for the customer's consent when a date slipped too far past the first one promised; otherwise
    /// sends an owed ETA_CHANGED once the order's coalescing interval allows. Returns the lines' new promises.
    fn keep_promises(
        &mut self,
        order: &mut OrderRow,
        lines: &mut [LineRow],
        mut told: Vec<bool>,
    ) -> Vec<Promise> {
        let id = order.order_id.clone();
        let settled = self.consent_settled.contains(&id);
        if settled {
            order.consent_due = None;
        }
        let limit = self.policy.consent_after;
        let too_late: Vec<bool> = lines
            .iter()
            .map(|l| {
                l.backordered > 0
                    && matches!((l.eta, l.promised_eta), (Some(eta), Some(first)) if eta > add(first, limit))
            })
            .collect();
        let customer = order.customer();
        if self.consent_needed.contains(&id)
            && order.consent_due.is_none()
            && !settled
            && too_late.contains(&true)
        {
            let respond_by = add(self.now, self.policy.consent_wait);
            order.consent_due = Some(respond_by);
            order.eta_notify_due = None;
            for ((line, told), late) in lines.iter_mut().zip(&mut told).zip(&too_late) {
                *told |= *late && promise(line);
            }
            let event_lines: Vec<(LineState, i64)> = lines
                .iter()
                .zip(&too_late)
                .map(|(l, late)| (l.state(), if *late { l.backordered } else { 0 }))
                .collect();
            self.emit_for(
                &id,
                events::customer_event(
                    self.subjects,
                    Kind::DelayConsentRequired,
                    &id,
                    &customer,
                    &event_lines,
                    Some(respond_by),
                    self.now,
                ),
            );
            tracing::info!(order_id = %id, %respond_by, "delay consent asked");
        } else {
            if self.eta_owed.contains(&id) && order.eta_notify_due.is_none() {
                let earliest = order
                    .eta_notified_at
                    .map_or(self.now, |last| add(last, self.policy.eta_interval));
                order.eta_notify_due = Some(earliest.max(self.now));
            }
            if order.eta_notify_due.is_some_and(|due| due <= self.now) {
                order.eta_notify_due = None;
                let off = off_by(lines, self.policy.eta_threshold);
                if off.contains(&true) {
                    order.eta_notified_at = Some(self.now);
                    let event_lines: Vec<(LineState, i64)> = lines
                        .iter()
                        .zip(&off)
                        .map(|(l, off)| (l.state(), if *off { l.backordered } else { 0 }))
                        .collect();
                    self.emit_for(
                        &id,
                        events::customer_event(
                            self.subjects,
                            Kind::EtaChanged,
                            &id,
                            &customer,
                            &event_lines,
                            None,
                            self.now,
                        ),
                    );
                    for ((line, told), off) in lines.iter_mut().zip(&mut told).zip(&off) {
                        *told |= *off && promise(line);
                    }
                }
            }
        }
        lines
            .iter()
            .zip(told)
            .filter(|(_, told)| *told)
            .map(|(l, _)| (id.clone(), l.line_no, l.eta_told, l.promised_eta))
            .collect()
    }

    async fn write_promises(&mut self, promises: &[Promise]) -> Result<(), sqlx::Error> {
        if promises.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "update order_lines l set eta_told = p.told, promised_eta = p.promised
             from unnest($1::text[], $2::int[], $3::timestamptz[], $4::timestamptz[])
                  as p(order_id, line_no, told, promised)
             where l.order_id = p.order_id and l.line_no = p.line_no",
        )
        .bind(promises.iter().map(|p| p.0.clone()).collect::<Vec<_>>())
        .bind(promises.iter().map(|p| p.1).collect::<Vec<_>>())
        .bind(promises.iter().map(|p| p.2).collect::<Vec<_>>())
        .bind(promises.iter().map(|p| p.3).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
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
        let allocations = std::mem::take(&mut self.allocations);
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
        let cancellations = std::mem::take(&mut self.cancellations);
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

    /// Stores each order's new status and promise timers, and emits its status. `statuses` and `orders` are
    /// in the same order.
    async fn emit_statuses(
        &mut self,
        statuses: &[(String, rules::Status)],
        lines: &BTreeMap<String, Vec<LineRow>>,
        orders: &[OrderRow],
    ) -> Result<(), sqlx::Error> {
        let versions: Vec<(String, i64)> = sqlx::query_as(
            "update orders o set status = s.status, version = o.version + 1, updated_at = $3,
                                 eta_notify_due = s.notify_due, eta_notified_at = s.notified_at,
                                 consent_due = s.consent_due
             from unnest($1::text[], $2::text[], $4::timestamptz[], $5::timestamptz[], $6::timestamptz[])
                  as s(order_id, status, notify_due, notified_at, consent_due)
             where o.order_id = s.order_id
             returning o.order_id, o.version",
        )
        .bind(statuses.iter().map(|s| s.0.clone()).collect::<Vec<_>>())
        .bind(statuses.iter().map(|s| s.1.as_str()).collect::<Vec<_>>())
        .bind(self.now)
        .bind(orders.iter().map(|o| o.eta_notify_due).collect::<Vec<_>>())
        .bind(orders.iter().map(|o| o.eta_notified_at).collect::<Vec<_>>())
        .bind(orders.iter().map(|o| o.consent_due).collect::<Vec<_>>())
        .fetch_all(&mut *self.tx)
        .await?;
        let versions: HashMap<String, i64> = versions.into_iter().collect();
        let consent: HashMap<&str, Option<DateTime<Utc>>> = orders
            .iter()
            .map(|o| (o.order_id.as_str(), o.consent_due))
            .collect();
        for (order_id, status) in statuses {
            self.emit_for(
                order_id,
                events::order_status(
                    self.subjects,
                    order_id,
                    *status,
                    versions[order_id],
                    &lines[order_id]
                        .iter()
                        .map(LineRow::state)
                        .collect::<Vec<_>>(),
                    consent[order_id.as_str()],
                    self.now,
                ),
            );
        }
        Ok(())
    }

    /// One ReorderNeeded per SKU that got new backorders or supply and is short, or whose supply answered
    /// purchase requests (so replenishment-trigger closes them even when nothing is short any more).
    pub(super) async fn emit_reorders(&mut self) -> Result<(), sqlx::Error> {
        // Every SKU with answers also had its supply change, so it is among the short_skus' stock rows.
        let skus: Vec<String> = self
            .short_skus
            .iter()
            .chain(self.answers.keys())
            .cloned()
            .collect::<BTreeSet<String>>()
            .into_iter()
            .collect();
        if skus.is_empty() {
            return Ok(());
        }
        // The sum is numeric, clamped before it becomes a bigint: with the bounds on a PO line it cannot
        // exceed one, but an overflow here would fail every batch touching the SKU, and the shortage
        // arithmetic on the figure stays far from i64's edge.
        let inbound: HashMap<String, i64> = sqlx::query_as(
            "select sku, least(sum(quantity_open), $2)::bigint from supply
             where sku = any($1) and quantity_open > 0 and not cancelled group by sku",
        )
        .bind(&skus)
        .bind(MAX_INBOUND)
        .fetch_all(&mut *self.tx)
        .await?
        .into_iter()
        .collect();
        // Who waits, and the earliest date promised on units no purchase order covers (dated by estimate).
        let waiting: HashMap<String, (i64, Option<DateTime<Utc>>)> = sqlx::query_as(
            "select sku, count(distinct order_id)::bigint,
                    min(coalesce(promised_eta, eta)) filter (where eta_estimated)
             from order_lines where sku = any($1) and backordered > 0 group by sku",
        )
        .bind(&skus)
        .fetch_all(&mut *self.tx)
        .await?
        .into_iter()
        .map(|(sku, orders, promised)| (sku, (orders, promised)))
        .collect();
        for sku in skus {
            let stock = self.stock[&sku];
            let figures = StockFigures {
                backordered: stock.backordered,
                on_hand: stock.on_hand,
                available: stock.available(),
                inbound: inbound.get(&sku).copied().unwrap_or(0),
            };
            let short =
                rules::shortage(figures.backordered, figures.available, figures.inbound) > 0;
            let answers = self.answers.remove(&sku).unwrap_or_default();
            let answered = !answers.requests.is_empty() || answers.added > 0;
            if !short && !answered {
                continue;
            }
            let (orders_waiting, promised) = waiting.get(&sku).copied().unwrap_or((0, None));
            let demand = events::Demand {
                orders_waiting,
                needed_by: promised.map(|at| sub(at, self.policy.handling)),
                answered_requests: answers.requests,
                supply_added: answers.added,
            };
            self.emit(
                None,
                events::reorder_needed(self.subjects, &sku, &figures, &demand, self.now),
            );
        }
        Ok(())
    }
}

/// The customer is told the line's date now: it becomes the date last told, and the first promised if none was.
/// False for a line without a date.
fn promise(line: &mut LineRow) -> bool {
    if line.eta.is_none() {
        return false;
    }
    line.eta_told = line.eta;
    line.promised_eta = line.promised_eta.or(line.eta);
    true
}
