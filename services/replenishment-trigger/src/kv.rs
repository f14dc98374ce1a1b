//! Typed reads and compare-and-set writes on the service's key-value bucket. A write names the revision it
//! read, so two handlers never overwrite each other's change unseen: the loser is told, and its message is
//! handled again from a fresh read.

use async_nats::jetstream::kv;
use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::store;

/// A value as read, with the revision to write against (`None`: the key was never written).
#[derive(Clone)]
pub struct Read<T> {
    pub value: Option<T>,
    pub revision: Option<u64>,
}

pub async fn read<T: DeserializeOwned>(bucket: &kv::Store, key: &str) -> Result<Read<T>, String> {
    match bucket.entry(key).await {
        Ok(None) => Ok(Read {
            value: None,
            revision: None,
        }),
        Ok(Some(entry)) => match entry.operation {
            kv::Operation::Put => Ok(Read {
                value: Some(store::decode(&entry.value, key)?),
                revision: Some(entry.revision),
            }),
            kv::Operation::Delete | kv::Operation::Purge => Ok(Read {
                value: None,
                revision: Some(entry.revision),
            }),
        },
        Err(error) => Err(format!("reading {key}: {error}")),
    }
}

/// Writes `value` if the key is still at `revision`.
pub async fn write<T: Serialize>(
    bucket: &kv::Store,
    key: &str,
    value: &T,
    revision: Option<u64>,
) -> Result<u64, String> {
    let bytes = store::encode(value);
    let written = match revision {
        Some(revision) => bucket.update(key, bytes, revision).await.map_err(|e| {
            (
                e.kind() == kv::UpdateErrorKind::WrongLastRevision,
                e.to_string(),
            )
        }),
        None => bucket.create(key, bytes).await.map_err(|e| {
            (
                e.kind() == kv::CreateErrorKind::AlreadyExists,
                e.to_string(),
            )
        }),
    };
    written.map_err(|(conflict, error)| {
        if conflict {
            format!("{key} changed while this message was handled; it is handled again")
        } else {
            format!("writing {key}: {error}")
        }
    })
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
