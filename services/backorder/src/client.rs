//! Requests to the query API (`<p>.api.<endpoint>`, protobuf both ways) and what can go wrong with them, each
//! with the exit status it ends the process with.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::client::RequestErrorKind;
use backorder_runtime::Subjects;
use prost::Message;

/// The NATS micro services protocol's error headers.
pub const ERROR_CODE_HEADER: &str = "Nats-Service-Error-Code";
pub const ERROR_HEADER: &str = "Nats-Service-Error";

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

/// The error a reply carries in its headers, if any: (code, message).
pub fn service_error(headers: Option<&HeaderMap>) -> Option<(u16, String)> {
    let headers = headers?;
    let code = headers.get(ERROR_CODE_HEADER).map(|v| v.as_str().trim());
    let message = headers.get(ERROR_HEADER).map(|v| v.as_str().to_string());
    if code.is_none() && message.is_none() {
        return None;
    }
    // A code that is not a number is still an error; 500 says so without inventing a reason.
    let code = code.and_then(|c| c.parse().ok()).unwrap_or(500);
    Some((code, message.unwrap_or_else(|| "no message".into())))
}

/// A reply as the endpoint's reply message, or the error it carries.
pub fn decode_reply<Rep: Message + Default>(
    endpoint: &str,
    headers: Option<&HeaderMap>,
    payload: &[u8],
) -> Result<Rep, Failure> {
    if let Some((code, message)) = service_error(headers) {
        return Err(Failure::Refused {
            endpoint: endpoint.into(),
            code,
            message,
        });
    }
    Rep::decode(payload).map_err(|e| Failure::BadReply {
        endpoint: endpoint.into(),
        detail: format!("the reply is not what the contract says: {e}"),
    })
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
                nats_url: nats_url.into(),
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
        let sent = async_nats::Request::new()
            .payload(request.encode_to_vec().into())
            .timeout(Some(self.timeout));
        match self.client.send_request(subject.clone(), sent).await {
            Ok(reply) => decode_reply(endpoint, reply.headers.as_ref(), &reply.payload),
            Err(error) => Err(match error.kind() {
                RequestErrorKind::NoResponders => Failure::NoResponders {
                    endpoint: endpoint.into(),
                    subject,
                    nats_url: self.nats_url.clone(),
                    prefix: self.subjects.prefix().into(),
                },
                RequestErrorKind::TimedOut => Failure::TimedOut {
                    endpoint: endpoint.into(),
                    subject,
                    timeout: self.timeout,
                    nats_url: self.nats_url.clone(),
                    prefix: self.subjects.prefix().into(),
                },
                _ => Failure::Unreachable {
                    nats_url: self.nats_url.clone(),
                    detail: format!("{endpoint}: {error}"),
                },
            }),
        }
    }

    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backorder_proto::v1::GetOrderReply;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, *v);
        }
        map
    }

    #[test]
    fn an_error_reply_is_refused_with_its_code_and_message() {
        let h = headers(&[
            (ERROR_CODE_HEADER, "404"),
            (ERROR_HEADER, "order SO-9 is not known"),
        ]);
        let failure = decode_reply::<GetOrderReply>("order.get", Some(&h), b"").unwrap_err();
        assert_eq!(
            failure.to_string(),
            "order.get: order SO-9 is not known (code 404)"
        );
        assert_eq!(failure.exit_code(), 1);
        let h = headers(&[(ERROR_HEADER, "broken")]);
        assert_eq!(service_error(Some(&h)), Some((500, "broken".into())));
        let h = headers(&[(ERROR_CODE_HEADER, "503")]);
        assert_eq!(service_error(Some(&h)), Some((503, "no message".into())));
    }

    #[test]
    fn a_reply_without_error_headers_is_decoded() {
        let reply = GetOrderReply {
            order_id: "SO-1".into(),
            ..Default::default()
        };
        let h = headers(&[("Nats-Msg-Id", "x")]);
        assert_eq!(
            decode_reply::<GetOrderReply>("order.get", Some(&h), &reply.encode_to_vec()),
            Ok(reply.clone())
        );
        assert_eq!(
            decode_reply::<GetOrderReply>("order.get", None, &reply.encode_to_vec()),
            Ok(reply)
        );
        let bad = decode_reply::<GetOrderReply>("order.get", None, b"\xff\xff").unwrap_err();
        assert!(matches!(bad, Failure::BadReply { .. }), "{bad}");
        assert_eq!(bad.exit_code(), 1);
    }

    #[test]
    fn nothing_answering_names_the_url_and_the_prefix_and_exits_2() {
        let failure = Failure::NoResponders {
            endpoint: "order.get".into(),
            subject: "shop.api.order.get".into(),
            nats_url: "nats://n:4222".into(),
            prefix: "shop".into(),
        };
        assert_eq!(
            failure.to_string(),
            "order.get: nothing answers on shop.api.order.get (NATS_URL=nats://n:4222, BO_PREFIX=shop): \
             is allocation running?"
        );
        assert_eq!(failure.exit_code(), 2);
    }
}
