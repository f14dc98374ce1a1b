//! Waiting queues kept across batches, so that re-projecting a SKU whose queue did not change since it was last
//! read does not read it again: with 100,000 waiting lines that read is most of the re-projection's cost, and
//! most re-projections of a long queue (a timer, a re-dated purchase order, supply that covers nobody new) find
//! it as it was.
//!
//! A queue is valid at a version. Every batch that writes a SKU's lines gives its stock row a new
//! `queue_version`, under the row's lock, from a sequence: a number is never given twice, also when its
//! transaction rolls back, so a version names one state of the queue. A queue read under the lock is kept,
//! once the batch committed without writing it, with the version the locked row carried; it is used only by a
//! batch that finds the locked row still at that version. Several instances and concurrent batches need no
//! other coordination: a kept queue another instance has since changed is at an older version and is read
//! again.
//!
//! Debug builds keep every queue, however short, and check every queue they take from here against the
//! database (a mismatch panics), so the whole test suite checks that every write of a line gives its SKU a new
//! version.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Utc};

use crate::decide::promises::{Dated, Dates};
use crate::eta::{Eta, Waiting};

/// A waiting line of a SKU's queue, with its dates: what a re-projection and the reorder figures read.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(super) struct QueueRow {
    pub order_id: String,
    pub line_no: i32,
    pub backordered: i64,
    pub eta: Option<DateTime<Utc>>,
    pub eta_estimated: bool,
    pub eta_late: bool,
    pub eta_told: Option<DateTime<Utc>>,
    pub promised_eta: Option<DateTime<Utc>>,
}

impl QueueRow {
    pub fn waiting(&self) -> Waiting {
        Waiting {
            units: self.backordered,
            current: self.eta.map(|at| Eta {
                at,
                estimated: self.eta_estimated,
                late: self.eta_late,
                source: None,
            }),
        }
    }

    pub fn dated(&self) -> Option<Dated> {
        self.eta.map(|at| Dated {
            at,
            estimated: self.eta_estimated,
            late: self.eta_late,
        })
    }

    pub fn dates(&self) -> Dates {
        Dates {
            backordered: self.backordered,
            eta: self.eta,
            told: self.eta_told,
            promised: self.promised_eta,
        }
    }
}

/// A SKU's waiting lines in queue order, shared by the cache and the batches that take it.
pub(super) type Queue = Arc<Lines>;

/// Waiting lines, and who waits on them once someone asked.
#[derive(Debug, Default)]
pub(super) struct Lines {
    rows: Vec<QueueRow>,
    // Counting the orders of 100,000 lines takes longer than projecting them: once per queue, not per batch.
    figures: OnceLock<(i64, Option<DateTime<Utc>>)>,
}

impl Lines {
    pub fn new(rows: Vec<QueueRow>) -> Queue {
        Arc::new(Lines {
            rows,
            figures: OnceLock::new(),
        })
    }

    /// [`waiting_figures`] of these lines.
    pub fn figures(&self) -> (i64, Option<DateTime<Utc>>) {
        *self.figures.get_or_init(|| waiting_figures(&self.rows))
    }
}

impl std::ops::Deref for Lines {
    type Target = [QueueRow];

    fn deref(&self) -> &[QueueRow] {
        &self.rows
    }
}

/// Who waits on a SKU, as `ReorderNeeded` tells it: the orders with a waiting line, and the earliest date
/// promised (or else projected) on the units no purchase order covers (the estimated ones).
pub(super) fn waiting_figures(queue: &[QueueRow]) -> (i64, Option<DateTime<Utc>>) {
    let mut orders: Vec<&str> = queue.iter().map(|row| row.order_id.as_str()).collect();
    orders.sort_unstable();
    orders.dedup();
    let earliest = queue
        .iter()
        .filter(|row| row.eta_estimated)
        .filter_map(|row| row.promised_eta.or(row.eta))
        .min();
    (orders.len() as i64, earliest)
}

/// Queues shorter than this are read each time: the read costs less than keeping them.
const MIN_LINES: usize = if cfg!(debug_assertions) { 0 } else { 500 };
/// At most this many lines are kept over all SKUs (about 100 bytes each).
const MAX_LINES: usize = 200_000;

/// The queues kept by one engine, shared by its clones.
#[derive(Clone, Default)]
pub struct QueueCache {
    // A std mutex: it is held for a lookup or an insert, never across an await.
    kept: Arc<Mutex<Kept>>,
}

#[derive(Default)]
struct Kept {
    queues: HashMap<String, (i64, Queue)>,
    lines: usize,
}

impl QueueCache {
    /// The queue of `sku` at `version`, if it is kept.
    pub(super) fn get(&self, sku: &str, version: i64) -> Option<Queue> {
        let kept = self.kept.lock().expect("queue cache lock");
        kept.queues
            .get(sku)
            .filter(|(at, _)| *at == version)
            .map(|(_, queue)| queue.clone())
    }

    /// Keeps `queue` as the queue of `sku` at `version`, making room if need be; a queue too short or too long
    /// to keep is not.
    pub(super) fn keep(&self, sku: &str, version: i64, queue: Queue) {
        if !(MIN_LINES..=MAX_LINES / 2).contains(&queue.len()) {
            return;
        }
        let mut kept = self.kept.lock().expect("queue cache lock");
        kept.remove(sku);
        while kept.lines + queue.len() > MAX_LINES {
            // Any queue will do: one read again later costs what it would have cost without the cache.
            let Some(other) = kept.queues.keys().next().cloned() else {
                break;
            };
            kept.remove(&other);
        }
        kept.lines += queue.len();
        kept.queues.insert(sku.to_string(), (version, queue));
    }

    /// Drops what is kept of `skus`: their queues changed.
    pub(super) fn forget<'s>(&self, skus: impl IntoIterator<Item = &'s String>) {
        let mut kept = self.kept.lock().expect("queue cache lock");
        for sku in skus {
            kept.remove(sku);
        }
    }

    /// How many lines are kept, over all SKUs.
    pub fn lines(&self) -> usize {
        self.kept.lock().expect("queue cache lock").lines
    }
}

impl Kept {
    fn remove(&mut self, sku: &str) {
        if let Some((_, queue)) = self.queues.remove(sku) {
            self.lines -= queue.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(order_id: &str, line_no: i32) -> QueueRow {
        QueueRow {
            order_id: order_id.into(),
            line_no,
            backordered: 1,
            eta: None,
            eta_estimated: false,
            eta_late: false,
            eta_told: None,
            promised_eta: None,
        }
    }

    fn at(day: u32) -> DateTime<Utc> {
        chrono::NaiveDate::from_ymd_opt(2026, 12, day)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
    }

    #[test]
    fn a_queue_is_found_at_the_version_it_was_kept_at_and_at_no_other() {
        let cache = QueueCache::default();
        let queue = Lines::new(vec![row("A", 1), row("B", 1)]);
        cache.keep("S", 7, queue.clone());
        assert_eq!(
            cache.get("S", 7).as_deref().map(|q| &q[..]),
            Some(&queue[..])
        );
        assert!(cache.get("S", 8).is_none());
        assert!(cache.get("T", 7).is_none());
        cache.forget(&["S".to_string()]);
        assert!(cache.get("S", 7).is_none());
        assert_eq!(cache.lines(), 0);
    }

    #[test]
    fn keeping_a_newer_queue_replaces_the_older_and_the_line_count_follows() {
        let cache = QueueCache::default();
        cache.keep("S", 1, Lines::new(vec![row("A", 1), row("B", 1)]));
        cache.keep("S", 2, Lines::new(vec![row("A", 1)]));
        assert!(cache.get("S", 1).is_none());
        assert_eq!(cache.get("S", 2).map(|q| q.len()), Some(1));
        assert_eq!(cache.lines(), 1);
    }

    #[test]
    fn the_cache_never_holds_more_than_its_bound() {
        let cache = QueueCache::default();
        let big = Lines::new(
            (0..MAX_LINES / 2)
                .map(|i| row(&format!("O{i}"), 1))
                .collect(),
        );
        for (version, sku) in ["S", "T", "U"].into_iter().enumerate() {
            cache.keep(sku, version as i64, big.clone());
            assert!(cache.lines() <= MAX_LINES, "{}", cache.lines());
        }
        assert!(cache.get("U", 2).is_some(), "the newest is kept");
        let too_big = Lines::new(
            (0..MAX_LINES / 2 + 1)
                .map(|i| row(&format!("O{i}"), 1))
                .collect(),
        );
        cache.keep("V", 9, too_big);
        assert!(cache.get("V", 9).is_none());
    }

    #[test]
    fn waiting_figures_count_orders_once_and_take_the_earliest_estimated_promise_or_date() {
        let mut a1 = row("A", 1);
        let mut a2 = row("A", 2);
        let mut b1 = row("B", 1);
        let mut c1 = row("C", 1);
        // A PO covers a1: its date does not count however early.
        a1.eta = Some(at(1));
        a2.eta = Some(at(9));
        a2.eta_estimated = true;
        // b1 was promised the 5th and is now projected the 8th: the promise counts.
        b1.eta = Some(at(8));
        b1.promised_eta = Some(at(5));
        b1.eta_estimated = true;
        // Estimated without a date yet.
        c1.eta_estimated = true;
        assert_eq!(
            waiting_figures(&[a1.clone(), a2.clone(), b1.clone(), c1.clone()]),
            (3, Some(at(5)))
        );
        assert_eq!(Lines::new(vec![a1, a2, b1, c1]).figures(), (3, Some(at(5))));
        assert_eq!(waiting_figures(&[]), (0, None));
    }
}
