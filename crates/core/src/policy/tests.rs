//! The documented example, decided case by case, and the evaluator's laws as properties.

use proptest::prelude::*;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::*;
use crate::device::Posture;
use crate::login::Aal;

const EXAMPLE: &str = include_str!("../../../../docs/policy.example.toml");
const NOW: OffsetDateTime = datetime!(2026-11-25 10:00 UTC);

fn example() -> Policy {
    Policy::parse(EXAMPLE).expect("the documented example parses")
}

fn workstation() -> DeviceFacts<'static> {
    DeviceFacts {
        name: "ws-icu-03",
        managed: true,
        trusted: true,
        posture: Posture { disk_encrypted: true, patched: true, checked_in_at: Some(NOW - Duration::hours(1)) },
        site: Some("main"),
    }
}

fn ask<'a>(
    action: &'a str,
    roles: &'a [String],
    ip: &str,
    device: Option<DeviceFacts<'a>>,
    aal: Aal,
    age: Duration,
) -> Request<'a> {
    Request {
        action,
        resource: None,
        subject: Subject { username: "dr-lee", roles, privileged: true, active: true, recent_failures: 0 },
        session: Some(SessionFacts { aal, authenticated_at: NOW - age }),
        device,
        ip: Some(ip.parse().unwrap()),
        now: NOW,
    }
}

fn roles(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn trusted_clinical_workstation_keeps_an_eight_hour_session_with_quick_reentry() {
    let p = example();
    let r = roles(&["physician", "it-admin"]);
    let d = p.evaluate(&ask("ephi.read", &r, "10.20.4.7", Some(workstation()), Aal::Aal1, Duration::minutes(10)));
    assert_eq!((d.effect, d.rule, d.required), (Effect::Allow, "trusted-clinical-workstation", Aal::Aal1));
    assert_eq!(d.limits.lifetime, Duration::hours(8));
    assert_eq!(d.limits.idle_timeout, Duration::hours(8));
    assert_eq!(d.limits.reauthenticate_after, Duration::minutes(30));
    assert_eq!(d.segment, Some("clinical-vlan"));
    // After 30 minutes the quick factor is asked again, at the same level.
    let d = p.evaluate(&ask("ephi.read", &r, "10.20.4.7", Some(workstation()), Aal::Aal1, Duration::minutes(31)));
    assert_eq!((d.effect, d.required), (Effect::StepUp, Aal::Aal1));
}

#[test]
fn the_same_person_from_the_internet_needs_two_factors_and_a_short_idle_timeout() {
    let p = example();
    let r = roles(&["physician", "it-admin"]);
    let d = p.evaluate(&ask("ephi.read", &r, "203.0.113.9", None, Aal::Aal1, Duration::minutes(1)));
    assert_eq!((d.effect, d.rule, d.required), (Effect::StepUp, "remote", Aal::Aal2));
    assert_eq!(d.limits.idle_timeout, Duration::minutes(15));
    let d = p.evaluate(&ask("ephi.read", &r, "203.0.113.9", None, Aal::Aal2, Duration::minutes(1)));
    assert_eq!(d.effect, Effect::Allow);
    // An untrusted device on the clinical VLAN is no better than the internet.
    let d = p.evaluate(&ask("ephi.read", &r, "10.20.4.7", None, Aal::Aal1, Duration::minutes(1)));
    assert_eq!((d.effect, d.required), (Effect::StepUp, Aal::Aal2));
}

#[test]
fn administration_needs_aal3_even_on_a_trusted_workstation() {
    let p = example();
    let r = roles(&["physician", "it-admin"]);
    let d = p.evaluate(&ask("admin.users", &r, "10.20.4.7", Some(workstation()), Aal::Aal2, Duration::minutes(1)));
    assert_eq!((d.effect, d.rule, d.required), (Effect::StepUp, "administration", Aal::Aal3));
    let d = p.evaluate(&ask("admin.users", &r, "10.20.4.7", Some(workstation()), Aal::Aal3, Duration::minutes(1)));
    assert_eq!(d.effect, Effect::Allow);
}

#[test]
fn a_vendor_is_denied_outside_the_gateway_routes() {
    let p = example();
    let r = roles(&["vendor-support"]);
    let d = p.evaluate(&ask("ephi.read", &r, "203.0.113.9", None, Aal::Aal3, Duration::minutes(1)));
    assert_eq!((d.effect, d.rule), (Effect::Deny, "vendors-only-through-gateway"));
    assert!(d.reason.contains("gateway"));
    let d = p.evaluate(&ask("gateway.vendor", &r, "203.0.113.9", None, Aal::Aal2, Duration::minutes(1)));
    assert_eq!(d.effect, Effect::Allow);
}

#[test]
fn least_privilege_and_separate_administrative_accounts() {
    let p = example();
    let none: Vec<String> = Vec::new();
    let d = p.evaluate(&ask("ephi.read", &none, "203.0.113.9", None, Aal::Aal3, Duration::minutes(1)));
    assert_eq!((d.effect, d.rule), (Effect::Deny, builtin::NO_PERMISSION));
    // Administrative permissions count only on a privileged account.
    let r = roles(&["it-admin"]);
    let mut req = ask("admin.users", &r, "203.0.113.9", None, Aal::Aal3, Duration::minutes(1));
    req.subject.privileged = false;
    assert_eq!(p.evaluate(&req).rule, builtin::NO_PERMISSION);
    req.subject.privileged = true;
    req.subject.active = false;
    assert_eq!(p.evaluate(&req).rule, builtin::ACCOUNT_INACTIVE);
}

#[test]
fn a_recent_step_up_is_not_asked_for_again() {
    let p = example();
    let r = roles(&["physician"]);
    let d = p.evaluate(&ask("ephi.export", &r, "203.0.113.9", None, Aal::Aal2, Duration::minutes(4)));
    assert_eq!(d.effect, Effect::Allow);
    let d = p.evaluate(&ask("ephi.export", &r, "203.0.113.9", None, Aal::Aal2, Duration::minutes(6)));
    assert_eq!((d.effect, d.fresh), (Effect::StepUp, Some(Duration::minutes(5))));
}

#[test]
fn the_built_in_admin_floor_holds_against_a_lax_file() {
    let p = Policy::parse("[[rule]]\nname = \"lax\"\nmatch_all = true\nallow = true\n").unwrap();
    let r = roles(&["security-admin"]);
    let d = p.evaluate(&ask("admin.policy", &r, "10.0.0.1", None, Aal::Aal2, Duration::minutes(1)));
    assert_eq!((d.effect, d.rule, d.required), (Effect::StepUp, builtin::ADMIN_FLOOR, Aal::Aal3));
}

#[test]
fn explain_shows_every_rule_and_why() {
    let p = example();
    let r = roles(&["physician"]);
    let e = p.explain(&ask("ephi.read", &r, "203.0.113.9", None, Aal::Aal2, Duration::minutes(1)));
    assert_eq!(e.steps.len(), p.rule_names().count());
    let step = |name: &str| e.steps.iter().find(|s| s.rule == name).unwrap();
    assert_eq!(step("remote").matched, Ok(()));
    assert_eq!(step("trusted-clinical-workstation").matched, Err(Miss::Network));
    assert_eq!(step("administration").matched, Err(Miss::Action));
    assert!(e.granted);
    assert_eq!(e.decision.effect, Effect::Allow);
}

#[test]
fn simulation_reports_the_decisions_a_proposal_changes() {
    let current = example();
    let stricter = Policy::parse(&EXAMPLE.replace(
        "name = \"trusted-clinical-workstation\"",
        "name = \"trusted-clinical-workstation\"\nhours = \"07:00-19:00\"",
    ))
    .unwrap();
    let r = roles(&["physician"]);
    let mut recorded = Vec::new();
    for (hour, ip) in [(10, "10.20.4.7"), (22, "10.20.4.7"), (23, "10.20.4.7"), (22, "203.0.113.9")] {
        let mut req = ask("ephi.read", &r, ip, Some(workstation()), Aal::Aal1, Duration::minutes(1));
        req.now = NOW.replace_hour(hour).unwrap();
        req.session = Some(SessionFacts { aal: Aal::Aal1, authenticated_at: req.now - Duration::minutes(1) });
        let d = current.evaluate(&req);
        recorded.push(Recorded { request: RecordedRequest::capture(&req), effect: d.effect, required: d.required });
    }
    // Replaying against the same policy changes nothing.
    assert_eq!(simulate(&current, recorded.clone()).changed, 0);
    let s = simulate(&stricter, recorded);
    assert_eq!((s.replayed, s.changed), (4, 2));
    assert_eq!(s.changes.len(), 1);
    let c = &s.changes[0];
    assert_eq!((c.username.as_str(), c.action.as_str(), c.count), ("dr-lee", "ephi.read", 2));
    assert_eq!((c.before.as_str(), c.after.as_str(), c.rule.as_str()), ("allow aal1", "deny", builtin::NO_RULE));
}

#[test]
fn recorded_requests_round_trip_through_json() {
    let r = roles(&["nurse"]);
    let req = ask("ephi.read", &r, "10.20.4.7", Some(workstation()), Aal::Aal2, Duration::minutes(3));
    let rec = RecordedRequest::capture(&req);
    let back: RecordedRequest = serde_json::from_value(serde_json::to_value(&rec).unwrap()).unwrap();
    assert_eq!(back, rec);
    assert_eq!(back.replay(&example()), example().evaluate(&req));
}

// --- properties ------------------------------------------------------------------------

const ACTIONS: &[&str] = &["ephi.read", "ephi.export", "epcs.sign", "admin.users", "gateway.vendor", "login"];
const ACTION_PATTERNS: &[&str] = &["ephi.read", "ephi.export", "ephi.*", "admin.*", "gateway.*", "*", "epcs.sign"];
const ROLES: &[&str] = &["physician", "nurse", "it-admin", "vendor-support", "auditor"];
const SEGMENTS: &[&str] = &["lan", "vpn", "internet"];
const DEVICES: &[&str] = &["unknown", "registered", "managed", "trusted"];

fn list(names: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
    proptest::option::of(proptest::sample::subsequence(names, 1..=names.len().min(3)))
        .prop_map(|o| o.map(|v| format!("[{}]", v.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", "))))
}

fn rule_source() -> impl Strategy<Value = String> {
    let conditions = (
        list(ACTION_PATTERNS),
        list(ACTION_PATTERNS),
        list(ROLES),
        list(SEGMENTS),
        list(SEGMENTS),
        list(DEVICES),
        proptest::option::of(any::<bool>()),
        proptest::option::of(prop_oneof![Just("07:00-19:00"), Just("19:00-07:00")]),
        proptest::option::of(0u32..4),
    );
    let outcome = prop_oneof![
        Just("allow = true".to_owned()),
        Just("deny = \"no\"".to_owned()),
        (1u8..=3).prop_map(|l| format!("require = \"aal{l}\"")),
        (1u8..=3, 1u32..60).prop_map(|(l, m)| format!("require = \"aal{l}\"\nfresh = \"{m}m\"")),
    ];
    let session = proptest::option::of((1u32..600, 1u32..600)).prop_map(|o| {
        o.map(|(i, r)| format!("session = {{ idle_timeout = \"{i}m\", reauthenticate_after = \"{r}m\" }}"))
    });
    (conditions, outcome, session).prop_map(|((a, na, r, n, nn, d, p, h, f), outcome, session)| {
        let mut lines = Vec::new();
        for (k, v) in
            [("actions", a), ("not_actions", na), ("roles", r), ("networks", n), ("not_networks", nn), ("devices", d)]
        {
            if let Some(v) = v {
                lines.push(format!("{k} = {v}"));
            }
        }
        if let Some(p) = p {
            lines.push(format!("privileged = {p}"));
        }
        if let Some(h) = h {
            lines.push(format!("hours = {h:?}"));
        }
        if let Some(f) = f {
            lines.push(format!("min_recent_failures = {f}"));
        }
        if lines.is_empty() {
            lines.push("match_all = true".to_owned());
        }
        lines.push(outcome);
        lines.extend(session);
        lines.join("\n")
    })
}

fn policy_source() -> impl Strategy<Value = String> {
    proptest::collection::vec(rule_source(), 0..12).prop_map(|rules| {
        let mut s =
            String::from("[segments]\nlan = [\"10.1.0.0/16\"]\nvpn = [\"10.2.0.0/16\"]\ninternet = [\"0.0.0.0/0\"]\n");
        for (i, r) in rules.iter().enumerate() {
            s.push_str(&format!("\n[[rule]]\nname = \"r{i}\"\n{r}\n"));
        }
        s
    })
}

#[derive(Debug, Clone)]
struct Req {
    action: &'static str,
    roles: Vec<String>,
    privileged: bool,
    active: bool,
    failures: u32,
    ip: Option<&'static str>,
    device: Option<(bool, bool, bool)>,
    session: Option<(Aal, i64)>,
    minutes: i64,
}

fn aal() -> impl Strategy<Value = Aal> {
    prop_oneof![Just(Aal::Aal1), Just(Aal::Aal2), Just(Aal::Aal3)]
}

fn request() -> impl Strategy<Value = Req> {
    (
        proptest::sample::select(ACTIONS),
        proptest::sample::subsequence(ROLES, 0..=3),
        any::<bool>(),
        proptest::bool::weighted(0.9),
        0u32..5,
        proptest::option::of(proptest::sample::select(&["10.1.3.4", "10.2.3.4", "192.0.2.7"][..])),
        proptest::option::of((any::<bool>(), any::<bool>(), any::<bool>())),
        proptest::option::weighted(0.9, (aal(), 0i64..900)),
        0i64..(7 * 24 * 60),
    )
        .prop_map(|(action, roles, privileged, active, failures, ip, device, session, minutes)| Req {
            action,
            roles: roles.into_iter().map(str::to_owned).collect(),
            privileged,
            active,
            failures,
            ip,
            device,
            session,
            minutes,
        })
}

impl Req {
    fn with_aal(&self, aal: Aal) -> Req {
        Req { session: self.session.map(|(_, age)| (aal, age)), ..self.clone() }
    }

    fn decide<'p>(&self, p: &'p Policy) -> Decision<'p> {
        let now = NOW + Duration::minutes(self.minutes);
        p.evaluate(&Request {
            action: self.action,
            resource: None,
            subject: Subject {
                username: "u",
                roles: &self.roles,
                privileged: self.privileged,
                active: self.active,
                recent_failures: self.failures,
            },
            session: self
                .session
                .map(|(aal, age)| SessionFacts { aal, authenticated_at: now - Duration::minutes(age) }),
            device: self.device.map(|(managed, trusted, healthy)| DeviceFacts {
                name: "d",
                managed,
                trusted,
                posture: Posture { disk_encrypted: healthy, patched: healthy, checked_in_at: Some(now) },
                site: None,
            }),
            ip: self.ip.map(|s| s.parse().unwrap()),
            now,
        })
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn deny_always_wins(src in policy_source(), req in request(), at in 0usize..13) {
        // A deny rule matching the request, inserted anywhere, decides.
        let deny = format!("\n[[rule]]\nname = \"veto\"\nactions = [\"{}\"]\ndeny = \"veto\"\n", req.action);
        let mut blocks: Vec<&str> = src.split("\n[[rule]]").collect();
        let head = blocks.remove(0);
        let at = at.min(blocks.len());
        let mut vetoed = head.to_owned();
        for (i, b) in blocks.iter().enumerate() {
            if i == at { vetoed.push_str(&deny); }
            vetoed.push_str("\n[[rule]]");
            vetoed.push_str(b);
        }
        if at == blocks.len() { vetoed.push_str(&deny); }
        let vetoed = Policy::parse(&vetoed).unwrap();
        let d = req.decide(&vetoed);
        prop_assert_eq!(d.effect, Effect::Deny);
        if req.active {
            // The first matching deny decides: the veto, or a deny of the file before it.
            prop_assert!(d.rule == "veto" || d.reason == "no", "{:?}", d);
        }
    }

    #[test]
    fn more_assurance_is_never_refused_where_less_was_allowed(
        src in policy_source(),
        req in request(),
        (lo, hi) in prop_oneof![
            Just((Aal::Aal1, Aal::Aal2)),
            Just((Aal::Aal1, Aal::Aal3)),
            Just((Aal::Aal2, Aal::Aal3)),
        ],
    ) {
        let p = Policy::parse(&src).unwrap();
        let (weak, strong) = (req.with_aal(lo).decide(&p), req.with_aal(hi).decide(&p));
        prop_assert!(strong.effect <= weak.effect, "{:?} with {:?} but {:?} with {:?}", weak.effect, lo, strong.effect, hi);
        prop_assert_eq!(strong.required, weak.required);
    }

    #[test]
    fn without_a_rule_that_allows_the_answer_is_deny(src in policy_source(), req in request()) {
        prop_assert_eq!(req.decide(&Policy::parse("").unwrap()).effect, Effect::Deny);
        // Keep only the deny rules of a random policy: nothing can be allowed.
        let mut blocks = src.split("\n[[rule]]");
        let head = blocks.next().unwrap_or_default().to_owned();
        let denies: String = head + &blocks
            .filter(|b| b.contains("deny ="))
            .map(|b| format!("\n[[rule]]{b}"))
            .collect::<String>();
        let p = Policy::parse(&denies).unwrap();
        prop_assert_eq!(req.decide(&p).effect, Effect::Deny);
    }

    #[test]
    fn evaluation_is_deterministic(src in policy_source(), req in request()) {
        let (a, b) = (Policy::parse(&src).unwrap(), Policy::parse(&src).unwrap());
        prop_assert_eq!(&a, &b);
        let first = req.decide(&a);
        prop_assert_eq!(&req.decide(&a), &first);
        prop_assert_eq!(&req.decide(&b), &first);
        // The order in which a person's roles are listed does not matter.
        let mut reversed = req.clone();
        reversed.roles.reverse();
        prop_assert_eq!(&reversed.decide(&a), &first);
    }
}
