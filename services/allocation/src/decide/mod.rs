//! The engine's decisions as pure functions: each takes the state it needs and returns what changes, and the
//! engine (`engine/`) loads that state, calls it and writes the result. Tested here without a database.
//!
//! The older pure rules (splits, fills, releases, notices, statuses) are in [`crate::rules`], the ETA
//! projection in [`crate::eta`].

pub mod new_order;
pub mod promises;
