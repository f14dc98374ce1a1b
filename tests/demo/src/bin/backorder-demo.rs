//! The demo: plays an OMS, a WMS and a purchasing desk against the running services (started by
//! `scripts/demo.sh`) and tells what happens. `--reset` deletes the prefix's streams instead, for a clean slate.
//!
//! Reads NATS_URL, BO_PREFIX (default `demo`) and DATABASE_URL (the allocation database, to know when stock is
//! booked).

use std::collections::BTreeMap;

use anyhow::Context;
use backorder_proto::v1::{
    AllocationCancelled, AllocationCreated, ClockAdvanced, CustomerEvent, DeadLetter, EmailMessage,
    GetOrderReply, GetOrderRequest, OrderPriorityChanged, OrderRejected, OrderStatus,
    PreviewReceiptReply, PreviewReceiptRequest, PurchaseRequest, RequestRefused, SmsMessage,
    customer_event::Kind,
};
use backorder_runtime::Subjects;
use backorder_runtime::query;
use backorder_test_support::{Seen, connect, delete_streams, load_stock, messages};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let nats_url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let prefix = std::env::var("BO_PREFIX").unwrap_or_else(|_| "demo".into());
    let bus = connect(&nats_url, &prefix).await?;
    if std::env::args().any(|a| a == "--reset") {
        delete_streams(&bus).await?;
        eprintln!("deleted the streams of prefix {prefix}");
        return Ok(());
    }
    let database_url = std::env::var("DATABASE_URL")
        .context("DATABASE_URL (the allocation database) is needed")?;
    let db = sqlx::PgPool::connect(&database_url).await?;
    let seen = Seen::subscribe(&bus).await?;
    let s = bus.subjects.clone();
    let demo = Demo {
        s: &s,
        seen: &seen,
        now: std::cell::Cell::new(clock_start()?),
    };

    println!(
        "== backorder demo: prefix {prefix}, NATS {} ==\n",
        backorder_runtime::secret::mask_url(&nats_url)
    );
    let so1001 = first_orders(&bus, &db, &demo).await?;
    bad_input(&bus, &demo, &so1001).await?;
    shipments_and_receipt(&bus, &demo).await?;
    ship_complete_and_cancellation(&bus, &db, &demo).await?;
    late_supplier(&bus, &db, &demo).await?;
    purchasing(&bus, &demo).await?;
    desk(&bus, &demo).await?;
    summary(&demo);
    Ok(())
}

/// Initial stock, an order partly allocated and one wholly backordered, and (on a simulated clock) the
/// purchase request their shortage gathers into. Returns SO-1001 as placed, for [`bad_input`] to send again.
async fn first_orders(
    bus: &backorder_runtime::jetstream::Bus,
    db: &sqlx::PgPool,
    demo: &Demo<'_>,
) -> anyhow::Result<backorder_proto::v1::OrderPlaced> {
    let s = demo.s;
    let acme = messages::customer("C-ACME", "purchasing@acme.example", "+4915112345678", "en");
    let bistro = messages::customer("C-BISTRO", "owner@bistro.example", "", "de");

    println!("[WMS] initial stock: WIDGET-RED 70, GADGET-BLUE 500");
    for (sku, quantity) in [("WIDGET-RED", 70), ("GADGET-BLUE", 500)] {
        load_stock(bus, db, sku, quantity).await?;
    }

    println!("\n[OMS] Acme Wholesale orders SO-1001: 100 x WIDGET-RED, 20 x GADGET-BLUE");
    let so1001 = demo.placed(messages::order(
        "SO-1001",
        acme,
        &[("WIDGET-RED", 100), ("GADGET-BLUE", 20)],
    ));
    bus.publish(s.order_placed(), "SO-1001", &so1001).await?;
    demo.allocation("SO-1001", 1).await?;
    demo.status("SO-1001", 1).await?;
    println!("  (the 30 short are gathered for the next purchase request to acme-widgets)");
    demo.email("SO-1001", Kind::Backordered).await?;
    demo.sms("SO-1001", Kind::Backordered).await?;

    println!(
        "\n[OMS] Bistro Berlin orders SO-1002: 15 x WIDGET-RED (nothing left: all backordered)"
    );
    bus.publish(
        s.order_placed(),
        "SO-1002",
        &demo.placed(messages::order("SO-1002", bistro, &[("WIDGET-RED", 15)])),
    )
    .await?;
    demo.status("SO-1002", 1).await?;
    demo.email("SO-1002", Kind::Backordered).await?;
    if let Some(start) = clock_start()? {
        println!(
            "\n[CLOCK] five minutes pass: what was gathered for each supplier goes out as one request"
        );
        demo.advance_clock(bus, start + chrono::Duration::minutes(6))
            .await?;
        demo.purchase_request("WIDGET-RED", 1).await?;
    }
    Ok(so1001)
}

/// What the OMS gets wrong: a retry of `so1001` (the same message, so deduplicated), an order that fails
/// validation, and bytes that are no order at all.
async fn bad_input(
    bus: &backorder_runtime::jetstream::Bus,
    demo: &Demo<'_>,
    so1001: &backorder_proto::v1::OrderPlaced,
) -> anyhow::Result<()> {
    let s = demo.s;
    println!("\n[OMS] sends SO-1001 again (a retry): nothing new happens");
    bus.publish(s.order_placed(), "SO-1001-retry", so1001)
        .await?;
    println!("[OMS] sends SO-1003 with a zero quantity and a repeated line number");
    let acme = messages::customer("C-ACME", "purchasing@acme.example", "+4915112345678", "en");
    let mut bad = messages::order("SO-1003", acme, &[("WIDGET-RED", 0), ("GADGET-BLUE", 1)]);
    bad.lines[1].line_no = 1;
    bus.publish(s.order_placed(), "SO-1003", &bad).await?;
    let rejected = demo
        .seen
        .wait_for::<OrderRejected>(&s.order_rejected(), |r| r.order_id == "SO-1003")
        .await?;
    for error in &rejected.errors {
        println!(
            "  -> OMS    SO-1003 rejected: {}: {}",
            error.field, error.message
        );
    }
    println!("[OMS] sends bytes that are not an order at all");
    bus.publish_bytes(
        s.order_placed(),
        "garbage-1",
        bytes::Bytes::from_static(b"{\"order\":1}"),
    )
    .await?;
    let letter = demo
        .seen
        .wait_for::<DeadLetter>(&s.dead_letter("order-intake"), |d| {
            d.message_id == "garbage-1"
        })
        .await?;
    println!("  -> DLQ    parked by {}: {}", letter.service, letter.error);
    Ok(())
}

/// SO-1001 shipped in two parts around a receipt that fills the backorders first come, first served.
async fn shipments_and_receipt(
    bus: &backorder_runtime::jetstream::Bus,
    demo: &Demo<'_>,
) -> anyhow::Result<()> {
    let s = demo.s;
    println!("\n[WMS] ships what was allocated to SO-1001 (70 + 20)");
    bus.publish(
        s.shipment_confirmed(),
        "SH-1",
        &messages::shipment("SH-1", "SO-1001", &[(1, 70), (2, 20)]),
    )
    .await?;
    demo.status("SO-1001", 2).await?;
    demo.email("SO-1001", Kind::Shipped).await?;

    println!("\n[WMS] receives 40 x WIDGET-RED on PO-7781: first come, first served");
    bus.publish(
        s.stock_received(),
        "RC-1",
        &messages::receipt("RC-1", "WIDGET-RED", 40, "PO-7781"),
    )
    .await?;
    demo.allocation("SO-1001", 2).await?;
    demo.allocation("SO-1002", 1).await?;
    demo.status("SO-1001", 3).await?;
    demo.status("SO-1002", 2).await?;
    demo.email("SO-1001", Kind::ReadyToShip).await?;

    println!("\n[WMS] ships the last 30 of SO-1001");
    bus.publish(
        s.shipment_confirmed(),
        "SH-2",
        &messages::shipment("SH-2", "SO-1001", &[(1, 30)]),
    )
    .await?;
    demo.status("SO-1001", 4).await?;
    demo.email("SO-1001", Kind::Completed).await?;
    demo.sms("SO-1001", Kind::Completed).await?;
    Ok(())
}

/// Each order's lines as its latest status has them, and how many messages went where.
fn summary(demo: &Demo<'_>) {
    let (s, seen) = (demo.s, demo.seen);
    println!("\n== summary ==");
    let mut latest: BTreeMap<String, OrderStatus> = BTreeMap::new();
    for status in seen.all::<OrderStatus>(&s.order_status()) {
        if latest
            .get(&status.order_id)
            .is_none_or(|l| l.version < status.version)
        {
            latest.insert(status.order_id.clone(), status);
        }
    }
    println!(
        "{:<9} {:<20} {:<12} {:>7} {:>9} {:>11} {:>7}",
        "order", "status", "sku", "ordered", "allocated", "backordered", "shipped"
    );
    for status in latest.values() {
        for line in &status.lines {
            println!(
                "{:<9} {:<20} {:<12} {:>7} {:>9} {:>11} {:>7}",
                status.order_id,
                status.status().as_str_name(),
                line.sku,
                line.ordered,
                line.allocated,
                line.backordered,
                line.shipped
            );
        }
    }
    println!();
    for (name, subject) in [
        ("allocations to the WMS", s.allocation_created()),
        ("withdrawals to the WMS", s.allocation_cancelled()),
        ("refused requests", s.request_refused()),
        ("order statuses to the OMS", s.order_status()),
        ("rejections to the OMS", s.order_rejected()),
        ("purchase requests", s.purchase_request()),
        ("emails", s.notify_email()),
        ("SMS", s.notify_sms()),
        ("dead letters (order-intake)", s.dead_letter("order-intake")),
        ("dead letters (allocation)", s.dead_letter("allocation")),
    ] {
        println!("{name:<28} {}", seen.count(&subject));
    }
}

/// A ship-complete order held until its last line arrives, a cancellation whose units go to the next order in
/// line, a cancellation refused, and a cycle count that takes a unit back.
async fn ship_complete_and_cancellation(
    bus: &backorder_runtime::jetstream::Bus,
    db: &sqlx::PgPool,
    demo: &Demo<'_>,
) -> anyhow::Result<()> {
    let s = demo.s;
    let adler = messages::customer("C-ADLER", "desk@hotel-adler.example", "", "en");
    let luna = messages::customer("C-LUNA", "hello@cafe-luna.example", "", "en");
    println!("\n[WMS] initial stock: DESK-OAK 10, LAMP-BRASS 0");
    load_stock(bus, db, "DESK-OAK", 10).await?;

    println!("\n[OMS] Hotel Adler orders SO-1004, ship complete: 4 x DESK-OAK, 2 x LAMP-BRASS");
    let so1004 = demo.placed(messages::ship_complete(messages::order(
        "SO-1004",
        adler,
        &[("DESK-OAK", 4), ("LAMP-BRASS", 2)],
    )));
    bus.publish(s.order_placed(), "SO-1004", &so1004).await?;
    demo.status("SO-1004", 1).await?;
    println!(
        "  (the 4 desks are reserved for SO-1004, but the WMS is not told to pick until the lamps are in)"
    );

    println!("\n[OMS] Cafe Luna orders SO-1005: 8 x DESK-OAK (6 left)");
    let so1005 = demo.placed(messages::order("SO-1005", luna, &[("DESK-OAK", 8)]));
    bus.publish(s.order_placed(), "SO-1005", &so1005).await?;
    demo.status("SO-1005", 1).await?;

    println!("\n[WMS] receives 2 x LAMP-BRASS: SO-1004 is complete and released in full");
    bus.publish(
        s.stock_received(),
        "RC-2",
        &messages::receipt("RC-2", "LAMP-BRASS", 2, "PO-7790"),
    )
    .await?;
    demo.allocation("SO-1004", 1).await?;
    demo.status("SO-1004", 2).await?;

    println!("\n[OMS] Hotel Adler cancels SO-1004: its desks go to Cafe Luna, next in line");
    let cancel = messages::cancellation("CX-1", "SO-1004", &[], "event postponed");
    bus.publish(s.order_cancel(), "CX-1", &cancel).await?;
    demo.withdrawn("SO-1004", 1).await?;
    demo.allocation("SO-1005", 2).await?;
    demo.status("SO-1004", 3).await?;
    demo.status("SO-1005", 2).await?;
    demo.email("SO-1004", Kind::Cancelled).await?;

    println!("\n[OMS] sends the cancellation of SO-1004 once more, under a new id");
    let again = messages::cancellation("CX-2", "SO-1004", &[], "event postponed");
    bus.publish(s.order_cancel(), "CX-2", &again).await?;
    let refused = demo
        .seen
        .wait_for::<RequestRefused>(&s.request_refused(), |r| r.request_id == "cancel/CX-2")
        .await?;
    println!("  -> OMS    refused: {}", refused.reason);

    println!("\n[WMS] cycle count: 3 x DESK-OAK missing; one unit is taken back from Cafe Luna");
    let count = messages::adjustment("CC-1", "DESK-OAK", -3, "cycle count");
    bus.publish(s.stock_adjusted(), "CC-1", &count).await?;
    demo.withdrawn("SO-1005", 1).await?;
    demo.status("SO-1005", 3).await?;
    Ok(())
}

/// A purchase order that does not come on its date: the customers waiting on it are told before they would
/// have to ask, on a simulated clock the demo moves forward.
async fn late_supplier(
    bus: &backorder_runtime::jetstream::Bus,
    db: &sqlx::PgPool,
    demo: &Demo<'_>,
) -> anyhow::Result<()> {
    let s = demo.s;
    let Some(start) = clock_start()? else {
        println!(
            "\n(the late-supplier scenario needs the services on BO_CLOCK=simulated; skipped)"
        );
        return Ok(());
    };
    let day = |n: i64| start + chrono::Duration::days(n);
    let date = |at: chrono::DateTime<chrono::Utc>| at.format("%a %b %-d").to_string();
    let orders = ["SO-1101", "SO-1102"];

    println!(
        "\n[PURCHASING] PO-8100: 60 x CHAIR-OAK, expected {}",
        date(day(5))
    );
    let (id, update) = chair_po(day(5), 1);
    bus.publish(s.supply_updated(), &id, &update).await?;
    // Booked before the orders come, so they are promised its date.
    backorder_test_support::wait_for_value(
        db,
        "select count(*) from supply where po_id = $1",
        "PO-8100",
        1,
    )
    .await?;
    place_chair_orders(bus, demo).await?;

    println!(
        "\n[CLOCK] six days pass; {} went by and PO-8100 has not arrived",
        date(day(5))
    );
    demo.advance_clock(bus, day(6)).await?;
    for order_id in orders {
        demo.event(order_id, Kind::EtaChanged, 1).await?;
    }
    demo.email("SO-1101", Kind::EtaChanged).await?;

    println!(
        "\n[PURCHASING] the supplier confirms a new date: {}",
        date(day(9))
    );
    let (id, update) = chair_po(day(9), 2);
    bus.publish(s.supply_updated(), &id, &update).await?;
    for order_id in orders {
        demo.event(order_id, Kind::EtaChanged, 2).await?;
    }

    println!(
        "\n[CLOCK] two more days; [WMS] the 60 chairs arrive on {}, a day early",
        date(day(8))
    );
    demo.advance_clock(bus, day(8)).await?;
    let receipt = messages::receipt("RC-8100", "CHAIR-OAK", 60, "PO-8100");
    bus.publish(s.stock_received(), "RC-8100", &receipt).await?;
    for order_id in orders {
        demo.event(order_id, Kind::ReadyToShip, 1).await?;
    }
    print_customer_messages(demo, &orders);
    Ok(())
}

/// Revision `revision` of PO-8100's one line (60 x CHAIR-OAK expected at `expected`), with its message id.
fn chair_po(
    expected: chrono::DateTime<chrono::Utc>,
    revision: u32,
) -> (String, backorder_proto::v1::SupplyUpdated) {
    let update = backorder_proto::v1::SupplyUpdated {
        po_id: "PO-8100".into(),
        line_no: 1,
        sku: "CHAIR-OAK".into(),
        quantity_open: 60,
        expected_at: Some(backorder_runtime::time::to_proto(expected)),
        cancelled: false,
        request_id: String::new(),
    };
    (format!("PO-8100/1/{revision}"), update)
}

/// SO-1101 and SO-1102, both waiting on PO-8100 since no chair is in stock.
async fn place_chair_orders(
    bus: &backorder_runtime::jetstream::Bus,
    demo: &Demo<'_>,
) -> anyhow::Result<()> {
    for (order_id, name, quantity) in [
        ("SO-1101", "Nordic Lofts", 20),
        ("SO-1102", "Atelier Brun", 25),
    ] {
        println!("[OMS] {name} orders {order_id}: {quantity} x CHAIR-OAK (none in stock)");
        let customer = messages::customer(
            order_id,
            &format!("orders@{}.example", order_id.to_lowercase()),
            "",
            "en",
        );
        let order = demo.placed(messages::order(
            order_id,
            customer,
            &[("CHAIR-OAK", quantity)],
        ));
        bus.publish(demo.s.order_placed(), order_id, &order).await?;
        demo.event(order_id, Kind::Backordered, 1).await?;
    }
    Ok(())
}

/// The kinds of customer event each of `orders` got, in order.
fn print_customer_messages(demo: &Demo<'_>, orders: &[&str]) {
    println!("\ncustomer messages per order in this scenario (each by email):");
    for &order_id in orders {
        let kinds: Vec<String> = demo
            .seen
            .all::<CustomerEvent>(&demo.s.customer_event())
            .iter()
            .filter(|e| e.order_id == order_id)
            .map(|e| e.kind().as_str_name().to_string())
            .collect();
        println!("  {order_id}: {} ({})", kinds.len(), kinds.join(", "));
    }
}

/// Shortages of several SKUs gathered into one purchase request per supplier, a SKU nobody configured flagged
/// for the buyer, a PO that answers a request and gives the customers their dates, and a request nobody
/// answered re-raised once. Policies from deploy/reorder-policies.toml (`BO_REORDER_POLICY_FILE`).
async fn purchasing(
    bus: &backorder_runtime::jetstream::Bus,
    demo: &Demo<'_>,
) -> anyhow::Result<()> {
    let s = demo.s;
    let Some(start) = clock_start()? else {
        println!("\n(the purchasing scenario needs the services on BO_CLOCK=simulated; skipped)");
        return Ok(());
    };
    // Where late_supplier left the clock.
    let t0 = start + chrono::Duration::days(8);
    let date = |at: chrono::DateTime<chrono::Utc>| at.format("%a %b %-d").to_string();

    println!(
        "\n[OMS] Hotel Adler orders SO-1201: 10 x VASE-CLAY, 30 x BOWL-CLAY; Cafe Luna orders SO-1202: \
         4 x VASE-CLAY, 3 x CANDLE-WAX (none in stock)"
    );
    let adler = messages::customer("C-ADLER", "desk@hotel-adler.example", "", "en");
    let luna = messages::customer("C-LUNA", "hello@cafe-luna.example", "", "en");
    for (order_id, customer, lines) in [
        ("SO-1201", adler, vec![("VASE-CLAY", 10), ("BOWL-CLAY", 30)]),
        ("SO-1202", luna, vec![("VASE-CLAY", 4), ("CANDLE-WAX", 3)]),
    ] {
        let order = demo.placed(messages::order(order_id, customer, &lines));
        bus.publish(s.order_placed(), order_id, &order).await?;
        demo.status(order_id, 1).await?;
    }

    println!("\n[CLOCK] five minutes pass: one purchase request per supplier, one line per SKU");
    demo.advance_clock(bus, t0 + chrono::Duration::minutes(6))
        .await?;
    let clay = demo.purchase_request("VASE-CLAY", 1).await?;
    demo.purchase_request("CANDLE-WAX", 1).await?;

    let expected = t0 + chrono::Duration::days(4);
    println!(
        "\n[PURCHASING] clay-works confirms PO-9100 for {}, expected {}",
        clay.request_id,
        date(expected)
    );
    for (line_no, line) in (1..).zip(&clay.lines) {
        let update = backorder_proto::v1::SupplyUpdated {
            po_id: "PO-9100".into(),
            line_no,
            sku: line.sku.clone(),
            quantity_open: line.quantity,
            expected_at: Some(backorder_runtime::time::to_proto(expected)),
            cancelled: false,
            request_id: clay.request_id.clone(),
        };
        bus.publish(s.supply_updated(), &format!("PO-9100/{line_no}/1"), &update)
            .await?;
    }
    demo.status_when("SO-1201", |o| o.lines.iter().all(|l| !l.eta_estimated))
        .await?;

    println!(
        "\n[CLOCK] two days pass; nobody ordered the candles: their request is re-raised, once"
    );
    demo.advance_clock(
        bus,
        t0 + chrono::Duration::days(2) + chrono::Duration::minutes(10),
    )
    .await?;
    demo.purchase_request("CANDLE-WAX", 2).await?;
    Ok(())
}

/// The backorder desk at work, through the query API (`<p>.api.*`): a what-if receipt, and a retailer-contract
/// order moved to the front of its queue by an `OrderPriorityChanged`.
async fn desk(bus: &backorder_runtime::jetstream::Bus, demo: &Demo<'_>) -> anyhow::Result<()> {
    let s = &bus.subjects;
    let museum = messages::customer("C-MUSEUM", "shop@museum.example", "", "en");
    println!(
        "\n[OMS] the Museum Shop orders SO-1301: 6 x VASE-CLAY (behind Hotel Adler and Cafe Luna)"
    );
    let order = demo.placed(messages::order("SO-1301", museum, &[("VASE-CLAY", 6)]));
    bus.publish(s.order_placed(), "SO-1301", &order).await?;

    let before = so1301_backordered(bus).await?;
    println!("  -> DESK   SO-1301 line 1: {}", queue_place(&before));

    preview_vase_receipt(bus).await?;

    println!("[OMS] SO-1301 falls under a retailer contract: priority 10 (in.order.priority)");
    let change = OrderPriorityChanged {
        request_id: "PRIO-1301".into(),
        order_id: "SO-1301".into(),
        priority: 10,
        reason: "retailer contract".into(),
    };
    bus.publish(s.order_priority(), "PRIO-1301", &change)
        .await?;
    // After ten seconds the place is shown anyway: it then shows that the change did not land.
    let mut waited = 0;
    let after = loop {
        let order = get_so1301(bus).await?;
        if order.priority == 10 || waited == 100 {
            break order;
        }
        waited += 1;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    println!("  -> DESK   SO-1301 line 1: {}", queue_place(&after));
    Ok(())
}

/// SO-1301 through the query API.
async fn get_so1301(bus: &backorder_runtime::jetstream::Bus) -> anyhow::Result<GetOrderReply> {
    let request = GetOrderRequest {
        order_id: "SO-1301".into(),
    };
    api::<_, GetOrderReply>(bus, "order.get", &request).await
}

/// SO-1301 once allocation has queued it for VASE-CLAY; the query API may not know it yet, so errors are
/// retried for ten seconds.
async fn so1301_backordered(
    bus: &backorder_runtime::jetstream::Bus,
) -> anyhow::Result<GetOrderReply> {
    let mut waited = 0;
    loop {
        match get_so1301(bus).await {
            Ok(order) if order.lines.first().is_some_and(|l| l.backordered > 0) => {
                return Ok(order);
            }
            _ if waited < 100 => waited += 1,
            Err(error) => return Err(error),
            Ok(_) => anyhow::bail!("SO-1301 does not wait for VASE-CLAY"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// An order's first line's place in its queue and its promised date, as the desk reads them.
fn queue_place(order: &GetOrderReply) -> String {
    let line = &order.lines[0];
    let queue = line.queue.clone().unwrap_or_default();
    let promise = line.promise.unwrap_or_default();
    let eta = promise
        .eta
        .as_ref()
        .and_then(backorder_runtime::time::from_proto)
        .map_or("no date".to_string(), |at| {
            at.format("%a %b %-d").to_string()
        });
    format!(
        "position {} ({} units ahead), ETA {eta}{}",
        queue.position,
        queue.units_ahead,
        if promise.eta_estimated {
            " (estimate)"
        } else {
            ""
        }
    )
}

/// Which backorders a receipt of 12 x VASE-CLAY would fill, asked without receiving anything.
async fn preview_vase_receipt(bus: &backorder_runtime::jetstream::Bus) -> anyhow::Result<()> {
    let preview: PreviewReceiptReply = api(
        bus,
        "receipt.preview",
        &PreviewReceiptRequest {
            sku: "VASE-CLAY".into(),
            quantity: 12,
            po_id: String::new(),
        },
    )
    .await?;
    println!("[DESK] what if 12 x VASE-CLAY arrived now? (receipt.preview: nothing changes)");
    for fill in &preview.fills {
        println!(
            "  -> would fill {} line {}: {} units (position {}, {} still waiting)",
            fill.order_id, fill.line_no, fill.quantity, fill.position, fill.backordered_after
        );
    }
    Ok(())
}

/// How long the demo waits for the query API (async-nats' own default for a request).
const API_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// One request to the query API; its error headers become the error.
async fn api<Req: prost::Message, Rep: prost::Message + Default>(
    bus: &backorder_runtime::jetstream::Bus,
    endpoint: &str,
    request: &Req,
) -> anyhow::Result<Rep> {
    let subject = bus.subjects.api(endpoint);
    query::request(&bus.client, subject, request, API_TIMEOUT)
        .await
        .map_err(|e| anyhow::anyhow!("{endpoint}: {e}"))
}

/// The start of the services' simulated clock (`BO_CLOCK_START`); `None` on the wall clock.
fn clock_start() -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
    match std::env::var("BO_CLOCK_START") {
        Ok(start) if std::env::var("BO_CLOCK").as_deref() == Ok("simulated") => Ok(Some(
            chrono::DateTime::parse_from_rfc3339(&start)
                .context("BO_CLOCK_START")?
                .with_timezone(&chrono::Utc),
        )),
        _ => Ok(None),
    }
}

struct Demo<'a> {
    s: &'a Subjects,
    seen: &'a Seen,
    /// Where the services' simulated clock stands (as the demo last moved it); `None` on the wall clock.
    now: std::cell::Cell<Option<chrono::DateTime<chrono::Utc>>>,
}

impl Demo<'_> {
    /// The order placed now by the services' clock: on a simulated clock the wall clock's time (which
    /// `messages::order` gives) would place it days before what happens to it.
    fn placed(
        &self,
        mut order: backorder_proto::v1::OrderPlaced,
    ) -> backorder_proto::v1::OrderPlaced {
        if let Some(now) = self.now.get() {
            order.placed_at = Some(backorder_runtime::time::to_proto(now));
        }
        order
    }

    /// The `nth` allocation of an order.
    async fn allocation(&self, order_id: &str, nth: usize) -> anyhow::Result<()> {
        let subject = self.s.allocation_created();
        let seen = self.seen;
        seen.wait_for::<AllocationCreated>(&subject, |_| {
            seen.all::<AllocationCreated>(&subject)
                .iter()
                .filter(|a| a.order_id == order_id)
                .count()
                >= nth
        })
        .await?;
        let allocation = seen
            .all::<AllocationCreated>(&subject)
            .into_iter()
            .filter(|a| a.order_id == order_id)
            .nth(nth - 1)
            .unwrap();
        let lines: Vec<String> = allocation
            .lines
            .iter()
            .map(|l| format!("line {} {} x {}", l.line_no, l.quantity, l.sku))
            .collect();
        println!("  -> WMS    pick {order_id}: {}", lines.join(", "));
        Ok(())
    }

    /// Moves the services' simulated clock; allocation fires the timers due on the way, each at its own time.
    async fn advance_clock(
        &self,
        bus: &backorder_runtime::jetstream::Bus,
        to: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<()> {
        let advanced = ClockAdvanced {
            to: Some(backorder_runtime::time::to_proto(to)),
        };
        self.now.set(Some(to));
        bus.publish(
            self.s.clock(),
            &format!("clock/{}", to.to_rfc3339()),
            &advanced,
        )
        .await
    }

    /// The `nth` customer event of a kind for an order, with its first line's date.
    async fn event(&self, order_id: &str, kind: Kind, nth: usize) -> anyhow::Result<()> {
        let subject = self.s.customer_event();
        let seen = self.seen;
        let matching = || {
            seen.all::<CustomerEvent>(&subject)
                .into_iter()
                .filter(|e| e.order_id == order_id && e.kind() == kind)
        };
        seen.wait_for::<CustomerEvent>(&subject, |_| matching().count() >= nth)
            .await?;
        let event = matching().nth(nth - 1).unwrap();
        let line = &event.lines[0];
        let eta = line
            .eta
            .as_ref()
            .and_then(backorder_runtime::time::from_proto)
            .map(|at| {
                let how = if line.eta_late {
                    ", supplier late"
                } else if line.eta_estimated {
                    ", estimated"
                } else {
                    ""
                };
                format!(", expected {}{how}", at.format("%a %b %-d"))
            })
            .unwrap_or_default();
        println!(
            "  -> CUSTOMER {order_id} {}: {} x {}{eta}",
            kind.as_str_name(),
            line.quantity,
            line.sku
        );
        Ok(())
    }

    /// The `nth` withdrawal of an order's units from the WMS.
    async fn withdrawn(&self, order_id: &str, nth: usize) -> anyhow::Result<()> {
        let subject = self.s.allocation_cancelled();
        let seen = self.seen;
        let of_order = || {
            seen.all::<AllocationCancelled>(&subject)
                .into_iter()
                .filter(|a| a.order_id == order_id)
        };
        seen.wait_for::<AllocationCancelled>(&subject, |_| of_order().count() >= nth)
            .await?;
        let withdrawal = of_order().nth(nth - 1).unwrap();
        let lines: Vec<String> = withdrawal
            .lines
            .iter()
            .map(|l| format!("line {} {} x {}", l.line_no, l.quantity, l.sku))
            .collect();
        println!(
            "  -> WMS    do not pick {order_id}: {} ({})",
            lines.join(", "),
            withdrawal.reason
        );
        Ok(())
    }

    async fn status(&self, order_id: &str, version: u64) -> anyhow::Result<()> {
        self.status_when(order_id, |o| o.version == version).await
    }

    /// The first status of an order that `matches`.
    async fn status_when(
        &self,
        order_id: &str,
        matches: impl Fn(&OrderStatus) -> bool,
    ) -> anyhow::Result<()> {
        let status = self
            .seen
            .wait_for::<OrderStatus>(&self.s.order_status(), |o| {
                o.order_id == order_id && matches(o)
            })
            .await?;
        let version = status.version;
        println!(
            "  -> OMS    {order_id} v{version} {}",
            status.status().as_str_name()
        );
        for l in &status.lines {
            let mut extra = String::new();
            if l.cancelled > 0 {
                extra.push_str(&format!(", cancelled {}", l.cancelled));
            }
            if l.held > 0 {
                extra.push_str(&format!(" ({} held for ship-complete)", l.held));
            }
            if let Some(eta) = l.eta.as_ref().and_then(backorder_runtime::time::from_proto) {
                let how = if l.eta_estimated {
                    "estimated"
                } else {
                    "confirmed"
                };
                extra.push_str(&format!(", ETA {} ({how})", eta.format("%a %b %-d")));
            }
            println!(
                "             line {} {}: ordered {}, allocated {}, backordered {}, shipped {}{extra}",
                l.line_no, l.sku, l.ordered, l.allocated, l.backordered, l.shipped
            );
        }
        Ok(())
    }

    /// The `nth` purchase request that names `sku`, as a buyer reads it.
    async fn purchase_request(&self, sku: &str, nth: usize) -> anyhow::Result<PurchaseRequest> {
        let subject = self.s.purchase_request();
        let names = |r: &PurchaseRequest| r.lines.iter().any(|l| l.sku == sku);
        let seen = self.seen;
        let naming = || {
            seen.all::<PurchaseRequest>(&subject)
                .into_iter()
                .filter(names)
        };
        seen.wait_for::<PurchaseRequest>(&subject, |_| naming().count() >= nth)
            .await?;
        let request = naming().nth(nth - 1).unwrap();
        // The reason names the supplier first.
        println!(
            "  -> BUYER  purchase request {}: {}",
            request.request_id, request.reason
        );
        for line in &request.lines {
            let need_by = line
                .need_by
                .as_ref()
                .and_then(backorder_runtime::time::from_proto)
                .map(|at| at.format("%a %b %-d").to_string())
                .unwrap_or_default();
            println!(
                "             {} x {}, need by {need_by}{}: {}",
                line.quantity,
                line.sku,
                if line.default_policy {
                    " [default policy]"
                } else {
                    ""
                },
                line.reason
            );
        }
        Ok(request)
    }

    async fn email(&self, order_id: &str, kind: Kind) -> anyhow::Result<()> {
        let email = self
            .seen
            .wait_for::<EmailMessage>(&self.s.notify_email(), |m| {
                m.order_id == order_id && m.kind() == kind
            })
            .await?;
        println!("  -> EMAIL  to {}: {}", email.to, email.subject);
        for line in email.text_body.lines() {
            println!("             | {line}");
        }
        Ok(())
    }

    async fn sms(&self, order_id: &str, kind: Kind) -> anyhow::Result<()> {
        let sms = self
            .seen
            .wait_for::<SmsMessage>(&self.s.notify_sms(), |m| {
                m.order_id == order_id && m.kind() == kind
            })
            .await?;
        println!("  -> SMS    to {}: {}", sms.to, sms.text);
        Ok(())
    }
}
