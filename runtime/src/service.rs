//! The one way a service starts and runs:
//!
//! 1. [`Service::connect`]: one NATS connection for the whole service (provisioning its streams where it may);
//! 2. [`Service::consumer`]: each durable consumer the topology gives it, and a [`Worker`] loop
//!    ([`Service::worker`]) to hand each to;
//! 3. [`Service::run`]: the service's own tasks beside what every service runs, the clock following
//!    `<p>.ctl.clock` and health and metrics (ready while NATS is connected, no consumer of the bus is missing
//!    and the service's own checks pass), until shutdown. Each task finishes what it holds first.

use std::future::Future;
use std::pin::Pin;

use futures::FutureExt;
use futures::future::Shared;

use crate::consume::Worker;
use crate::jetstream::{Bus, Messages};
use crate::ops::{self, Check};
use crate::subjects::StreamKind;
use crate::{Clock, CommonConfig};

/// Shutdown as every task of a service waits for it: one future, cloned.
pub type Shutdown = Shared<Pin<Box<dyn Future<Output = ()> + Send>>>;

/// A service connected to NATS, with what it needs to open consumers and run.
pub struct Service {
    pub bus: Bus,
    pub name: &'static str,
    pub clock: Clock,
    config: CommonConfig,
    checks: Vec<Check>,
}

impl Service {
    /// Connects as `name` (the connection's name, and the service's health and metrics port).
    pub async fn connect(config: &CommonConfig, name: &'static str) -> anyhow::Result<Self> {
        // The recorder first: a message handled before `/metrics` is served must still be counted.
        ops::metrics();
        let bus = Bus::for_service(config, name).await?;
        let checks = vec![ops::nats_check(bus.client.clone()), bus.consumers_check()];
        Ok(Self {
            bus,
            name,
            clock: config.clock.clone(),
            config: config.clone(),
            checks,
        })
    }

    /// The topology's durable consumer `consumer` on `kind`'s stream, made or bound.
    pub async fn consumer(&self, kind: StreamKind, consumer: &str) -> anyhow::Result<Messages> {
        let spec = crate::topology::consumer_spec(&self.config.subjects, kind, consumer);
        self.bus.consumer(&spec).await
    }

    /// A consumer loop with the service's settings (`BO_BATCH_SIZE`, `BO_MAX_DELIVER`, `BO_MAX_WAIT_SECS`)
    /// whose dead letters name `service`.
    pub fn worker(&self, service: &'static str) -> Worker {
        Worker {
            bus: self.bus.clone(),
            service,
            batch_size: self.config.batch_size,
            max_deliver: self.config.max_deliver,
            max_wait: self.config.max_wait,
        }
    }

    /// Adds a readiness check (a database the service cannot work without, say).
    pub fn check(&mut self, check: Check) {
        self.checks.push(check);
    }

    /// The service's settings.
    pub fn config(&self) -> &CommonConfig {
        &self.config
    }

    /// Runs `tasks` (given the shared shutdown) beside the clock follower and the health and metrics server
    /// until `shutdown`; the first task to fail stops the service with its error.
    pub async fn run<F, Fut>(
        &self,
        shutdown: impl Future<Output = ()> + Send + 'static,
        tasks: F,
    ) -> anyhow::Result<()>
    where
        F: FnOnce(Shutdown) -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        let shutdown: Shutdown =
            (Box::pin(shutdown) as Pin<Box<dyn Future<Output = ()> + Send>>).shared();
        tracing::info!(
            service = self.name,
            prefix = self.config.subjects.prefix(),
            clock = ?self.clock,
            "running"
        );
        let addr = self.config.http_addr(self.name);
        tokio::try_join!(
            tasks(shutdown.clone()),
            self.clock.follow(&self.bus, shutdown.clone()),
            ops::serve(addr, self.checks.clone(), shutdown),
        )?;
        Ok(())
    }
}
