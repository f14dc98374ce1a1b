//! `<p>.api.receipt.preview`: what a receipt would do, by the same rules, changing nothing.

use backorder_proto::v1::{PreviewReceiptReply, PreviewReceiptRequest};

use super::{Api, ApiError};

impl Api {
    pub async fn receipt_preview(
        &self,
        _request: PreviewReceiptRequest,
    ) -> Result<PreviewReceiptReply, ApiError> {
        Err(ApiError::Internal(
            "receipt.preview is not built yet".into(),
        ))
    }
}
