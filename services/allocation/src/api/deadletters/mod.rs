//! `<p>.api.deadletters.list` and `.replay`: the messages the services parked in `<P>_DLQ` (a `DeadLetter` on
//! `<p>.dlq.<service>` each, see `runtime::consume` and the outbox relay), newest first with the replays
//! recorded in `dead_letter_replays`; and publishing a parked message again to its original subject, under a
//! new message id, for an operator. The stream is the record of what was parked: it is read by sequence, not
//! copied into the store.

mod list;
mod replay;

use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::{LastRawMessageErrorKind, Stream};
use backorder_runtime::subjects::StreamKind;

use super::{Api, ApiError};

impl Api {
    /// The prefix's dead-letter stream.
    async fn dead_letters(&self) -> Result<Stream, ApiError> {
        let name = self.engine.subjects.stream(StreamKind::DeadLetter);
        self.bus
            .js
            .get_stream(&name)
            .await
            .map_err(|e| unavailable(&format!("opening stream {name}"), e))
    }
}

/// The message stored at `sequence`; `None` when there is none (never stored, deleted, or expired).
async fn get(stream: &Stream, sequence: u64) -> Result<Option<StreamMessage>, ApiError> {
    match stream.get_raw_message(sequence).await {
        Ok(message) => Ok(Some(message)),
        Err(error) if error.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(error) => Err(unavailable(
            &format!("reading sequence {sequence} of the dead-letter stream"),
            error,
        )),
    }
}

fn not_parked(stream: &Stream, sequence: u64) -> ApiError {
    ApiError::NotFound(format!(
        "no dead letter at sequence {sequence} of {} (never parked, deleted, or past the stream's max age)",
        stream.cached_info().config.name
    ))
}

fn unavailable(what: &str, error: impl std::fmt::Display) -> ApiError {
    ApiError::Unavailable(format!("{what}: {error}"))
}
