//! The KPI report: a summary record, then one table per breakdown (by day, age, ETA error, lost demand and
//! customer).

use backorder_proto::v1::{
    Aging, AgingBucket, CustomerCompliance, DailyFillRate, ErrorCount, EtaAccuracy, FillRate,
    GetKpisReply, LostDemand, LostDemandRow,
};
use serde_json::{Value, json};

use super::{columns, text, ts};
use crate::render::{Body, Output, Table};

fn fill_cells(fill: Option<&FillRate>) -> Vec<Value> {
    let f = fill.cloned().unwrap_or_default();
    vec![
        json!(f.lines),
        json!(f.lines_filled),
        json!(f.line_fill_rate),
        json!(f.units),
        json!(f.units_filled),
        json!(f.unit_fill_rate),
    ]
}

const FILL: [&str; 6] = [
    "lines",
    "lines_filled",
    "line_fill_rate",
    "units",
    "units_filled",
    "unit_fill_rate",
];

pub fn kpis(reply: &GetKpisReply, customer_id: &str, sku: &str) -> Output {
    let aging = reply.aging.clone().unwrap_or_default();
    let eta = reply.eta_accuracy.clone().unwrap_or_default();
    let lost = reply.lost_demand.clone().unwrap_or_default();
    Output::default()
        .fields(
            "kpis",
            summary(reply, customer_id, sku, &aging, &eta, &lost),
        )
        .section("daily_fill_rate", daily_fill_rate(&reply.daily_fill_rate))
        .section("aging", aging_buckets(&aging.buckets))
        .section("eta_errors", eta_errors(&eta.distribution))
        .section("lost_demand", lost_demand(&lost.rows))
        .section("customers", customers(&reply.customers))
}

/// The window and filters asked for, then every headline figure.
fn summary(
    reply: &GetKpisReply,
    customer_id: &str,
    sku: &str,
    aging: &Aging,
    eta: &EtaAccuracy,
    lost: &LostDemand,
) -> Vec<(&'static str, Value)> {
    let otif = reply.otif.unwrap_or_default();
    let mut summary = vec![
        ("from", ts(reply.from.as_ref())),
        ("to", ts(reply.to.as_ref())),
        ("as_of", ts(reply.as_of.as_ref())),
        ("customer_id", text(customer_id)),
        ("sku", text(sku)),
    ];
    summary.extend(FILL.into_iter().zip(fill_cells(reply.fill_rate.as_ref())));
    summary.extend([
        ("otif_lines", json!(otif.lines)),
        ("otif_lines_on_time", json!(otif.lines_on_time)),
        ("otif_rate", json!(otif.rate)),
        ("open_lines", json!(aging.open_lines)),
        ("open_units", json!(aging.open_units)),
        ("oldest_since", ts(aging.oldest_since.as_ref())),
        ("oldest_age_days", json!(aging.oldest_age_days)),
        (
            "oldest",
            if aging.oldest_order_id.is_empty() {
                Value::Null
            } else {
                json!(format!(
                    "{}/{}",
                    aging.oldest_order_id, aging.oldest_line_no
                ))
            },
        ),
        ("eta_lines", json!(eta.lines)),
        ("eta_mean_error_days", json!(eta.mean_error_days)),
        ("eta_mean_abs_error_days", json!(eta.mean_abs_error_days)),
        ("eta_p90_abs_error_days", json!(eta.p90_abs_error_days)),
        ("eta_within_one_day", json!(eta.within_one_day)),
        ("lost_units", json!(lost.units)),
        ("lost_lines", json!(lost.lines)),
    ]);
    summary
}

fn daily_fill_rate(days: &[DailyFillRate]) -> Body {
    let mut table = Table::new(&columns(&[&["day"], &FILL]));
    for day in days {
        let mut cells = vec![json!(day.day)];
        cells.extend(fill_cells(day.fill_rate.as_ref()));
        table.push(cells);
    }
    Body::Table(table)
}

/// A negative `max_days` marks the open-ended last bucket: null, not a bound.
fn aging_buckets(buckets: &[AgingBucket]) -> Body {
    let mut table = Table::new(&["label", "min_days", "max_days", "lines", "units"]);
    for bucket in buckets {
        table.push(vec![
            json!(bucket.label),
            json!(bucket.min_days),
            if bucket.max_days < 0 {
                Value::Null
            } else {
                json!(bucket.max_days)
            },
            json!(bucket.lines),
            json!(bucket.units),
        ]);
    }
    Body::Table(table)
}

fn eta_errors(distribution: &[ErrorCount]) -> Body {
    let mut table = Table::new(&["error_days", "lines"]);
    for count in distribution {
        table.push(vec![json!(count.error_days), json!(count.lines)]);
    }
    Body::Table(table)
}

fn lost_demand(rows: &[LostDemandRow]) -> Body {
    let mut table = Table::new(&["reason", "sku", "units", "lines"]);
    for row in rows {
        table.push(vec![
            json!(row.reason),
            json!(row.sku),
            json!(row.units),
            json!(row.lines),
        ]);
    }
    Body::Table(table)
}

fn customers(compliance: &[CustomerCompliance]) -> Body {
    let mut table = Table::new(&[
        "customer_id",
        "otif_lines",
        "otif_lines_on_time",
        "otif_rate",
        "late_lines",
        "late_units",
        "open_lines",
        "line_fill_rate",
        "unit_fill_rate",
    ]);
    for c in compliance {
        let otif = c.otif.unwrap_or_default();
        let fill = c.fill_rate.unwrap_or_default();
        table.push(vec![
            json!(c.customer_id),
            json!(otif.lines),
            json!(otif.lines_on_time),
            json!(otif.rate),
            json!(c.late_lines),
            json!(c.late_units),
            json!(c.open_lines),
            json!(fill.line_fill_rate),
            json!(fill.unit_fill_rate),
        ]);
    }
    Body::Table(table)
}
