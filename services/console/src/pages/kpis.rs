//! `/kpis`: the desk's figures over a window (docs/kpis.md), as pictures: fill rate per day, aging, ETA
//! error, lost demand, and the per-customer compliance table.

use backorder_proto::v1 as pb;
use chrono::NaiveDate;
use maud::{Markup, html};

use super::{Frame, Section, cards, heading, layout, notice};
use crate::api::Failure;
use crate::chart::{self, Bar, Series};
use crate::query::{KpiQuery, WorklistQuery};
use crate::view;

/// The reasons demand is lost, as the API names them, in words and colours.
pub const LOST_REASONS: [(&str, &str, &str); 4] = [
    ("not_backorderable", "not backorderable", "#868e96"),
    ("over_cap", "over the cap", "#f76707"),
    ("no_consent", "no consent", "#ae3ec9"),
    ("customer_cancelled", "cancelled by customer", "#e03131"),
];

pub fn page(frame: &Frame, query: &KpiQuery, reply: Result<&pb::GetKpisReply, &Failure>) -> Markup {
    let sub = reply.ok().map(|r| {
        html! {
            "Window " strong { (view::date(r.from.as_ref())) " – " (last_day(r.to.as_ref())) }
            @if !query.customer.trim().is_empty() { " · customer " strong { (query.customer.trim()) } }
            @if !query.sku.trim().is_empty() { " · SKU " strong { (query.sku.trim()) } }
            span class="muted" { " · as of " (view::datetime(r.as_of.as_ref())) " UTC" }
        }
    });
    let body = html! {
        (heading(html! { "KPIs" }, sub))
        (filters(query))
        @match reply {
            Err(failure) => (notice("bad", super::failure_title(failure), html! { (failure.message) })),
            Ok(reply) => (figures(reply)),
        }
    };
    layout(frame, Section::Kpis, "KPIs", body)
}

/// The window's last day: `to` is exclusive.
fn last_day(to: Option<&prost_types::Timestamp>) -> String {
    let before = to.map(|t| prost_types::Timestamp {
        seconds: t.seconds - 1,
        nanos: 0,
    });
    view::date(before.as_ref())
}

fn filters(query: &KpiQuery) -> Markup {
    html! {
        form class="filters" method="get" action="/kpis" {
            label { span { "From" } input type="date" name="from" value=(query.from); }
            label { span { "To" } input type="date" name="to" value=(query.to); }
            label { span { "Customer" } input type="text" name="customer" value=(query.customer) placeholder="all"; }
            label { span { "SKU" } input type="text" name="sku" value=(query.sku) placeholder="all"; }
            div class="buttons" {
                button type="submit" class="primary" { "Apply" }
                @if *query != KpiQuery::default() { a class="button" href="/kpis" { "Last 30 days, everything" } }
            }
        }
    }
}

fn figures(r: &pb::GetKpisReply) -> Markup {
    let fill = r.fill_rate.unwrap_or_default();
    let otif = r.otif.unwrap_or_default();
    let aging = r.aging.clone().unwrap_or_default();
    let eta = r.eta_accuracy.clone().unwrap_or_default();
    let lost = r.lost_demand.clone().unwrap_or_default();
    html! {
        (cards(&[
            ("line fill rate", html! { (rate_or_dash(fill.line_fill_rate, fill.lines)) small { (fill.lines_filled) " of " (view::count(fill.lines as i64, "line")) } }),
            ("unit fill rate", html! { (rate_or_dash(fill.unit_fill_rate, fill.units as u64)) small { (fill.units_filled) " of " (view::count(fill.units, "unit")) } }),
            ("on time in full", html! { (rate_or_dash(otif.rate, otif.lines)) small { (otif.lines_on_time) " of " (view::count(otif.lines as i64, "backordered line")) } }),
            ("open backorders", html! { (aging.open_lines) small { (view::count(aging.open_units, "unit")) } }),
            ("oldest", html! {
                @if aging.oldest_since.is_some() { (aging.oldest_age_days) "d" small { (view::order_link(&aging.oldest_order_id)) " · " (aging.oldest_line_no) } }
                @else { "–" small { "nothing waits" } }
            }),
            ("ETA within a day", html! {
                (rate_or_dash(eta.within_one_day, eta.lines))
                @if eta.lines > 0 { small { "p90 " (format!("{:.1}", eta.p90_abs_error_days)) " d · mean " (format!("{:+.1}", eta.mean_error_days)) " d" } }
                @else { small { "no backorder line ready yet" } }
            }),
            ("lost demand", html! { (lost.units) small { (if lost.units == 1 { "unit" } else { "units" }) " on " (view::count(lost.lines as i64, "line")) } }),
        ]))
        div class="charts" {
            figure class="chart-card" {
                figcaption { "Fill rate at order time, per day" }
                (fill_rate_chart(r))
                div class="chart-legend" { span class="key s1" {} "lines" span class="key s2" {} "units" }
            }
            figure class="chart-card" {
                figcaption { "Backorder aging: open lines by days waiting" }
                (aging_chart(&aging))
            }
            figure class="chart-card" {
                figcaption { "ETA error: days ready after the first promise" }
                (eta_error_chart(&eta))
                div class="chart-legend" { span class="key early" {} "early" span class="key ontime" {} "within a day" span class="key latek" {} "late" }
            }
            figure class="chart-card" {
                figcaption { "Lost demand by reason (units)" }
                (lost_chart(&lost))
            }
        }
        section {
            h2 { "Retailer compliance" }
            (compliance(&r.customers))
        }
        @if !lost.rows.is_empty() {
            section {
                h2 { "Lost demand by reason and SKU" }
                div class="table-wrap" {
                    table class="grid" {
                        thead { tr { th { "Reason" } th { "SKU" } th class="num" { "Units" } th class="num" { "Lines" } } }
                        tbody {
                            @for row in &lost.rows {
                                tr { td { (reason_label(&row.reason)) } td { (view::sku_link(&row.sku)) } td class="num" { (row.units) } td class="num" { (row.lines) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn rate_or_dash(rate: f64, of: u64) -> String {
    if of == 0 {
        "–".into()
    } else {
        view::percent(rate)
    }
}

pub fn reason_label(reason: &str) -> &str {
    LOST_REASONS
        .iter()
        .find(|(name, _, _)| *name == reason)
        .map(|(_, label, _)| *label)
        .unwrap_or(reason)
}

/// Up to `max` dates to label a time axis from `first` to `last` (both shown), as (share of the span, "MM-DD").
pub fn time_ticks(first: NaiveDate, last: NaiveDate, max: usize) -> Vec<(f64, String)> {
    let span = (last - first).num_days().max(1);
    let step = (span as f64 / (max.max(2) - 1) as f64).ceil().max(1.0) as i64;
    let label = |d: NaiveDate| d.format("%m-%d").to_string();
    let mut offsets: Vec<i64> = (0..).map(|k| k * step).take_while(|o| *o < span).collect();
    // The last day always shows; a tick closer to it than half a step gives way.
    if offsets.len() > 1 && offsets.last().is_some_and(|o| 2 * (span - o) < step) {
        offsets.pop();
    }
    let mut ticks: Vec<(f64, String)> = offsets
        .into_iter()
        .map(|o| {
            (
                o as f64 / span as f64,
                label(first + chrono::Duration::days(o)),
            )
        })
        .collect();
    ticks.push((1.0, label(last)));
    ticks
}

fn day_of(ts: Option<&prost_types::Timestamp>) -> Option<NaiveDate> {
    ts.and_then(backorder_runtime::time::from_proto)
        .map(|at| at.date_naive())
}

/// The daily fill rates on the window's time axis: a day without orders is a gap in time, not a point.
pub fn fill_rate_chart(r: &pb::GetKpisReply) -> Markup {
    let days: Vec<(NaiveDate, &pb::DailyFillRate)> = r
        .daily_fill_rate
        .iter()
        .filter_map(|d| {
            NaiveDate::parse_from_str(&d.day, "%Y-%m-%d")
                .ok()
                .map(|day| (day, d))
        })
        .collect();
    let first = day_of(r.from.as_ref()).or(days.first().map(|d| d.0));
    let last =
        r.to.as_ref()
            .map(|t| prost_types::Timestamp {
                seconds: t.seconds - 1,
                nanos: 0,
            })
            .and_then(|t| day_of(Some(&t)))
            .or(days.last().map(|d| d.0));
    let (Some(first), Some(last)) = (first, last) else {
        return chart::rate_lines(&[], &[], &[], &[], "No orders placed in this window");
    };
    let span = (last - first).num_days().max(1) as f64;
    let at: Vec<f64> = days
        .iter()
        .map(|(day, _)| (*day - first).num_days() as f64 / span)
        .collect();
    let labels: Vec<String> = days.iter().map(|(_, d)| d.day.clone()).collect();
    let rate = |pick: fn(&pb::FillRate) -> f64| -> Vec<f64> {
        days.iter()
            .map(|(_, d)| d.fill_rate.as_ref().map(pick).unwrap_or(0.0))
            .collect()
    };
    chart::rate_lines(
        &at,
        &labels,
        &time_ticks(first, last, 7),
        &[
            Series {
                name: "line fill rate",
                class: "s1",
                values: rate(|f| f.line_fill_rate),
            },
            Series {
                name: "unit fill rate",
                class: "s2",
                values: rate(|f| f.unit_fill_rate),
            },
        ],
        "No orders placed in this window",
    )
}

pub fn aging_chart(aging: &pb::Aging) -> Markup {
    let bars: Vec<Bar> = aging
        .buckets
        .iter()
        .map(|b| {
            let colour = view::bucket_by_label(&b.label)
                .map(|x| x.colour)
                .unwrap_or("#868e96");
            Bar {
                label: format!("{} d", b.label),
                value: b.lines as f64,
                value_label: b.lines.to_string(),
                colour: colour.into(),
                title: format!("{} days: {} lines, {} units", b.label, b.lines, b.units),
            }
        })
        .collect();
    chart::bars(&bars, "No open backorders")
}

/// The error distribution with the days between its ends filled in, so the bars read as a histogram (a
/// long tail keeps only the days that have lines).
pub fn eta_error_bars(distribution: &[pb::ErrorCount]) -> Vec<Bar> {
    let (Some(min), Some(max)) = (
        distribution.iter().map(|e| e.error_days).min(),
        distribution.iter().map(|e| e.error_days).max(),
    ) else {
        return Vec::new();
    };
    let days: Vec<i32> = if max - min <= 40 {
        (min..=max).collect()
    } else {
        distribution.iter().map(|e| e.error_days).collect()
    };
    days.into_iter()
        .map(|day| {
            let lines: u64 = distribution
                .iter()
                .filter(|e| e.error_days == day)
                .map(|e| e.lines)
                .sum();
            let colour = match day {
                d if d < -1 => "#4dabf7",
                d if d > 1 => "#f76707",
                _ => "#37b24d",
            };
            Bar {
                label: view::signed_days(day),
                value: lines as f64,
                value_label: lines.to_string(),
                colour: colour.into(),
                title: format!("{} days: {lines} lines", view::signed_days(day)),
            }
        })
        .collect()
}

pub fn eta_error_chart(eta: &pb::EtaAccuracy) -> Markup {
    chart::bars(
        &eta_error_bars(&eta.distribution),
        "No backorder line became ready in this window",
    )
}

/// Units lost per reason, every reason shown (zero too), then any reason the API adds.
pub fn lost_bars(lost: &pb::LostDemand) -> Vec<Bar> {
    let mut reasons: Vec<(String, String, String)> = LOST_REASONS
        .iter()
        .map(|(name, label, colour)| (name.to_string(), label.to_string(), colour.to_string()))
        .collect();
    for row in &lost.rows {
        if !reasons.iter().any(|(name, _, _)| *name == row.reason) {
            reasons.push((row.reason.clone(), row.reason.clone(), "#495057".into()));
        }
    }
    reasons
        .into_iter()
        .map(|(name, label, colour)| {
            let rows = lost.rows.iter().filter(|r| r.reason == name);
            let (units, lines) = rows.fold((0i64, 0u64), |(u, l), r| (u + r.units, l + r.lines));
            Bar {
                title: format!("{label}: {units} units on {lines} lines"),
                label,
                value: units as f64,
                value_label: units.to_string(),
                colour,
            }
        })
        .collect()
}

pub fn lost_chart(lost: &pb::LostDemand) -> Markup {
    chart::bars(&lost_bars(lost), "No demand lost in this window")
}

fn compliance(customers: &[pb::CustomerCompliance]) -> Markup {
    if customers.is_empty() {
        return html! { p class="muted" { "No customer has lines in this window." } };
    }
    html! {
        div class="table-wrap" {
            table class="grid compliance" {
                thead {
                    tr {
                        th { "Customer" } th { "On time in full" } th class="num" { "On time" } th class="num" { "Due" }
                        th class="num" { "Late now" } th class="num" { "Late units" } th class="num" { "Open lines" } th class="num" { "Line fill rate" }
                    }
                }
                tbody {
                    @for c in customers {
                        @let otif = c.otif.unwrap_or_default();
                        @let fill = c.fill_rate.unwrap_or_default();
                        tr {
                            td { a href=(WorklistQuery { customer: c.customer_id.clone(), ..Default::default() }.href()) title="Open backorders of this customer" { (c.customer_id) } }
                            td class="meter-cell" {
                                @if otif.lines > 0 {
                                    span class="meter" { span class=(meter_class(otif.rate)) style={"width:" (format!("{:.0}", otif.rate.clamp(0.0, 1.0) * 100.0)) "%"} {} }
                                    " " (view::percent(otif.rate))
                                } @else { span class="muted" { "nothing due" } }
                            }
                            td class="num" { (otif.lines_on_time) }
                            td class="num" { (otif.lines) }
                            td class="num" { @if c.late_lines > 0 { span class="badge bad" title="Deduction risk" { (c.late_lines) } } @else { "0" } }
                            td class="num" { (c.late_units) }
                            td class="num" { (c.open_lines) }
                            td class="num" { (rate_or_dash(fill.line_fill_rate, fill.lines)) }
                        }
                    }
                }
            }
        }
    }
}

fn meter_class(rate: f64) -> &'static str {
    match rate {
        r if r >= 0.95 => "fill good",
        r if r >= 0.8 => "fill warn",
        _ => "fill bad",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_histogram_fills_the_days_between_its_ends() {
        let dist = [
            pb::ErrorCount {
                error_days: -2,
                lines: 1,
            },
            pb::ErrorCount {
                error_days: 0,
                lines: 5,
            },
            pb::ErrorCount {
                error_days: 3,
                lines: 2,
            },
        ];
        let bars = eta_error_bars(&dist);
        let labels: Vec<&str> = bars.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(labels, ["−2", "−1", "0", "+1", "+2", "+3"]);
        let values: Vec<f64> = bars.iter().map(|b| b.value).collect();
        assert_eq!(values, [1.0, 0.0, 5.0, 0.0, 0.0, 2.0]);
        // Early, on time (within a day) and late have their own colours.
        assert_ne!(bars[0].colour, bars[2].colour);
        assert_ne!(bars[2].colour, bars[5].colour);
        assert_eq!(bars[1].colour, bars[2].colour);
        // A long tail keeps the days that have lines only.
        let tail = [
            pb::ErrorCount {
                error_days: 0,
                lines: 1,
            },
            pb::ErrorCount {
                error_days: 90,
                lines: 1,
            },
        ];
        assert_eq!(eta_error_bars(&tail).len(), 2);
        assert!(eta_error_bars(&[]).is_empty());
    }

    #[test]
    fn the_time_axis_is_labelled_from_the_first_day_to_the_last() {
        let day = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
        let ticks = time_ticks(day("2026-11-02"), day("2026-12-01"), 7);
        let labels: Vec<&str> = ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(
            labels,
            [
                "11-02", "11-07", "11-12", "11-17", "11-22", "11-27", "12-01"
            ]
        );
        assert_eq!((ticks[0].0, ticks[6].0), (0.0, 1.0));
        // A tick that would crowd the last one is left out: with a span of 10 and a step of 4, 11-09 is half a
        // step from 11-11 and stays; with a span of 7 and a step of 3, 11-07 is a day from 11-08 and goes.
        let labels = |last| -> Vec<String> {
            time_ticks(day("2026-11-01"), day(last), 4)
                .into_iter()
                .map(|t| t.1)
                .collect()
        };
        assert_eq!(labels("2026-11-11"), ["11-01", "11-05", "11-09", "11-11"]);
        assert_eq!(labels("2026-11-10"), ["11-01", "11-04", "11-07", "11-10"]);
        assert_eq!(labels("2026-11-08"), ["11-01", "11-04", "11-08"]);
        // A one-day window still has both ends.
        assert_eq!(time_ticks(day("2026-11-01"), day("2026-11-01"), 7).len(), 2);
    }

    #[test]
    fn days_without_orders_are_gaps_in_time() {
        let ts = |d: &str| {
            let at = NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc();
            Some(backorder_runtime::time::to_proto(at))
        };
        let rate = |r: f64| {
            Some(pb::FillRate {
                lines: 1,
                line_fill_rate: r,
                unit_fill_rate: r,
                ..Default::default()
            })
        };
        let reply = pb::GetKpisReply {
            from: ts("2026-11-01"),
            to: ts("2026-11-11"),
            daily_fill_rate: vec![
                pb::DailyFillRate {
                    day: "2026-11-01".into(),
                    fill_rate: rate(1.0),
                },
                pb::DailyFillRate {
                    day: "2026-11-10".into(),
                    fill_rate: rate(0.5),
                },
            ],
            ..Default::default()
        };
        let svg = fill_rate_chart(&reply).into_string();
        let xs: Vec<f64> = svg
            .split("<circle ")
            .skip(1)
            .filter_map(|c| c.split("cx=\"").nth(1)?.split('"').next()?.parse().ok())
            .collect();
        // Two series of two points: 11-01 at the left edge, 11-10 at the right edge (the window's last day).
        assert_eq!(xs.len(), 4);
        assert!(xs[0] < xs[1] && (xs[0] - xs[2]).abs() < 0.1, "{xs:?}");
        assert!(svg.contains(">11-10<"), "{svg}");
    }

    #[test]
    fn lost_demand_sums_per_reason_and_shows_every_reason() {
        let row = |reason: &str, sku: &str, units, lines| pb::LostDemandRow {
            reason: reason.into(),
            sku: sku.into(),
            units,
            lines,
        };
        let lost = pb::LostDemand {
            units: 12,
            lines: 4,
            rows: vec![
                row("over_cap", "A", 5, 1),
                row("over_cap", "B", 3, 2),
                row("customer_cancelled", "A", 2, 1),
                row("fraud", "A", 2, 1),
            ],
        };
        let bars = lost_bars(&lost);
        let got: Vec<(&str, f64)> = bars.iter().map(|b| (b.label.as_str(), b.value)).collect();
        assert_eq!(
            got,
            [
                ("not backorderable", 0.0),
                ("over the cap", 8.0),
                ("no consent", 0.0),
                ("cancelled by customer", 2.0),
                ("fraud", 2.0)
            ]
        );
        assert_eq!(bars[1].title, "over the cap: 8 units on 3 lines");
    }

    #[test]
    fn aging_bars_take_the_bucket_colours() {
        let aging = pb::Aging {
            buckets: view::AGE_BUCKETS
                .iter()
                .enumerate()
                .map(|(i, b)| pb::AgingBucket {
                    label: b.label.into(),
                    lines: i as u64,
                    units: 2 * i as i64,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let svg = aging_chart(&aging).into_string();
        for b in &view::AGE_BUCKETS[1..] {
            assert!(svg.contains(b.colour), "{} missing", b.colour);
        }
        assert!(svg.contains("15-30 days: 3 lines, 6 units"), "{svg}");
    }
}
