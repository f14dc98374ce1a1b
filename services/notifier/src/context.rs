//! What a template is given: the context of a notice (its order, lines, dates in the customer's language),
//! and the sample notices every template is tried with when it loads and shown with. Pure, no I/O.

use backorder_proto::v1::customer_event::Kind;
use backorder_proto::v1::{Customer, CustomerEvent, CustomerEventLine};
use chrono::{TimeZone, Utc};
use minijinja::Value;
use minijinja::value::Serde;
use serde::Serialize;

use crate::coalesce::Notice;

/// The file-name form of a kind: `BACKORDERED` → `backordered`.
pub fn kind_name(kind: Kind) -> String {
    kind.as_str_name().to_ascii_lowercase()
}

/// The template kind for a notice: its one kind, or `update` for several.
pub fn template_kind(notice: &Notice) -> String {
    match notice.kinds.as_slice() {
        [one] => kind_name(*one),
        _ => "update".to_string(),
    }
}

#[derive(Serialize)]
struct Context {
    order_id: String,
    customer_id: String,
    /// The template directory used (`de`), and its language, which the date and number filters follow.
    locale: String,
    lang: String,
    kind: String,
    kinds: Vec<String>,
    total: i64,
    lines: Vec<LineContext>,
    respond_by: Option<String>,
    /// The rendered subject, for the HTML title; empty while the subject itself renders.
    subject: String,
}

#[derive(Serialize)]
struct LineContext {
    line_no: u32,
    sku: String,
    /// The units the message is about on this line.
    quantity: i64,
    ordered: i64,
    allocated: i64,
    backordered: i64,
    shipped: i64,
    cancelled: i64,
    preorder: bool,
    eta: Option<String>,
    eta_estimated: bool,
    eta_late: bool,
    promised_eta: Option<String>,
    changes: Vec<ChangeContext>,
}

#[derive(Serialize)]
struct ChangeContext {
    kind: String,
    quantity: i64,
}

/// A date as templates see it. One outside the bounds' years (allocation's, so it should not happen) reads as
/// not known: a date past 9999 has no RFC 3339 form, and would fail the whole message.
fn time(t: &Option<prost_types::Timestamp>) -> Option<String> {
    t.as_ref()
        .and_then(backorder_runtime::time::from_proto)
        .filter(|t| backorder_runtime::limits::in_years(*t))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// What the templates of locale directory `dir` are given for `notice`; `subject`: the rendered subject,
/// empty while the subject itself renders.
pub fn value(notice: &Notice, dir: &str, subject: &str) -> Value {
    Value::from(Serde(context(notice, dir, subject)))
}

fn context(notice: &Notice, dir: &str, subject: &str) -> Context {
    Context {
        order_id: notice.order_id.clone(),
        customer_id: notice.customer.id.clone(),
        locale: dir.to_string(),
        lang: crate::locale::language(dir).to_string(),
        kind: kind_name(notice.kind()),
        kinds: notice.kinds.iter().map(|k| kind_name(*k)).collect(),
        total: notice.total(),
        lines: notice
            .lines
            .iter()
            .map(|l| LineContext {
                line_no: l.line.line_no,
                sku: l.line.sku.clone(),
                quantity: l.quantity(),
                ordered: l.line.ordered,
                allocated: l.line.allocated,
                backordered: l.line.backordered,
                shipped: l.line.shipped,
                cancelled: l.line.cancelled,
                preorder: l.line.preorder,
                eta: time(&l.line.eta),
                eta_estimated: l.line.eta_estimated,
                eta_late: l.line.eta_late,
                promised_eta: time(&l.line.promised_eta),
                changes: l
                    .changes
                    .iter()
                    .map(|c| ChangeContext {
                        kind: kind_name(c.kind),
                        quantity: c.quantity,
                    })
                    .collect(),
            })
            .collect(),
        respond_by: time(&notice.respond_by),
        subject: subject.to_string(),
    }
}

/// Sample events of `kind` (a template kind) for an order with three lines: waiting with a confirmed, an
/// estimated and no date, partly shipped and cancelled; used to check templates and to show them.
pub fn sample_events(kind: &str) -> Vec<CustomerEvent> {
    let at = |d| {
        Some(backorder_runtime::time::to_proto(
            Utc.with_ymd_and_hms(2026, 12, d, 0, 0, 0)
                .single()
                .unwrap_or_default(),
        ))
    };
    let lines = |quantity: i64| {
        vec![
            CustomerEventLine {
                line_no: 1,
                sku: "CHAIR-OAK".into(),
                quantity,
                eta: at(14),
                ordered: 1200,
                allocated: 700,
                backordered: 500,
                promised_eta: at(10),
                ..Default::default()
            },
            CustomerEventLine {
                line_no: 2,
                sku: "TABLE-ASH".into(),
                quantity: quantity.min(2),
                eta: at(21),
                ordered: 4,
                shipped: 1,
                backordered: 2,
                cancelled: 1,
                eta_estimated: true,
                eta_late: kind == "delay_consent_required",
                ..Default::default()
            },
            CustomerEventLine {
                line_no: 3,
                sku: "LAMP-<b>&\"BRASS\"".into(),
                quantity: 0,
                ordered: 3,
                backordered: 3,
                preorder: true,
                ..Default::default()
            },
        ]
    };
    let event = |id: &str, kind: Kind, quantity| CustomerEvent {
        event_id: id.into(),
        kind: kind as i32,
        order_id: "SO-1042".into(),
        customer: Some(Customer {
            id: "C-7".into(),
            email: "buyer@example.com".into(),
            phone: "+4915112345678".into(),
            locale: String::new(),
            time_zone: "Europe/Berlin".into(),
        }),
        lines: lines(quantity),
        occurred_at: at(1),
        respond_by: if kind == Kind::DelayConsentRequired {
            at(8)
        } else {
            None
        },
    };
    match kind {
        "update" => vec![
            event("sample-1", Kind::ReadyToShip, 300),
            event("sample-2", Kind::Cancelled, 2),
            event("sample-3", Kind::DelayConsentRequired, 5),
        ],
        other => {
            let kind = Kind::from_str_name(&other.to_ascii_uppercase()).unwrap_or(Kind::Shipped);
            vec![event("sample-1", kind, 300)]
        }
    }
}

/// Template contexts for `kind` in locale directory `dir`: the sample order, and one with nothing but a
/// single plain line, so templates are tried with and without dates.
pub fn samples(kind: &str, dir: &str) -> Vec<Value> {
    let mut notices = Vec::new();
    if let Some(notice) = crate::coalesce::coalesce(&sample_events(kind)) {
        let mut bare = notice.clone();
        bare.lines.truncate(1);
        if let Some(first) = bare.lines.first_mut() {
            first.line.eta = None;
        }
        bare.respond_by = None;
        notices.push(notice);
        notices.push(bare);
    }
    notices
        .iter()
        .map(|n| value(n, dir, "Sample subject"))
        .collect()
}
