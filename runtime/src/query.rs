//! One request to a NATS micro service endpoint (the query API, `<p>.api.<endpoint>`): protobuf both ways over
//! core NATS request/reply, the error a reply carries in the micro services error headers. The CLI, the console
//! and the demo all ask through here; each words the [`QueryError`] for its own reader.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::client::RequestErrorKind;
use async_nats::service::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE};
use prost::Message;

/// Why a request got no reply message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Nobody subscribes to the subject (the service is not running, or under another prefix).
    #[error("nothing answers")]
    NoResponders,
    #[error("no reply in time")]
    TimedOut,
    /// The service answered with an error reply; `message` is empty when it gave none.
    #[error("{message} (code {code})")]
    Refused { code: u16, message: String },
    /// The service answered, but not with the reply message the contract says.
    #[error("the reply does not decode: {0}")]
    Decode(String),
    /// The request could not be sent (connection closed, payload too large, bad subject).
    #[error("{0}")]
    Other(String),
}

/// Sends `request` to `subject` and decodes the reply, or the error it carries, within `timeout`.
pub async fn request<Req: Message, Rep: Message + Default>(
    client: &async_nats::Client,
    subject: String,
    request: &Req,
    timeout: Duration,
) -> Result<Rep, QueryError> {
    let sent = async_nats::Request::new()
        .payload(request.encode_to_vec().into())
        .timeout(Some(timeout));
    let reply = client
        .send_request(subject, sent)
        .await
        .map_err(|error| match error.kind() {
            RequestErrorKind::NoResponders => QueryError::NoResponders,
            RequestErrorKind::TimedOut => QueryError::TimedOut,
            _ => QueryError::Other(error.to_string()),
        })?;
    decode_reply(reply.headers.as_ref(), &reply.payload)
}

/// A reply as the expected message, or the error its headers carry (they win over any payload).
pub fn decode_reply<Rep: Message + Default>(
    headers: Option<&HeaderMap>,
    payload: &[u8],
) -> Result<Rep, QueryError> {
    if let Some((code, message)) = service_error(headers) {
        return Err(QueryError::Refused { code, message });
    }
    Rep::decode(payload).map_err(|e| QueryError::Decode(e.to_string()))
}

/// The error a reply carries in its headers, if any: (code, message). Either header makes it an error; a
/// missing or non-numeric code is 500 (an error without inventing a reason), a missing message is empty.
pub fn service_error(headers: Option<&HeaderMap>) -> Option<(u16, String)> {
    let headers = headers?;
    let code = headers
        .get(NATS_SERVICE_ERROR_CODE)
        .map(|v| v.as_str().trim());
    let message = headers
        .get(NATS_SERVICE_ERROR)
        .map(|v| v.as_str().to_string());
    if code.is_none() && message.is_none() {
        return None;
    }
    let code = code.and_then(|c| c.parse().ok()).unwrap_or(500);
    Some((code, message.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use backorder_proto::v1::GetOrderReply;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, *v);
        }
        map
    }

    #[test]
    fn the_error_headers_give_the_code_and_the_message() {
        let h = headers(&[
            (NATS_SERVICE_ERROR_CODE, " 404 "),
            (NATS_SERVICE_ERROR, "order SO-9 is not known"),
        ]);
        assert_eq!(
            service_error(Some(&h)),
            Some((404, "order SO-9 is not known".into()))
        );
        let h = headers(&[(NATS_SERVICE_ERROR_CODE, "503")]);
        assert_eq!(service_error(Some(&h)), Some((503, String::new())));
        let h = headers(&[(NATS_SERVICE_ERROR, "broken")]);
        assert_eq!(service_error(Some(&h)), Some((500, "broken".into())));
        let h = headers(&[
            (NATS_SERVICE_ERROR_CODE, "teapot"),
            (NATS_SERVICE_ERROR, "odd"),
        ]);
        assert_eq!(service_error(Some(&h)), Some((500, "odd".into())));
        let h = headers(&[(NATS_SERVICE_ERROR_CODE, "70000")]);
        assert_eq!(service_error(Some(&h)), Some((500, String::new())));
    }

    #[test]
    fn a_reply_without_error_headers_is_no_error() {
        assert_eq!(service_error(None), None);
        assert_eq!(service_error(Some(&HeaderMap::new())), None);
        assert_eq!(service_error(Some(&headers(&[("Nats-Msg-Id", "x")]))), None);
    }

    #[test]
    fn a_reply_decodes_unless_its_headers_refuse_it() {
        let reply = GetOrderReply {
            order_id: "SO-1".into(),
            ..Default::default()
        };
        let body = reply.encode_to_vec();
        assert_eq!(decode_reply(None, &body), Ok(reply.clone()));
        let h = headers(&[("Nats-Msg-Id", "x")]);
        assert_eq!(decode_reply(Some(&h), &body), Ok(reply));
        let h = headers(&[
            (NATS_SERVICE_ERROR_CODE, "409"),
            (NATS_SERVICE_ERROR, "busy"),
        ]);
        let refused = decode_reply::<GetOrderReply>(Some(&h), &body).unwrap_err();
        assert_eq!(
            refused,
            QueryError::Refused {
                code: 409,
                message: "busy".into()
            }
        );
        assert_eq!(refused.to_string(), "busy (code 409)");
        let bad = decode_reply::<GetOrderReply>(None, b"\xff\xff").unwrap_err();
        assert!(matches!(bad, QueryError::Decode(_)), "{bad}");
    }
}
