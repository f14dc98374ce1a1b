//! `<p>.api.deadletters.list`: the parked letters, newest first a page at a time (or the one at a sequence), each
//! with its replays.

use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::Stream;
use backorder_proto::v1::{
    DeadLetter, DeadLetterEntry, ListDeadLettersReply, ListDeadLettersRequest, Replay,
};
use backorder_runtime::{Subjects, limits, time};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use prost::Message;

use super::{get, not_parked, unavailable};
use crate::api::{Api, ApiError};

const DEFAULT_PAGE_SIZE: u32 = 50;
const MAX_PAGE_SIZE: u32 = 500;

/// What a list request asks for, checked.
#[derive(Debug, PartialEq, Eq)]
struct Query {
    /// `<p>.dlq.<service>`, when only one service's letters are wanted.
    subject: Option<String>,
    page_size: usize,
    /// Only letters stored below this sequence (the page token); `None`: from the newest.
    below: Option<u64>,
}

impl Query {
    fn new(subjects: &Subjects, request: &ListDeadLettersRequest) -> Result<Self, ApiError> {
        let page_size = match request.page_size {
            0 => DEFAULT_PAGE_SIZE,
            size if size <= MAX_PAGE_SIZE => size,
            size => {
                return Err(ApiError::BadRequest(format!(
                    "deadletters.list: page_size {size} is over {MAX_PAGE_SIZE}"
                )));
            }
        };
        let subject = match request.service.as_str() {
            "" => None,
            service if is_token(service) => Some(subjects.dead_letter(service)),
            service => {
                return Err(ApiError::BadRequest(format!(
                    "deadletters.list: service {} is not a service name (one subject token: no '.', '*', \
                     '>' or spaces)",
                    limits::shown(service)
                )));
            }
        };
        let below = match request.page_token.as_str() {
            "" => None,
            token => Some(
                token
                    .parse::<u64>()
                    .ok()
                    .filter(|s| *s > 1)
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "deadletters.list: page_token {} is not one this endpoint gave",
                            limits::shown(token)
                        ))
                    })?,
            ),
        };
        Ok(Self {
            subject,
            page_size: page_size as usize,
            below,
        })
    }
}

/// A subject token a service name may be.
fn is_token(name: &str) -> bool {
    name.len() <= limits::MAX_ID_LEN
        && !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '.' | '*' | '>'))
}

impl Api {
    pub async fn deadletters_list(
        &self,
        request: ListDeadLettersRequest,
    ) -> Result<ListDeadLettersReply, ApiError> {
        let query = Query::new(&self.engine.subjects, &request)?;
        let mut stream = self.dead_letters().await?;
        let wanted = |m: &StreamMessage| {
            query
                .subject
                .as_ref()
                .is_none_or(|s| m.subject.as_str() == s)
        };
        let (stored, total, next_page_token) = if request.sequence != 0 {
            let message = get(&stream, request.sequence)
                .await?
                .ok_or_else(|| not_parked(&stream, request.sequence))?;
            let stored: Vec<StreamMessage> = Some(message).filter(wanted).into_iter().collect();
            let total = stored.len() as u64;
            (stored, total, String::new())
        } else {
            let state = stream
                .info()
                .await
                .map_err(|e| unavailable("reading the dead-letter stream's state", e))?
                .state
                .clone();
            let total = match &query.subject {
                None => state.messages,
                Some(subject) => self.count(&stream, subject).await?,
            };
            // Newest first: walk down from below the token, skipping sequences deleted or of other services.
            let top = query.below.map_or(state.last_sequence, |below| {
                (below - 1).min(state.last_sequence)
            });
            let mut stored = Vec::with_capacity(query.page_size + 1);
            let mut sequence = top;
            while sequence >= state.first_sequence.max(1) && stored.len() <= query.page_size {
                if let Some(message) = get(&stream, sequence).await?.filter(wanted) {
                    stored.push(message);
                }
                sequence -= 1;
            }
            let next = if stored.len() > query.page_size {
                stored.truncate(query.page_size);
                stored.last().map(|m| m.sequence.to_string())
            } else {
                None
            };
            (stored, total, next.unwrap_or_default())
        };
        let mut replays = self.replays(&stream, &stored).await?;
        let dead_letters = stored
            .into_iter()
            .map(|message| DeadLetterEntry {
                sequence: message.sequence,
                letter: Some(letter_of(&message)),
                parked_at: Some(time::to_proto(message.time)),
                replays: replays.remove(&message.sequence).unwrap_or_default(),
            })
            .collect();
        Ok(ListDeadLettersReply {
            dead_letters,
            next_page_token,
            total,
        })
    }

    /// How many letters are stored on `subject`.
    async fn count(&self, stream: &Stream, subject: &str) -> Result<u64, ApiError> {
        let counts = stream
            .info_with_subjects(subject)
            .await
            .map_err(|e| unavailable("counting dead letters", e))?;
        counts
            .try_fold(
                0u64,
                |sum, (_, count)| async move { Ok(sum + count as u64) },
            )
            .await
            .map_err(|e| unavailable("counting dead letters", e))
    }

    /// The replays of each letter, oldest first.
    async fn replays(
        &self,
        stream: &Stream,
        stored: &[StreamMessage],
    ) -> Result<std::collections::HashMap<u64, Vec<Replay>>, ApiError> {
        type Row = (i64, String, DateTime<Utc>, String, String, i64, String);
        let sequences: Vec<i64> = stored.iter().map(|m| m.sequence as i64).collect();
        let rows: Vec<Row> = sqlx::query_as(
            "select dlq_sequence, operator, at, message_id, subject, stream_sequence, reason
             from dead_letter_replays where dlq_stream = $1 and dlq_sequence = any($2) order by id",
        )
        .bind(&stream.cached_info().config.name)
        .bind(&sequences)
        .fetch_all(&self.pool)
        .await?;
        let mut replays = std::collections::HashMap::<u64, Vec<Replay>>::new();
        for (sequence, operator, at, message_id, subject, stream_sequence, reason) in rows {
            replays.entry(sequence as u64).or_default().push(Replay {
                operator,
                at: Some(time::to_proto(at)),
                message_id,
                subject,
                stream_sequence: stream_sequence as u64,
                reason,
            });
        }
        Ok(replays)
    }
}

/// The letter stored in a message; one that is not a `DeadLetter` (someone else published on a dead-letter
/// subject) is shown with what is wrong with it, so the list still shows it.
fn letter_of(message: &StreamMessage) -> DeadLetter {
    DeadLetter::decode(message.payload.as_ref()).unwrap_or_else(|error| DeadLetter {
        service: message
            .subject
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_string(),
        error: format!("the stored message is not a DeadLetter: {error}"),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subjects() -> Subjects {
        Subjects::new("bo").unwrap()
    }

    fn list(service: &str, page_size: u32, page_token: &str) -> ListDeadLettersRequest {
        ListDeadLettersRequest {
            service: service.into(),
            sequence: 0,
            page_size,
            page_token: page_token.into(),
        }
    }

    #[test]
    fn a_list_query_takes_defaults_and_refuses_what_it_cannot_serve() {
        let query = Query::new(&subjects(), &list("", 0, "")).unwrap();
        assert_eq!(
            query,
            Query {
                subject: None,
                page_size: 50,
                below: None
            }
        );
        let query = Query::new(&subjects(), &list("allocation-outbox", 500, "42")).unwrap();
        assert_eq!(
            query,
            Query {
                subject: Some("bo.dlq.allocation-outbox".into()),
                page_size: 500,
                below: Some(42)
            }
        );
        for (request, expected) in [
            (list("", 501, ""), "page_size 501 is over 500"),
            (list("a.b", 0, ""), "service \"a.b\" is not a service name"),
            (list(">", 0, ""), "is not a service name"),
            (
                list("", 0, "abc"),
                "page_token \"abc\" is not one this endpoint gave",
            ),
            (list("", 0, "1"), "is not one this endpoint gave"),
        ] {
            match Query::new(&subjects(), &request) {
                Err(ApiError::BadRequest(reason)) => {
                    assert!(reason.contains(expected), "{expected:?} not in {reason}")
                }
                other => panic!("{request:?}: {other:?}"),
            }
        }
    }
}
