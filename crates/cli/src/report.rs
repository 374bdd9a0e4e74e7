//! `wardgate report vendors`: the evidence for a vendor risk review (V3) — each business
//! associate, its agreement, its named accounts with their factors and last access, and
//! how each sign-in and gateway access was authenticated, read from the audit log.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use time::OffsetDateTime;
use wardgate_core::audit::record::format_ts;
use wardgate_server::governance::vendors;
use wardgate_store::{Store, StoreError};

#[derive(Default)]
struct Evidence {
    logins: u64,
    logins_mfa: u64,
    gateway: u64,
    gateway_mfa: u64,
    last_access: Option<String>,
}

/// The report as JSON (also the input of the HTML page).
pub async fn vendors(store: &dyn Store, now: OffsetDateTime) -> Result<Value, StoreError> {
    let list = store.list_vendors().await?;
    let mut users_of = Vec::new();
    let mut evidence: BTreeMap<String, Evidence> = BTreeMap::new();
    for v in &list {
        let users = store.vendor_users(&v.name).await?;
        for u in &users {
            evidence.insert(u.username.as_str().to_owned(), Evidence::default());
        }
        users_of.push(users);
    }
    // One pass over the log: sign-ins and gateway decisions of vendor accounts.
    let mut after = 0;
    loop {
        let page = store.audit_records(after, 5000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for r in &page {
            if r.event_type != "auth.login.succeeded" && r.event_type != "gateway.access" {
                continue;
            }
            let Ok(body) = serde_json::from_str::<Value>(&r.body) else { continue };
            let Some(ev) = body["subject"].as_str().and_then(|s| evidence.get_mut(s)) else { continue };
            if body["outcome"] != "success" {
                continue;
            }
            let mfa = |aal: &Value| matches!(aal.as_str(), Some("aal2" | "aal3"));
            if r.event_type == "auth.login.succeeded" {
                ev.logins += 1;
                ev.logins_mfa += u64::from(mfa(&body["details"]["aal"]));
            } else {
                ev.gateway += 1;
                ev.gateway_mfa += u64::from(mfa(&body["details"]["request"]["session_aal"]));
            }
            ev.last_access = body["ts"].as_str().map(str::to_owned);
        }
    }
    let mut out = Vec::new();
    for (v, users) in list.iter().zip(users_of) {
        let mut j = vendors::json(v, now);
        let mut rows = Vec::new();
        for u in users {
            let factors: Vec<String> =
                store.factors_of(&u.id).await?.iter().map(|f| f.kind.as_str().to_owned()).collect();
            let e = evidence.remove(u.username.as_str()).unwrap_or_default();
            let share = |n: u64, d: u64| if d == 0 { Value::Null } else { json!(n as f64 / d as f64) };
            rows.push(json!({
                "username": u.username.as_str(),
                "display_name": u.display_name,
                "status": u.status.as_str(),
                "account_expires": u.account_expires.map(format_ts),
                "expired": u.expired_at(now),
                "last_login_at": u.last_login_at.map(format_ts),
                "last_access_at": e.last_access,
                "factors": factors,
                "mfa_required": true,
                "sign_ins": e.logins,
                "sign_ins_mfa": e.logins_mfa,
                "sign_ins_mfa_share": share(e.logins_mfa, e.logins),
                "gateway_accesses": e.gateway,
                "gateway_accesses_mfa": e.gateway_mfa,
                "gateway_mfa_share": share(e.gateway_mfa, e.gateway),
            }));
        }
        j["users"] = rows.into();
        out.push(j);
    }
    Ok(json!({"generated_at": format_ts(now), "vendors": out}))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => esc(s),
        Value::Array(a) => esc(&a.iter().map(|x| x.as_str().unwrap_or_default()).collect::<Vec<_>>().join(", ")),
        Value::Number(n) if n.is_f64() => format!("{:.0}%", n.as_f64().unwrap_or_default() * 100.0),
        other => esc(&other.to_string()),
    }
}

/// A standalone page: no scripts, no external resources, printable.
pub fn vendors_html(report: &Value) -> String {
    let mut h = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Wardgate — vendor access report</title>\n<style>body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:0.5em 0 2em}th,td{border:1px solid #bbb;padding:4px 8px;text-align:left;font-size:0.9em}th{background:#eee}.bad{color:#a00;font-weight:bold}</style></head><body>\n",
    );
    h.push_str(&format!(
        "<h1>Vendor access report</h1>\n<p>Generated {}. Vendor accounts always require multi-factor authentication; the shares below are read from the audit log.</p>\n",
        text(&report["generated_at"])
    ));
    for v in report["vendors"].as_array().into_iter().flatten() {
        h.push_str(&format!(
            "<h2>{} <small>({})</small></h2>\n<p>Agreement {} in force from {} to {}{}; sponsor {}.</p>\n",
            text(&v["display_name"]),
            text(&v["name"]),
            text(&v["baa_reference"]),
            text(&v["baa_effective"]),
            text(&v["baa_expires"]),
            if v["baa_in_force"] == true { "" } else { " <span class=\"bad\">(not in force)</span>" },
            text(&v["sponsor"]),
        ));
        h.push_str("<table><tr><th>Account</th><th>Name</th><th>Status</th><th>Expires</th><th>Factors</th><th>Last sign-in</th><th>Last access</th><th>Sign-ins (MFA)</th><th>Gateway accesses (MFA)</th></tr>\n");
        for u in v["users"].as_array().into_iter().flatten() {
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ({})</td><td>{} ({})</td></tr>\n",
                text(&u["username"]),
                text(&u["display_name"]),
                text(&u["status"]),
                text(&u["account_expires"]),
                text(&u["factors"]),
                text(&u["last_login_at"]),
                text(&u["last_access_at"]),
                text(&u["sign_ins"]),
                text(&u["sign_ins_mfa_share"]),
                text(&u["gateway_accesses"]),
                text(&u["gateway_mfa_share"]),
            ));
        }
        h.push_str("</table>\n");
    }
    h.push_str("</body></html>\n");
    h
}

/// The record types that are administrative overrides of the normal path: an unlock, a
/// factor reset or removal, re-enabling an account, emergency access and a policy bypass,
/// an elevation.
pub const OVERRIDES: &[&str] = &[
    "admin.user.unlocked",
    "admin.passphrase.reset",
    "admin.factor.removed",
    "admin.user.enabled",
    "breakglass.opened",
    "elevation.approved",
];

/// Every override since `since_us` (microseconds), oldest first, with who did it and why.
pub async fn overrides(store: &dyn Store, since_us: i64, now: OffsetDateTime) -> Result<Value, StoreError> {
    let mut after = match store.audit_first_seq_at(since_us).await? {
        Some(seq) => seq - 1,
        None => return Ok(json!({"generated_at": format_ts(now), "overrides": []})),
    };
    let mut rows = Vec::new();
    loop {
        let page = store.audit_records(after, 5000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for r in page.iter().filter(|r| OVERRIDES.contains(&r.event_type.as_str())) {
            let Ok(b) = serde_json::from_str::<Value>(&r.body) else { continue };
            rows.push(json!({
                "seq": r.seq,
                "ts": b["ts"],
                "type": b["type"],
                "actor": b["actor"],
                "subject": b["subject"],
                "reason": if b["details"]["override_reason"].is_string() { b["details"]["override_reason"].clone() } else { b["reason"].clone() },
                "outcome": b["outcome"],
                "details": b["details"],
            }));
        }
    }
    Ok(json!({"generated_at": format_ts(now), "overrides": rows}))
}

pub fn overrides_html(report: &Value) -> String {
    let mut h = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Wardgate — administrative overrides</title>\n<style>body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}th,td{border:1px solid #bbb;padding:4px 8px;text-align:left;font-size:0.9em;vertical-align:top}th{background:#eee}</style></head><body>\n",
    );
    h.push_str(&format!(
        "<h1>Administrative overrides</h1>\n<p>Generated {}, from the audit log: {}.</p>\n<table><tr><th>#</th><th>When</th><th>What</th><th>By</th><th>About</th><th>Why</th><th>Details</th></tr>\n",
        text(&report["generated_at"]),
        esc(&OVERRIDES.join(", "))
    ));
    for r in report["overrides"].as_array().into_iter().flatten() {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            text(&r["seq"]),
            text(&r["ts"]),
            text(&r["type"]),
            text(&r["actor"]),
            text(&r["subject"]),
            text(&r["reason"]),
            esc(&r["details"].to_string()),
        ));
    }
    h.push_str("</table>\n</body></html>\n");
    h
}
