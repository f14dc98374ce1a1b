//! Crashes: allocation killed with SIGKILL in the middle of a stream of orders loses no order and applies
//! none twice; what it emits reaches a consumer that dedupes by id once.

use std::collections::HashMap;

use backorder_e2e::{System, load_stock, messages, wait_for_value};
use backorder_proto::v1::{AllocationCreated, OrderStatus};

const ORDERS: usize = 240;
const STOCK: i64 = 150;

#[tokio::test]
async fn allocation_killed_mid_stream_loses_nothing_and_applies_nothing_twice() -> anyhow::Result<()>
{
    // Small batches, so the kill lands between many commits.
    let mut system = System::start_with(&HashMap::from([("BO_BATCH_SIZE", "8")])).await?;
    let s = system.subjects().clone();
    let customer = messages::customer("C-1", "c@shop.example", "", "en");

    load_stock(&system.bus, &system.db, "SKU-X", STOCK).await?;
    for i in 0..ORDERS {
        let id = format!("SO-{i:04}");
        system
            .publish(
                s.order_placed(),
                &id,
                &messages::order(&id, customer.clone(), &[("SKU-X", 1)]),
            )
            .await?;
        if i == ORDERS / 3 {
            system.kill("allocation").await?;
        }
        if i == 2 * ORDERS / 3 {
            system.restart("allocation")?;
        }
    }
    // Messages the killed process held come back after the ack wait (30 s).
    wait_for_value(
        &system.db,
        "select count(*) from orders where $1 = ''",
        "",
        ORDERS as i64,
    )
    .await?;
    wait_for_value(
        &system.db,
        "select count(*)::bigint from outbox where $1 = ''",
        "",
        0,
    )
    .await?;
    system.assert_running()?;

    let (allocated, backordered): (i64, i64) = sqlx::query_as(
        "select sum(allocated)::bigint, sum(backordered)::bigint from order_lines where sku = 'SKU-X'",
    )
    .fetch_one(&system.db)
    .await?;
    assert_eq!(
        (allocated, backordered),
        (STOCK, ORDERS as i64 - STOCK),
        "every unit once, every order once"
    );
    let stock_allocated: i64 =
        sqlx::query_scalar("select allocated from stock where sku = 'SKU-X'")
            .fetch_one(&system.db)
            .await?;
    assert_eq!(stock_allocated, STOCK);

    // What a deduping consumer sees: one first status per order, at most one allocation per order, and
    // allocations for exactly the stock there was.
    let deadline = tokio::time::Instant::now() + backorder_e2e::PATIENCE;
    while system.seen.distinct::<OrderStatus>(&s.order_status()).len() < ORDERS
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let statuses = system.seen.distinct::<OrderStatus>(&s.order_status());
    assert_eq!(statuses.len(), ORDERS);
    assert!(statuses.iter().all(|st| st.version == 1));
    let allocations = system
        .seen
        .distinct::<AllocationCreated>(&s.allocation_created());
    let mut per_order: HashMap<&str, i64> = HashMap::new();
    for a in &allocations {
        *per_order.entry(&a.order_id).or_default() +=
            a.lines.iter().map(|l| l.quantity).sum::<i64>();
    }
    assert!(
        per_order.values().all(|q| *q == 1),
        "an order was allocated twice"
    );
    assert_eq!(per_order.values().sum::<i64>(), STOCK);
    system.stop().await
}
