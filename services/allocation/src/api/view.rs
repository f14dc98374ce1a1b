//! What the desk's replies share: a line's promise, its place in its SKU's queue and the supply that covers
//! it. Places are worked out the way the engine dates lines (`eta::project` over the queue in fill order,
//! `priority desc, placed_at, order_id, line_no`), so the purchase order a reply shows is the one the line's
//! ETA rests on. Everything is read in a few queries per request, whatever the number of lines.

use std::collections::{BTreeMap, HashMap};

use backorder_proto::v1::{Promise, QueuePlace, SupplyCover, order_status::Status};
use backorder_runtime::time::to_proto;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use crate::engine::Policy;
use crate::eta::{self, Eta, Settings, Supply, Waiting};

/// A line's dates as the store keeps them.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub(crate) struct Dates {
    pub eta: Option<DateTime<Utc>>,
    pub eta_estimated: bool,
    pub eta_late: bool,
    pub promised_eta: Option<DateTime<Utc>>,
}

/// One open purchase-order line of a SKU.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct SupplyLine {
    pub sku: String,
    pub po_id: String,
    pub line_no: i32,
    pub expected_at: DateTime<Utc>,
    pub quantity_open: i64,
}

/// Late against the first promise, by UTC day: the line still waits and either its ETA falls on a later day
/// than the one first promised, or that day has passed.
pub(crate) fn late(
    now: DateTime<Utc>,
    waiting: bool,
    eta: Option<DateTime<Utc>>,
    promised: Option<DateTime<Utc>>,
) -> bool {
    let Some(promised) = promised.map(|p| p.date_naive()) else {
        return false;
    };
    waiting && (eta.is_some_and(|eta| eta.date_naive() > promised) || now.date_naive() > promised)
}

/// `orders.status` holds the name of an `OrderStatus.Status` (`rules::Status::as_str`).
pub(crate) fn status(name: &str) -> Status {
    Status::from_str_name(name).unwrap_or(Status::Unspecified)
}

pub(crate) fn promise(now: DateTime<Utc>, waiting: bool, dates: &Dates) -> Promise {
    Promise {
        eta: dates.eta.map(to_proto),
        eta_estimated: dates.eta_estimated,
        eta_late: dates.eta_late,
        promised_eta: dates.promised_eta.map(to_proto),
        late: late(now, waiting, dates.eta, dates.promised_eta),
    }
}

/// A waiting line's place: 1-based `position`, the units served before it, the supply its last unit rests on.
pub(crate) fn place(position: usize, ahead: i64, source: Option<&SupplyLine>) -> QueuePlace {
    QueuePlace {
        position: position as u32,
        units_ahead: ahead,
        po_id: source.map(|s| s.po_id.clone()).unwrap_or_default(),
        po_line_no: source.map_or(0, |s| s.line_no as u32),
        po_expected_at: source.map(|s| to_proto(s.expected_at)),
    }
}

/// The supply as the projection takes it (ids as the engine forms them: they break ties of dates).
fn projected(supply: &[SupplyLine]) -> Vec<Supply> {
    supply
        .iter()
        .map(|s| Supply {
            id: format!("{}/{}", s.po_id, s.line_no),
            expected_at: s.expected_at,
            open: s.quantity_open,
        })
        .collect()
}

/// Some waiting lines of one SKU, each as (units ahead of it in the queue, its own units) in queue order: the
/// index into `supply` of the line that covers each one's last unit (none: the ETA is an estimate). Only the
/// units ahead matter to the walk, so the lines between them stand in as one gap each.
pub(crate) fn covering(
    now: DateTime<Utc>,
    lines: &[(i64, i64)],
    supply: &[SupplyLine],
    settings: &Settings,
) -> Vec<Option<usize>> {
    let mut queue = Vec::with_capacity(lines.len() * 2);
    let mut index = Vec::with_capacity(lines.len());
    let mut walked = 0;
    for &(ahead, units) in lines {
        if ahead > walked {
            queue.push(Waiting {
                units: ahead - walked,
                current: None,
            });
        }
        index.push(queue.len());
        queue.push(Waiting {
            units,
            current: None,
        });
        walked = walked.max(ahead) + units;
    }
    let etas: Vec<Eta> = eta::project(now, &queue, &projected(supply), settings);
    index.into_iter().map(|i| etas[i].source).collect()
}

/// A SKU's whole queue (each line's waiting units, in fill order) against its open supply: what `sku.queue`
/// and the receipt preview's queue after it show.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Coverage {
    /// Per line of the queue: the index into the supply of the line that covers its last unit.
    pub sources: Vec<Option<usize>>,
    /// Per line of the queue: its place (position, units ahead, covering supply).
    pub places: Vec<QueuePlace>,
    /// The open supply in the order it arrives, with the part of the queue each covers.
    pub supply: Vec<SupplyCover>,
    /// Waiting units no open supply covers.
    pub uncovered: i64,
}

pub(crate) fn coverage(
    now: DateTime<Utc>,
    queue: &[i64],
    supply: &[SupplyLine],
    settings: &Settings,
) -> Coverage {
    let projected = projected(supply);
    let waiting: Vec<Waiting> = queue
        .iter()
        .map(|units| Waiting {
            units: *units,
            current: None,
        })
        .collect();
    let sources: Vec<Option<usize>> = eta::project(now, &waiting, &projected, settings)
        .into_iter()
        .map(|e| e.source)
        .collect();
    let needed: i64 = queue.iter().map(|u| (*u).max(0)).sum();
    let mut before = 0i64;
    let mut covers = Vec::new();
    for (_, overdue, i) in eta::arrivals(now, &projected, settings) {
        let line = &supply[i];
        let positions: Vec<usize> = (0..sources.len())
            .filter(|p| sources[*p] == Some(i))
            .collect();
        covers.push(SupplyCover {
            po_id: line.po_id.clone(),
            line_no: line.line_no as u32,
            quantity_open: line.quantity_open,
            expected_at: Some(to_proto(line.expected_at)),
            overdue,
            first_position: positions.first().map_or(0, |p| *p as u32 + 1),
            last_position: positions.last().map_or(0, |p| *p as u32 + 1),
            covers_units: (needed - before).clamp(0, line.quantity_open),
        });
        before += line.quantity_open;
    }
    let covered: i64 = covers.iter().map(|c| c.covers_units).sum();
    let mut ahead = 0;
    let places = queue
        .iter()
        .zip(&sources)
        .enumerate()
        .map(|(i, (units, source))| {
            let place = place(i + 1, ahead, source.map(|s| &supply[s]));
            ahead += units;
            place
        })
        .collect();
    Coverage {
        sources,
        places,
        supply: covers,
        uncovered: needed - covered,
    }
}

/// A read-only transaction with one snapshot: a reply's figures agree with each other.
pub(crate) async fn snapshot(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("set transaction isolation level repeatable read, read only")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// The open supply of `skus`, by SKU, each earliest first.
pub(crate) async fn open_supply(
    conn: &mut PgConnection,
    skus: &[String],
) -> Result<HashMap<String, Vec<SupplyLine>>, sqlx::Error> {
    let rows: Vec<SupplyLine> = sqlx::query_as(
        "select sku, po_id, line_no, expected_at, quantity_open from supply
         where sku = any($1) and quantity_open > 0 and not cancelled
         order by sku, expected_at, po_id, line_no",
    )
    .bind(skus)
    .fetch_all(conn)
    .await?;
    let mut by_sku: HashMap<String, Vec<SupplyLine>> = HashMap::new();
    for row in rows {
        by_sku.entry(row.sku.clone()).or_default().push(row);
    }
    Ok(by_sku)
}

/// The projection settings of `skus`: their own lead time where the product master sent one.
pub(crate) async fn settings(
    conn: &mut PgConnection,
    policy: &Policy,
    skus: &[String],
) -> Result<HashMap<String, Settings>, sqlx::Error> {
    let lead_times: HashMap<String, i32> =
        sqlx::query_as("select sku, lead_time_days from skus where sku = any($1)")
            .bind(skus)
            .fetch_all(conn)
            .await?
            .into_iter()
            .collect();
    Ok(skus
        .iter()
        .map(|sku| (sku.clone(), policy.settings(lead_times.get(sku).copied())))
        .collect())
}

/// A waiting line whose place is wanted.
pub(crate) struct Waiter<'a> {
    pub order_id: &'a str,
    pub line_no: i32,
    pub sku: &'a str,
    pub backordered: i64,
}

/// A waiting line's position in its SKU's queue.
#[derive(sqlx::FromRow)]
struct Position {
    order_id: String,
    line_no: i32,
    sku: String,
    position: i64,
    ahead: i64,
    backordered: i64,
}

/// The places of waiting lines, by (order id, line no): their positions in their SKUs' queues (one window
/// query over those queues), and the supply covering each (the SKUs' supply and lead times, two more).
pub(crate) async fn places(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    policy: &Policy,
    lines: &[Waiter<'_>],
) -> Result<HashMap<(String, i32), QueuePlace>, sqlx::Error> {
    let lines: Vec<&Waiter> = lines.iter().filter(|l| l.backordered > 0).collect();
    if lines.is_empty() {
        return Ok(HashMap::new());
    }
    let mut skus: Vec<String> = lines.iter().map(|l| l.sku.to_string()).collect();
    skus.sort();
    skus.dedup();
    let rows: Vec<Position> = sqlx::query_as(
        "select q.order_id, q.line_no, q.sku, q.position, q.ahead, q.backordered from (
             select order_id, line_no, sku, backordered, row_number() over queue as position,
                    (sum(backordered) over queue - backordered)::bigint as ahead
             from order_lines where sku = any($1) and backordered > 0
             window queue as (partition by sku order by priority desc, placed_at, order_id, line_no)
         ) q join unnest($2::text[], $3::int[]) as w(order_id, line_no)
             on q.order_id = w.order_id and q.line_no = w.line_no
         order by q.sku, q.position",
    )
    .bind(&skus)
    .bind(
        lines
            .iter()
            .map(|l| l.order_id.to_string())
            .collect::<Vec<_>>(),
    )
    .bind(lines.iter().map(|l| l.line_no).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    let supply = open_supply(conn, &skus).await?;
    let settings = settings(conn, policy, &skus).await?;
    let mut by_sku: BTreeMap<&str, Vec<&Position>> = BTreeMap::new();
    for row in &rows {
        by_sku.entry(row.sku.as_str()).or_default().push(row);
    }
    let mut places = HashMap::with_capacity(rows.len());
    for (sku, rows) in by_sku {
        let supply = supply.get(sku).map(Vec::as_slice).unwrap_or_default();
        let walk: Vec<(i64, i64)> = rows.iter().map(|r| (r.ahead, r.backordered)).collect();
        let sources = covering(now, &walk, supply, &settings[sku]);
        for (row, source) in rows.into_iter().zip(sources) {
            let source = source.map(|i| &supply[i]);
            let place = place(row.position as usize, row.ahead, source);
            places.insert((row.order_id.clone(), row.line_no), place);
        }
    }
    Ok(places)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn day(n: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap() + Duration::days(n)
    }

    fn settings() -> Settings {
        Settings {
            handling: Duration::days(1),
            grace: Duration::days(3),
            lead_time: Duration::days(14),
        }
    }

    fn po(id: &str, expected: i64, open: i64) -> SupplyLine {
        SupplyLine {
            sku: "W".into(),
            po_id: id.into(),
            line_no: 1,
            expected_at: day(expected),
            quantity_open: open,
        }
    }

    #[test]
    fn late_is_by_utc_day_against_the_first_promise_and_only_while_waiting() {
        let promised = Some(day(10) + Duration::hours(9));
        let now = day(3);
        // Later the same day is not late; the next day is.
        assert!(!late(
            now,
            true,
            Some(day(10) + Duration::hours(23)),
            promised
        ));
        assert!(late(now, true, Some(day(11)), promised));
        // The promised day itself has not passed yet; the day after it has, whatever the ETA says.
        assert!(!late(
            day(10) + Duration::hours(23),
            true,
            Some(day(10)),
            promised
        ));
        assert!(late(day(11), true, Some(day(10)), promised));
        assert!(late(day(11), true, None, promised));
        // Nothing waits, or nothing was promised: not late.
        assert!(!late(day(20), false, None, promised));
        assert!(!late(day(20), true, Some(day(30)), None));
    }

    #[test]
    fn each_line_is_covered_by_the_supply_its_last_unit_rests_on() {
        // PO-2 arrives first (day 10, 25 units), then PO-1 (day 20, 30 units): the queue 20, 10, 20, 10.
        let supply = [po("PO-1", 20, 30), po("PO-2", 10, 25)];
        let all = coverage(day(0), &[20, 10, 20, 10], &supply, &settings());
        assert_eq!(all.sources, [Some(1), Some(0), Some(0), None]);
        let summary: Vec<(&str, bool, u32, u32, i64)> = all
            .supply
            .iter()
            .map(|c| {
                (
                    c.po_id.as_str(),
                    c.overdue,
                    c.first_position,
                    c.last_position,
                    c.covers_units,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [("PO-2", false, 1, 1, 25), ("PO-1", false, 2, 3, 30)]
        );
        assert_eq!(all.uncovered, 5);
        let places: Vec<(u32, i64, &str)> = all
            .places
            .iter()
            .map(|p| (p.position, p.units_ahead, p.po_id.as_str()))
            .collect();
        assert_eq!(
            places,
            [
                (1, 0, "PO-2"),
                (2, 20, "PO-1"),
                (3, 30, "PO-1"),
                (4, 50, "")
            ]
        );

        // Lines picked out of the queue by their units ahead get the same sources as the whole walk.
        let picked = covering(day(0), &[(20, 10), (50, 10)], &supply, &settings());
        assert_eq!(picked, [Some(0), None]);
        let head = covering(day(0), &[(0, 20)], &supply, &settings());
        assert_eq!(head, [Some(1)]);
    }

    #[test]
    fn an_overdue_line_arrives_at_now_plus_grace_and_supply_beyond_the_queue_covers_nothing() {
        // On day 5 PO-1 (due day 3) is overdue: counted at day 8, after PO-2 (day 6).
        let supply = [po("PO-1", 3, 10), po("PO-2", 6, 10), po("PO-3", 30, 10)];
        let all = coverage(day(5), &[5, 10], &supply, &settings());
        assert_eq!(all.sources, [Some(1), Some(0)]);
        let summary: Vec<(&str, bool, u32, u32, i64)> = all
            .supply
            .iter()
            .map(|c| {
                (
                    c.po_id.as_str(),
                    c.overdue,
                    c.first_position,
                    c.last_position,
                    c.covers_units,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("PO-2", false, 1, 1, 10),
                ("PO-1", true, 2, 2, 5),
                ("PO-3", false, 0, 0, 0)
            ]
        );
        assert_eq!(all.uncovered, 0);
        // An empty queue: nothing is covered, nothing uncovered.
        let none = coverage(day(5), &[], &supply, &settings());
        assert!(none.supply.iter().all(|c| c.covers_units == 0));
        assert_eq!(none.uncovered, 0);
    }

    #[test]
    fn a_place_names_the_covering_po_line_or_none() {
        let line = po("PO-7", 12, 40);
        let covered = place(3, 17, Some(&line));
        assert_eq!(
            (
                covered.position,
                covered.units_ahead,
                covered.po_id.as_str()
            ),
            (3, 17, "PO-7")
        );
        assert_eq!(covered.po_line_no, 1);
        assert_eq!(covered.po_expected_at, Some(to_proto(day(12))));
        let estimate = place(1, 0, None);
        assert!(estimate.po_id.is_empty() && estimate.po_expected_at.is_none());
    }
}
