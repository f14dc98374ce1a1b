//! Product-master rules per SKU. The newest upsert in stream order wins (stored time, then sequence: a
//! recreated stream counts from 1 again), so an old redelivery never undoes a newer rule.

use backorder_proto::v1::SkuUpserted;
use chrono::{DateTime, Utc};

use super::{Applied, Work};

impl Work<'_> {
    pub(super) async fn upsert_sku(
        &mut self,
        sku: &SkuUpserted,
        published: DateTime<Utc>,
        sequence: u64,
        cause: &str,
    ) -> Result<Applied, sqlx::Error> {
        tracing::Span::current().record("sku", sku.sku.as_str());
        let applied = sqlx::query(
            "insert into skus (sku, backorderable, max_backorder_quantity, preorder, supplier_id, lead_time_days,
                               stream_sequence, updated_at, stream_published)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             on conflict (sku) do update set
                 backorderable = excluded.backorderable,
                 max_backorder_quantity = excluded.max_backorder_quantity,
                 preorder = excluded.preorder, supplier_id = excluded.supplier_id,
                 lead_time_days = excluded.lead_time_days, stream_sequence = excluded.stream_sequence,
                 updated_at = excluded.updated_at, stream_published = excluded.stream_published
             where (skus.stream_published, skus.stream_sequence)
                 < (excluded.stream_published, excluded.stream_sequence)",
        )
        .bind(&sku.sku)
        .bind(sku.backorderable)
        .bind(sku.max_backorder_quantity)
        .bind(sku.preorder)
        .bind(&sku.supplier_id)
        .bind(sku.lead_time_days)
        .bind(sequence as i64)
        .bind(self.now)
        .bind(published)
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        if applied == 0 {
            tracing::info!(sequence, "a newer rule for the SKU is already stored");
        } else {
            // A new lead time moves the estimates.
            self.skus.reproject(&sku.sku, cause, true);
            tracing::info!(
                backorderable = sku.backorderable,
                max_backorder_quantity = sku.max_backorder_quantity,
                preorder = sku.preorder,
                "SKU rules stored"
            );
        }
        Ok(Applied::Done)
    }
}
