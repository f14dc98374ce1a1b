//! A new order: allocate what is free, backorder what the SKU rules allow, cancel the rest at once.

use std::collections::{HashMap, HashSet};

use backorder_proto::v1::OrderPlaced;

use super::cancel::Lost;
use super::{Applied, Work};
use crate::rules::{self, Room};

/// Per SKU of an order, what its product-master rules allow.
struct Rules {
    /// How many more units it may backorder.
    room: HashMap<String, Room>,
    /// It sells as a pre-order.
    preorder: HashMap<String, bool>,
    /// It takes backorders up to a limit: what does not fit is lost over the cap (not as unbackorderable),
    /// also when earlier orders reached the limit already.
    capped: HashSet<String>,
}

/// A SKU's product-master rules, as far as intake needs them.
#[derive(sqlx::FromRow)]
struct SkuRule {
    sku: String,
    backorderable: bool,
    max_backorder_quantity: i64,
    preorder: bool,
}

impl Work<'_> {
    pub(super) async fn accept_order(
        &mut self,
        order: &OrderPlaced,
        cause: &str,
    ) -> Result<Applied, sqlx::Error> {
        let customer = order.customer.clone().unwrap_or_default();
        let placed_at = order
            .placed_at
            .as_ref()
            .and_then(backorder_runtime::time::from_proto)
            .unwrap_or(self.now);
        let inserted = sqlx::query(
            "insert into orders (order_id, customer_id, email, phone, locale, priority, ship_policy, placed_at,
                                 channel, status, time_zone)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'OPEN', $10) on conflict do nothing",
        )
        .bind(&order.order_id)
        .bind(&customer.id)
        .bind(&customer.email)
        .bind(&customer.phone)
        .bind(&customer.locale)
        .bind(order.priority)
        .bind(order.ship_policy as i16)
        .bind(placed_at)
        .bind(&order.channel)
        .bind(&customer.time_zone)
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            tracing::info!("order already known, nothing new");
            return Ok(Applied::Duplicate);
        }
        // A new order had no lines before this batch: nothing to read.
        self.before.insert(order.order_id.clone(), Vec::new());
        self.causes
            .insert(order.order_id.clone(), cause.to_string());

        let Rules {
            mut room,
            preorder,
            capped,
        } = self.sku_rules(order).await?;
        let limits = room.clone();
        let mut available: HashMap<String, i64> = self
            .stock
            .iter()
            .map(|(sku, s)| (sku.clone(), s.available()))
            .collect();
        let splits = rules::split_order(
            order.lines.iter().map(|l| (l.sku.as_str(), l.quantity)),
            &mut available,
            &mut room,
        );

        let day = placed_at.date_naive();
        let mut lost = Vec::new();
        for (line, split) in order.lines.iter().zip(&splits) {
            let line_no = line.line_no as i32;
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
            let waits_as = if preorder[&line.sku] {
                "pre-order"
            } else {
                "backorder"
            };
            let why_cancelled = match limits.get(&line.sku) {
                Some(Room::Limited(left)) if capped.contains(&line.sku) => {
                    format!("the SKU's backorder limit left room for {left} units")
                }
                Some(Room::Limited(_)) | None => "the SKU takes no backorders".to_string(),
                Some(Room::Unlimited) => String::new(),
            };
            if split.cancelled > 0 {
                let reason = if capped.contains(&line.sku) {
                    Lost::OverCap
                } else {
                    Lost::NotBackorderable
                };
                lost.push((line_no, line.sku.clone(), split.cancelled, reason));
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
        }

        sqlx::query(
            "insert into order_lines (order_id, line_no, sku, priority, placed_at, ordered, allocated, backordered,
                                      cancelled, preorder, allocated_at, placed_allocated, placed_backordered,
                                      backordered_since, first_backordered_at, ready_at)
             select $1, line_no, sku, $2, $3, ordered, allocated, backordered, cancelled, preorder,
                    case when allocated > 0 then $10::timestamptz end, allocated, backordered,
                    case when backordered > 0 then $10::timestamptz end,
                    case when backordered > 0 then $10::timestamptz end,
                    case when backordered = 0 and allocated > 0 then $10::timestamptz end
             from unnest($4::int[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $11::bool[])
                  as l(line_no, sku, ordered, allocated, backordered, cancelled, preorder)",
        )
        .bind(&order.order_id)
        .bind(order.priority)
        .bind(placed_at)
        .bind(order.lines.iter().map(|l| l.line_no as i32).collect::<Vec<_>>())
        .bind(order.lines.iter().map(|l| l.sku.clone()).collect::<Vec<_>>())
        .bind(order.lines.iter().map(|l| l.quantity).collect::<Vec<_>>())
        .bind(splits.iter().map(|s| s.allocated).collect::<Vec<_>>())
        .bind(splits.iter().map(|s| s.backordered).collect::<Vec<_>>())
        .bind(splits.iter().map(|s| s.cancelled).collect::<Vec<_>>())
        .bind(self.now)
        .bind(order.lines.iter().map(|l| preorder[&l.sku]).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await?;

        self.record_lost(&order.order_id, &lost, cause).await?;
        self.apply_kept(&order.order_id).await?;
        tracing::info!(
            allocated = splits.iter().map(|s| s.allocated).sum::<i64>(),
            backordered = splits.iter().map(|s| s.backordered).sum::<i64>(),
            cancelled = splits.iter().map(|s| s.cancelled).sum::<i64>(),
            "order accepted"
        );
        Ok(Applied::Done)
    }

    /// Per SKU of the order: how many more units it may backorder, whether it sells as a pre-order and
    /// whether its backorders are capped.
    async fn sku_rules(&mut self, order: &OrderPlaced) -> Result<Rules, sqlx::Error> {
        let skus: Vec<String> = order.lines.iter().map(|l| l.sku.clone()).collect();
        let known: Vec<SkuRule> = sqlx::query_as(
            "select sku, backorderable, max_backorder_quantity, preorder from skus where sku = any($1)",
        )
        .bind(&skus)
        .fetch_all(&mut *self.tx)
        .await?;
        let default = if self.policy.unknown_sku_backorderable {
            Room::Unlimited
        } else {
            Room::Limited(0)
        };
        let mut room: HashMap<String, Room> = skus.iter().map(|s| (s.clone(), default)).collect();
        let mut preorder: HashMap<String, bool> = skus.iter().map(|s| (s.clone(), false)).collect();
        let mut capped = HashSet::new();
        for rule in known {
            preorder.insert(rule.sku.clone(), rule.preorder);
            let limit = if !rule.backorderable {
                Room::Limited(0)
            } else if rule.max_backorder_quantity > 0 {
                // The SKU's row is locked for this batch and counts its open backordered units.
                let open = self.stock[&rule.sku].backordered;
                capped.insert(rule.sku.clone());
                Room::Limited((rule.max_backorder_quantity - open).max(0))
            } else {
                Room::Unlimited
            };
            room.insert(rule.sku, limit);
        }
        Ok(Rules {
            room,
            preorder,
            capped,
        })
    }
}
