//! Ticks: a tick sends the gathered requests that are due and re-raises, once, a sent request still
//! unanswered (see the crash safety in [`crate::trigger`]).

use std::collections::BTreeMap;

use backorder_proto::v1::{PurchaseRequest, ReplenishmentTick};
use backorder_runtime::consume::{Delivery, Outcome};
use backorder_runtime::limits::Check;
use chrono::{DateTime, Utc};
use prost::Message as _;

use crate::schedule::Change;
use crate::store::{Batch, Sent, SkuState, keys};
use crate::trigger::Trigger;
use crate::{kv, plan};

/// Decodes a tick; its time is a date of the limits' years.
pub fn read_tick(bytes: &[u8]) -> Result<DateTime<Utc>, String> {
    let tick = ReplenishmentTick::decode(bytes)
        .map_err(|e| format!("cannot decode ReplenishmentTick: {e}"))?;
    let mut check = Check::new();
    if tick.at.is_none() {
        check.fail("at", "is missing");
    }
    let at = check.date("at", tick.at.as_ref());
    check.result()?;
    at.ok_or_else(|| "at is missing".to_string())
}

impl Trigger {
    pub(crate) async fn tick(&mut self, delivery: &Delivery) -> Outcome {
        let at = match read_tick(&delivery.payload) {
            Ok(at) => at,
            Err(reason) => return Outcome::Reject(reason),
        };
        // A tick sends and deletes gathered batches behind the cache's back.
        self.batches.forget();
        let done = async {
            self.send_due(at).await?;
            self.follow_up(at).await
        }
        .await;
        // Due times changed (or a write lost a race): the scheduler reads them again either way.
        let _ = self.changes.send(Change::Ticked);
        match done {
            Ok(()) => Outcome::Done,
            Err(error) => Outcome::Retry(error),
        }
    }

    /// Sends each gathered request due at `at`.
    async fn send_due(&self, at: DateTime<Utc>) -> Result<(), String> {
        for key in kv::keys(&self.bucket, keys::BATCHES).await? {
            let read = kv::read::<Batch>(&self.bucket, &key).await?;
            let (Some(batch), Some(revision)) = (read.value, read.revision) else {
                continue;
            };
            if batch.due_at > at {
                continue;
            }
            let quantities = self
                .unanswered(&batch.request_id, batch.lines.keys())
                .await?;
            if let Some(request) = plan::request(&batch, &quantities, at) {
                self.publish(&request, "request").await?;
                let sent_key = keys::sent(&batch.request_id);
                if kv::read::<Sent>(&self.bucket, &sent_key)
                    .await?
                    .value
                    .is_none()
                {
                    let sent = Sent::of(&batch, at, self.reraise_after);
                    kv::write(&self.bucket, &sent_key, &sent, None).await?;
                }
            }
            kv::delete(&self.bucket, &key, revision).await?;
        }
        Ok(())
    }

    /// Forgets sent requests purchasing answered in full, and re-raises, once, those still open at their
    /// re-raise time.
    async fn follow_up(&self, at: DateTime<Utc>) -> Result<(), String> {
        for key in kv::keys(&self.bucket, keys::SENT).await? {
            let read = kv::read::<Sent>(&self.bucket, &key).await?;
            let (Some(mut sent), Some(revision)) = (read.value, read.revision) else {
                continue;
            };
            let unanswered = self.unanswered(&sent.request_id, sent.lines.keys()).await?;
            if unanswered.values().all(|units| *units == 0) {
                tracing::info!(request_id = %sent.request_id, "request answered in full");
                kv::delete(&self.bucket, &key, revision).await?;
                continue;
            }
            if sent.reraised || sent.reraise_at > at {
                continue;
            }
            if let Some(reminder) = plan::reraise(&sent, &unanswered, at) {
                self.publish(&reminder, "reraise").await?;
            }
            sent.reraised = true;
            kv::write(&self.bucket, &key, &sent, Some(revision)).await?;
        }
        Ok(())
    }

    /// Units of `request_id` each SKU still waits for.
    async fn unanswered(
        &self,
        request_id: &str,
        skus: impl Iterator<Item = &String>,
    ) -> Result<BTreeMap<String, i64>, String> {
        let mut units = BTreeMap::new();
        for sku in skus {
            let state = kv::read::<SkuState>(&self.bucket, &keys::sku(sku)).await?;
            let open = state.value.map_or(0, |s| s.unanswered(request_id));
            units.insert(sku.clone(), open);
        }
        Ok(units)
    }

    async fn publish(&self, request: &PurchaseRequest, kind: &'static str) -> Result<(), String> {
        let subject = self.bus.subjects.purchase_request();
        self.bus
            .publish(subject, &request.request_id, request)
            .await
            .map_err(|e| format!("{e:#}"))?;
        metrics::counter!("bo_purchase_requests_total", "kind" => kind).increment(1);
        tracing::info!(
            request_id = %request.request_id,
            supplier_id = %request.supplier_id,
            lines = request.lines.len(),
            units = crate::store::sum(request.lines.iter().map(|l| l.quantity)),
            urgent = request.urgent,
            reraised = request.reraised,
            "purchase request published"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backorder_runtime::{limits, time};

    #[test]
    fn ticks_outside_the_years_are_refused() {
        let tick =
            |at: Option<backorder_proto::Timestamp>| ReplenishmentTick { at }.encode_to_vec();
        let now = time::to_proto(limits::start_of_year(2026));
        assert_eq!(read_tick(&tick(Some(now))), Ok(limits::start_of_year(2026)));
        assert_eq!(read_tick(&tick(None)).unwrap_err(), "at: is missing");
        let far = backorder_proto::Timestamp {
            seconds: 8_000_000_000_000,
            nanos: 0,
        };
        assert!(
            read_tick(&tick(Some(far)))
                .unwrap_err()
                .contains("outside the years 2000..=2199")
        );
    }
}
