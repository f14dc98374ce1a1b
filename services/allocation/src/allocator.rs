//! The consumers' handler: a batch of messages, decoded into commands and applied through the engine in one
//! transaction where it can be, each settled by what became of its command.

use std::sync::Arc;

use backorder_runtime::consume::{Delivery, Handler, Outcome};
use tokio::sync::Notify;

use crate::command::Command;
use crate::engine::{Applied, Engine};

/// Decodes a batch and applies it through the engine.
pub(crate) struct Allocator {
    pub(crate) engine: Engine,
    /// The outbox relay: a batch committed events to publish.
    pub(crate) relay: Arc<Notify>,
    /// The timers: a batch may have set an earlier one.
    pub(crate) timers: Arc<Notify>,
}

impl Handler for Allocator {
    async fn handle(&mut self, batch: &[Delivery]) -> Vec<Outcome> {
        let subjects = &self.engine.subjects;
        let decoded: Vec<Result<Command, String>> = batch
            .iter()
            .map(|d| {
                Command::decode(
                    subjects,
                    &d.subject,
                    &d.payload,
                    d.published,
                    d.stream_sequence,
                )
            })
            .collect();
        let commands: Vec<Command> = decoded
            .iter()
            .filter_map(|c| c.as_ref().ok().cloned())
            .collect();
        let traces: Vec<Vec<(String, String)>> = batch
            .iter()
            .zip(&decoded)
            .filter(|(_, c)| c.is_ok())
            .map(|(d, _)| d.trace.clone())
            .collect();
        let mut applied = self.apply(&commands, &traces).await.into_iter();
        self.relay.notify_one();
        self.timers.notify_one();
        decoded
            .into_iter()
            .map(|c| match c {
                Err(reason) => Outcome::Reject(reason),
                Ok(_) => applied.next().expect("one result per command"),
            })
            .collect()
    }
}

impl Allocator {
    /// The whole batch in one transaction; when that fails, each command alone, so one bad message costs only
    /// itself a retry.
    async fn apply(&self, commands: &[Command], traces: &[Vec<(String, String)>]) -> Vec<Outcome> {
        if commands.is_empty() {
            return Vec::new();
        }
        match self.apply_when_up(commands, traces).await {
            Ok(results) => results.into_iter().map(outcome).collect(),
            Err(error) if commands.len() == 1 => vec![Outcome::Retry(format!("database: {error}"))],
            Err(error) => {
                tracing::warn!(%error, size = commands.len(), "batch failed, applying its commands one by one");
                let mut outcomes = Vec::with_capacity(commands.len());
                for (i, command) in commands.iter().enumerate() {
                    let trace = traces.get(i).cloned().unwrap_or_default();
                    outcomes.push(
                        match self
                            .apply_when_up(std::slice::from_ref(command), &[trace])
                            .await
                        {
                            Ok(mut results) => outcome(results.remove(0)),
                            Err(error) => Outcome::Retry(format!("database: {error}")),
                        },
                    );
                }
                outcomes
            }
        }
    }

    /// [`Engine::apply_traced`], waiting out a database that is down instead of failing the batch: an
    /// outage is no fault of the messages, so it must not spend their deliveries (they would be parked as
    /// failing after `BO_MAX_DELIVER`). The consume loop keeps them in progress meanwhile.
    async fn apply_when_up(
        &self,
        commands: &[Command],
        traces: &[Vec<(String, String)>],
    ) -> Result<Vec<Applied>, sqlx::Error> {
        let mut waits = 0;
        loop {
            match self.engine.apply_traced(commands, traces).await {
                Err(error) if crate::is_unavailable(&error) => {
                    waits += 1;
                    let pause = backorder_runtime::consume::retry_delay(waits);
                    metrics::counter!("bo_database_waits_total").increment(1);
                    tracing::warn!(%error, retry_in = ?pause, size = commands.len(), "the database is unavailable; waiting for it");
                    tokio::time::sleep(pause).await;
                }
                result => return result,
            }
        }
    }
}

fn outcome(applied: Applied) -> Outcome {
    match applied {
        Applied::Done | Applied::Duplicate => Outcome::Done,
        Applied::Refused(reason) => Outcome::Reject(reason),
    }
}
