//! runtime's decoder of `ClockAdvanced` (`<p>.ctl.clock`, read by every service's `Clock::follow`): the same
//! steps (decode, `to`, `time::from_proto`) and `Clock::advance` on a simulated clock. The first byte picks
//! the message: even a `ClockAdvanced`, odd a `DeadLetter` (nothing in the services reads one; the tests and
//! the bench do).
#![no_main]

use backorder_fuzz::now;
use backorder_proto::v1::{ClockAdvanced, DeadLetter};
use backorder_runtime::{Clock, time};
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    if pick % 2 == 1 {
        if let Ok(letter) = DeadLetter::decode(payload) {
            let _ = letter.failed_at.as_ref().and_then(time::from_proto);
        }
        return;
    }
    // As `Clock::follow`.
    let to = ClockAdvanced::decode(payload)
        .map_err(|e| e.to_string())
        .and_then(|c| c.to.ok_or_else(|| "ClockAdvanced without `to`".to_string()))
        .and_then(|t| time::from_proto(&t).ok_or_else(|| "`to` out of range".into()));
    let clock = Clock::simulated(now());
    if let Ok(to) = to {
        match clock.advance(to) {
            Ok(()) => assert_eq!(clock.now(), to),
            Err(_) => assert_eq!(clock.now(), now(), "a refused advance moved the clock"),
        }
        assert!(Clock::wall().advance(to).is_err());
    }
});
