//! The one clock every time-dependent rule reads: expected dates passing, ETA slips, consent deadlines,
//! coalescing windows. By default the wall clock. With `BO_CLOCK=simulated` it starts at `BO_CLOCK_START`
//! (RFC 3339, default now) and moves only when a `ClockAdvanced` arrives on `<p>.ctl.clock`, so a month of late
//! suppliers plays in seconds in tests, the demo and what-if runs.

use std::sync::Arc;
use std::time::Duration;

use backorder_proto::v1::ClockAdvanced;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use prost::Message;
use tokio::sync::watch;

use crate::config::{ConfigError, Source};
use crate::jetstream::Bus;
use crate::subjects::StreamKind;

#[derive(Clone)]
pub struct Clock {
    /// `None`: the wall clock. Otherwise the simulated time, which waiters watch.
    simulated: Option<Arc<watch::Sender<DateTime<Utc>>>>,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.simulated {
            None => write!(f, "Clock::Wall"),
            Some(time) => write!(f, "Clock::Simulated({})", *time.borrow()),
        }
    }
}

impl Clock {
    pub fn wall() -> Self {
        Self { simulated: None }
    }

    pub fn simulated(start: DateTime<Utc>) -> Self {
        Self {
            simulated: Some(Arc::new(watch::Sender::new(start))),
        }
    }

    /// `BO_CLOCK` (`wall`, the default, or `simulated`) and `BO_CLOCK_START`.
    pub fn from_source(source: &impl Source) -> Result<Self, ConfigError> {
        let mode = source.get("BO_CLOCK").unwrap_or_else(|| "wall".into());
        match mode.as_str() {
            "wall" => Ok(Self::wall()),
            "simulated" => {
                let start = match source.get("BO_CLOCK_START") {
                    None => Utc::now(),
                    Some(text) => DateTime::parse_from_rfc3339(&text)
                        .map_err(|e| ConfigError::Invalid {
                            key: "BO_CLOCK_START".into(),
                            value: text.clone(),
                            reason: format!("not an RFC 3339 time: {e}"),
                        })?
                        .with_timezone(&Utc),
                };
                Ok(Self::simulated(start))
            }
            other => Err(ConfigError::Invalid {
                key: "BO_CLOCK".into(),
                value: other.into(),
                reason: "must be wall or simulated".into(),
            }),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &self.simulated {
            None => Utc::now(),
            Some(time) => *time.borrow(),
        }
    }

    pub fn is_simulated(&self) -> bool {
        self.simulated.is_some()
    }

    /// Moves a simulated clock to `to`. Refused on the wall clock and backwards; `to` equal to now is a no-op.
    pub fn advance(&self, to: DateTime<Utc>) -> Result<(), String> {
        let Some(time) = &self.simulated else {
            return Err("the clock is the wall clock (BO_CLOCK is not simulated)".into());
        };
        let mut refused = None;
        time.send_if_modified(|now| {
            if to < *now {
                refused = Some(format!(
                    "the clock never goes back: it reads {now}, asked for {to}"
                ));
                false
            } else {
                let moved = to > *now;
                *now = to;
                moved
            }
        });
        refused.map_or(Ok(()), Err)
    }

    /// Resolves once the clock reads `at` or later.
    pub async fn until(&self, at: DateTime<Utc>) {
        match &self.simulated {
            None => {
                let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                tokio::time::sleep(wait).await;
            }
            Some(time) => {
                let mut watcher = time.subscribe();
                // The sender lives as long as this clock, so the wait ends only by reaching `at`.
                let _ = watcher.wait_for(|now| *now >= at).await;
            }
        }
    }

    /// Follows `<p>.ctl.clock` until `shutdown`: the last `ClockAdvanced` kept in the stream first, then every
    /// new one. On the wall clock each is refused with a warning.
    pub async fn follow(
        &self,
        bus: &Bus,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        tokio::pin!(shutdown);
        let mut failures = 0;
        loop {
            // An ordered consumer lives in the server's memory only: a restarted server has forgotten it, and
            // the service must not stop for that. It is made again (from the last clock message) after a pause.
            let error = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                result = self.follow_once(bus, &mut failures) => result,
            };
            failures += 1;
            let delay = crate::consume::retry_delay(failures);
            tracing::warn!(error = format!("{error:#}"), retry_in = ?delay, "following the clock failed; again");
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// Follows `<p>.ctl.clock` until the subscription fails; `failures` is reset once it delivers.
    async fn follow_once(&self, bus: &Bus, failures: &mut i64) -> anyhow::Error {
        use async_nats::jetstream::consumer::{DeliverPolicy, pull};
        let opened = async {
            let stream = bus
                .js
                .get_stream(bus.subjects.stream(StreamKind::Control))
                .await?;
            let consumer = stream
                .create_consumer(pull::OrderedConfig {
                    filter_subject: bus.subjects.clock(),
                    deliver_policy: DeliverPolicy::LastPerSubject,
                    ..Default::default()
                })
                .await?;
            anyhow::Ok(consumer.messages().await?)
        };
        let mut messages = match opened.await {
            Ok(messages) => messages,
            Err(error) => return error,
        };
        loop {
            let message = match messages.next().await {
                None => return anyhow::anyhow!("the clock's message stream ended"),
                Some(Err(error)) => return error.into(),
                Some(Ok(message)) => message,
            };
            *failures = 0;
            let to = ClockAdvanced::decode(message.payload.as_ref())
                .map_err(|e| e.to_string())
                .and_then(|c| c.to.ok_or_else(|| "ClockAdvanced without `to`".to_string()))
                .and_then(|t| {
                    crate::time::from_proto(&t)
                        .filter(|at| crate::limits::in_years(*at))
                        .ok_or_else(|| {
                            let (from, to) =
                                (crate::limits::YEARS.start(), crate::limits::YEARS.end());
                            format!("`to` is not a time in the years {from}..={to}")
                        })
                });
            match to.and_then(|to| self.advance(to).map(|()| to)) {
                Ok(to) => tracing::info!(%to, "clock advanced"),
                Err(reason) => tracing::warn!(%reason, "ClockAdvanced refused"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_simulated_clock_moves_only_forward_and_the_wall_clock_not_at_all() {
        let clock = Clock::simulated(at("2026-01-01T00:00:00Z"));
        clock.advance(at("2026-01-05T00:00:00Z")).unwrap();
        assert_eq!(clock.now(), at("2026-01-05T00:00:00Z"));
        assert!(
            clock
                .advance(at("2026-01-02T00:00:00Z"))
                .unwrap_err()
                .contains("never goes back")
        );
        assert_eq!(clock.now(), at("2026-01-05T00:00:00Z"));
        assert!(Clock::wall().advance(at("2030-01-01T00:00:00Z")).is_err());
    }

    #[tokio::test]
    async fn a_wait_on_the_simulated_clock_ends_when_the_clock_gets_there() {
        let clock = Clock::simulated(at("2026-01-01T00:00:00Z"));
        let waiter = tokio::spawn({
            let clock = clock.clone();
            async move { clock.until(at("2026-01-03T00:00:00Z")).await }
        });
        clock.advance(at("2026-01-02T00:00:00Z")).unwrap();
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        clock.advance(at("2026-02-01T00:00:00Z")).unwrap();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn the_clock_is_configured_by_bo_clock_and_bo_clock_start() {
        let config = HashMap::from([
            ("BO_CLOCK", "simulated"),
            ("BO_CLOCK_START", "2026-03-01T08:00:00Z"),
        ]);
        let clock = Clock::from_source(&config).unwrap();
        assert_eq!(
            (clock.is_simulated(), clock.now()),
            (true, at("2026-03-01T08:00:00Z"))
        );
        assert!(
            !Clock::from_source(&HashMap::<&str, &str>::new())
                .unwrap()
                .is_simulated()
        );
        assert!(Clock::from_source(&HashMap::from([("BO_CLOCK", "fast")])).is_err());
        assert!(
            Clock::from_source(&HashMap::from([
                ("BO_CLOCK", "simulated"),
                ("BO_CLOCK_START", "tomorrow")
            ]))
            .is_err()
        );
    }
}
