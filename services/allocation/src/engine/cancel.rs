//! Cancellation: backordered units leave the queue, allocated units go back to stock and at once to the next
//! backorders in line; shipped units stay shipped.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use backorder_proto::v1::OrderCancelRequested;
use prost::Message;

use backorder_proto::v1::{DelayAnswer, OrderPriorityChanged};

use super::lines::{Delta, LineRow};
use super::{Applied, Work};
use crate::command::Command;
use crate::rules;

impl Work<'_> {
    pub(super) async fn cancel(
        &mut self,
        request: &OrderCancelRequested,
        cause: &str,
    ) -> Result<Applied, sqlx::Error> {
        let order_id = &request.order_id;
        let mut lines = self.lines_of(order_id).await?;
        if lines.is_empty() {
            // Orders reach allocation through order-intake; a cancellation sent right after its order may
            // overtake it, by any length of time when intake is down. Kept until the order comes.
            let payload = request.encode_to_vec();
            if self
                .keep_for_order(order_id, cause, "cancel", payload, &request.request_id)
                .await?
            {
                return Ok(Applied::Done);
            }
            // The order committed meanwhile: cancelled now, its SKUs locked first (nobody else holds them).
            lines = self.lines_of(order_id).await?;
            self.lock_skus_of(&lines).await?;
        }
        let units: BTreeMap<i32, rules::LineUnits> =
            lines.iter().map(|l| (l.line_no, l.units())).collect();
        let requested: Vec<(i32, i64)> = request
            .lines
            .iter()
            .map(|l| (l.line_no as i32, l.quantity))
            .collect();
        let plan = match rules::plan_cancel(&units, &requested) {
            Ok(plan) => plan,
            Err(error) => {
                return Ok(Applied::Refused(format!(
                    "cancel {} for order {order_id}: {error}",
                    request.request_id
                )));
            }
        };
        let reason = if request.reason.trim().is_empty() {
            "cancelled".to_string()
        } else {
            format!("cancelled: {}", request.reason.trim())
        };
        self.cancel_units(
            order_id,
            &lines,
            &plan,
            &reason,
            Lost::CustomerCancelled,
            cause,
        )
        .await?;
        Ok(Applied::Done)
    }

    /// Carries out a planned cancellation of `lines` (the order's lines as they are): backordered units leave
    /// the queue, allocated ones go back to stock and on to the next backorders in line. The backordered ones
    /// are demand lost for lack of stock, recorded as `lost`.
    pub(super) async fn cancel_units(
        &mut self,
        order_id: &str,
        lines: &[LineRow],
        plan: &[rules::Cancel],
        reason: &str,
        lost: Lost,
        cause: &str,
    ) -> Result<(), sqlx::Error> {
        self.lock_skus_of(lines).await?;
        self.touch(&[order_id.to_string()], cause).await?;
        let by_line: BTreeMap<i32, &LineRow> = lines.iter().map(|l| (l.line_no, l)).collect();
        let mut freed = BTreeSet::new();
        let mut changes = Vec::with_capacity(plan.len());
        let mut lost_units = Vec::new();
        for cancel in plan {
            let line = by_line[&cancel.line_no];
            if cancel.from_backordered > 0 {
                lost_units.push(LostUnits {
                    order_id: order_id.to_string(),
                    line_no: cancel.line_no,
                    sku: line.sku.clone(),
                    units: cancel.from_backordered,
                    why: lost,
                    cause: cause.to_string(),
                });
            }
            let withdrawn = (line.released - (line.allocated - cancel.from_allocated)).max(0);
            let delta = Delta {
                allocated: -cancel.from_allocated,
                backordered: -cancel.from_backordered,
                cancelled: cancel.from_allocated + cancel.from_backordered,
                released: -withdrawn,
                ..Default::default()
            };
            changes.push((order_id.to_string(), cancel.line_no, delta));
            self.withdraw(order_id, cancel.line_no, &line.sku, withdrawn, reason);
            if cancel.from_allocated > 0 {
                self.stock_mut(&line.sku).allocated -= cancel.from_allocated;
                freed.insert(line.sku.clone());
            }
            let detail = format!(
                "{reason} ({} backordered, {} allocated)",
                cancel.from_backordered, cancel.from_allocated
            );
            self.record(
                order_id,
                cancel.line_no,
                &line.sku,
                "cancelled",
                cancel.from_allocated + cancel.from_backordered,
                cause,
                detail,
            );
        }
        self.change_lines(&changes, cause).await?;
        self.record_lost(&lost_units).await?;
        tracing::info!(
            units = plan
                .iter()
                .map(|c| c.from_allocated + c.from_backordered)
                .sum::<i64>(),
            "order cancelled"
        );
        for sku in freed {
            self.fill_backorders(&sku, cause).await?;
        }
        Ok(())
    }
}

/// Why units were cancelled for lack of stock (`lost_units.reason`; docs/kpis.md, lost demand).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lost {
    /// At intake: the SKU takes no backorders.
    NotBackorderable,
    /// At intake: the SKU takes no more backorders (its limit is reached).
    OverCap,
    /// Waiting units, when the customer declined a delay or did not answer in time.
    NoConsent,
    /// Waiting units the customer cancelled.
    CustomerCancelled,
}

impl Lost {
    pub(super) fn reason(self) -> &'static str {
        match self {
            Lost::NotBackorderable => "not_backorderable",
            Lost::OverCap => "over_cap",
            Lost::NoConsent => "no_consent",
            Lost::CustomerCancelled => "customer_cancelled",
        }
    }
}

/// Units of a line lost as demand: what a customer wanted and did not get.
pub(super) struct LostUnits {
    pub order_id: String,
    pub line_no: i32,
    pub sku: String,
    pub units: i64,
    pub why: Lost,
    /// The message that cost them.
    pub cause: String,
}

impl Work<'_> {
    /// Records lost units in this transaction, under each order's customer, in one statement.
    pub(super) async fn record_lost(&mut self, lost: &[LostUnits]) -> Result<(), sqlx::Error> {
        if lost.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "insert into lost_units (order_id, line_no, sku, customer_id, reason, units, cause, at)
             select l.order_id, l.line_no, l.sku, o.customer_id, l.reason, l.units, l.cause, $7
             from unnest($1::text[], $2::int[], $3::text[], $4::bigint[], $5::text[], $6::text[])
                  as l(order_id, line_no, sku, units, reason, cause)
             join orders o on o.order_id = l.order_id",
        )
        .bind(lost.iter().map(|l| l.order_id.clone()).collect::<Vec<_>>())
        .bind(lost.iter().map(|l| l.line_no).collect::<Vec<_>>())
        .bind(lost.iter().map(|l| l.sku.clone()).collect::<Vec<_>>())
        .bind(lost.iter().map(|l| l.units).collect::<Vec<_>>())
        .bind(lost.iter().map(|l| l.why.reason()).collect::<Vec<_>>())
        .bind(lost.iter().map(|l| l.cause.clone()).collect::<Vec<_>>())
        .bind(self.now)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}

/// A request kept for an order not seen yet: its message id, its kind and the message as received.
pub(super) struct Kept {
    id: String,
    kind: String,
    payload: Vec<u8>,
}

impl Work<'_> {
    /// Keeps a request for an order not seen yet (a cancellation, a delay answer, a priority change) until the
    /// order arrives; false when the order committed meanwhile (then the caller carries the request out at once).
    ///
    /// The order's lock ([`lock_order_id`](Self::lock_order_id)) is taken first, as the transaction that
    /// accepts an order takes it before it reads what was kept: either that one committed before (the order
    /// is seen here) or it waits for this one's commit (and sees what is kept). Without it, a request kept
    /// while its order was being accepted was never applied.
    pub(super) async fn keep_for_order(
        &mut self,
        order_id: &str,
        message_id: &str,
        kind: &str,
        payload: Vec<u8>,
        request_id: &str,
    ) -> Result<bool, sqlx::Error> {
        self.lock_order_id(order_id).await?;
        let known: bool =
            sqlx::query_scalar("select exists (select 1 from orders where order_id = $1)")
                .bind(order_id)
                .fetch_one(&mut *self.tx)
                .await?;
        if known {
            tracing::info!(request_id, "the order arrived meanwhile: applied at once");
            return Ok(false);
        }
        sqlx::query(
            "insert into pending_requests (message_id, order_id, kind, payload, received_at)
             values ($1, $2, $3, $4, $5) on conflict do nothing",
        )
        .bind(message_id)
        .bind(order_id)
        .bind(kind)
        .bind(payload)
        .bind(self.now)
        .execute(&mut *self.tx)
        .await?;
        tracing::info!(
            request_id,
            "order not known yet: the request is kept and applied when it arrives"
        );
        Ok(true)
    }

    /// A lock on an order id for the rest of the transaction, also for an order that does not exist yet.
    async fn lock_order_id(&mut self, order_id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("select pg_advisory_xact_lock(hashtextextended('order/' || $1, 0))")
            .bind(order_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Takes what was kept for new orders (see [`keep_for_order`](Self::keep_for_order)), per order in the
    /// order it came. Each order's lock is taken first, in order-id order, as a request being kept takes it.
    pub(super) async fn take_kept(
        &mut self,
        order_ids: &[String],
    ) -> Result<HashMap<String, Vec<Kept>>, sqlx::Error> {
        let mut sorted = order_ids.to_vec();
        sorted.sort();
        sorted.dedup();
        // unnest hands the ids to the function in array order: the locks are taken sorted.
        sqlx::query(
            "select pg_advisory_xact_lock(hashtextextended('order/' || id, 0)) from unnest($1::text[]) as id",
        )
        .bind(&sorted)
        .execute(&mut *self.tx)
        .await?;
        let rows: Vec<(String, String, String, Vec<u8>)> = sqlx::query_as(
            "with kept as (delete from pending_requests where order_id = any($1)
                           returning order_id, message_id, kind, payload, received_at)
             select order_id, message_id, kind, payload from kept order by order_id, received_at, message_id",
        )
        .bind(&sorted)
        .fetch_all(&mut *self.tx)
        .await?;
        let mut kept: HashMap<String, Vec<Kept>> = HashMap::new();
        for (order_id, id, kind, payload) in rows {
            kept.entry(order_id)
                .or_default()
                .push(Kept { id, kind, payload });
        }
        Ok(kept)
    }

    /// Applies what was kept for a new order, in the transaction that accepts it: a cancelled order is
    /// accepted and cancelled at once, and nothing of it reaches the WMS.
    pub(super) async fn apply_kept(&mut self, kept: Vec<Kept>) -> Result<(), sqlx::Error> {
        for Kept { id, kind, payload } in kept {
            // Stored by this service from a message it decoded and checked: it decodes.
            let (command, applied) = match kind.as_str() {
                "cancel" => match OrderCancelRequested::decode(payload.as_slice()) {
                    Ok(request) => {
                        let applied = self.cancel(&request, &id).await?;
                        (Command::CancelOrder(request), applied)
                    }
                    Err(error) => {
                        tracing::error!(%id, %error, "a kept cancellation does not decode");
                        continue;
                    }
                },
                "delay-answer" => match DelayAnswer::decode(payload.as_slice()) {
                    Ok(answer) => {
                        let applied = self.answer_delay(&answer, &id).await?;
                        (Command::AnswerDelay(answer), applied)
                    }
                    Err(error) => {
                        tracing::error!(%id, %error, "a kept delay answer does not decode");
                        continue;
                    }
                },
                "priority" => match OrderPriorityChanged::decode(payload.as_slice()) {
                    Ok(change) => {
                        let applied = self.change_priority(&change, &id).await?;
                        (Command::ChangePriority(change), applied)
                    }
                    Err(error) => {
                        tracing::error!(%id, %error, "a kept priority change does not decode");
                        continue;
                    }
                },
                other => {
                    tracing::error!(%id, kind = other, "a kept request of an unknown kind");
                    continue;
                }
            };
            tracing::info!(%id, ?applied, "kept request applied to its order");
            if let Applied::Refused(reason) = &applied {
                self.refuse(&id, &id, &command, reason).await?;
            }
        }
        Ok(())
    }
}
