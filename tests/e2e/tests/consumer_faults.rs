//! Consumer faults in the running system: the durable consumers of order-intake and allocation deleted on
//! the server while the services run are made again; an order placed afterwards is accepted and allocated,
//! no service exits, and `/ready` answers 200 again.

use std::time::Duration;

use backorder_proto::v1::{OrderAccepted, OrderStatus};
use backorder_runtime::subjects::StreamKind;
use backorder_test_support::{System, http_get, messages};

/// Waits (up to 20 s) until `service`'s `/ready` answers 200.
async fn wait_until_ready(system: &System, service: &str) -> anyhow::Result<()> {
    let addr = system.http_addr(service).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = http_get(addr, "/ready").await.unwrap_or((0, String::new()));
        if status == 200 {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{service} /ready is {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn deleted_durable_consumers_are_made_again_and_orders_keep_flowing() -> anyhow::Result<()> {
    let mut system = System::start().await?;
    let s = system.subjects().clone();
    let customer = messages::customer("C-F", "f@shop.example", "", "en");

    system
        .publish(
            s.order_placed(),
            "SO-F1",
            &messages::order("SO-F1", customer.clone(), &[("SKU-F", 1)]),
        )
        .await?;
    system
        .seen
        .wait_for::<OrderStatus>(&s.order_status(), |o| o.order_id == "SO-F1")
        .await?;
    for service in ["order-intake", "allocation"] {
        wait_until_ready(&system, service).await?;
    }

    // An operator (or a wrong script) deletes the consumers the two services pull from.
    let inbound = system
        .bus
        .js
        .get_stream(s.stream(StreamKind::Inbound))
        .await?;
    let internal = system
        .bus
        .js
        .get_stream(s.stream(StreamKind::Internal))
        .await?;
    inbound.delete_consumer("order-intake").await?;
    internal.delete_consumer("allocation").await?;

    system
        .publish(
            s.order_placed(),
            "SO-F2",
            &messages::order("SO-F2", customer, &[("SKU-F", 1)]),
        )
        .await?;
    system
        .seen
        .wait_for::<OrderAccepted>(&s.order_accepted(), |o| {
            o.order.as_ref().is_some_and(|o| o.order_id == "SO-F2")
        })
        .await?;
    system
        .seen
        .wait_for::<OrderStatus>(&s.order_status(), |o| o.order_id == "SO-F2")
        .await?;
    system.assert_running()?;
    for service in ["order-intake", "allocation"] {
        wait_until_ready(&system, service).await?;
    }
    assert!(inbound.consumer_info("order-intake").await.is_ok());
    assert!(internal.consumer_info("allocation").await.is_ok());
    system.stop().await
}
