//! Delivery promises end to end, over NATS with the four services as processes: a purchase order's date
//! reaches the customer, a re-date is told once, a receipt makes the order ready; and on a simulated clock moved
//! by `<p>.ctl.clock`, a late supplier is noticed without anyone asking.

use std::collections::HashMap;

use backorder_proto::v1::{
    ClockAdvanced, CustomerEvent, EmailMessage, OrderStatus, SupplyUpdated, customer_event::Kind,
};
use backorder_runtime::time;
use backorder_test_support::{System, messages, wait_for_value};
use chrono::{DateTime, Duration, Utc};

fn po(po_id: &str, sku: &str, open: i64, expected_at: DateTime<Utc>) -> SupplyUpdated {
    SupplyUpdated {
        po_id: po_id.into(),
        line_no: 1,
        sku: sku.into(),
        quantity_open: open,
        expected_at: Some(time::to_proto(expected_at)),
        cancelled: false,
        request_id: String::new(),
    }
}

/// (kind, ETA) of the first line of every customer event of `order_id`.
fn heard(system: &System, order_id: &str) -> Vec<(Kind, Option<DateTime<Utc>>)> {
    system
        .seen
        .all::<CustomerEvent>(&system.subjects().customer_event())
        .into_iter()
        .filter(|e| e.order_id == order_id)
        .map(|e| {
            let eta = e.lines[0].eta.as_ref().and_then(time::from_proto);
            (e.kind(), eta)
        })
        .collect()
}

#[tokio::test]
async fn the_customer_sees_the_po_date_one_eta_change_when_it_is_re_dated_then_ready_to_ship()
-> anyhow::Result<()> {
    let system = System::start().await?;
    let s = system.subjects().clone();
    let seen = &system.seen;
    let first = (Utc::now() + Duration::days(10)).duration_trunc_day();
    let later = first + Duration::days(10);

    system
        .publish(
            s.supply_updated(),
            "PO-1/1/1",
            &po("PO-1", "LAMP", 40, first),
        )
        .await?;
    // Purchasing and the OMS publish on different streams: let the PO be booked before the order comes.
    wait_for_value(
        &system.db,
        "select count(*) from supply where po_id = $1",
        "PO-1",
        1,
    )
    .await?;
    let customer = messages::customer("C-1", "c1@shop.example", "", "en");
    let order = messages::order("SO-1", customer, &[("LAMP", 25)]);
    system.publish(s.order_placed(), "SO-1", &order).await?;
    let status = seen
        .wait_for::<OrderStatus>(&s.order_status(), |o| o.order_id == "SO-1")
        .await?;
    let eta = status.lines[0].eta.as_ref().and_then(time::from_proto);
    assert_eq!(
        eta,
        Some(first + Duration::days(1)),
        "the PO date plus a day of handling"
    );
    assert!(!status.lines[0].eta_estimated);

    system
        .publish(
            s.supply_updated(),
            "PO-1/1/2",
            &po("PO-1", "LAMP", 40, later),
        )
        .await?;
    seen.wait_for::<CustomerEvent>(&s.customer_event(), |e| {
        e.order_id == "SO-1" && e.kind() == Kind::EtaChanged
    })
    .await?;
    let receipt = messages::receipt("R-1", "LAMP", 40, "PO-1");
    system.publish(s.stock_received(), "R-1", &receipt).await?;
    seen.wait_for::<EmailMessage>(&s.notify_email(), |m| {
        m.order_id == "SO-1" && m.kind() == Kind::ReadyToShip
    })
    .await?;

    assert_eq!(
        heard(&system, "SO-1"),
        [
            (Kind::Backordered, Some(first + Duration::days(1))),
            (Kind::EtaChanged, Some(later + Duration::days(1))),
            (Kind::ReadyToShip, None)
        ]
    );
    let emails: Vec<Kind> = seen
        .all::<EmailMessage>(&s.notify_email())
        .iter()
        .filter(|m| m.order_id == "SO-1")
        .map(|m| m.kind())
        .collect();
    assert_eq!(
        emails,
        [Kind::Backordered, Kind::EtaChanged, Kind::ReadyToShip]
    );
    assert_eq!(system.invariant_violations().await?, Vec::<String>::new());
    system.stop().await
}

#[tokio::test]
async fn on_a_simulated_clock_a_late_supplier_is_noticed_and_the_customer_told()
-> anyhow::Result<()> {
    let start = "2026-12-01T00:00:00Z";
    let system = System::start_with(&HashMap::from([
        ("BO_CLOCK", "simulated"),
        ("BO_CLOCK_START", start),
    ]))
    .await?;
    let s = system.subjects().clone();
    let seen = &system.seen;
    let day = |n: i64| {
        DateTime::parse_from_rfc3339(start)
            .unwrap()
            .with_timezone(&Utc)
            + Duration::days(n)
    };

    system
        .publish(
            s.supply_updated(),
            "PO-9/1/1",
            &po("PO-9", "CHAIR", 10, day(5)),
        )
        .await?;
    wait_for_value(
        &system.db,
        "select count(*) from supply where po_id = $1",
        "PO-9",
        1,
    )
    .await?;
    let customer = messages::customer("C-2", "c2@shop.example", "", "en");
    let order = messages::order("SO-2", customer, &[("CHAIR", 4)]);
    system.publish(s.order_placed(), "SO-2", &order).await?;
    seen.wait_for::<CustomerEvent>(&s.customer_event(), |e| e.order_id == "SO-2")
        .await?;
    assert_eq!(heard(&system, "SO-2"), [(Kind::Backordered, Some(day(6)))]);

    // Six days pass in a moment. Day 5 went by without a receipt: PO-9 is late and slips by the grace period.
    let to = day(6);
    let advanced = ClockAdvanced {
        to: Some(time::to_proto(to)),
    };
    system
        .publish(s.clock(), &format!("clock/{}", to.to_rfc3339()), &advanced)
        .await?;
    let changed = seen
        .wait_for::<CustomerEvent>(&s.customer_event(), |e| {
            e.order_id == "SO-2" && e.kind() == Kind::EtaChanged
        })
        .await?;
    let line = &changed.lines[0];
    assert_eq!(line.eta.as_ref().and_then(time::from_proto), Some(day(9)));
    assert!(line.eta_late, "flagged late");
    assert_eq!(
        changed.occurred_at.as_ref().and_then(time::from_proto),
        Some(day(5)),
        "the timer fired at its own time"
    );
    seen.wait_for::<EmailMessage>(&s.notify_email(), |m| {
        m.order_id == "SO-2" && m.kind() == Kind::EtaChanged
    })
    .await?;
    system.stop().await
}

trait TruncDay {
    fn duration_trunc_day(self) -> Self;
}

impl TruncDay for DateTime<Utc> {
    /// Midnight of the day, so dates compare without sub-second noise.
    fn duration_trunc_day(self) -> Self {
        self.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc()
    }
}
