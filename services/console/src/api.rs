//! The query API from the console's side: one protobuf request, one protobuf reply, over core NATS
//! request/reply on `<p>.api.<endpoint>`. Whatever goes wrong becomes a [`Failure`] with the HTTP status the
//! page is served with.

use std::time::Duration;

use async_nats::connection::State;
use backorder_proto::v1 as pb;
use backorder_runtime::Subjects;
use backorder_runtime::query::{self, QueryError};
use prost::Message;

/// Why a page could not get what it asked for: the API's own error (its micro services error headers) or the
/// bus not answering.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// The HTTP status the page gets: the API's code (400, 404, 409, 500, 503) or 503 when nothing answers.
    pub status: u16,
    pub message: String,
}

impl Failure {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// NATS or the service behind it does not answer: the page can be tried again.
    pub fn is_unavailable(&self) -> bool {
        self.status == 503
    }
}

/// A [`QueryError`] on `subject` as the page's status and message: the API's own code when it refused (502 for
/// a code that is no HTTP error), 502 for a reply that does not decode, 503 when nothing answers in time.
pub fn failure<Rep>(error: QueryError, subject: &str, timeout: Duration, prefix: &str) -> Failure {
    match error {
        QueryError::Refused { code, message } => {
            let message = if message.is_empty() {
                format!("the query API answered with error {code}")
            } else {
                message
            };
            let status = Some(code)
                .filter(|status| (400..=599).contains(status))
                .unwrap_or(502);
            Failure { status, message }
        }
        QueryError::Decode(e) => {
            let name = std::any::type_name::<Rep>()
                .rsplit("::")
                .next()
                .unwrap_or("reply");
            Failure::new(502, format!("The reply on {subject} is not a {name}: {e}"))
        }
        QueryError::NoResponders => Failure::new(
            503,
            format!(
                "Nothing answers on {subject}: the query API is served by allocation; is it running with BO_PREFIX={prefix}?"
            ),
        ),
        QueryError::TimedOut => Failure::new(
            503,
            format!(
                "The query API did not answer on {subject} within {:.1} s; try again.",
                timeout.as_secs_f64()
            ),
        ),
        QueryError::Other(e) => Failure::new(503, format!("Asking {subject} failed: {e}")),
    }
}

/// `url` (one NATS URL or several, comma-separated) with any `user:password@` dropped: the pages that show it
/// are open to every reader.
pub fn without_credentials(url: &str) -> String {
    url.split(',')
        .map(|one| {
            let (scheme, rest) = one.split_once("://").unwrap_or(("", one));
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let rest = match rest[..authority_end].rfind('@') {
                Some(at) => &rest[at + 1..],
                None => rest,
            };
            if scheme.is_empty() {
                rest.to_string()
            } else {
                format!("{scheme}://{rest}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A client of the query API under one prefix.
#[derive(Clone)]
pub struct Api {
    client: async_nats::Client,
    subjects: Subjects,
    nats_url: String,
    timeout: Duration,
}

impl Api {
    /// Connects in the background: the console serves its pages (503 ones) while NATS is down and recovers by
    /// itself when it comes back.
    pub async fn connect(
        nats: &backorder_runtime::nats::NatsOptions,
        subjects: Subjects,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let client = nats.connect_retrying("console").await?;
        Ok(Self {
            client,
            subjects,
            nats_url: without_credentials(&nats.url),
            timeout,
        })
    }

    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    pub fn prefix(&self) -> &str {
        self.subjects.prefix()
    }

    /// Sends `request` to `<p>.api.<endpoint>` and decodes the reply.
    pub async fn call<Req: Message, Rep: Message + Default>(
        &self,
        endpoint: &str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Rep, Failure> {
        let subject = self.subjects.api(endpoint);
        let state = self.client.connection_state();
        if state != State::Connected {
            return Err(Failure::new(
                503,
                format!(
                    "The console is not connected to NATS at {} ({state}). It reconnects by itself: try again in a moment.",
                    self.nats_url
                ),
            ));
        }
        let started = std::time::Instant::now();
        let reply = query::request(&self.client, subject.clone(), request, timeout)
            .await
            .map_err(|error| failure::<Rep>(error, &subject, timeout, self.subjects.prefix()));
        tracing::debug!(%subject, took_ms = started.elapsed().as_millis() as u64, "api call");
        reply
    }

    async fn read<Req: Message, Rep: Message + Default>(
        &self,
        endpoint: &str,
        request: &Req,
    ) -> Result<Rep, Failure> {
        self.call(endpoint, request, self.timeout).await
    }

    pub async fn order(&self, order_id: &str) -> Result<pb::GetOrderReply, Failure> {
        let request = pb::GetOrderRequest {
            order_id: order_id.into(),
        };
        self.read("order.get", &request).await
    }

    pub async fn backorders(
        &self,
        request: &pb::ListBackordersRequest,
    ) -> Result<pb::ListBackordersReply, Failure> {
        self.read("backorders.list", request).await
    }

    pub async fn sku_queue(&self, sku: &str) -> Result<pb::GetSkuQueueReply, Failure> {
        let request = pb::GetSkuQueueRequest { sku: sku.into() };
        self.read("sku.queue", &request).await
    }

    pub async fn preview(
        &self,
        request: &pb::PreviewReceiptRequest,
    ) -> Result<pb::PreviewReceiptReply, Failure> {
        self.read("receipt.preview", request).await
    }

    pub async fn kpis(&self, request: &pb::GetKpisRequest) -> Result<pb::GetKpisReply, Failure> {
        self.read("kpi.get", request).await
    }

    pub async fn dead_letters(
        &self,
        request: &pb::ListDeadLettersRequest,
    ) -> Result<pb::ListDeadLettersReply, Failure> {
        self.read("deadletters.list", request).await
    }

    pub async fn replay(
        &self,
        request: &pb::ReplayDeadLetterRequest,
    ) -> Result<pb::ReplayDeadLetterReply, Failure> {
        self.read("deadletters.replay", request).await
    }

    /// The API waits (a few seconds) for the change to be applied: this one gets more time than a read.
    pub async fn change_priority(
        &self,
        request: &pb::ChangePriorityRequest,
    ) -> Result<pb::ChangePriorityReply, Failure> {
        let timeout = self.timeout.max(Duration::from_secs(15));
        self.call("order.priority", request, timeout).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(error: QueryError) -> Failure {
        failure::<pb::GetOrderReply>(
            error,
            "shop.api.order.get",
            Duration::from_millis(2500),
            "shop",
        )
    }

    #[test]
    fn the_url_shown_on_a_page_carries_no_credentials() {
        assert_eq!(
            without_credentials("nats://ann:s3cr@t@broker:4222"),
            "nats://broker:4222"
        );
        assert_eq!(
            without_credentials("tls://tok@a:4222,nats://b:4222"),
            "tls://a:4222,nats://b:4222"
        );
        assert_eq!(without_credentials("127.0.0.1:4222"), "127.0.0.1:4222");
        assert_eq!(without_credentials("u:p@host"), "host");
    }

    #[test]
    fn the_apis_refusal_becomes_the_pages_status_and_message() {
        let found = page(QueryError::Refused {
            code: 404,
            message: "no order SO-9".into(),
        });
        assert_eq!(found, Failure::new(404, "no order SO-9"));
        let odd = page(QueryError::Refused {
            code: 7,
            message: String::new(),
        });
        assert_eq!(odd.status, 502);
        assert!(odd.message.contains('7'), "{}", odd.message);
    }

    #[test]
    fn a_bus_that_does_not_answer_is_unavailable_and_a_bad_reply_is_502() {
        let nobody = page(QueryError::NoResponders);
        assert!(nobody.is_unavailable());
        assert!(
            nobody.message.contains("BO_PREFIX=shop"),
            "{}",
            nobody.message
        );
        let late = page(QueryError::TimedOut);
        assert!(late.is_unavailable());
        assert!(late.message.contains("within 2.5 s"), "{}", late.message);
        assert!(page(QueryError::Other("closed".into())).is_unavailable());
        let bad = page(QueryError::Decode("buffer underflow".into()));
        assert_eq!(bad.status, 502);
        assert_eq!(
            bad.message,
            "The reply on shop.api.order.get is not a GetOrderReply: buffer underflow"
        );
    }
}
