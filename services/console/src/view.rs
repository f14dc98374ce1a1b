//! Small pieces every page shows the same way: dates, statuses, flags, aging colours, rates.

use backorder_proto::Timestamp;
use backorder_proto::v1 as pb;
use maud::{Markup, html};

use crate::query::{order_href, sku_href};

/// An aging bucket of the worklist and the KPI histogram (the same edges as the API's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgeBucket {
    pub label: &'static str,
    pub min_days: i32,
    /// `i32::MAX`: no upper bound.
    pub max_days: i32,
    /// The CSS class of a row or badge in this bucket.
    pub class: &'static str,
    /// Its colour in charts.
    pub colour: &'static str,
}

pub const AGE_BUCKETS: [AgeBucket; 5] = [
    AgeBucket {
        label: "0-2",
        min_days: 0,
        max_days: 2,
        class: "age-a",
        colour: "#37b24d",
    },
    AgeBucket {
        label: "3-7",
        min_days: 3,
        max_days: 7,
        class: "age-b",
        colour: "#f2b705",
    },
    AgeBucket {
        label: "8-14",
        min_days: 8,
        max_days: 14,
        class: "age-c",
        colour: "#f76707",
    },
    AgeBucket {
        label: "15-30",
        min_days: 15,
        max_days: 30,
        class: "age-d",
        colour: "#e03131",
    },
    AgeBucket {
        label: "31+",
        min_days: 31,
        max_days: i32::MAX,
        class: "age-e",
        colour: "#862e9c",
    },
];

/// The bucket a line waiting `days` whole days falls in (a negative age, a clock skew, is fresh).
pub fn age_bucket(days: i32) -> &'static AgeBucket {
    AGE_BUCKETS
        .iter()
        .find(|b| days <= b.max_days)
        .unwrap_or(&AGE_BUCKETS[AGE_BUCKETS.len() - 1])
}

/// The bucket with this label (as the API names them), for colouring its histogram.
pub fn bucket_by_label(label: &str) -> Option<&'static AgeBucket> {
    AGE_BUCKETS.iter().find(|b| b.label == label)
}

pub fn date(ts: Option<&Timestamp>) -> String {
    ts.and_then(backorder_runtime::time::from_proto)
        .map(|at| at.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

pub fn datetime(ts: Option<&Timestamp>) -> String {
    ts.and_then(backorder_runtime::time::from_proto)
        .map(|at| at.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// A share as a percentage with one decimal, e.g. "87.5%".
pub fn percent(share: f64) -> String {
    if share.is_finite() {
        format!("{:.1}%", share * 100.0)
    } else {
        "–".into()
    }
}

/// "1 line", "3 lines".
pub fn count(n: i64, singular: &str) -> String {
    if n == 1 {
        format!("1 {singular}")
    } else {
        format!("{n} {singular}s")
    }
}

/// A number of days with a sign, e.g. "+2", "0", "−1".
pub fn signed_days(days: i32) -> String {
    match days {
        0 => "0".into(),
        d if d > 0 => format!("+{d}"),
        d => format!("−{}", d.unsigned_abs()),
    }
}

/// An order status in words, and the class of its badge.
pub fn status(status: i32) -> (&'static str, &'static str) {
    use pb::order_status::Status;
    match Status::try_from(status).unwrap_or(Status::Unspecified) {
        Status::Unspecified => ("unknown", "badge"),
        Status::Open => ("open", "badge"),
        Status::PartiallyAllocated => ("partially allocated", "badge warn"),
        Status::Backordered => ("backordered", "badge bad"),
        Status::Allocated => ("allocated", "badge good"),
        Status::PartiallyShipped => ("partially shipped", "badge info"),
        Status::Completed => ("completed", "badge good"),
        Status::Cancelled => ("cancelled", "badge muted"),
        Status::Preordered => ("pre-ordered", "badge info"),
    }
}

pub fn status_badge(value: i32) -> Markup {
    let (label, class) = status(value);
    html! { span class=(class) { (label) } }
}

pub fn ship_policy(value: i32) -> &'static str {
    match pb::ShipPolicy::try_from(value) {
        Ok(pb::ShipPolicy::ShipComplete) => "ship complete",
        _ => "ship partial",
    }
}

/// A promise: its ETA with the flags, and the first date promised when it differs.
pub fn eta(promise: Option<&pb::Promise>) -> Markup {
    let Some(p) = promise else {
        return html! { span class="muted" { "–" } };
    };
    html! {
        @if p.eta.is_some() {
            span class="nowrap" { (date(p.eta.as_ref())) }
        } @else {
            span class="muted" { "no date" }
        }
        (flags(p))
    }
}

pub fn flags(p: &pb::Promise) -> Markup {
    html! {
        @if p.late { " " span class="badge bad" title="Late against the first date promised" { "late" } }
        @if p.eta_late { " " span class="badge warn" title="The ETA rests on an overdue purchase order" { "PO overdue" } }
        @if p.eta_estimated { " " span class="badge muted" title="Estimated from the SKU's lead time: no purchase order covers it" { "estimate" } }
    }
}

pub fn promised(promise: Option<&pb::Promise>) -> Markup {
    match promise.and_then(|p| p.promised_eta.as_ref()) {
        Some(ts) => html! { span class="nowrap" { (date(Some(ts))) } },
        None => html! { span class="muted" { "–" } },
    }
}

/// A queue place: "#3 · 12 ahead".
pub fn queue_place(place: Option<&pb::QueuePlace>) -> Markup {
    match place {
        Some(q) if q.position > 0 => html! {
            span class="nowrap" { "#" (q.position) }
            @if q.units_ahead > 0 { " " span class="muted nowrap" { (q.units_ahead) " ahead" } }
        },
        _ => html! { span class="muted" { "–" } },
    }
}

/// The purchase order that covers a line: "PO-7/1 · 2026-12-01".
pub fn covering_po(place: Option<&pb::QueuePlace>) -> Markup {
    match place {
        Some(q) if !q.po_id.is_empty() => html! {
            span class="nowrap" { (q.po_id) "/" (q.po_line_no) }
            @if q.po_expected_at.is_some() { " " span class="muted nowrap" { (date(q.po_expected_at.as_ref())) } }
        },
        _ => html! { span class="muted" { "none" } },
    }
}

pub fn order_link(order_id: &str) -> Markup {
    html! { a href=(order_href(order_id)) class="mono" { (order_id) } }
}

pub fn sku_link(sku: &str) -> Markup {
    html! { a href=(sku_href(sku)) class="mono" { (sku) } }
}

/// A small funnel, for "filter by this": drawn, so no font needs the glyph.
pub fn funnel() -> Markup {
    html! {
        svg class="icon" viewBox="0 0 16 16" width="11" height="11" aria-hidden="true" {
            path d="M1 2h14l-5.5 6.5V14l-3-1.6V8.5z" fill="currentColor" {}
        }
    }
}

/// The age badge of a worklist row.
pub fn age_badge(days: i32) -> Markup {
    let bucket = age_bucket(days);
    html! {
        span class={"age " (bucket.class)} title={"waiting " (days) " days (bucket " (bucket.label) ")"} {
            (days.max(0)) "d"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_fall_into_the_five_buckets_at_their_edges() {
        let label = |d| age_bucket(d).label;
        assert_eq!(
            [0, 2, 3, 7, 8, 14, 15, 30, 31, 400].map(label),
            [
                "0-2", "0-2", "3-7", "3-7", "8-14", "8-14", "15-30", "15-30", "31+", "31+"
            ]
        );
        assert_eq!(label(-1), "0-2");
        assert_eq!(age_bucket(20).class, "age-d");
        // Every bucket has its own colour, and the API's labels find them.
        let colours: std::collections::HashSet<_> = AGE_BUCKETS.iter().map(|b| b.colour).collect();
        assert_eq!(colours.len(), 5);
        assert_eq!(bucket_by_label("31+").map(|b| b.class), Some("age-e"));
        assert_eq!(bucket_by_label("9-9"), None);
    }

    #[test]
    fn numbers_and_dates_read_as_people_write_them() {
        assert_eq!(percent(0.875), "87.5%");
        assert_eq!(
            [count(1, "line"), count(0, "line"), count(3, "unit")],
            ["1 line", "0 lines", "3 units"]
        );
        assert_eq!(percent(f64::NAN), "–");
        assert_eq!(
            [signed_days(2), signed_days(0), signed_days(-3)],
            ["+2", "0", "−3"]
        );
        let ts = Timestamp {
            seconds: 1_795_453_500,
            nanos: 0,
        };
        assert_eq!(date(Some(&ts)), "2026-11-23");
        assert_eq!(datetime(Some(&ts)), "2026-11-23 17:05");
        assert_eq!(date(None), "");
    }

    #[test]
    fn a_promise_shows_its_flags() {
        let p = pb::Promise {
            late: true,
            eta_estimated: true,
            ..Default::default()
        };
        let text = eta(Some(&p)).into_string();
        assert!(
            text.contains("no date") && text.contains("late") && text.contains("estimate"),
            "{text}"
        );
        assert!(!text.contains("PO overdue"));
    }
}
