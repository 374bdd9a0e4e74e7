//! Prometheus metrics and the per-request middleware that feeds them.

use std::convert::Infallible;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;
use metrics::SharedString;

use crate::envelope::{Finish, Finishing};
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
/// could carry tokens and would explode the label set). A layer on the routes, where the
/// template is known.
#[derive(Clone, Copy, Default)]
pub struct TrackLayer;

impl<S> tower::Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Track<S> {
        Track { inner }
    }
}

#[derive(Clone)]
pub struct Track<S> {
    inner: S,
}

impl<S> tower::Service<Request> for Track<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Finishing<S::Future, Tracking>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let route: SharedString = match req.extensions().get::<MatchedPath>() {
            Some(p) => p.as_str().to_owned().into(),
            None => SharedString::const_str("unmatched"),
        };
        let method = method_label(req.method());
        Finishing::new(self.inner.call(req), Tracking { route, method, start: Instant::now() })
    }
}

fn method_label(m: &Method) -> SharedString {
    match *m {
        Method::GET => SharedString::const_str("GET"),
        Method::POST => SharedString::const_str("POST"),
        Method::PUT => SharedString::const_str("PUT"),
        Method::PATCH => SharedString::const_str("PATCH"),
        Method::DELETE => SharedString::const_str("DELETE"),
        Method::HEAD => SharedString::const_str("HEAD"),
        Method::OPTIONS => SharedString::const_str("OPTIONS"),
        _ => m.as_str().to_owned().into(),
    }
}

/// What the metrics layer kept from the request.
pub struct Tracking {
    route: SharedString,
    method: SharedString,
    start: Instant,
}

impl Finish for Tracking {
    fn finish(self, resp: Response) -> Response {
        let status = resp.status().as_u16().to_string();
        metrics::counter!("wardgate_http_requests_total", "route" => self.route.clone(), "method" => self.method.clone(), "status" => status)
            .increment(1);
        metrics::histogram!("wardgate_http_request_duration_seconds", "route" => self.route, "method" => self.method)
            .record(self.start.elapsed().as_secs_f64());
        resp
    }
}
