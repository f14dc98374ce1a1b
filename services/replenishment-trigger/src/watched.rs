//! The product master's policies (`policy.*`) read from memory: every report needs its SKU's policy, and
//! policies change rarely, so reading each from the bucket was a round trip per report for nothing.
//!
//! Why it stays current: a watch on `policy.>` hands this instance every upsert any instance stores, and an
//! entry carries its revision, so a value never replaces a newer one (a read that raced an upsert cannot put
//! the older value back). Nothing is kept while the watch is not running (before it starts, after it broke):
//! reads then go to the bucket, as before. A report handled between an upsert and its arrival here uses the
//! policy before it, as it would had it come a moment earlier: upserts and reports come on different streams,
//! in no order against each other.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_nats::jetstream::kv as js_kv;
use futures::StreamExt as _;

use crate::kv::{self, Read};
use crate::store::MasterPolicy;

/// Entries kept at most: past it the cache starts again empty.
const CAPACITY: usize = 65_536;

/// How long a broken watch waits before it is made again.
const REWATCH: Duration = Duration::from_secs(1);

/// The watched key space.
pub const POLICIES: &str = "policy.>";

#[derive(Default)]
pub struct WatchedPolicies {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    watching: bool,
    entries: HashMap<String, Read<MasterPolicy>>,
}

impl WatchedPolicies {
    /// The policy under `key`: from memory while the watch runs and the key was seen, else from the bucket.
    pub async fn read(
        &self,
        bucket: &js_kv::Store,
        key: &str,
    ) -> Result<Read<MasterPolicy>, String> {
        if let Some(known) = self.known(key) {
            return Ok(known);
        }
        let read = kv::read::<MasterPolicy>(bucket, key).await?;
        self.offer(key, read.clone());
        Ok(read)
    }

    /// What is held for `key`, if anything.
    pub fn known(&self, key: &str) -> Option<Read<MasterPolicy>> {
        self.lock().entries.get(key).cloned()
    }

    /// Keeps `read` unless the watch is not running or something newer is held.
    pub fn offer(&self, key: &str, read: Read<MasterPolicy>) {
        let mut state = self.lock();
        if !state.watching {
            return;
        }
        if state
            .entries
            .get(key)
            .is_some_and(|held| held.revision >= read.revision)
        {
            return;
        }
        if state.entries.len() >= CAPACITY && !state.entries.contains_key(key) {
            state.entries.clear();
        }
        state.entries.insert(key.to_string(), read);
    }

    /// Runs the watch until `shutdown`, making it again when it breaks.
    pub async fn watch(&self, bucket: &js_kv::Store, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            match bucket.watch(POLICIES).await {
                Ok(mut updates) => {
                    self.set_watching(true);
                    loop {
                        let update = tokio::select! {
                            _ = &mut shutdown => return,
                            update = updates.next() => update,
                        };
                        match update {
                            Some(Ok(entry)) => self.seen(&entry),
                            Some(Err(error)) => {
                                tracing::warn!(%error, "the watch of the policies broke; reading them from the bucket meanwhile");
                                break;
                            }
                            None => break,
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot watch the policies; reading them from the bucket meanwhile");
                }
            }
            self.set_watching(false);
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(REWATCH) => {}
            }
        }
    }

    /// An upsert (or a deletion) the watch delivered.
    fn seen(&self, entry: &js_kv::Entry) {
        match kv::of_entry::<MasterPolicy>(entry) {
            Ok(read) => self.offer(&entry.key, read),
            // Not kept: a read of the key goes to the bucket and reports what is wrong there.
            Err(error) => {
                tracing::warn!(%error, key = entry.key, "a stored policy does not decode");
                self.lock().entries.remove(&entry.key);
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
        // A panic while holding it cannot leave the map half-written (each change is one insert or clear).
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(revision: u64) -> Read<MasterPolicy> {
        Read {
            value: None,
            revision: Some(revision),
        }
    }

    #[test]
    fn keeps_only_while_watching_and_never_an_older_revision() {
        let cache = WatchedPolicies::default();
        cache.offer("policy.A", read(3));
        assert!(
            cache.known("policy.A").is_none(),
            "not watching: nothing kept"
        );

        cache.set_watching(true);
        cache.offer("policy.A", read(3));
        cache.offer("policy.A", read(2));
        assert_eq!(cache.known("policy.A").unwrap().revision, Some(3));
        cache.offer("policy.A", read(5));
        assert_eq!(cache.known("policy.A").unwrap().revision, Some(5));
        // A read of a key never written loses to what the watch delivered since.
        cache.offer(
            "policy.A",
            Read {
                value: None,
                revision: None,
            },
        );
        assert_eq!(cache.known("policy.A").unwrap().revision, Some(5));

        cache.set_watching(false);
        assert!(cache.known("policy.A").is_none(), "a broken watch forgets");
    }
}
