//! The ratios the figures are made of.

use backorder_proto::v1::{FillRate, Otif};

/// `part / whole`, 0 when there is no whole.
fn rate(part: f64, whole: f64) -> f64 {
    if whole == 0.0 { 0.0 } else { part / whole }
}

pub(super) fn fill_rate(lines: i64, filled: i64, units: i64, units_filled: i64) -> FillRate {
    FillRate {
        lines: lines as u64,
        lines_filled: filled as u64,
        line_fill_rate: rate(filled as f64, lines as f64),
        units,
        units_filled,
        unit_fill_rate: rate(units_filled as f64, units as f64),
    }
}

pub(super) fn otif_of(lines: i64, on_time: i64) -> Otif {
    Otif {
        lines: lines as u64,
        lines_on_time: on_time as u64,
        rate: rate(on_time as f64, lines as f64),
    }
}
