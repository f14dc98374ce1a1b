//! Logging: `tracing` with `RUST_LOG`-style filtering (default `info`); `BO_LOG_FORMAT=json` for one JSON
//! object per line, as log shippers want it.

use tracing_subscriber::EnvFilter;

use crate::Source;

pub fn init(source: &impl Source) {
    let filter = source
        .get("RUST_LOG")
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    // `try_init`: a test that starts two applications in one process must not panic on the second.
    let _ = if source.get("BO_LOG_FORMAT").as_deref() == Some("json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
