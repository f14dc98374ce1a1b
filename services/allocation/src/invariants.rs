//! The books' invariants, checked in SQL over the whole store: after tests, after crash and concurrency runs,
//! and by an operator (`allocation check`). CHECK constraints hold most of them row by row; these also hold
//! across rows.

use sqlx::PgPool;

/// Each query returns one text per violation, naming the SKU or order line and what is wrong.
const CHECKS: &[&str] = &[
    // Stock is conserved and never over-allocated.
    "select format('stock %s: on hand %s, allocated %s, received %s + adjusted %s <> on hand + shipped %s',
                   sku, on_hand, allocated, received, adjusted, shipped)
     from stock
     where on_hand < 0 or allocated < 0 or allocated > on_hand or received + adjusted <> on_hand + shipped",
    // What the stock row says is allocated and shipped is what the lines hold.
    "select format('stock %s: allocated %s but lines hold %s; shipped %s but lines shipped %s; backordered %s but lines wait for %s',
                   s.sku, s.allocated, coalesce(l.allocated, 0), s.shipped, coalesce(l.shipped, 0),
                   s.backordered, coalesce(l.backordered, 0))
     from stock s
     left join (select sku, sum(allocated) allocated, sum(shipped) shipped, sum(backordered) backordered
                from order_lines group by sku) l
          using (sku)
     where s.allocated <> coalesce(l.allocated, 0) or s.shipped <> coalesce(l.shipped, 0)
        or s.backordered <> coalesce(l.backordered, 0)",
    // Every line adds up, nothing negative, released within allocated.
    "select format('line %s/%s: ordered %s <> allocated %s + backordered %s + shipped %s + cancelled %s, released %s',
                   order_id, line_no, ordered, allocated, backordered, shipped, cancelled, released)
     from order_lines
     where ordered <> allocated + backordered + shipped + cancelled
        or least(allocated, backordered, shipped, cancelled, released) < 0 or released > allocated",
    // Nobody waits while stock of their SKU is free.
    "select format('stock %s: %s units free while %s units wait', s.sku, s.on_hand - s.allocated, w.waiting)
     from stock s
     join (select sku, sum(backordered) waiting from order_lines where backordered > 0 group by sku) w
          using (sku)
     where s.on_hand > s.allocated",
    // A ship-complete order releases nothing to the WMS while any line waits.
    "select format('order %s: ship-complete with units waiting, but %s units released', o.order_id,
                   sum(l.released))
     from orders o join order_lines l using (order_id)
     where o.ship_policy = 1
     group by o.order_id
     having sum(l.backordered) > 0 and sum(l.released) > 0",
    // Every allocated unit is released, unless its ship-complete order still waits: nothing is stuck.
    "select format('order %s: %s units allocated but not released, and nothing waits', o.order_id,
                   sum(l.allocated - l.released))
     from orders o join order_lines l using (order_id)
     group by o.order_id
     having sum(l.allocated - l.released) > 0 and (bool_or(o.ship_policy = 0) or sum(l.backordered) = 0)",
    // Demand lost for lack of stock is demand that was cancelled: a line never loses more than it cancelled.
    "select format('line %s/%s: %s units recorded as lost demand but %s cancelled', l.order_id, l.line_no,
                   x.lost, l.cancelled)
     from order_lines l
     join (select order_id, line_no, sum(units) lost from lost_units group by order_id, line_no) x
          using (order_id, line_no)
     where x.lost > l.cancelled",
];

/// Every violation of the invariants, in words; empty when the books are straight.
pub async fn violations(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    let mut found = Vec::new();
    for check in CHECKS {
        let rows: Vec<String> = sqlx::query_scalar(*check).fetch_all(pool).await?;
        found.extend(rows);
    }
    Ok(found)
}
