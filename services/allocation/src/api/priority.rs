//! `<p>.api.order.priority`: re-prioritise an order from the desk. The request becomes an `OrderPriorityChanged`
//! on `<p>.in.order.priority`, as one from the OMS would be, so the change goes through the consumer, its
//! transaction and the outbox like every other; the reply waits a few seconds for it to be applied.

use std::time::Duration;

use backorder_proto::v1::{
    ChangePriorityReply, ChangePriorityRequest, GetOrderRequest, OrderPriorityChanged,
};
use backorder_runtime::limits::{self, Check};

use super::{Api, ApiError};

/// How long the reply waits for the change to be applied; after that it says `applied: false` (the change is
/// stored in `<P>_IN` and will be).
const WAIT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(50);

impl Api {
    pub async fn order_priority(
        &self,
        request: ChangePriorityRequest,
    ) -> Result<ChangePriorityReply, ApiError> {
        let request_id = format!("desk/{}", uuid::Uuid::new_v4());
        let change = priority_change(&request, &request_id)?;
        // Recorded once checked: a refused request's field may be any size.
        tracing::Span::current().record("order_id", change.order_id.as_str());
        let known: bool =
            sqlx::query_scalar("select exists (select 1 from orders where order_id = $1)")
                .bind(&change.order_id)
                .fetch_one(&self.pool)
                .await?;
        if !known {
            return Err(ApiError::NotFound(format!(
                "no order {} (an order not accepted yet cannot be re-prioritised from the desk)",
                limits::shown(&change.order_id)
            )));
        }
        self.bus
            .publish(self.engine.subjects.order_priority(), &request_id, &change)
            .await
            .map_err(|e| ApiError::Unavailable(format!("publishing the priority change: {e:#}")))?;
        let applied = self.applied(&format!("priority/{request_id}")).await?;
        tracing::info!(%request_id, priority = change.priority, applied, "priority change sent");
        let order = if applied {
            self.order_get(GetOrderRequest {
                order_id: change.order_id,
            })
            .await
            // The change is applied either way; a reply without the order says so rather than failing.
            .inspect_err(
                |error| tracing::warn!(%error, "applied, but the order could not be read back"),
            )
            .ok()
        } else {
            None
        };
        Ok(ChangePriorityReply {
            request_id,
            applied,
            order,
        })
    }

    /// Waits up to [`WAIT`] for the engine to record `message_id`: true once applied, false when the wait ran
    /// out; a refusal is a conflict.
    async fn applied(&self, message_id: &str) -> Result<bool, ApiError> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let refusal: Option<Option<String>> =
                sqlx::query_scalar("select refusal from processed_messages where message_id = $1")
                    .bind(message_id)
                    .fetch_optional(&self.pool)
                    .await?;
            match refusal {
                Some(None) => return Ok(true),
                Some(Some(reason)) => return Err(ApiError::Conflict(reason)),
                None if tokio::time::Instant::now() >= deadline => return Ok(false),
                None => tokio::time::sleep(POLL).await,
            }
        }
    }
}

/// The message a request sends, checked against the bounds allocation holds it to; the operator is named in
/// the reason, which the audit trail keeps.
fn priority_change(
    request: &ChangePriorityRequest,
    request_id: &str,
) -> Result<OrderPriorityChanged, ApiError> {
    let mut c = Check::new();
    c.id("order_id", &request.order_id);
    c.priority("priority", request.priority);
    if request.operator.trim().is_empty() {
        c.fail("operator", "is missing: say who asks, for the audit trail");
    } else {
        c.optional_id("operator", &request.operator);
    }
    let reason = request.reason.trim();
    let by = format!("by {}", request.operator);
    // The reason and the operator together must fit the message's reason.
    c.text(
        "reason",
        reason,
        limits::MAX_TEXT_LEN.saturating_sub(by.len() + 3),
    );
    c.result()
        .map_err(|violations| ApiError::BadRequest(format!("order.priority: {violations}")))?;
    Ok(OrderPriorityChanged {
        request_id: request_id.to_string(),
        order_id: request.order_id.clone(),
        priority: request.priority,
        reason: if reason.is_empty() {
            by
        } else {
            format!("{reason} ({by})")
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(
        order_id: &str,
        priority: i32,
        reason: &str,
        operator: &str,
    ) -> ChangePriorityRequest {
        ChangePriorityRequest {
            order_id: order_id.into(),
            priority,
            reason: reason.into(),
            operator: operator.into(),
        }
    }

    fn refused(request: ChangePriorityRequest) -> String {
        match priority_change(&request, "desk/1") {
            Err(ApiError::BadRequest(reason)) => reason,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn the_reason_names_the_operator() {
        let change = priority_change(&request("SO-1", 5, " vip ", "ana"), "desk/1").unwrap();
        assert_eq!(
            (
                change.request_id.as_str(),
                change.priority,
                change.reason.as_str()
            ),
            ("desk/1", 5, "vip (by ana)")
        );
        let change = priority_change(&request("SO-1", -3, "", "ana"), "desk/1").unwrap();
        assert_eq!(change.reason, "by ana");
    }

    #[test]
    fn an_operator_is_required_and_every_field_is_bounded() {
        let reason = refused(request("SO-1", 5, "vip", " "));
        assert!(reason.contains("operator: is missing"), "{reason}");
        let reason = refused(request("SO-1", 5, "vip", &"o".repeat(2000)));
        assert!(
            reason.contains("operator: ") && reason.contains("at most 128"),
            "{reason}"
        );
        let reason = refused(request("", 1_000_001, &"x".repeat(1000), "ana"));
        for expected in [
            "order_id: is missing",
            "priority: 1000001 is outside -1000000..=1000000",
            "reason: ",
            "at most 991",
        ] {
            assert!(reason.contains(expected), "{expected:?} not in {reason}");
        }
        // What passes here also passes allocation's own check of the message.
        let longest = "x".repeat(991);
        let change = priority_change(&request("SO-1", 1, &longest, "ana"), "desk/1").unwrap();
        assert_eq!(change.reason.len(), limits::MAX_TEXT_LEN);
    }
}
