//! The query API from the console's side: one protobuf request, one protobuf reply, over core NATS
//! request/reply on `<p>.api.<endpoint>`. Whatever goes wrong becomes a [`Failure`] with the HTTP status the
//! page is served with.

use std::time::Duration;

use async_nats::connection::State;
use backorder_proto::v1 as pb;
use backorder_runtime::Subjects;
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

/// The micro services error headers of a reply, as a failure; `None` for a reply without them.
pub fn service_error(headers: Option<&async_nats::HeaderMap>) -> Option<Failure> {
    let headers = headers?;
    let code = headers.get("Nats-Service-Error-Code")?.as_str().trim();
    let message = headers
        .get("Nats-Service-Error")
        .map(|v| v.as_str().to_string())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| format!("the query API answered with error {code}"));
    let status = code
        .parse::<u16>()
        .ok()
        .filter(|status| (400..=599).contains(status))
        .unwrap_or(502);
    Some(Failure { status, message })
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
        nats_url: &str,
        subjects: Subjects,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let client = async_nats::ConnectOptions::new()
            .name("console")
            .retry_on_initial_connect()
            .connect(nats_url)
            .await?;
        Ok(Self {
            client,
            subjects,
            nats_url: nats_url.to_string(),
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
        let reply = self
            .client
            .send_request(
                subject.clone(),
                async_nats::Request::new()
                    .payload(request.encode_to_vec().into())
                    .timeout(Some(timeout)),
            )
            .await
            .map_err(|error| {
                use async_nats::client::RequestErrorKind;
                let message = match error.kind() {
                    RequestErrorKind::NoResponders => format!(
                        "Nothing answers on {subject}: the query API is served by allocation; is it running with BO_PREFIX={}?",
                        self.subjects.prefix()
                    ),
                    RequestErrorKind::TimedOut => format!(
                        "The query API did not answer on {subject} within {:.1} s; try again.",
                        timeout.as_secs_f64()
                    ),
                    _ => format!("Asking {subject} failed: {error}"),
                };
                Failure::new(503, message)
            })?;
        tracing::debug!(%subject, took_ms = started.elapsed().as_millis() as u64, "api call");
        if let Some(failure) = service_error(reply.headers.as_ref()) {
            return Err(failure);
        }
        Rep::decode(reply.payload.as_ref()).map_err(|e| {
            let name = std::any::type_name::<Rep>()
                .rsplit("::")
                .next()
                .unwrap_or("reply");
            Failure::new(502, format!("The reply on {subject} is not a {name}: {e}"))
        })
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

    fn headers(pairs: &[(&'static str, &str)]) -> async_nats::HeaderMap {
        let mut map = async_nats::HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, *v);
        }
        map
    }

    #[test]
    fn the_service_error_headers_become_the_pages_status_and_message() {
        let found = headers(&[
            ("Nats-Service-Error-Code", "404"),
            ("Nats-Service-Error", "no order SO-9"),
        ]);
        assert_eq!(
            service_error(Some(&found)),
            Some(Failure::new(404, "no order SO-9"))
        );
        let odd = headers(&[("Nats-Service-Error-Code", "7")]);
        let failure = service_error(Some(&odd)).unwrap();
        assert_eq!(failure.status, 502);
        assert!(failure.message.contains('7'), "{}", failure.message);
        assert_eq!(service_error(Some(&headers(&[("Other", "x")]))), None);
        assert_eq!(service_error(None), None);
    }
}
