//! Prometheus metrics and the per-request middleware that feeds them.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, LazyLock, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;
use metrics::{Counter, Histogram, SharedString};

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
        // Handles are kept from a route's first request on: one made before the recorder
        // is installed would count nothing, ever.
        let _ = recorder();
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
        let route = match req.extensions().get::<MatchedPath>() {
            Some(p) => RouteMetrics::of(p.as_str()),
            None => RouteMetrics::of(UNMATCHED),
        };
        let method = method_label(req.method());
        Finishing::new(self.inner.call(req), Tracking { route, method, start: Instant::now() })
    }
}

const UNMATCHED: &str = "unmatched";

/// Any other method is `other`: a label per method a client invents would let anyone grow
/// the metrics without bound.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The request metrics of one route, their handles kept: looking a labelled metric up in
/// the registry cost more, per request, than the rest of the request's bookkeeping.
/// Routes, methods and statuses are few, so these maps stay small.
struct RouteMetrics {
    route: SharedString,
    counts: RwLock<HashMap<(&'static str, u16), Counter>>,
    timings: RwLock<HashMap<&'static str, Histogram>>,
}

static ROUTES: LazyLock<RwLock<HashMap<String, Arc<RouteMetrics>>>> = LazyLock::new(Default::default);

impl RouteMetrics {
    fn of(route: &str) -> Arc<Self> {
        if let Some(m) = ROUTES.read().unwrap_or_else(|e| e.into_inner()).get(route) {
            return Arc::clone(m);
        }
        let mut all = ROUTES.write().unwrap_or_else(|e| e.into_inner());
        Arc::clone(all.entry(route.to_owned()).or_insert_with(|| {
            Arc::new(Self { route: route.to_owned().into(), counts: RwLock::default(), timings: RwLock::default() })
        }))
    }

    fn count(&self, method: &'static str, status: u16) {
        kept(&self.counts, (method, status), || {
            metrics::counter!("wardgate_http_requests_total", "route" => self.route.clone(), "method" => method, "status" => status.to_string())
        })
        .increment(1);
    }

    fn time(&self, method: &'static str, seconds: f64) {
        kept(&self.timings, method, || {
            metrics::histogram!("wardgate_http_request_duration_seconds", "route" => self.route.clone(), "method" => method)
        })
        .record(seconds);
    }
}

/// The handle kept under `key`, made (and kept) the first time. Handles are shared
/// pointers, so handing out a clone is cheap.
fn kept<K: Eq + std::hash::Hash, H: Clone>(handles: &RwLock<HashMap<K, H>>, key: K, make: impl FnOnce() -> H) -> H {
    if let Some(h) = handles.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return h.clone();
    }
    handles.write().unwrap_or_else(|e| e.into_inner()).entry(key).or_insert_with(make).clone()
}

/// What the metrics layer kept from the request.
pub struct Tracking {
    route: Arc<RouteMetrics>,
    method: &'static str,
    start: Instant,
}

impl Finish for Tracking {
    fn finish(self, resp: Response) -> Response {
        self.route.count(self.method, resp.status().as_u16());
        self.route.time(self.method, self.start.elapsed().as_secs_f64());
        resp
    }
}
