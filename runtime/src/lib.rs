//! Plumbing every backorder service shares, so no service carries its own copy: configuration, subject and
//! stream names, the NATS/JetStream connection, the consume loop with its ack, retry and dead-letter rules,
//! tracing across services, health and metrics, shutdown and the clock, asking a micro service endpoint, and
//! keeping secrets out of logs.

pub mod clock;
pub mod config;
pub mod consume;
pub mod digest;
pub mod jetstream;
pub mod kv;
pub mod limits;
pub mod nats;
pub mod ops;
pub mod permissions;
pub mod query;
pub mod secret;
pub mod service;
pub mod shutdown;
pub mod subjects;
pub mod telemetry;
pub mod time;
pub mod topology;
pub mod trace;
pub mod vars;
pub mod watched;

pub use clock::Clock;
pub use config::{CommonConfig, ConfigError, Source};
pub use consume::{Delivery, Outcome};
pub use service::{Service, Shutdown};
pub use subjects::Subjects;
