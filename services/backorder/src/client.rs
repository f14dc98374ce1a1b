//! Requests to the query API (`<p>.api.<endpoint>`, protobuf both ways) and what can go wrong with them, each
//! with the exit status it ends the process with.

use std::time::Duration;

use backorder_runtime::Subjects;
use backorder_runtime::query::{self, QueryError};
use backorder_runtime::secret::mask_url;
use prost::Message;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The API answered with an error reply.
    #[error("{endpoint}: {message} (code {code})")]
    Refused {
        endpoint: String,
        code: u16,
        message: String,
    },
    /// The API answered, but not with what the contract says (or the command found nothing to show).
    #[error("{endpoint}: {detail}")]
    BadReply { endpoint: String, detail: String },
    /// Nobody subscribes to the endpoint's subject.
    #[error(
        "{endpoint}: nothing answers on {subject} (NATS_URL={nats_url}, BO_PREFIX={prefix}): is allocation running?"
    )]
    NoResponders {
        endpoint: String,
        subject: String,
        nats_url: String,
        prefix: String,
    },
    #[error(
        "{endpoint}: no reply on {subject} within {timeout:?} (NATS_URL={nats_url}, BO_PREFIX={prefix}): is allocation running? (--timeout waits longer)"
    )]
    TimedOut {
        endpoint: String,
        subject: String,
        timeout: Duration,
        nats_url: String,
        prefix: String,
    },
    /// NATS cannot be reached or the request could not be sent.
    #[error("cannot reach NATS at {nats_url} (NATS_URL): {detail}")]
    Unreachable { nats_url: String, detail: String },
}

impl Failure {
    /// 1: the API refused or answered nonsense; 2: it could not be asked (as for bad arguments).
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Refused { .. } | Failure::BadReply { .. } => 1,
            Failure::NoResponders { .. }
            | Failure::TimedOut { .. }
            | Failure::Unreachable { .. } => 2,
        }
    }
}

/// A [`QueryError`] of `endpoint` (asked on `subject`) as the failure the person at the terminal reads.
pub fn failure(
    error: QueryError,
    endpoint: &str,
    subject: String,
    timeout: Duration,
    nats_url: &str,
    prefix: &str,
) -> Failure {
    let endpoint = endpoint.to_string();
    match error {
        QueryError::Refused { code, message } => Failure::Refused {
            endpoint,
            code,
            message: if message.is_empty() {
                "no message".into()
            } else {
                message
            },
        },
        QueryError::Decode(detail) => Failure::BadReply {
            endpoint,
            detail: format!("the reply is not what the contract says: {detail}"),
        },
        QueryError::NoResponders => Failure::NoResponders {
            endpoint,
            subject,
            nats_url: mask_url(nats_url),
            prefix: prefix.into(),
        },
        QueryError::TimedOut => Failure::TimedOut {
            endpoint,
            subject,
            timeout,
            nats_url: mask_url(nats_url),
            prefix: prefix.into(),
        },
        QueryError::Other(detail) => Failure::Unreachable {
            nats_url: mask_url(nats_url),
            detail: format!("{endpoint}: {detail}"),
        },
    }
}

/// A connection to the query API of one prefix.
pub struct Api {
    client: async_nats::Client,
    subjects: Subjects,
    nats_url: String,
    timeout: Duration,
}

impl Api {
    /// Connects once (no retries: a person is waiting), within `timeout`.
    pub async fn connect(
        nats_url: &str,
        subjects: Subjects,
        timeout: Duration,
    ) -> Result<Self, Failure> {
        let client = async_nats::ConnectOptions::new()
            .name("backorder-cli")
            .connection_timeout(timeout)
            .connect(nats_url)
            .await
            .map_err(|e| Failure::Unreachable {
                nats_url: mask_url(nats_url),
                detail: e.to_string(),
            })?;
        Ok(Self {
            client,
            subjects,
            nats_url: nats_url.into(),
            timeout,
        })
    }

    /// Sends `request` to `<p>.api.<endpoint>` and decodes the reply.
    pub async fn call<Req: Message, Rep: Message + Default>(
        &self,
        endpoint: &str,
        request: &Req,
    ) -> Result<Rep, Failure> {
        let subject = self.subjects.api(endpoint);
        query::request(&self.client, subject.clone(), request, self.timeout)
            .await
            .map_err(|error| {
                failure(
                    error,
                    endpoint,
                    subject,
                    self.timeout,
                    &self.nats_url,
                    self.subjects.prefix(),
                )
            })
    }

    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(error: QueryError) -> Failure {
        failure(
            error,
            "order.get",
            "shop.api.order.get".into(),
            Duration::from_secs(3),
            "nats://n:4222",
            "shop",
        )
    }

    #[test]
    fn an_error_reply_is_refused_with_its_code_and_message() {
        let failure = fail(QueryError::Refused {
            code: 404,
            message: "order SO-9 is not known".into(),
        });
        assert_eq!(
            failure.to_string(),
            "order.get: order SO-9 is not known (code 404)"
        );
        assert_eq!(failure.exit_code(), 1);
        let silent = fail(QueryError::Refused {
            code: 503,
            message: String::new(),
        });
        assert_eq!(silent.to_string(), "order.get: no message (code 503)");
    }

    #[test]
    fn a_reply_that_does_not_decode_is_a_bad_reply() {
        let bad = fail(QueryError::Decode("buffer underflow".into()));
        assert_eq!(
            bad.to_string(),
            "order.get: the reply is not what the contract says: buffer underflow"
        );
        assert_eq!(bad.exit_code(), 1);
    }

    #[test]
    fn nothing_answering_names_the_url_and_the_prefix_and_exits_2() {
        let failure = fail(QueryError::NoResponders);
        assert_eq!(
            failure.to_string(),
            "order.get: nothing answers on shop.api.order.get (NATS_URL=nats://n:4222, BO_PREFIX=shop): \
             is allocation running?"
        );
        assert_eq!(failure.exit_code(), 2);
        let late = fail(QueryError::TimedOut);
        assert!(late.to_string().contains("within 3s"), "{late}");
        assert_eq!(late.exit_code(), 2);
        let closed = fail(QueryError::Other("connection closed".into()));
        assert_eq!(
            closed.to_string(),
            "cannot reach NATS at nats://n:4222 (NATS_URL): order.get: connection closed"
        );
        assert_eq!(closed.exit_code(), 2);
    }

    #[test]
    fn credentials_in_the_url_are_masked() {
        for error in [
            QueryError::NoResponders,
            QueryError::TimedOut,
            QueryError::Other("connection closed".into()),
        ] {
            let failure = failure(
                error,
                "order.get",
                "shop.api.order.get".into(),
                Duration::from_secs(3),
                "nats://desk:hunter2@n:4222",
                "shop",
            );
            let text = failure.to_string();
            assert!(text.contains("nats://desk:***@n:4222"), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
    }
}
