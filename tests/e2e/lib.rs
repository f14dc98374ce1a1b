//! The end-to-end tests are in `tests/`; what they share is the `backorder-test-support` crate.
