//! The built-in proxy: Wardgate itself in front of a small upstream (an axum app that
//! echoes what it receives, counts and streams bodies) and a WebSocket echo server from an
//! independent implementation (tokio-tungstenite).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::BodyExt as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use wardgate_core::settings::GatewayRoute;

use crate::gateway::{gateway_cookie, nurse_signs_in, nurse_under_policy, sign_out};
use crate::login::{Harness, start_with};

const APP: &str = "app.wardgate.test";
const DOWN: &str = "down.wardgate.test";

const POLICY: &str = r#"
[roles.nurse]
permissions = ["gateway.labs", "gateway.labs-ws", "gateway.labs-admin", "gateway.labs-small", "gateway.vendor", "gateway.down"]

[[rule]]
name = "sign-in"
actions = ["login", "sso"]
require = "aal2"

[[rule]]
name = "labs"
actions = ["gateway.labs", "gateway.labs-ws", "gateway.labs-small", "gateway.vendor", "gateway.down"]
require = "aal2"

[[rule]]
name = "labs-admin"
actions = ["gateway.labs-admin"]
require = "aal3"
"#;

/// What the upstream saw.
#[derive(Default)]
struct Seen {
    paths: Mutex<Vec<String>>,
    counted: AtomicU64,
}

/// A body of `n` zero bytes in 64 KiB chunks, never held in memory at once.
struct Zeros(u64);

/// The same, without announcing its length (sent chunked).
struct Unannounced(Zeros);

impl http_body::Body for Unannounced {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }
}

impl http_body::Body for Zeros {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        static CHUNK: [u8; 65536] = [0; 65536];
        if self.0 == 0 {
            return Poll::Ready(None);
        }
        let n = self.0.min(CHUNK.len() as u64);
        self.0 -= n;
        Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(&CHUNK[..n as usize])))))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.0)
    }
}

async fn start_upstream(seen: Arc<Seen>) -> SocketAddr {
    use axum::extract::{Path, Request, State};
    use axum::routing::{get, post};
    let count = |State(seen): State<Arc<Seen>>, req: Request| async move {
        let mut body = req.into_body();
        let mut n = 0u64;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return "cut short".to_owned() };
            n += frame.data_ref().map_or(0, |d| d.len() as u64);
        }
        seen.counted.store(n, Ordering::SeqCst);
        n.to_string()
    };
    let app = axum::Router::new()
        .route("/count", post(count))
        .route("/small/count", post(count))
        .route("/zeros/{n}", get(|Path(n): Path<u64>| async move { axum::body::Body::new(Zeros(n)) }))
        .route(
            "/vendor/slow",
            get(|| async {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                "late"
            }),
        )
        .fallback(|State(seen): State<Arc<Seen>>, req: Request| async move {
            seen.paths.lock().unwrap().push(req.uri().path().to_owned());
            let mut headers = serde_json::Map::new();
            for (name, value) in req.headers() {
                let entry = headers.entry(name.as_str().to_owned()).or_insert_with(|| json!([]));
                entry.as_array_mut().unwrap().push(json!(value.to_str().unwrap_or("?")));
            }
            axum::Json(json!({"path": req.uri().path(), "headers": headers}))
        })
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A WebSocket server that sends every message back.
async fn start_websocket_echo() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else { return };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() || msg.is_binary() {
                        let _ = ws.send(msg).await;
                    }
                }
            });
        }
    });
    addr
}

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The resident memory of this process, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// Samples [`rss`] until dropped; the highest value seen.
struct PeakMemory {
    peak: Arc<AtomicU64>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl PeakMemory {
    fn start() -> Self {
        let peak = Arc::new(AtomicU64::new(rss()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (p, s) = (Arc::clone(&peak), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss(), Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        });
        Self { peak, stop }
    }

    fn peak(&self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.peak.load(Ordering::Relaxed)
    }
}

struct Proxied {
    h: Harness,
    port: u16,
    seen: Arc<Seen>,
}

impl Proxied {
    fn get(&self, host: &str, path: &str, cookie: Option<&str>, browser: bool) -> reqwest::RequestBuilder {
        let mut req = self
            .h
            .http
            .get(format!("http://127.0.0.1:{}{path}", self.port))
            .header("host", format!("{host}:{}", self.port))
            // What an attacker would try: name themselves to the application.
            .header("remote-user", "root")
            .header("wardgate-assertion", "forged");
        if browser {
            req = req.header("accept", "text/html");
        }
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req
    }
}

async fn start_proxy() -> Proxied {
    let seen = Arc::new(Seen::default());
    let upstream = start_upstream(Arc::clone(&seen)).await;
    let ws = start_websocket_echo().await;
    let down = closed_port();
    let h = start_with(|s| {
        s.gateway.cookie_domain = Some("wardgate.test".into());
        let to = |name: &str, host: &str, prefix: &str, addr: String| {
            GatewayRoute::new(name, host, prefix).proxied_to(&format!("http://{addr}"))
        };
        let mut small = to("labs-small", APP, "/small", upstream.to_string());
        small.max_body_bytes = 1024;
        let mut vendor = to("vendor", APP, "/vendor", upstream.to_string());
        vendor.record = true;
        vendor.timeout_secs = 1;
        let mut labs = to("labs", APP, "/", upstream.to_string());
        labs.max_body_bytes = 200_000_000;
        labs.headers.insert("X-App-Key".into(), "from-config".into());
        s.gateway.routes = vec![
            labs,
            to("labs-ws", APP, "/ws", ws.to_string()),
            to("labs-admin", APP, "/admin", upstream.to_string()),
            small,
            vendor,
            to("down", DOWN, "/", format!("127.0.0.1:{down}")),
        ];
    })
    .await;
    let port = h.node.addr.port();
    Proxied { h, port, seen }
}

#[tokio::test]
async fn the_proxy_signs_people_in_first_and_passes_only_wardgate_identities() {
    let p = start_proxy().await;
    let h = &p.h;
    let nina = nurse_under_policy(h, POLICY).await;

    // Not signed in: a browser goes to the hand-off with the right return address, an API
    // client gets 401, and the upstream sees nothing.
    let resp = p.get(APP, "/results?id=7", None, true).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let app_url = format!("http://{APP}:{}/results?id=7", p.port);
    let want = format!(
        "{}?rd={}",
        h.url("/gate/start"),
        percent_encoding::utf8_percent_encode(&app_url, percent_encoding::NON_ALPHANUMERIC)
    );
    assert_eq!(location, want);
    assert_eq!(p.get(APP, "/results", None, false).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert!(p.seen.paths.lock().unwrap().is_empty());

    // Wardgate's own pages stay on its own host.
    assert_eq!(h.http.get(h.url("/healthz")).send().await.unwrap().status(), StatusCode::OK);

    let session = nurse_signs_in(h, &nina).await;
    let gate = gateway_cookie(h, &session, &app_url).await;
    let resp = p.get(APP, "/results?id=7", Some(&format!("theme=dark; {gate}")), true).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["path"], "/results");
    let headers = &seen["headers"];
    assert_eq!(headers["remote-user"], json!(["nina"]), "{seen}");
    assert_eq!(headers["remote-groups"], json!(["nurse"]));
    assert_ne!(headers["wardgate-assertion"], json!(["forged"]));
    assert_eq!(headers["wardgate-assertion"].as_array().map(Vec::len), Some(1));
    // The application never gets the person's gateway ticket; its own cookies pass.
    assert_eq!(headers["cookie"], json!(["theme=dark"]));
    assert_eq!(headers["x-app-key"], json!(["from-config"]));
    assert_eq!(headers["x-forwarded-for"], json!(["127.0.0.1"]));
    assert_eq!(headers["x-forwarded-proto"], json!(["http"]));
    assert_eq!(headers["host"], json!([format!("{APP}:{}", p.port)]));

    // A route that needs aal3, with this aal2 session: a step-up, and nothing upstream.
    let resp = p.get(APP, "/admin/users", Some(&gate), true).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert!(resp.headers()["location"].to_str().unwrap().starts_with(&format!("{}/?step_up=1&next=", h.url(""))));
    let resp = p.get(APP, "/admin/users", Some(&gate), false).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers()["www-authenticate"].to_str().unwrap().contains("insufficient_user_authentication"));
    assert!(!p.seen.paths.lock().unwrap().iter().any(|s| s.starts_with("/admin")));

    // A WebSocket passes both ways once the person is signed in; not before.
    let ws_url = format!("ws://127.0.0.1:{}/ws/echo", p.port);
    let handshake = |cookie: Option<&str>| {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let mut req = ws_url.as_str().into_client_request().unwrap();
        req.headers_mut().insert("host", format!("{APP}:{}", p.port).parse().unwrap());
        if let Some(c) = cookie {
            req.headers_mut().insert("cookie", c.parse().unwrap());
        }
        req
    };
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", p.port)).await.unwrap();
    assert!(tokio_tungstenite::client_async(handshake(None), tcp).await.is_err());
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", p.port)).await.unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(handshake(Some(&gate)), tcp).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    for text in ["hello", "vitals 120/80"] {
        ws.send(Message::text(text)).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(text));
    }
    ws.close(None).await.unwrap();

    // A request hidden in another's body (Content-Length and Transfer-Encoding both sent)
    // is read as a request of its own, without the first one's cookie, so it is decided on
    // its own and never reaches the upstream.
    {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", p.port)).await.unwrap();
        let raw = format!(
            "POST /results HTTP/1.1\r\nHost: {APP}:{port}\r\nCookie: {gate}\r\nContent-Length: 60\r\n\
             Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: {APP}:{port}\r\n\r\n",
            port = p.port
        );
        tcp.write_all(raw.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), tcp.read_to_end(&mut answer)).await;
        assert!(!p.seen.paths.lock().unwrap().iter().any(|s| s == "/smuggled"), "{}", String::from_utf8_lossy(&answer));
    }

    // Signing out ends the proxy sign-in at the next request.
    sign_out(h, &session).await;
    assert_eq!(p.get(APP, "/results", Some(&gate), false).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_proxy_streams_100_mb_each_way_with_flat_memory_and_applies_limits() {
    let p = start_proxy().await;
    let h = &p.h;
    let nina = nurse_under_policy(h, POLICY).await;
    let session = nurse_signs_in(h, &nina).await;
    let gate = gateway_cookie(h, &session, &format!("http://{APP}/")).await;
    const SIZE: u64 = 100_000_000;

    // Upload: the upstream counts every byte while this process's memory stays flat.
    let client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<Zeros>();
    let before = rss();
    let memory = PeakMemory::start();
    let req = hyper::Request::post(format!("http://127.0.0.1:{}/count", p.port))
        .header("host", format!("{APP}:{}", p.port))
        .header("cookie", &gate)
        .body(Zeros(SIZE))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let answer = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(std::str::from_utf8(&answer).unwrap(), SIZE.to_string());
    assert_eq!(p.seen.counted.load(Ordering::SeqCst), SIZE);

    // Download: streamed to this client, counted as it arrives.
    let resp = p.get(APP, &format!("/zeros/{SIZE}"), Some(&gate), false).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut resp = resp;
    let mut got = 0u64;
    while let Some(chunk) = resp.chunk().await.unwrap() {
        got += chunk.len() as u64;
    }
    assert_eq!(got, SIZE);
    let grew = memory.peak().saturating_sub(before);
    // Buffering either body would add 100 MB; streaming adds a few buffers.
    assert!(grew < 40_000_000, "memory grew by {grew} bytes while streaming {SIZE} bytes each way");

    // A body over the route's limit is refused before the upstream sees it, whether it
    // announces its length or not.
    let small = format!("http://127.0.0.1:{}/small/upload", p.port);
    let resp = h
        .http
        .post(&small)
        .header("host", format!("{APP}:{}", p.port))
        .header("cookie", &gate)
        .body(vec![0u8; 4096])
        .send()
        .await
        .unwrap();
    let (status, problem) = crate::problem(resp).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("urn:wardgate:problem:body-too-large"))
    );
    assert!(!p.seen.paths.lock().unwrap().iter().any(|s| s.starts_with("/small")));
    p.seen.counted.store(0, Ordering::SeqCst);
    let chunked =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<Unannounced>();
    let req = hyper::Request::post(format!("http://127.0.0.1:{}/small/count", p.port))
        .header("host", format!("{APP}:{}", p.port))
        .header("cookie", &gate)
        .body(Unannounced(Zeros(1_000_000)))
        .unwrap();
    let resp = chunked.request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(p.seen.counted.load(Ordering::SeqCst), 0, "the upstream never gets a whole oversized body");
}

#[tokio::test]
async fn a_down_or_slow_upstream_gets_a_clear_answer_and_vendor_routes_are_recorded() {
    let p = start_proxy().await;
    let h = &p.h;
    let nina = nurse_under_policy(h, POLICY).await;
    let session = nurse_signs_in(h, &nina).await;
    let gate = gateway_cookie(h, &session, &format!("http://{APP}/")).await;

    // Nothing listens behind this route: a page for people, a problem document for programs.
    let resp = p.get(DOWN, "/chart", Some(&gate), true).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    let page = resp.text().await.unwrap();
    assert!(page.contains("is not reachable") && page.contains("<strong>down</strong>"), "{page}");
    let resp = p.get(DOWN, "/chart", Some(&gate), false).send().await.unwrap();
    let (status, problem) = crate::problem(resp).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (StatusCode::BAD_GATEWAY, Some("urn:wardgate:problem:upstream-unavailable"))
    );

    // The vendor route gives the upstream one second to start answering.
    let resp = p.get(APP, "/vendor/slow", Some(&gate), false).send().await.unwrap();
    let (status, _) = crate::problem(resp).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    let resp = p.get(APP, "/vendor/orders", Some(&gate), false).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.bytes().await.unwrap();

    // Every request on a recorded route is on record with its status, size and duration.
    let mut records = Vec::new();
    for _ in 0..50 {
        records = h.audit().await.into_iter().filter(|r| r["type"] == "gateway.proxied").collect::<Vec<_>>();
        if records.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let timed_out = records.iter().find(|r| r["details"]["path"] == "/vendor/slow").expect("the timed-out request");
    assert_eq!((timed_out["outcome"].as_str(), timed_out["details"]["status"].as_u64()), (Some("failure"), Some(504)));
    let record = records.iter().find(|r| r["details"]["path"] == "/vendor/orders").expect("the answered request");
    assert_eq!(record["subject"], "nina");
    assert_eq!(record["outcome"], "success");
    let d = &record["details"];
    assert_eq!((d["route"].as_str(), d["method"].as_str()), (Some("vendor"), Some("GET")));
    assert_eq!(d["status"], 200);
    assert_eq!(d["bytes_out"].as_u64(), Some(body.len() as u64));
    assert_eq!(d["bytes_in"].as_u64(), Some(0));
    assert!(d["duration_us"].as_u64().is_some());
    // The labs route is not recorded per request (its decisions are).
    assert!(!h.audit().await.iter().any(|r| r["type"] == "gateway.proxied" && r["details"]["route"] != "vendor"));
}
