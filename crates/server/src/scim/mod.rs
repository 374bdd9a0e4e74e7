//! `/scim/v2`: provisioning from the HR system (SCIM 2.0, RFC 7643/7644), capability L4 —
//! access follows HR within seconds.
//!
//! The connector authenticates with a SCIM token (`wardgate scim token create`), never
//! with a person's session. Every change it makes is audited with `scim:<label>` as the
//! actor, through the same account operations the command line uses: deactivating a
//! person is [`Accounts::disable`], deleting them is [`Accounts::terminate`].

mod discovery;
mod groups;
pub mod tokens;
mod users;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use wardgate_core::scim::token::ScimToken;
use wardgate_core::scim::{ERROR_SCHEMA, ScimType};
use wardgate_core::token;
use wardgate_store::StoreError;

use crate::accounts::{AccountError, ErrorKind};
use crate::app::AppState;
use crate::context::ClientContext;

pub const BASE: &str = "/scim/v2";
const CONTENT_TYPE: &str = "application/scim+json";
/// Results per page when the client does not say (RFC 7644 §3.4.2.4 leaves it to us), and
/// the most we give at once.
const DEFAULT_COUNT: usize = 100;
const MAX_COUNT: usize = 1000;

/// Changes to existing resources are made one at a time on a node, so that `If-Match` is
/// checked against the version the change is applied to: two connector retries carrying
/// the same ETag cannot both pass. HR traffic is a few changes a second at most, so one
/// queue costs nothing. (Between nodes on PostgreSQL the check and the write are still two
/// steps; docs/scim.md says so.)
static WRITES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ServiceProviderConfig", get(discovery::service_provider_config))
        .route("/ResourceTypes", get(discovery::resource_types))
        .route("/ResourceTypes/{id}", get(discovery::resource_type))
        .route("/Schemas", get(discovery::schemas))
        .route("/Schemas/{id}", get(discovery::schema_by_id))
        .route("/Users", get(users::list).post(users::create))
        .route("/.search", post(search_everything))
        .route("/Users/.search", post(users::search))
        .route("/Groups/.search", post(groups::search))
        .route("/Users/{id}", get(users::get).put(users::replace).patch(users::patch).delete(users::delete))
        .route("/Groups", get(groups::list).post(groups::create))
        .route("/Groups/{id}", get(groups::get).put(groups::replace).patch(groups::patch).delete(groups::delete))
        .fallback(|| async { ScimError::new(StatusCode::NOT_FOUND, None, "no such SCIM endpoint") })
        .method_not_allowed_fallback(|| async {
            ScimError::new(StatusCode::METHOD_NOT_ALLOWED, None, "method not allowed on this endpoint")
        })
}

/// An error in the SCIM shape (RFC 7644 §3.12): the status as a string, and a `scimType`
/// for the 400s and 409s that have one.
#[derive(Debug)]
pub struct ScimError {
    status: StatusCode,
    scim_type: Option<ScimType>,
    detail: String,
}

impl ScimError {
    pub fn new(status: StatusCode, scim_type: Option<ScimType>, detail: impl Into<String>) -> Self {
        Self { status, scim_type, detail: detail.into() }
    }

    pub fn bad(scim_type: ScimType, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, None, format!("{what} not found"))
    }

    fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, None, "a valid SCIM bearer token is required")
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = t.as_str().into();
        }
        let mut resp = respond(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"scim\""));
        }
        resp
    }
}

impl From<StoreError> for ScimError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "scim: store failed");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, None, "the database is unreachable")
    }
}

impl From<AccountError> for ScimError {
    fn from(e: AccountError) -> Self {
        match (e.kind(), &e) {
            (_, AccountError::UsernameTaken(_) | AccountError::UsernameRetired(_)) => {
                Self::new(StatusCode::CONFLICT, Some(ScimType::Uniqueness), e.to_string())
            }
            (ErrorKind::Invalid, _) => Self::bad(ScimType::InvalidValue, e.to_string()),
            (ErrorKind::NotFound, _) => Self::new(StatusCode::NOT_FOUND, None, e.to_string()),
            (ErrorKind::Conflict, _) => Self::new(StatusCode::CONFLICT, None, e.to_string()),
            (ErrorKind::Unavailable, _) => {
                tracing::error!(error = %e, "scim: account operation failed");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, None, "the account could not be changed; try again")
            }
        }
    }
}

pub fn respond(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    resp
}

/// A resource with its `ETag` (and `Location` when created).
fn resource(status: StatusCode, body: &Value, location: Option<&str>) -> Response {
    let mut resp = respond(status, body);
    if let Some(v) = body.pointer("/meta/version").and_then(Value::as_str).and_then(|v| HeaderValue::from_str(v).ok()) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    if let Some(v) = location.and_then(|l| HeaderValue::from_str(l).ok()) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// `If-Match` (RFC 7644 §3.14): a change to a resource that moved on since the client read
/// it is refused with 412 rather than silently undoing someone else's change.
fn check_if_match(headers: &HeaderMap, current: &Value) -> Result<(), ScimError> {
    let Some(want) = headers.get(header::IF_MATCH) else { return Ok(()) };
    let want = want.to_str().unwrap_or_default();
    let etag = wardgate_core::scim::etag(current);
    if wardgate_core::scim::if_match(want, &etag) {
        Ok(())
    } else {
        Err(ScimError::new(
            StatusCode::PRECONDITION_FAILED,
            None,
            format!("the resource has changed; its version is {etag}"),
        ))
    }
}

/// Request bodies arrive as `application/scim+json` (or plain JSON), which axum's `Json`
/// refuses, so they are read as bytes (still under the global body limit) and parsed here.
fn parse_body(body: &[u8]) -> Result<Value, ScimError> {
    serde_json::from_slice(body)
        .map_err(|e| ScimError::bad(ScimType::InvalidSyntax, format!("the body is not JSON: {e}")))
}

/// The connector behind a call.
pub struct Connector {
    pub token: ScimToken,
    pub ctx: ClientContext,
}

impl Connector {
    pub fn actor(&self) -> String {
        self.token.actor()
    }
}

impl FromRequestParts<AppState> for Connector {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        let Ok(ctx) = ClientContext::from_request_parts(parts, app).await;
        // Before the token lookup, so that guessing tokens costs the guesser, not us.
        app.scim_limit.check(ctx.ip).map_err(IntoResponse::into_response)?;
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let Some(secret) = bearer else { return Err(ScimError::unauthorized().into_response()) };
        // Looked up by digest: the comparison happens on a hash of the secret, so its
        // timing says nothing about the secret itself (as for API tokens).
        let found = app
            .store
            .scim_token_by_digest(&token::digest(secret))
            .await
            .map_err(|e| ScimError::from(e).into_response())?;
        let now = (app.clock)();
        match found.filter(|t| t.usable_at(now) && token::ct_eq(&t.digest, &token::digest(secret))) {
            Some(token) => Ok(Self { token, ctx }),
            None => Err(ScimError::unauthorized().into_response()),
        }
    }
}

/// `startIndex` and `count` (RFC 7644 §3.4.2.4), 1-based; nonsense is clamped as the RFC says.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    filter: Option<String>,
    start_index: Option<String>,
    count: Option<String>,
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

/// `POST /.search` over every resource type: not offered (RFC 7644 §3.12's 501); a
/// connector searches `/Users/.search` or `/Groups/.search`.
async fn search_everything(_c: Connector) -> ScimError {
    ScimError::new(
        StatusCode::NOT_IMPLEMENTED,
        None,
        "searching several resource types at once is not supported; use /Users/.search or /Groups/.search",
    )
}

/// A SearchRequest body (RFC 7644 §3.4.3) as the query parameters of a GET.
fn search_query(body: &Value) -> Result<ListQuery, ScimError> {
    use wardgate_core::scim::filter::get_ci;
    let text = |name: &str| -> Result<Option<String>, ScimError> {
        match get_ci(body, name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Array(items)) => {
                Ok(Some(items.iter().map(|i| i.as_str().unwrap_or_default()).collect::<Vec<_>>().join(",")))
            }
            Some(_) => Err(ScimError::bad(ScimType::InvalidValue, format!("{name} has the wrong type"))),
        }
    };
    Ok(ListQuery {
        filter: text("filter")?,
        start_index: text("startIndex")?,
        count: text("count")?,
        attributes: text("attributes")?,
        excluded_attributes: text("excludedAttributes")?,
    })
}

/// Filters, pages and projects `all`, giving a ListResponse.
fn list_response(all: Vec<Value>, q: &ListQuery, core_urn: &str) -> Result<Response, ScimError> {
    let filter = match q.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        Some(f) => Some(
            wardgate_core::scim::filter::Filter::parse(f)
                .map_err(|e| ScimError::bad(ScimType::InvalidFilter, e.to_string()))?,
        ),
        None => None,
    };
    let matched: Vec<Value> =
        all.into_iter().filter(|r| filter.as_ref().is_none_or(|f| f.matches(r, core_urn))).collect();
    let start = q.start_index.as_deref().and_then(|s| s.parse::<i64>().ok()).unwrap_or(1).max(1) as usize;
    let count = q
        .count
        .as_deref()
        .and_then(|s| s.parse::<i64>().ok())
        .map_or(DEFAULT_COUNT, |c| c.clamp(0, MAX_COUNT as i64) as usize);
    let total = matched.len();
    let page: Vec<Value> = matched
        .into_iter()
        .skip(start - 1)
        .take(count)
        .map(|r| project(r, q.attributes.as_deref(), q.excluded_attributes.as_deref()))
        .collect();
    Ok(respond(
        StatusCode::OK,
        &json!({
            "schemas": [wardgate_core::scim::LIST_RESPONSE],
            "totalResults": total,
            "startIndex": start,
            "itemsPerPage": page.len(),
            "Resources": page,
        }),
    ))
}

/// `attributes` / `excludedAttributes` (RFC 7643 §7: `id`, `schemas` and `meta` are always
/// returned), for top-level attributes and `urn:…:attr` of an extension.
fn project(mut r: Value, attributes: Option<&str>, excluded: Option<&str>) -> Value {
    let list =
        |s: &str| s.split(',').map(|a| a.trim().to_ascii_lowercase()).filter(|a| !a.is_empty()).collect::<Vec<_>>();
    let Some(obj) = r.as_object_mut() else { return r };
    let always = ["id", "schemas", "meta"];
    let top = |a: &str| a.split('.').next().unwrap_or(a).to_owned();
    let split_ext = |a: &str| a.rsplit_once(':').map(|(u, at)| (u.to_owned(), top(at)));
    if let Some(want) = attributes.map(list).filter(|l| !l.is_empty()) {
        obj.retain(|k, v| {
            let k = k.to_ascii_lowercase();
            if always.contains(&k.as_str()) || want.iter().any(|w| top(w) == k || w == &k) {
                return true;
            }
            if k.starts_with("urn:")
                && let Some(ext) = v.as_object_mut()
            {
                ext.retain(|sub, _| {
                    want.iter().any(|w| split_ext(w).is_some_and(|(u, at)| u == k && at == sub.to_ascii_lowercase()))
                });
                return !ext.is_empty();
            }
            false
        });
    }
    if let Some(drop) = excluded.map(list) {
        obj.retain(|k, v| {
            let k = k.to_ascii_lowercase();
            if k.starts_with("urn:")
                && let Some(ext) = v.as_object_mut()
            {
                ext.retain(|sub, _| {
                    !drop.iter().any(|w| split_ext(w).is_some_and(|(u, at)| u == k && at == sub.to_ascii_lowercase()))
                });
            }
            always.contains(&k.as_str()) || !drop.iter().any(|d| d == &k)
        });
    }
    r
}

fn meta(
    resource_type: &str,
    created: time::OffsetDateTime,
    modified: time::OffsetDateTime,
    location: &str,
    body: &Value,
) -> Value {
    let ts = |t: time::OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    json!({
        "resourceType": resource_type,
        "created": ts(created),
        "lastModified": ts(modified.max(created)),
        "location": location,
        "version": wardgate_core::scim::etag(body),
    })
}

/// Adds `meta` to a rendered resource.
fn with_meta(
    mut body: Value,
    resource_type: &str,
    created: time::OffsetDateTime,
    modified: time::OffsetDateTime,
    location: &str,
) -> Value {
    let m = meta(resource_type, created, modified, location, &body);
    if let Some(o) = body.as_object_mut() {
        o.insert("meta".into(), m);
    }
    body
}
