//! `/account/reviews`: the access-review items waiting for the signed-in reviewer, each
//! kept or revoked with one button (A6). The same service as `wardgate review decide`.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use wardgate_core::governance::Decision;

use super::account::{signed_in, signed_in_form};
use super::{render, see_other, show_time};
use crate::app::AppState;
use crate::context::ClientContext;
use crate::governance::{GovernanceError, reviews};
use crate::problem::ApiForm;

pub struct ItemRow {
    pub id: String,
    pub username: String,
    pub role: String,
}

pub struct CampaignRow {
    pub scope: String,
    pub deadline: String,
    pub default_action: &'static str,
    pub items: Vec<ItemRow>,
}

#[derive(Template)]
#[template(path = "reviews.html")]
struct ReviewsPage<'a> {
    csrf: &'a str,
    message: Option<&'a str>,
    campaigns: Vec<CampaignRow>,
}

#[derive(Deserialize)]
pub struct ReviewsQuery {
    #[serde(default)]
    done: Option<String>,
}

pub async fn page(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    Query(q): Query<ReviewsQuery>,
) -> Response {
    let cur = match signed_in(&app, &headers, &ctx).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let unavailable = |e: wardgate_store::StoreError| {
        tracing::error!(error = %e, "reviews page: store failed");
        crate::problem::Problem::unavailable("the database is unreachable").into_response()
    };
    let campaigns = match app.store.list_campaigns().await {
        Ok(c) => c,
        Err(e) => return unavailable(e),
    };
    let mut rows = Vec::new();
    for c in campaigns.into_iter().filter(|c| c.is_open() && c.reviewer == cur.user.username) {
        let items = match app.store.campaign_items(&c.id).await {
            Ok(i) => i,
            Err(e) => return unavailable(e),
        };
        rows.push(CampaignRow {
            scope: c.scope.to_string(),
            deadline: show_time(c.deadline),
            default_action: c.default_action.as_str(),
            items: items
                .into_iter()
                .filter(|i| i.decision.is_none() && i.username != cur.user.username)
                .map(|i| ItemRow { id: i.id, username: i.username.as_str().to_owned(), role: i.role })
                .collect(),
        });
    }
    let message = match q.done.as_deref() {
        Some("keep") => Some("Kept."),
        Some("revoke") => Some("Revoked: the role is gone."),
        _ => None,
    };
    let csrf = cur.csrf();
    render(&ReviewsPage { csrf: &csrf, message, campaigns: rows }, StatusCode::OK)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideForm {
    csrf: String,
    item: String,
    decision: String,
    #[serde(default)]
    comment: String,
}

pub async fn decide(
    State(app): State<AppState>,
    ctx: ClientContext,
    headers: HeaderMap,
    ApiForm(f): ApiForm<DecideForm>,
) -> Response {
    let cur = match signed_in_form(&app, &headers, &ctx, &f.csrf).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(decision) = Decision::parse(&f.decision) else {
        return super::message("Not decided", "Choose keep or revoke.", StatusCode::UNPROCESSABLE_ENTITY);
    };
    let actor = format!("user:{}", cur.user.username);
    let now = (app.clock)();
    match reviews::decide(&*app.store, &actor, &f.item, cur.user.username.as_str(), decision, &f.comment, now).await {
        Ok(_) => see_other(&format!("/account/reviews?done={}", decision.as_str())),
        Err(GovernanceError::Store(e)) => {
            tracing::error!(error = %e, "reviews: store failed");
            crate::problem::Problem::unavailable("the database is unreachable").into_response()
        }
        Err(e) => super::message("Not decided", &e.to_string(), StatusCode::CONFLICT),
    }
}
