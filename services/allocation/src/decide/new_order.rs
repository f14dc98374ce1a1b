//! A new order, split as a pure decision: per line what is allocated at once, what waits (as a backorder, or a
//! pre-order when the SKU is one), and what is cancelled at once because its SKU takes no backorders or no more
//! of them, with the audit trail's account of each.
//!
//! The rules: a SKU the product master never sent takes backorders as the policy says; one that is not
//! backorderable takes none; one with a backorder limit takes what its open backordered units leave of the
//! limit. Lines of one SKU draw on the same stock and the same room, in line order ([`rules::split_order`]).

use std::collections::HashMap;

use backorder_proto::v1::OrderLine;

use crate::rules::{self, Room, Split};

/// A SKU's product-master rules, as far as a new order needs them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SkuRule {
    pub backorderable: bool,
    /// 0: no limit.
    pub max_backorder_quantity: i64,
    pub preorder: bool,
}

impl SkuRule {
    fn capped(&self) -> bool {
        self.backorderable && self.max_backorder_quantity > 0
    }
}

/// A SKU's stock as the batch left it so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SkuNow {
    pub available: i64,
    /// Its open backordered units (the sum over its waiting lines).
    pub backordered: i64,
}

/// Why units of a new line were cancelled at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    NotBackorderable,
    OverCap,
}

/// One row of the audit trail for a new line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    pub change: &'static str,
    pub quantity: i64,
    pub detail: String,
}

/// A new line as decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLine {
    pub line_no: i32,
    pub sku: String,
    pub ordered: i64,
    pub split: Split,
    pub preorder: bool,
    /// Why its cancelled units were refused (`None` when none were).
    pub refused: Option<Refused>,
    /// What the audit trail records: only the changes with units.
    pub audit: Vec<Audit>,
}

/// Splits a new order's lines against the stock `now` gives per SKU, under the SKUs' `rules` (a SKU missing
/// from them backorders when `unknown_backorderable`).
pub fn split_new_order(
    lines: &[OrderLine],
    rules: &HashMap<String, SkuRule>,
    now: impl Fn(&str) -> SkuNow,
    unknown_backorderable: bool,
) -> Vec<NewLine> {
    let mut room: HashMap<String, Room> = HashMap::new();
    let mut available: HashMap<String, i64> = HashMap::new();
    for line in lines {
        let stock = now(&line.sku);
        room.insert(
            line.sku.clone(),
            room_of(rules.get(&line.sku), stock, unknown_backorderable),
        );
        available.insert(line.sku.clone(), stock.available);
    }
    let limits = room.clone();
    let splits = rules::split_order(
        lines.iter().map(|l| (l.sku.as_str(), l.quantity)),
        &mut available,
        &mut room,
    );
    lines
        .iter()
        .zip(splits)
        .map(|(line, split)| {
            let rule = rules.get(&line.sku);
            let capped = rule.is_some_and(SkuRule::capped);
            let preorder = rule.is_some_and(|r| r.preorder);
            NewLine {
                line_no: line.line_no as i32,
                sku: line.sku.clone(),
                ordered: line.quantity,
                split,
                preorder,
                refused: (split.cancelled > 0).then_some(if capped {
                    Refused::OverCap
                } else {
                    Refused::NotBackorderable
                }),
                audit: audit(split, preorder, capped, limits.get(&line.sku)),
            }
        })
        .collect()
}

/// How many units of a SKU may still wait.
fn room_of(rule: Option<&SkuRule>, stock: SkuNow, unknown_backorderable: bool) -> Room {
    match rule {
        None if unknown_backorderable => Room::Unlimited,
        None => Room::Limited(0),
        Some(rule) if !rule.backorderable => Room::Limited(0),
        Some(rule) if rule.capped() => {
            Room::Limited((rule.max_backorder_quantity - stock.backordered).max(0))
        }
        Some(_) => Room::Unlimited,
    }
}

/// The audit trail's account of a new line's split; `limit` is the SKU's room before the order.
fn audit(split: Split, preorder: bool, capped: bool, limit: Option<&Room>) -> Vec<Audit> {
    let waits_as = if preorder { "pre-order" } else { "backorder" };
    let why_cancelled = match limit {
        Some(Room::Limited(left)) if capped => {
            format!("the SKU's backorder limit left room for {left} units")
        }
        Some(Room::Limited(_)) | None => "the SKU takes no backorders".to_string(),
        Some(Room::Unlimited) => String::new(),
    };
    [
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
    ]
    .into_iter()
    .filter(|(_, quantity, _)| *quantity > 0)
    .map(|(change, quantity, detail)| Audit {
        change,
        quantity,
        detail,
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(line_no: u32, sku: &str, quantity: i64) -> OrderLine {
        OrderLine {
            line_no,
            sku: sku.to_string(),
            quantity,
        }
    }

    fn stock(available: i64, backordered: i64) -> impl Fn(&str) -> SkuNow {
        move |_| SkuNow {
            available,
            backordered,
        }
    }

    #[test]
    fn what_is_in_stock_ships_and_the_rest_waits_as_a_backorder() {
        // given 70 in stock of a SKU without rules, and a policy that backorders unknown SKUs
        let lines = [line(1, "A", 100)];
        // when an order for 100 arrives
        let decided = split_new_order(&lines, &HashMap::new(), stock(70, 0), true);
        // then 70 are allocated and 30 wait, and the trail says so
        assert_eq!(decided.len(), 1);
        let new = &decided[0];
        assert_eq!(
            new.split,
            Split {
                allocated: 70,
                backordered: 30,
                cancelled: 0
            }
        );
        assert_eq!(new.refused, None);
        let changes: Vec<(&str, i64)> = new.audit.iter().map(|a| (a.change, a.quantity)).collect();
        assert_eq!(changes, [("allocated", 70), ("backordered", 30)]);
        assert!(new.audit[1].detail.ends_with("queued as a backorder"));
    }

    #[test]
    fn an_unknown_sku_takes_no_backorders_when_the_policy_says_so() {
        let decided = split_new_order(&[line(1, "A", 5)], &HashMap::new(), stock(2, 0), false);
        assert_eq!(decided[0].split.cancelled, 3);
        assert_eq!(decided[0].refused, Some(Refused::NotBackorderable));
        assert_eq!(
            decided[0].audit[1].detail,
            "not in stock when the order arrived and the SKU takes no backorders"
        );
    }

    #[test]
    fn a_backorder_limit_counts_the_units_already_waiting_and_the_order_s_own_lines() {
        // given a limit of 10 with 6 already waiting, and nothing in stock
        let rules = HashMap::from([(
            "A".to_string(),
            SkuRule {
                backorderable: true,
                max_backorder_quantity: 10,
                preorder: false,
            },
        )]);
        // when two lines of the SKU ask for 3 each
        let decided = split_new_order(
            &[line(1, "A", 3), line(2, "A", 3)],
            &rules,
            stock(0, 6),
            true,
        );
        // then the first waits whole, the second gets the one unit left and loses two to the cap
        assert_eq!(decided[0].split.backordered, 3);
        assert_eq!(decided[1].split.backordered, 1);
        assert_eq!(decided[1].split.cancelled, 2);
        assert_eq!(decided[1].refused, Some(Refused::OverCap));
        assert_eq!(
            decided[1].audit.last().unwrap().detail,
            "not in stock when the order arrived and the SKU's backorder limit left room for 4 units"
        );
    }

    #[test]
    fn a_pre_order_sku_queues_its_lines_as_pre_orders() {
        let rules = HashMap::from([(
            "P".to_string(),
            SkuRule {
                backorderable: true,
                max_backorder_quantity: 0,
                preorder: true,
            },
        )]);
        let decided = split_new_order(&[line(1, "P", 4)], &rules, stock(0, 0), false);
        assert!(decided[0].preorder);
        assert_eq!(decided[0].split.backordered, 4);
        assert!(
            decided[0].audit[0]
                .detail
                .ends_with("queued as a pre-order")
        );
    }

    #[test]
    fn a_sku_that_is_not_backorderable_cancels_what_is_short_and_ships_the_rest() {
        let rules = HashMap::from([("N".to_string(), SkuRule::default())]);
        let decided = split_new_order(&[line(1, "N", 4)], &rules, stock(1, 0), true);
        assert_eq!(
            decided[0].split,
            Split {
                allocated: 1,
                backordered: 0,
                cancelled: 3
            }
        );
        assert_eq!(decided[0].refused, Some(Refused::NotBackorderable));
    }
}
