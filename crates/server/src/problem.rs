//! RFC 9457 problem documents: the one shape every HTTP error takes.

use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// A URN per problem kind; stable, so clients can branch on it.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, slug: &str, title: &'static str) -> Self {
        Self { kind: format!("urn:wardgate:problem:{slug}"), title, status: status.as_u16(), detail: None }
    }

    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid-request", "The request is not valid").detail(detail)
    }

    /// A field is missing, unknown or of the wrong type (RFC 9457 §3: 422 for semantic errors).
    pub fn invalid_field(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-field", "A field is missing, unknown or of the wrong type")
            .detail(detail)
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "No such resource")
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "The service cannot handle this request now")
            .detail(detail)
    }

    /// For failures whose cause must not leak (it is logged instead).
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "The server could not complete the request")
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).unwrap_or_default();
        (self.status_code(), [(header::CONTENT_TYPE, "application/problem+json")], body).into_response()
    }
}

impl From<JsonRejection> for Problem {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "The request body must be application/json",
            ),
            JsonRejection::JsonSyntaxError(e) => Problem::bad_request(format!("malformed JSON: {}", e.body_text())),
            JsonRejection::JsonDataError(e) => Problem::invalid_field(e.body_text()),
            other => body_problem(other.status(), other.body_text()),
        }
    }
}

impl From<FormRejection> for Problem {
    fn from(r: FormRejection) -> Self {
        match r {
            FormRejection::InvalidFormContentType(_) => Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "The request body must be application/x-www-form-urlencoded",
            ),
            FormRejection::FailedToDeserializeFormBody(e) => Problem::invalid_field(e.body_text()),
            FormRejection::FailedToDeserializeForm(e) => Problem::invalid_field(e.body_text()),
            other => body_problem(other.status(), other.body_text()),
        }
    }
}

fn body_problem(status: StatusCode, text: String) -> Problem {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(status, "body-too-large", "The request body is larger than this server accepts")
    } else if status.is_client_error() {
        Problem::bad_request(text)
    } else {
        Problem::internal()
    }
}

/// Layers below the router (timeouts, body limits) answer with bare status codes; give
/// every error response without a body type the problem-document shape.
pub fn with_problem_body(resp: Response) -> Response {
    let status = resp.status();
    if (status.is_client_error() || status.is_server_error()) && !resp.headers().contains_key(header::CONTENT_TYPE) {
        let title = status.canonical_reason().unwrap_or("Error");
        let slug = title.to_ascii_lowercase().replace(' ', "-");
        let mut p = Problem::new(status, &slug, "The request could not be completed");
        p.detail = Some(title.to_owned());
        return p.into_response();
    }
    resp
}

/// `Json<T>` whose rejections are problem documents. `T` should deny unknown fields.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::Json::<T>::from_request(req, state).await.map(|axum::Json(v)| ApiJson(v)).map_err(Problem::from)
    }
}

/// `Form<T>` whose rejections are problem documents.
pub struct ApiForm<T>(pub T);

impl<S, T> FromRequest<S> for ApiForm<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::Form::<T>::from_request(req, state).await.map(|axum::Form(v)| ApiForm(v)).map_err(Problem::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_rfc9457() {
        let p = Problem::bad_request("x");
        let v: serde_json::Value = serde_json::to_value(&p).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "urn:wardgate:problem:invalid-request", "title": "The request is not valid", "status": 400, "detail": "x"})
        );
        assert_eq!(p.into_response().headers()[header::CONTENT_TYPE], "application/problem+json");
    }
}
