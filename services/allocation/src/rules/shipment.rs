//! Booking a shipment: every unit the warehouse confirms must have been released to it and not yet shipped.

use std::collections::HashMap;

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
    #[error(
        "line {line}: {quantity} shipped but only {released} released to the warehouse and not yet shipped \
         ({held} more held for a ship-complete order)"
    )]
    MoreThanReleased {
        line: i32,
        quantity: i64,
        released: i64,
        held: i64,
    },
}

/// A line's allocated units, and how many of them the WMS was told to pick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shippable {
    pub allocated: i64,
    pub released: i64,
}

/// Checks a shipment against the order's lines: every unit shipped must have been released to the WMS and not
/// yet shipped.
pub fn check_shipment(
    lines: &HashMap<i32, Shippable>,
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
        if quantity > units.released {
            return Err(ShipmentError::MoreThanReleased {
                line,
                quantity,
                released: units.released,
                held: units.allocated - units.released,
            });
        }
    }
    Ok(())
}
