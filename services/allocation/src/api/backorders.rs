//! `<p>.api.backorders.list`: the open backorder worklist, one row per waiting line, filtered, sorted and paged.
//!
//! Paging is by offset: a `next_page_token` is `<offset>.<fingerprint>`, the fingerprint a digest of the
//! filters and the order it was made for, so a token used with other filters, or made up, is refused (400)
//! rather than silently paging through another list. The worklist moves while someone pages through it: a
//! line filled meanwhile shifts the rows after it by one (a row may be skipped or shown twice); `total` is
//! always that of the moment of the page.

use backorder_proto::v1::{
    BackorderOrder, BackorderRow, ListBackordersReply, ListBackordersRequest, QueuePlace,
};
use backorder_runtime::limits::{Check, MAX_ID_LEN};
use backorder_runtime::time::to_proto;
use chrono::{DateTime, Utc};

use super::view::{self, Dates, Waiter};
use super::{Api, ApiError};

/// Rows per page when the request names no size, and the most it may name.
const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1_000;

#[derive(sqlx::FromRow)]
struct Row {
    order_id: String,
    line_no: i32,
    sku: String,
    customer_id: String,
    ordered: i64,
    backordered: i64,
    allocated: i64,
    priority: i32,
    placed_at: DateTime<Utc>,
    backordered_since: DateTime<Utc>,
    preorder: bool,
    status: String,
    #[sqlx(flatten)]
    dates: Dates,
}

/// The waiting lines that match the filters: `$1` sku, `$2` customer, `$3` waiting since at most, `$4`
/// late only, `$5` estimated only, `$6` search pattern (LIKE, escaped), `$7` now. Late is `view::late` (by
/// UTC day against the first promise) or an ETA resting on an overdue purchase order.
const MATCHING: &str = "select l.order_id, l.line_no, l.sku, o.customer_id, l.ordered, l.backordered,
           l.allocated, l.priority, l.placed_at, coalesce(l.backordered_since, l.placed_at) as backordered_since,
           l.preorder, o.status, l.eta, l.eta_estimated, l.eta_late, l.promised_eta
    from order_lines l join orders o on o.order_id = l.order_id
    where l.backordered > 0
      and ($1 = '' or l.sku = $1)
      and ($2 = '' or o.customer_id = $2)
      and ($3::timestamptz is null or coalesce(l.backordered_since, l.placed_at) <= $3)
      and (not $4 or l.eta_late or (l.promised_eta is not null and (
           coalesce((l.eta at time zone 'UTC')::date > (l.promised_eta at time zone 'UTC')::date, false)
           or ($7::timestamptz at time zone 'UTC')::date > (l.promised_eta at time zone 'UTC')::date)))
      and (not $5 or l.eta_estimated)
      and ($6 = '' or l.order_id ilike $6 escape '\\' or o.customer_id ilike $6 escape '\\'
           or l.sku ilike $6 escape '\\')";

/// The sort keys of each order, ascending; every list ends in the line's key, so the order is total and a
/// page boundary is well defined. `descending` reverses every key (Postgres puts nulls last ascending and
/// first descending, so "lines without a date last" reverses too).
fn order_clause(order: BackorderOrder, descending: bool) -> String {
    use BackorderOrder as O;
    let keys: &[(&str, bool)] = match order {
        O::ByAge => &[("backordered_since", true)],
        O::ByEta => &[("eta", true)],
        O::ByQueue => &[("sku", true), ("priority", false), ("placed_at", true)],
        O::ByUnits => &[("backordered", false)],
        O::ByOrder => &[],
        O::ByCustomer => &[("customer_id", true)],
    };
    keys.iter()
        .chain(&[("order_id", true), ("line_no", true)])
        .map(|(key, ascending)| {
            let direction = if *ascending != descending {
                "asc"
            } else {
                "desc"
            };
            format!("{key} {direction}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `%part%` for ILIKE, with the pattern characters of `part` taken literally.
fn like_pattern(part: &str) -> String {
    if part.is_empty() {
        return String::new();
    }
    let mut pattern = String::with_capacity(part.len() + 2);
    pattern.push('%');
    for c in part.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// What a page token is bound to: everything in the request but the paging.
fn fingerprint(request: &ListBackordersRequest) -> String {
    let query = ListBackordersRequest {
        page_size: 0,
        page_token: String::new(),
        ..request.clone()
    };
    backorder_runtime::digest::of(&query)[..12].to_string()
}

fn page_token(offset: u64, fingerprint: &str) -> String {
    format!("{offset}.{fingerprint}")
}

/// The offset a token stands for; empty: the first page.
fn offset_of(token: &str, fingerprint: &str) -> Result<u64, String> {
    if token.is_empty() {
        return Ok(0);
    }
    let shown = backorder_runtime::limits::shown(token);
    let (offset, made_for) = token
        .split_once('.')
        .ok_or_else(|| format!("page_token {shown} is not a token this endpoint gave"))?;
    let offset: u64 = offset
        .parse()
        .map_err(|_| format!("page_token {shown} is not a token this endpoint gave"))?;
    if made_for != fingerprint {
        return Err(format!(
            "page_token {shown} was given for other filters or another order; start again from the first page"
        ));
    }
    Ok(offset)
}

impl Api {
    pub async fn backorders_list(
        &self,
        request: ListBackordersRequest,
    ) -> Result<ListBackordersReply, ApiError> {
        let now = self.engine.clock.now();
        let Checked {
            order,
            page_size,
            waiting_since,
            fingerprint,
            offset,
        } = checked(&request, now).map_err(ApiError::BadRequest)?;
        if !request.sku.is_empty() {
            tracing::Span::current().record("sku", request.sku.as_str());
        }
        let search = like_pattern(&request.search);
        // The filters' parameters, $1 to $7, the same for the count and the page.
        macro_rules! filtered {
            ($sql:expr) => {
                sqlx::query_as(sqlx::AssertSqlSafe($sql))
                    .bind(&request.sku)
                    .bind(&request.customer_id)
                    .bind(waiting_since)
                    .bind(request.late_only)
                    .bind(request.estimated_only)
                    .bind(&search)
                    .bind(now)
            };
        }

        let mut tx = view::snapshot(&self.pool).await?;
        let (total, total_units): (i64, i64) = filtered!(format!(
            "with m as ({MATCHING}) select count(*), coalesce(sum(backordered), 0)::bigint from m"
        ))
        .fetch_one(&mut *tx)
        .await?;
        let rows: Vec<Row> = filtered!(format!(
            "with m as ({MATCHING}) select * from m order by {} limit $8 offset $9",
            order_clause(order, request.descending)
        ))
        .bind(i64::from(page_size))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?;
        let waiters: Vec<Waiter> = rows
            .iter()
            .map(|r| Waiter {
                order_id: &r.order_id,
                line_no: r.line_no,
                sku: &r.sku,
                backordered: r.backordered,
            })
            .collect();
        let mut places = view::places(&mut tx, now, &self.engine.policy, &waiters).await?;
        tx.commit().await?;

        let next = offset.saturating_add(rows.len() as u64);
        let next_page_token = if !rows.is_empty() && next < total as u64 {
            page_token(next, &fingerprint)
        } else {
            String::new()
        };
        let backorders = rows
            .into_iter()
            .map(|r| {
                let queue = places.remove(&(r.order_id.clone(), r.line_no));
                backorder_row(r, queue, now)
            })
            .collect();
        Ok(ListBackordersReply {
            backorders,
            next_page_token,
            total: total as u64,
            total_units,
        })
    }
}

/// A waiting line as the worklist shows it, with its place in its queue.
fn backorder_row(r: Row, queue: Option<QueuePlace>, now: DateTime<Utc>) -> BackorderRow {
    BackorderRow {
        promise: Some(view::promise(now, true, &r.dates)),
        queue,
        age_days: (now - r.backordered_since)
            .num_days()
            .clamp(0, i32::MAX.into()) as i32,
        order_status: view::status(&r.status) as i32,
        order_id: r.order_id,
        line_no: r.line_no as u32,
        sku: r.sku,
        customer_id: r.customer_id,
        ordered: r.ordered,
        backordered: r.backordered,
        allocated: r.allocated,
        priority: r.priority,
        placed_at: Some(to_proto(r.placed_at)),
        backordered_since: Some(to_proto(r.backordered_since)),
        preorder: r.preorder,
    }
}

/// A list request's parameters once checked.
struct Checked {
    order: BackorderOrder,
    page_size: u32,
    /// Lines waiting since before this (`older_than`).
    waiting_since: Option<DateTime<Utc>>,
    fingerprint: String,
    offset: u64,
}

/// Checks a list request as of `now`: its parameters, or every reason it is refused. Pure.
fn checked(request: &ListBackordersRequest, now: DateTime<Utc>) -> Result<Checked, String> {
    let mut check = Check::new();
    check.optional_id("sku", &request.sku);
    check.optional_id("customer_id", &request.customer_id);
    check.text("search", &request.search, MAX_ID_LEN);
    let order = BackorderOrder::try_from(request.order_by).unwrap_or_else(|_| {
        check.fail(
            "order_by",
            format!("{} is not a BackorderOrder", request.order_by),
        );
        BackorderOrder::ByAge
    });
    let page_size = match request.page_size {
        0 => DEFAULT_PAGE,
        size if size > MAX_PAGE => {
            check.fail("page_size", format!("{size} is more than {MAX_PAGE}"));
            MAX_PAGE
        }
        size => size,
    };
    let waiting_since = match &request.older_than {
        None => None,
        Some(d) => {
            let age = u32::try_from(d.nanos)
                .ok()
                .filter(|_| d.seconds >= 0)
                .and_then(|nanos| chrono::Duration::new(d.seconds, nanos));
            if age.is_none() {
                check.fail(
                    "older_than",
                    format!(
                        "{}s {}ns is not a duration of 0 or more",
                        d.seconds, d.nanos
                    ),
                );
            }
            age.map(|age| backorder_runtime::limits::sub(now, age))
        }
    };
    let fingerprint = fingerprint(request);
    let offset = match offset_of(&request.page_token, &fingerprint) {
        Ok(offset) => offset,
        Err(message) => {
            check.fail("page_token", message);
            0
        }
    };
    check.result()?;
    Ok(Checked {
        order,
        page_size,
        waiting_since,
        fingerprint,
        offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_order_ends_in_the_line_key_and_descending_reverses_every_key() {
        assert_eq!(
            order_clause(BackorderOrder::ByQueue, false),
            "sku asc, priority desc, placed_at asc, order_id asc, line_no asc"
        );
        assert_eq!(
            order_clause(BackorderOrder::ByQueue, true),
            "sku desc, priority asc, placed_at desc, order_id desc, line_no desc"
        );
        assert_eq!(
            order_clause(BackorderOrder::ByUnits, false),
            "backordered desc, order_id asc, line_no asc"
        );
        assert_eq!(
            order_clause(BackorderOrder::ByOrder, true),
            "order_id desc, line_no desc"
        );
    }

    #[test]
    fn a_search_matches_its_characters_literally() {
        assert_eq!(like_pattern(""), "");
        assert_eq!(like_pattern("so-1"), "%so-1%");
        assert_eq!(like_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }

    #[test]
    fn a_page_token_is_bound_to_its_filters_and_order() {
        let request = ListBackordersRequest {
            sku: "W".into(),
            page_size: 2,
            ..Default::default()
        };
        let print = fingerprint(&request);
        // The paging itself is not part of what a token is bound to.
        let next = ListBackordersRequest {
            page_size: 5,
            page_token: page_token(2, &print),
            ..request.clone()
        };
        assert_eq!(fingerprint(&next), print);
        assert_eq!(offset_of(&next.page_token, &print), Ok(2));
        assert_eq!(offset_of("", &print), Ok(0));

        let other = fingerprint(&ListBackordersRequest {
            descending: true,
            ..request.clone()
        });
        assert_ne!(other, print);
        let refused = offset_of(&next.page_token, &other).unwrap_err();
        assert!(refused.contains("other filters"), "{refused}");
        for bad in ["garbage", "x.abc", "-1.abc", ".", "12"] {
            let refused = offset_of(bad, &print).unwrap_err();
            assert!(
                refused.contains("not a token this endpoint gave"),
                "{bad}: {refused}"
            );
        }
    }
}
