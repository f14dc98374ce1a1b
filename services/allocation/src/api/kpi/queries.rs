//! The SQL behind each figure, narrowed to the request's scope and read in the reply's snapshot.

use backorder_proto::v1::{
    Aging, AgingBucket, DailyFillRate, ErrorCount, EtaAccuracy, FillRate, LostDemand,
    LostDemandRow, Otif,
};
use backorder_runtime::time::to_proto;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::query::QueryAs;
use sqlx::{FromRow, Postgres, Transaction};

use super::AGING_BUCKETS;
use super::rates::{fill_rate, otif_of};
use super::window::Window;

/// What every query is narrowed by: `$1` from, `$2` to, `$3` now, `$4` customer, `$5` SKU (empty: all).
pub(super) struct Scope<'a> {
    pub window: Window,
    pub now: DateTime<Utc>,
    pub customer_id: &'a str,
    pub sku: &'a str,
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

type Tx = Transaction<'static, Postgres>;

/// Fill rate at order time: overall, per UTC day of placement, per customer.
pub(super) async fn fill_rates(
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
pub(super) async fn otif(
    tx: &mut Tx,
    scope: &Scope<'_>,
) -> Result<(Otif, Vec<(String, Otif)>), sqlx::Error> {
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
pub(super) async fn aging(tx: &mut Tx, scope: &Scope<'_>) -> Result<Aging, sqlx::Error> {
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
pub(super) async fn open_lines(
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
pub(super) async fn eta_accuracy(
    tx: &mut Tx,
    scope: &Scope<'_>,
) -> Result<EtaAccuracy, sqlx::Error> {
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
pub(super) async fn lost_demand(tx: &mut Tx, scope: &Scope<'_>) -> Result<LostDemand, sqlx::Error> {
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
