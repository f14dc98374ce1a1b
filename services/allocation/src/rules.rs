//! The allocation rules, as pure functions over plain numbers: no I/O, so they are unit- and property-tested
//! on their own and the engine only moves their decisions into the database.

mod notice;
mod shipment;

use std::collections::{BTreeMap, HashMap};

pub use notice::{LineView, Notice, notices};
pub use shipment::{ShipmentError, Shippable, check_shipment};

/// What a SKU's rules allow for the part of a line that cannot be allocated at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Room {
    /// Backorder all of it.
    Unlimited,
    /// Backorder at most this many more units of the SKU; cancel the rest (0: not backorderable).
    Limited(i64),
}

/// How a new line splits: allocated now, waiting, or cancelled at once because its SKU takes no (more)
/// backorders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Split {
    pub allocated: i64,
    pub backordered: i64,
    pub cancelled: i64,
}

/// Splits the lines of a new order against what is available per SKU, in line order. Lines of the same SKU
/// draw on the same stock and the same backorder room; both are lowered by what is taken. A SKU missing from
/// `room` may backorder without limit.
pub fn split_order<'a>(
    lines: impl IntoIterator<Item = (&'a str, i64)>,
    available: &mut HashMap<String, i64>,
    room: &mut HashMap<String, Room>,
) -> Vec<Split> {
    lines
        .into_iter()
        .map(|(sku, quantity)| {
            let free = available.get(sku).copied().unwrap_or(0).max(0);
            let allocated = free.min(quantity);
            if allocated > 0 {
                *available.get_mut(sku).expect("free > 0 implies an entry") -= allocated;
            }
            let short = quantity - allocated;
            let backordered = match room.get_mut(sku) {
                None | Some(Room::Unlimited) => short,
                Some(Room::Limited(left)) => {
                    let taken = short.min((*left).max(0));
                    *left -= taken;
                    taken
                }
            };
            Split {
                allocated,
                backordered,
                cancelled: short - backordered,
            }
        })
        .collect()
}

/// A line in a queue with the units it offers to the walk: backordered units waiting for stock, or allocated
/// units a stock correction may take back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub order_id: String,
    pub line_no: i32,
    pub units: i64,
}

/// Units moved for one queued line, and its place in the queue (for the audit trail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fill {
    pub order_id: String,
    pub line_no: i32,
    pub quantity: i64,
    pub position: usize,
}

/// Walks the queue front to back, moving up to `available` units, each line at most its own. For backorders
/// the queue is sorted by priority (higher first), then placed_at, order id and line; for a take-back, by
/// priority (lower first), then the most recently allocated.
pub fn fill_queue(available: i64, queue: &[Queued]) -> Vec<Fill> {
    let mut left = available.max(0);
    let mut fills = Vec::new();
    for (position, line) in queue.iter().enumerate() {
        if left == 0 {
            break;
        }
        let quantity = left.min(line.units);
        if quantity > 0 {
            fills.push(Fill {
                order_id: line.order_id.clone(),
                line_no: line.line_no,
                quantity,
                position: position + 1,
            });
            left -= quantity;
        }
    }
    fills
}

/// Why a cancellation cannot be carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CancelError {
    #[error("line {0}: the order has no such line")]
    UnknownLine(i32),
    #[error("line {0} appears more than once in the request")]
    DuplicateLine(i32),
    #[error("line {line}: quantity must not be negative, got {quantity}")]
    Negative { line: i32, quantity: i64 },
    #[error(
        "line {line}: {quantity} units to cancel but only {outstanding} outstanding \
         ({shipped} shipped, which cannot be cancelled; {cancelled} cancelled already)"
    )]
    MoreThanOutstanding {
        line: i32,
        quantity: i64,
        outstanding: i64,
        shipped: i64,
        cancelled: i64,
    },
    #[error(
        "nothing left to cancel: {shipped} units shipped, which cannot be cancelled, {cancelled} cancelled already"
    )]
    NothingOutstanding { shipped: i64, cancelled: i64 },
}

/// Units a cancellation takes from one line: backordered units first (they cost nobody anything), then
/// allocated units, which go back to stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancel {
    pub line_no: i32,
    pub from_backordered: i64,
    pub from_allocated: i64,
}

/// Plans a cancellation. `requested` empty: every outstanding unit of the order; a requested quantity of 0:
/// every outstanding unit of that line. Refused as a whole when any part cannot be done.
pub fn plan_cancel(
    lines: &BTreeMap<i32, LineUnits>,
    requested: &[(i32, i64)],
) -> Result<Vec<Cancel>, CancelError> {
    let wanted: Vec<(i32, Option<i64>)> = if requested.is_empty() {
        lines.keys().map(|l| (*l, None)).collect()
    } else {
        let mut seen = std::collections::HashSet::new();
        let mut wanted = Vec::new();
        for &(line, quantity) in requested {
            if !seen.insert(line) {
                return Err(CancelError::DuplicateLine(line));
            }
            if !lines.contains_key(&line) {
                return Err(CancelError::UnknownLine(line));
            }
            if quantity < 0 {
                return Err(CancelError::Negative { line, quantity });
            }
            wanted.push((line, (quantity > 0).then_some(quantity)));
        }
        wanted
    };
    let mut plan = Vec::new();
    for (line, quantity) in wanted {
        let units = lines[&line];
        let outstanding = units.allocated + units.backordered;
        let quantity = quantity.unwrap_or(outstanding);
        if quantity > outstanding {
            return Err(CancelError::MoreThanOutstanding {
                line,
                quantity,
                outstanding,
                shipped: units.shipped,
                cancelled: units.cancelled,
            });
        }
        if quantity > 0 {
            let from_backordered = quantity.min(units.backordered);
            plan.push(Cancel {
                line_no: line,
                from_backordered,
                from_allocated: quantity - from_backordered,
            });
        }
    }
    if plan.is_empty() {
        let total = |f: fn(&LineUnits) -> i64| lines.values().map(f).sum();
        return Err(CancelError::NothingOutstanding {
            shipped: total(|u| u.shipped),
            cancelled: total(|u| u.cancelled),
        });
    }
    Ok(plan)
}

/// The units of a line, by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineUnits {
    pub ordered: i64,
    pub allocated: i64,
    pub backordered: i64,
    pub shipped: i64,
    pub cancelled: i64,
}

impl LineUnits {
    pub fn adds_up(&self) -> bool {
        let parts = [
            self.allocated,
            self.backordered,
            self.shipped,
            self.cancelled,
        ];
        self.ordered > 0
            && parts.iter().all(|p| *p >= 0)
            && parts.iter().sum::<i64>() == self.ordered
    }

    /// Every unit shipped or cancelled.
    pub fn is_finished(&self) -> bool {
        self.allocated == 0 && self.backordered == 0
    }
}

/// The status of an order, from its lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Open,
    PartiallyAllocated,
    Backordered,
    Allocated,
    PartiallyShipped,
    Completed,
    Cancelled,
    Preordered,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "OPEN",
            Status::PartiallyAllocated => "PARTIALLY_ALLOCATED",
            Status::Backordered => "BACKORDERED",
            Status::Allocated => "ALLOCATED",
            Status::PartiallyShipped => "PARTIALLY_SHIPPED",
            Status::Completed => "COMPLETED",
            Status::Cancelled => "CANCELLED",
            Status::Preordered => "PREORDERED",
        }
    }
}

/// The status of an order from its lines; `preorders_only`: every line that waits is a pre-order.
pub fn order_status(lines: &[LineUnits], preorders_only: bool) -> Status {
    let sum = |f: fn(&LineUnits) -> i64| lines.iter().map(f).sum::<i64>();
    let (ordered, allocated, backordered, shipped, cancelled) = (
        sum(|l| l.ordered),
        sum(|l| l.allocated),
        sum(|l| l.backordered),
        sum(|l| l.shipped),
        sum(|l| l.cancelled),
    );
    if ordered == 0 {
        Status::Open
    } else if cancelled == ordered {
        Status::Cancelled
    } else if allocated == 0 && backordered == 0 {
        Status::Completed
    } else if shipped > 0 {
        Status::PartiallyShipped
    } else if backordered == 0 {
        Status::Allocated
    } else if allocated == 0 && preorders_only {
        Status::Preordered
    } else if allocated == 0 {
        Status::Backordered
    } else {
        Status::PartiallyAllocated
    }
}

/// How many of each line's allocated units the WMS may pick: all of them, except that a ship-complete order
/// keeps its units reserved but unreleased while any line still waits.
pub fn releasable(ship_complete: bool, lines: &[LineUnits]) -> Vec<i64> {
    let waiting = lines.iter().any(|l| l.backordered > 0);
    lines
        .iter()
        .map(|l| {
            if ship_complete && waiting {
                0
            } else {
                l.allocated
            }
        })
        .collect()
}

/// Backordered units not covered by stock that is free or on its way.
pub fn shortage(backordered: i64, available: i64, inbound: i64) -> i64 {
    (backordered - available.max(0) - inbound.max(0)).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn queued(order_id: &str, units: i64) -> Queued {
        Queued {
            order_id: order_id.into(),
            line_no: 1,
            units,
        }
    }

    fn split(allocated: i64, backordered: i64, cancelled: i64) -> Split {
        Split {
            allocated,
            backordered,
            cancelled,
        }
    }

    fn line(
        ordered: i64,
        allocated: i64,
        backordered: i64,
        shipped: i64,
        cancelled: i64,
    ) -> LineUnits {
        LineUnits {
            ordered,
            allocated,
            backordered,
            shipped,
            cancelled,
        }
    }

    #[test]
    fn given_70_in_stock_when_100_are_ordered_then_70_ship_and_30_wait() {
        let mut available = HashMap::from([("SKU-A".to_string(), 70)]);
        let splits = split_order([("SKU-A", 100)], &mut available, &mut HashMap::new());
        assert_eq!(splits, [split(70, 30, 0)]);
        assert_eq!(available["SKU-A"], 0);
    }

    #[test]
    fn lines_of_one_sku_share_its_stock_in_line_order() {
        let mut available = HashMap::from([("A".to_string(), 5)]);
        let splits = split_order(
            [("A", 3), ("B", 2), ("A", 4)],
            &mut available,
            &mut HashMap::new(),
        );
        assert_eq!(splits, [split(3, 0, 0), split(0, 2, 0), split(2, 2, 0)]);
    }

    #[test]
    fn given_a_sku_that_takes_no_backorders_then_its_shortfall_is_cancelled_at_once() {
        let mut available = HashMap::from([("A".to_string(), 4)]);
        let mut room = HashMap::from([("A".to_string(), Room::Limited(0))]);
        let splits = split_order([("A", 10)], &mut available, &mut room);
        assert_eq!(splits, [split(4, 0, 6)]);
    }

    #[test]
    fn given_a_backorder_limit_then_lines_share_the_room_left_and_the_rest_is_cancelled() {
        let mut room = HashMap::from([("A".to_string(), Room::Limited(5))]);
        let splits = split_order([("A", 3), ("A", 4)], &mut HashMap::new(), &mut room);
        assert_eq!(splits, [split(0, 3, 0), split(0, 2, 2)]);
        assert_eq!(room["A"], Room::Limited(0));
    }

    #[test]
    fn given_backorders_of_20_and_25_when_30_arrive_then_the_first_is_filled_and_the_second_gets_10()
     {
        let fills = fill_queue(
            30,
            &[queued("SO-1", 20), queued("SO-2", 25), queued("SO-3", 5)],
        );
        assert_eq!(
            fills,
            [
                Fill {
                    order_id: "SO-1".into(),
                    line_no: 1,
                    quantity: 20,
                    position: 1
                },
                Fill {
                    order_id: "SO-2".into(),
                    line_no: 1,
                    quantity: 10,
                    position: 2
                },
            ]
        );
    }

    #[test]
    fn status_follows_the_lines() {
        let status = |l: LineUnits| order_status(&[l], false);
        assert_eq!(status(line(100, 70, 30, 0, 0)), Status::PartiallyAllocated);
        assert_eq!(status(line(100, 0, 100, 0, 0)), Status::Backordered);
        assert_eq!(status(line(100, 100, 0, 0, 0)), Status::Allocated);
        assert_eq!(status(line(100, 30, 0, 70, 0)), Status::PartiallyShipped);
        assert_eq!(status(line(100, 0, 30, 70, 0)), Status::PartiallyShipped);
        assert_eq!(status(line(100, 0, 0, 100, 0)), Status::Completed);
        assert_eq!(status(line(100, 0, 0, 90, 10)), Status::Completed);
        assert_eq!(status(line(100, 0, 0, 0, 100)), Status::Cancelled);
        assert_eq!(order_status(&[], false), Status::Open);
        assert_eq!(
            order_status(&[line(100, 0, 100, 0, 0)], true),
            Status::Preordered
        );
        assert_eq!(
            order_status(&[line(100, 70, 30, 0, 0)], true),
            Status::PartiallyAllocated
        );
    }

    #[test]
    fn shipments_must_stay_within_what_was_released_to_the_warehouse() {
        let lines = HashMap::from([(
            1,
            Shippable {
                allocated: 70,
                released: 50,
            },
        )]);
        assert_eq!(check_shipment(&lines, &[(1, 50)]), Ok(()));
        assert_eq!(
            check_shipment(&lines, &[(1, 51)]),
            Err(ShipmentError::MoreThanReleased {
                line: 1,
                quantity: 51,
                released: 50,
                held: 20
            })
        );
        assert_eq!(
            check_shipment(&lines, &[(2, 1)]),
            Err(ShipmentError::UnknownLine(2))
        );
        assert_eq!(
            check_shipment(&lines, &[(1, 1), (1, 1)]),
            Err(ShipmentError::DuplicateLine(1))
        );
        assert_eq!(
            check_shipment(&lines, &[(1, 0)]),
            Err(ShipmentError::NotPositive {
                line: 1,
                quantity: 0
            })
        );
        assert_eq!(check_shipment(&lines, &[]), Err(ShipmentError::NoLines));
    }

    #[test]
    fn a_cancellation_takes_backordered_units_before_allocated_ones() {
        let lines = BTreeMap::from([(1, line(100, 30, 50, 20, 0)), (2, line(10, 10, 0, 0, 0))]);
        let cancel = |line_no, from_backordered, from_allocated| Cancel {
            line_no,
            from_backordered,
            from_allocated,
        };
        assert_eq!(plan_cancel(&lines, &[(1, 60)]), Ok(vec![cancel(1, 50, 10)]));
        assert_eq!(
            plan_cancel(&lines, &[]),
            Ok(vec![cancel(1, 50, 30), cancel(2, 0, 10)])
        );
        assert_eq!(plan_cancel(&lines, &[(2, 0)]), Ok(vec![cancel(2, 0, 10)]));
    }

    #[test]
    fn shipped_units_cannot_be_cancelled_and_the_refusal_says_so() {
        let lines = BTreeMap::from([(1, line(100, 30, 0, 60, 10))]);
        let error = plan_cancel(&lines, &[(1, 40)]).unwrap_err();
        assert_eq!(
            error,
            CancelError::MoreThanOutstanding {
                line: 1,
                quantity: 40,
                outstanding: 30,
                shipped: 60,
                cancelled: 10
            }
        );
        assert!(
            error
                .to_string()
                .contains("60 shipped, which cannot be cancelled")
        );
        let done = BTreeMap::from([(1, line(100, 0, 0, 90, 10))]);
        assert_eq!(
            plan_cancel(&done, &[]),
            Err(CancelError::NothingOutstanding {
                shipped: 90,
                cancelled: 10
            })
        );
        assert_eq!(
            plan_cancel(&lines, &[(3, 1)]),
            Err(CancelError::UnknownLine(3))
        );
        assert_eq!(
            plan_cancel(&lines, &[(1, -1)]),
            Err(CancelError::Negative {
                line: 1,
                quantity: -1
            })
        );
        assert_eq!(
            plan_cancel(&lines, &[(1, 1), (1, 2)]),
            Err(CancelError::DuplicateLine(1))
        );
    }

    #[test]
    fn a_ship_complete_order_releases_nothing_while_any_line_waits() {
        let waiting = [line(10, 10, 0, 0, 0), line(5, 2, 3, 0, 0)];
        assert_eq!(releasable(true, &waiting), [0, 0]);
        assert_eq!(releasable(false, &waiting), [10, 2]);
        let complete = [line(10, 10, 0, 0, 0), line(5, 2, 0, 0, 3)];
        assert_eq!(releasable(true, &complete), [10, 2]);
    }

    fn view(units: LineUnits, released: i64) -> LineView {
        LineView {
            units,
            released,
            preorder: false,
        }
    }

    #[test]
    fn a_new_order_that_waits_in_part_is_one_backorder_notice() {
        let before = [LineView::default(), LineView::default()];
        let after = [
            view(line(100, 70, 30, 0, 0), 70),
            view(line(5, 5, 0, 0, 0), 5),
        ];
        assert_eq!(
            notices(&before, &after),
            [(Notice::Backordered, vec![30, 0])]
        );
    }

    #[test]
    fn notices_name_the_units_each_change_is_about() {
        let waiting = view(line(100, 70, 30, 0, 0), 70);
        let filled = view(line(100, 100, 0, 0, 0), 100);
        assert_eq!(
            notices(&[waiting], &[filled]),
            [(Notice::ReadyToShip, vec![30])]
        );
        let part_shipped = view(line(100, 60, 0, 40, 0), 60);
        assert_eq!(
            notices(&[filled], &[part_shipped]),
            [(Notice::Shipped, vec![40])]
        );
        let done = view(line(100, 0, 0, 90, 10), 0);
        assert_eq!(
            notices(&[part_shipped], &[done]),
            [(Notice::Cancelled, vec![10]), (Notice::Completed, vec![50])]
        );
        let taken_back = view(line(100, 80, 20, 0, 0), 80);
        assert_eq!(
            notices(&[filled], &[taken_back]),
            [(Notice::Backordered, vec![20])]
        );
        let held = view(line(100, 100, 0, 0, 0), 0);
        assert_eq!(notices(&[waiting], &[held]), []);
        let preorder = LineView {
            preorder: true,
            ..view(line(10, 0, 10, 0, 0), 0)
        };
        assert_eq!(
            notices(&[LineView::default()], &[preorder]),
            [(Notice::Preordered, vec![10])]
        );
    }

    #[test]
    fn shortage_counts_only_what_nothing_covers() {
        assert_eq!(shortage(30, 0, 0), 30);
        assert_eq!(shortage(30, 10, 5), 15);
        assert_eq!(shortage(30, 40, 0), 0);
        assert_eq!(shortage(30, -5, 0), 30);
    }

    proptest! {
        #[test]
        fn a_split_neither_creates_nor_loses_units(
            stock in 0i64..200,
            limit in proptest::option::of(0i64..150),
            lines in proptest::collection::vec((0usize..3, 1i64..100), 1..8),
        ) {
            let skus = ["A", "B", "C"];
            let mut available: HashMap<String, i64> = skus.iter().map(|s| (s.to_string(), stock)).collect();
            let mut room: HashMap<String, Room> = limit
                .map(|l| HashMap::from([("B".to_string(), Room::Limited(l))]))
                .unwrap_or_default();
            let splits = split_order(lines.iter().map(|(s, q)| (skus[*s], *q)), &mut available, &mut room);
            for ((_, quantity), s) in lines.iter().zip(&splits) {
                prop_assert_eq!(s.allocated + s.backordered + s.cancelled, *quantity);
                prop_assert!(s.allocated >= 0 && s.backordered >= 0 && s.cancelled >= 0);
            }
            for sku in skus {
                let of_sku = || lines.iter().zip(&splits).filter(|((s, _), _)| skus[*s] == sku);
                let taken: i64 = of_sku().map(|(_, s)| s.allocated).sum();
                prop_assert_eq!(available[sku] + taken, stock);
                prop_assert!(available[sku] >= 0);
                // Nothing waits or is cancelled while stock of its SKU is left.
                let short = of_sku().any(|(_, x)| x.backordered + x.cancelled > 0);
                prop_assert!(!short || available[sku] == 0);
                let backordered: i64 = of_sku().map(|(_, s)| s.backordered).sum();
                let cancelled: i64 = of_sku().map(|(_, s)| s.cancelled).sum();
                match (sku, limit) {
                    ("B", Some(l)) => {
                        prop_assert!(backordered <= l);
                        // Cancelled only once the room is used up.
                        prop_assert!(cancelled == 0 || backordered == l);
                    }
                    _ => prop_assert_eq!(cancelled, 0),
                }
            }
        }

        #[test]
        fn a_fill_serves_the_queue_in_order_and_gives_out_at_most_what_arrived(
            available in 0i64..500,
            queue in proptest::collection::vec(1i64..100, 0..20),
        ) {
            let queue: Vec<Queued> = queue.iter().enumerate().map(|(i, q)| queued(&format!("SO-{i:02}"), *q)).collect();
            let fills = fill_queue(available, &queue);
            let given: i64 = fills.iter().map(|f| f.quantity).sum();
            let wanted: i64 = queue.iter().map(|w| w.units).sum();
            prop_assert_eq!(given, available.min(wanted));
            for (i, fill) in fills.iter().enumerate() {
                prop_assert_eq!(fill.position, i + 1);
                prop_assert!(fill.quantity <= queue[i].units);
                // Only the last line served may be served in part.
                if i + 1 < fills.len() {
                    prop_assert_eq!(fill.quantity, queue[i].units);
                }
            }
        }

        #[test]
        fn a_planned_cancellation_keeps_every_line_adding_up(
            lines in proptest::collection::vec((0i64..20, 0i64..20, 0i64..20, 0i64..20), 1..5),
            requested in proptest::collection::vec((1i32..6, 0i64..40), 0..4),
        ) {
            let lines: BTreeMap<i32, LineUnits> = lines
                .iter()
                .enumerate()
                .filter(|(_, (a, b, s, c))| a + b + s + c > 0)
                .map(|(i, (a, b, s, c))| (i as i32 + 1, line(a + b + s + c, *a, *b, *s, *c)))
                .collect();
            if let Ok(plan) = plan_cancel(&lines, &requested) {
                prop_assert!(!plan.is_empty());
                for cancel in plan {
                    let before = lines[&cancel.line_no];
                    prop_assert!(cancel.from_backordered >= 0 && cancel.from_allocated >= 0);
                    prop_assert!(cancel.from_backordered <= before.backordered);
                    prop_assert!(cancel.from_allocated <= before.allocated);
                    // Allocated units are only cancelled once no backordered unit is left.
                    prop_assert!(cancel.from_allocated == 0 || cancel.from_backordered == before.backordered);
                }
            }
        }
    }
}
