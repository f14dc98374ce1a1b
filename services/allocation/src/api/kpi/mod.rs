//! `<p>.api.kpi.get`: the KPIs of docs/kpis.md, computed in SQL from the store over a window, as of the
//! services' clock (never the database's: a simulated clock must give the figures of its own time).
//!
//! Every figure is read in one read-only snapshot, so the figures of one reply agree with each other.

mod customers;
mod queries;
mod rates;
mod window;

use backorder_proto::v1::{GetKpisReply, GetKpisRequest};
use backorder_runtime::time::to_proto;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

pub use self::window::{DEFAULT_WINDOW_DAYS, MAX_WINDOW_DAYS, Window, window};
use super::{Api, ApiError};
use queries::Scope;

/// The aging buckets: label, first and last day of age (-1: no upper bound). They cover every age from 0.
pub const AGING_BUCKETS: [(&str, i32, i32); 5] = [
    ("0-2", 0, 2),
    ("3-7", 3, 7),
    ("8-14", 8, 14),
    ("15-30", 15, 30),
    ("31+", 31, -1),
];

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
    let (fill_rate, daily_fill_rate, fill_by_customer) =
        queries::fill_rates(&mut tx, &scope).await?;
    let (otif, otif_by_customer) = queries::otif(&mut tx, &scope).await?;
    let aging = queries::aging(&mut tx, &scope).await?;
    let open_by_customer = queries::open_lines(&mut tx, &scope).await?;
    let eta_accuracy = queries::eta_accuracy(&mut tx, &scope).await?;
    let lost_demand = queries::lost_demand(&mut tx, &scope).await?;
    tx.commit().await?;

    let customers =
        customers::worst_first_compliance(fill_by_customer, otif_by_customer, open_by_customer);
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
