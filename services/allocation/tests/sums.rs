//! Sums the store computes stay in range whatever the rows hold.

mod common;

use backorder_proto::v1::ReorderNeeded;
use common::*;
use sqlx::PgPool;

#[sqlx::test]
async fn open_supply_summing_past_a_bigint_is_clamped_not_a_failed_batch(pool: PgPool) {
    // Three open PO lines of 4 * 10^18 units: beyond what the bounds let in, summing past i64::MAX.
    for po in ["PO-1", "PO-2", "PO-3"] {
        sqlx::query(
            "insert into supply (po_id, line_no, sku, quantity_open, expected_at, cancelled, stream_sequence)
             values ($1, 1, 'X', 4000000000000000000, $2, false, 1)",
        )
        .bind(po)
        .bind(day(10))
        .execute(&pool)
        .await
        .unwrap();
    }
    let engine = at_day(&pool, 0);
    engine
        .apply(&[
            order("SO-1", 0, 0, &[("X", 5)]),
            supply("PO-4", "X", 5, 10, 1),
        ])
        .await
        .expect("the batch commits");
    assert_eq!(line(&pool, "SO-1", 1).await, (0, 5, 0));
    let reorders = outbox::<ReorderNeeded>(&pool, "t.reorder.needed").await;
    // New supply is reported (so the figures go out although nothing is short), its inbound clamped.
    assert_eq!(reorders.len(), 1, "{reorders:?}");
    assert_eq!(reorders[0].inbound, i64::MAX / 4);
    assert_eq!(reorders[0].shortage, 0);
}
