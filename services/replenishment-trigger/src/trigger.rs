//! The service's consumer: shortage reports and ticks, in stream order, one instance at a time.
//!
//! A report updates its SKU: answers from purchasing close open requests, then whatever the policy asks for
//! beyond stock, supply and open requests joins the supplier's request being gathered. A tick sends the
//! gathered requests that are due and re-raises, once, a sent request still unanswered ([`crate::tick`]).
//!
//! The reports handed over together up to a tick are applied one after the other in memory and written once
//! at the end: each supplier's batch that changed, then each SKU that changed. A burst of reports over one
//! supplier rewrites its batch once instead of once per report.
//!
//! Crash safety: every write is a compare-and-set whose redelivery finds its own effect. The batches are written
//! before the SKUs (with the stream position and event id that mark each report applied), so a crash in between
//! replays the same decisions into the same batches. A tick publishes under the request's own id before it
//! records the request as sent, so a crash in between publishes again under that id, which the stream's
//! duplicate window drops. If a write fails, the reports of the run and everything after them in the batch
//! are handled again, none of it half-applied.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_nats::jetstream::kv as js_kv;
use backorder_proto::v1::ReorderNeeded;
use backorder_runtime::Clock;
use backorder_runtime::consume::{Delivery, Handler, Outcome};
use backorder_runtime::jetstream::Bus;
use backorder_runtime::limits::{self, Check};
use chrono::TimeDelta;
use prost::Message as _;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::cached::Cached;
use crate::policies::Policies;
use crate::policy::{Origin, Policy};
use crate::schedule::Change;
use crate::store::{Batch, Position, SkuState, keys};
use crate::watched::WatchedPolicies;
use crate::{kv, plan};

pub struct Trigger {
    pub bus: Bus,
    pub bucket: js_kv::Store,
    pub policies: Arc<Policies>,
    pub clock: Clock,
    pub window: TimeDelta,
    pub reraise_after: TimeDelta,
    /// Tells the scheduler when a gathered request is due, and when a tick was handled.
    pub changes: mpsc::UnboundedSender<Change>,
    /// The SKUs' and the gathered batches' values as this instance last saw them (see [`crate::cached`]).
    pub skus: Cached<SkuState>,
    pub batches: Cached<Batch>,
    /// The product master's policies, kept current by a watch (see [`crate::watched`]).
    pub master: Arc<WatchedPolicies>,
}

/// Decodes a shortage report and checks it against the limits (`event_id` names the request it opens and
/// tells it from a report stored twice; every figure is a reorder figure of at most `MAX_QUANTITY`). Pure; the
/// error is the reason the event is parked.
pub fn read_event(bytes: &[u8]) -> Result<ReorderNeeded, String> {
    let event =
        ReorderNeeded::decode(bytes).map_err(|e| format!("cannot decode ReorderNeeded: {e}"))?;
    let mut check = Check::new();
    check.id("event_id", &event.event_id);
    check.id("sku", &event.sku);
    for (field, value) in [
        ("shortage", event.shortage),
        ("backordered", event.backordered),
        ("on_hand", event.on_hand),
        ("inbound", event.inbound),
        ("available", event.available),
        ("orders_waiting", event.orders_waiting),
        ("supply_added", event.supply_added),
    ] {
        check.quantity(field, value, 0);
    }
    check.date("needed_by", event.needed_by.as_ref());
    check.result().map(|()| event)
}

/// The request a PO answers: a reminder's answer answers the request it re-raised.
fn answered(request_ids: &[String]) -> Vec<String> {
    request_ids
        .iter()
        .map(|id| {
            id.strip_suffix(plan::RERAISE_SUFFIX)
                .unwrap_or(id)
                .to_string()
        })
        .collect()
}

impl Handler for Trigger {
    async fn handle(&mut self, batch: &[Delivery]) -> Vec<Outcome> {
        let tick_subject = self.bus.subjects.replenishment_tick();
        let mut outcomes = Vec::with_capacity(batch.len());
        for run in runs(batch, |delivery| delivery.subject == tick_subject) {
            if let Some(Outcome::Retry(error)) =
                outcomes.iter().find(|o| matches!(o, Outcome::Retry(_)))
            {
                // Nothing overtakes a report that is handled again.
                let why = format!("an earlier message of its batch is handled again: {error}");
                outcomes.extend(run.iter().map(|_| Outcome::Retry(why.clone())));
                continue;
            }
            if run[0].subject == tick_subject {
                let span = tracing::info_span!("tick", seq = run[0].stream_sequence);
                outcomes.push(self.tick(&run[0]).instrument(span).await);
            } else {
                outcomes.extend(self.reports(run).await);
            }
        }
        outcomes
    }
}

/// The batch in order as runs of reports and single ticks: a tick sees every report before it written.
fn runs<T>(batch: &[T], is_tick: impl Fn(&T) -> bool) -> Vec<&[T]> {
    let mut runs = Vec::new();
    let mut start = 0;
    for (i, item) in batch.iter().enumerate() {
        if is_tick(item) {
            if start < i {
                runs.push(&batch[start..i]);
            }
            runs.push(&batch[i..=i]);
            start = i + 1;
        }
    }
    if start < batch.len() {
        runs.push(&batch[start..]);
    }
    runs
}

impl Trigger {
    /// Applies a run of reports in order and writes what they changed; each gets its outcome.
    async fn reports(&mut self, run: &[Delivery]) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(run.len());
        let mut failed = None;
        for delivery in run {
            let span = tracing::info_span!(
                "reorder",
                sku = tracing::field::Empty,
                event_id = tracing::field::Empty,
                seq = delivery.stream_sequence
            );
            backorder_runtime::trace::follow(&span, &delivery.trace);
            let outcome = match failed {
                None => self.reorder(delivery).instrument(span).await,
                Some(_) => Outcome::Done,
            };
            if let Outcome::Retry(error) = &outcome {
                failed = Some(error.clone());
            }
            outcomes.push(outcome);
        }
        if failed.is_none() {
            failed = self.write_staged().await.err();
        }
        if let Some(error) = failed {
            // A lost compare-and-set means another instance wrote: the next attempt reads afresh.
            self.skus.forget();
            self.batches.forget();
            for outcome in outcomes.iter_mut().filter(|o| **o == Outcome::Done) {
                *outcome = Outcome::Retry(error.clone());
            }
        }
        outcomes
    }

    /// The batches first, then the SKUs that mark the reports applied (see the module's crash safety).
    async fn write_staged(&mut self) -> Result<(), String> {
        self.batches.write_staged(&self.bucket).await?;
        self.skus.write_staged(&self.bucket).await
    }

    async fn reorder(&mut self, delivery: &Delivery) -> Outcome {
        let event = match read_event(&delivery.payload) {
            Ok(event) => event,
            Err(reason) => {
                tracing::warn!(%reason, "reorder event refused");
                return Outcome::Reject(reason);
            }
        };
        let span = tracing::Span::current();
        span.record("sku", event.sku.as_str());
        span.record("event_id", event.event_id.as_str());
        let at = Position {
            published: delivery.published,
            seq: delivery.stream_sequence,
        };
        match self.apply(&event, at).await {
            Ok(()) => Outcome::Done,
            Err(error) => Outcome::Retry(error),
        }
    }

    async fn apply(&mut self, event: &ReorderNeeded, at: Position) -> Result<(), String> {
        let sku_key = keys::sku(&event.sku);
        let read = self.skus.take(&self.bucket, &sku_key).await?;
        let mut state = read.value.unwrap_or_default();
        if state.applied(&event.event_id, at) {
            tracing::info!(
                last_seq = state.last_seq,
                "report applied before (redelivered, replayed or stored twice)"
            );
            self.skus.kept(
                &sku_key,
                kv::Read {
                    value: Some(state),
                    revision: read.revision,
                },
            );
            return Ok(());
        }
        for (request_id, units) in
            state.answer(&answered(&event.answered_requests), event.supply_added)
        {
            tracing::info!(%request_id, units, "purchasing answered");
        }

        let upserted = self
            .master
            .read(&self.bucket, &keys::policy(&event.sku))
            .await?;
        let (policy, origin) = self
            .policies
            .resolve(&event.sku, upserted.value.as_ref().map(|m| &m.policy));
        self.gather(event, &mut state, &policy, origin).await?;
        state.mark_applied(&event.event_id, at);
        self.skus.stage(&sku_key, state, read.revision);
        Ok(())
    }

    /// Plans the SKU's line of its supplier's request being gathered again from `event`'s figures (it may
    /// grow, shrink or go) and stages the supplier's batch; `state` learns what is open.
    async fn gather(
        &mut self,
        event: &ReorderNeeded,
        state: &mut SkuState,
        policy: &Policy,
        origin: Origin,
    ) -> Result<(), String> {
        let now = self.clock.now();
        let batch_key = keys::batch(&policy.supplier_id);
        // Taken, not copied: the batch holds every line of its supplier; it is put back below.
        let gathering = self.batches.take(&self.bucket, &batch_key).await?;
        let gathered = gathering
            .value
            .as_ref()
            .map_or(0, |b| state.unanswered(&b.request_id));
        let requested = state.requested().saturating_sub(gathered);
        match plan::plan(event, requested, policy, origin, now) {
            None => {
                tracing::debug!(
                    shortage = event.shortage,
                    requested,
                    "covered by stock, supply and sent requests"
                );
                match gathering.value {
                    Some(mut batch) if gathered > 0 => {
                        batch.lines.remove(&event.sku);
                        state.set_open(&batch.request_id, &batch.supplier_id, 0, now);
                        tracing::info!(request_id = %batch.request_id, "line dropped: no longer short");
                        self.batches.stage(&batch_key, batch, gathering.revision);
                    }
                    value => self.batches.kept(
                        &batch_key,
                        kv::Read {
                            value,
                            revision: gathering.revision,
                        },
                    ),
                }
            }
            Some(planned) => {
                let mut batch = gathering.value.unwrap_or_else(|| Batch {
                    // Derived from the report that opens it: a replay opens the same request.
                    request_id: format!("pr/{}", event.event_id),
                    supplier_id: policy.supplier_id.clone(),
                    opened_at: now,
                    due_at: limits::add(now, self.window),
                    urgent: false,
                    lines: BTreeMap::new(),
                });
                plan::merge(&mut batch, &event.sku, &planned, now);
                state.set_open(&batch.request_id, &batch.supplier_id, planned.quantity, now);
                tracing::info!(
                    request_id = %batch.request_id,
                    supplier_id = %batch.supplier_id,
                    quantity = planned.quantity,
                    shortage = event.shortage,
                    requested,
                    urgent = planned.urgent,
                    default_policy = planned.note.default_policy,
                    due_at = %batch.due_at,
                    "line gathered"
                );
                // A send error means the scheduler stopped with the service; its next start reads the bucket.
                let _ = self.changes.send(Change::Due(batch.due_at));
                self.batches.stage(&batch_key, batch, gathering.revision);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> ReorderNeeded {
        ReorderNeeded {
            sku: "SKU-A".into(),
            shortage: 30,
            backordered: 30,
            event_id: "ev-1".into(),
            orders_waiting: 2,
            ..Default::default()
        }
    }

    #[test]
    fn a_good_event_is_read() {
        assert_eq!(read_event(&event().encode_to_vec()), Ok(event()));
    }

    #[test]
    fn bad_events_are_refused_by_name() {
        let refused = |change: fn(&mut ReorderNeeded)| {
            let mut e = event();
            change(&mut e);
            read_event(&e.encode_to_vec()).unwrap_err()
        };
        assert_eq!(refused(|e| e.event_id.clear()), "event_id: is missing");
        assert_eq!(refused(|e| e.sku = "  ".into()), "sku: is missing");
        assert_eq!(
            refused(|e| e.shortage = -1),
            "shortage: must be 0 or more, got -1"
        );
        assert_eq!(
            refused(|e| e.available = -2),
            "available: must be 0 or more, got -2"
        );
        assert_eq!(
            refused(|e| e.supply_added = -3),
            "supply_added: must be 0 or more, got -3"
        );
        // Figures beyond the limit would overflow the stock position's sums; ids beyond it the keys.
        assert_eq!(
            refused(|e| e.backordered = i64::MAX),
            "backordered: 9223372036854775807 is more than 1000000000"
        );
        assert_eq!(
            refused(|e| e.supply_added = limits::MAX_QUANTITY + 1),
            "supply_added: 1000000001 is more than 1000000000"
        );
        assert!(refused(|e| e.event_id = "e".repeat(200)).starts_with("event_id: \"eeee"),);
        assert!(
            refused(|e| e.needed_by = Some(backorder_proto::Timestamp {
                seconds: i64::MAX,
                nanos: 0
            }))
            .starts_with("needed_by: is not a valid timestamp"),
        );
        let mut at_the_limit = event();
        at_the_limit.backordered = limits::MAX_QUANTITY;
        at_the_limit.supply_added = limits::MAX_QUANTITY;
        assert!(read_event(&at_the_limit.encode_to_vec()).is_ok());
        let all = refused(|e| {
            *e = ReorderNeeded {
                shortage: -1,
                ..Default::default()
            }
        });
        assert_eq!(all.split("; ").count(), 3, "{all}");
        assert!(
            read_event(b"\x0a\x05ab")
                .unwrap_err()
                .starts_with("cannot decode ReorderNeeded")
        );
    }

    #[test]
    fn a_batch_runs_as_reports_between_ticks() {
        let runs = |batch: &[char]| -> Vec<String> {
            runs(batch, |c| *c == 'T')
                .into_iter()
                .map(|run| run.iter().collect())
                .collect()
        };
        assert_eq!(runs(&['r', 'r', 'T', 'r']), ["rr", "T", "r"]);
        assert_eq!(runs(&['T', 'T', 'r', 'r', 'r']), ["T", "T", "rrr"]);
        assert_eq!(runs(&['r', 'T']), ["r", "T"]);
        assert!(runs(&[]).is_empty());
    }

    #[test]
    fn an_answer_to_a_reminder_answers_its_request() {
        let ids = ["pr/ev-1/reraise".to_string(), "pr/ev-2".to_string()];
        assert_eq!(answered(&ids), ["pr/ev-1", "pr/ev-2"]);
    }
}
