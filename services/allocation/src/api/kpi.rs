//! `<p>.api.kpi.get`: the KPIs of docs/kpis.md.

use backorder_proto::v1::{GetKpisReply, GetKpisRequest};

use super::{Api, ApiError};

impl Api {
    pub async fn kpi_get(&self, _request: GetKpisRequest) -> Result<GetKpisReply, ApiError> {
        Err(ApiError::Internal("kpi.get is not built yet".into()))
    }
}
