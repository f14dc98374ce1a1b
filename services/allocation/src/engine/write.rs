//! The end of a batch, in this order:
//!
//! 1. **re-project** the SKUs the commands marked ([`SkuLedger::reproject`](super::ledger::SkuLedger::reproject), `promise.rs`): new dates, and the
//!    orders whose dates moved join the order ledger;
//! 2. **announce** per order the batch touched ([`OrderLedger`](super::ledger::OrderLedger), `announce.rs`): released units to the WMS,
//!    customer events, kept promises, the order's status; 1,000 orders a round, each round's events written to
//!    the outbox (after those emitted before them) before the next;
//! 3. **reorder**: one `ReorderNeeded` per SKU short or answered (`SkuLedger::short` and `answers`);
//! 4. **write** the stock rows (a new queue version for each SKU whose lines the batch wrote), the audit trail,
//!    the demand and the outbox, and commit;
//! 5. **keep** the queues the batch read and did not write, for the batches after it ([`queues`](super::queues)).
//!
//! A receipt preview runs the first three and rolls back (`preview.rs`).

use super::Work;
use super::ledger::{HistoryRow, SkuLedger};
use super::queues::{Queue, QueueCache};
use super::work::Stock;
use crate::events::Outgoing;
use std::collections::{BTreeMap, BTreeSet};

/// Audit and outbox rows per statement. A receipt filling 10,000 lines writes about 30,000 outbox rows; in one
/// statement they would be held twice more while encoded and sent, which was most of the service's peak memory.
const ROWS_PER_STATEMENT: usize = 2_000;

/// After the commit: the queues the batch read and did not write are kept at the version they were read at;
/// those it wrote are dropped.
fn keep_queues(
    cache: &QueueCache,
    written: &BTreeSet<String>,
    read: BTreeMap<String, (i64, Queue)>,
) {
    cache.forget(written);
    for (sku, (version, queue)) in read {
        if !written.contains(&sku) {
            cache.keep(&sku, version, queue);
        }
    }
}

/// `rows` moved out in chunks of [`ROWS_PER_STATEMENT`], in order.
fn chunks<T>(rows: Vec<T>) -> impl Iterator<Item = Vec<T>> {
    let mut rows = rows.into_iter();
    std::iter::from_fn(move || {
        let chunk: Vec<T> = rows.by_ref().take(ROWS_PER_STATEMENT).collect();
        (!chunk.is_empty()).then_some(chunk)
    })
}

impl Work<'_> {
    /// Decides what the batch leads to, writes it and commits.
    pub(super) async fn finish(mut self) -> Result<(), sqlx::Error> {
        self.decide().await?;
        if cfg!(debug_assertions) {
            self.check_written().await?;
        }
        self.write_stock().await?;
        self.write_history().await?;
        self.write_demand().await?;
        self.write_outbox().await?;
        self.tx.commit().await?;
        keep_queues(self.cache, &self.written, self.read);
        Ok(())
    }

    /// Phases 1 to 3: the new ETAs, and what the WMS, the customers, the OMS and purchasing are told (the
    /// lines' released units, promises and order statuses are stored in the transaction as they are decided).
    pub(super) async fn decide(&mut self) -> Result<(), sqlx::Error> {
        let SkuLedger {
            short,
            answers,
            reproject,
            appended,
        } = std::mem::take(&mut self.skus);
        self.project_etas(reproject, appended).await?;
        self.announce().await?;
        self.emit_reorders(short, answers).await
    }

    /// Debug builds: every line this transaction wrote (a row version it created) is on a SKU the batch noted
    /// as written, so no kept queue outlives a change. Reads every line: fine for tests, not for production.
    async fn check_written(&mut self) -> Result<(), sqlx::Error> {
        let skus: Vec<String> =
            sqlx::query_scalar("select distinct sku from order_lines where age(xmin) = 0")
                .fetch_all(&mut *self.tx)
                .await?;
        let unnoted: Vec<&String> = skus
            .iter()
            .filter(|sku| !self.written.contains(*sku))
            .collect();
        assert!(
            unnoted.is_empty(),
            "lines of {unnoted:?} were written without Work::lines_written"
        );
        Ok(())
    }

    /// Writes every locked stock row back; those of SKUs whose lines the batch wrote get a new queue version.
    async fn write_stock(&mut self) -> Result<(), sqlx::Error> {
        // Lines are written under their SKU's lock, so these are locked already; this only guards a path
        // that did not lock.
        let unlocked: Vec<String> = self
            .written
            .iter()
            .filter(|sku| !self.stock.contains_key(*sku))
            .cloned()
            .collect();
        self.lock_skus(unlocked).await?;
        if self.stock.is_empty() {
            return Ok(());
        }
        let rows: Vec<(&String, &Stock)> = self.stock.iter().collect();
        sqlx::query(
            "update stock s set on_hand = n.on_hand, allocated = n.allocated, received = n.received,
                                adjusted = n.adjusted, shipped = n.shipped, eta_check_at = n.eta_check_at,
                                backordered = n.backordered,
                                queue_version = case when n.written then nextval('stock_queue_version')
                                                     else s.queue_version end
             from unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
                         $7::timestamptz[], $8::bigint[], $9::bool[])
                  as n(sku, on_hand, allocated, received, adjusted, shipped, eta_check_at, backordered, written)
             where s.sku = n.sku",
        )
        .bind(rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.on_hand).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.allocated).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.received).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.adjusted).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.shipped).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.eta_check_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.backordered).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| self.written.contains(r.0))
                .collect::<Vec<_>>(),
        )
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn write_history(&mut self) -> Result<(), sqlx::Error> {
        if self.records.history.is_empty() {
            return Ok(());
        }
        for rows in chunks(std::mem::take(&mut self.records.history)) {
            self.write_history_rows(rows).await?;
        }
        Ok(())
    }

    async fn write_history_rows(&mut self, rows: Vec<HistoryRow>) -> Result<(), sqlx::Error> {
        let n = rows.len();
        let (mut orders, mut lines, mut skus) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut changes, mut quantities) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut causes, mut details) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for row in rows {
            orders.push(row.order_id);
            lines.push(row.line_no);
            skus.push(row.sku);
            changes.push(row.change);
            quantities.push(row.quantity);
            causes.push(row.cause);
            details.push(row.detail);
        }
        sqlx::query(
            "insert into line_history (order_id, line_no, sku, change, quantity, cause, detail, at)
             select *, $8 from unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[])",
        )
        .bind(orders)
        .bind(lines)
        .bind(skus)
        .bind(changes)
        .bind(quantities)
        .bind(causes)
        .bind(details)
        .bind(self.now)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn write_demand(&mut self) -> Result<(), sqlx::Error> {
        if self.records.demand.is_empty() {
            return Ok(());
        }
        let d = &self.records.demand;
        sqlx::query(
            "insert into demand (sku, day, ordered, short, backordered, cancelled_short)
             select sku, day, ordered, backordered + cancelled_short, backordered, cancelled_short
             from unnest($1::text[], $2::date[], $3::bigint[], $4::bigint[], $5::bigint[])
                  as d(sku, day, ordered, backordered, cancelled_short)
             order by sku, day
             on conflict (sku, day) do update set
                 ordered = demand.ordered + excluded.ordered,
                 short = demand.short + excluded.short,
                 backordered = demand.backordered + excluded.backordered,
                 cancelled_short = demand.cancelled_short + excluded.cancelled_short",
        )
        .bind(d.keys().map(|k| k.0.clone()).collect::<Vec<_>>())
        .bind(d.keys().map(|k| k.1).collect::<Vec<_>>())
        .bind(d.values().map(|v| v.ordered).collect::<Vec<_>>())
        .bind(d.values().map(|v| v.backordered).collect::<Vec<_>>())
        .bind(d.values().map(|v| v.cancelled_short).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Writes the events emitted so far, in emit order (also in the middle of a batch: see `announce`).
    pub(super) async fn write_outbox(&mut self) -> Result<(), sqlx::Error> {
        if self.records.outbox.is_empty() {
            return Ok(());
        }
        // Moved into the columns, not copied: a big batch's payloads are most of its memory. The chunks are
        // written in order, so the outbox ids keep the emit order, which is the publish order.
        for rows in chunks(std::mem::take(&mut self.records.outbox)) {
            self.write_outbox_rows(rows).await?;
        }
        Ok(())
    }

    async fn write_outbox_rows(&mut self, rows: Vec<Outgoing>) -> Result<(), sqlx::Error> {
        let n = rows.len();
        let (mut ids, mut subjects) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut payloads, mut traceparents) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for row in rows {
            ids.push(row.message_id);
            subjects.push(row.subject);
            payloads.push(row.payload);
            traceparents.push(row.traceparent);
        }
        // `with ordinality` keeps the emit order in the outbox ids, which is the publish order.
        sqlx::query(
            "insert into outbox (message_id, subject, payload, traceparent)
             select message_id, subject, payload, traceparent
             from unnest($1::text[], $2::text[], $3::bytea[], $4::text[])
                  with ordinality as o(message_id, subject, payload, traceparent, n)
             order by n",
        )
        .bind(ids)
        .bind(subjects)
        .bind(payloads)
        .bind(traceparents)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_written_in_order_in_chunks_of_at_most_the_limit() {
        let rows: Vec<usize> = (0..2 * ROWS_PER_STATEMENT + 1).collect();
        let sizes: Vec<usize> = chunks(rows.clone()).map(|c| c.len()).collect();
        assert_eq!(sizes, [ROWS_PER_STATEMENT, ROWS_PER_STATEMENT, 1]);
        assert_eq!(chunks(rows.clone()).flatten().collect::<Vec<_>>(), rows);
        assert_eq!(chunks(Vec::<usize>::new()).count(), 0);
    }
}
