//! Reads and compare-and-set writes on a key-value bucket, as every service does them: a read gives the
//! value with the revision to write against, and a write names that revision, so two writers never
//! overwrite each other's change unseen. The loser learns of it (`Ok(None)`) and reads again.

use async_nats::jetstream::kv;
use bytes::Bytes;

/// A key's value as stored: `None` when absent or deleted; `revision` `None` when never written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub value: Option<Bytes>,
    pub revision: Option<u64>,
}

impl Stored {
    /// What a stored entry (as read, or as a watch delivers it) holds.
    pub fn of(entry: &kv::Entry) -> Self {
        Self {
            value: matches!(entry.operation, kv::Operation::Put).then(|| entry.value.clone()),
            revision: Some(entry.revision),
        }
    }
}

/// The value under `key` with its revision; no value when absent or deleted (then the revision of the
/// deletion, if the key ever existed).
pub async fn read(bucket: &kv::Store, key: &str) -> Result<Stored, kv::EntryError> {
    Ok(match bucket.entry(key).await? {
        None => Stored {
            value: None,
            revision: None,
        },
        Some(entry) => Stored::of(&entry),
    })
}

/// Writes `value` under `key` if it is still at `revision` (`None`: never written); the new revision, or
/// `Ok(None)` when someone wrote in between.
pub async fn write(
    bucket: &kv::Store,
    key: &str,
    value: Bytes,
    revision: Option<u64>,
) -> Result<Option<u64>, WriteError> {
    let written = match revision {
        Some(revision) => bucket.update(key, value, revision).await.map_err(|e| {
            (
                e.kind() == kv::UpdateErrorKind::WrongLastRevision,
                e.to_string(),
            )
        }),
        None => bucket.create(key, value).await.map_err(|e| {
            (
                e.kind() == kv::CreateErrorKind::AlreadyExists,
                e.to_string(),
            )
        }),
    };
    match written {
        Ok(revision) => Ok(Some(revision)),
        Err((true, _)) => Ok(None),
        Err((false, error)) => Err(WriteError {
            key: key.to_string(),
            error,
        }),
    }
}

/// A write that failed for another reason than a newer revision.
#[derive(Debug, thiserror::Error)]
#[error("writing {key}: {error}")]
pub struct WriteError {
    pub key: String,
    pub error: String,
}
