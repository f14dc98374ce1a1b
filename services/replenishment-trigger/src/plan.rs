//! From a shortage report to request lines, and from gathered lines to the request a buyer reads. Pure, no
//! I/O: the service reads the state, calls these, and stores and publishes what they return.

use std::collections::BTreeMap;

use backorder_proto::v1::{PurchaseRequest, PurchaseRequestLine, ReorderNeeded};
use backorder_runtime::{limits, time};
use chrono::{DateTime, TimeDelta, Utc};

use crate::policy::{self, Origin, Policy};
use crate::store::{Batch, LineNote, Sent};

/// A line to add to the supplier's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub quantity: i64,
    pub note: LineNote,
    /// The SKU's shortage reached its urgent threshold: the request goes out now.
    pub urgent: bool,
}

/// What to request for the SKU of `event`, given `requested` units already asked for and unanswered; `None`
/// when stock, open supply and open requests cover it.
pub fn plan(
    event: &ReorderNeeded,
    requested: i64,
    policy: &Policy,
    origin: Origin,
    now: DateTime<Utc>,
) -> Option<Planned> {
    let position = policy::position(event.available, event.inbound, requested, event.backordered);
    let quantity = policy.order_quantity(position);
    if quantity == 0 {
        return None;
    }
    let earliest = limits::add(now, limits::days(policy.lead_time_days.into()));
    let promised = event
        .needed_by
        .as_ref()
        .and_then(time::from_proto)
        .map(|at| at.max(now));
    let need_by = promised.unwrap_or(earliest);
    // A promise made from this lead time falls on `earliest` give or take the hours since it was made: only a
    // day or more sooner asks to expedite.
    let expedite = need_by <= limits::sub(earliest, TimeDelta::days(1));

    let mut reason = format!(
        "{} {} for {}; {} not covered by free stock ({}) or open purchase orders ({}); {} already \
         requested. {} → order {}.",
        plural(event.orders_waiting, "customer order"),
        if event.orders_waiting == 1 {
            "waits"
        } else {
            "wait"
        },
        plural(event.backordered, "unit"),
        event.shortage,
        event.available,
        event.inbound,
        requested,
        capitalize(&policy.describe()),
        quantity,
    );
    if expedite {
        reason.push_str(&format!(
            " Needed by {} to keep the earliest date promised, sooner than the {}-day lead time: expedite.",
            need_by.format("%Y-%m-%d"),
            policy.lead_time_days
        ));
    }
    if origin == Origin::Default {
        reason.push_str(
            " No reorder policy for this SKU: the default policy chose supplier and quantity.",
        );
    }
    Some(Planned {
        quantity,
        note: LineNote {
            need_by,
            expedite,
            default_policy: origin == Origin::Default,
            orders_waiting: event.orders_waiting,
            backordered: event.backordered,
            reason,
        },
        urgent: policy.urgent_shortage > 0 && event.shortage >= policy.urgent_shortage,
    })
}

/// A new line in `batch` or a later report for a SKU already in it: the earliest need wins, the figures
/// are the newest.
pub fn merge(batch: &mut Batch, sku: &str, planned: &Planned, now: DateTime<Utc>) {
    let note = match batch.lines.get(sku) {
        Some(old) if old.need_by < planned.note.need_by => LineNote {
            need_by: old.need_by,
            expedite: old.expedite,
            ..planned.note.clone()
        },
        _ => planned.note.clone(),
    };
    batch.lines.insert(sku.to_string(), note);
    if planned.urgent {
        batch.urgent = true;
        batch.due_at = batch.due_at.min(now);
    }
}

/// The request for a due batch; `quantities`: what each SKU's state holds under the batch's request id.
/// Lines with nothing held (a report stopped before it stored its quantity) are left out; `None` when no
/// line is left.
pub fn request(
    batch: &Batch,
    quantities: &BTreeMap<String, i64>,
    now: DateTime<Utc>,
) -> Option<PurchaseRequest> {
    let lines: Vec<PurchaseRequestLine> = batch
        .lines
        .iter()
        .filter_map(|(sku, note)| {
            let quantity = quantities.get(sku).copied().unwrap_or(0);
            (quantity > 0).then(|| line(sku, quantity, note))
        })
        .collect();
    if lines.is_empty() {
        return None;
    }
    let reason = format!(
        "{}{}: {}.",
        if batch.urgent { "Urgent. " } else { "" },
        batch.supplier_id,
        summary(&lines)
    );
    Some(PurchaseRequest {
        request_id: batch.request_id.clone(),
        supplier_id: batch.supplier_id.clone(),
        lines,
        reason,
        created_at: Some(time::to_proto(now)),
        urgent: batch.urgent,
        reraised: false,
        reraises: String::new(),
    })
}

/// The reminder for a request still (partly) unanswered at its re-raise time: its unanswered units per
/// SKU, once. `None` when everything was answered.
pub fn reraise(
    sent: &Sent,
    unanswered: &BTreeMap<String, i64>,
    now: DateTime<Utc>,
) -> Option<PurchaseRequest> {
    let lines: Vec<PurchaseRequestLine> = sent
        .lines
        .iter()
        .filter_map(|(sku, note)| {
            let quantity = unanswered.get(sku).copied().unwrap_or(0);
            (quantity > 0).then(|| line(sku, quantity, note))
        })
        .collect();
    if lines.is_empty() {
        return None;
    }
    let waited = now.signed_duration_since(sent.sent_at);
    let reason = format!(
        "Reminder: request {} to {} of {} has no purchase order after {} hours. Still open: {}.",
        sent.request_id,
        sent.supplier_id,
        sent.sent_at.format("%Y-%m-%d %H:%M UTC"),
        waited.num_hours(),
        summary(&lines)
    );
    Some(PurchaseRequest {
        request_id: reraise_id(&sent.request_id),
        supplier_id: sent.supplier_id.clone(),
        lines,
        reason,
        created_at: Some(time::to_proto(now)),
        urgent: false,
        reraised: true,
        reraises: sent.request_id.clone(),
    })
}

/// What a reminder's id adds to the id of the request it re-raises.
pub const RERAISE_SUFFIX: &str = "/reraise";

/// The id of a request's reminder: derived, so a reminder sent again after a crash keeps its id.
pub fn reraise_id(request_id: &str) -> String {
    format!("{request_id}{RERAISE_SUFFIX}")
}

fn line(sku: &str, quantity: i64, note: &LineNote) -> PurchaseRequestLine {
    PurchaseRequestLine {
        sku: sku.to_string(),
        quantity,
        need_by: Some(time::to_proto(note.need_by)),
        default_policy: note.default_policy,
        reason: note.reason.clone(),
        orders_waiting: note.orders_waiting,
        backordered: note.backordered,
        expedite: note.expedite,
    }
}

/// "SKU-A 48 (12 customer orders wait for 40 units), SKU-B 6 (1 customer order waits for 5 units)"
fn summary(lines: &[PurchaseRequestLine]) -> String {
    lines
        .iter()
        .map(|l| {
            let waits = if l.orders_waiting == 1 {
                "waits"
            } else {
                "wait"
            };
            let mut text = format!(
                "{} {} ({} {waits} for {}",
                l.sku,
                l.quantity,
                plural(l.orders_waiting, "customer order"),
                plural(l.backordered, "unit")
            );
            if l.expedite {
                text.push_str(", expedite");
            }
            if l.default_policy {
                text.push_str(", default policy: check supplier and quantity");
            }
            text.push(')');
            text
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn plural(n: i64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Rule;
    use backorder_runtime::limits::{MAX_QUANTITY, start_of_year};
    use proptest::prelude::*;

    fn at(day: u32) -> DateTime<Utc> {
        format!("2026-12-{day:02}T09:00:00Z").parse().unwrap()
    }

    fn acme() -> Policy {
        Policy {
            supplier_id: "acme".into(),
            lead_time_days: 10,
            pack_size: 12,
            min_order_quantity: 24,
            rule: Rule::Cover,
            safety_stock: 0,
            urgent_shortage: 100,
        }
    }

    /// 12 orders wait for 40 units; 4 free, 6 on order: 30 short.
    fn report() -> ReorderNeeded {
        ReorderNeeded {
            sku: "SKU-A".into(),
            shortage: 30,
            backordered: 40,
            on_hand: 10,
            available: 4,
            inbound: 6,
            orders_waiting: 12,
            event_id: "ev-1".into(),
            ..Default::default()
        }
    }

    #[test]
    fn given_a_shortage_when_nothing_is_requested_then_a_line_in_packs() {
        let planned = plan(&report(), 0, &acme(), Origin::Configured, at(1)).unwrap();
        assert_eq!(planned.quantity, 36);
        assert!(!planned.urgent);
        assert_eq!(planned.note.need_by, at(11));
        assert!(!planned.note.expedite && !planned.note.default_policy);
        assert_eq!(
            planned.note.reason,
            "12 customer orders wait for 40 units; 30 not covered by free stock (4) or open purchase orders \
             (6); 0 already requested. Cover the shortage, pack 12, MOQ 24 → order 36."
        );
    }

    #[test]
    fn given_requests_covering_the_shortage_then_nothing() {
        assert_eq!(
            plan(&report(), 30, &acme(), Origin::Configured, at(1)),
            None
        );
        assert_eq!(
            plan(&report(), 20, &acme(), Origin::Configured, at(1))
                .unwrap()
                .quantity,
            24
        );
    }

    #[test]
    fn given_an_earlier_promise_then_need_by_is_the_promise_and_the_line_says_expedite() {
        let event = ReorderNeeded {
            needed_by: Some(time::to_proto(at(5))),
            ..report()
        };
        let planned = plan(&event, 0, &acme(), Origin::Configured, at(1)).unwrap();
        assert_eq!(planned.note.need_by, at(5));
        assert!(planned.note.expedite);
        assert!(
            planned.note.reason.contains("Needed by 2026-12-05"),
            "{}",
            planned.note.reason
        );
        // A promise made from the same lead time a few hours ago is no reason to expedite.
        let event = ReorderNeeded {
            needed_by: Some(time::to_proto(at(11) - TimeDelta::hours(5))),
            ..report()
        };
        let planned = plan(&event, 0, &acme(), Origin::Configured, at(1)).unwrap();
        assert!(!planned.note.expedite, "{}", planned.note.reason);
        // A promise already past: needed now.
        let event = ReorderNeeded {
            needed_by: Some(time::to_proto(at(1) - TimeDelta::days(3))),
            ..report()
        };
        assert_eq!(
            plan(&event, 0, &acme(), Origin::Configured, at(1))
                .unwrap()
                .note
                .need_by,
            at(1)
        );
        // A promise after the lead time is kept as the date needed.
        let event = ReorderNeeded {
            needed_by: Some(time::to_proto(at(20))),
            ..report()
        };
        let planned = plan(&event, 0, &acme(), Origin::Configured, at(1)).unwrap();
        assert_eq!(
            (planned.note.need_by, planned.note.expedite),
            (at(20), false)
        );
    }

    #[test]
    fn the_default_policy_is_flagged_and_the_urgent_threshold_counts() {
        let event = ReorderNeeded {
            shortage: 100,
            backordered: 110,
            ..report()
        };
        let planned = plan(&event, 0, &acme(), Origin::Default, at(1)).unwrap();
        assert!(planned.urgent && planned.note.default_policy);
        assert!(
            planned
                .note
                .reason
                .ends_with("the default policy chose supplier and quantity.")
        );
    }

    fn batch() -> Batch {
        Batch {
            request_id: "pr/ev-1".into(),
            supplier_id: "acme".into(),
            opened_at: at(1),
            due_at: at(1) + TimeDelta::minutes(5),
            urgent: false,
            lines: BTreeMap::new(),
        }
    }

    #[test]
    fn lines_merge_into_one_request_per_supplier() {
        let mut batch = batch();
        let a = plan(&report(), 0, &acme(), Origin::Configured, at(1)).unwrap();
        merge(&mut batch, "SKU-A", &a, at(1));
        let b_event = ReorderNeeded {
            sku: "SKU-B".into(),
            shortage: 5,
            backordered: 5,
            available: 0,
            inbound: 0,
            orders_waiting: 1,
            ..report()
        };
        let b = plan(&b_event, 0, &acme(), Origin::Default, at(1)).unwrap();
        merge(&mut batch, "SKU-B", &b, at(1));
        assert_eq!(batch.due_at, at(1) + TimeDelta::minutes(5));

        let quantities = BTreeMap::from([("SKU-A".to_string(), 36), ("SKU-B".to_string(), 24)]);
        let request = request(&batch, &quantities, at(1)).unwrap();
        assert_eq!(request.request_id, "pr/ev-1");
        assert_eq!(
            request
                .lines
                .iter()
                .map(|l| (l.sku.as_str(), l.quantity))
                .collect::<Vec<_>>(),
            [("SKU-A", 36), ("SKU-B", 24)]
        );
        assert_eq!(
            request.reason,
            "acme: SKU-A 36 (12 customer orders wait for 40 units); SKU-B 24 (1 customer order waits for 5 \
             units, default policy: check supplier and quantity)."
        );
        // A SKU whose quantity was never stored is left out; nothing stored, no request.
        let only_a = BTreeMap::from([("SKU-A".to_string(), 36)]);
        assert_eq!(request_lines(&batch, &only_a), ["SKU-A"]);
        assert_eq!(super::request(&batch, &BTreeMap::new(), at(1)), None);
    }

    fn request_lines(batch: &Batch, quantities: &BTreeMap<String, i64>) -> Vec<String> {
        request(batch, quantities, at(1))
            .unwrap()
            .lines
            .into_iter()
            .map(|l| l.sku)
            .collect()
    }

    #[test]
    fn an_urgent_line_makes_the_batch_due_now_and_the_earliest_need_wins() {
        let mut batch = batch();
        let early = ReorderNeeded {
            needed_by: Some(time::to_proto(at(3))),
            ..report()
        };
        merge(
            &mut batch,
            "SKU-A",
            &plan(&early, 0, &acme(), Origin::Configured, at(1)).unwrap(),
            at(1),
        );
        let urgent = ReorderNeeded {
            shortage: 150,
            backordered: 160,
            ..report()
        };
        merge(
            &mut batch,
            "SKU-A",
            &plan(&urgent, 0, &acme(), Origin::Configured, at(2)).unwrap(),
            at(2),
        );
        assert!(batch.urgent);
        assert_eq!(batch.due_at, at(1) + TimeDelta::minutes(5));
        assert_eq!(batch.lines["SKU-A"].need_by, at(3));
        assert_eq!(batch.lines["SKU-A"].backordered, 160);
        let request =
            request(&batch, &BTreeMap::from([("SKU-A".to_string(), 156)]), at(2)).unwrap();
        assert!(request.urgent && request.reason.starts_with("Urgent. acme:"));
    }

    #[test]
    fn a_reminder_names_the_unanswered_part_once_under_a_derived_id() {
        let mut batch = batch();
        let a = plan(&report(), 0, &acme(), Origin::Configured, at(1)).unwrap();
        merge(&mut batch, "SKU-A", &a, at(1));
        let sent = Sent {
            request_id: batch.request_id.clone(),
            supplier_id: batch.supplier_id.clone(),
            sent_at: at(1),
            reraise_at: at(3),
            reraised: false,
            lines: batch.lines.clone(),
        };
        let reminder = reraise(&sent, &BTreeMap::from([("SKU-A".to_string(), 12)]), at(3)).unwrap();
        assert_eq!(reminder.request_id, "pr/ev-1/reraise");
        assert!(reminder.reraised);
        assert_eq!(reminder.reraises, "pr/ev-1");
        assert_eq!(reminder.lines[0].quantity, 12);
        assert!(
            reminder.reason.starts_with(
                "Reminder: request pr/ev-1 to acme of 2026-12-01 09:00 UTC has no purchase order after 48 hours."
            ),
            "{}",
            reminder.reason
        );
        assert_eq!(reraise(&sent, &BTreeMap::new(), at(3)), None);
    }

    /// A report within the limits: every figure `0..=MAX_QUANTITY`, the edges included, a promise or none.
    fn bounded_report() -> impl Strategy<Value = ReorderNeeded> {
        let figure = || prop_oneof![0i64..=100, Just(MAX_QUANTITY), 0i64..=MAX_QUANTITY];
        let year = || {
            (
                *limits::YEARS.start()..=*limits::YEARS.end(),
                0i64..365 * 86_400,
            )
                .prop_map(|(y, s)| limits::add(start_of_year(y), TimeDelta::seconds(s)))
        };
        (
            [figure(), figure(), figure(), figure(), figure(), figure()],
            proptest::option::of(year()),
        )
            .prop_map(
                |([shortage, backordered, on_hand, inbound, available, waiting], promise)| {
                    ReorderNeeded {
                        sku: "SKU-A".into(),
                        event_id: "ev-1".into(),
                        shortage,
                        backordered,
                        on_hand,
                        inbound,
                        available,
                        orders_waiting: waiting,
                        needed_by: promise.map(time::to_proto),
                        ..Default::default()
                    }
                },
            )
    }

    proptest! {
        /// No report and policy within the limits, whatever is already requested and whenever in the years,
        /// makes planning panic; a line is whole packs of at most MAX_QUANTITY, needed by a date between now
        /// and the promise or lead time, and its request is sent and re-raised without overflow.
        #[test]
        fn bounded_inputs_plan_bounded_lines(
            event in bounded_report(),
            requested in prop_oneof![0i64..=100, 0i64..=4 * MAX_QUANTITY, Just(i64::MAX)],
            policy in crate::policy::tests::bounded_policy(),
            year in limits::YEARS,
        ) {
            let now = start_of_year(year);
            let Some(planned) = plan(&event, requested, &policy, Origin::Default, now) else {
                return Ok(());
            };
            prop_assert!((1..=MAX_QUANTITY).contains(&planned.quantity), "{}", planned.quantity);
            prop_assert_eq!(planned.quantity % policy.pack_size, 0);
            prop_assert!(planned.note.need_by >= now);
            let latest = event.needed_by.as_ref().and_then(time::from_proto).unwrap_or(now)
                .max(now + TimeDelta::days(crate::MAX_LEAD_TIME_DAYS.into()));
            prop_assert!(planned.note.need_by <= latest);
            let mut batch = Batch {
                request_id: "pr/ev-1".into(),
                supplier_id: policy.supplier_id.clone(),
                opened_at: now,
                due_at: now,
                urgent: false,
                lines: BTreeMap::new(),
            };
            merge(&mut batch, "SKU-A", &planned, now);
            let quantities = BTreeMap::from([("SKU-A".to_string(), planned.quantity)]);
            let request = request(&batch, &quantities, now).unwrap();
            prop_assert_eq!(request.lines[0].quantity, planned.quantity);
            let sent = Sent::of(&batch, now, TimeDelta::hours(u32::MAX.into()));
            prop_assert!(reraise(&sent, &quantities, sent.reraise_at).is_some());
        }
    }
}
