//! What an OMS and a WMS subscribed to the outbound subjects over core NATS see, and when: per order the
//! first `OrderStatus`, the first that says ALLOCATED, and the first `AllocationCreated`. Timestamps are
//! taken as the message arrives, before anything else is done with it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use backorder_proto::v1::{AllocationCreated, OrderStatus, order_status};
use backorder_runtime::Subjects;
use futures::StreamExt;
use prost::Message;

/// Which first sighting.
#[derive(Clone, Copy, Debug)]
pub enum Seen {
    /// Any `OrderStatus` of the order.
    Status,
    /// An `OrderStatus` with status ALLOCATED.
    Allocated,
    /// An `AllocationCreated` of the order.
    Allocation,
}

#[derive(Default)]
struct State {
    status: HashMap<String, Instant>,
    allocated: HashMap<String, Instant>,
    allocation: HashMap<String, Instant>,
}

impl State {
    fn map(&self, seen: Seen) -> &HashMap<String, Instant> {
        match seen {
            Seen::Status => &self.status,
            Seen::Allocated => &self.allocated,
            Seen::Allocation => &self.allocation,
        }
    }
}

#[derive(Clone)]
pub struct Watch {
    state: Arc<Mutex<State>>,
    /// Kept so the connection lives as long as the watch.
    _client: async_nats::Client,
}

impl Watch {
    /// Subscribes on a connection of its own, so the bench's publishing does not delay what it sees.
    pub async fn start(client: async_nats::Client, subjects: &Subjects) -> anyhow::Result<Self> {
        let watch = Watch {
            state: Arc::default(),
            _client: client.clone(),
        };
        let mut statuses = client.subscribe(subjects.order_status()).await?;
        let mut allocations = client.subscribe(subjects.allocation_created()).await?;
        // The server has both subscriptions once a round trip has passed.
        client.flush().await?;
        let state = watch.state.clone();
        tokio::spawn(async move {
            while let Some(message) = statuses.next().await {
                let at = Instant::now();
                let Ok(status) = OrderStatus::decode(message.payload.as_ref()) else {
                    continue;
                };
                let mut state = state.lock().unwrap();
                if status.status == order_status::Status::Allocated as i32 {
                    state.allocated.entry(status.order_id.clone()).or_insert(at);
                }
                state.status.entry(status.order_id).or_insert(at);
            }
        });
        let state = watch.state.clone();
        tokio::spawn(async move {
            while let Some(message) = allocations.next().await {
                let at = Instant::now();
                if let Ok(allocation) = AllocationCreated::decode(message.payload.as_ref()) {
                    let mut state = state.lock().unwrap();
                    state.allocation.entry(allocation.order_id).or_insert(at);
                }
            }
        });
        Ok(watch)
    }

    /// When `order` was first seen so.
    pub fn first(&self, seen: Seen, order: &str) -> Option<Instant> {
        self.state.lock().unwrap().map(seen).get(order).copied()
    }

    /// How many orders whose id starts with `prefix` were seen so, and the latest of their first sightings.
    pub fn tally(&self, seen: Seen, prefix: &str) -> (usize, Option<Instant>) {
        let state = self.state.lock().unwrap();
        let mut matching = state
            .map(seen)
            .iter()
            .filter(|(id, _)| id.starts_with(prefix))
            .map(|(_, at)| *at);
        let first = matching.next();
        let (count, last) = matching.fold((first.is_some() as usize, first), |(n, last), at| {
            (n + 1, last.max(Some(at)))
        });
        (count, last)
    }

    /// Waits until `count` orders starting with `prefix` were seen so; returns the last first sighting.
    pub async fn wait_for(
        &self,
        seen: Seen,
        prefix: &str,
        count: usize,
        patience: Duration,
    ) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + patience;
        loop {
            let (seen_so_far, last) = self.tally(seen, prefix);
            if seen_so_far >= count
                && let Some(last) = last
            {
                return Ok(last);
            }
            if Instant::now() > deadline {
                bail!(
                    "{seen:?} seen for {seen_so_far} of {count} orders {prefix}* within {patience:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
