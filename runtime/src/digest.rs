//! Content digests: what tells a message sent again (same id, same content: a duplicate) from another message
//! under a used id (same id, other content: a conflict), and what names a state independently of where in a
//! stream it was stored (a recreated stream starts its sequence numbers again at 1).

use prost::Message;
use sha2::{Digest, Sha256};

/// The first 32 hex digits (128 bits) of the SHA-256 of `bytes`.
pub fn of_bytes(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..16])
}

/// [`of_bytes`] of the message's encoding. prost encodes fields in field order and skips defaults, so equal
/// messages have equal digests whatever encoder the sender used.
pub fn of(message: &impl Message) -> String {
    of_bytes(&message.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use backorder_proto::v1::StockReceived;

    #[test]
    fn equal_content_equal_digest_other_content_other_digest() {
        let a = StockReceived {
            receipt_id: "R-1".into(),
            sku: "A".into(),
            quantity: 5,
            ..Default::default()
        };
        let mut b = a.clone();
        assert_eq!(of(&a), of(&b));
        assert_eq!(of(&a).len(), 32);
        b.sku = "B".into();
        assert_ne!(of(&a), of(&b));
    }
}
