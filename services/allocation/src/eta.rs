//! ETA projection: a SKU's backorder queue walked against its open supply, as a pure function.
//!
//! Each line's ETA is the date of the supply that covers its last unit, plus handling. Supply whose date has
//! passed without being received is late: it slips to now plus a grace period. A line no supply covers gets an
//! estimate from the SKU's lead time, kept while it is still ahead (customers are not told a new estimate every
//! day) and never earlier than the last supply. ETAs never fall before now and never decrease along the queue.

use backorder_runtime::limits::add;
use chrono::{DateTime, Duration, Utc};

/// One open purchase-order line of the SKU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Supply {
    /// `<po_id>/<line_no>`, for the audit trail.
    pub id: String,
    pub expected_at: DateTime<Utc>,
    pub open: i64,
}

/// A backorder line in queue order: its waiting units and the ETA it has now, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub units: i64,
    pub current: Option<Eta>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// From receipt to ready to ship.
    pub handling: Duration,
    /// How far an overdue purchase order slips from now.
    pub grace: Duration,
    /// The SKU's lead time, for lines no purchase order covers.
    pub lead_time: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eta {
    pub at: DateTime<Utc>,
    /// From the lead time, not a purchase order.
    pub estimated: bool,
    /// Rests on an overdue purchase order.
    pub late: bool,
    /// Index into the supply passed in: the purchase order line that covers the line's last unit.
    pub source: Option<usize>,
}

/// The date a supply line is counted at, and whether it is late: still open at or after its date.
fn effective(supply: &Supply, now: DateTime<Utc>, settings: &Settings) -> (DateTime<Utc>, bool) {
    if supply.expected_at <= now {
        (add(now, settings.grace), true)
    } else {
        (supply.expected_at, false)
    }
}

/// The open supply lines in the order the projection counts them in: by the date each is counted at (an
/// overdue one at now plus the grace), then by id. Each is `(date counted, late, index into supply)`.
pub fn arrivals(
    now: DateTime<Utc>,
    supply: &[Supply],
    settings: &Settings,
) -> Vec<(DateTime<Utc>, bool, usize)> {
    let mut arrivals: Vec<(DateTime<Utc>, bool, usize)> = supply
        .iter()
        .enumerate()
        .filter(|(_, s)| s.open > 0)
        .map(|(i, s)| {
            let (at, late) = effective(s, now, settings);
            (at, late, i)
        })
        .collect();
    arrivals.sort_by(|a, b| (a.0, &supply[a.2].id).cmp(&(b.0, &supply[b.2].id)));
    arrivals
}

/// The ETA of every waiting line, in queue order.
pub fn project(
    now: DateTime<Utc>,
    queue: &[Waiting],
    supply: &[Supply],
    settings: &Settings,
) -> Vec<Eta> {
    let arrivals = arrivals(now, supply, settings);
    let last_arrival = arrivals.last().map(|a| a.0);

    let mut etas = Vec::with_capacity(queue.len());
    let mut next = 0; // the arrival that will cover the next unit
    let mut covered = 0i64; // units of all arrivals before `next`, plus `next`'s
    let mut needed = 0i64;
    let mut earliest = now; // ETAs never decrease along the queue
    for line in queue {
        needed += line.units.max(0);
        while next < arrivals.len() && covered + supply[arrivals[next].2].open < needed {
            covered += supply[arrivals[next].2].open;
            next += 1;
        }
        let mut eta = if next < arrivals.len() {
            let (at, late, source) = arrivals[next];
            Eta {
                at: add(at, settings.handling),
                estimated: false,
                late,
                source: Some(source),
            }
        } else {
            // Keep an estimate that is still ahead; otherwise a new one from now.
            let fresh = add(add(now, settings.lead_time), settings.handling);
            let at = match &line.current {
                Some(current) if current.estimated && current.at > now => current.at,
                _ => fresh,
            };
            let after_supply = last_arrival.map_or(at, |last| at.max(add(last, settings.handling)));
            Eta {
                at: after_supply,
                estimated: true,
                late: false,
                source: None,
            }
        };
        eta.at = eta.at.max(earliest);
        earliest = eta.at;
        etas.push(eta);
    }
    etas
}

/// When the projection would change by itself, with nothing else happening: the first moment a supply date
/// passes (an on-time purchase order becomes late, a late one slips again) or an estimate falls due.
pub fn next_check(
    now: DateTime<Utc>,
    supply: &[Supply],
    etas: &[Eta],
    settings: &Settings,
) -> Option<DateTime<Utc>> {
    let supply_dates = supply
        .iter()
        .filter(|s| s.open > 0)
        .map(|s| effective(s, now, settings).0);
    let estimates = etas.iter().filter(|e| e.estimated).map(|e| e.at);
    supply_dates.chain(estimates).filter(|at| *at > now).min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn day(n: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap() + Duration::days(n)
    }

    fn settings() -> Settings {
        Settings {
            handling: Duration::days(1),
            grace: Duration::days(3),
            lead_time: Duration::days(14),
        }
    }

    fn po(id: &str, expected: i64, open: i64) -> Supply {
        Supply {
            id: id.into(),
            expected_at: day(expected),
            open,
        }
    }

    fn waiting(units: &[i64]) -> Vec<Waiting> {
        units
            .iter()
            .map(|u| Waiting {
                units: *u,
                current: None,
            })
            .collect()
    }

    fn dates(etas: &[Eta]) -> Vec<(i64, bool, bool)> {
        etas.iter()
            .map(|e| ((e.at - day(0)).num_days(), e.estimated, e.late))
            .collect()
    }

    #[test]
    fn each_line_gets_the_date_of_the_supply_that_covers_its_last_unit_plus_handling() {
        let supply = [po("PO-2/1", 20, 30), po("PO-1/1", 10, 25)];
        let etas = project(day(0), &waiting(&[20, 10, 20, 10]), &supply, &settings());
        // 25 arrive on day 10, 30 on day 20: units 1-20 and 21-30 need day 10 and day 20; 31-50 day 20; the
        // last 5 of 51-60 no purchase order covers: an estimate from the lead time, but not before day 21.
        assert_eq!(
            dates(&etas),
            [
                (11, false, false),
                (21, false, false),
                (21, false, false),
                (21, true, false)
            ]
        );
        assert_eq!(etas[0].source, Some(1));
    }

    #[test]
    fn overdue_supply_slips_from_now_and_is_flagged_late() {
        let etas = project(day(5), &waiting(&[10]), &[po("PO-1/1", 3, 10)], &settings());
        assert_eq!(dates(&etas), [(9, false, true)]);
    }

    #[test]
    fn an_estimate_still_ahead_is_kept_and_one_that_fell_due_is_renewed() {
        let kept = Eta {
            at: day(9),
            estimated: true,
            late: false,
            source: None,
        };
        let queue = [Waiting {
            units: 5,
            current: Some(kept.clone()),
        }];
        assert_eq!(project(day(2), &queue, &[], &settings())[0].at, day(9));
        assert_eq!(project(day(9), &queue, &[], &settings())[0].at, day(24));
    }

    #[test]
    fn the_next_check_is_when_a_supply_date_passes_or_an_estimate_falls_due() {
        let supply = [po("PO-1/1", 10, 5)];
        let etas = project(day(0), &waiting(&[5, 5]), &supply, &settings());
        assert_eq!(
            next_check(day(0), &supply, &etas, &settings()),
            Some(day(10))
        );
        // Once overdue, it is checked again when the slipped date comes.
        assert_eq!(
            next_check(day(12), &supply, &[], &settings()),
            Some(day(15))
        );
        assert_eq!(next_check(day(12), &[], &[], &settings()), None);
    }

    /// Brute force: day by day, each purchase order arrives on its (effective) date and fills the queue front
    /// to back; a line's ETA is the day its last unit arrived plus handling.
    fn simulate(
        now: DateTime<Utc>,
        queue: &[i64],
        supply: &[Supply],
    ) -> Vec<Option<DateTime<Utc>>> {
        let mut left: Vec<i64> = queue.to_vec();
        let mut done = vec![None; queue.len()];
        let mut arrivals: Vec<(DateTime<Utc>, &str, i64)> = supply
            .iter()
            .filter(|s| s.open > 0)
            .map(|s| (effective(s, now, &settings()).0, s.id.as_str(), s.open))
            .collect();
        arrivals.sort();
        for (at, _, mut units) in arrivals {
            for (i, l) in left.iter_mut().enumerate() {
                let take = units.min(*l);
                *l -= take;
                units -= take;
                if *l == 0 && done[i].is_none() {
                    done[i] = Some(at + settings().handling);
                }
            }
        }
        done
    }

    proptest! {
        #[test]
        fn projections_are_monotone_never_past_and_match_a_day_by_day_simulation(
            now in 0i64..30,
            queue in proptest::collection::vec(1i64..20, 0..30),
            supply in proptest::collection::vec((0i64..60, 0i64..40), 0..8),
        ) {
            let supply: Vec<Supply> = supply
                .iter()
                .enumerate()
                .map(|(i, (d, q))| po(&format!("PO-{i:02}/1"), *d, *q))
                .collect();
            let now = day(now);
            let etas = project(now, &waiting(&queue), &supply, &settings());
            prop_assert_eq!(etas.len(), queue.len());
            for pair in etas.windows(2) {
                prop_assert!(pair[0].at <= pair[1].at, "monotone in queue position");
            }
            for (eta, simulated) in etas.iter().zip(simulate(now, &queue, &supply)) {
                prop_assert!(eta.at > now, "never before now");
                match simulated {
                    Some(at) => prop_assert_eq!((eta.at, eta.estimated), (at, false)),
                    None => prop_assert!(eta.estimated),
                }
            }
        }
    }
}
