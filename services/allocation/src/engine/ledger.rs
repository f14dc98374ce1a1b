//! What a batch's commands leave for the end of the batch, as typed ledgers: each phase of the end (see
//! [`Work::finish`](super::Work)) takes the ledger it reads, so what a phase depends on is in its signature.
//!
//! - [`SkuLedger`]: per SKU, what the re-projection and the reorder events need; taken whole by the end.
//! - [`OrderLedger`]: per order, what the announcement needs; the re-projection adds to it.
//! - [`Records`]: rows and events written as the batch commits.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Utc};

use super::lines::LineRow;
use crate::events::Outgoing;

/// Per SKU: what moved it in this batch.
#[derive(Debug, Default)]
pub(super) struct SkuLedger {
    /// SKUs that got new backorders or supply: each gets one ReorderNeeded at the end when it is short.
    pub short: BTreeSet<String>,
    /// What purchasing answered in this batch: replenishment-trigger learns it from the SKU's ReorderNeeded,
    /// which is then sent even when nothing is short.
    pub answers: BTreeMap<String, SupplyAnswers>,
    /// SKUs whose queue or supply moved, with the message that moved them and whether anything but new
    /// backorders did: re-projected at the end.
    pub reproject: BTreeMap<String, Marked>,
    /// The backorder lines new orders of this batch added: when nothing else moved a SKU, only they need a
    /// date.
    pub appended: BTreeMap<String, Vec<Appended>>,
}

impl SkuLedger {
    /// Marks a SKU for re-projection; `full` unless only new backorders moved it. The latest cause wins.
    pub fn reproject(&mut self, sku: &str, cause: &str, full: bool) {
        let marked = self.reproject.entry(sku.to_string()).or_insert(Marked {
            cause: cause.to_string(),
            full,
        });
        marked.cause = cause.to_string();
        marked.full |= full;
    }
}

/// Per order: the orders the batch changed and what their customers and the WMS are owed.
#[derive(Debug, Default)]
pub(super) struct OrderLedger {
    /// Every order the batch changes, with its lines before the first change (none for a new order).
    pub before: BTreeMap<String, Vec<LineRow>>,
    /// The last message that changed each order, recorded as the cause of its allocation.
    pub causes: HashMap<String, String>,
    /// Released units withdrawn from the WMS.
    pub withdrawn: BTreeMap<String, Withdrawal>,
    /// Orders with a line the customer was told a date for that is now off by the threshold or more.
    pub eta_owed: BTreeSet<String>,
    /// Orders with a line now expected too long after the date first promised.
    pub consent_needed: BTreeSet<String>,
    /// Orders whose awaited consent was answered (or given up on) in this batch.
    pub consent_settled: BTreeSet<String>,
}

/// What the batch writes besides lines and orders, in the order it was recorded.
#[derive(Debug, Default)]
pub(super) struct Records {
    pub outbox: Vec<Outgoing>,
    /// The trace context of each command applied, by message id: events it causes are published in its trace.
    pub traces: HashMap<String, Option<String>>,
    pub history: Vec<HistoryRow>,
    pub demand: BTreeMap<(String, NaiveDate), DayDemand>,
}

/// New supply of one SKU in a batch, as replenishment-trigger needs it to close its requests.
#[derive(Debug, Default)]
pub(crate) struct SupplyAnswers {
    /// Requests named by the PO lines (`SupplyUpdated.request_id`).
    pub requests: Vec<String>,
    /// Units added by PO lines naming no request, and received on a PO beyond what its lines expected.
    pub added: i64,
}

/// One row of a line's audit trail.
#[derive(Debug)]
pub(super) struct HistoryRow {
    pub order_id: String,
    pub line_no: i32,
    pub sku: String,
    pub change: &'static str,
    pub quantity: i64,
    pub cause: String,
    pub detail: String,
}

/// Allocated units withdrawn from the WMS, per order: why, and per line the SKU and units.
#[derive(Debug, Default)]
pub(super) struct Withdrawal {
    pub reason: String,
    pub lines: BTreeMap<i32, (String, i64)>,
}

/// Why a SKU is re-projected: the (latest) message that moved it, and whether its projection may have changed
/// for lines already dated (anything but new backorders).
#[derive(Debug, Clone)]
pub(super) struct Marked {
    pub cause: String,
    pub full: bool,
}

/// A backorder line a new order added: its place in the queue and its waiting units.
#[derive(Debug, Clone)]
pub(super) struct Appended {
    pub priority: i32,
    pub placed_at: DateTime<Utc>,
    pub order_id: String,
    pub line_no: i32,
    pub units: i64,
}

/// Per SKU and day: what was ordered and what of it could not be allocated at once.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct DayDemand {
    pub ordered: i64,
    pub backordered: i64,
    pub cancelled_short: i64,
}
