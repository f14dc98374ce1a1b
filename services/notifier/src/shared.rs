//! What the intake, the flusher and the preference handler share: the bus, the buckets, the templates, the
//! configuration, and the customers' preferences as the watch keeps them.

use backorder_runtime::jetstream::Bus;
use backorder_runtime::watched::Watched;

use crate::coalesce::Channel;
use crate::config::Config;
use crate::preferences;
use crate::store::{self, Buckets};
use crate::templates::Templates;

pub const SERVICE: &str = "notifier";

impl Shared {
    /// An event was stored in the entry under `key`.
    pub fn note_stored(&self, key: &str) {
        self.lock_stored().insert(key.to_string());
    }

    /// The entries events were stored in since the last call.
    pub fn take_stored(&self) -> Vec<String> {
        std::mem::take(&mut *self.lock_stored())
            .into_iter()
            .collect()
    }

    fn lock_stored(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeSet<String>> {
        // A set of keys is whole after every insert or take: a panic elsewhere cannot tear it.
        self.stored_keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What the intake, the flusher and the preference handler share.
pub struct Shared {
    pub bus: Bus,
    pub buckets: Buckets,
    pub templates: Templates,
    pub config: Config,
    /// Woken when an event was stored, so a window of 0 sends at once.
    pub stored: tokio::sync::Notify,
    /// The entries this instance stored events in since the flusher last looked: it visits those alone
    /// after new events.
    pub stored_keys: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// The customers' preferences (`pref.*`), read from memory while a watch keeps them current: every
    /// message asks them, customers rarely change them.
    pub preferences: Watched,
}

/// Whether the customer opted out of `channel`; a customer without id has no preferences.
pub async fn opted_out(
    shared: &Shared,
    customer_id: &str,
    channel: Channel,
) -> anyhow::Result<bool> {
    if customer_id.trim().is_empty() {
        return Ok(false);
    }
    let stored = shared
        .preferences
        .read(&shared.buckets.state, &store::preferences_key(customer_id))
        .await?;
    Ok(match stored.value {
        None => false,
        Some(bytes) => serde_json::from_slice::<preferences::Preferences>(&bytes)
            .map(|p| p.opted_out(channel))
            // Unreadable preferences: an operator wrote the key by hand. Sending is the lesser harm than
            // blocking the customer's notices; it is logged.
            .unwrap_or_else(|error| {
                tracing::warn!(%error, customer_id, "unreadable preferences ignored");
                false
            }),
    })
}
