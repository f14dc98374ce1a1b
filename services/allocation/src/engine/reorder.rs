//! The reorder events of a batch: one `ReorderNeeded` per SKU that got new backorders or supply and is short,
//! or whose supply answered purchase requests.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use backorder_runtime::limits::sub;
use chrono::{DateTime, Utc};

use super::Work;
use super::ledger::SupplyAnswers;
use crate::events::{self, StockFigures};
use crate::rules;

/// The most open supply a SKU's reorder figures show: far beyond any real one (10^9 units a PO line), far
/// enough from `i64::MAX` that the shortage (backordered - available - inbound) cannot overflow.
const MAX_INBOUND: i64 = i64::MAX / 4;

impl Work<'_> {
    /// One ReorderNeeded per SKU that got new backorders or supply and is short, or whose supply answered
    /// purchase requests (so replenishment-trigger closes them even when nothing is short any more).
    pub(super) async fn emit_reorders(
        &mut self,
        short: BTreeSet<String>,
        mut answers: BTreeMap<String, SupplyAnswers>,
    ) -> Result<(), sqlx::Error> {
        // Every SKU with answers also had its supply change, so it is among the short SKUs' stock rows.
        let skus: Vec<String> = short
            .iter()
            .chain(answers.keys())
            .cloned()
            .collect::<BTreeSet<String>>()
            .into_iter()
            .collect();
        if skus.is_empty() {
            return Ok(());
        }
        // The sum is numeric, clamped before it becomes a bigint: with the bounds on a PO line it cannot
        // exceed one, but an overflow here would fail every batch touching the SKU, and the shortage
        // arithmetic on the figure stays far from i64's edge.
        let inbound: HashMap<String, i64> = sqlx::query_as(
            "select sku, least(sum(quantity_open), $2)::bigint from supply
             where sku = any($1) and quantity_open > 0 and not cancelled group by sku",
        )
        .bind(&skus)
        .bind(MAX_INBOUND)
        .fetch_all(&mut *self.tx)
        .await?
        .into_iter()
        .collect();
        let waiting = self.waiting(&skus).await?;
        for sku in skus {
            let stock = self.stock[&sku];
            let figures = StockFigures {
                backordered: stock.backordered,
                on_hand: stock.on_hand,
                available: stock.available(),
                inbound: inbound.get(&sku).copied().unwrap_or(0),
            };
            let short =
                rules::shortage(figures.backordered, figures.available, figures.inbound) > 0;
            let answer = answers.remove(&sku).unwrap_or_default();
            let answered = !answer.requests.is_empty() || answer.added > 0;
            if !short && !answered {
                continue;
            }
            let (orders_waiting, promised) = waiting.get(&sku).copied().unwrap_or((0, None));
            let demand = events::Demand {
                orders_waiting,
                needed_by: promised.map(|at| sub(at, self.policy.handling)),
                answered_requests: answer.requests,
                supply_added: answer.added,
            };
            self.emit(
                None,
                events::reorder_needed(self.subjects, &sku, &figures, &demand, self.now),
            );
        }
        Ok(())
    }

    /// Per SKU, who waits and the earliest date promised on units no purchase order covers (dated by estimate):
    /// from the queue in hand where the batch read it and wrote none of its lines, else from the database.
    async fn waiting(
        &mut self,
        skus: &[String],
    ) -> Result<HashMap<String, (i64, Option<DateTime<Utc>>)>, sqlx::Error> {
        let mut waiting = HashMap::new();
        let mut unread = Vec::new();
        for sku in skus {
            match self.read.get(sku) {
                Some((_, queue)) if !self.written.contains(sku) => {
                    waiting.insert(sku.clone(), queue.figures());
                }
                _ => unread.push(sku.clone()),
            }
        }
        if cfg!(debug_assertions) {
            let in_hand: Vec<String> = waiting.keys().cloned().collect();
            let stored = self.stored_waiting(&in_hand).await?;
            for (sku, figures) in &waiting {
                let stored = stored.get(sku).copied().unwrap_or((0, None));
                assert_eq!(
                    *figures, stored,
                    "the waiting figures of {sku} from its queue in hand"
                );
            }
        }
        waiting.extend(self.stored_waiting(&unread).await?);
        Ok(waiting)
    }

    async fn stored_waiting(
        &mut self,
        skus: &[String],
    ) -> Result<HashMap<String, (i64, Option<DateTime<Utc>>)>, sqlx::Error> {
        if skus.is_empty() {
            return Ok(HashMap::new());
        }
        Ok(sqlx::query_as(
            "select sku, count(distinct order_id)::bigint,
                    min(coalesce(promised_eta, eta)) filter (where eta_estimated)
             from order_lines where sku = any($1) and backordered > 0 group by sku",
        )
        .bind(skus)
        .fetch_all(&mut *self.tx)
        .await?
        .into_iter()
        .map(|(sku, orders, promised)| (sku, (orders, promised)))
        .collect())
    }
}
