//! Policy decisions with a 1,000-rule policy: criterion's mean, then the latency
//! distribution of single decisions (p50, p99, p99.9) over 200,000 of them.
//!
//! `cargo bench -p wardgate-core --bench policy`

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use wardgate_core::device::Posture;
use wardgate_core::login::Aal;
use wardgate_core::policy::{DeviceFacts, Policy, Request, SessionFacts, Subject};

const EXAMPLE: &str = include_str!("../../../docs/policy.example.toml");
const NOW: OffsetDateTime = datetime!(2026-11-25 10:00 UTC);
const SEGMENTS: &[&str] = &["clinical-vlan", "vpn", "internet"];
const ROLES: &[&str] = &["physician", "nurse", "pharmacist", "registrar", "auditor", "vendor-support"];

/// The documented example with enough application-specific rules in front of it to make
/// 1,000: every request below walks all of them, and none of the extra rules matches it.
fn thousand_rules() -> Policy {
    let (head, rules) = EXAMPLE.split_once("\n[[rule]]").expect("the example has rules");
    let mut src = head.to_owned();
    let example_rules = EXAMPLE.matches("\n[[rule]]").count();
    for i in 0..(1000 - example_rules) {
        let seg = SEGMENTS[i % SEGMENTS.len()];
        let role = ROLES[i % ROLES.len()];
        let outcome = match i % 4 {
            0 => "deny = \"application closed\"".to_owned(),
            1 => "allow = true".to_owned(),
            _ => format!("require = \"aal{}\"", 1 + i % 3),
        };
        src.push_str(&format!(
            "\n[[rule]]\nname = \"app-{i}\"\nactions = [\"app{i}.read\", \"app{i}.write\"]\nroles = [\"{role}\"]\nnetworks = [\"{seg}\"]\nhours = \"06:00-22:00\"\n{outcome}\n"
        ));
    }
    src.push_str("\n[[rule]]");
    src.push_str(rules);
    let p = Policy::parse(&src).expect("the generated policy parses");
    assert_eq!(p.rule_names().count(), 1000);
    p
}

fn requests() -> Vec<(&'static str, &'static str, Option<DeviceFacts<'static>>)> {
    let ws = DeviceFacts {
        name: "ws-icu-03",
        managed: true,
        trusted: true,
        posture: Posture { disk_encrypted: true, patched: true, checked_in_at: Some(NOW - Duration::hours(1)) },
        site: Some("main"),
    };
    vec![
        ("ephi.read", "10.20.4.7", Some(ws)),
        ("ephi.read", "203.0.113.9", None),
        ("admin.users", "10.20.4.7", Some(ws)),
        ("ephi.export", "203.0.113.9", None),
    ]
}

fn decide(p: &Policy, roles: &[String], (action, ip, device): &(&str, &str, Option<DeviceFacts<'static>>)) -> Aal {
    let d = p.evaluate(&Request {
        action,
        resource: Some("Patient/123"),
        subject: Subject { username: "dr-lee", roles, privileged: true, active: true, recent_failures: 0 },
        session: Some(SessionFacts { aal: Aal::Aal2, authenticated_at: NOW - Duration::minutes(3) }),
        device: *device,
        ip: ip.parse().ok(),
        now: NOW,
    });
    d.required
}

fn bench(c: &mut Criterion) {
    let p = thousand_rules();
    let roles = vec!["physician".to_owned(), "it-admin".to_owned()];
    let reqs = requests();
    let mut g = c.benchmark_group("policy_1000_rules");
    g.bench_function("decision", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % reqs.len();
            black_box(decide(&p, &roles, black_box(&reqs[i])))
        })
    });
    g.finish();
}

/// Criterion reports means; the target is about the tail, so time single decisions too.
fn distribution() {
    let p = thousand_rules();
    let roles = vec!["physician".to_owned(), "it-admin".to_owned()];
    let reqs = requests();
    for r in &reqs {
        black_box(decide(&p, &roles, r));
    }
    let n = 200_000;
    let mut ns = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        black_box(decide(&p, &roles, black_box(&reqs[i % reqs.len()])));
        ns.push(t.elapsed().as_nanos() as u64);
    }
    let wall = started.elapsed();
    ns.sort_unstable();
    let q = |f: f64| ns[((n as f64 * f) as usize).min(n - 1)] as f64 / 1000.0;
    println!(
        "policy_1000_rules/single decisions: n={n}, {:.0} decisions/s on one thread, p50 {:.2} µs, p99 {:.2} µs, p99.9 {:.2} µs, max {:.1} µs",
        n as f64 / wall.as_secs_f64(),
        q(0.50),
        q(0.99),
        q(0.999),
        ns[n - 1] as f64 / 1000.0
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    distribution();
    Criterion::default().configure_from_args().final_summary();
}
