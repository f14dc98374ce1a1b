//! Promises kept over time: the timers of a batch as of a moment (SKUs to re-project, date notices owed,
//! consent deadlines passed), and the customer's answer to a delay.

use std::collections::{BTreeMap, BTreeSet};

use backorder_proto::v1::DelayAnswer;
use chrono::{DateTime, Utc};

use super::cancel::Lost;
use super::reproject::date;
use super::{Applied, Work};
use crate::rules;

impl Work<'_> {
    /// The timers due at `self.now`: SKUs to re-project, consent deadlines passed, ETA notices owed.
    pub(super) async fn fire_timers(&mut self) -> Result<(), sqlx::Error> {
        let skus: Vec<String> =
            sqlx::query_scalar("select sku from stock where eta_check_at <= $1 order by sku")
                .bind(self.now)
                .fetch_all(&mut *self.tx)
                .await?;
        let candidates: Vec<String> = sqlx::query_scalar(
            "select order_id from orders where consent_due <= $1 order by order_id",
        )
        .bind(self.now)
        .fetch_all(&mut *self.tx)
        .await?;
        let owed: Vec<String> = sqlx::query_scalar(
            "select order_id from orders where eta_notify_due <= $1 order by order_id",
        )
        .bind(self.now)
        .fetch_all(&mut *self.tx)
        .await?;
        let mut locks: BTreeSet<String> = skus.iter().cloned().collect();
        locks.extend(self.skus_of(&candidates).await?);
        self.lock_skus(locks.into_iter().collect()).await?;
        // Asked again with the order rows locked: an answer that committed since the first look cleared the
        // deadline, and the customer's word wins over the clock.
        let expired: Vec<String> = sqlx::query_scalar(
            "select order_id from orders where order_id = any($1) and consent_due <= $2
             order by order_id for update",
        )
        .bind(&candidates)
        .bind(self.now)
        .fetch_all(&mut *self.tx)
        .await?;
        let cause = format!("clock/{}", self.now.to_rfc3339());
        for sku in skus {
            self.skus.reproject(&sku, &cause, true);
        }
        for order_id in expired {
            self.consent_expired(&order_id, &cause).await?;
        }
        self.touch(&owed, &cause).await
    }

    pub(super) async fn answer_delay(
        &mut self,
        answer: &DelayAnswer,
        cause: &str,
    ) -> Result<Applied, sqlx::Error> {
        let order_id = &answer.order_id;
        // Locked (after the stock rows, see the engine's lock order): the deadline's timer cannot act on the
        // order between this look and the commit.
        let awaited: Option<DateTime<Utc>> = loop {
            let awaited: Option<Option<DateTime<Utc>>> =
                sqlx::query_scalar("select consent_due from orders where order_id = $1 for update")
                    .bind(order_id)
                    .fetch_optional(&mut *self.tx)
                    .await?;
            if let Some(awaited) = awaited {
                break awaited;
            }
            // The answer overtook its order (a customer answering that fast is unlikely, an OMS replaying
            // its outbox is not): kept until the order comes, or judged now if it came meanwhile.
            let payload = prost::Message::encode_to_vec(answer);
            if self
                .keep_for_order(order_id, cause, "delay-answer", payload, &answer.answer_id)
                .await?
            {
                return Ok(Applied::Done);
            }
        };
        if awaited.is_none() {
            return Ok(Applied::Refused(format!(
                "delay answer {}: no consent to a delay is awaited for order {order_id} \
                 (never asked, already answered, or the deadline passed)",
                answer.answer_id
            )));
        }
        if answer.agree {
            self.accept_delay(order_id, "the customer agreed to the new dates", cause)
                .await?;
        } else {
            self.cancel_waiting(
                order_id,
                "cancelled: the customer declined the delay",
                cause,
            )
            .await?;
        }
        Ok(Applied::Done)
    }

    /// No answer by the deadline: cancel what waits, or keep it, as configured.
    async fn consent_expired(&mut self, order_id: &str, cause: &str) -> Result<(), sqlx::Error> {
        if self.policy.cancel_without_consent {
            let reason = "cancelled: no answer to the delay notice by its deadline";
            self.cancel_waiting(order_id, reason, cause).await
        } else {
            let reason = "kept: no answer to the delay notice by its deadline";
            self.accept_delay(order_id, reason, cause).await
        }
    }

    /// The current dates become the ones promised: a further slip is measured from them.
    async fn accept_delay(
        &mut self,
        order_id: &str,
        reason: &str,
        cause: &str,
    ) -> Result<(), sqlx::Error> {
        let lines = self.lines_of(order_id).await?;
        self.lock_skus_of(&lines).await?;
        self.touch(&[order_id.to_string()], cause).await?;
        for line in lines.iter().filter(|l| l.backordered > 0) {
            let detail = format!("{reason}; promised {}", date(line.eta));
            self.record(
                order_id,
                line.line_no,
                &line.sku,
                "delay agreed",
                line.backordered,
                cause,
                detail,
            );
        }
        let written: Vec<String> = sqlx::query_scalar(
            "update order_lines set promised_eta = eta, eta_told = eta
             where order_id = $1 and backordered > 0 returning sku",
        )
        .bind(order_id)
        .fetch_all(&mut *self.tx)
        .await?;
        self.lines_written(written);
        self.orders.consent_settled.insert(order_id.to_string());
        Ok(())
    }

    /// Cancels every backordered unit of the order, lost for want of consent; what is allocated stays.
    async fn cancel_waiting(
        &mut self,
        order_id: &str,
        reason: &str,
        cause: &str,
    ) -> Result<(), sqlx::Error> {
        let lines = self.lines_of(order_id).await?;
        // Touched even when nothing waits any more (filled since the question): the order's status clears
        // the question.
        self.touch(&[order_id.to_string()], cause).await?;
        let units: BTreeMap<i32, rules::LineUnits> =
            lines.iter().map(|l| (l.line_no, l.units())).collect();
        let waiting: Vec<(i32, i64)> = lines
            .iter()
            .filter(|l| l.backordered > 0)
            .map(|l| (l.line_no, l.backordered))
            .collect();
        if !waiting.is_empty() {
            let plan = rules::plan_cancel(&units, &waiting)
                .expect("backordered units can always be cancelled");
            self.cancel_units(order_id, &lines, &plan, reason, Lost::NoConsent, cause)
                .await?;
        }
        self.orders.consent_settled.insert(order_id.to_string());
        Ok(())
    }
}
