//! Several events of one order waiting for the same channel become one message. Pure, no I/O.
//!
//! The events are taken in the order they arrived. Each line shows its state after the last event that
//! listed it, and what the events did to it (`changes`). An `ETA_CHANGED` is about lines that still wait: a
//! later event (ready to ship, shipped, cancelled) that left such a line waiting for nothing drops the line
//! from it, and an `ETA_CHANGED` left with no such line is not sent at all.

use std::collections::BTreeMap;

use backorder_proto::v1::customer_event::Kind;
use backorder_proto::v1::{Customer, CustomerEvent, CustomerEventLine};
use sha2::{Digest, Sha256};

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    Email,
    Sms,
}

impl Channel {
    pub const ALL: [Channel; 2] = [Channel::Email, Channel::Sms];

    pub fn name(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }

    /// The customer's address for this channel, if they have one.
    pub fn address(self, customer: &Customer) -> Option<&str> {
        let address = match self {
            Channel::Email => customer.email.trim(),
            Channel::Sms => customer.phone.trim(),
        };
        (!address.is_empty()).then_some(address)
    }
}

/// What one change did to a line: the kind and the units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: Kind,
    pub quantity: i64,
}

/// A line as a message shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct NoticeLine {
    /// The line after the last event that listed it.
    pub line: CustomerEventLine,
    /// What the message's events did to it, one entry per kind, in the order the kinds first came.
    pub changes: Vec<Change>,
}

impl NoticeLine {
    /// The units the message is about on this line.
    pub fn quantity(&self) -> i64 {
        self.changes
            .iter()
            .fold(0i64, |sum, c| sum.saturating_add(c.quantity.max(0)))
    }
}

/// One message's worth of events.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub order_id: String,
    /// The customer as the newest event gave it.
    pub customer: Customer,
    /// The kinds the message tells of, in the order they first came; never empty.
    pub kinds: Vec<Kind>,
    pub lines: Vec<NoticeLine>,
    /// The answer to a delay is needed by then (from the newest `DELAY_CONSENT_REQUIRED`).
    pub respond_by: Option<prost_types::Timestamp>,
    /// Every event the message covers, the dropped ones included: sorted, distinct.
    pub event_ids: Vec<String>,
}

impl Notice {
    /// The kind a message states as its own: the one kind, or the weightiest of several.
    pub fn kind(&self) -> Kind {
        self.kinds
            .iter()
            .copied()
            .max_by_key(|k| weight(*k))
            .unwrap_or(Kind::Unspecified)
    }

    /// The units the message is about, over all lines.
    pub fn total(&self) -> i64 {
        self.lines
            .iter()
            .fold(0i64, |sum, l| sum.saturating_add(l.quantity()))
    }
}

fn weight(kind: Kind) -> u8 {
    match kind {
        Kind::Unspecified => 0,
        Kind::EtaChanged => 1,
        Kind::Preordered => 2,
        Kind::Backordered => 3,
        Kind::ReadyToShip => 4,
        Kind::Shipped => 5,
        Kind::Cancelled => 6,
        Kind::Completed => 7,
        Kind::DelayConsentRequired => 8,
    }
}

/// The message id for `channel` and the events a message covers: `<channel>/<event_id>` for one event,
/// `<channel>/coalesced-<first 32 hex digits of the SHA-256 of the sorted distinct ids joined by "\n">` for
/// several. The same events give the same id on every run, in any order.
pub fn message_id(channel: Channel, event_ids: &[String]) -> String {
    let mut ids: Vec<&str> = event_ids.iter().map(String::as_str).collect();
    ids.sort_unstable();
    ids.dedup();
    match ids.as_slice() {
        [one] => format!("{}/{one}", channel.name()),
        many => {
            let digest = Sha256::digest(many.join("\n").as_bytes());
            format!(
                "{}/coalesced-{}",
                channel.name(),
                &hex::encode(digest)[..32]
            )
        }
    }
}

/// Merges `events` (one order's, in arrival order) into one notice; `None` when nothing is left to tell
/// (no events, or only `ETA_CHANGED`s whose lines no longer wait).
pub fn coalesce(events: &[CustomerEvent]) -> Option<Notice> {
    let newest = events.last()?;
    // Each line as the last event that listed it left it.
    let mut latest: BTreeMap<u32, CustomerEventLine> = BTreeMap::new();
    for event in events {
        for line in &event.lines {
            latest.insert(line.line_no, line.clone());
        }
    }
    let mut kinds: Vec<Kind> = Vec::new();
    let mut changes: BTreeMap<u32, Vec<Change>> = BTreeMap::new();
    let mut respond_by = None;
    for event in events {
        let Ok(kind) = Kind::try_from(event.kind) else {
            continue;
        };
        if kind == Kind::Unspecified {
            continue;
        }
        let mut told = false;
        for line in event.lines.iter().filter(|l| l.quantity > 0) {
            let still_waits = latest.get(&line.line_no).is_some_and(|l| l.backordered > 0);
            if kind == Kind::EtaChanged && !still_waits {
                continue;
            }
            told = true;
            let entry = changes.entry(line.line_no).or_default();
            match entry.iter_mut().find(|c| c.kind == kind) {
                // A date or a delay is a state: the newest figure counts. The others add up.
                Some(c) if matches!(kind, Kind::EtaChanged | Kind::DelayConsentRequired) => {
                    c.quantity = line.quantity
                }
                Some(c) => c.quantity = c.quantity.saturating_add(line.quantity),
                None => entry.push(Change {
                    kind,
                    quantity: line.quantity,
                }),
            }
        }
        // An event about no units (a completion listing only totals) still tells its kind, except a date
        // change with nothing left waiting.
        if kind != Kind::EtaChanged || told {
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
            if kind == Kind::DelayConsentRequired && event.respond_by.is_some() {
                respond_by = event.respond_by;
            }
        }
    }
    if kinds.is_empty() {
        return None;
    }
    let mut event_ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
    event_ids.sort_unstable();
    event_ids.dedup();
    Some(Notice {
        order_id: newest.order_id.clone(),
        customer: newest.customer.clone().unwrap_or_default(),
        kinds,
        lines: latest
            .into_iter()
            .map(|(line_no, line)| NoticeLine {
                line,
                changes: changes.remove(&line_no).unwrap_or_default(),
            })
            .collect(),
        respond_by,
        event_ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(line_no: u32, quantity: i64, allocated: i64, backordered: i64) -> CustomerEventLine {
        CustomerEventLine {
            line_no,
            sku: format!("SKU-{line_no}"),
            quantity,
            ordered: allocated + backordered,
            allocated,
            backordered,
            ..Default::default()
        }
    }

    fn event(id: &str, kind: Kind, lines: Vec<CustomerEventLine>) -> CustomerEvent {
        CustomerEvent {
            event_id: id.into(),
            kind: kind as i32,
            order_id: "SO-1".into(),
            customer: Some(Customer {
                id: "C-1".into(),
                ..Default::default()
            }),
            lines,
            ..Default::default()
        }
    }

    #[test]
    fn three_backorders_of_one_order_become_one_notice() {
        let events = vec![
            event("e1", Kind::Backordered, vec![line(1, 3, 0, 3)]),
            event(
                "e2",
                Kind::Backordered,
                vec![line(1, 0, 0, 3), line(2, 4, 1, 4)],
            ),
            event("e3", Kind::Backordered, vec![line(3, 5, 0, 5)]),
        ];
        let notice = coalesce(&events).unwrap();
        assert_eq!(notice.kinds, [Kind::Backordered]);
        assert_eq!(notice.kind(), Kind::Backordered);
        assert_eq!(notice.lines.len(), 3);
        assert_eq!(notice.total(), 12);
        assert_eq!(notice.event_ids, ["e1", "e2", "e3"]);
        assert_eq!(notice.lines[1].line.allocated, 1);
    }

    #[test]
    fn a_date_change_for_lines_that_no_longer_wait_is_dropped() {
        let events = vec![
            event("e1", Kind::EtaChanged, vec![line(1, 3, 0, 3)]),
            event("e2", Kind::ReadyToShip, vec![line(1, 3, 3, 0)]),
        ];
        let notice = coalesce(&events).unwrap();
        assert_eq!(notice.kinds, [Kind::ReadyToShip]);
        assert_eq!(
            notice.lines[0].changes,
            [Change {
                kind: Kind::ReadyToShip,
                quantity: 3
            }]
        );
        // Both events are covered: neither is sent again.
        assert_eq!(notice.event_ids, ["e1", "e2"]);
        // Alone, a date change for a line that no longer waits says nothing.
        assert_eq!(
            coalesce(&[event("e1", Kind::EtaChanged, vec![line(1, 3, 3, 0)])]),
            None
        );
        // A line that still waits keeps its date change.
        let events = vec![
            event(
                "e1",
                Kind::EtaChanged,
                vec![line(1, 3, 0, 3), line(2, 2, 0, 2)],
            ),
            event(
                "e2",
                Kind::ReadyToShip,
                vec![line(1, 3, 3, 0), line(2, 0, 0, 2)],
            ),
        ];
        let notice = coalesce(&events).unwrap();
        assert_eq!(notice.kinds, [Kind::EtaChanged, Kind::ReadyToShip]);
        assert_eq!(notice.kind(), Kind::ReadyToShip);
        assert_eq!(notice.lines[1].changes[0].kind, Kind::EtaChanged);
    }

    #[test]
    fn later_date_changes_replace_earlier_ones() {
        let events = vec![
            event("e1", Kind::EtaChanged, vec![line(1, 3, 0, 3)]),
            event("e2", Kind::EtaChanged, vec![line(1, 3, 0, 3)]),
        ];
        let notice = coalesce(&events).unwrap();
        assert_eq!(notice.total(), 3);
    }

    #[test]
    fn ids_are_stable_and_order_free() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(message_id(Channel::Email, &ids(&["e1"])), "email/e1");
        assert_eq!(message_id(Channel::Sms, &ids(&["e1", "e1"])), "sms/e1");
        let a = message_id(Channel::Email, &ids(&["e1", "e2"]));
        assert_eq!(a, message_id(Channel::Email, &ids(&["e2", "e1", "e2"])));
        assert!(a.starts_with("email/coalesced-"), "{a}");
        assert_eq!(a.len(), "email/coalesced-".len() + 32);
        // sha256("e1\ne2")
        let digest = hex::encode(Sha256::digest(b"e1\ne2"));
        assert_eq!(a, format!("email/coalesced-{}", &digest[..32]));
        assert_eq!(
            message_id(Channel::Sms, &ids(&["e1", "e2"])),
            a.replacen("email/", "sms/", 1)
        );
    }

    #[test]
    fn no_events_no_notice() {
        assert_eq!(coalesce(&[]), None);
        assert_eq!(coalesce(&[event("e", Kind::Unspecified, vec![])]), None);
    }
}
