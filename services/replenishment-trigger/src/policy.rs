//! What to order for a SKU, and how much. Pure, no I/O.
//!
//! A SKU's stock position counts what it has and what is coming against what customers wait for: free stock
//! plus open supply plus what was requested and not answered yet, less the backordered units. A negative
//! position is the shortage nobody has asked for yet. The reorder rule turns the position into a quantity,
//! which is then brought to the supplier's terms (minimum order quantity, pack size).
//!
//! Every sum saturates: within the limits (sizes and levels of at most `MAX_QUANTITY`) none comes near
//! `i64::MAX`, and outside them a wrong number is no reason to panic.

use backorder_runtime::limits::{self, Check, MAX_QUANTITY};
use serde::{Deserialize, Serialize};

/// How a SKU is reordered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub supplier_id: String,
    pub lead_time_days: u32,
    /// Order in multiples of this many units (at least 1).
    pub pack_size: i64,
    /// Order at least this many units (at least 1).
    pub min_order_quantity: i64,
    pub rule: Rule,
    /// Units kept on top of what the rule asks for.
    pub safety_stock: i64,
    /// A shortage of at least this many units is requested at once; 0: never at once.
    pub urgent_shortage: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Rule {
    /// Order what the backorders are short (plus safety stock).
    Cover,
    /// Order up to `max` (plus safety stock) once the position falls below `min` (plus safety stock).
    MinMax { min: i64, max: i64 },
}

impl Policy {
    /// Cover the shortage, from `supplier_id`, with no pack size, minimum, safety stock or urgent threshold:
    /// the built-in default policy.
    pub fn cover(supplier_id: &str, lead_time_days: u32) -> Self {
        Self {
            supplier_id: supplier_id.to_string(),
            lead_time_days,
            pack_size: 1,
            min_order_quantity: 1,
            rule: Rule::Cover,
            safety_stock: 0,
            urgent_shortage: 0,
        }
    }

    /// The position below which an order is placed, and the position an order brings the SKU up to.
    fn levels(&self) -> (i64, i64) {
        let safety = self.safety_stock.max(0);
        match self.rule {
            Rule::Cover => (safety, safety),
            Rule::MinMax { min, max } => {
                let min = min.max(0);
                (
                    min.saturating_add(safety),
                    max.max(min).saturating_add(safety),
                )
            }
        }
    }

    /// The units to order at `position`; 0 when the position is at or above the reorder point. At most
    /// [`line_cap`] (a line is a PO line of at most `MAX_QUANTITY`): a need beyond it is asked for again by the
    /// next report, as what was requested does not cover it.
    pub fn order_quantity(&self, position: i64) -> i64 {
        let (reorder_point, target) = self.levels();
        if position >= reorder_point {
            return 0;
        }
        let needed = target.saturating_sub(position);
        let pack = self.pack_size.max(1);
        round_up(needed.max(self.min_order_quantity), pack).min(line_cap(pack))
    }

    /// The rule in a buyer's words, e.g. "cover the shortage, pack 12, MOQ 48".
    pub fn describe(&self) -> String {
        let mut words = match self.rule {
            Rule::Cover => "cover the shortage".to_string(),
            Rule::MinMax { min, max } => format!("order up to {max} below {min}"),
        };
        if self.safety_stock > 0 {
            words.push_str(&format!(" + {} safety stock", self.safety_stock));
        }
        if self.pack_size > 1 {
            words.push_str(&format!(", pack {}", self.pack_size));
        }
        if self.min_order_quantity > 1 {
            words.push_str(&format!(", MOQ {}", self.min_order_quantity));
        }
        words
    }

    /// Problems that make the policy unusable, by field name, value and limit (`backorder_runtime::limits`);
    /// empty when it is fine.
    pub fn problems(&self) -> Vec<String> {
        let mut check = Check::new();
        check.id("supplier", &self.supplier_id);
        if self.lead_time_days > crate::MAX_LEAD_TIME_DAYS {
            check.fail(
                "lead_time_days",
                format!(
                    "{} days is outside 0..={}",
                    self.lead_time_days,
                    limits::MAX_LEAD_TIME_DAYS
                ),
            );
        }
        check.quantity("pack_size", self.pack_size, 1);
        check.quantity("min_order_quantity", self.min_order_quantity, 1);
        check.quantity("safety_stock", self.safety_stock, 0);
        check.quantity("urgent_shortage", self.urgent_shortage, 0);
        if let Rule::MinMax { min, max } = self.rule {
            check.quantity("min", min, 0);
            check.quantity("max", max, 0);
            if max < min {
                check.fail("max", format!("{max} is below min {min}"));
            }
        }
        check.violations.iter().map(ToString::to_string).collect()
    }
}

/// The most one line asks for: the whole packs of `pack` within `MAX_QUANTITY` (one pack if it is larger).
pub fn line_cap(pack: i64) -> i64 {
    let pack = pack.max(1);
    (MAX_QUANTITY / pack).max(1).saturating_mul(pack)
}

/// `quantity` rounded up to a multiple of `pack` (saturating: absurd numbers do not wrap).
pub fn round_up(quantity: i64, pack: i64) -> i64 {
    let pack = pack.max(1);
    let quantity = quantity.max(0);
    match quantity % pack {
        0 => quantity,
        rest => quantity.saturating_add(pack - rest),
    }
}

/// The stock position: free stock and everything coming, less what customers wait for.
pub fn position(available: i64, inbound: i64, requested: i64, backordered: i64) -> i64 {
    available
        .max(0)
        .saturating_add(inbound.max(0))
        .saturating_add(requested.max(0))
        .saturating_sub(backordered.max(0))
}

/// A policy as one source gives it: every field may be missing, and the missing ones come from the policy
/// below it (file entry over `SkuUpserted` over the default policy).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partial {
    #[serde(alias = "supplier_id")]
    pub supplier: Option<String>,
    pub lead_time_days: Option<u32>,
    pub pack_size: Option<i64>,
    #[serde(alias = "moq")]
    pub min_order_quantity: Option<i64>,
    pub rule: Option<RuleName>,
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub safety_stock: Option<i64>,
    pub urgent_shortage: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleName {
    Cover,
    MinMax,
}

impl Partial {
    /// `self` over `below`: each field `self` gives replaces `below`'s.
    pub fn over(&self, below: &Policy) -> Policy {
        let (below_min, below_max) = match below.rule {
            Rule::MinMax { min, max } => (min, max),
            Rule::Cover => (0, 0),
        };
        let rule = match self.rule.unwrap_or(match below.rule {
            Rule::Cover => RuleName::Cover,
            Rule::MinMax { .. } => RuleName::MinMax,
        }) {
            RuleName::Cover => Rule::Cover,
            RuleName::MinMax => Rule::MinMax {
                min: self.min.unwrap_or(below_min),
                max: self.max.unwrap_or(below_max),
            },
        };
        Policy {
            supplier_id: self
                .supplier
                .clone()
                .unwrap_or_else(|| below.supplier_id.clone()),
            lead_time_days: self.lead_time_days.unwrap_or(below.lead_time_days),
            pack_size: self.pack_size.unwrap_or(below.pack_size),
            min_order_quantity: self.min_order_quantity.unwrap_or(below.min_order_quantity),
            rule,
            safety_stock: self.safety_stock.unwrap_or(below.safety_stock),
            urgent_shortage: self.urgent_shortage.unwrap_or(below.urgent_shortage),
        }
    }
}

/// Where a SKU's policy came from, for the request: a buyer checks a line made by the default policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Default,
    Configured,
}

/// The policy of a SKU: the file's entry over the product master's (`SkuUpserted`) over the default.
pub fn resolve(
    default: &Policy,
    upserted: Option<&Partial>,
    file: Option<&Partial>,
) -> (Policy, Origin) {
    let mut policy = default.clone();
    if let Some(upserted) = upserted {
        policy = upserted.over(&policy);
    }
    if let Some(file) = file {
        policy = file.over(&policy);
    }
    let origin = if upserted.is_none() && file.is_none() {
        Origin::Default
    } else {
        Origin::Configured
    };
    (policy, origin)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cover() -> Policy {
        Policy::cover("ACME", 14)
    }

    #[test]
    fn cover_orders_the_shortage() {
        let policy = cover();
        assert_eq!(policy.order_quantity(-30), 30);
        assert_eq!(policy.order_quantity(0), 0);
        assert_eq!(policy.order_quantity(5), 0);
    }

    #[test]
    fn pack_size_and_moq_round_up() {
        let policy = Policy {
            pack_size: 12,
            min_order_quantity: 48,
            ..cover()
        };
        // 5 short: the MOQ of 48, already 4 packs.
        assert_eq!(policy.order_quantity(-5), 48);
        // 50 short: 5 packs.
        assert_eq!(policy.order_quantity(-50), 60);
        // A MOQ that is not a multiple of the pack: the next full pack.
        let policy = Policy {
            pack_size: 10,
            min_order_quantity: 25,
            ..cover()
        };
        assert_eq!(policy.order_quantity(-1), 30);
    }

    #[test]
    fn safety_stock_is_kept_on_top() {
        let policy = Policy {
            safety_stock: 10,
            ..cover()
        };
        assert_eq!(policy.order_quantity(-30), 40);
        // Nothing short but below the safety stock: top it up.
        assert_eq!(policy.order_quantity(4), 6);
        assert_eq!(policy.order_quantity(10), 0);
    }

    #[test]
    fn min_max_orders_up_to_max_below_min() {
        let policy = Policy {
            rule: Rule::MinMax { min: 20, max: 100 },
            ..cover()
        };
        assert_eq!(policy.order_quantity(-30), 130);
        assert_eq!(policy.order_quantity(19), 81);
        assert_eq!(policy.order_quantity(20), 0);
        let with_safety = Policy {
            safety_stock: 5,
            ..policy
        };
        assert_eq!(with_safety.order_quantity(24), 81);
        assert_eq!(with_safety.order_quantity(25), 0);
    }

    #[test]
    fn the_position_counts_what_is_coming() {
        // 40 waiting, 4 free, 6 on order, 10 requested: 20 short.
        assert_eq!(position(4, 6, 10, 40), -20);
        assert_eq!(position(-3, 0, 0, 5), -5);
    }

    #[test]
    fn file_over_master_over_default() {
        let default = Policy {
            supplier_id: "unassigned".into(),
            ..cover()
        };
        let master = Partial {
            supplier: Some("ACME".into()),
            lead_time_days: Some(21),
            pack_size: Some(6),
            ..Default::default()
        };
        let file = Partial {
            pack_size: Some(12),
            rule: Some(RuleName::MinMax),
            max: Some(50),
            ..Default::default()
        };
        assert_eq!(
            resolve(&default, None, None),
            (default.clone(), Origin::Default)
        );
        let (policy, origin) = resolve(&default, Some(&master), Some(&file));
        assert_eq!(origin, Origin::Configured);
        assert_eq!(
            policy,
            Policy {
                supplier_id: "ACME".into(),
                lead_time_days: 21,
                pack_size: 12,
                rule: Rule::MinMax { min: 0, max: 50 },
                ..cover()
            }
        );
    }

    #[test]
    fn problems_are_named() {
        let bad = Policy {
            supplier_id: " ".into(),
            pack_size: 0,
            min_order_quantity: -1,
            rule: Rule::MinMax { min: 10, max: 5 },
            ..cover()
        };
        assert_eq!(
            bad.problems(),
            [
                "supplier: is missing",
                "pack_size: must be positive, got 0",
                "min_order_quantity: must be positive, got -1",
                "max: 5 is below min 10",
            ]
        );
        assert!(cover().problems().is_empty());
        let huge = Policy {
            supplier_id: "S".repeat(129),
            lead_time_days: u32::MAX,
            pack_size: MAX_QUANTITY + 1,
            min_order_quantity: i64::MAX,
            safety_stock: MAX_QUANTITY + 1,
            urgent_shortage: MAX_QUANTITY + 1,
            rule: Rule::MinMax {
                min: MAX_QUANTITY + 1,
                max: i64::MAX,
            },
        };
        let problems = huge.problems();
        let fields: Vec<&str> = problems
            .iter()
            .map(|p| p.split(':').next().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "supplier",
                "lead_time_days",
                "pack_size",
                "min_order_quantity",
                "safety_stock",
                "urgent_shortage",
                "min",
                "max"
            ]
        );
        assert_eq!(
            problems[1],
            "lead_time_days: 4294967295 days is outside 0..=3650"
        );
        assert_eq!(problems[2], "pack_size: 1000000001 is more than 1000000000");
    }

    #[test]
    fn extreme_levels_do_not_overflow() {
        // Before the limits, an upsert could give these: min + safety stock overflowed.
        let policy = Policy {
            safety_stock: i64::MAX,
            rule: Rule::MinMax {
                min: 1,
                max: i64::MAX,
            },
            ..cover()
        };
        assert_eq!(policy.order_quantity(i64::MIN), MAX_QUANTITY);
        assert_eq!(policy.order_quantity(i64::MAX), 0);
    }

    #[test]
    fn a_line_asks_for_whole_packs_of_at_most_max_quantity() {
        assert_eq!(line_cap(1), MAX_QUANTITY);
        assert_eq!(line_cap(7), MAX_QUANTITY / 7 * 7);
        assert_eq!(line_cap(MAX_QUANTITY), MAX_QUANTITY);
        assert_eq!(line_cap(i64::MAX), i64::MAX);
        let policy = Policy {
            pack_size: 7,
            rule: Rule::MinMax {
                min: MAX_QUANTITY,
                max: MAX_QUANTITY,
            },
            safety_stock: MAX_QUANTITY,
            ..cover()
        };
        // 3 * MAX_QUANTITY needed: the most whole packs one line can hold.
        assert_eq!(policy.order_quantity(-MAX_QUANTITY), MAX_QUANTITY / 7 * 7);
    }

    #[test]
    fn descriptions() {
        assert_eq!(cover().describe(), "cover the shortage");
        let policy = Policy {
            pack_size: 12,
            min_order_quantity: 48,
            safety_stock: 5,
            rule: Rule::MinMax { min: 10, max: 100 },
            ..cover()
        };
        assert_eq!(
            policy.describe(),
            "order up to 100 below 10 + 5 safety stock, pack 12, MOQ 48"
        );
    }

    fn any_policy() -> impl Strategy<Value = Policy> {
        (
            1i64..50,
            1i64..200,
            0i64..50,
            prop_oneof![
                Just(Rule::Cover),
                (0i64..100, 0i64..200).prop_map(|(min, extra)| Rule::MinMax {
                    min,
                    max: min + extra
                }),
            ],
        )
            .prop_map(
                |(pack_size, min_order_quantity, safety_stock, rule)| Policy {
                    pack_size,
                    min_order_quantity,
                    safety_stock,
                    rule,
                    ..cover()
                },
            )
    }

    /// Policies anywhere within the limits, the edges included.
    pub(crate) fn bounded_policy() -> impl Strategy<Value = Policy> {
        let size = || prop_oneof![1i64..=100, Just(MAX_QUANTITY), 1i64..=MAX_QUANTITY];
        let level = || prop_oneof![0i64..=100, Just(MAX_QUANTITY), 0i64..=MAX_QUANTITY];
        (
            0u32..=crate::MAX_LEAD_TIME_DAYS,
            size(),
            size(),
            level(),
            level(),
            prop_oneof![
                Just(Rule::Cover),
                (level(), level()).prop_map(|(a, b)| Rule::MinMax {
                    min: a.min(b),
                    max: a.max(b)
                }),
            ],
        )
            .prop_map(
                |(
                    lead_time_days,
                    pack_size,
                    min_order_quantity,
                    safety_stock,
                    urgent_shortage,
                    rule,
                )| {
                    Policy {
                        supplier_id: "ACME".into(),
                        lead_time_days,
                        pack_size,
                        min_order_quantity,
                        rule,
                        safety_stock,
                        urgent_shortage,
                    }
                },
            )
    }

    proptest! {
        /// An order is a whole number of packs, at least the MOQ, brings the position to the target, and
        /// overshoots it by less than one pack beyond what the MOQ forces.
        #[test]
        fn orders_respect_the_terms(policy in any_policy(), position in -100_000i64..1_000) {
            let quantity = policy.order_quantity(position);
            let (reorder_point, target) = policy.levels();
            if position >= reorder_point {
                prop_assert_eq!(quantity, 0);
            } else {
                prop_assert_eq!(quantity % policy.pack_size, 0);
                prop_assert!(quantity >= policy.min_order_quantity);
                prop_assert!(position + quantity >= target);
                let least = (target - position).max(policy.min_order_quantity);
                prop_assert!(quantity < least + policy.pack_size, "{} for {}", quantity, least);
            }
        }

        /// Once ordered, the same position plus the order asks for nothing more: a shortage is covered by
        /// what was requested for it.
        #[test]
        fn an_order_covers_its_own_shortage(policy in any_policy(), position in -100_000i64..1_000) {
            let quantity = policy.order_quantity(position);
            prop_assert_eq!(policy.order_quantity(position + quantity), 0);
        }

        /// More shortage never means a smaller order.
        #[test]
        fn orders_grow_with_the_shortage(policy in any_policy(), position in -100_000i64..1_000, more in 0i64..1_000) {
            prop_assert!(policy.order_quantity(position - more) >= policy.order_quantity(position));
        }

        /// Any policy within the limits and any position (the sums that make it saturate): no panic, and an
        /// order of whole packs, at most MAX_QUANTITY, at least the MOQ unless the cap is below it.
        #[test]
        fn bounded_policies_order_bounded_lines(policy in bounded_policy(), position in any::<i64>()) {
            prop_assert!(policy.problems().is_empty(), "{:?}", policy.problems());
            let quantity = policy.order_quantity(position);
            prop_assert!((0..=MAX_QUANTITY).contains(&quantity), "{}", quantity);
            prop_assert_eq!(quantity % policy.pack_size, 0);
            if quantity > 0 {
                prop_assert!(quantity >= policy.min_order_quantity.min(line_cap(policy.pack_size)));
            }
        }

        #[test]
        fn rounding_never_wraps(quantity in any::<i64>(), pack in any::<i64>()) {
            let rounded = round_up(quantity, pack);
            prop_assert!(rounded >= quantity.max(0));
        }
    }
}
