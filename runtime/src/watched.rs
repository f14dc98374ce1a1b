//! The values of a bucket's keys under one pattern, read from memory while a watch keeps them current: for
//! keys that are read far more often than they change (reorder policies, customer preferences), a read
//! from the bucket per message was a round trip for nothing.
//!
//! Why it stays current: the watch hands this process every change any process stores under the pattern,
//! and a value carries its revision, so it never replaces a newer one (a read that raced a change cannot
//! put the older value back). Nothing is held while the watch is not running (before it starts, after it
//! broke): reads then go to the bucket. A read between a change and its arrival here sees the value before
//! it, as a read a moment earlier would have.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt as _;

use crate::kv::Stored;

/// Entries held at most: past it the cache starts again empty.
const CAPACITY: usize = 65_536;

/// How long a broken watch waits before it is made again.
const REWATCH: Duration = Duration::from_secs(1);

pub struct Watched {
    pattern: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    watching: bool,
    entries: HashMap<String, Stored>,
}

impl Watched {
    /// The keys matching `pattern` (a NATS subject pattern over keys, such as `policy.>`).
    pub fn new(pattern: impl Into<String>) -> Self {
        Self {
            pattern: pattern.into(),
            state: Mutex::default(),
        }
    }

    /// The value under `key` (one the pattern matches): from memory while the watch runs and the key was
    /// seen, else from the bucket.
    pub async fn read(&self, bucket: &kv::Store, key: &str) -> Result<Stored, kv::EntryError> {
        if let Some(known) = self.known(key) {
            return Ok(known);
        }
        let stored = crate::kv::read(bucket, key).await?;
        self.offer(key, stored.clone());
        Ok(stored)
    }

    /// What is held for `key`, if anything.
    pub fn known(&self, key: &str) -> Option<Stored> {
        self.lock().entries.get(key).cloned()
    }

    /// Holds `stored` unless the watch is not running or something newer is held.
    pub fn offer(&self, key: &str, stored: Stored) {
        let mut state = self.lock();
        if !state.watching {
            return;
        }
        if state
            .entries
            .get(key)
            .is_some_and(|held| held.revision >= stored.revision)
        {
            return;
        }
        if state.entries.len() >= CAPACITY && !state.entries.contains_key(key) {
            state.entries.clear();
        }
        state.entries.insert(key.to_string(), stored);
    }

    /// Runs the watch until `shutdown`, making it again when it breaks.
    pub async fn watch(&self, bucket: &kv::Store, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            match bucket.watch(&self.pattern).await {
                Ok(mut changes) => {
                    self.set_watching(true);
                    loop {
                        let change = tokio::select! {
                            _ = &mut shutdown => return,
                            change = changes.next() => change,
                        };
                        match change {
                            Some(Ok(entry)) => self.offer(&entry.key, Stored::of(&entry)),
                            Some(Err(error)) => {
                                tracing::warn!(%error, pattern = self.pattern, "a watch broke; reading from the bucket meanwhile");
                                break;
                            }
                            None => break,
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, pattern = self.pattern, "cannot watch; reading from the bucket meanwhile");
                }
            }
            self.set_watching(false);
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(REWATCH) => {}
            }
        }
    }

    fn set_watching(&self, watching: bool) {
        let mut state = self.lock();
        state.watching = watching;
        if !watching {
            state.entries.clear();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Each change under the lock is one insert or one clear: a panic elsewhere cannot leave it torn.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(revision: Option<u64>) -> Stored {
        Stored {
            value: None,
            revision,
        }
    }

    #[test]
    fn holds_only_while_watching_and_never_an_older_revision() {
        let cache = Watched::new("policy.>");
        cache.offer("policy.A", at(Some(3)));
        assert!(
            cache.known("policy.A").is_none(),
            "not watching: nothing held"
        );

        cache.set_watching(true);
        cache.offer("policy.A", at(Some(3)));
        cache.offer("policy.A", at(Some(2)));
        assert_eq!(cache.known("policy.A").unwrap().revision, Some(3));
        cache.offer("policy.A", at(Some(5)));
        assert_eq!(cache.known("policy.A").unwrap().revision, Some(5));
        // A read of a key never written loses to what the watch delivered since.
        cache.offer("policy.A", at(None));
        assert_eq!(cache.known("policy.A").unwrap().revision, Some(5));

        cache.set_watching(false);
        assert!(cache.known("policy.A").is_none(), "a broken watch forgets");
    }
}
