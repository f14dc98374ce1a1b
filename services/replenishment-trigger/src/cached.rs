//! The last value and revision this instance read or wrote of keys only the consumer's handler writes
//! (`sku.*`, `batch.*`), so a report reads its SKU and its supplier's batch from memory instead of the bucket.
//! A report takes the values out while it changes them and puts back what it wrote or left unchanged: a
//! supplier's batch holds every line of the supplier, and copying it for each report cost more than the
//! report's own work.
//!
//! Why it is safe: every write still names the revision the value was read at, so a value another instance
//! changed meanwhile (its consumer hands out one message at a time, so that happens only between two of ours)
//! fails its compare-and-set; the caller then forgets everything and the message is handled again from fresh
//! reads. A decision that writes only the SKU relies on a cached batch only for the SKU's own line in it, and
//! any change to that line also wrote the SKU, whose write would then fail.

use std::collections::HashMap;

use async_nats::jetstream::kv as js_kv;
use serde::de::DeserializeOwned;

use crate::kv::{self, Read};

/// Entries kept at most: past it the cache starts again empty (a few KB each; the SKUs of a burst fit).
const CAPACITY: usize = 2048;

pub struct Cached<T> {
    entries: HashMap<String, Read<T>>,
}

impl<T> Default for Cached<T> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
        }
    }
}

impl<T: DeserializeOwned> Cached<T> {
    /// The key's value as last read or written here (it leaves the cache), or as the bucket has it.
    pub async fn take(&mut self, bucket: &js_kv::Store, key: &str) -> Result<Read<T>, String> {
        match self.entries.remove(key) {
            Some(known) => Ok(known),
            None => kv::read::<T>(bucket, key).await,
        }
    }

    /// `value` was written at `revision`.
    pub fn wrote(&mut self, key: &str, value: T, revision: u64) {
        self.keep(
            key,
            Read {
                value: Some(value),
                revision: Some(revision),
            },
        );
    }

    /// A value taken and left as it was.
    pub fn kept(&mut self, key: &str, read: Read<T>) {
        self.keep(key, read);
    }

    /// The key's value as last read or written here, if it is still kept.
    pub fn known(&self, key: &str) -> Option<&Read<T>> {
        self.entries.get(key)
    }

    pub fn forget(&mut self) {
        self.entries.clear();
    }

    fn keep(&mut self, key: &str, read: Read<T>) {
        if self.entries.len() >= CAPACITY && !self.entries.contains_key(key) {
            self.entries.clear();
        }
        self.entries.insert(key.to_string(), read);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_was_written_until_forgotten_or_full() {
        let mut cache = Cached::<u32>::default();
        cache.wrote("sku.A", 7, 3);
        let known = cache.known("sku.A").unwrap();
        assert_eq!((known.value, known.revision), (Some(7), Some(3)));
        cache.wrote("sku.A", 8, 4);
        assert_eq!(cache.known("sku.A").unwrap().revision, Some(4));
        cache.forget();
        assert!(cache.known("sku.A").is_none());

        for i in 0..CAPACITY {
            cache.wrote(&format!("sku.{i}"), 1, 1);
        }
        assert!(cache.known("sku.0").is_some());
        // A key already kept is updated in place; a new one past the capacity starts afresh.
        cache.wrote("sku.0", 2, 2);
        assert!(cache.known("sku.1").is_some());
        cache.wrote("sku.new", 1, 1);
        assert!(cache.known("sku.1").is_none());
        assert!(cache.known("sku.new").is_some());
    }
}
