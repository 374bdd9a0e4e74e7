//! The HR connector's bearer tokens: made, listed and revoked from the command line.

use time::{Duration, OffsetDateTime};
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::scim::token::{ScimToken, valid_label};
use wardgate_core::token;
use wardgate_store::{Store, StoreError};

/// A connector token lives a year unless asked otherwise, and never longer than two: it
/// is rotated with the connector's yearly review, and a forgotten one dies on its own.
pub const DEFAULT_DAYS: u32 = 365;
pub const MAX_DAYS: u32 = 730;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("label must be 1-64 characters of letters, digits, '.', '_', '-'")]
    Label,
    #[error("a SCIM token expires after 1 to {MAX_DAYS} days, not {0}")]
    Lifetime(u32),
    #[error("no active SCIM token with id {0}")]
    Unknown(String),
    #[error("system random number generator failed")]
    Random,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<token::RandomError> for TokenError {
    fn from(_: token::RandomError) -> Self {
        TokenError::Random
    }
}

/// Makes a token; the secret is returned once and only its digest is kept.
pub async fn create(
    store: &dyn Store,
    actor: &str,
    now: OffsetDateTime,
    label: &str,
    days: u32,
) -> Result<(ScimToken, String), TokenError> {
    if !valid_label(label) {
        return Err(TokenError::Label);
    }
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(TokenError::Lifetime(days));
    }
    let secret = token::generate()?;
    let t = ScimToken {
        id: token::random_id()?,
        label: label.to_owned(),
        digest: token::digest(&secret),
        created_by: actor.to_owned(),
        created_at: now,
        expires_at: now + Duration::days(i64::from(days)),
        revoked_at: None,
    };
    let e = AuditEvent::known(now, types::SCIM_TOKEN_CREATED, Outcome::Success)
        .actor(actor)
        .detail("token_id", t.id.clone())
        .detail("label", t.label.clone())
        .detail("expires_at", wardgate_core::audit::record::format_ts(t.expires_at));
    store.create_scim_token(&t, &e).await?;
    Ok((t, secret))
}

pub async fn list(store: &dyn Store) -> Result<Vec<ScimToken>, TokenError> {
    Ok(store.scim_tokens().await?)
}

pub async fn revoke(store: &dyn Store, actor: &str, now: OffsetDateTime, id: &str) -> Result<ScimToken, TokenError> {
    let t = store.scim_tokens().await?.into_iter().find(|t| t.id == id && t.revoked_at.is_none());
    let t = t.ok_or_else(|| TokenError::Unknown(id.to_owned()))?;
    let e = AuditEvent::known(now, types::SCIM_TOKEN_REVOKED, Outcome::Success)
        .actor(actor)
        .detail("token_id", t.id.clone())
        .detail("label", t.label.clone());
    match store.revoke_scim_token(id, now, &e).await {
        Ok(()) => Ok(ScimToken { revoked_at: Some(now), ..t }),
        Err(StoreError::NotFound) => Err(TokenError::Unknown(id.to_owned())),
        Err(e) => Err(e.into()),
    }
}
