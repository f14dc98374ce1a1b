//! notifier's decoder of `CustomerPreferences` (`<p>.in.customer.preferences`): `preferences::read`, then
//! the newest-wins rule against what is kept, through the JSON the bucket holds.
#![no_main]

use backorder_fuzz::{MAX_REASON_LEN, frames};
use libfuzzer_sys::fuzz_target;
use notifier::coalesce::Channel;
use notifier::preferences::{self, Preferences};

fuzz_target!(|data: &[u8]| {
    let mut kept: Option<Preferences> = None;
    for bytes in frames(data, 4) {
        match preferences::read(bytes) {
            Ok((customer_id, update)) => {
                assert!(!customer_id.trim().is_empty());
                if let Some(next) = preferences::newest(kept.as_ref(), update) {
                    let json = serde_json::to_vec(&next).expect("preferences serialize");
                    let back: Preferences = serde_json::from_slice(&json).expect("and read back");
                    assert_eq!(back, next);
                    kept = Some(back);
                }
            }
            Err(reason) => assert!(reason.len() <= MAX_REASON_LEN, "reason not cut"),
        }
    }
    if let Some(kept) = kept {
        let _ = (kept.opted_out(Channel::Email), kept.opted_out(Channel::Sms));
    }
});
