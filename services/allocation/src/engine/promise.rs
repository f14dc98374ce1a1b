//! Delivery promises: a SKU's ETAs are re-projected when its queue or supply moves, or when a timer falls due
//! (a supply date passing, an estimate falling due); the customer is told of real moves, coalesced, and asked
//! to consent when a date slips too far past the first one promised.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use backorder_proto::v1::DelayAnswer;
use backorder_runtime::limits::add;
use chrono::{DateTime, Duration, Utc};

use super::cancel::Lost;
use super::{Appended, Applied, LineRow, Work};
use crate::eta::{self, Eta, Settings, Supply, Waiting};
use crate::rules;

#[derive(sqlx::FromRow)]
struct QueueRow {
    sku: String,
    order_id: String,
    line_no: i32,
    backordered: i64,
    eta: Option<DateTime<Utc>>,
    eta_estimated: bool,
    eta_late: bool,
    eta_told: Option<DateTime<Utc>>,
    promised_eta: Option<DateTime<Utc>>,
}

/// The last dated line of a SKU's queue and the first and last of its dates; `all_estimated`: the first is an
/// estimate, so all are (lines a purchase order covers come first).
#[derive(sqlx::FromRow)]
struct Tail {
    sku: String,
    priority: i32,
    placed_at: DateTime<Utc>,
    order_id: String,
    line_no: i32,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    all_estimated: bool,
}

#[derive(sqlx::FromRow)]
struct SupplyRow {
    sku: String,
    po_id: String,
    line_no: i32,
    expected_at: DateTime<Utc>,
    quantity_open: i64,
}

fn apart(a: DateTime<Utc>, b: DateTime<Utc>) -> Duration {
    (a - b).abs()
}

impl Work<'_> {
    /// Re-projects every SKU marked in this batch, in SKU order. The queues, supply and lead times of all of
    /// them are read in a few queries: a batch of orders may mark a thousand SKUs. A SKU that only got new
    /// backorders at the end of its queue, with no supply, needs no queue read at all (see `append_estimates`).
    pub(super) async fn project_etas(&mut self) -> Result<(), sqlx::Error> {
        let marked = std::mem::take(&mut self.eta_skus);
        let mut appended = std::mem::take(&mut self.appended);
        if marked.is_empty() {
            return Ok(());
        }
        let skus: Vec<String> = marked.keys().cloned().collect();
        // Locked already wherever the batch changed a SKU; this only guards a path that did not.
        self.lock_skus(skus.clone()).await?;
        let mut supplies: BTreeMap<String, Vec<SupplyRow>> = BTreeMap::new();
        let rows: Vec<SupplyRow> = sqlx::query_as(
            "select sku, po_id, line_no, expected_at, quantity_open from supply
             where sku = any($1) and quantity_open > 0 and not cancelled
             order by sku, expected_at, po_id, line_no",
        )
        .bind(&skus)
        .fetch_all(&mut *self.tx)
        .await?;
        for row in rows {
            supplies.entry(row.sku.clone()).or_default().push(row);
        }
        let lead_times: HashMap<String, i32> =
            sqlx::query_as("select sku, lead_time_days from skus where sku = any($1)")
                .bind(&skus)
                .fetch_all(&mut *self.tx)
                .await?
                .into_iter()
                .collect();
        let appending: Vec<String> = marked
            .iter()
            .filter(|(sku, m)| !m.full && !supplies.contains_key(*sku))
            .map(|(sku, _)| sku.clone())
            .collect();
        let tails = self.dated_tails(&appending).await?;

        let mut changed = Vec::new();
        let mut full = Vec::new();
        for (sku, marked) in marked {
            let settings = self.settings(lead_times.get(&sku).copied());
            if appending.contains(&sku) {
                let new = appended.remove(&sku).unwrap_or_default();
                if let Some(dated) =
                    self.append_estimates(&sku, &marked.cause, tails.get(&sku), new, &settings)
                {
                    changed.extend(dated);
                    continue;
                }
            }
            full.push((sku, marked.cause, settings));
        }
        if !full.is_empty() {
            let skus: Vec<&String> = full.iter().map(|f| &f.0).collect();
            let mut queues: BTreeMap<String, Vec<QueueRow>> = BTreeMap::new();
            let rows: Vec<QueueRow> = sqlx::query_as(
                "select sku, order_id, line_no, backordered, eta, eta_estimated, eta_late, eta_told,
                        promised_eta
                 from order_lines where sku = any($1) and backordered > 0
                 order by sku, priority desc, placed_at, order_id, line_no",
            )
            .bind(&skus)
            .fetch_all(&mut *self.tx)
            .await?;
            for row in rows {
                queues.entry(row.sku.clone()).or_default().push(row);
            }
            for (sku, cause, settings) in full {
                let queue = queues.remove(&sku).unwrap_or_default();
                let supply = supplies.remove(&sku).unwrap_or_default();
                changed.extend(
                    self.project(&sku, &cause, queue, &supply, &settings)
                        .await?,
                );
            }
        }
        if !changed.is_empty() {
            sqlx::query(
                "update order_lines l set eta = n.eta, eta_estimated = n.estimated, eta_late = n.late
                 from unnest($1::text[], $2::int[], $3::timestamptz[], $4::bool[], $5::bool[])
                      as n(order_id, line_no, eta, estimated, late)
                 where l.order_id = n.order_id and l.line_no = n.line_no",
            )
            .bind(changed.iter().map(|c| c.0.clone()).collect::<Vec<_>>())
            .bind(changed.iter().map(|c| c.1).collect::<Vec<_>>())
            .bind(changed.iter().map(|c| c.2.at).collect::<Vec<_>>())
            .bind(changed.iter().map(|c| c.2.estimated).collect::<Vec<_>>())
            .bind(changed.iter().map(|c| c.2.late).collect::<Vec<_>>())
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(())
    }

    fn settings(&self, lead_time_days: Option<i32>) -> Settings {
        self.policy.settings(lead_time_days)
    }

    /// Per SKU, the last dated line of its queue and the first and last of its dates. Dates never decrease
    /// along a queue, so the head and the tail of the dated lines tell it: two index lookups per SKU.
    async fn dated_tails(&mut self, skus: &[String]) -> Result<HashMap<String, Tail>, sqlx::Error> {
        if skus.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<Tail> = sqlx::query_as(
            "select s.sku, t.priority, t.placed_at, t.order_id, t.line_no, h.eta as first, t.eta as last,
                    h.eta_estimated as all_estimated
             from unnest($1::text[]) as s(sku)
             cross join lateral (
                 select priority, placed_at, order_id, line_no, eta from order_lines l
                 where l.sku = s.sku and l.backordered > 0 and l.eta is not null
                 order by priority, placed_at desc, order_id desc, line_no desc limit 1) t
             cross join lateral (
                 select eta, eta_estimated from order_lines l
                 where l.sku = s.sku and l.backordered > 0 and l.eta is not null
                 order by priority desc, placed_at, order_id, line_no limit 1) h",
        )
        .bind(skus)
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(rows.into_iter().map(|t| (t.sku.clone(), t)).collect())
    }

    /// Dates the new backorders of a SKU without reading its queue, when that gives what a full projection
    /// would: no supply, every line already dated is an estimate still ahead (so it is kept), and the new lines
    /// queue behind all of them (so they move nobody). They get a fresh estimate, not earlier than the last
    /// date in the queue. `None` when the conditions do not hold.
    fn append_estimates(
        &mut self,
        sku: &str,
        cause: &str,
        tail: Option<&Tail>,
        mut new: Vec<Appended>,
        settings: &Settings,
    ) -> Option<Vec<(String, i32, Eta)>> {
        let queue_key = |priority: i32, placed_at, order_id: &str, line_no: i32| {
            (
                -i64::from(priority),
                placed_at,
                order_id.to_string(),
                line_no,
            )
        };
        if let Some(tail) = tail {
            let tail_key = queue_key(tail.priority, tail.placed_at, &tail.order_id, tail.line_no);
            let behind = new
                .iter()
                .all(|n| queue_key(n.priority, n.placed_at, &n.order_id, n.line_no) > tail_key);
            if !(tail.all_estimated && tail.first > self.now && behind) {
                return None;
            }
        }
        new.sort_by_key(|n| queue_key(n.priority, n.placed_at, &n.order_id, n.line_no));
        let fresh = add(add(self.now, settings.lead_time), settings.handling);
        let at = tail.map_or(fresh, |t| fresh.max(t.last));
        let eta = Eta {
            at,
            estimated: true,
            late: false,
            source: None,
        };
        let check = tail.map_or(at, |t| t.first.min(at));
        self.stock_mut(sku).eta_check_at = Some(check);
        let mut dated = Vec::with_capacity(new.len());
        for line in new {
            let detail = explain(&eta, &[], settings);
            self.record(
                &line.order_id,
                line.line_no,
                sku,
                "eta",
                line.units,
                cause,
                detail,
            );
            dated.push((line.order_id, line.line_no, eta.clone()));
        }
        Some(dated)
    }

    /// Projects one SKU; returns its lines whose date changed, and remembers which orders must hear of it.
    async fn project(
        &mut self,
        sku: &str,
        cause: &str,
        queue: Vec<QueueRow>,
        supply: &[SupplyRow],
        settings: &Settings,
    ) -> Result<Vec<(String, i32, Eta)>, sqlx::Error> {
        let supply: Vec<Supply> = supply
            .iter()
            .map(|s| Supply {
                id: format!("{}/{}", s.po_id, s.line_no),
                expected_at: s.expected_at,
                open: s.quantity_open,
            })
            .collect();
        let waiting: Vec<Waiting> = queue
            .iter()
            .map(|q| Waiting {
                units: q.backordered,
                current: q.eta.map(|at| Eta {
                    at,
                    estimated: q.eta_estimated,
                    late: q.eta_late,
                    source: None,
                }),
            })
            .collect();
        let etas = eta::project(self.now, &waiting, &supply, settings);
        self.stock_mut(sku).eta_check_at = eta::next_check(self.now, &supply, &etas, settings);

        let threshold = self.policy.eta_threshold;
        let mut changed = Vec::new();
        let mut orders = BTreeSet::new();
        for (row, new) in queue.iter().zip(etas) {
            let flags = (new.estimated, new.late) != (row.eta_estimated, row.eta_late);
            if row.eta == Some(new.at) && !flags {
                continue;
            }
            if row
                .eta
                .is_some_and(|old| flags || apart(new.at, old) >= threshold)
            {
                self.eta_moved.insert(row.order_id.clone());
                orders.insert(row.order_id.clone());
            }
            if row
                .eta_told
                .is_some_and(|told| apart(new.at, told) >= threshold)
            {
                self.eta_owed.insert(row.order_id.clone());
                orders.insert(row.order_id.clone());
            }
            if row
                .promised_eta
                .is_some_and(|promised| new.at > add(promised, self.policy.consent_after))
            {
                self.consent_needed.insert(row.order_id.clone());
                orders.insert(row.order_id.clone());
            }
            let detail = explain(&new, &supply, settings);
            self.record(
                &row.order_id,
                row.line_no,
                sku,
                "eta",
                row.backordered,
                cause,
                detail,
            );
            changed.push((row.order_id.clone(), row.line_no, new));
        }
        if !changed.is_empty() {
            tracing::debug!(sku, lines = changed.len(), "ETAs re-projected");
        }
        let orders: Vec<String> = orders.into_iter().collect();
        self.touch(&orders, cause).await?;
        Ok(changed)
    }

    /// The timers due at `self.now`: SKUs to re-project, consent deadlines passed, ETA notices owed.
    pub(super) async fn fire_timers(&mut self) -> Result<(), sqlx::Error> {
        let skus: Vec<String> =
            sqlx::query_scalar("select sku from stock where eta_check_at <= $1 order by sku")
                .bind(self.now)
                .fetch_all(&mut *self.tx)
                .await?;
        let candidates: Vec<String> = sqlx::query_scalar(
            "select order_id from orders where consent_due <= $1 order by order_id",
        )
        .bind(self.now)
        .fetch_all(&mut *self.tx)
        .await?;
        let owed: Vec<String> = sqlx::query_scalar(
            "select order_id from orders where eta_notify_due <= $1 order by order_id",
        )
        .bind(self.now)
        .fetch_all(&mut *self.tx)
        .await?;
        let mut locks: BTreeSet<String> = skus.iter().cloned().collect();
        locks.extend(self.skus_of(&candidates).await?);
        self.lock_skus(locks.into_iter().collect()).await?;
        // Asked again with the order rows locked: an answer that committed since the first look cleared the
        // deadline, and the customer's word wins over the clock.
        let expired: Vec<String> = sqlx::query_scalar(
            "select order_id from orders where order_id = any($1) and consent_due <= $2
             order by order_id for update",
        )
        .bind(&candidates)
        .bind(self.now)
        .fetch_all(&mut *self.tx)
        .await?;
        let cause = format!("clock/{}", self.now.to_rfc3339());
        for sku in skus {
            self.mark_eta(&sku, &cause, true);
        }
        for order_id in expired {
            self.consent_expired(&order_id, &cause).await?;
        }
        self.touch(&owed, &cause).await
    }

    pub(super) async fn answer_delay(
        &mut self,
        answer: &DelayAnswer,
        cause: &str,
    ) -> Result<Applied, sqlx::Error> {
        let order_id = &answer.order_id;
        // Locked (after the stock rows, see the engine's lock order): the deadline's timer cannot act on the
        // order between this look and the commit.
        let awaited: Option<DateTime<Utc>> = loop {
            let awaited: Option<Option<DateTime<Utc>>> =
                sqlx::query_scalar("select consent_due from orders where order_id = $1 for update")
                    .bind(order_id)
                    .fetch_optional(&mut *self.tx)
                    .await?;
            if let Some(awaited) = awaited {
                break awaited;
            }
            // The answer overtook its order (a customer answering that fast is unlikely, an OMS replaying
            // its outbox is not): kept until the order comes, or judged now if it came meanwhile.
            let payload = prost::Message::encode_to_vec(answer);
            if self
                .keep_for_order(order_id, cause, "delay-answer", payload, &answer.answer_id)
                .await?
            {
                return Ok(Applied::Done);
            }
        };
        if awaited.is_none() {
            return Ok(Applied::Refused(format!(
                "delay answer {}: no consent to a delay is awaited for order {order_id} \
                 (never asked, already answered, or the deadline passed)",
                answer.answer_id
            )));
        }
        if answer.agree {
            self.accept_delay(order_id, "the customer agreed to the new dates", cause)
                .await?;
        } else {
            self.cancel_waiting(
                order_id,
                "cancelled: the customer declined the delay",
                cause,
            )
            .await?;
        }
        Ok(Applied::Done)
    }

    /// No answer by the deadline: cancel what waits, or keep it, as configured.
    async fn consent_expired(&mut self, order_id: &str, cause: &str) -> Result<(), sqlx::Error> {
        if self.policy.cancel_without_consent {
            let reason = "cancelled: no answer to the delay notice by its deadline";
            self.cancel_waiting(order_id, reason, cause).await
        } else {
            let reason = "kept: no answer to the delay notice by its deadline";
            self.accept_delay(order_id, reason, cause).await
        }
    }

    /// The current dates become the ones promised: a further slip is measured from them.
    async fn accept_delay(
        &mut self,
        order_id: &str,
        reason: &str,
        cause: &str,
    ) -> Result<(), sqlx::Error> {
        let lines = self.lines_of(order_id).await?;
        self.lock_skus_of(&lines).await?;
        self.touch(&[order_id.to_string()], cause).await?;
        for line in lines.iter().filter(|l| l.backordered > 0) {
            let detail = format!("{reason}; promised {}", date(line.eta));
            self.record(
                order_id,
                line.line_no,
                &line.sku,
                "delay agreed",
                line.backordered,
                cause,
                detail,
            );
        }
        sqlx::query(
            "update order_lines set promised_eta = eta, eta_told = eta
             where order_id = $1 and backordered > 0",
        )
        .bind(order_id)
        .execute(&mut *self.tx)
        .await?;
        self.consent_settled.insert(order_id.to_string());
        Ok(())
    }

    /// Cancels every backordered unit of the order, lost for want of consent; what is allocated stays.
    async fn cancel_waiting(
        &mut self,
        order_id: &str,
        reason: &str,
        cause: &str,
    ) -> Result<(), sqlx::Error> {
        let lines = self.lines_of(order_id).await?;
        // Touched even when nothing waits any more (filled since the question): the order's status clears
        // the question.
        self.touch(&[order_id.to_string()], cause).await?;
        let units: BTreeMap<i32, rules::LineUnits> =
            lines.iter().map(|l| (l.line_no, l.units())).collect();
        let waiting: Vec<(i32, i64)> = lines
            .iter()
            .filter(|l| l.backordered > 0)
            .map(|l| (l.line_no, l.backordered))
            .collect();
        if !waiting.is_empty() {
            let plan = rules::plan_cancel(&units, &waiting)
                .expect("backordered units can always be cancelled");
            self.cancel_units(order_id, &lines, &plan, reason, Lost::NoConsent, cause)
                .await?;
        }
        self.consent_settled.insert(order_id.to_string());
        Ok(())
    }
}

fn date(at: Option<DateTime<Utc>>) -> String {
    at.map_or("no date".into(), |at| {
        at.format("%Y-%m-%d %H:%M").to_string()
    })
}

/// Why a line has the ETA it has, for the audit trail.
fn explain(eta: &Eta, supply: &[Supply], settings: &Settings) -> String {
    let when = date(Some(eta.at));
    match eta.source.map(|i| &supply[i]) {
        Some(po) if eta.late => format!(
            "ETA {when}, late: {} was due {} and has not arrived",
            po.id,
            date(Some(po.expected_at))
        ),
        Some(po) => format!(
            "ETA {when}: {} expected {} plus {} h handling",
            po.id,
            date(Some(po.expected_at)),
            settings.handling.num_hours()
        ),
        None => format!(
            "ETA {when}, estimated: no purchase order covers the line; lead time {} days",
            settings.lead_time.num_days()
        ),
    }
}

/// The lines of `lines` the customer should hear a new date for: waiting, told a date, now off by `threshold`.
pub(super) fn off_by(lines: &[LineRow], threshold: Duration) -> Vec<bool> {
    lines
        .iter()
        .map(|l| {
            l.backordered > 0
                && matches!((l.eta, l.eta_told), (Some(eta), Some(told)) if apart(eta, told) >= threshold)
        })
        .collect()
}
