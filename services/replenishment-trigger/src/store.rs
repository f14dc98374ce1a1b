//! How the outstanding quantities are laid out in the key-value bucket (named by
//! `Subjects::replenishment_bucket`): one key per SKU, a small JSON value. Pure, no I/O.

use serde::{Deserialize, Serialize};

/// The key of a SKU. Keys may only hold `[-/_=.a-zA-Z0-9]`, so a SKU made of letters, digits, `-` and `_`
/// is its own key (readable in `nats kv` output), and any other is `=` and the hex of its UTF-8 bytes. A
/// plain key never holds `=`, so the two kinds never meet, and the mapping is one to one (see [`sku_of`]).
pub fn key(sku: &str) -> String {
    let plain = !sku.is_empty()
        && sku
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        return sku.to_string();
    }
    let mut key = String::with_capacity(1 + 2 * sku.len());
    key.push('=');
    for byte in sku.bytes() {
        key.push_str(&format!("{byte:02x}"));
    }
    key
}

/// The SKU a [`key`] stands for; `None` for a string no SKU maps to.
pub fn sku_of(key: &str) -> Option<String> {
    let Some(hex) = key.strip_prefix('=') else {
        let plain = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        return plain.then(|| key.to_string());
    };
    if hex.len() % 2 != 0 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes)
        .ok()
        .filter(|sku| key == self::key(sku))
}

/// The value stored under a SKU's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outstanding {
    /// Units requested from purchasing and not yet covered by stock or open supply.
    pub outstanding: i64,
}

impl Outstanding {
    pub fn encode(self) -> bytes::Bytes {
        serde_json::to_vec(&self)
            .expect("a struct of one integer serializes")
            .into()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| {
            format!(
                "stored value {:?} is not {{\"outstanding\": <integer>}}: {e}",
                String::from_utf8_lossy(bytes)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The rule of the NATS clients: `[-/_=.a-zA-Z0-9]+`, not starting or ending with `.`.
    fn valid_key(key: &str) -> bool {
        !key.is_empty()
            && !key.starts_with('.')
            && !key.ends_with('.')
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-/_=.".contains(&b))
    }

    #[test]
    fn keys() {
        assert_eq!(key("SKU-A_1"), "SKU-A_1");
        assert_eq!(key("a.b"), "=612e62");
        assert_eq!(key("ä"), "=c3a4");
        assert_eq!(key("=61"), "=3d3631");
        assert_eq!(key(""), "=");
        assert_eq!(key("*"), "=2a");
        for sku in ["SKU-A_1", "a.b", "ä", "=61", "", "a b>c*"] {
            assert!(valid_key(&key(sku)), "{sku:?}");
            assert_eq!(sku_of(&key(sku)).as_deref(), Some(sku));
        }
        for not_a_key in ["=6", "=zz", "=ff", "=41", "a.b", "=C3A4"] {
            assert_eq!(sku_of(not_a_key), None, "{not_a_key:?}");
        }
    }

    #[test]
    fn values() {
        let value = Outstanding { outstanding: 30 };
        assert_eq!(&value.encode()[..], br#"{"outstanding":30}"#);
        assert_eq!(
            Outstanding::decode(br#"{"outstanding": -2}"#),
            Ok(Outstanding { outstanding: -2 })
        );
        let error = Outstanding::decode(b"30").unwrap_err();
        assert!(
            error.contains("is not {\"outstanding\": <integer>}"),
            "{error}"
        );
    }

    proptest! {
        /// Every SKU gets a valid key, and the SKU can be read back from it, so no two SKUs share a key.
        #[test]
        fn every_sku_has_its_own_valid_key(sku in any::<String>()) {
            let key = key(&sku);
            prop_assert!(valid_key(&key), "{key:?}");
            prop_assert_eq!(sku_of(&key), Some(sku));
        }

        #[test]
        fn two_skus_never_share_a_key(a in "[a-zA-Z0-9=._ -]{0,6}", b in "[a-zA-Z0-9=._ -]{0,6}") {
            prop_assert_eq!(a == b, key(&a) == key(&b));
        }
    }
}
