//! (a) Forward-auth throughput: `GET /gate/check` with a valid gateway cookie, against
//! nginx answering `return 200` on the same machine as the ceiling, both driven by `wrk`
//! with the same threads, connections and duration, one after the other in one run.
//!
//! (b) The built-in proxy's added latency: the same nginx reached directly and through
//! Wardgate's proxy (decision, audit record, identity headers, streaming), one connection
//! at a time and then eight, one after the other.
//!
//! `cargo bench -p wardgate-server --bench gateway`
//! Needs `wrk` and `nginx` (Debian: `apt-get install wrk nginx-light`).
//! Environment: `WARDGATE_BENCH_SECS` (10), `WARDGATE_BENCH_CONNECTIONS` (32).

#[path = "common/mod.rs"]
mod common;

// The server runs in this process: it gets the allocator the `wardgate` binary has.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{PASS, env, seed};
use serde_json::json;
use time::OffsetDateTime;
use wardgate_core::factors::totp::{self, TotpParams};
use wardgate_core::settings::{GatewayRoute, Settings};
use wardgate_server::Node;
use wardgate_server::policies::Policies;

const POLICY: &str = r#"
[roles.nurse]
permissions = ["gateway.labs", "gateway.proxied", "gateway.clinical"]

[[rule]]
name = "sign-in"
actions = ["login", "sso"]
require = "aal2"

[[rule]]
name = "labs"
actions = ["gateway.labs", "gateway.proxied", "gateway.clinical"]
require = "aal2"
"#;

const PROXIED_HOST: &str = "proxied.wardgate.test";
/// In front of an application that takes 5 ms to answer, as a real one does.
const CLINICAL_HOST: &str = "clinical.wardgate.test";

/// An application that answers every request after 5 ms, on a runtime of its own.
fn slow_upstream() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let app = axum::Router::new().fallback(|| async {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                "ok"
            });
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    port
}

struct Wrk {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
    raw: String,
}

fn ms(s: &str) -> f64 {
    let s = s.trim();
    if let Some(v) = s.strip_suffix("us") {
        v.parse::<f64>().unwrap() / 1000.0
    } else if let Some(v) = s.strip_suffix("ms") {
        v.parse().unwrap()
    } else if let Some(v) = s.strip_suffix('s') {
        v.parse::<f64>().unwrap() * 1000.0
    } else {
        f64::NAN
    }
}

fn wrk(url: &str, headers: &[String], secs: usize, connections: usize) -> Wrk {
    wrk_threads(url, headers, secs, connections, 2)
}

fn wrk_threads(url: &str, headers: &[String], secs: usize, connections: usize, threads: usize) -> Wrk {
    let mut cmd = Command::new("wrk");
    cmd.args([&format!("-t{threads}"), &format!("-c{connections}"), &format!("-d{secs}s"), "--latency"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output().expect("wrk runs (apt-get install wrk)");
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    let field =
        |prefix: &str| raw.lines().find_map(|l| l.trim().strip_prefix(prefix).map(str::to_owned)).unwrap_or_default();
    Wrk {
        rate: field("Requests/sec:").trim().parse().unwrap_or(0.0),
        p50_ms: ms(&field("50%")),
        p99_ms: ms(&field("99%")),
        non_2xx: field("Non-2xx or 3xx responses:").trim().parse().unwrap_or(0),
        raw,
    }
}

fn nginx_return_200(dir: &Path) -> (std::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let d = dir.display();
    for sub in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let conf = format!(
        "worker_processes 2;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\nevents {{ worker_connections 1024; }}\n\
         http {{ access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi; \
         uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n server {{ listen 127.0.0.1:{port}; location / {{ return 200; }} }} }}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let mut child = Command::new("/usr/sbin/nginx")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .spawn()
        .expect("nginx starts (apt-get install nginx-light)");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (child, port);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("nginx did not start");
}

/// Stops nginx and its workers. A master killed outright leaves its workers running, still
/// listening and holding memory, one pair more after every run of this bench; on SIGTERM
/// the master stops them first.
fn stop_nginx(mut nginx: std::process::Child) {
    let stopped = Command::new("kill").args(["-TERM", &nginx.id().to_string()]).status().is_ok_and(|s| s.success());
    if !stopped {
        let _ = nginx.kill();
    }
    let _ = nginx.wait();
}

/// `name=value` of the cookie the response sets whose text starts with `prefix`.
fn set_cookie(resp: &reqwest::Response, prefix: &str) -> String {
    let c = resp.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find(|c| c.starts_with(prefix));
    c.unwrap_or_else(|| panic!("no {prefix} cookie")).split(';').next().unwrap_or_default().to_owned()
}

fn main() {
    let secs = env("WARDGATE_BENCH_SECS", 10);
    let connections = env("WARDGATE_BENCH_CONNECTIONS", 32);
    let dir = tempfile::tempdir().unwrap();
    println!("{}", common::disk::flush_floor(dir.path(), 500));
    let (nginx, port) = nginx_return_200(&dir.path().join("nginx"));
    let slow_port = slow_upstream();
    // The server gets its own two-thread runtime; wrk and nginx are separate processes.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (node, gate, check_url) = rt.block_on(async {
        let mut settings = Settings { data_dir: dir.path().join("data"), ..Settings::default() };
        settings.server.listen = "127.0.0.1:0".into();
        settings.server.trusted_proxies = vec!["127.0.0.1/32".into()];
        settings.auth.source_attempts_per_minute = 1_000_000;
        settings.gateway.cookie_domain = Some("wardgate.test".into());
        settings.gateway.routes = vec![
            GatewayRoute::new("labs", "app.wardgate.test", "/"),
            GatewayRoute::new("proxied", PROXIED_HOST, "/").proxied_to(&format!("http://127.0.0.1:{port}")),
            GatewayRoute::new("clinical", CLINICAL_HOST, "/").proxied_to(&format!("http://127.0.0.1:{slow_port}")),
        ];
        let accounts = seed(&settings, 1).await;
        let node = Node::start(settings).await.unwrap();
        let store = &*node.store;
        let now = OffsetDateTime::now_utc();
        let mut user = store
            .user_by_username(&wardgate_core::identity::Username::parse(&accounts[0].username).unwrap())
            .await
            .unwrap()
            .unwrap();
        user = user.with_roles(["nurse".to_owned()]);
        let e = wardgate_core::audit::AuditEvent::known(
            now,
            wardgate_core::audit::event::types::ADMIN_ROLE_ASSIGNED,
            wardgate_core::audit::Outcome::Success,
        );
        store.update_user(&user, &e).await.unwrap();
        let v = Policies::new(store, "operator:alice", now, true).propose(POLICY, "bench").await.unwrap();
        Policies::new(store, "operator:bob", now, true).approve(v.number).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let base = node.base_url.clone();
        let start: serde_json::Value = http
            .post(format!("{base}/api/v1/login"))
            .json(&json!({"username": accounts[0].username}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let flow = start["flow"].as_str().unwrap().to_owned();
        http.post(format!("{base}/api/v1/login/passphrase"))
            .json(&json!({"flow": flow, "passphrase": PASS}))
            .send()
            .await
            .unwrap();
        let code = totp::code_at(TotpParams::default(), &accounts[0].secret, OffsetDateTime::now_utc()).unwrap();
        let r = http
            .post(format!("{base}/api/v1/login/totp"))
            .json(&json!({"flow": flow, "code": code}))
            .send()
            .await
            .unwrap();
        let cookie = set_cookie(&r, "__Host-wardgate-session=");
        let r = http
            .get(format!("{base}/gate/start?rd=http%3A%2F%2Fapp.wardgate.test%2Fresults"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        let gate = set_cookie(&r, "__Secure-wardgate-gate=");
        let check_url = format!("http://{}/gate/check", node.addr);
        let r = http
            .get(&check_url)
            .header("cookie", &gate)
            .header("x-original-url", "http://app.wardgate.test/results")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "a valid check");
        let r = http
            .get(check_url.replace("/gate/check", "/results"))
            .header("cookie", &gate)
            .header("host", PROXIED_HOST)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "a proxied request");
        (node, gate, check_url)
    });

    // `WARDGATE_BENCH_ONLY=check` (or `proxy`) narrows a run to what is being profiled.
    let only = std::env::var("WARDGATE_BENCH_ONLY").unwrap_or_default();
    let wanted = |what: &str| only.is_empty() || only.split(',').any(|o| o.trim() == what);
    let headers = vec![format!("Cookie: {gate}"), "X-Original-URL: http://app.wardgate.test/results".to_owned()];
    let nginx_url = format!("http://127.0.0.1:{port}/");
    if wanted("check") {
        let wardgate = wrk(&check_url, &headers, secs, connections);
        // Wardgate's own router answering a request that decides and records nothing: what
        // the HTTP stack and its layers cost before the check does any work.
        let floor = wrk(&check_url.replace("/gate/check", "/healthz"), &[], secs, connections);
        let ceiling = wrk(&nginx_url, &[], secs, connections);
        print_check(connections, secs, &wardgate, &floor, &ceiling);
    }
    if !wanted("proxy") {
        stop_nginx(nginx);
        rt.block_on(node.stop());
        return;
    }
    let proxy_url = check_url.replace("/gate/check", "/results");
    let proxy_headers = vec![format!("Cookie: {gate}"), format!("Host: {PROXIED_HOST}")];
    let latency: Vec<(usize, Wrk, Wrk)> = [1, 8]
        .into_iter()
        .map(|c| (c, wrk_threads(&nginx_url, &[], secs, c, 1), wrk_threads(&proxy_url, &proxy_headers, secs, c, 1)))
        .collect();
    let slow_url = format!("http://127.0.0.1:{slow_port}/");
    let clinical_headers = vec![format!("Cookie: {gate}"), format!("Host: {CLINICAL_HOST}")];
    let clinical: Vec<(usize, Wrk, Wrk)> = [1, 8]
        .into_iter()
        .map(|c| (c, wrk_threads(&slow_url, &[], secs, c, 1), wrk_threads(&proxy_url, &clinical_headers, secs, c, 1)))
        .collect();
    stop_nginx(nginx);
    rt.block_on(node.stop());

    for (upstream, runs) in [("nginx return 200", &latency), ("an application answering in 5 ms", &clinical)] {
        println!("added latency in front of {upstream}:");
        print_latency(runs);
    }
}

fn print_check(connections: usize, secs: usize, wardgate: &Wrk, floor: &Wrk, ceiling: &Wrk) {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    println!("machine: {cores} cores; wrk -t2 -c{connections} -d{secs}s --latency, one after the other");
    println!(
        "gate/check (valid cookie, policy decision, audit record): {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, non-2xx {}",
        wardgate.rate, wardgate.p50_ms, wardgate.p99_ms, wardgate.non_2xx
    );
    println!(
        "Wardgate /healthz (the same router, no decision):         {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
        floor.rate, floor.p50_ms, floor.p99_ms
    );
    println!(
        "nginx return 200 (ceiling):                                {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
        ceiling.rate, ceiling.p50_ms, ceiling.p99_ms
    );
    println!(
        "ratio: {:.1}% of nginx (target >= 50%); p99 {:.2} ms (target < 2 ms)",
        100.0 * wardgate.rate / ceiling.rate,
        wardgate.p99_ms
    );
    if std::env::var_os("WARDGATE_BENCH_RAW").is_some() {
        println!("--- wrk, Wardgate ---\n{}\n--- wrk, nginx ---\n{}", wardgate.raw, ceiling.raw);
    }
}

fn print_latency(runs: &[(usize, Wrk, Wrk)]) {
    for (c, direct, proxied) in runs {
        println!(
            "  {c} connection(s): direct p50 {:.3} ms p99 {:.3} ms ({:.0} req/s); through the proxy p50 {:.3} ms p99 {:.3} ms ({:.0} req/s, non-2xx {}); added p50 {:.3} ms, p99 {:.3} ms (target p99 < 1 ms)",
            direct.p50_ms,
            direct.p99_ms,
            direct.rate,
            proxied.p50_ms,
            proxied.p99_ms,
            proxied.rate,
            proxied.non_2xx,
            proxied.p50_ms - direct.p50_ms,
            proxied.p99_ms - direct.p99_ms
        );
    }
}
