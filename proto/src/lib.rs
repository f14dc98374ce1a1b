//! The generated protobuf types of the backorder contract (`backorder.v1`), shared by every service.

/// Package `backorder.v1`.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/backorder.v1.rs"));
}

pub use prost::Message;
pub use prost_types::Timestamp;
