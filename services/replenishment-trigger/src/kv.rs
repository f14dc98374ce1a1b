//! Typed reads and compare-and-set writes on the service's key-value bucket. A write names the revision it
//! read, so two handlers never overwrite each other's change unseen: the loser is told, and its message is
//! handled again from a fresh read.

use async_nats::jetstream::kv;
use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use backorder_runtime::kv::Stored;

use crate::store;

/// A value as read, with the revision to write against (`None`: the key was never written).
#[derive(Clone)]
pub struct Read<T> {
    pub value: Option<T>,
    pub revision: Option<u64>,
}

pub async fn read<T: DeserializeOwned>(bucket: &kv::Store, key: &str) -> Result<Read<T>, String> {
    let stored = backorder_runtime::kv::read(bucket, key)
        .await
        .map_err(|error| format!("reading {key}: {error}"))?;
    typed(stored, key)
}

/// A stored value as what this version writes under `key`.
pub fn typed<T: DeserializeOwned>(stored: Stored, key: &str) -> Result<Read<T>, String> {
    Ok(Read {
        value: stored
            .value
            .map(|bytes| store::decode(&bytes, key))
            .transpose()?,
        revision: stored.revision,
    })
}

/// Writes `value` if the key is still at `revision`.
pub async fn write<T: Serialize>(
    bucket: &kv::Store,
    key: &str,
    value: &T,
    revision: Option<u64>,
) -> Result<u64, String> {
    match backorder_runtime::kv::write(bucket, key, store::encode(value), revision).await {
        Ok(Some(revision)) => Ok(revision),
        Ok(None) => Err(format!(
            "{key} changed while this message was handled; it is handled again"
        )),
        Err(error) => Err(error.to_string()),
    }
}

/// Deletes the key if it is still at `revision`.
pub async fn delete(bucket: &kv::Store, key: &str, revision: u64) -> Result<(), String> {
    bucket
        .delete_expect_revision(key, Some(revision))
        .await
        .map_err(|e| format!("deleting {key}: {e}"))
}

/// The keys starting with `prefix`.
pub async fn keys(bucket: &kv::Store, prefix: &str) -> Result<Vec<String>, String> {
    let mut keys = bucket
        .keys()
        .await
        .map_err(|e| format!("listing keys: {e}"))?;
    let mut found = Vec::new();
    while let Some(key) = keys.next().await {
        let key = key.map_err(|e| format!("listing keys: {e}"))?;
        if key.starts_with(prefix) {
            found.push(key);
        }
    }
    Ok(found)
}
