//! `<p>.api.kpi.get`: the KPIs of docs/kpis.md, computed in SQL from the store over a window, as of the
//! services' clock (never the database's: a simulated clock must give the figures of its own time).
//!
//! Every figure is read in one read-only snapshot, so the figures of one reply agree with each other.

use std::collections::BTreeMap;

use backorder_proto::v1::{
    Aging, AgingBucket, CustomerCompliance, DailyFillRate, ErrorCount, EtaAccuracy, FillRate,
    GetKpisReply, GetKpisRequest, LostDemand, LostDemandRow, Otif,
};
use backorder_runtime::limits::{self, Check};
use backorder_runtime::time::{from_proto, to_proto};
use chrono::{DateTime, Duration, Utc};
use sqlx::postgres::PgRow;
use sqlx::query::QueryAs;
use sqlx::{FromRow, PgPool, Postgres, Transaction};

use super::{Api, ApiError};

/// The window when a request names none: the 30 days before `to`.
pub const DEFAULT_WINDOW_DAYS: i64 = 30;
/// The longest window a request may ask for: a year and a bit, enough for a year over year look.
pub const MAX_WINDOW_DAYS: i64 = 400;

/// The aging buckets: label, first and last day of age (-1: no upper bound). They cover every age from 0.
pub const AGING_BUCKETS: [(&str, i32, i32); 5] = [
    ("0-2", 0, 2),
    ("3-7", 3, 7),
    ("8-14", 8, 14),
    ("15-30", 15, 30),
    ("31+", 31, -1),
];

/// The window `[from, to)` of the windowed figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Api {
    pub async fn kpi_get(&self, request: GetKpisRequest) -> Result<GetKpisReply, ApiError> {
        let now = self.engine.clock.now();
        let window = window(&request, now).map_err(ApiError::BadRequest)?;
        // Recorded once checked: a refused request's field may be any size.
        if !request.sku.is_empty() {
            tracing::Span::current().record("sku", request.sku.as_str());
        }
        Ok(kpis(&self.pool, now, window, &request.customer_id, &request.sku).await?)
    }
}

/// The window a request asks for, its defaults filled in (`to`: now; `from`: 30 days before `to`), and its
/// filters checked; `Err` names every field that is wrong.
pub fn window(request: &GetKpisRequest, now: DateTime<Utc>) -> Result<Window, String> {
    let mut check = Check::new();
    check.optional_id("customer_id", &request.customer_id);
    check.optional_id("sku", &request.sku);
    // Some(None): not given; None: not a time (recorded in `check`).
    let mut at = |field: &str, ts: &Option<backorder_proto::Timestamp>| match ts {
        None => Some(None),
        Some(ts) => match from_proto(ts).filter(|at| limits::in_years(*at)) {
            Some(at) => Some(Some(at)),
            None => {
                let (first, last) = (limits::YEARS.start(), limits::YEARS.end());
                check.fail(
                    field,
                    format!(
                        "{}s {}ns is not a time in the years {first}..={last}",
                        ts.seconds, ts.nanos
                    ),
                );
                None
            }
        },
    };
    let (from, to) = (at("from", &request.from), at("to", &request.to));
    if let (Some(from), Some(to)) = (from, to) {
        let to = to.unwrap_or(now);
        let from = from.unwrap_or_else(|| limits::sub(to, Duration::days(DEFAULT_WINDOW_DAYS)));
        if from >= to {
            check.fail(
                "from",
                format!(
                    "{} is not before `to` ({}): the window [from, to) is empty",
                    from.to_rfc3339(),
                    to.to_rfc3339()
                ),
            );
        } else if to - from > Duration::days(MAX_WINDOW_DAYS) {
            check.fail(
                "to",
                format!(
                    "the window {} .. {} is {} days long; at most {MAX_WINDOW_DAYS}",
                    from.to_rfc3339(),
                    to.to_rfc3339(),
                    (to - from).num_days()
                ),
            );
        }
        check.result()?;
        return Ok(Window { from, to });
    }
    Err(check.summary())
}

/// What every query is narrowed by: `$1` from, `$2` to, `$3` now, `$4` customer, `$5` SKU (empty: all).
struct Scope<'a> {
    window: Window,
    now: DateTime<Utc>,
    customer_id: &'a str,
    sku: &'a str,
}

impl<'a> Scope<'a> {
    fn query<O>(&self, sql: &'static str) -> QueryAs<'a, Postgres, O, sqlx::postgres::PgArguments>
    where
        O: for<'r> FromRow<'r, PgRow>,
    {
        sqlx::query_as(sql)
            .bind(self.window.from)
            .bind(self.window.to)
            .bind(self.now)
            .bind(self.customer_id)
            .bind(self.sku)
    }
}

/// The KPIs over `window`, as of `now`, narrowed to a customer and/or a SKU (empty: all); see docs/kpis.md.
pub async fn kpis(
    pool: &PgPool,
    now: DateTime<Utc>,
    window: Window,
    customer_id: &str,
    sku: &str,
) -> Result<GetKpisReply, sqlx::Error> {
    let scope = Scope {
        window,
        now,
        customer_id,
        sku,
    };
    let mut tx = pool.begin().await?;
    sqlx::query("set transaction isolation level repeatable read, read only")
        .execute(&mut *tx)
        .await?;
    let (fill_rate, daily_fill_rate, fill_by_customer) = fill_rates(&mut tx, &scope).await?;
    let (otif, otif_by_customer) = otif(&mut tx, &scope).await?;
    let aging = aging(&mut tx, &scope).await?;
    let open_by_customer = open_lines(&mut tx, &scope).await?;
    let eta_accuracy = eta_accuracy(&mut tx, &scope).await?;
    let lost_demand = lost_demand(&mut tx, &scope).await?;
    tx.commit().await?;

    let mut customers: BTreeMap<String, CustomerCompliance> = BTreeMap::new();
    for (id, fill) in fill_by_customer {
        customers_row(&mut customers, id).fill_rate = Some(fill);
    }
    for (id, otif) in otif_by_customer {
        customers_row(&mut customers, id).otif = Some(otif);
    }
    for (id, open, late, late_units) in open_by_customer {
        let row = customers_row(&mut customers, id);
        (row.open_lines, row.late_lines, row.late_units) = (open, late, late_units);
    }
    let mut customers: Vec<CustomerCompliance> = customers.into_values().collect();
    customers.sort_by(worst_first);

    Ok(GetKpisReply {
        from: Some(to_proto(window.from)),
        to: Some(to_proto(window.to)),
        as_of: Some(to_proto(now)),
        fill_rate: Some(fill_rate),
        daily_fill_rate,
        otif: Some(otif),
        aging: Some(aging),
        eta_accuracy: Some(eta_accuracy),
        lost_demand: Some(lost_demand),
        customers,
    })
}

fn customers_row(
    customers: &mut BTreeMap<String, CustomerCompliance>,
    id: String,
) -> &mut CustomerCompliance {
    customers
        .entry(id.clone())
        .or_insert_with(|| CustomerCompliance {
            customer_id: id,
            otif: Some(Otif::default()),
            fill_rate: Some(FillRate::default()),
            ..Default::default()
        })
}

/// Worst OTIF first; customers without a line due (nothing to judge) after those with one; then most lines
/// late right now, then by id.
fn worst_first(a: &CustomerCompliance, b: &CustomerCompliance) -> std::cmp::Ordering {
    let otif = |c: &CustomerCompliance| c.otif.as_ref().map_or((0, 0.0), |o| (o.lines, o.rate));
    let ((a_lines, a_rate), (b_lines, b_rate)) = (otif(a), otif(b));
    (a_lines == 0)
        .cmp(&(b_lines == 0))
        .then(a_rate.total_cmp(&b_rate))
        .then(b.late_lines.cmp(&a.late_lines))
        .then_with(|| a.customer_id.cmp(&b.customer_id))
}

/// `part / whole`, 0 when there is no whole.
fn rate(part: f64, whole: f64) -> f64 {
    if whole == 0.0 { 0.0 } else { part / whole }
}

fn fill_rate(lines: i64, filled: i64, units: i64, units_filled: i64) -> FillRate {
    FillRate {
        lines: lines as u64,
        lines_filled: filled as u64,
        line_fill_rate: rate(filled as f64, lines as f64),
        units,
        units_filled,
        unit_fill_rate: rate(units_filled as f64, units as f64),
    }
}

fn otif_of(lines: i64, on_time: i64) -> Otif {
    Otif {
        lines: lines as u64,
        lines_on_time: on_time as u64,
        rate: rate(on_time as f64, lines as f64),
    }
}

type Tx = Transaction<'static, Postgres>;

/// Fill rate at order time: overall, per UTC day of placement, per customer.
async fn fill_rates(
    tx: &mut Tx,
    scope: &Scope<'_>,
) -> Result<(FillRate, Vec<DailyFillRate>, Vec<(String, FillRate)>), sqlx::Error> {
    type Row = (i32, Option<String>, Option<String>, i64, i64, i64, i64);
    let rows: Vec<Row> = scope
        .query(
            "select grouping(f.day, f.customer_id)::int4, f.day, f.customer_id, count(*),
                    count(*) filter (where f.allocated = f.ordered),
                    coalesce(sum(f.ordered), 0)::int8, coalesce(sum(f.allocated), 0)::int8
             from (select to_char(l.placed_at at time zone 'UTC', 'YYYY-MM-DD') as day, o.customer_id,
                          l.ordered, l.placed_allocated as allocated
                   from order_lines l join orders o on o.order_id = l.order_id
                   where l.placed_at >= $1 and l.placed_at < $2 and l.placed_allocated is not null
                     and ($4 = '' or o.customer_id = $4) and ($5 = '' or l.sku = $5)) f
             group by grouping sets ((), (f.day), (f.customer_id))
             order by 1, 2, 3",
        )
        .fetch_all(&mut **tx)
        .await?;
    let mut overall = fill_rate(0, 0, 0, 0);
    let mut daily = Vec::new();
    let mut by_customer = Vec::new();
    for (level, day, customer, lines, filled, units, units_filled) in rows {
        let figures = fill_rate(lines, filled, units, units_filled);
        match (level, day, customer) {
            (1, Some(day), _) => daily.push(DailyFillRate {
                day,
                fill_rate: Some(figures),
            }),
            (2, _, Some(customer)) => by_customer.push((customer, figures)),
            _ => overall = figures,
        }
    }
    Ok((overall, daily, by_customer))
}

/// On time in full against the first promise: overall and per customer.
async fn otif(tx: &mut Tx, scope: &Scope<'_>) -> Result<(Otif, Vec<(String, Otif)>), sqlx::Error> {
    let rows: Vec<(i32, Option<String>, i64, i64)> = scope
        .query(
            "with due as (
                 select o.customer_id, l.ready_at, l.promised_eta,
                        exists (select 1 from lost_units u
                                where u.order_id = l.order_id and u.line_no = l.line_no
                                  and u.reason = 'no_consent') as no_consent,
                        l.backordered = 0
                        and exists (select 1 from lost_units u
                                    where u.order_id = l.order_id and u.line_no = l.line_no
                                      and u.reason = 'customer_cancelled'
                                      and (l.ready_at is null or u.at >= l.ready_at)) as withdrawn
                 from order_lines l join orders o on o.order_id = l.order_id
                 where l.first_backordered_at is not null
                   and l.promised_eta >= $1 and l.promised_eta < $2
                   and (l.promised_eta <= $3 or l.ready_at is not null)
                   and ($4 = '' or o.customer_id = $4) and ($5 = '' or l.sku = $5))
             select grouping(customer_id)::int4, customer_id, count(*),
                    count(*) filter (where ready_at is not null and not no_consent
                                     and (ready_at at time zone 'UTC')::date
                                         <= (promised_eta at time zone 'UTC')::date)
             from due where not withdrawn
             group by grouping sets ((), (customer_id))
             order by 1, 2",
        )
        .fetch_all(&mut **tx)
        .await?;
    let mut overall = otif_of(0, 0);
    let mut by_customer = Vec::new();
    for (level, customer, lines, on_time) in rows {
        match (level, customer) {
            (0, Some(customer)) => by_customer.push((customer, otif_of(lines, on_time))),
            _ => overall = otif_of(lines, on_time),
        }
    }
    Ok((overall, by_customer))
}

/// The open backorder lines as of now by age bucket, and the oldest.
async fn aging(tx: &mut Tx, scope: &Scope<'_>) -> Result<Aging, sqlx::Error> {
    let rows: Vec<(String, i32, i32, i64, i64)> = scope
        .query(
            "with open as (
                 select l.backordered,
                        greatest(0, floor(extract(epoch from $3 - coalesce(l.backordered_since, l.placed_at))
                                          / 86400))::int4 as age
                 from order_lines l join orders o on o.order_id = l.order_id
                 where l.backordered > 0 and ($4 = '' or o.customer_id = $4) and ($5 = '' or l.sku = $5))
             select b.label, b.min_days, b.max_days, count(open.age), coalesce(sum(open.backordered), 0)::int8
             from unnest($6::text[], $7::int4[], $8::int4[]) with ordinality as b(label, min_days, max_days, n)
             left join open on open.age >= b.min_days and (b.max_days < 0 or open.age <= b.max_days)
             group by b.label, b.min_days, b.max_days, b.n
             order by b.n",
        )
        .bind(AGING_BUCKETS.map(|b| b.0.to_string()))
        .bind(AGING_BUCKETS.map(|b| b.1))
        .bind(AGING_BUCKETS.map(|b| b.2))
        .fetch_all(&mut **tx)
        .await?;
    let buckets: Vec<AgingBucket> = rows
        .into_iter()
        .map(|(label, min_days, max_days, lines, units)| AgingBucket {
            label,
            min_days,
            max_days,
            lines: lines as u64,
            units,
        })
        .collect();
    let oldest: Option<(String, i32, DateTime<Utc>, i32)> = scope
        .query(
            "select l.order_id, l.line_no, coalesce(l.backordered_since, l.placed_at),
                    greatest(0, floor(extract(epoch from $3 - coalesce(l.backordered_since, l.placed_at))
                                      / 86400))::int4
             from order_lines l join orders o on o.order_id = l.order_id
             where l.backordered > 0 and ($4 = '' or o.customer_id = $4) and ($5 = '' or l.sku = $5)
             order by 3, 1, 2 limit 1",
        )
        .fetch_optional(&mut **tx)
        .await?;
    let mut aging = Aging {
        open_lines: buckets.iter().map(|b| b.lines).sum(),
        open_units: buckets.iter().map(|b| b.units).sum(),
        buckets,
        ..Default::default()
    };
    if let Some((order_id, line_no, since, age)) = oldest {
        aging.oldest_since = Some(to_proto(since));
        aging.oldest_age_days = age;
        aging.oldest_order_id = order_id;
        aging.oldest_line_no = line_no as u32;
    }
    Ok(aging)
}

/// Per customer, as of now: open backorder lines, and those late against their first promise with their
/// waiting units.
async fn open_lines(
    tx: &mut Tx,
    scope: &Scope<'_>,
) -> Result<Vec<(String, u64, u64, i64)>, sqlx::Error> {
    let rows: Vec<(String, i64, i64, i64)> = scope
        .query(
            "select customer_id, count(*), count(*) filter (where late),
                    coalesce(sum(backordered) filter (where late), 0)::int8
             from (select o.customer_id, l.backordered,
                          coalesce(l.promised_eta is not null
                                   and ((l.eta at time zone 'UTC')::date > (l.promised_eta at time zone 'UTC')::date
                                        or (l.promised_eta at time zone 'UTC')::date < ($3 at time zone 'UTC')::date),
                                   false) as late
                   from order_lines l join orders o on o.order_id = l.order_id
                   where l.backordered > 0 and ($4 = '' or o.customer_id = $4) and ($5 = '' or l.sku = $5)) x
             group by customer_id
             order by customer_id",
        )
        .fetch_all(&mut **tx)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(customer, open, late, units)| (customer, open as u64, late as u64, units))
        .collect())
}

/// How far the day a backorder line was ready lay from the first day promised.
async fn eta_accuracy(tx: &mut Tx, scope: &Scope<'_>) -> Result<EtaAccuracy, sqlx::Error> {
    type Row = (
        i32,
        Option<i32>,
        i64,
        Option<f64>,
        Option<f64>,
        Option<f64>,
        Option<f64>,
    );
    let rows: Vec<Row> = scope
        .query(
            "with e as (
                 select (l.ready_at at time zone 'UTC')::date - (l.promised_eta at time zone 'UTC')::date as error
                 from order_lines l join orders o on o.order_id = l.order_id
                 where l.first_backordered_at is not null and l.promised_eta is not null
                   and l.ready_at >= $1 and l.ready_at < $2
                   and ($4 = '' or o.customer_id = $4) and ($5 = '' or l.sku = $5)
                   and not exists (select 1 from lost_units u
                                   where u.order_id = l.order_id and u.line_no = l.line_no
                                     and u.reason in ('customer_cancelled', 'no_consent')
                                     and u.at >= l.ready_at))
             select grouping(error)::int4, error, count(*), avg(error)::float8, avg(abs(error))::float8,
                    percentile_cont(0.9) within group (order by abs(error)::float8),
                    avg((abs(error) <= 1)::int4)::float8
             from e
             group by grouping sets ((), (error))
             order by 1, 2",
        )
        .fetch_all(&mut **tx)
        .await?;
    let mut accuracy = EtaAccuracy::default();
    for (level, error, lines, mean, mean_abs, p90, within) in rows {
        match (level, error) {
            (0, Some(error_days)) => accuracy.distribution.push(ErrorCount {
                error_days,
                lines: lines as u64,
            }),
            _ => {
                accuracy.lines = lines as u64;
                accuracy.mean_error_days = mean.unwrap_or(0.0);
                accuracy.mean_abs_error_days = mean_abs.unwrap_or(0.0);
                accuracy.p90_abs_error_days = p90.unwrap_or(0.0);
                accuracy.within_one_day = within.unwrap_or(0.0);
            }
        }
    }
    Ok(accuracy)
}

/// Units cancelled for lack of stock in the window, by reason and SKU.
async fn lost_demand(tx: &mut Tx, scope: &Scope<'_>) -> Result<LostDemand, sqlx::Error> {
    type Row = (i32, Option<String>, Option<String>, i64, i64);
    let rows: Vec<Row> = scope
        .query(
            "select grouping(reason, sku)::int4, reason, sku, coalesce(sum(units), 0)::int8,
                    count(distinct (order_id, line_no))
             from lost_units
             where at >= $1 and at < $2 and ($4 = '' or customer_id = $4) and ($5 = '' or sku = $5)
             group by grouping sets ((), (reason, sku))
             order by 1 desc, 4 desc, 2, 3",
        )
        .fetch_all(&mut **tx)
        .await?;
    let mut lost = LostDemand::default();
    for (level, reason, sku, units, lines) in rows {
        match (level, reason, sku) {
            (0, Some(reason), Some(sku)) => lost.rows.push(LostDemandRow {
                reason,
                sku,
                units,
                lines: lines as u64,
            }),
            _ => (lost.units, lost.lines) = (units, lines as u64),
        }
    }
    Ok(lost)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn request(from: Option<&str>, to: Option<&str>) -> GetKpisRequest {
        GetKpisRequest {
            from: from.map(|t| to_proto(at(t))),
            to: to.map(|t| to_proto(at(t))),
            ..Default::default()
        }
    }

    #[test]
    fn the_window_defaults_to_the_30_days_before_to_and_to_defaults_to_now() {
        let now = at("2026-12-20T10:00:00Z");
        assert_eq!(
            window(&request(None, None), now),
            Ok(Window {
                from: at("2026-11-20T10:00:00Z"),
                to: now
            })
        );
        assert_eq!(
            window(&request(None, Some("2026-12-01T00:00:00Z")), now),
            Ok(Window {
                from: at("2026-11-01T00:00:00Z"),
                to: at("2026-12-01T00:00:00Z")
            })
        );
        assert_eq!(
            window(&request(Some("2026-12-19T00:00:00Z"), None), now),
            Ok(Window {
                from: at("2026-12-19T00:00:00Z"),
                to: now
            })
        );
    }

    #[test]
    fn an_empty_reversed_or_overlong_window_and_bad_ids_are_refused_by_name() {
        let now = at("2026-12-20T10:00:00Z");
        let empty = window(&request(Some("2026-12-20T10:00:00Z"), None), now).unwrap_err();
        assert!(
            empty.starts_with("from: 2026-12-20T10:00:00+00:00 is not before `to`"),
            "{empty}"
        );
        let reversed = request(Some("2026-12-02T00:00:00Z"), Some("2026-12-01T00:00:00Z"));
        assert!(
            window(&reversed, now)
                .unwrap_err()
                .contains("is not before `to`")
        );
        // 2025-01-01 + 400 days = 2026-02-05: allowed; a day more is not.
        let year = request(Some("2025-01-01T00:00:00Z"), Some("2026-02-05T00:00:00Z"));
        assert!(window(&year, now).is_ok());
        let long = request(Some("2025-01-01T00:00:00Z"), Some("2026-02-06T00:00:00Z"));
        let error = window(&long, now).unwrap_err();
        assert!(
            error.starts_with("to: the window 2025-01-01T00:00:00+00:00 .. "),
            "{error}"
        );
        assert!(error.ends_with("is 401 days long; at most 400"), "{error}");
        let bad = GetKpisRequest {
            customer_id: " C1".into(),
            sku: "S".repeat(129),
            from: Some(backorder_proto::Timestamp {
                seconds: 0,
                nanos: -5,
            }),
            ..Default::default()
        };
        let error = window(&bad, now).unwrap_err();
        for field in ["customer_id: ", "sku: ", "from: "] {
            assert!(error.contains(field), "{field} in {error}");
        }
        assert!(error.contains("at most 128"), "{error}");
        let ancient = request(Some("1999-12-31T00:00:00Z"), None);
        assert!(
            window(&ancient, now)
                .unwrap_err()
                .contains("years 2000..=2199")
        );
    }

    fn compliance(id: &str, lines: u64, on_time: u64, late: u64) -> CustomerCompliance {
        CustomerCompliance {
            customer_id: id.into(),
            otif: Some(otif_of(lines as i64, on_time as i64)),
            late_lines: late,
            ..Default::default()
        }
    }

    #[test]
    fn customers_sort_worst_otif_first_then_most_late_and_those_with_nothing_due_last() {
        let mut rows = [
            compliance("A-nothing-due", 0, 0, 5),
            compliance("B-perfect", 4, 4, 0),
            compliance("C-half", 2, 1, 0),
            compliance("D-half-late", 4, 2, 3),
            compliance("E-zero", 1, 0, 0),
        ];
        rows.sort_by(worst_first);
        let ids: Vec<&str> = rows.iter().map(|r| r.customer_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "E-zero",
                "D-half-late",
                "C-half",
                "B-perfect",
                "A-nothing-due"
            ]
        );
    }
}
