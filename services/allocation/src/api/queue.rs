//! `<p>.api.sku.queue`: a SKU's stock, queue and supply.

use backorder_proto::v1::{GetSkuQueueReply, GetSkuQueueRequest};

use super::{Api, ApiError};

impl Api {
    pub async fn sku_queue(
        &self,
        _request: GetSkuQueueRequest,
    ) -> Result<GetSkuQueueReply, ApiError> {
        Err(ApiError::Internal("sku.queue is not built yet".into()))
    }
}
