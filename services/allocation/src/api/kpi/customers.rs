//! The per-customer compliance table: each customer's fill rate, OTIF and open lines, worst first.

use std::collections::BTreeMap;

use backorder_proto::v1::{CustomerCompliance, FillRate, Otif};

/// One row per customer met in any of the figures, worst first (see [`worst_first`]); a customer missing
/// from a figure gets its zero.
pub(super) fn worst_first_compliance(
    fill_by_customer: Vec<(String, FillRate)>,
    otif_by_customer: Vec<(String, Otif)>,
    open_by_customer: Vec<(String, u64, u64, i64)>,
) -> Vec<CustomerCompliance> {
    let mut customers: BTreeMap<String, CustomerCompliance> = BTreeMap::new();
    for (id, fill) in fill_by_customer {
        customers_row(&mut customers, id).fill_rate = Some(fill);
    }
    for (id, otif) in otif_by_customer {
        customers_row(&mut customers, id).otif = Some(otif);
    }
    for (id, open, late, late_units) in open_by_customer {
        let row = customers_row(&mut customers, id);
        (row.open_lines, row.late_lines, row.late_units) = (open, late, late_units);
    }
    let mut customers: Vec<CustomerCompliance> = customers.into_values().collect();
    customers.sort_by(worst_first);
    customers
}

/// The customer's row, made with zero figures when it is the first met.
fn customers_row(
    customers: &mut BTreeMap<String, CustomerCompliance>,
    id: String,
) -> &mut CustomerCompliance {
    customers
        .entry(id.clone())
        .or_insert_with(|| CustomerCompliance {
            customer_id: id,
            otif: Some(Otif::default()),
            fill_rate: Some(FillRate::default()),
            ..Default::default()
        })
}

/// Worst OTIF first; customers without a line due (nothing to judge) after those with one; then most lines
/// late right now, then by id.
fn worst_first(a: &CustomerCompliance, b: &CustomerCompliance) -> std::cmp::Ordering {
    let otif = |c: &CustomerCompliance| c.otif.as_ref().map_or((0, 0.0), |o| (o.lines, o.rate));
    let ((a_lines, a_rate), (b_lines, b_rate)) = (otif(a), otif(b));
    (a_lines == 0)
        .cmp(&(b_lines == 0))
        .then(a_rate.total_cmp(&b_rate))
        .then(b.late_lines.cmp(&a.late_lines))
        .then_with(|| a.customer_id.cmp(&b.customer_id))
}

#[cfg(test)]
mod tests {
    use super::super::rates::otif_of;
    use super::*;

    fn compliance(id: &str, lines: u64, on_time: u64, late: u64) -> CustomerCompliance {
        CustomerCompliance {
            customer_id: id.into(),
            otif: Some(otif_of(lines as i64, on_time as i64)),
            late_lines: late,
            ..Default::default()
        }
    }

    #[test]
    fn customers_sort_worst_otif_first_then_most_late_and_those_with_nothing_due_last() {
        let mut rows = [
            compliance("A-nothing-due", 0, 0, 5),
            compliance("B-perfect", 4, 4, 0),
            compliance("C-half", 2, 1, 0),
            compliance("D-half-late", 4, 2, 3),
            compliance("E-zero", 1, 0, 0),
        ];
        rows.sort_by(worst_first);
        let ids: Vec<&str> = rows.iter().map(|r| r.customer_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "E-zero",
                "D-half-late",
                "C-half",
                "B-perfect",
                "A-nothing-due"
            ]
        );
    }
}
