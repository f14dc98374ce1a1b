//! order-intake's decoder: `validate` on the bytes the OMS publishes on `<p>.in.order.placed`.
//!
//! Besides not panicking: a refusal names at least one reason and its reasons are cut; an accepted order is
//! within the bounds allocation relies on, and allocation accepts it too (intake and allocation agree).
#![no_main]

use allocation::command::Command;
use backorder_fuzz::{MAX_REASON_LEN, now};
use backorder_proto::v1::OrderAccepted;
use backorder_runtime::{Subjects, limits};
use libfuzzer_sys::fuzz_target;
use order_intake::validate;
use prost::Message as _;

fuzz_target!(|data: &[u8]| {
    let _ = validate::salvage_order_id(data);
    match validate::validate(data) {
        Err(rejection) => {
            assert!(!rejection.errors.is_empty(), "a refusal without a reason");
            for error in &rejection.errors {
                assert!(
                    error.message.len() + error.field.len() <= MAX_REASON_LEN,
                    "reason not cut: {} bytes for field {:.80}",
                    error.message.len(),
                    error.field
                );
            }
            let _ = rejection.summary();
        }
        Ok(order) => {
            assert!(!order.order_id.trim().is_empty());
            assert!(order.order_id.len() <= limits::MAX_ID_LEN);
            assert!(!order.lines.is_empty());
            for line in &order.lines {
                assert!((1..=limits::MAX_QUANTITY).contains(&line.quantity));
                assert!(line.line_no > 0);
            }
            let digest = backorder_runtime::digest::of(&order);
            let accepted = OrderAccepted {
                order: Some(order),
                accepted_at: Some(backorder_runtime::time::to_proto(now())),
                digest,
            };
            let subjects = Subjects::new("fz").expect("a valid prefix");
            match Command::decode(
                &subjects,
                &subjects.order_accepted(),
                &accepted.encode_to_vec(),
                now(),
                1,
            ) {
                Ok(Command::AcceptOrder { .. }) => {}
                Ok(Command::Refuse { reason, .. }) | Err(reason) => {
                    panic!("order-intake accepted an order allocation refuses: {reason}")
                }
                Ok(other) => panic!("an accepted order decoded as {other:?}"),
            }
        }
    }
});
