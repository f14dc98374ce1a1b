//! `<p>.api.sku.queue`: a SKU's stock, its rules, its queue in fill order and the open supply that covers it.

use backorder_proto::v1::{
    GetSkuQueueReply, GetSkuQueueRequest, QueueEntry, SkuRules, StockFigures,
};
use backorder_runtime::limits::Check;
use backorder_runtime::time::to_proto;
use chrono::{DateTime, Utc};

use super::view::{self, Dates, SupplyLine};
use super::{Api, ApiError};
use crate::engine::Policy;
use crate::eta::Settings;

#[derive(sqlx::FromRow)]
struct StockRow {
    on_hand: i64,
    allocated: i64,
    backordered: i64,
    received: i64,
    shipped: i64,
}

#[derive(sqlx::FromRow)]
struct RulesRow {
    backorderable: bool,
    max_backorder_quantity: i64,
    preorder: bool,
    supplier_id: String,
    lead_time_days: i32,
}

#[derive(sqlx::FromRow)]
struct QueueRow {
    order_id: String,
    line_no: i32,
    customer_id: String,
    priority: i32,
    placed_at: DateTime<Utc>,
    backordered: i64,
    preorder: bool,
    #[sqlx(flatten)]
    dates: Dates,
}

/// What the store holds of a SKU, read in one snapshot.
struct StoredSku {
    stock: Option<StockRow>,
    rules: Option<RulesRow>,
    /// Its waiting lines in fill order.
    queue: Vec<QueueRow>,
    /// Its open supply, earliest first.
    supply: Vec<SupplyLine>,
}

impl StoredSku {
    /// Whether nothing at all is known of the SKU.
    fn is_unknown(&self) -> bool {
        self.stock.is_none()
            && self.rules.is_none()
            && self.queue.is_empty()
            && self.supply.is_empty()
    }
}

impl Api {
    pub async fn sku_queue(
        &self,
        request: GetSkuQueueRequest,
    ) -> Result<GetSkuQueueReply, ApiError> {
        let sku = request.sku;
        let mut check = Check::new();
        check.id("sku", &sku);
        check.result().map_err(ApiError::BadRequest)?;
        tracing::Span::current().record("sku", sku.as_str());
        let now = self.engine.clock.now();
        let stored = self.stored_sku(&sku).await?;
        if stored.is_unknown() {
            return Err(ApiError::NotFound(format!("SKU {sku} is not known")));
        }
        Ok(queue_reply(now, &self.engine.policy, sku, stored))
    }

    async fn stored_sku(&self, sku: &str) -> Result<StoredSku, ApiError> {
        let mut tx = view::snapshot(&self.pool).await?;
        let stock: Option<StockRow> = sqlx::query_as(
            "select on_hand, allocated, backordered, received, shipped from stock where sku = $1",
        )
        .bind(sku)
        .fetch_optional(&mut *tx)
        .await?;
        let rules: Option<RulesRow> = sqlx::query_as(
            "select backorderable, max_backorder_quantity, preorder, supplier_id, lead_time_days
             from skus where sku = $1",
        )
        .bind(sku)
        .fetch_optional(&mut *tx)
        .await?;
        let queue: Vec<QueueRow> = sqlx::query_as(
            "select l.order_id, l.line_no, o.customer_id, l.priority, l.placed_at, l.backordered, l.preorder,
                    l.eta, l.eta_estimated, l.eta_late, l.promised_eta
             from order_lines l join orders o on o.order_id = l.order_id
             where l.sku = $1 and l.backordered > 0
             order by l.priority desc, l.placed_at, l.order_id, l.line_no",
        )
        .bind(sku)
        .fetch_all(&mut *tx)
        .await?;
        let skus = [sku.to_string()];
        let supply = view::open_supply(&mut tx, &skus)
            .await?
            .remove(sku)
            .unwrap_or_default();
        tx.commit().await?;
        Ok(StoredSku {
            stock,
            rules,
            queue,
            supply,
        })
    }
}

/// The reply for a SKU as the store has it: its queue's places and promises as of `now`, covered by its open
/// supply the way the projection covers it.
fn queue_reply(
    now: DateTime<Utc>,
    policy: &Policy,
    sku: String,
    stored: StoredSku,
) -> GetSkuQueueReply {
    let StoredSku {
        stock,
        rules,
        queue,
        supply,
    } = stored;
    let settings = policy.settings(rules.as_ref().map(|r| r.lead_time_days));
    let units: Vec<i64> = queue.iter().map(|q| q.backordered).collect();
    let coverage = view::coverage(now, &units, &supply, &settings);
    let inbound: i64 = supply.iter().map(|s| s.quantity_open).sum();
    let stock = stock.map_or_else(StockFigures::default, |s| StockFigures {
        on_hand: s.on_hand,
        allocated: s.allocated,
        available: s.on_hand - s.allocated,
        backordered: s.backordered,
        received: s.received,
        shipped: s.shipped,
        inbound: 0,
    });
    let rules = sku_rules(rules, policy, &settings);
    let entries = queue
        .into_iter()
        .zip(coverage.places)
        .map(|(q, place)| QueueEntry {
            place: Some(place),
            promise: Some(view::promise(now, true, &q.dates)),
            order_id: q.order_id,
            line_no: q.line_no as u32,
            customer_id: q.customer_id,
            priority: q.priority,
            placed_at: Some(to_proto(q.placed_at)),
            backordered: q.backordered,
            preorder: q.preorder,
            eta_before: None,
        })
        .collect();
    GetSkuQueueReply {
        sku,
        stock: Some(StockFigures { inbound, ..stock }),
        rules: Some(rules),
        queue: entries,
        supply: coverage.supply,
        uncovered: coverage.uncovered,
    }
}

/// The SKU's rules as intake and the projection apply them: the product master's, or the policy's for a SKU it
/// never sent.
fn sku_rules(rules: Option<RulesRow>, policy: &Policy, settings: &Settings) -> SkuRules {
    match rules {
        Some(r) => SkuRules {
            known: true,
            backorderable: r.backorderable,
            max_backorder_quantity: r.max_backorder_quantity,
            preorder: r.preorder,
            supplier_id: r.supplier_id,
            lead_time_days: r.lead_time_days,
        },
        // What intake and the projection apply to a SKU the product master never sent.
        None => SkuRules {
            known: false,
            backorderable: policy.unknown_sku_backorderable,
            max_backorder_quantity: 0,
            preorder: false,
            supplier_id: String::new(),
            lead_time_days: settings.lead_time.num_days() as i32,
        },
    }
}
