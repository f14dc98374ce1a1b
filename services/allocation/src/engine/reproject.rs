//! Re-projection: a SKU's ETAs are projected again ([`eta::project`]) when its queue or supply moved in the
//! batch, or when a timer falls due (a supply date passing, an estimate falling due). What a line's new date
//! means for its order is [`promises::redated`]; the orders it concerns join the order ledger.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use backorder_runtime::limits::add;
use chrono::{DateTime, Utc};

use super::Work;
use super::ledger::{Appended, Marked};
use super::queues::{Lines, Queue, QueueRow};
use crate::decide::promises::{self, Dated};
use crate::eta::{self, Eta, Settings, Supply, Waiting};

/// A waiting line as the queues of several SKUs are read together.
#[derive(sqlx::FromRow)]
struct QueueRead {
    sku: String,
    #[sqlx(flatten)]
    row: QueueRow,
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

impl Work<'_> {
    /// Re-projects every SKU marked in this batch, in SKU order. The queues, supply and lead times of all of
    /// them are read in a few queries: a batch of orders may mark a thousand SKUs. A SKU that only got new
    /// backorders at the end of its queue, with no supply, needs no queue read at all (see `append_estimates`).
    pub(super) async fn project_etas(
        &mut self,
        marked: BTreeMap<String, Marked>,
        mut appended: BTreeMap<String, Vec<Appended>>,
    ) -> Result<(), sqlx::Error> {
        if marked.is_empty() {
            return Ok(());
        }
        let skus: Vec<String> = marked.keys().cloned().collect();
        // Locked already wherever the batch changed a SKU; this only guards a path that did not.
        self.lock_skus(skus.clone()).await?;
        let mut supplies = self.open_supplies(&skus).await?;
        let lead_times = self.lead_times(&skus).await?;
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
                    self.lines_written([sku.clone()]);
                    changed.extend(dated);
                    continue;
                }
            }
            full.push((sku, marked.cause, settings));
        }
        if !full.is_empty() {
            let skus: Vec<&String> = full.iter().map(|f| &f.0).collect();
            let mut queues = self.waiting_queues(&skus).await?;
            // The orders each SKU's new dates concern, locked and read once for every SKU.
            let mut concerned: Vec<(String, String)> = Vec::new();
            for (sku, cause, settings) in full {
                let queue = queues.remove(&sku).unwrap_or_default();
                let supply = supplies.remove(&sku).unwrap_or_default();
                let (dated, orders) = self.project(&sku, &cause, &queue, &supply, &settings);
                if !dated.is_empty() {
                    self.lines_written([sku.clone()]);
                }
                changed.extend(dated);
                concerned.extend(orders.into_iter().map(|order| (order, cause.clone())));
            }
            self.touch_each(&concerned).await?;
        }
        self.write_etas(&changed).await
    }

    /// Per SKU, its open purchase-order lines in the order they are expected.
    async fn open_supplies(
        &mut self,
        skus: &[String],
    ) -> Result<BTreeMap<String, Vec<SupplyRow>>, sqlx::Error> {
        let mut supplies: BTreeMap<String, Vec<SupplyRow>> = BTreeMap::new();
        let rows: Vec<SupplyRow> = sqlx::query_as(
            "select sku, po_id, line_no, expected_at, quantity_open from supply
             where sku = any($1) and quantity_open > 0 and not cancelled
             order by sku, expected_at, po_id, line_no",
        )
        .bind(skus)
        .fetch_all(&mut *self.tx)
        .await?;
        for row in rows {
            supplies.entry(row.sku.clone()).or_default().push(row);
        }
        Ok(supplies)
    }

    /// The lead times of the SKUs the product master knows.
    async fn lead_times(&mut self, skus: &[String]) -> Result<HashMap<String, i32>, sqlx::Error> {
        Ok(
            sqlx::query_as("select sku, lead_time_days from skus where sku = any($1)")
                .bind(skus)
                .fetch_all(&mut *self.tx)
                .await?
                .into_iter()
                .collect(),
        )
    }

    /// Per SKU, its waiting lines in queue order: kept from an earlier batch where the SKU's stock row is still
    /// at the version they were read at ([`queues`](super::queues)), read in one query for the others. Each is
    /// remembered for the end of the batch, which keeps those the batch did not write.
    async fn waiting_queues(
        &mut self,
        skus: &[&String],
    ) -> Result<BTreeMap<String, Queue>, sqlx::Error> {
        let mut queues: BTreeMap<String, Queue> = BTreeMap::new();
        let mut missing: Vec<&String> = Vec::new();
        for sku in skus {
            // What is kept is the stored queue at the version the row was locked at: not what this batch
            // wrote since.
            let kept = if self.written.contains(*sku) {
                None
            } else {
                self.cache.get(sku, self.stock[*sku].queue_version)
            };
            match kept {
                Some(queue) => {
                    queues.insert(sku.to_string(), queue);
                }
                None => missing.push(sku),
            }
        }
        if cfg!(debug_assertions) {
            let kept: Vec<&String> = queues.keys().collect();
            let read = self.read_queues(&kept).await?;
            for (sku, queue) in &queues {
                let stored = read.get(sku).map_or(&[][..], |q| &q[..]);
                assert_eq!(
                    &queue[..],
                    stored,
                    "the kept queue of {sku} differs from the stored one at the same version"
                );
            }
        }
        let read = self.read_queues(&missing).await?;
        for sku in missing {
            queues.insert(sku.clone(), read.get(sku).cloned().unwrap_or_default());
        }
        for (sku, queue) in &queues {
            let version = self.stock[sku].queue_version;
            self.read.insert(sku.clone(), (version, queue.clone()));
        }
        Ok(queues)
    }

    /// The stored waiting lines of `skus`, per SKU in queue order; a SKU nobody waits on is absent.
    async fn read_queues(
        &mut self,
        skus: &[&String],
    ) -> Result<BTreeMap<String, Queue>, sqlx::Error> {
        if skus.is_empty() {
            return Ok(BTreeMap::new());
        }
        let rows: Vec<QueueRead> = sqlx::query_as(
            "select sku, order_id, line_no, backordered, eta, eta_estimated, eta_late, eta_told,
                    promised_eta
             from order_lines where sku = any($1) and backordered > 0
             order by sku, priority desc, placed_at, order_id, line_no",
        )
        .bind(skus)
        .fetch_all(&mut *self.tx)
        .await?;
        let mut queues: BTreeMap<String, Vec<QueueRow>> = BTreeMap::new();
        for QueueRead { sku, row } in rows {
            queues.entry(sku).or_default().push(row);
        }
        Ok(queues
            .into_iter()
            .map(|(sku, rows)| (sku, Lines::new(rows)))
            .collect())
    }

    /// Stores the new dates of the lines whose date changed, in one statement.
    async fn write_etas(&mut self, changed: &[(String, i32, Eta)]) -> Result<(), sqlx::Error> {
        if changed.is_empty() {
            return Ok(());
        }
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

    /// Projects one SKU; returns its lines whose date changed and the orders that must hear of it.
    fn project(
        &mut self,
        sku: &str,
        cause: &str,
        queue: &[QueueRow],
        supply: &[SupplyRow],
        settings: &Settings,
    ) -> (Vec<(String, i32, Eta)>, BTreeSet<String>) {
        let supply: Vec<Supply> = supply
            .iter()
            .map(|s| Supply {
                id: format!("{}/{}", s.po_id, s.line_no),
                expected_at: s.expected_at,
                open: s.quantity_open,
            })
            .collect();
        let waiting: Vec<Waiting> = queue.iter().map(QueueRow::waiting).collect();
        let etas = eta::project(self.now, &waiting, &supply, settings);
        self.stock_mut(sku).eta_check_at = eta::next_check(self.now, &supply, &etas, settings);

        let rules = self.policy.promises();
        let mut changed = Vec::new();
        let mut orders = BTreeSet::new();
        for (row, new) in queue.iter().zip(etas) {
            let dated = Dated {
                at: new.at,
                estimated: new.estimated,
                late: new.late,
            };
            let Some(redated) = promises::redated(row.dated(), &row.dates(), dated, &rules) else {
                continue;
            };
            if redated.owed {
                self.orders.eta_owed.insert(row.order_id.clone());
            }
            if redated.consent_needed {
                self.orders.consent_needed.insert(row.order_id.clone());
            }
            if redated.concerns_order() {
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
        (changed, orders)
    }
}

pub(super) fn date(at: Option<DateTime<Utc>>) -> String {
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
