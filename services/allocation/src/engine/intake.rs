//! New orders: allocate what is free, backorder what the SKU rules allow, cancel the rest at once.
//!
//! The new orders that follow each other in a batch are accepted together, with a constant number of
//! statements whatever their number: their claims, their order rows, their SKUs' rules, the requests kept for
//! them, their lines and their lost units. Each is still split in turn against the stock the orders before it
//! left ([`split_new_order`]), so the outcome is that of accepting them one by one. A request kept for an
//! order reads the order's lines: the lines split so far are written before it is carried out.

use std::collections::{HashMap, HashSet};

use backorder_proto::v1::OrderPlaced;
use chrono::{DateTime, Utc};
use tracing::Instrument;

use super::cancel::{Lost, LostUnits};
use super::claim::{Claim, Claimed};
use super::ledger::Appended;
use super::{Applied, Work};
use crate::command::Command;
use crate::decide::new_order::{NewLine, Refused, SkuNow, SkuRule, split_new_order};

/// The new lines split so far, as the columns of one insert.
#[derive(Default)]
struct NewLines {
    order_id: Vec<String>,
    line_no: Vec<i32>,
    sku: Vec<String>,
    priority: Vec<i32>,
    placed_at: Vec<DateTime<Utc>>,
    ordered: Vec<i64>,
    allocated: Vec<i64>,
    backordered: Vec<i64>,
    cancelled: Vec<i64>,
    preorder: Vec<bool>,
}

impl NewLines {
    fn push(&mut self, order: &OrderPlaced, placed_at: DateTime<Utc>, line: NewLine) {
        self.order_id.push(order.order_id.clone());
        self.line_no.push(line.line_no);
        self.sku.push(line.sku);
        self.priority.push(order.priority);
        self.placed_at.push(placed_at);
        self.ordered.push(line.ordered);
        self.allocated.push(line.split.allocated);
        self.backordered.push(line.split.backordered);
        self.cancelled.push(line.split.cancelled);
        self.preorder.push(line.preorder);
    }
}

/// What the orders split so far still have to write.
#[derive(Default)]
struct Unwritten {
    lines: NewLines,
    lost: Vec<LostUnits>,
}

fn placed_at(order: &OrderPlaced, now: DateTime<Utc>) -> DateTime<Utc> {
    order
        .placed_at
        .as_ref()
        .and_then(backorder_runtime::time::from_proto)
        .unwrap_or(now)
}

impl Work<'_> {
    /// Applies `commands`, all of them `AcceptOrder`s (`traces[i]` are the trace headers of `commands[i]`).
    pub(super) async fn accept_orders(
        &mut self,
        commands: &[Command],
        traces: &[Vec<(String, String)>],
    ) -> Result<Vec<Applied>, sqlx::Error> {
        let mut results: Vec<Option<Applied>> = vec![None; commands.len()];
        let (mut claimed, again) = self.claim_orders(commands, traces).await?;
        // An id claimed before, or earlier in the run: a duplicate, or a conflict to refuse.
        for new in again {
            let command = &commands[new.index];
            let claim = self
                .claim(&new.id, command)
                .instrument(new.span.clone())
                .await?;
            results[new.index] = Some(match claim {
                Claim::New => {
                    claimed.push(new);
                    continue;
                }
                Claim::Duplicate => {
                    new.span
                        .in_scope(|| tracing::info!("already applied, skipping"));
                    Applied::Duplicate
                }
                Claim::Conflict { claim, reason } => {
                    self.refuse(&claim, &new.id, command, &reason)
                        .instrument(new.span.clone())
                        .await?;
                    Applied::Refused(reason)
                }
            });
        }
        claimed.sort_by_key(|c| c.index);
        for (index, applied) in self.accept_claimed(&claimed).await? {
            results[index] = Some(applied);
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every command of the run is decided"))
            .collect())
    }

    /// Accepts one order whose message `id` was claimed.
    pub(super) async fn accept_claimed_order(
        &mut self,
        order: &OrderPlaced,
        id: &str,
    ) -> Result<Applied, sqlx::Error> {
        let claimed = Claimed {
            index: 0,
            id: id.to_string(),
            order,
            span: tracing::Span::current(),
        };
        let mut applied = self.accept_claimed(&[claimed]).await?;
        Ok(applied
            .pop()
            .map_or(Applied::Duplicate, |(_, applied)| applied))
    }

    /// Accepts orders whose messages were claimed, in turn; returns what became of each, by place in the run.
    async fn accept_claimed(
        &mut self,
        claimed: &[Claimed<'_>],
    ) -> Result<Vec<(usize, Applied)>, sqlx::Error> {
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let inserted = self.insert_orders(claimed).await?;
        let skus: Vec<String> = claimed
            .iter()
            .flat_map(|c| c.order.lines.iter().map(|l| l.sku.clone()))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let rules: HashMap<String, SkuRule> = sqlx::query_as(
            "select sku, backorderable, max_backorder_quantity, preorder from skus where sku = any($1)",
        )
        .bind(&skus)
        .fetch_all(&mut *self.tx)
        .await?
        .into_iter()
        .map(|(sku, backorderable, max_backorder_quantity, preorder)| {
            let rule = SkuRule {
                backorderable,
                max_backorder_quantity,
                preorder,
            };
            (sku, rule)
        })
        .collect();
        let new_ids: Vec<String> = claimed
            .iter()
            .filter(|c| inserted.contains(&c.order.order_id))
            .map(|c| c.order.order_id.clone())
            .collect();
        let mut kept = self.take_kept(&new_ids).await?;
        let mut unwritten = Unwritten::default();
        let mut results = Vec::with_capacity(claimed.len());
        for new in claimed {
            if !inserted.contains(&new.order.order_id) {
                new.span
                    .in_scope(|| tracing::info!("order already known, nothing new"));
                results.push((new.index, Applied::Duplicate));
                continue;
            }
            new.span
                .in_scope(|| self.split(new.order, &new.id, &rules, &mut unwritten));
            if let Some(requests) = kept.remove(&new.order.order_id) {
                self.write_new(&mut unwritten).await?;
                self.apply_kept(requests)
                    .instrument(new.span.clone())
                    .await?;
            }
            results.push((new.index, Applied::Done));
        }
        self.write_new(&mut unwritten).await?;
        Ok(results)
    }

    /// Inserts the orders' rows in one statement; returns the ids of those that were not there yet.
    async fn insert_orders(
        &mut self,
        claimed: &[Claimed<'_>],
    ) -> Result<HashSet<String>, sqlx::Error> {
        let orders: Vec<&OrderPlaced> = claimed.iter().map(|c| c.order).collect();
        let customers: Vec<_> = orders
            .iter()
            .map(|o| o.customer.clone().unwrap_or_default())
            .collect();
        let text = |f: fn(&backorder_proto::v1::Customer) -> &String| {
            customers.iter().map(|c| f(c).clone()).collect::<Vec<_>>()
        };
        let ids: Vec<String> = sqlx::query_scalar(
            "insert into orders (order_id, customer_id, email, phone, locale, priority, ship_policy, placed_at,
                                 channel, status, time_zone)
             select order_id, customer_id, email, phone, locale, priority, ship_policy, placed_at, channel, 'OPEN',
                    time_zone
             from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::int2[],
                         $8::timestamptz[], $9::text[], $10::text[])
                  as o(order_id, customer_id, email, phone, locale, priority, ship_policy, placed_at, channel,
                       time_zone)
             on conflict do nothing returning order_id",
        )
        .bind(orders.iter().map(|o| o.order_id.clone()).collect::<Vec<_>>())
        .bind(text(|c| &c.id))
        .bind(text(|c| &c.email))
        .bind(text(|c| &c.phone))
        .bind(text(|c| &c.locale))
        .bind(orders.iter().map(|o| o.priority).collect::<Vec<_>>())
        .bind(orders.iter().map(|o| o.ship_policy as i16).collect::<Vec<_>>())
        .bind(orders.iter().map(|o| placed_at(o, self.now)).collect::<Vec<_>>())
        .bind(orders.iter().map(|o| o.channel.clone()).collect::<Vec<_>>())
        .bind(text(|c| &c.time_zone))
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(ids.into_iter().collect())
    }

    /// Splits a new order against the stock the batch left so far ([`split_new_order`]) and records what it
    /// changes: the stock figures, the demand, the queue, the audit trail; its lines and lost units join
    /// `unwritten`.
    fn split(
        &mut self,
        order: &OrderPlaced,
        cause: &str,
        rules: &HashMap<String, SkuRule>,
        unwritten: &mut Unwritten,
    ) {
        let placed_at = placed_at(order, self.now);
        // A new order had no lines before this batch: nothing to read.
        self.orders
            .before
            .insert(order.order_id.clone(), Vec::new());
        self.orders
            .causes
            .insert(order.order_id.clone(), cause.to_string());
        // The SKUs' rows are locked for this batch; they count what the orders before this one took.
        let stock = &self.stock;
        let lines = split_new_order(
            &order.lines,
            rules,
            |sku| SkuNow {
                available: stock[sku].available(),
                backordered: stock[sku].backordered,
            },
            self.policy.unknown_sku_backorderable,
        );
        let (mut allocated, mut backordered, mut cancelled) = (0, 0, 0);
        for line in lines {
            allocated += line.split.allocated;
            backordered += line.split.backordered;
            cancelled += line.split.cancelled;
            self.record_new_line(order, placed_at, cause, line, unwritten);
        }
        tracing::info!(allocated, backordered, cancelled, "order accepted");
    }

    /// Records what a new line changes: its SKU's stock figures, the day's demand, the queue, the audit trail,
    /// the units lost; the line joins `unwritten`.
    fn record_new_line(
        &mut self,
        order: &OrderPlaced,
        placed_at: DateTime<Utc>,
        cause: &str,
        mut line: NewLine,
        unwritten: &mut Unwritten,
    ) {
        let split = line.split;
        let stock = self.stock_mut(&line.sku);
        stock.allocated += split.allocated;
        stock.backordered += split.backordered;
        let day = placed_at.date_naive();
        let demand = self
            .records
            .demand
            .entry((line.sku.clone(), day))
            .or_default();
        demand.ordered += line.ordered;
        demand.backordered += split.backordered;
        demand.cancelled_short += split.cancelled;
        if split.backordered > 0 {
            self.skus.short.insert(line.sku.clone());
            self.skus.reproject(&line.sku, cause, false);
            let appended = Appended {
                priority: order.priority,
                placed_at,
                order_id: order.order_id.clone(),
                line_no: line.line_no,
                units: split.backordered,
            };
            self.skus
                .appended
                .entry(line.sku.clone())
                .or_default()
                .push(appended);
        }
        if let Some(refused) = line.refused {
            unwritten.lost.push(LostUnits {
                order_id: order.order_id.clone(),
                line_no: line.line_no,
                sku: line.sku.clone(),
                units: split.cancelled,
                why: match refused {
                    Refused::OverCap => Lost::OverCap,
                    Refused::NotBackorderable => Lost::NotBackorderable,
                },
                cause: cause.to_string(),
            });
        }
        for audit in std::mem::take(&mut line.audit) {
            self.record(
                &order.order_id,
                line.line_no,
                &line.sku,
                audit.change,
                audit.quantity,
                cause,
                audit.detail,
            );
        }
        unwritten.lines.push(order, placed_at, line);
    }

    /// Writes the new lines and lost units split so far, one statement each.
    async fn write_new(&mut self, unwritten: &mut Unwritten) -> Result<(), sqlx::Error> {
        let Unwritten { lines, lost } = std::mem::take(unwritten);
        if !lines.order_id.is_empty() {
            self.lines_written(lines.sku.iter().cloned());
            sqlx::query(
                "insert into order_lines (order_id, line_no, sku, priority, placed_at, ordered, allocated,
                                          backordered, cancelled, preorder, allocated_at, placed_allocated,
                                          placed_backordered, backordered_since, first_backordered_at, ready_at)
                 select order_id, line_no, sku, priority, placed_at, ordered, allocated, backordered, cancelled,
                        preorder, case when allocated > 0 then $11::timestamptz end, allocated, backordered,
                        case when backordered > 0 then $11::timestamptz end,
                        case when backordered > 0 then $11::timestamptz end,
                        case when backordered = 0 and allocated > 0 then $11::timestamptz end
                 from unnest($1::text[], $2::int[], $3::text[], $4::int[], $5::timestamptz[], $6::bigint[],
                             $7::bigint[], $8::bigint[], $9::bigint[], $10::bool[])
                      as l(order_id, line_no, sku, priority, placed_at, ordered, allocated, backordered,
                           cancelled, preorder)",
            )
            .bind(lines.order_id)
            .bind(lines.line_no)
            .bind(lines.sku)
            .bind(lines.priority)
            .bind(lines.placed_at)
            .bind(lines.ordered)
            .bind(lines.allocated)
            .bind(lines.backordered)
            .bind(lines.cancelled)
            .bind(lines.preorder)
            .bind(self.now)
            .execute(&mut *self.tx)
            .await?;
        }
        self.record_lost(&lost).await
    }
}
