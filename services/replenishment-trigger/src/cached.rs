//! The last value and revision this instance read or wrote of keys only the consumer's handler writes
//! (`sku.*`, `batch.*`), so a report reads its SKU and its supplier's batch from memory instead of the bucket.
//! A report takes the values out while it changes them and puts back what it changed ([`Cached::stage`]) or
//! left unchanged; the reports handed over together are written once at the end ([`Cached::write_staged`]):
//! a supplier's batch holds every line of the supplier, and writing it for each report cost more than the
//! reports' own work.
//!
//! Why it is safe: every write still names the revision the value was read at, so a value another instance
//! changed meanwhile (its consumer delivers to one instance at a time, so that happens only when the pin moves
//! between two of ours) fails its compare-and-set; the caller then forgets everything and the messages are
//! handled again from fresh reads.

use std::collections::{BTreeSet, HashMap};

use async_nats::jetstream::kv as js_kv;
use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::kv::{self, Read};

/// Entries kept at most: past it the cache starts again empty (a few KB each; the SKUs of a burst fit).
const CAPACITY: usize = 2048;

/// Compare-and-set writes in flight at once when staged values are written.
const WRITES_IN_FLIGHT: usize = 64;

pub struct Cached<T> {
    entries: HashMap<String, Read<T>>,
    /// Keys whose kept value is changed and not written yet; each keeps the revision it was read at.
    staged: BTreeSet<String>,
}

impl<T> Default for Cached<T> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            staged: BTreeSet::new(),
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

    /// `value` replaces the one taken at `revision`; it is written by [`write_staged`](Self::write_staged).
    pub fn stage(&mut self, key: &str, value: T, revision: Option<u64>) {
        self.keep(
            key,
            Read {
                value: Some(value),
                revision,
            },
        );
        self.staged.insert(key.to_string());
    }

    /// The key's value as last read or written here, if it is still kept.
    pub fn known(&self, key: &str) -> Option<&Read<T>> {
        self.entries.get(key)
    }

    /// Drops every kept value, staged ones too: what was staged is decided again from fresh reads.
    pub fn forget(&mut self) {
        self.entries.clear();
        self.staged.clear();
    }

    fn keep(&mut self, key: &str, read: Read<T>) {
        if self.entries.len() >= CAPACITY && !self.entries.contains_key(key) {
            let staged = &self.staged;
            self.entries.retain(|key, _| staged.contains(key));
        }
        self.entries.insert(key.to_string(), read);
    }
}

impl<T: Serialize> Cached<T> {
    /// Writes every staged value against the revision it was read at, many at once; each written one is
    /// kept at its new revision. The first failure is returned (the caller forgets and handles again).
    pub async fn write_staged(&mut self, bucket: &js_kv::Store) -> Result<(), String> {
        let keys = std::mem::take(&mut self.staged);
        let entries = &self.entries;
        let written: Vec<(String, Result<u64, String>)> =
            futures::stream::iter(keys.into_iter().filter_map(|key| {
                let read = entries.get(&key)?;
                let value = read.value.as_ref()?;
                Some(async move {
                    let result = kv::write(bucket, &key, value, read.revision).await;
                    (key, result)
                })
            }))
            .buffer_unordered(WRITES_IN_FLIGHT)
            .collect()
            .await;
        let mut failed = None;
        for (key, result) in written {
            match result {
                Ok(revision) => {
                    if let Some(read) = self.entries.get_mut(&key) {
                        read.revision = Some(revision);
                    }
                }
                Err(error) => failed = failed.or(Some(error)),
            }
        }
        failed.map_or(Ok(()), Err)
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

    #[test]
    fn a_staged_value_keeps_its_read_revision_and_survives_a_full_cache() {
        let mut cache = Cached::<u32>::default();
        cache.stage("batch.ACME", 5, Some(9));
        assert!(cache.staged.contains("batch.ACME"));
        // Taken again before it is written, it still names the revision it was read at.
        let read = cache.entries.remove("batch.ACME").unwrap();
        assert_eq!((read.value, read.revision), (Some(5), Some(9)));
        cache.stage("batch.ACME", 6, read.revision);
        for i in 0..CAPACITY {
            cache.wrote(&format!("sku.{i}"), 1, 1);
        }
        assert!(cache.known("sku.0").is_none(), "the unchanged values went");
        let known = cache.known("batch.ACME").unwrap();
        assert_eq!((known.value, known.revision), (Some(6), Some(9)));
        cache.forget();
        assert!(cache.staged.is_empty());
    }
}
