//! `<p>.api.deadletters.list` and `.replay`: the messages the services parked in `<P>_DLQ` (a `DeadLetter` on
//! `<p>.dlq.<service>` each, see `runtime::consume` and the outbox relay), newest first with the replays
//! recorded in `dead_letter_replays`; and publishing a parked message again to its original subject, under a
//! new message id, for an operator. The stream is the record of what was parked: it is read by sequence, not
//! copied into the store.

use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::{LastRawMessageErrorKind, Stream};
use backorder_proto::v1::{
    DeadLetter, DeadLetterEntry, ListDeadLettersReply, ListDeadLettersRequest, Replay,
    ReplayDeadLetterReply, ReplayDeadLetterRequest,
};
use backorder_runtime::subjects::StreamKind;
use backorder_runtime::{Subjects, limits, time};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use prost::Message;

use super::{Api, ApiError};

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

    pub async fn deadletters_replay(
        &self,
        request: ReplayDeadLetterRequest,
    ) -> Result<ReplayDeadLetterReply, ApiError> {
        let mut c = limits::Check::new();
        if request.sequence == 0 {
            c.fail(
                "sequence",
                "is missing: the dead letter's sequence in the stream",
            );
        }
        if request.operator.trim().is_empty() {
            c.fail("operator", "is missing: say who replays it, for the record");
        } else {
            c.optional_id("operator", &request.operator);
        }
        c.text("reason", &request.reason, limits::MAX_TEXT_LEN);
        c.result().map_err(|violations| {
            ApiError::BadRequest(format!("deadletters.replay: {violations}"))
        })?;
        let stream = self.dead_letters().await?;
        let name = stream.cached_info().config.name.clone();
        let sequence = request.sequence;
        let stored = get(&stream, sequence)
            .await?
            .ok_or_else(|| not_parked(&stream, sequence))?;
        let letter = DeadLetter::decode(stored.payload.as_ref()).map_err(|e| {
            ApiError::Conflict(format!(
                "the message at sequence {sequence} of {name} is not a DeadLetter ({e}): there is nothing to replay"
            ))
        })?;
        replayable(&self.engine.subjects, &letter).map_err(|why| {
            ApiError::Conflict(format!("dead letter {sequence} of {name}: {why}"))
        })?;

        // One replay of a letter at a time, so each gets the next number.
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "select pg_advisory_xact_lock(hashtextextended('dead-letter/' || $1 || '/' || $2, 0))",
        )
        .bind(&name)
        .bind(sequence as i64)
        .execute(&mut *tx)
        .await?;
        let done: i64 = sqlx::query_scalar(
            "select count(*) from dead_letter_replays where dlq_stream = $1 and dlq_sequence = $2",
        )
        .bind(&name)
        .bind(sequence as i64)
        .fetch_one(&mut *tx)
        .await?;
        let message_id = format!("replay/{sequence}/{}", done + 1);
        let ack = self
            .bus
            .send(letter.subject.clone(), &message_id, letter.payload.into())
            .await
            .map_err(|e| ApiError::Unavailable(format!("publishing the replay: {e:#}")))?
            .await
            .map_err(|e| unavailable(&format!("waiting for the ack of {message_id}"), e))?;
        let at = self.engine.clock.now();
        sqlx::query(
            "insert into dead_letter_replays (dlq_stream, dlq_sequence, operator, reason, message_id, subject,
                                              stream_sequence, at)
             values ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&name)
        .bind(sequence as i64)
        .bind(&request.operator)
        .bind(&request.reason)
        .bind(&message_id)
        .bind(&letter.subject)
        .bind(ack.sequence as i64)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        metrics::counter!("bo_dead_letter_replays_total", "service" => letter.service.clone())
            .increment(1);
        tracing::info!(
            sequence, %message_id, subject = %letter.subject, stored_at = ack.sequence,
            operator = %request.operator, "dead letter replayed"
        );
        Ok(ReplayDeadLetterReply {
            replay: Some(Replay {
                operator: request.operator,
                at: Some(time::to_proto(at)),
                message_id,
                subject: letter.subject,
                stream_sequence: ack.sequence,
                reason: request.reason,
            }),
        })
    }

    async fn dead_letters(&self) -> Result<Stream, ApiError> {
        let name = self.engine.subjects.stream(StreamKind::DeadLetter);
        self.bus
            .js
            .get_stream(&name)
            .await
            .map_err(|e| unavailable(&format!("opening stream {name}"), e))
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

/// Whether publishing the letter's payload again can do what the original should have: the whole payload was
/// kept, and its subject is one this prefix's services consume or publish (not a dead-letter subject: that
/// would park it a second time, unread).
fn replayable(subjects: &Subjects, letter: &DeadLetter) -> Result<(), String> {
    if letter.payload.is_empty()
        && letter
            .error
            .contains("left out (too large for a dead letter)")
    {
        return Err(format!(
            "it was parked without its payload (too large for a dead letter), so there is nothing to publish; \
             the original is in stream {} at sequence {} for as long as that stream keeps it",
            letter.stream, letter.stream_sequence
        ));
    }
    if letter.error.contains("; payload cut to its first") {
        return Err(
            "its payload was cut to fit the dead letter (too large), so a replay would publish a truncated \
             message; the whole message is in allocation's table outbox_dead"
                .into(),
        );
    }
    let subject = letter.subject.as_str();
    let shown = limits::shown(subject);
    if !subject.starts_with(&format!("{}.", subjects.prefix())) {
        return Err(format!(
            "its original subject {shown} is not under this prefix ({}.)",
            subjects.prefix()
        ));
    }
    let captured = |kind: StreamKind| {
        subjects
            .stream_subjects(kind)
            .iter()
            .any(|pattern| matches(pattern, subject))
    };
    if captured(StreamKind::DeadLetter) {
        return Err(format!(
            "its original subject {shown} is a dead-letter subject"
        ));
    }
    if ![
        StreamKind::Inbound,
        StreamKind::Internal,
        StreamKind::Outbound,
    ]
    .into_iter()
    .any(captured)
    {
        return Err(format!(
            "no stream of this prefix that a service reads captures its original subject {shown}"
        ));
    }
    Ok(())
}

/// Whether a stream's subject `pattern` (tokens, `*` one token, `>` the rest) covers `subject`.
fn matches(pattern: &str, subject: &str) -> bool {
    let mut subject = subject.split('.');
    for token in pattern.split('.') {
        match (token, subject.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (token, Some(s)) if token == s => {}
            _ => return false,
        }
    }
    subject.next().is_none()
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

    fn letter(subject: &str, payload: &[u8], error: &str) -> DeadLetter {
        DeadLetter {
            service: "allocation".into(),
            subject: subject.into(),
            stream: "BO_IN".into(),
            stream_sequence: 7,
            payload: payload.to_vec(),
            error: error.into(),
            ..Default::default()
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

    #[test]
    fn stream_subjects_match_by_token() {
        assert!(matches("bo.in.>", "bo.in.stock.received"));
        assert!(!matches("bo.in.>", "bo.in"));
        assert!(!matches("bo.in.>", "bo.inbound.x"));
        assert!(matches("bo.order.accepted", "bo.order.accepted"));
        assert!(!matches("bo.order.accepted", "bo.order.accepted.x"));
        assert!(!matches("bo.order.accepted", "bo.order"));
        assert!(matches("bo.*.accepted", "bo.order.accepted"));
    }

    #[test]
    fn only_a_whole_letter_of_a_subject_a_service_reads_is_replayed() {
        let s = subjects();
        assert_eq!(
            replayable(&s, &letter("bo.in.stock.received", b"x", "crashed")),
            Ok(())
        );
        assert_eq!(
            replayable(&s, &letter("bo.order.accepted", b"x", "crashed")),
            Ok(())
        );
        assert_eq!(
            replayable(&s, &letter("bo.out.order.status", b"x", "invalid")),
            Ok(())
        );
        // An empty payload that was sent empty is a message like any other.
        assert_eq!(
            replayable(&s, &letter("bo.in.stock.received", b"", "cannot decode")),
            Ok(())
        );
        for (letter, expected) in [
            (
                letter(
                    "bo.in.stock.received",
                    b"",
                    "boom; payload of 2000000 bytes left out (too large for a dead letter): it is in stream \
                     BO_IN at sequence 7",
                ),
                "without its payload",
            ),
            (
                letter(
                    "bo.out.order.status",
                    b"xx",
                    "max payload; payload cut to its first 2 of 9 bytes",
                ),
                "truncated",
            ),
            (
                letter("other.in.stock.received", b"x", ""),
                "not under this prefix (bo.)",
            ),
            (
                letter("bo.dlq.allocation", b"x", ""),
                "is a dead-letter subject",
            ),
            (letter("bo.ctl.clock", b"x", ""), "no stream of this prefix"),
            (
                letter("bo.api.order.get", b"x", ""),
                "no stream of this prefix",
            ),
            (letter("", b"x", ""), "not under this prefix"),
        ] {
            let why = replayable(&s, &letter).unwrap_err();
            assert!(why.contains(expected), "{expected:?} not in {why}");
        }
    }
}
