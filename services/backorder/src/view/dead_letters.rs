//! Dead letters: the parked list, one letter with its payload decoded, and a replay's record.

use backorder_proto::v1::{DeadLetterEntry, ListDeadLettersReply, Replay, ReplayDeadLetterReply};
use backorder_runtime::Subjects;
use serde_json::{Value, json};

use super::{text, ts};
use crate::letters;
use crate::render::{Body, Output, Table};

fn replay_fields(replay: &Replay) -> Vec<(&'static str, Value)> {
    vec![
        ("at", ts(replay.at.as_ref())),
        ("operator", json!(replay.operator)),
        ("message_id", json!(replay.message_id)),
        ("subject", json!(replay.subject)),
        ("stream_sequence", json!(replay.stream_sequence)),
        ("reason", text(&replay.reason)),
    ]
}

pub fn dead_letters(reply: &ListDeadLettersReply) -> Output {
    let mut table = Table::new(&[
        "sequence",
        "service",
        "subject",
        "error",
        "deliveries",
        "message_id",
        "parked_at",
        "replays",
        "last_replay_at",
    ]);
    for entry in &reply.dead_letters {
        let letter = entry.letter.clone().unwrap_or_default();
        table.push(vec![
            json!(entry.sequence),
            json!(letter.service),
            json!(letter.subject),
            json!(letter.error),
            json!(letter.deliveries),
            text(&letter.message_id),
            ts(entry.parked_at.as_ref()),
            json!(entry.replays.len()),
            ts(entry.replays.last().and_then(|r| r.at.as_ref())),
        ]);
    }
    let shown = reply.dead_letters.len() as u64;
    let mut output = Output::default()
        .section("dead_letters", Body::Table(table))
        .fields(
            "summary",
            vec![("total", json!(reply.total)), ("shown", json!(shown))],
        );
    if shown < reply.total {
        output = output.note(format!(
            "showing {shown} of {} dead letters: --all for every one",
            reply.total
        ));
    }
    output
}

pub fn dead_letter(entry: &DeadLetterEntry, subjects: &Subjects) -> Output {
    let letter = entry.letter.clone().unwrap_or_default();
    let decoded = letters::decode(subjects, &letter.subject, &letter.payload);
    let mut replays = Table::new(&[
        "at",
        "operator",
        "message_id",
        "subject",
        "stream_sequence",
        "reason",
    ]);
    for replay in &entry.replays {
        replays.push(replay_fields(replay).into_iter().map(|(_, v)| v).collect());
    }
    Output::default()
        .fields(
            "letter",
            vec![
                ("sequence", json!(entry.sequence)),
                ("service", json!(letter.service)),
                ("subject", json!(letter.subject)),
                ("stream", json!(letter.stream)),
                ("stream_sequence", json!(letter.stream_sequence)),
                ("message_id", text(&letter.message_id)),
                ("error", json!(letter.error)),
                ("deliveries", json!(letter.deliveries)),
                ("failed_at", ts(letter.failed_at.as_ref())),
                ("parked_at", ts(entry.parked_at.as_ref())),
                ("payload_bytes", json!(letter.payload.len())),
                (
                    "payload_type",
                    decoded.message.map(Value::String).unwrap_or(json!("hex")),
                ),
            ],
        )
        .section("payload", Body::Document(decoded.body))
        .section("replays", Body::Table(replays))
}

pub fn replay(reply: &ReplayDeadLetterReply, sequence: u64) -> Output {
    let mut fields = vec![("sequence", json!(sequence))];
    fields.extend(replay_fields(&reply.replay.clone().unwrap_or_default()));
    Output::default().fields("replay", fields)
}
