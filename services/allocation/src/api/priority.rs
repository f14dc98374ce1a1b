//! `<p>.api.order.priority`: re-prioritise an order from the desk.

use backorder_proto::v1::{ChangePriorityReply, ChangePriorityRequest};

use super::{Api, ApiError};

impl Api {
    pub async fn order_priority(
        &self,
        _request: ChangePriorityRequest,
    ) -> Result<ChangePriorityReply, ApiError> {
        Err(ApiError::Internal("order.priority is not built yet".into()))
    }
}
