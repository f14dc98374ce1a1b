//! The console served for real on a free port and asked over HTTP, where the answers do not need the query
//! API to be up: NATS down gives 503 pages, bad filters 400 ones, actions are refused without the token, and
//! SIGTERM-like shutdown ends it. (With the services running: `tests/e2e/tests/console.rs`.)

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "the-console-test-token";

struct Response {
    status: u16,
    head: String,
    body: String,
}

async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        text.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    text.push_str("\r\n");
    text.push_str(body);
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap();
    Response {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

/// A console on a free port; dropping the sender stops it.
async fn start(
    env: &[(&str, &str)],
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let mut source: HashMap<&str, &str> = HashMap::from([
        ("BO_CONSOLE_ADDR", "127.0.0.1:0"),
        ("BO_CONSOLE_TIMEOUT_MS", "2000"),
    ]);
    source.extend(env.iter().copied());
    let config = console::Config::from_source(&source).unwrap();
    let bound = console::bind(config).await.unwrap();
    let addr = bound.addr().unwrap();
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(bound.run(async move {
        let _ = stopped.await;
    }));
    (addr, stop, task)
}

/// Nothing listens there.
const DEAD_NATS: &str = "nats://127.0.0.1:1";

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

#[tokio::test]
async fn with_nats_down_pages_say_503_and_health_still_answers() {
    let (addr, stop, task) = start(&[("NATS_URL", DEAD_NATS)]).await;
    for path in ["/", "/orders/SO-1", "/skus/WIDGET", "/kpis", "/deadletters"] {
        let r = request(addr, "GET", path, &[], "").await;
        assert_eq!(r.status, 503, "{path}: {}", r.body);
        assert!(
            r.body
                .contains("not connected to NATS at nats://127.0.0.1:1"),
            "{path}: {}",
            r.body
        );
        assert!(r.head.contains("content-type: text/html"), "{}", r.head);
        // Nothing may be loaded from anywhere: the policy says so to the browser.
        assert!(
            r.head
                .contains("content-security-policy: default-src 'none'"),
            "{}",
            r.head
        );
    }
    for path in ["/health", "/livez"] {
        let health = request(addr, "GET", path, &[], "").await;
        assert_eq!(
            (health.status, health.body.as_str()),
            (200, "ok\n"),
            "{path}"
        );
    }
    for path in ["/ready", "/readyz"] {
        let ready = request(addr, "GET", path, &[], "").await;
        assert_eq!(
            (ready.status, ready.body.as_str()),
            (503, "NATS is not connected\n"),
            "{path}"
        );
    }
    let missing = request(addr, "GET", "/no/such/page", &[], "").await;
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("no such page"), "{}", missing.body);
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn without_a_configured_token_actions_are_refused_with_how_to_enable_them() {
    let (addr, stop, task) = start(&[("NATS_URL", DEAD_NATS)]).await;
    for path in ["/deadletters/3/replay", "/orders/SO-1/priority"] {
        let r = request(
            addr,
            "POST",
            path,
            &[],
            &format!("operator=ann&token={TOKEN}&priority=5"),
        )
        .await;
        assert_eq!(r.status, 403, "{path}: {}", r.body);
        assert!(
            r.body.contains("Actions are switched off") && r.body.contains("BO_CONSOLE_TOKEN="),
            "{}",
            r.body
        );
        assert!(!r.head.contains("set-cookie"), "{}", r.head);
    }
    // Reading pages say actions are off.
    let page = request(addr, "GET", "/health", &[], "").await;
    assert_eq!(page.status, 200);
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn with_a_token_a_wrong_or_missing_one_is_refused_and_a_good_one_passes_to_the_api() {
    let (addr, stop, task) = start(&[("NATS_URL", DEAD_NATS), ("BO_CONSOLE_TOKEN", TOKEN)]).await;
    let replay = |body: String, cookie: Option<String>| async move {
        let cookie = cookie.map(|c| format!("bo_console_token={c}"));
        let headers: Vec<(&str, &str)> = cookie.iter().map(|c| ("Cookie", c.as_str())).collect();
        request(addr, "POST", "/deadletters/3/replay", &headers, &body).await
    };
    let wrong = replay("operator=ann&token=not-the-token".into(), None).await;
    assert_eq!(wrong.status, 403);
    assert!(wrong.body.contains("does not match"), "{}", wrong.body);
    let missing = replay("operator=ann".into(), None).await;
    assert_eq!(missing.status, 403);
    assert!(
        missing.body.contains("token is missing"),
        "{}",
        missing.body
    );
    let forged = replay("operator=ann".into(), Some(TOKEN.into())).await;
    assert_eq!(
        forged.status, 403,
        "the raw token is not what the cookie holds"
    );
    let nobody = replay(format!("operator=+&token={TOKEN}"), None).await;
    assert_eq!(nobody.status, 400);
    assert!(nobody.body.contains("operator"), "{}", nobody.body);
    // Allowed, by the typed token or the remembered one: it reaches the API, which is down here.
    let typed = replay(format!("operator=ann&token={TOKEN}"), None).await;
    assert_eq!(typed.status, 503, "{}", typed.body);
    let remembered = replay(
        "operator=ann".into(),
        Some(console::auth::cookie_value(TOKEN)),
    )
    .await;
    assert_eq!(remembered.status, 503, "{}", remembered.body);
    // The remembered token does not let a page of another site (or another port of this host) act.
    let cookie = format!("bo_console_token={}", console::auth::cookie_value(TOKEN));
    for (name, value) in [
        ("Sec-Fetch-Site", "same-site"),
        ("Origin", "http://127.0.0.1:3000"),
    ] {
        let headers = [("Cookie", cookie.as_str()), (name, value)];
        let r = request(
            addr,
            "POST",
            "/deadletters/3/replay",
            &headers,
            "operator=ann",
        )
        .await;
        assert_eq!(r.status, 403, "{name}: {value}");
        assert!(r.body.contains("another site"), "{}", r.body);
    }
    let own = format!("http://{addr}");
    let headers = [("Cookie", cookie.as_str()), ("Origin", own.as_str())];
    let r = request(
        addr,
        "POST",
        "/deadletters/3/replay",
        &headers,
        "operator=ann",
    )
    .await;
    assert_eq!(r.status, 503, "its own pages may: {}", r.body);
    // A priority that is not a number is refused before anything is sent.
    let r = request(
        addr,
        "POST",
        "/orders/SO-1/priority",
        &[],
        &format!("operator=ann&token={TOKEN}&priority=high"),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("whole number"), "{}", r.body);
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn bad_filters_are_400_pages_that_say_what_is_wrong() {
    let (addr, stop, task) = start(&[("NATS_URL", DEAD_NATS)]).await;
    for (path, words) in [
        ("/?older=soon", "older than"),
        ("/?sort=price", "cannot sort"),
        ("/kpis?from=yesterday", "\"from\""),
    ] {
        let r = request(addr, "GET", path, &[], "").await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert!(r.body.contains(words), "{path}: {}", r.body);
        // The filters stay on the page, to be corrected.
        assert!(r.body.contains("<form class=\"filters\""), "{path}");
    }
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn with_nats_up_but_no_query_api_the_page_says_nothing_answers() {
    let prefix = format!(
        "console-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let url = nats_url();
    let creds = std::env::var("NATS_CREDS").unwrap_or_default();
    let (addr, stop, task) = start(&[
        ("NATS_URL", url.as_str()),
        ("NATS_CREDS", creds.as_str()),
        ("BO_PREFIX", prefix.as_str()),
    ])
    .await;
    // The connection is made in the background.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while request(addr, "GET", "/ready", &[], "").await.status != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never connected to {url}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = request(addr, "GET", "/orders/SO-1", &[], "").await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(
        r.body
            .contains(&format!("Nothing answers on {prefix}.api.order.get")),
        "{}",
        r.body
    );
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}
