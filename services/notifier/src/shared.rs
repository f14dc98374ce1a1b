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

/// What the intake, the flusher and the preference handler share.
pub struct Shared {
    pub bus: Bus,
    pub buckets: Buckets,
    pub templates: Templates,
    pub config: Config,
    /// Woken when an event was stored, so a window of 0 sends at once.
    pub stored: tokio::sync::Notify,
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
