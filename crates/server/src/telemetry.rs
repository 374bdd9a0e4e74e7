//! Prometheus metrics and the per-request middleware that feeds them.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once; later calls (several servers in one test
/// process) share it.
pub fn recorder() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0])
                .ok()?
                .install_recorder()
                .ok()?;
            metrics::describe_counter!("wardgate_http_requests_total", "HTTP requests by route, method and status");
            metrics::describe_histogram!(
                "wardgate_http_request_duration_seconds",
                metrics::Unit::Seconds,
                "HTTP request latency by route and method"
            );
            metrics::describe_counter!("wardgate_login_outcomes_total", "Login attempts by outcome");
            metrics::describe_gauge!("wardgate_audit_chain_length", "Sequence number of the audit chain head");
            metrics::describe_counter!("wardgate_audit_records_total", "Audit records appended by this node");
            metrics::describe_counter!("wardgate_audit_write_failures_total", "Audit batches that failed to commit");
            for outcome in ["succeeded", "failed", "denied"] {
                metrics::counter!("wardgate_login_outcomes_total", "outcome" => outcome).absolute(0);
            }
            Some(handle)
        })
        .as_ref()
}

pub fn render() -> String {
    recorder().map(|h| h.render()).unwrap_or_default()
}

/// Counts and times every request by its route template (never the raw path, which
/// could carry tokens and would explode the label set).
pub async fn track(req: Request, next: Next) -> Response {
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("wardgate_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("wardgate_http_request_duration_seconds", "route" => route, "method" => method)
        .record(start.elapsed().as_secs_f64());
    resp
}
