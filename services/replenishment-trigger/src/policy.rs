//! When to ask purchasing for more, and how much. Pure, no I/O.
//!
//! A `ReorderNeeded` carries the SKU's whole shortage at that moment (backordered units not covered by stock
//! or open supply), not a change. We remember per SKU how much we asked for and is not covered yet
//! ("outstanding") and ask only for the part of the shortage beyond it, so the same shortage is never
//! requested twice.

use backorder_proto::v1::ReorderNeeded;

/// What to do about one shortage report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Units to request now; 0 for none.
    pub request: i64,
    /// The outstanding quantity to remember afterwards.
    pub outstanding: i64,
}

/// `shortage`: the SKU's current shortage; `outstanding`: what was requested before and not covered yet.
///
/// A shortage smaller than the outstanding quantity means stock or supply arrived and covered part of it
/// (a purchase order placed for our request counts as open supply and so lowers the shortage), so the
/// outstanding quantity first drops to the shortage. What the shortage then exceeds it by is requested.
pub fn decide(shortage: i64, outstanding: i64) -> Decision {
    let still_outstanding = outstanding.clamp(0, shortage.max(0));
    if shortage > still_outstanding {
        Decision {
            request: shortage - still_outstanding,
            outstanding: shortage,
        }
    } else {
        Decision {
            request: 0,
            outstanding: still_outstanding,
        }
    }
}

/// Why a purchase request was made, in words a buyer can act on.
pub fn reason(event: &ReorderNeeded, decision: &Decision) -> String {
    let already = decision.outstanding - decision.request;
    format!(
        "{}: {} backordered, {} not covered by stock ({} on hand) or open supply ({} inbound); \
         {} already requested, so {} more {} needed.",
        event.sku,
        units(event.backordered),
        event.shortage,
        event.on_hand,
        event.inbound,
        already,
        decision.request,
        if decision.request == 1 { "is" } else { "are" },
    )
}

fn units(n: i64) -> String {
    if n == 1 {
        "1 unit".to_string()
    } else {
        format!("{n} units")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        // Nothing requested yet: ask for the whole shortage.
        assert_eq!(
            decide(30, 0),
            Decision {
                request: 30,
                outstanding: 30
            }
        );
        // More backorders came in: ask for the difference only.
        assert_eq!(
            decide(50, 30),
            Decision {
                request: 20,
                outstanding: 50
            }
        );
        // Same shortage again: nothing.
        assert_eq!(
            decide(50, 50),
            Decision {
                request: 0,
                outstanding: 50
            }
        );
        // Supply covered 20 of it: remember the rest, ask nothing.
        assert_eq!(
            decide(30, 50),
            Decision {
                request: 0,
                outstanding: 30
            }
        );
        // Fully covered, then a new shortage of 10: ask for 10.
        assert_eq!(
            decide(0, 30),
            Decision {
                request: 0,
                outstanding: 0
            }
        );
        assert_eq!(
            decide(10, 0),
            Decision {
                request: 10,
                outstanding: 10
            }
        );
        // Nonsense in the store does not turn into requests.
        assert_eq!(
            decide(-5, 20),
            Decision {
                request: 0,
                outstanding: 0
            }
        );
        assert_eq!(
            decide(10, -7),
            Decision {
                request: 10,
                outstanding: 10
            }
        );
    }

    #[test]
    fn the_reason_names_the_numbers() {
        let event = ReorderNeeded {
            sku: "SKU-A".into(),
            shortage: 30,
            backordered: 40,
            on_hand: 4,
            inbound: 6,
            ..Default::default()
        };
        assert_eq!(
            reason(&event, &decide(30, 10)),
            "SKU-A: 40 units backordered, 30 not covered by stock (4 on hand) or open supply (6 inbound); \
             10 already requested, so 20 more are needed."
        );
    }

    proptest! {
        #[test]
        fn never_requests_what_is_already_outstanding(outstanding in 0i64..1_000_000, below in 0i64..2_000_000) {
            let shortage = outstanding - below;
            prop_assert_eq!(decide(shortage, outstanding).request, 0);
        }

        #[test]
        fn outstanding_becomes_the_larger_of_shortage_and_what_stays_requested(
            shortage in -1_000_000i64..1_000_000,
            outstanding in -1_000_000i64..1_000_000,
        ) {
            let decision = decide(shortage, outstanding);
            let still_outstanding = outstanding.max(0).min(shortage.max(0));
            prop_assert_eq!(decision.outstanding, shortage.max(still_outstanding));
            prop_assert!(decision.request >= 0);
            prop_assert_eq!(decision.request, (shortage - still_outstanding).max(0));
        }

        #[test]
        fn any_numbers_get_an_answer(shortage in any::<i64>(), outstanding in any::<i64>()) {
            let decision = decide(shortage, outstanding);
            prop_assert!(decision.request >= 0 && decision.outstanding >= 0);
        }

        /// Over any run of shortage reports the requests add up to no more than the increases of the
        /// shortage (what was really needed), and to at least the last shortage (nothing is left unasked).
        #[test]
        fn requests_never_exceed_the_increases(shortages in proptest::collection::vec(0i64..10_000, 0..50)) {
            let (mut outstanding, mut requested, mut increases, mut previous) = (0, 0, 0, 0);
            for &shortage in &shortages {
                let decision = decide(shortage, outstanding);
                requested += decision.request;
                increases += (shortage - previous).max(0);
                outstanding = decision.outstanding;
                previous = shortage;
            }
            prop_assert!(requested <= increases, "requested {} for increases of {}", requested, increases);
            prop_assert!(requested >= previous);
            prop_assert_eq!(outstanding, previous);
        }

        /// A redelivered event (the same shortage right after itself) asks for nothing.
        #[test]
        fn replaying_an_event_requests_nothing(shortage in any::<i64>(), outstanding in any::<i64>()) {
            let first = decide(shortage, outstanding);
            let again = decide(shortage, first.outstanding);
            prop_assert_eq!(again, Decision { request: 0, outstanding: first.outstanding });
        }
    }
}
