//! `<p>.api.backorders.list`: the open backorder worklist.

use backorder_proto::v1::{ListBackordersReply, ListBackordersRequest};

use super::{Api, ApiError};

impl Api {
    pub async fn backorders_list(
        &self,
        _request: ListBackordersRequest,
    ) -> Result<ListBackordersReply, ApiError> {
        Err(ApiError::Internal(
            "backorders.list is not built yet".into(),
        ))
    }
}
