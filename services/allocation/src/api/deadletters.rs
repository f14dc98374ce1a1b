//! `<p>.api.deadletters.list` and `.replay`: parked messages, and publishing one again.

use backorder_proto::v1::{
    ListDeadLettersReply, ListDeadLettersRequest, ReplayDeadLetterReply, ReplayDeadLetterRequest,
};

use super::{Api, ApiError};

impl Api {
    pub async fn deadletters_list(
        &self,
        _request: ListDeadLettersRequest,
    ) -> Result<ListDeadLettersReply, ApiError> {
        Err(ApiError::Internal(
            "deadletters.list is not built yet".into(),
        ))
    }

    pub async fn deadletters_replay(
        &self,
        _request: ReplayDeadLetterRequest,
    ) -> Result<ReplayDeadLetterReply, ApiError> {
        Err(ApiError::Internal(
            "deadletters.replay is not built yet".into(),
        ))
    }
}
