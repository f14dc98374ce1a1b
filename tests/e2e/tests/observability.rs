//! What operators see: one trace from the OMS's order through every service to the customer's email (W3C
//! `traceparent` in the NATS headers), and health, readiness and metrics over HTTP for each service.

use backorder_proto::Message;
use backorder_proto::v1::{EmailMessage, OrderStatus};
use backorder_test_support::{SERVICES, System, http_get, messages};

/// The trace id of a `traceparent` (`00-<trace id>-<span id>-<flags>`).
fn trace_id(traceparent: &str) -> &str {
    traceparent.split('-').nth(1).unwrap_or_default()
}

#[tokio::test]
async fn an_order_keeps_its_trace_from_the_oms_to_the_email_and_every_service_reports_health()
-> anyhow::Result<()> {
    let system = System::start().await?;
    let s = system.subjects().clone();
    let seen = &system.seen;

    // The OMS publishes inside a trace of its own.
    let sent_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(async_nats::header::NATS_MESSAGE_ID, "SO-T1");
    headers.insert(
        "traceparent",
        format!("00-{sent_trace}-00f067aa0ba902b7-01").as_str(),
    );
    let customer = messages::customer("C-T", "t@shop.example", "", "en");
    let order = messages::order("SO-T1", customer, &[("TRACED", 3)]);
    system
        .bus
        .js
        .publish_with_headers(s.order_placed(), headers, order.encode_to_vec().into())
        .await?
        .await?;
    seen.wait_for::<EmailMessage>(&s.notify_email(), |m| m.order_id == "SO-T1")
        .await?;
    seen.wait_for::<OrderStatus>(&s.order_status(), |o| o.order_id == "SO-T1")
        .await?;

    // Every hop carries the same trace: intake's hand-over, allocation's events (through the outbox), the
    // notifier's email.
    for subject in [
        s.order_accepted(),
        s.order_status(),
        s.customer_event(),
        s.reorder_needed(),
        s.notify_email(),
    ] {
        let traces = seen.traceparents(&subject);
        assert!(!traces.is_empty(), "nothing seen on {subject}");
        for traceparent in traces {
            let traceparent = traceparent.unwrap_or_default();
            if subject == s.reorder_needed() {
                // A reorder sums up a SKU, not one order: it may start a trace of its own.
                continue;
            }
            assert_eq!(
                trace_id(&traceparent),
                sent_trace,
                "{subject}: {traceparent}"
            );
        }
    }

    for service in SERVICES {
        let addr = system.http_addr(service).await?;
        for path in ["/health", "/livez"] {
            let (status, body) = http_get(addr, path).await?;
            assert_eq!((status, body.as_str()), (200, "ok\n"), "{service} {path}");
        }
        for path in ["/ready", "/readyz"] {
            let (status, body) = http_get(addr, path).await?;
            assert_eq!(
                (status, body.as_str()),
                (200, "ready\n"),
                "{service} {path}"
            );
        }
        // A message is counted as it is settled, which may come after what it caused downstream was seen.
        let counted = |metrics: &str| {
            metrics.contains("bo_messages_total") && metrics.contains("outcome=\"done\"")
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let (status, metrics) = loop {
            let (status, metrics) = http_get(addr, "/metrics").await?;
            if status != 200 || counted(&metrics) || std::time::Instant::now() > deadline {
                break (status, metrics);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        assert_eq!(status, 200, "{service} /metrics");
        assert!(
            counted(&metrics),
            "{service} counts the messages it handled:\n{metrics}"
        );
    }
    system.stop().await
}
