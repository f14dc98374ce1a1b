//! Inbound supply: purchase-order lines from purchasing, reduced by the receipts that name their PO. Every
//! change re-projects the SKU's ETAs and tells replenishment what is on order.

use backorder_proto::v1::SupplyUpdated;
use chrono::{DateTime, Utc};

use super::{Applied, Work};

impl Work<'_> {
    pub(super) async fn update_supply(
        &mut self,
        supply: &SupplyUpdated,
        published: DateTime<Utc>,
        sequence: u64,
        cause: &str,
    ) -> Result<Applied, sqlx::Error> {
        tracing::Span::current().record("sku", supply.sku.as_str());
        let expected_at: Option<DateTime<Utc>> = supply
            .expected_at
            .as_ref()
            .and_then(backorder_runtime::time::from_proto);
        // A cancelled line without a date keeps the date it had.
        let previous: Option<(String, DateTime<Utc>, i64)> = sqlx::query_as(
            "select sku, expected_at, quantity_open from supply where po_id = $1 and line_no = $2",
        )
        .bind(&supply.po_id)
        .bind(supply.line_no as i32)
        .fetch_optional(&mut *self.tx)
        .await?;
        let Some(expected_at) = expected_at.or(previous.as_ref().map(|p| p.1)) else {
            // Cancelling a line never announced: nothing to keep.
            return Ok(Applied::Done);
        };
        let open = if supply.cancelled {
            0
        } else {
            supply.quantity_open
        };
        let applied = sqlx::query(
            "insert into supply (po_id, line_no, sku, quantity_open, expected_at, cancelled, stream_sequence,
                                 updated_at, stream_published)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             on conflict (po_id, line_no) do update set
                 sku = excluded.sku, quantity_open = excluded.quantity_open, expected_at = excluded.expected_at,
                 cancelled = excluded.cancelled, stream_sequence = excluded.stream_sequence,
                 updated_at = excluded.updated_at, stream_published = excluded.stream_published
             where (supply.stream_published, supply.stream_sequence)
                 < (excluded.stream_published, excluded.stream_sequence)",
        )
        .bind(&supply.po_id)
        .bind(supply.line_no as i32)
        .bind(&supply.sku)
        .bind(open)
        .bind(expected_at)
        .bind(supply.cancelled)
        .bind(sequence as i64)
        .bind(self.now)
        .bind(published)
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        if applied == 0 {
            tracing::info!(sequence, "a newer update of the PO line is already stored");
            return Ok(Applied::Done);
        }
        tracing::info!(po = %supply.po_id, line = supply.line_no, open, %expected_at, cancelled = supply.cancelled, "supply updated");
        let before = match &previous {
            Some((sku, _, open)) if *sku == supply.sku => *open,
            _ => 0,
        };
        let answers = self.skus.answers.entry(supply.sku.clone()).or_default();
        if !supply.request_id.is_empty() {
            // Even a cancelled line is purchasing's answer to the request.
            answers.requests.push(supply.request_id.clone());
        } else {
            answers.added += (open - before).max(0);
        }
        let mut skus = vec![supply.sku.clone()];
        if let Some((old_sku, _, _)) = previous.filter(|(old, _, _)| *old != supply.sku) {
            // The PO line now names another SKU: the old one lost its supply.
            self.lock_skus(vec![old_sku.clone()]).await?;
            skus.push(old_sku);
        }
        for sku in skus {
            self.skus.reproject(&sku, cause, true);
            self.skus.short.insert(sku);
        }
        Ok(Applied::Done)
    }

    /// A receipt on purchase order `po_id` lowers that PO's open quantity of the SKU, first line first. Returns
    /// the units no open line expected (a PO purchasing never reported, or more than it said).
    pub(super) async fn receive_on_po(
        &mut self,
        po_id: &str,
        sku: &str,
        quantity: i64,
    ) -> Result<i64, sqlx::Error> {
        let lines: Vec<(i32, i64)> = sqlx::query_as(
            "select line_no, quantity_open from supply
             where po_id = $1 and sku = $2 and quantity_open > 0 order by line_no for update",
        )
        .bind(po_id)
        .bind(sku)
        .fetch_all(&mut *self.tx)
        .await?;
        let mut left = quantity;
        let mut taken = Vec::new();
        for (line_no, open) in lines {
            if left == 0 {
                break;
            }
            let take = left.min(open);
            taken.push((line_no, take));
            left -= take;
        }
        if taken.is_empty() {
            tracing::info!(
                po = po_id,
                "receipt names a purchase order with nothing open for the SKU"
            );
            return Ok(quantity);
        }
        sqlx::query(
            "update supply s set quantity_open = s.quantity_open - t.take, updated_at = $4
             from unnest($2::int[], $3::bigint[]) as t(line_no, take)
             where s.po_id = $1 and s.line_no = t.line_no",
        )
        .bind(po_id)
        .bind(taken.iter().map(|t| t.0).collect::<Vec<_>>())
        .bind(taken.iter().map(|t| t.1).collect::<Vec<_>>())
        .bind(self.now)
        .execute(&mut *self.tx)
        .await?;
        Ok(left)
    }
}
