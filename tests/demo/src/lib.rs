//! The demo client (`backorder-demo`, `make demo`) and the benchmarks (`backorder-perf`, which `make bench`
//! runs, `backorder-bench`, `backorder-eta-bench`), over the pieces of `backorder-test-support`.

pub mod perf;
