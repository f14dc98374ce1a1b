//! notifier's decoder: `read_event` (`CustomerEvent` on `<p>.customer.event`), then what it does with the
//! events, in memory: one order's events stored in a pending entry (encoded and decoded as in the bucket),
//! coalesced into one notice, rendered with the shipped templates as an email and an SMS, and due after the
//! coalescing window and the quiet hours in the customer's time zone.
//!
//! The input is frames (see `backorder_fuzz::frames`): the first is the quiet hours (`BO_SMS_QUIET_HOURS`
//! text), each further one a `CustomerEvent`.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use backorder_fuzz::{MAX_REASON_LEN, frames, now};
use libfuzzer_sys::fuzz_target;
use notifier::coalesce::{self, Channel};
use notifier::store::Pending;
use notifier::templates::Templates;
use notifier::{flush, quiet, render, sms};

fn templates() -> &'static Templates {
    static TEMPLATES: OnceLock<Templates> = OnceLock::new();
    TEMPLATES.get_or_init(|| Templates::shipped().expect("the shipped templates load"))
}

fuzz_target!(|data: &[u8]| {
    let frames = frames(data, 9);
    let Some((quiet_text, events)) = frames.split_first() else {
        return;
    };
    let quiet_hours = quiet::parse(&String::from_utf8_lossy(quiet_text))
        .unwrap_or_else(|_| quiet::parse("21:00-08:00").unwrap());
    let mut read = Vec::new();
    for bytes in events {
        match notifier::read_event(bytes) {
            Ok(event) => read.push(event),
            Err(reason) => assert!(
                reason.len() <= MAX_REASON_LEN,
                "reason not cut: {} bytes: {reason:.200}",
                reason.len()
            ),
        }
    }
    // The pending entry of the first event's order, as intake stores it.
    let Some(first) = read.first() else {
        return;
    };
    let order_id = first.order_id.clone();
    for channel in Channel::ALL {
        let mut pending = Pending::new(&order_id, channel, now());
        for event in read.iter().filter(|e| e.order_id == order_id) {
            if channel.address(event.customer.as_ref().unwrap()).is_some() {
                pending.add(event);
            }
        }
        let pending = Pending::decode(&pending.encode()).expect("an entry reads back");
        let events = pending.decode_events().expect("its events read back");
        let Some(newest) = events.last() else {
            continue;
        };
        let customer = newest.customer.clone().unwrap_or_default();
        let due = flush::due_at(
            &pending,
            &customer,
            Duration::from_secs(600),
            quiet_hours,
            chrono_tz::UTC,
        );
        assert!(due >= pending.first_at, "due before the entry was opened");
        let Some(notice) = coalesce::coalesce(&events) else {
            continue;
        };
        let _ = coalesce::message_id(channel, &notice.event_ids);
        match channel {
            Channel::Email => {
                let _ = render::email(templates(), &notice);
            }
            Channel::Sms => {
                if let Ok(Some(message)) = render::sms(templates(), &notice) {
                    assert!(
                        sms::segments(sms::units(&message.text)) <= 2,
                        "an SMS of more than two segments: {:?}",
                        message.text
                    );
                }
            }
        }
    }
});
