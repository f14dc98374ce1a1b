//! From a backorder to a purchase request, from the purchase order that answers it to the customer's ETA, with
//! the four services as processes over NATS and Postgres.

use backorder_proto::v1::{OrderStatus, PurchaseRequest, SkuUpserted, SupplyUpdated};
use backorder_runtime::time;
use backorder_test_support::{System, messages};
use chrono::{Duration, DurationRound, Utc};

#[tokio::test]
async fn a_backorder_is_requested_answered_by_a_po_and_the_customer_gets_its_date()
-> anyhow::Result<()> {
    let system = System::start().await?;
    let s = system.subjects().clone();
    let seen = &system.seen;

    // The product master gives VASE a supplier and a pack size.
    let upsert = SkuUpserted {
        sku: "VASE".into(),
        backorderable: true,
        supplier_id: "clay-works".into(),
        lead_time_days: 10,
        pack_size: 6,
        ..Default::default()
    };
    system.publish(s.sku_upserted(), "VASE", &upsert).await?;
    // Kept once replenishment-trigger has its bucket and handled the upsert.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Ok(bucket) = system.bus.js.get_key_value(s.replenishment_bucket()).await
            && bucket.get("policy.VASE").await?.is_some()
        {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the VASE policy was not kept"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Nothing in stock: 10 backordered, and purchasing is asked for them in packs of 6.
    let customer = messages::customer("C-1", "c1@shop.example", "", "en");
    let order = messages::order("SO-1", customer.clone(), &[("VASE", 10)]);
    system.publish(s.order_placed(), "SO-1", &order).await?;
    let request = seen
        .wait_for::<PurchaseRequest>(&s.purchase_request(), |r| {
            r.lines.iter().any(|l| l.sku == "VASE")
        })
        .await?;
    assert_eq!(request.supplier_id, "clay-works");
    let line = &request.lines[0];
    assert_eq!(
        (
            line.sku.as_str(),
            line.quantity,
            line.orders_waiting,
            line.backordered
        ),
        ("VASE", 12, 1, 10)
    );
    assert!(!line.default_policy);
    assert!(
        line.reason
            .starts_with("1 customer order waits for 10 units"),
        "{}",
        line.reason
    );

    // Until purchasing answers, the customer's date is an estimate from the lead time.
    let first = seen
        .wait_for::<OrderStatus>(&s.order_status(), |o| o.order_id == "SO-1")
        .await?;
    assert!(first.lines[0].eta_estimated);

    // Purchasing answers with a PO naming the request: the customer's line gets the PO's date.
    let expected = (Utc::now() + Duration::days(7)).duration_trunc(Duration::days(1))?;
    let po = SupplyUpdated {
        po_id: "PO-1".into(),
        line_no: 1,
        sku: "VASE".into(),
        quantity_open: 12,
        expected_at: Some(time::to_proto(expected)),
        cancelled: false,
        request_id: request.request_id.clone(),
    };
    system.publish(s.supply_updated(), "PO-1/1/1", &po).await?;
    let status = seen
        .wait_for::<OrderStatus>(&s.order_status(), |o| {
            o.order_id == "SO-1" && o.lines[0].eta.is_some() && !o.lines[0].eta_estimated
        })
        .await?;
    let eta = status.lines[0].eta.as_ref().and_then(time::from_proto);
    assert_eq!(
        eta,
        Some(expected + Duration::days(1)),
        "the PO date plus a day of handling"
    );

    // Five more wanted: 15 wait, 12 come, the request is answered. Only the 3 nobody covers are asked for
    // (one pack). Had the answer not closed the request, its 12 units would count twice and nothing would be
    // asked; had the PO not counted, 15 would be.
    let order = messages::order("SO-2", customer, &[("VASE", 5)]);
    system.publish(s.order_placed(), "SO-2", &order).await?;
    let second = seen
        .wait_for::<PurchaseRequest>(&s.purchase_request(), |r| {
            r.request_id != request.request_id
        })
        .await?;
    assert_eq!(
        (second.lines[0].sku.as_str(), second.lines[0].quantity),
        ("VASE", 6)
    );
    assert_eq!(second.lines[0].backordered, 15);
    assert_eq!(seen.count(&s.purchase_request()), 2);
    system.stop().await
}
