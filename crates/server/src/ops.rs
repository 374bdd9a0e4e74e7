//! Operational endpoints: liveness, readiness, metrics, the stylesheet.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::app::AppState;
use crate::problem::Problem;

/// The process is alive and serving; says nothing about the database.
pub async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

/// The store answers; load balancers stop sending traffic when it does not.
pub async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, Problem> {
    match state.store.ping().await {
        Ok(()) => Ok(axum::Json(
            serde_json::json!({"status": "ready", "store": state.store.backend(), "node": state.node_id}),
        )),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(Problem::unavailable("the database is unreachable"))
        }
    }
}

pub async fn metrics() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], crate::telemetry::render())
}

pub async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
        include_str!("../assets/wardgate.css"),
    )
}

pub async fn webauthn_script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
        include_str!("../assets/webauthn.js"),
    )
}

pub async fn form_post_script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
        include_str!("../assets/form_post.js"),
    )
}
