//! replenishment-trigger's reorder policy file (`BO_REORDER_POLICY_FILE`, TOML): `PolicyFile::parse`, then
//! the policies it gives planned against a shortage.
//!
//! Besides not panicking: a file that parses gives only usable policies, and a refusal is an error message.
#![no_main]

use backorder_fuzz::now;
use backorder_proto::v1::ReorderNeeded;
use libfuzzer_sys::fuzz_target;
use replenishment_trigger::policy::{self, Origin, Policy};
use replenishment_trigger::policy_file::PolicyFile;
use replenishment_trigger::{UNASSIGNED_SUPPLIER, plan};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let builtin = Policy::cover(UNASSIGNED_SUPPLIER, 14);
    let Ok(file) = PolicyFile::parse(text, &builtin) else {
        return;
    };
    let default = file.default_policy(&builtin);
    assert!(default.problems().is_empty(), "{:?}", default.problems());
    let event = ReorderNeeded {
        sku: "SKU".into(),
        shortage: 40,
        backordered: 50,
        available: 10,
        inbound: 0,
        orders_waiting: 3,
        event_id: "e".into(),
        ..Default::default()
    };
    for (sku, entry) in file.sku.iter().take(32) {
        let (policy, origin) = policy::resolve(&default, None, Some(entry));
        assert_eq!(origin, Origin::Configured);
        assert!(
            policy.problems().is_empty(),
            "[sku.{sku:?}]: {:?}",
            policy.problems()
        );
        for position in [i64::MIN, -1_000_000_000, -1, 0, 1, i64::MAX] {
            let quantity = policy.order_quantity(position);
            assert!(quantity >= 0);
        }
        let _ = policy.describe();
        let _ = plan::plan(&event, 0, &policy, origin, now());
    }
});
