//! The allocation rules, as pure functions over plain numbers: no I/O, so they are unit- and property-tested
//! on their own and the engine only moves their decisions into the database.

use std::collections::HashMap;

/// How much of a line can be allocated now and how much waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    pub allocated: i64,
    pub backordered: i64,
}

/// Splits the lines of a new order against what is available per SKU, in line order. Lines of the same SKU
/// draw on the same stock; `available` is lowered by what is taken.
pub fn split_order<'a>(
    lines: impl IntoIterator<Item = (&'a str, i64)>,
    available: &mut HashMap<String, i64>,
) -> Vec<Split> {
    lines
        .into_iter()
        .map(|(sku, quantity)| {
            let free = available.get(sku).copied().unwrap_or(0).max(0);
            let allocated = free.min(quantity);
            if allocated > 0 {
                *available.get_mut(sku).expect("free > 0 implies an entry") -= allocated;
            }
            Split {
                allocated,
                backordered: quantity - allocated,
            }
        })
        .collect()
}

/// An open backorder line in its queue; the queue is sorted by priority (higher first), then placed_at,
/// then order id and line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub order_id: String,
    pub line_no: i32,
    pub backordered: i64,
}

/// Units given to one waiting line, and its place in the queue when it got them (for the audit trail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fill {
    pub order_id: String,
    pub line_no: i32,
    pub quantity: i64,
    pub position: usize,
}

/// Gives `available` units to the queue, first in line first, each line at most what it waits for.
pub fn fill_queue(available: i64, queue: &[Waiting]) -> Vec<Fill> {
    let mut left = available.max(0);
    let mut fills = Vec::new();
    for (position, line) in queue.iter().enumerate() {
        if left == 0 {
            break;
        }
        let quantity = left.min(line.backordered);
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
        }
    }
}

pub fn order_status(lines: &[LineUnits]) -> Status {
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
    } else if allocated == 0 {
        Status::Backordered
    } else {
        Status::PartiallyAllocated
    }
}

/// Why a shipment confirmation cannot be booked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShipmentError {
    #[error("shipment has no lines")]
    NoLines,
    #[error("line {0}: the order has no such line")]
    UnknownLine(i32),
    #[error("line {0} appears more than once in the shipment")]
    DuplicateLine(i32),
    #[error("line {line}: quantity must be positive, got {quantity}")]
    NotPositive { line: i32, quantity: i64 },
    #[error("line {line}: {quantity} shipped but only {allocated} allocated and not yet shipped")]
    MoreThanAllocated {
        line: i32,
        quantity: i64,
        allocated: i64,
    },
}

/// Checks a shipment against the order's lines: every unit shipped must be allocated and not yet shipped.
pub fn check_shipment(
    lines: &HashMap<i32, LineUnits>,
    shipment: &[(i32, i64)],
) -> Result<(), ShipmentError> {
    if shipment.is_empty() {
        return Err(ShipmentError::NoLines);
    }
    let mut seen = std::collections::HashSet::new();
    for &(line, quantity) in shipment {
        if !seen.insert(line) {
            return Err(ShipmentError::DuplicateLine(line));
        }
        let units = lines.get(&line).ok_or(ShipmentError::UnknownLine(line))?;
        if quantity <= 0 {
            return Err(ShipmentError::NotPositive { line, quantity });
        }
        if quantity > units.allocated {
            return Err(ShipmentError::MoreThanAllocated {
                line,
                quantity,
                allocated: units.allocated,
            });
        }
    }
    Ok(())
}

/// Backordered units not covered by stock that is free or on its way.
pub fn shortage(backordered: i64, available: i64, inbound: i64) -> i64 {
    (backordered - available.max(0) - inbound.max(0)).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn waiting(order_id: &str, backordered: i64) -> Waiting {
        Waiting {
            order_id: order_id.into(),
            line_no: 1,
            backordered,
        }
    }

    #[test]
    fn given_70_in_stock_when_100_are_ordered_then_70_ship_and_30_wait() {
        let mut available = HashMap::from([("SKU-A".to_string(), 70)]);
        let split = split_order([("SKU-A", 100)], &mut available);
        assert_eq!(
            split,
            [Split {
                allocated: 70,
                backordered: 30
            }]
        );
        assert_eq!(available["SKU-A"], 0);
    }

    #[test]
    fn lines_of_one_sku_share_its_stock_in_line_order() {
        let mut available = HashMap::from([("A".to_string(), 5)]);
        let split = split_order([("A", 3), ("B", 2), ("A", 4)], &mut available);
        assert_eq!(
            split,
            [
                Split {
                    allocated: 3,
                    backordered: 0
                },
                Split {
                    allocated: 0,
                    backordered: 2
                },
                Split {
                    allocated: 2,
                    backordered: 2
                },
            ]
        );
    }

    #[test]
    fn given_backorders_of_20_and_25_when_30_arrive_then_the_first_is_filled_and_the_second_gets_10()
     {
        let fills = fill_queue(
            30,
            &[waiting("SO-1", 20), waiting("SO-2", 25), waiting("SO-3", 5)],
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
        let line = |ordered, allocated, backordered, shipped, cancelled| LineUnits {
            ordered,
            allocated,
            backordered,
            shipped,
            cancelled,
        };
        assert_eq!(
            order_status(&[line(100, 70, 30, 0, 0)]),
            Status::PartiallyAllocated
        );
        assert_eq!(
            order_status(&[line(100, 0, 100, 0, 0)]),
            Status::Backordered
        );
        assert_eq!(order_status(&[line(100, 100, 0, 0, 0)]), Status::Allocated);
        assert_eq!(
            order_status(&[line(100, 30, 0, 70, 0)]),
            Status::PartiallyShipped
        );
        assert_eq!(
            order_status(&[line(100, 0, 30, 70, 0)]),
            Status::PartiallyShipped
        );
        assert_eq!(order_status(&[line(100, 0, 0, 100, 0)]), Status::Completed);
        assert_eq!(order_status(&[line(100, 0, 0, 90, 10)]), Status::Completed);
        assert_eq!(order_status(&[line(100, 0, 0, 0, 100)]), Status::Cancelled);
        assert_eq!(order_status(&[]), Status::Open);
    }

    #[test]
    fn shipments_must_stay_within_what_is_allocated() {
        let lines = HashMap::from([(
            1,
            LineUnits {
                ordered: 100,
                allocated: 70,
                backordered: 30,
                ..Default::default()
            },
        )]);
        assert_eq!(check_shipment(&lines, &[(1, 70)]), Ok(()));
        assert_eq!(
            check_shipment(&lines, &[(1, 71)]),
            Err(ShipmentError::MoreThanAllocated {
                line: 1,
                quantity: 71,
                allocated: 70
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
            lines in proptest::collection::vec((0usize..3, 1i64..100), 1..8),
        ) {
            let skus = ["A", "B", "C"];
            let mut available: HashMap<String, i64> = skus.iter().map(|s| (s.to_string(), stock)).collect();
            let split = split_order(lines.iter().map(|(s, q)| (skus[*s], *q)), &mut available);
            for ((_, quantity), s) in lines.iter().zip(&split) {
                prop_assert_eq!(s.allocated + s.backordered, *quantity);
                prop_assert!(s.allocated >= 0 && s.backordered >= 0);
            }
            for sku in skus {
                let taken: i64 = lines.iter().zip(&split).filter(|((s, _), _)| skus[*s] == sku).map(|(_, s)| s.allocated).sum();
                prop_assert_eq!(available[sku] + taken, stock);
                prop_assert!(available[sku] >= 0);
                // Nothing waits while stock of its SKU is left.
                let waits = lines.iter().zip(&split).any(|((s, _), x)| skus[*s] == sku && x.backordered > 0);
                prop_assert!(!waits || available[sku] == 0);
            }
        }

        #[test]
        fn a_fill_serves_the_queue_in_order_and_gives_out_at_most_what_arrived(
            available in 0i64..500,
            queue in proptest::collection::vec(1i64..100, 0..20),
        ) {
            let queue: Vec<Waiting> = queue.iter().enumerate().map(|(i, q)| waiting(&format!("SO-{i:02}"), *q)).collect();
            let fills = fill_queue(available, &queue);
            let given: i64 = fills.iter().map(|f| f.quantity).sum();
            let wanted: i64 = queue.iter().map(|w| w.backordered).sum();
            prop_assert_eq!(given, available.min(wanted));
            for (i, fill) in fills.iter().enumerate() {
                prop_assert_eq!(fill.position, i + 1);
                prop_assert!(fill.quantity <= queue[i].backordered);
                // Only the last line served may be served in part.
                if i + 1 < fills.len() {
                    prop_assert_eq!(fill.quantity, queue[i].backordered);
                }
            }
        }
    }
}
