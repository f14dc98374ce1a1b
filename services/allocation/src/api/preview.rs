//! `<p>.api.receipt.preview`: what a receipt would do, by the same rules, changing nothing. The engine runs
//! the real receipt in a transaction it rolls back (`engine/preview.rs`); this checks the request as the
//! consumer checks a `StockReceived` and shapes the outcome.

use backorder_proto::v1::{
    AllocationLine, PreviewFill, PreviewOrder, PreviewReceiptReply, PreviewReceiptRequest, Promise,
    QueueEntry, QueuePlace, StockFigures,
};
use backorder_runtime::limits::{self, Check};
use backorder_runtime::time::to_proto;
use chrono::{DateTime, Duration, NaiveTime, Utc};

use super::{Api, ApiError};
use crate::engine::{QueuedAfter, ReceiptPreview};

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
        waiting: preview
            .waiting
            .iter()
            .map(|q| entry(q, preview.as_of))
            .collect(),
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

fn entry(q: &QueuedAfter, now: DateTime<Utc>) -> QueueEntry {
    let (po_id, po_line_no, po_expected_at) = match &q.covered_by {
        Some((po_id, line_no, expected_at)) => {
            (po_id.clone(), *line_no as u32, Some(to_proto(*expected_at)))
        }
        None => (String::new(), 0, None),
    };
    QueueEntry {
        order_id: q.order_id.clone(),
        line_no: q.line_no as u32,
        customer_id: q.customer_id.clone(),
        priority: q.priority,
        placed_at: Some(to_proto(q.placed_at)),
        backordered: q.backordered,
        place: Some(QueuePlace {
            position: q.position as u32,
            units_ahead: q.units_ahead,
            po_id,
            po_line_no,
            po_expected_at,
        }),
        promise: Some(Promise {
            eta: q.eta.map(to_proto),
            eta_estimated: q.eta_estimated,
            eta_late: q.eta_late,
            promised_eta: q.promised_eta.map(to_proto),
            late: late(q.eta, q.promised_eta, now),
        }),
        preorder: q.preorder,
        eta_before: q.eta_before.map(to_proto),
    }
}

/// A waiting line is late against its first promise when its ETA falls after the promised (UTC) day, or that
/// day has passed.
fn late(eta: Option<DateTime<Utc>>, promised: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    let Some(promised) = promised else {
        return false;
    };
    let day_after = limits::add(
        promised.date_naive().and_time(NaiveTime::MIN).and_utc(),
        Duration::days(1),
    );
    eta.is_some_and(|eta| eta >= day_after) || now >= day_after
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn a_line_is_late_when_its_eta_or_now_is_past_the_promised_day() {
        let promised = Some(at("2026-12-10T15:00:00Z"));
        let now = at("2026-12-01T00:00:00Z");
        // Later the same day is still on the day promised.
        assert!(!late(Some(at("2026-12-10T23:59:59Z")), promised, now));
        assert!(late(Some(at("2026-12-11T00:00:00Z")), promised, now));
        assert!(late(None, promised, at("2026-12-11T00:00:00Z")));
        assert!(!late(Some(at("2027-01-01T00:00:00Z")), None, now));
    }

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
