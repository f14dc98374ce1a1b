//! `<p>.api.order.get`: an order as the desk sees it.

use backorder_proto::v1::{GetOrderReply, GetOrderRequest};

use super::{Api, ApiError};

impl Api {
    pub async fn order_get(&self, request: GetOrderRequest) -> Result<GetOrderReply, ApiError> {
        Err(ApiError::Internal(format!(
            "order.get {} is not built yet",
            request.order_id
        )))
    }
}
