//! New orders: allocate what is free, backorder what the SKU rules allow, cancel the rest at once.
//!
//! The new orders that follow each other in a batch are accepted together, with a constant number of
//! statements whatever their number: their claims, their order rows, their SKUs' rules, the requests kept for
//! them, their lines and their lost units. Each is still split in turn against the stock the orders before it
//! left ([`rules::split_order`]), so the outcome is that of accepting them one by one. A request kept for an
//! order reads the order's lines: the lines split so far are written before it is carried out.

use std::collections::{HashMap, HashSet};

use backorder_proto::v1::OrderPlaced;
use chrono::{DateTime, Utc};
use tracing::Instrument;

use super::cancel::{Lost, LostUnits};
use super::{Applied, Claim, Work};
use crate::command::Command;
use crate::rules::{self, Room};

/// A SKU's product-master rules, as far as intake needs them.
#[derive(sqlx::FromRow)]
struct SkuRule {
    sku: String,
    backorderable: bool,
    max_backorder_quantity: i64,
    preorder: bool,
}

/// A new order of a run: where it stands in the run, its message id, and the span its work is recorded in.
struct Claimed<'c> {
    index: usize,
    id: String,
    order: &'c OrderPlaced,
    span: tracing::Span,
}

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
        .map(|rule: SkuRule| (rule.sku.clone(), rule))
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

    /// Claims the run's message ids in one statement. Returns the orders claimed now, and those whose id was
    /// claimed before or earlier in the run, by place in the run.
    async fn claim_orders<'c>(
        &mut self,
        commands: &'c [Command],
        traces: &[Vec<(String, String)>],
    ) -> Result<(Vec<Claimed<'c>>, Vec<Claimed<'c>>), sqlx::Error> {
        let mut first: Vec<Claimed<'c>> = Vec::with_capacity(commands.len());
        let mut again = Vec::new();
        let mut seen = HashSet::new();
        for (index, command) in commands.iter().enumerate() {
            let Command::AcceptOrder { order, .. } = command else {
                unreachable!("a run holds new orders only")
            };
            let id = command.message_id();
            let span = tracing::info_span!(
                "command",
                id = %id,
                order_id = order.order_id.as_str(),
                sku = tracing::field::Empty,
            );
            if let Some(trace) = traces.get(index) {
                backorder_runtime::trace::follow(&span, trace);
            }
            self.traces.insert(
                id.clone(),
                span.in_scope(backorder_runtime::trace::traceparent),
            );
            let new = Claimed {
                index,
                id,
                order,
                span,
            };
            if seen.insert(new.id.clone()) {
                first.push(new);
            } else {
                again.push(new);
            }
        }
        let claimed: HashSet<String> = sqlx::query_scalar(
            "insert into processed_messages (message_id, digest, summary)
             select * from unnest($1::text[], $2::text[], $3::text[])
             on conflict do nothing returning message_id",
        )
        .bind(first.iter().map(|c| c.id.clone()).collect::<Vec<_>>())
        .bind(
            first
                .iter()
                .map(|c| commands[c.index].digest())
                .collect::<Vec<_>>(),
        )
        .bind(
            first
                .iter()
                .map(|c| commands[c.index].summary())
                .collect::<Vec<_>>(),
        )
        .fetch_all(&mut *self.tx)
        .await?
        .into_iter()
        .collect();
        let (new, old): (Vec<_>, Vec<_>) = first.into_iter().partition(|c| claimed.contains(&c.id));
        again.extend(old);
        again.sort_by_key(|c| c.index);
        Ok((new, again))
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

    /// Splits a new order against the stock the batch left so far and records what it changes: the stock
    /// figures, the demand, the queue, the audit trail; its lines and lost units join `unwritten`.
    fn split(
        &mut self,
        order: &OrderPlaced,
        cause: &str,
        known: &HashMap<String, SkuRule>,
        unwritten: &mut Unwritten,
    ) {
        let placed_at = placed_at(order, self.now);
        // A new order had no lines before this batch: nothing to read.
        self.before.insert(order.order_id.clone(), Vec::new());
        self.causes
            .insert(order.order_id.clone(), cause.to_string());
        let default = if self.policy.unknown_sku_backorderable {
            Room::Unlimited
        } else {
            Room::Limited(0)
        };
        let mut room: HashMap<String, Room> = HashMap::new();
        let mut available: HashMap<String, i64> = HashMap::new();
        for line in &order.lines {
            let limit = match known.get(&line.sku) {
                None => default,
                Some(rule) if !rule.backorderable => Room::Limited(0),
                // The SKU's row is locked for this batch and counts its open backordered units.
                Some(rule) if rule.max_backorder_quantity > 0 => Room::Limited(
                    (rule.max_backorder_quantity - self.stock[&line.sku].backordered).max(0),
                ),
                Some(_) => Room::Unlimited,
            };
            room.insert(line.sku.clone(), limit);
            available.insert(line.sku.clone(), self.stock[&line.sku].available());
        }
        let limits = room.clone();
        let splits = rules::split_order(
            order.lines.iter().map(|l| (l.sku.as_str(), l.quantity)),
            &mut available,
            &mut room,
        );

        let day = placed_at.date_naive();
        for (line, split) in order.lines.iter().zip(&splits) {
            let line_no = line.line_no as i32;
            let rule = known.get(&line.sku);
            let preorder = rule.is_some_and(|r| r.preorder);
            let capped = rule.is_some_and(|r| r.backorderable && r.max_backorder_quantity > 0);
            let stock = self.stock_mut(&line.sku);
            stock.allocated += split.allocated;
            stock.backordered += split.backordered;
            let demand = self.demand.entry((line.sku.clone(), day)).or_default();
            demand.ordered += line.quantity;
            demand.backordered += split.backordered;
            demand.cancelled_short += split.cancelled;
            if split.backordered > 0 {
                self.short_skus.insert(line.sku.clone());
                self.mark_eta(&line.sku, cause, false);
                self.appended
                    .entry(line.sku.clone())
                    .or_default()
                    .push(super::Appended {
                        priority: order.priority,
                        placed_at,
                        order_id: order.order_id.clone(),
                        line_no,
                        units: split.backordered,
                    });
            }
            let waits_as = if preorder { "pre-order" } else { "backorder" };
            let why_cancelled = match limits.get(&line.sku) {
                Some(Room::Limited(left)) if capped => {
                    format!("the SKU's backorder limit left room for {left} units")
                }
                Some(Room::Limited(_)) | None => "the SKU takes no backorders".to_string(),
                Some(Room::Unlimited) => String::new(),
            };
            if split.cancelled > 0 {
                unwritten.lost.push(LostUnits {
                    order_id: order.order_id.clone(),
                    line_no,
                    sku: line.sku.clone(),
                    units: split.cancelled,
                    why: if capped {
                        Lost::OverCap
                    } else {
                        Lost::NotBackorderable
                    },
                    cause: cause.to_string(),
                });
            }
            for (change, quantity, detail) in [
                (
                    "allocated",
                    split.allocated,
                    "in stock when the order arrived".to_string(),
                ),
                (
                    "backordered",
                    split.backordered,
                    format!("not in stock when the order arrived; queued as a {waits_as}"),
                ),
                (
                    "cancelled",
                    split.cancelled,
                    format!("not in stock when the order arrived and {why_cancelled}"),
                ),
            ] {
                self.record(
                    &order.order_id,
                    line_no,
                    &line.sku,
                    change,
                    quantity,
                    cause,
                    detail,
                );
            }
            let new = &mut unwritten.lines;
            new.order_id.push(order.order_id.clone());
            new.line_no.push(line_no);
            new.sku.push(line.sku.clone());
            new.priority.push(order.priority);
            new.placed_at.push(placed_at);
            new.ordered.push(line.quantity);
            new.allocated.push(split.allocated);
            new.backordered.push(split.backordered);
            new.cancelled.push(split.cancelled);
            new.preorder.push(preorder);
        }
        tracing::info!(
            allocated = splits.iter().map(|s| s.allocated).sum::<i64>(),
            backordered = splits.iter().map(|s| s.backordered).sum::<i64>(),
            cancelled = splits.iter().map(|s| s.cancelled).sum::<i64>(),
            "order accepted"
        );
    }

    /// Writes the new lines and lost units split so far, one statement each.
    async fn write_new(&mut self, unwritten: &mut Unwritten) -> Result<(), sqlx::Error> {
        let Unwritten { lines, lost } = std::mem::take(unwritten);
        if !lines.order_id.is_empty() {
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
