//! replenishment-trigger's decoders: `read_event` (`ReorderNeeded` on `<p>.reorder.needed`) and the product
//! master's `SkuUpserted` turned into a policy layer (`policies::from_upsert`), then what the service does
//! with them, in memory: answers close open requests, the policy is resolved, the shortage planned and
//! gathered into the supplier's batch, the batch becomes a request, and the request a reminder.
//!
//! The input is frames (see `backorder_fuzz::frames`); a frame's first byte picks the message, the rest is its
//! payload: even a `ReorderNeeded`, odd a `SkuUpserted`.
#![no_main]

use std::collections::{BTreeMap, HashMap};

use backorder_fuzz::{MAX_REASON_LEN, frames, now};
use backorder_proto::v1::SkuUpserted;
use chrono::TimeDelta;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use replenishment_trigger::policy::{self, Partial, Policy};
use replenishment_trigger::store::{Batch, SkuState};
use replenishment_trigger::{UNASSIGNED_SUPPLIER, plan, policies, trigger};

fn cut(reason: &str) {
    assert!(
        reason.len() <= MAX_REASON_LEN,
        "reason not cut: {} bytes: {reason:.200}",
        reason.len()
    );
}

fuzz_target!(|data: &[u8]| {
    // The built-in default (`Config::builtin_policy`), with the default lead time.
    let builtin = Policy::cover(UNASSIGNED_SUPPLIER, 14);
    let mut states: HashMap<String, SkuState> = HashMap::new();
    let mut upserts: HashMap<String, Partial> = HashMap::new();
    let mut batches: BTreeMap<String, Batch> = BTreeMap::new();
    for (seq, frame) in frames(data, 16).into_iter().enumerate() {
        let Some((&pick, payload)) = frame.split_first() else {
            continue;
        };
        if pick % 2 == 1 {
            let Ok(upsert) = SkuUpserted::decode(payload) else {
                continue;
            };
            match policies::from_upsert(&upsert, &builtin) {
                Ok(partial) => {
                    assert!(partial.over(&builtin).problems().is_empty());
                    upserts.insert(upsert.sku, partial);
                }
                Err(reason) => cut(&reason),
            }
            continue;
        }
        let event = match trigger::read_event(payload) {
            Ok(event) => event,
            Err(reason) => {
                cut(&reason);
                continue;
            }
        };
        // As `Trigger::apply`.
        let state = states.entry(event.sku.clone()).or_default();
        state.answer(&event.answered_requests, event.supply_added);
        let upserted = upserts
            .get(&event.sku)
            .filter(|p| **p != Partial::default());
        let (policy, origin) = policy::resolve(&builtin, upserted, None);
        let gathered = batches
            .get(&policy.supplier_id)
            .map_or(0, |b| state.unanswered(&b.request_id));
        let requested = state.requested() - gathered;
        let at = now() + TimeDelta::minutes(seq as i64);
        match plan::plan(&event, requested, &policy, origin, at) {
            None => {
                if let Some(batch) = batches.get_mut(&policy.supplier_id) {
                    batch.lines.remove(&event.sku);
                    state.set_open(&batch.request_id, &batch.supplier_id, 0, at);
                }
            }
            Some(planned) => {
                assert!(planned.quantity > 0);
                let batch = batches
                    .entry(policy.supplier_id.clone())
                    .or_insert_with(|| Batch {
                        request_id: format!("pr/{}", event.event_id),
                        supplier_id: policy.supplier_id.clone(),
                        opened_at: at,
                        due_at: at + TimeDelta::minutes(5),
                        urgent: false,
                        lines: BTreeMap::new(),
                    });
                plan::merge(batch, &event.sku, &planned, at);
                state.set_open(&batch.request_id, &batch.supplier_id, planned.quantity, at);
            }
        }
    }
    // Every batch falls due: the request, then its reminder.
    let later = now() + TimeDelta::hours(1);
    for batch in batches.values() {
        let quantities: BTreeMap<String, i64> = batch
            .lines
            .keys()
            .map(|sku| (sku.clone(), states[sku].unanswered(&batch.request_id)))
            .collect();
        let Some(request) = plan::request(batch, &quantities, later) else {
            continue;
        };
        assert!(request.lines.iter().all(|l| l.quantity > 0));
        let sent = replenishment_trigger::store::Sent {
            request_id: request.request_id.clone(),
            supplier_id: request.supplier_id.clone(),
            sent_at: later,
            reraise_at: later + TimeDelta::hours(48),
            reraised: false,
            lines: batch.lines.clone(),
        };
        let _ = plan::reraise(&sent, &quantities, sent.reraise_at);
        let _ = request.encode_to_vec();
    }
});
