//! `<p>.api.deadletters.replay`: a parked message published again to its original subject, under a new message
//! id, for an operator, and recorded in `dead_letter_replays`.

use backorder_proto::v1::{DeadLetter, Replay, ReplayDeadLetterReply, ReplayDeadLetterRequest};
use backorder_runtime::subjects::StreamKind;
use backorder_runtime::{Subjects, limits, time};
use chrono::{DateTime, Utc};
use prost::Message;
use sqlx::PgConnection;

use super::{get, not_parked, unavailable};
use crate::api::{Api, ApiError};

impl Api {
    pub async fn deadletters_replay(
        &self,
        request: ReplayDeadLetterRequest,
    ) -> Result<ReplayDeadLetterReply, ApiError> {
        check_request(&request)?;
        let stream = self.dead_letters().await?;
        let name = stream.cached_info().config.name.clone();
        let sequence = request.sequence;
        let stored = get(&stream, sequence)
            .await?
            .ok_or_else(|| not_parked(&stream, sequence))?;
        let letter = letter_to_replay(&self.engine.subjects, &name, sequence, &stored.payload)?;

        // One replay of a letter at a time, so each gets the next number.
        let mut tx = self.pool.begin().await?;
        let done = count_replays_locked(&mut tx, &name, sequence).await?;
        let message_id = format!("replay/{sequence}/{}", done + 1);
        let ack = self
            .bus
            .send(letter.subject.clone(), &message_id, letter.payload.into())
            .await
            .map_err(|e| ApiError::Unavailable(format!("publishing the replay: {e:#}")))?
            .await
            .map_err(|e| unavailable(&format!("waiting for the ack of {message_id}"), e))?;
        let at = self.engine.clock.now();
        let replay = Replay {
            operator: request.operator,
            at: Some(time::to_proto(at)),
            message_id,
            subject: letter.subject,
            stream_sequence: ack.sequence,
            reason: request.reason,
        };
        record_replay(&mut tx, &name, sequence, &replay, at).await?;
        tx.commit().await?;
        metrics::counter!("bo_dead_letter_replays_total", "service" => letter.service.clone())
            .increment(1);
        tracing::info!(
            sequence, message_id = %replay.message_id, subject = %replay.subject, stored_at = ack.sequence,
            operator = %replay.operator, "dead letter replayed"
        );
        Ok(ReplayDeadLetterReply {
            replay: Some(replay),
        })
    }
}

/// Refuses a request without a sequence or an operator, or with a reason too long to keep.
fn check_request(request: &ReplayDeadLetterRequest) -> Result<(), ApiError> {
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
    c.result()
        .map_err(|violations| ApiError::BadRequest(format!("deadletters.replay: {violations}")))
}

/// The letter parked at `sequence` of stream `name` (its stored bytes `payload`), when it can be replayed.
fn letter_to_replay(
    subjects: &Subjects,
    name: &str,
    sequence: u64,
    payload: &[u8],
) -> Result<DeadLetter, ApiError> {
    let letter = DeadLetter::decode(payload).map_err(|e| {
        ApiError::Conflict(format!(
            "the message at sequence {sequence} of {name} is not a DeadLetter ({e}): there is nothing to replay"
        ))
    })?;
    replayable(subjects, &letter)
        .map_err(|why| ApiError::Conflict(format!("dead letter {sequence} of {name}: {why}")))?;
    Ok(letter)
}

/// How many times the letter was replayed so far, counted under a lock on its replays that the transaction
/// holds to its end.
async fn count_replays_locked(
    tx: &mut PgConnection,
    name: &str,
    sequence: u64,
) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "select pg_advisory_xact_lock(hashtextextended('dead-letter/' || $1 || '/' || $2, 0))",
    )
    .bind(name)
    .bind(sequence as i64)
    .execute(&mut *tx)
    .await?;
    sqlx::query_scalar(
        "select count(*) from dead_letter_replays where dlq_stream = $1 and dlq_sequence = $2",
    )
    .bind(name)
    .bind(sequence as i64)
    .fetch_one(&mut *tx)
    .await
}

/// Records a replay of the letter at `sequence` of stream `name`, done `at`.
async fn record_replay(
    tx: &mut PgConnection,
    name: &str,
    sequence: u64,
    replay: &Replay,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into dead_letter_replays (dlq_stream, dlq_sequence, operator, reason, message_id, subject,
                                          stream_sequence, at)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(name)
    .bind(sequence as i64)
    .bind(&replay.operator)
    .bind(&replay.reason)
    .bind(&replay.message_id)
    .bind(&replay.subject)
    .bind(replay.stream_sequence as i64)
    .bind(at)
    .execute(tx)
    .await?;
    Ok(())
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
