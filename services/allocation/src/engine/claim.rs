//! The record of handled messages: a message's id is claimed with a digest of its content before it is
//! applied, so a redelivery is a duplicate and another message under a used id is refused, not applied. A run
//! of new orders is claimed in one statement.

use std::collections::HashSet;

use backorder_proto::v1::OrderPlaced;
use chrono::{DateTime, Utc};

use super::Work;
use crate::command::Command;
use crate::events;

/// What the record of handled messages says of a message's id.
pub(super) enum Claim {
    New,
    Duplicate,
    /// Another message under a used id: refused, recorded under `claim`.
    Conflict {
        claim: String,
        reason: String,
    },
}

/// A new order of a run: where it stands in the run, its message id, and the span its work is recorded in.
pub(super) struct Claimed<'c> {
    pub index: usize,
    pub id: String,
    pub order: &'c OrderPlaced,
    pub span: tracing::Span,
}

impl Work<'_> {
    /// Claims the run's message ids in one statement. Returns the orders claimed now, and those whose id was
    /// claimed before or earlier in the run, by place in the run.
    pub(super) async fn claim_orders<'c>(
        &mut self,
        commands: &'c [Command],
        traces: &[Vec<(String, String)>],
    ) -> Result<(Vec<Claimed<'c>>, Vec<Claimed<'c>>), sqlx::Error> {
        let mut first: Vec<Claimed<'c>> = Vec::with_capacity(commands.len());
        let mut again = Vec::new();
        let mut seen = HashSet::new();
        for (index, command) in commands.iter().enumerate() {
            let Command::AcceptOrder { order, .. } = command else {
                unreachable!("a run holds new orders only")
            };
            let id = command.message_id();
            let span = tracing::info_span!(
                "command",
                id = %id,
                order_id = order.order_id.as_str(),
                sku = tracing::field::Empty,
            );
            if let Some(trace) = traces.get(index) {
                backorder_runtime::trace::follow(&span, trace);
            }
            self.records.traces.insert(
                id.clone(),
                span.in_scope(backorder_runtime::trace::traceparent),
            );
            let new = Claimed {
                index,
                id,
                order,
                span,
            };
            if seen.insert(new.id.clone()) {
                first.push(new);
            } else {
                again.push(new);
            }
        }
        let claimed: HashSet<String> = sqlx::query_scalar(
            "insert into processed_messages (message_id, digest, summary)
             select * from unnest($1::text[], $2::text[], $3::text[])
             on conflict do nothing returning message_id",
        )
        .bind(first.iter().map(|c| c.id.clone()).collect::<Vec<_>>())
        .bind(
            first
                .iter()
                .map(|c| commands[c.index].digest())
                .collect::<Vec<_>>(),
        )
        .bind(
            first
                .iter()
                .map(|c| commands[c.index].summary())
                .collect::<Vec<_>>(),
        )
        .fetch_all(&mut *self.tx)
        .await?
        .into_iter()
        .collect();
        let (new, old): (Vec<_>, Vec<_>) = first.into_iter().partition(|c| claimed.contains(&c.id));
        again.extend(old);
        again.sort_by_key(|c| c.index);
        Ok((new, again))
    }

    /// Claims the message's id with its digest. The same id with the same content is a duplicate; with other
    /// content it is a conflict, claimed in turn as `<id>#<digest>` so that its redeliveries are duplicates of
    /// the refusal.
    pub(super) async fn claim(
        &mut self,
        id: &str,
        command: &Command,
    ) -> Result<Claim, sqlx::Error> {
        let digest = command.digest();
        let summary = command.summary();
        let claimed = |id: String| {
            sqlx::query(
                "insert into processed_messages (message_id, digest, summary) values ($1, $2, $3)
                 on conflict do nothing",
            )
            .bind(id)
            .bind(&digest)
            .bind(&summary)
        };
        if claimed(id.to_string())
            .execute(&mut *self.tx)
            .await?
            .rows_affected()
            == 1
        {
            return Ok(Claim::New);
        }
        let (first, first_summary, at): (Option<String>, String, DateTime<Utc>) = sqlx::query_as(
            "select digest, summary, processed_at from processed_messages where message_id = $1",
        )
        .bind(id)
        .fetch_one(&mut *self.tx)
        .await?;
        // Rows from before digests were kept have none: taken as the same content, as before.
        if first.is_none_or(|first| first == digest) {
            return Ok(Claim::Duplicate);
        }
        let claim = format!("{id}#{digest}");
        if claimed(claim.clone())
            .execute(&mut *self.tx)
            .await?
            .rows_affected()
            == 0
        {
            return Ok(Claim::Duplicate);
        }
        let first_summary = if first_summary.is_empty() {
            String::new()
        } else {
            format!(" for {first_summary}")
        };
        let reason = format!(
            "{} was already used{first_summary} on {}; this message has other content ({summary}) and is \
             refused as a conflict: send it under an id of its own",
            command.what(),
            at.format("%Y-%m-%d %H:%M:%S UTC"),
        );
        tracing::warn!(%reason, "id reused for other content");
        Ok(Claim::Conflict { claim, reason })
    }

    /// Records the refusal on its claim and tells the sender: the OMS hears of a refused order where
    /// order-intake tells it of orders it refuses, everyone else by `RequestRefused`.
    pub(super) async fn refuse(
        &mut self,
        claim: &str,
        id: &str,
        command: &Command,
        reason: &str,
    ) -> Result<(), sqlx::Error> {
        // The claim stays, with the reason: a redelivery is neither applied nor refused again.
        tracing::warn!(%reason, "refused");
        sqlx::query("update processed_messages set refusal = $2 where message_id = $1")
            .bind(claim)
            .bind(reason)
            .execute(&mut *self.tx)
            .await?;
        let refusal = match command {
            Command::AcceptOrder { order, .. } => {
                events::order_rejected(self.subjects, claim, order, reason)
            }
            _ => events::request_refused(self.subjects, claim, id, command, reason, self.now),
        };
        self.emit(Some(id), refusal);
        Ok(())
    }
}
