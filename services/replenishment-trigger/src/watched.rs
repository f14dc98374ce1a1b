//! The product master's policies (`policy.*`) read from memory ([`backorder_runtime::watched`]): every report
//! needs its SKU's policy, and policies change rarely. Upserts and reports come on different streams, in no
//! order against each other: a report read between an upsert and its arrival here uses the policy before
//! it, as it would had it come a moment earlier.

use async_nats::jetstream::kv as js_kv;
use backorder_runtime::watched::Watched;

use crate::kv::{self, Read};
use crate::store::MasterPolicy;

/// The watched key space.
pub const POLICIES: &str = "policy.>";

pub struct WatchedPolicies(Watched);

impl Default for WatchedPolicies {
    fn default() -> Self {
        Self(Watched::new(POLICIES))
    }
}

impl WatchedPolicies {
    /// The policy under `key`, from memory where the watch keeps it.
    pub async fn read(
        &self,
        bucket: &js_kv::Store,
        key: &str,
    ) -> Result<Read<MasterPolicy>, String> {
        let stored = self
            .0
            .read(bucket, key)
            .await
            .map_err(|e| format!("reading {key}: {e}"))?;
        kv::typed(stored, key)
    }

    /// Runs the watch until `shutdown`.
    pub async fn watch(&self, bucket: &js_kv::Store, shutdown: impl Future<Output = ()>) {
        self.0.watch(bucket, shutdown).await
    }
}
