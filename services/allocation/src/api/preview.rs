//! `<p>.api.receipt.preview`: what a receipt would do, by the same rules, changing nothing. The engine runs
//! the real receipt in a transaction it rolls back (`engine/preview.rs`); this checks the request as the
//! consumer checks a `StockReceived` and shapes the outcome. The queue after it is shaped as `sku.queue` shapes
//! a queue (`view`): the same places, covering supply and lateness, from the supply the receipt leaves.

use backorder_proto::v1::{
    AllocationLine, PreviewFill, PreviewOrder, PreviewReceiptReply, PreviewReceiptRequest,
    QueueEntry, StockFigures,
};
use backorder_runtime::limits::{self, Check};
use backorder_runtime::time::to_proto;

use super::view::{self, Dates, SupplyLine};
use super::{Api, ApiError};
use crate::engine::ReceiptPreview;

impl Api {
    pub async fn receipt_preview(
        &self,
        request: PreviewReceiptRequest,
    ) -> Result<PreviewReceiptReply, ApiError> {
        check(&request)?;
        tracing::Span::current().record("sku", request.sku.as_str());
        let preview = self
            .engine
            .preview_receipt(&request.sku, request.quantity, &request.po_id)
            .await?
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "no SKU {} is known: it has no stock and no product-master rule",
                    limits::shown(&request.sku)
                ))
            })?;
        Ok(reply(&preview))
    }
}

/// The bounds of a `StockReceived`'s fields.
fn check(request: &PreviewReceiptRequest) -> Result<(), ApiError> {
    let mut c = Check::new();
    c.id("sku", &request.sku);
    c.quantity("quantity", request.quantity, 1);
    c.optional_id("po_id", &request.po_id);
    c.result().map_err(ApiError::BadRequest)
}

fn reply(preview: &ReceiptPreview) -> PreviewReceiptReply {
    let stock = &preview.stock;
    PreviewReceiptReply {
        sku: preview.sku.clone(),
        quantity: preview.quantity,
        fills: preview
            .fills
            .iter()
            .map(|f| PreviewFill {
                order_id: f.order_id.clone(),
                line_no: f.line_no as u32,
                quantity: f.quantity,
                position: f.position as u32,
                backordered_after: f.backordered_after,
            })
            .collect(),
        orders: preview
            .orders
            .iter()
            .map(|o| PreviewOrder {
                order_id: o.order_id.clone(),
                released: o
                    .released
                    .iter()
                    .map(|(line_no, sku, quantity)| AllocationLine {
                        line_no: *line_no as u32,
                        sku: sku.clone(),
                        quantity: *quantity,
                    })
                    .collect(),
                complete: o.complete,
                waiting: !o.complete,
                status_after: o.status as i32,
            })
            .collect(),
        waiting: waiting(preview),
        stock_after: Some(StockFigures {
            on_hand: stock.on_hand,
            allocated: stock.allocated,
            available: stock.on_hand - stock.allocated,
            backordered: stock.backordered,
            received: stock.received,
            shipped: stock.shipped,
            inbound: stock.inbound,
        }),
        as_of: Some(to_proto(preview.as_of)),
    }
}

/// The queue after the receipt, as `sku.queue` would show it then.
fn waiting(preview: &ReceiptPreview) -> Vec<QueueEntry> {
    let supply: Vec<SupplyLine> = preview
        .supply
        .iter()
        .map(|s| SupplyLine {
            sku: preview.sku.clone(),
            po_id: s.po_id.clone(),
            line_no: s.line_no,
            expected_at: s.expected_at,
            quantity_open: s.quantity_open,
        })
        .collect();
    let units: Vec<i64> = preview.waiting.iter().map(|q| q.backordered).collect();
    let coverage = view::coverage(preview.as_of, &units, &supply, &preview.settings);
    preview
        .waiting
        .iter()
        .zip(coverage.places)
        .map(|(q, place)| {
            let dates = Dates {
                eta: q.eta,
                eta_estimated: q.eta_estimated,
                eta_late: q.eta_late,
                promised_eta: q.promised_eta,
            };
            QueueEntry {
                order_id: q.order_id.clone(),
                line_no: q.line_no as u32,
                customer_id: q.customer_id.clone(),
                priority: q.priority,
                placed_at: Some(to_proto(q.placed_at)),
                backordered: q.backordered,
                place: Some(place),
                promise: Some(view::promise(preview.as_of, true, &dates)),
                preorder: q.preorder,
                eta_before: q.eta_before.map(to_proto),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_out_of_bounds_is_refused_by_field() {
        let request = |sku: &str, quantity, po_id: &str| PreviewReceiptRequest {
            sku: sku.into(),
            quantity,
            po_id: po_id.into(),
        };
        assert_eq!(check(&request("SKU-1", 1, "")), Ok(()));
        assert_eq!(
            check(&request("SKU-1", limits::MAX_QUANTITY, "PO-1")),
            Ok(())
        );
        let refused = |r| match check(&r) {
            Err(ApiError::BadRequest(message)) => message,
            other => panic!("not refused: {other:?}"),
        };
        assert_eq!(refused(request("", 5, "")), "sku: is missing");
        assert_eq!(
            refused(request("SKU-1", 0, "")),
            "quantity: must be positive, got 0"
        );
        assert_eq!(
            refused(request("SKU-1", limits::MAX_QUANTITY + 1, "")),
            "quantity: 1000000001 is more than 1000000000"
        );
        assert!(refused(request("SKU-1", 5, " PO")).starts_with("po_id: "));
        assert!(refused(request(&"x".repeat(200), 5, "")).starts_with("sku: "));
    }
}
