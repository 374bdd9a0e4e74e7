//! Alerts on break-glass: a JSON POST to a webhook and an RFC 5424 message over UDP.
//!
//! Sent after the audit record is durable, in the background, so an unreachable alert
//! channel never delays emergency care. A failure is logged, counted
//! (`wardgate_breakglass_alerts_failed_total{channel}`) and recorded as `breakglass.alert`
//! with outcome `failure`, so that a missing alert is itself evidence.

use std::sync::Arc;
use std::time::Duration;

use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::governance::BreakGlass;
use wardgate_core::governance::settings::GovernanceSettings;
use wardgate_store::Store;

use super::ts;

const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// The documented webhook body (docs/governance.md#alerts). Version 1.
pub fn body(bg: &BreakGlass, display_name: &str, node: &str, base_url: &str) -> serde_json::Value {
    serde_json::json!({
        "version": 1,
        "event": "breakglass.opened",
        "severity": "high",
        "id": bg.id,
        "username": bg.username.as_str(),
        "display_name": display_name,
        "reason_code": bg.reason_code,
        "justification": bg.justification,
        "opened_at": ts(bg.opened_at),
        "expires_at": ts(bg.expires_at),
        "client_ip": bg.client_ip.map(|i| i.to_string()),
        "session_id": bg.session_id,
        "node": node,
        "server": base_url,
    })
}

/// RFC 5424, facility authpriv (10), severity alert (1): `<81>1 TS HOST wardgate - breakglass.opened - JSON`.
pub fn syslog_line(body: &serde_json::Value, node: &str, at: &str) -> String {
    let host: String = node.chars().filter(|c| c.is_ascii_graphic()).take(255).collect();
    let host = if host.is_empty() { "-".to_owned() } else { host };
    format!("<81>1 {at} {host} wardgate - breakglass.opened - {body}")
}

/// Sends the alerts in the background.
pub fn send(
    store: Arc<dyn Store>,
    settings: Arc<GovernanceSettings>,
    body: serde_json::Value,
    node: String,
    clock: fn() -> time::OffsetDateTime,
) {
    if settings.alert_webhook_url.is_none() && settings.alert_syslog.is_none() {
        return;
    }
    tokio::spawn(async move {
        let id = body["id"].as_str().unwrap_or_default().to_owned();
        let at = body["opened_at"].as_str().unwrap_or_default().to_owned();
        if let Some(url) = &settings.alert_webhook_url
            && let Err(e) = webhook(url, &body).await
        {
            failed(&*store, "webhook", &id, &e, clock()).await;
        }
        if let Some(addr) = &settings.alert_syslog
            && let Err(e) = syslog(addr, &syslog_line(&body, &node, &at)).await
        {
            failed(&*store, "syslog", &id, &e, clock()).await;
        }
    });
}

async fn webhook(url: &str, body: &serde_json::Value) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let resp = client.post(url).json(body).send().await.map_err(|e| e.to_string())?;
    if resp.status().is_success() { Ok(()) } else { Err(format!("the webhook answered {}", resp.status())) }
}

async fn syslog(addr: &str, line: &str) -> Result<(), String> {
    let sock = tokio::net::UdpSocket::bind(if addr.starts_with('[') { "[::]:0" } else { "0.0.0.0:0" })
        .await
        .map_err(|e| e.to_string())?;
    sock.send_to(line.as_bytes(), addr).await.map_err(|e| e.to_string())?;
    Ok(())
}

async fn failed(store: &dyn Store, channel: &'static str, id: &str, error: &str, now: time::OffsetDateTime) {
    tracing::error!(channel, breakglass_id = id, error, "break-glass alert could not be sent");
    metrics::counter!("wardgate_breakglass_alerts_failed_total", "channel" => channel).increment(1);
    let e = AuditEvent::known(now, types::BREAKGLASS_ALERT, Outcome::Failure)
        .reason(error.to_owned())
        .detail("breakglass_id", id.to_owned())
        .detail("channel", channel);
    if let Err(err) = store.append_audit(&[e]).await {
        tracing::error!(error = %err, "could not record the failed break-glass alert");
    }
}
