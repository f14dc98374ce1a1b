//! Crashes: allocation killed with SIGKILL in the middle of a stream of orders and cancellations loses no
//! message and applies none twice; what it emits reaches a consumer that dedupes by id once.

use std::collections::HashMap;

use backorder_proto::v1::{AllocationCancelled, AllocationCreated, OrderStatus};
use backorder_test_support::{System, load_stock, messages, wait_for_value};

const ORDERS: usize = 240;
const STOCK: i64 = 150;
/// Every `CANCEL_EVERY`th order cancels the order placed that many before it.
const CANCEL_EVERY: usize = 12;
const CANCELLED: i64 = (ORDERS / CANCEL_EVERY - 1) as i64;

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
        if i % CANCEL_EVERY == 0 && i > 0 {
            let request = format!("X-{i}");
            let order_id = format!("SO-{:04}", i - CANCEL_EVERY);
            let cancel = messages::cancellation(&request, &order_id, &[], "crash test");
            system.publish(s.order_cancel(), &request, &cancel).await?;
        }
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
        "select count(*) from processed_messages where message_id like $1",
        "cancel/%",
        CANCELLED,
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
        (STOCK, ORDERS as i64 - CANCELLED - STOCK),
        "every unit once, every order once, every cancellation once"
    );
    assert_eq!(system.invariant_violations().await?, Vec::<String>::new());
    let stock_allocated: i64 =
        sqlx::query_scalar("select allocated from stock where sku = 'SKU-X'")
            .fetch_one(&system.db)
            .await?;
    assert_eq!(stock_allocated, STOCK);

    // What a deduping consumer sees: every status version of every order once, ending at the version stored,
    // and per order at most one unit to pick, net of withdrawals; for exactly the stock there was.
    let versions: Vec<(String, i64)> =
        sqlx::query_as("select order_id, version from orders order by order_id")
            .fetch_all(&system.db)
            .await?;
    let expected_statuses = versions.iter().map(|v| v.1).sum::<i64>() as usize;
    let deadline = tokio::time::Instant::now() + backorder_test_support::PATIENCE;
    while system.seen.distinct::<OrderStatus>(&s.order_status()).len() < expected_statuses
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let statuses = system.seen.distinct::<OrderStatus>(&s.order_status());
    assert_eq!(statuses.len(), expected_statuses);
    let mut latest: HashMap<String, i64> = HashMap::new();
    for status in &statuses {
        let v = latest.entry(status.order_id.clone()).or_default();
        *v = (*v).max(status.version as i64);
    }
    assert_eq!(latest, versions.into_iter().collect::<HashMap<_, _>>());

    let mut per_order: HashMap<String, i64> = HashMap::new();
    for a in system
        .seen
        .distinct::<AllocationCreated>(&s.allocation_created())
    {
        *per_order.entry(a.order_id).or_default() +=
            a.lines.iter().map(|l| l.quantity).sum::<i64>();
    }
    for a in system
        .seen
        .distinct::<AllocationCancelled>(&s.allocation_cancelled())
    {
        *per_order.entry(a.order_id).or_default() -=
            a.lines.iter().map(|l| l.quantity).sum::<i64>();
    }
    assert!(
        per_order.values().all(|q| *q == 0 || *q == 1),
        "an order was allocated twice: {per_order:?}"
    );
    assert_eq!(per_order.values().sum::<i64>(), STOCK);
    system.stop().await
}
