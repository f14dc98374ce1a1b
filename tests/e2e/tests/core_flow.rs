//! The core process end to end: the four services as processes, driven over NATS as an OMS and a WMS would,
//! asserting on what comes out on the outbound subjects.

use backorder_proto::Message;
use backorder_proto::v1::{
    AllocationCreated, DeadLetter, EmailMessage, OrderRejected, OrderStatus, PurchaseRequest,
    SmsMessage, customer_event::Kind, order_status::Status,
};
use backorder_test_support::{System, load_stock, messages};

fn buyer() -> backorder_proto::v1::Customer {
    messages::customer("C-42", "buyer@acme.example", "+4915112345678", "en")
}

/// (allocated, backordered, shipped) of every line, from a status.
fn lines(status: &OrderStatus) -> Vec<(i64, i64, i64)> {
    status
        .lines
        .iter()
        .map(|l| (l.allocated, l.backordered, l.shipped))
        .collect()
}

#[tokio::test]
async fn an_order_of_100_with_70_in_stock_ships_70_backorders_30_and_completes_when_stock_arrives()
-> anyhow::Result<()> {
    let system = System::start().await?;
    let s = system.subjects().clone();
    let seen = &system.seen;

    load_stock(&system.bus, &system.db, "WIDGET", 70).await?;
    system
        .publish(
            s.order_placed(),
            "SO-1",
            &messages::order("SO-1", buyer(), &[("WIDGET", 100)]),
        )
        .await?;

    // 70 allocated and announced to the WMS, 30 backordered, the OMS told.
    let allocation = seen
        .wait_for::<AllocationCreated>(&s.allocation_created(), |a| a.order_id == "SO-1")
        .await?;
    assert_eq!(
        (
            allocation.lines[0].sku.as_str(),
            allocation.lines[0].quantity
        ),
        ("WIDGET", 70)
    );
    let status = seen
        .wait_for::<OrderStatus>(&s.order_status(), |o| o.order_id == "SO-1")
        .await?;
    assert_eq!(
        (status.status(), status.version, lines(&status)),
        (Status::PartiallyAllocated, 1, vec![(70, 30, 0)])
    );

    // Purchasing is asked for the 30 short.
    let request = seen
        .wait_for::<PurchaseRequest>(&s.purchase_request(), |r| {
            r.lines.iter().any(|l| l.sku == "WIDGET")
        })
        .await?;
    assert_eq!(request.lines[0].quantity, 30);

    // The customer hears what ships now and what is backordered, by email and by SMS.
    let email = seen
        .wait_for::<EmailMessage>(&s.notify_email(), |m| m.order_id == "SO-1")
        .await?;
    assert_eq!(
        (email.to.as_str(), email.kind()),
        ("buyer@acme.example", Kind::Backordered)
    );
    assert!(
        email.text_body.contains("70") && email.text_body.contains("30"),
        "{}",
        email.text_body
    );
    let sms = seen
        .wait_for::<SmsMessage>(&s.notify_sms(), |m| m.order_id == "SO-1")
        .await?;
    assert_eq!(sms.to, "+4915112345678");
    assert!(sms.text.chars().count() <= 160);

    // The WMS ships the 70, then receives 30: the backorder is filled first come first served.
    system
        .publish(
            s.shipment_confirmed(),
            "SH-1",
            &messages::shipment("SH-1", "SO-1", &[(1, 70)]),
        )
        .await?;
    let status = seen
        .wait_for::<OrderStatus>(&s.order_status(), |o| {
            o.order_id == "SO-1" && o.version == 2
        })
        .await?;
    assert_eq!(
        (status.status(), lines(&status)),
        (Status::PartiallyShipped, vec![(0, 30, 70)])
    );
    system
        .publish(
            s.stock_received(),
            "RC-1",
            &messages::receipt("RC-1", "WIDGET", 30, "PO-9"),
        )
        .await?;
    let filled = seen
        .wait_for::<AllocationCreated>(&s.allocation_created(), |a| {
            a.order_id == "SO-1" && a.allocation_id != allocation.allocation_id
        })
        .await?;
    assert_eq!(filled.lines[0].quantity, 30);
    let status = seen
        .wait_for::<OrderStatus>(&s.order_status(), |o| {
            o.order_id == "SO-1" && o.version == 3
        })
        .await?;
    assert_eq!(
        (status.status(), lines(&status)),
        (Status::PartiallyShipped, vec![(30, 0, 70)])
    );
    seen.wait_for::<EmailMessage>(&s.notify_email(), |m| {
        m.order_id == "SO-1" && m.kind() == Kind::ReadyToShip
    })
    .await?;

    // Every unit shipped: COMPLETED, and the customer is told.
    system
        .publish(
            s.shipment_confirmed(),
            "SH-2",
            &messages::shipment("SH-2", "SO-1", &[(1, 30)]),
        )
        .await?;
    let status = seen
        .wait_for::<OrderStatus>(&s.order_status(), |o| {
            o.order_id == "SO-1" && o.version == 4
        })
        .await?;
    assert_eq!(
        (status.status(), lines(&status)),
        (Status::Completed, vec![(0, 0, 100)])
    );
    seen.wait_for::<EmailMessage>(&s.notify_email(), |m| {
        m.order_id == "SO-1" && m.kind() == Kind::Completed
    })
    .await?;
    let open: i64 = sqlx::query_scalar("select count(*) from order_lines where backordered > 0")
        .fetch_one(&system.db)
        .await?;
    assert_eq!(open, 0, "the order left the open backorders");

    // Exactly one purchase request for the one shortage; one status per change.
    assert_eq!(seen.count(&s.purchase_request()), 1);
    assert_eq!(seen.count(&s.order_status()), 4);
    system.stop().await
}

#[tokio::test]
async fn bad_orders_are_rejected_with_field_errors_and_kept() -> anyhow::Result<()> {
    let system = System::start().await?;
    let s = system.subjects().clone();
    let seen = &system.seen;

    let mut bad = messages::order("SO-BAD", buyer(), &[("WIDGET", 0), ("GADGET", 2)]);
    bad.lines[1].line_no = 1;
    system.publish(s.order_placed(), "SO-BAD", &bad).await?;
    let rejected = seen
        .wait_for::<OrderRejected>(&s.order_rejected(), |r| r.order_id == "SO-BAD")
        .await?;
    let fields: Vec<&str> = rejected.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["lines[0].quantity", "lines[1].line_no"]);
    assert_eq!(
        rejected.payload,
        bad.encode_to_vec(),
        "the rejected message is kept as it was sent"
    );

    // A field of the wrong wire type: rejected by name, the order id read from what could be read.
    let mut wrong = messages::order("SO-WIRE", buyer(), &[("WIDGET", 1)]).encode_to_vec();
    wrong.extend_from_slice(&[3 << 3, 1]);
    system
        .bus
        .publish_bytes(s.order_placed(), "SO-WIRE", wrong.into())
        .await?;
    let rejected = seen
        .wait_for::<OrderRejected>(&s.order_rejected(), |r| r.order_id == "SO-WIRE")
        .await?;
    assert_eq!(rejected.errors[0].field, "lines");

    // Bytes with no readable order id: rejected, and parked in the dead-letter stream with the error.
    system
        .bus
        .publish_bytes(
            s.order_placed(),
            "junk-1",
            bytes::Bytes::from_static(b"\xff\xff not protobuf"),
        )
        .await?;
    let letter = seen
        .wait_for::<DeadLetter>(&s.dead_letter("order-intake"), |d| d.message_id == "junk-1")
        .await?;
    assert!(
        letter.error.contains("no readable order id"),
        "{}",
        letter.error
    );
    assert_eq!(letter.payload, b"\xff\xff not protobuf");
    seen.wait_for::<OrderRejected>(&s.order_rejected(), |r| r.order_id.is_empty())
        .await?;

    // None of them reached allocation.
    let orders: i64 = sqlx::query_scalar("select count(*) from orders")
        .fetch_one(&system.db)
        .await
        .unwrap_or(0);
    assert_eq!(orders, 0);
    system.stop().await
}

#[tokio::test]
async fn a_second_order_with_the_same_id_creates_nothing_new() -> anyhow::Result<()> {
    let system = System::start().await?;
    let s = system.subjects().clone();
    let seen = &system.seen;

    load_stock(&system.bus, &system.db, "WIDGET", 10).await?;
    system
        .publish(
            s.order_placed(),
            "SO-1",
            &messages::order("SO-1", buyer(), &[("WIDGET", 4)]),
        )
        .await?;
    seen.wait_for::<OrderStatus>(&s.order_status(), |o| o.order_id == "SO-1")
        .await?;
    // The OMS sends it again, under a new message id so the stream's dedup does not hide it, and changed.
    system
        .publish(
            s.order_placed(),
            "SO-1-again",
            &messages::order("SO-1", buyer(), &[("WIDGET", 6)]),
        )
        .await?;
    // A later order proves the duplicate has been through the pipeline by the time we look.
    system
        .publish(
            s.order_placed(),
            "SO-2",
            &messages::order("SO-2", buyer(), &[("WIDGET", 1)]),
        )
        .await?;
    seen.wait_for::<OrderStatus>(&s.order_status(), |o| o.order_id == "SO-2")
        .await?;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    assert_eq!(
        seen.all::<OrderStatus>(&s.order_status())
            .iter()
            .filter(|o| o.order_id == "SO-1")
            .count(),
        1
    );
    assert_eq!(
        seen.all::<AllocationCreated>(&s.allocation_created())
            .iter()
            .filter(|a| a.order_id == "SO-1")
            .count(),
        1
    );
    assert_eq!(
        seen.all::<EmailMessage>(&s.notify_email())
            .iter()
            .filter(|m| m.order_id == "SO-1")
            .count(),
        1
    );
    let allocated: i64 = sqlx::query_scalar("select allocated from stock where sku = 'WIDGET'")
        .fetch_one(&system.db)
        .await?;
    assert_eq!(allocated, 5, "4 for SO-1 once, 1 for SO-2");
    system.stop().await
}
