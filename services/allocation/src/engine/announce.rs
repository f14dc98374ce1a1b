//! The end of a batch, per changed order: release to the WMS what it may pick, or withdraw what it may no
//! longer ([`release`](super::release)); tell the customer what changed, and a date change owed or a delay
//! that needs consent ([`promises`]); send the OMS the new status.

use std::collections::{BTreeMap, HashMap};

use backorder_proto::v1::{Customer, customer_event::Kind};
use chrono::{DateTime, Utc};

use super::Work;
use super::lines::LineRow;
use super::release::ToWms;
use crate::decide::promises::{self, DateNotice, Dates, Found, Timers};
use crate::events::{self, LineState};
use crate::rules::{self, LineView, Notice};

#[derive(sqlx::FromRow)]
pub(super) struct OrderRow {
    pub order_id: String,
    pub customer_id: String,
    pub email: String,
    pub phone: String,
    pub locale: String,
    pub time_zone: String,
    pub ship_policy: i16,
    pub eta_notify_due: Option<DateTime<Utc>>,
    pub eta_notified_at: Option<DateTime<Utc>>,
    pub consent_due: Option<DateTime<Utc>>,
}

/// Orders announced together. A receipt filling 10,000 lines announces 10,000 orders, each with an allocation,
/// a customer event and a status: in rounds, their lines and events are not all held at once.
const ORDERS_PER_ROUND: usize = 1_000;

/// A line's new promise: the date last told and the date first promised.
type Promise = (String, i32, Option<DateTime<Utc>>, Option<DateTime<Utc>>);

impl OrderRow {
    fn timers(&self) -> Timers {
        Timers {
            notify_due: self.eta_notify_due,
            notified_at: self.eta_notified_at,
            consent_due: self.consent_due,
        }
    }

    fn set_timers(&mut self, timers: Timers) {
        self.eta_notify_due = timers.notify_due;
        self.eta_notified_at = timers.notified_at;
        self.consent_due = timers.consent_due;
    }

    pub fn customer(&self) -> Customer {
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
    /// Announces every order the batch changed, [`ORDERS_PER_ROUND`] at a time in order-id order, each round's
    /// events written to the outbox before the next round reads its orders. (The audit rows stay for the end:
    /// a receipt preview reads them after this phase.)
    pub(super) async fn announce(&mut self) -> Result<(), sqlx::Error> {
        let order_ids: Vec<String> = self.orders.before.keys().cloned().collect();
        for round in order_ids.chunks(ORDERS_PER_ROUND) {
            self.announce_orders(round).await?;
            self.write_outbox().await?;
        }
        Ok(())
    }

    async fn announce_orders(&mut self, order_ids: &[String]) -> Result<(), sqlx::Error> {
        // Order rows are the last locks taken, in order-id order (see the module comment).
        let mut orders: Vec<OrderRow> = sqlx::query_as(
            "select order_id, customer_id, email, phone, locale, time_zone, ship_policy, eta_notify_due, eta_notified_at,
                    consent_due
             from orders where order_id = any($1) order by order_id for update",
        )
        .bind(order_ids)
        .fetch_all(&mut *self.tx)
        .await?;
        // A line of these orders on a SKU this batch did not lock may be changing in another transaction (two
        // instances filling two SKUs of one ship-complete order). That transaction gets here only after this one
        // commits, since the order rows are locked first, and then reads both changes and announces the rest.
        let rows = self.lines_of_orders(order_ids).await?;
        let mut after: BTreeMap<String, Vec<LineRow>> = BTreeMap::new();
        for row in rows {
            after.entry(row.order_id.clone()).or_default().push(row);
        }

        let mut releases = Vec::new();
        let mut to_wms = ToWms::default();
        let mut promises = Vec::new();
        let mut statuses = Vec::new();
        for order in &mut orders {
            let lines = after.get_mut(&order.order_id).expect("orders have lines");
            releases.extend(self.release(order, lines, &mut to_wms));
            let told = self.notify(order, lines);
            promises.extend(self.keep_promises(order, lines, told));
            let units: Vec<rules::LineUnits> = lines.iter().map(LineRow::units).collect();
            let preorders_only = lines.iter().all(|l| l.backordered == 0 || l.preorder);
            statuses.push((
                order.order_id.clone(),
                rules::order_status(&units, preorders_only),
            ));
        }
        self.write_releases(&releases, to_wms).await?;
        self.write_promises(&promises).await?;
        self.emit_statuses(&statuses, &after, &orders).await
    }

    /// One customer event per kind of change the order went through in this batch. Returns the lines whose
    /// date the customer is now told (they are newly waiting).
    fn notify(&mut self, order: &OrderRow, lines: &mut [LineRow]) -> Vec<bool> {
        let before: HashMap<i32, LineView> = self.orders.before[&order.order_id]
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

    /// Asks for the customer's consent when a date slipped too far past the first one promised, or sends an
    /// owed ETA_CHANGED once the order's coalescing interval allows ([`promises::keep_promises`]). Returns the
    /// lines' new promises: those told a date now, by `told` (from [`notify`](Self::notify)) or the notice.
    fn keep_promises(
        &mut self,
        order: &mut OrderRow,
        lines: &mut [LineRow],
        mut told: Vec<bool>,
    ) -> Vec<Promise> {
        let id = order.order_id.clone();
        let found = Found {
            eta_owed: self.orders.eta_owed.contains(&id),
            consent_needed: self.orders.consent_needed.contains(&id),
            consent_settled: self.orders.consent_settled.contains(&id),
        };
        let dates: Vec<Dates> = lines.iter().map(LineRow::dates).collect();
        let decision = promises::keep_promises(
            order.timers(),
            &dates,
            found,
            &self.policy.promises(),
            self.now,
        );
        order.set_timers(decision.timers);
        if let Some(notice) = decision.notice {
            for ((line, told), named) in lines.iter_mut().zip(&mut told).zip(notice.lines()) {
                *told |= *named && promise(line);
            }
            self.emit_date_notice(order, lines, &notice);
        }
        lines
            .iter()
            .zip(told)
            .filter(|(_, told)| *told)
            .map(|(l, _)| (id.clone(), l.line_no, l.eta_told, l.promised_eta))
            .collect()
    }

    /// The customer event of a question or date notice, naming the waiting units of the lines it names.
    fn emit_date_notice(&mut self, order: &OrderRow, lines: &[LineRow], notice: &DateNotice) {
        let (kind, respond_by) = match notice {
            DateNotice::ConsentAsked { respond_by, .. } => {
                tracing::info!(order_id = %order.order_id, %respond_by, "delay consent asked");
                (Kind::DelayConsentRequired, Some(*respond_by))
            }
            DateNotice::EtaChanged { .. } => (Kind::EtaChanged, None),
        };
        let event_lines: Vec<(LineState, i64)> = lines
            .iter()
            .zip(notice.lines())
            .map(|(l, named)| (l.state(), if *named { l.backordered } else { 0 }))
            .collect();
        let event = events::customer_event(
            self.subjects,
            kind,
            &order.order_id,
            &order.customer(),
            &event_lines,
            respond_by,
            self.now,
        );
        self.emit_for(&order.order_id, event);
    }

    async fn write_promises(&mut self, promises: &[Promise]) -> Result<(), sqlx::Error> {
        if promises.is_empty() {
            return Ok(());
        }
        let written: Vec<String> = sqlx::query_scalar(
            "with written as (
                 update order_lines l set eta_told = p.told, promised_eta = p.promised
                 from unnest($1::text[], $2::int[], $3::timestamptz[], $4::timestamptz[])
                      as p(order_id, line_no, told, promised)
                 where l.order_id = p.order_id and l.line_no = p.line_no
                 returning l.sku)
             select distinct sku from written",
        )
        .bind(promises.iter().map(|p| p.0.clone()).collect::<Vec<_>>())
        .bind(promises.iter().map(|p| p.1).collect::<Vec<_>>())
        .bind(promises.iter().map(|p| p.2).collect::<Vec<_>>())
        .bind(promises.iter().map(|p| p.3).collect::<Vec<_>>())
        .fetch_all(&mut *self.tx)
        .await?;
        self.lines_written(written);
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
