//! What a customer is told about a change of their order, from its lines before and after.

use super::LineUnits;

/// A line as the customer sees it: its units, how many of the allocated ones are released to the WMS, and
/// whether it waits as a pre-order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineView {
    pub units: LineUnits,
    pub released: i64,
    pub preorder: bool,
}

/// What a customer is told about a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    Cancelled,
    Backordered,
    Preordered,
    ReadyToShip,
    Shipped,
    Completed,
}

/// The notices one change of an order yields, from its lines before and after (same lines, in the same order;
/// a new order's lines are all zero before), each with the units it is about per line. Units newly released
/// in a change that also backorders are not announced twice: the backorder notice's line totals show them.
pub fn notices(before: &[LineView], after: &[LineView]) -> Vec<(Notice, Vec<i64>)> {
    let rise = |f: &dyn Fn(&LineView) -> i64| -> Vec<i64> {
        before
            .iter()
            .zip(after)
            .map(|(b, a)| (f(a) - f(b)).max(0))
            .collect()
    };
    let only = |units: &[i64], keep: &dyn Fn(&LineView) -> bool| -> Vec<i64> {
        units
            .iter()
            .zip(after)
            .map(|(u, a)| if keep(a) { *u } else { 0 })
            .collect()
    };
    let backordered = rise(&|l| l.units.backordered);
    let mut found = vec![
        (Notice::Cancelled, rise(&|l| l.units.cancelled)),
        (Notice::Backordered, only(&backordered, &|l| !l.preorder)),
        (Notice::Preordered, only(&backordered, &|l| l.preorder)),
    ];
    if found[1..]
        .iter()
        .all(|(_, units)| units.iter().all(|u| *u == 0))
    {
        found.push((Notice::ReadyToShip, rise(&|l| l.released + l.units.shipped)));
    }
    let finished = after.iter().all(|l| l.units.is_finished());
    found.push((
        if finished {
            Notice::Completed
        } else {
            Notice::Shipped
        },
        rise(&|l| l.units.shipped),
    ));
    found.retain(|(_, units)| units.iter().any(|u| *u > 0));
    found
}
