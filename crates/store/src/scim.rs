//! What both backends share for SCIM (L4): the statements, which read the same on SQLite
//! and PostgreSQL, and row decoding.

use time::OffsetDateTime;
use wardgate_core::from_unix_micros;
use wardgate_core::scim::group::ScimGroup;
use wardgate_core::scim::token::ScimToken;

use crate::StoreError;

pub(crate) const INSERT_TOKEN: &str = "INSERT INTO scim_tokens (id, label, digest, created_by, created_at_us, \
     expires_at_us, revoked_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7)";
macro_rules! select_tokens {
    ($rest:literal) => {
        concat!(
            "SELECT id, label, digest, created_by, created_at_us, expires_at_us, revoked_at_us FROM scim_tokens ",
            $rest
        )
    };
}
pub(crate) const TOKEN_BY_DIGEST: &str = select_tokens!("WHERE digest = $1");
pub(crate) const ALL_TOKENS: &str = select_tokens!("ORDER BY created_at_us DESC, id");
pub(crate) const REVOKE_TOKEN: &str =
    "UPDATE scim_tokens SET revoked_at_us = $2 WHERE id = $1 AND revoked_at_us IS NULL";

pub(crate) type TokenRow = (String, String, Vec<u8>, String, i64, i64, Option<i64>);

pub(crate) fn token(
    (id, label, digest, created_by, created, expires, revoked): TokenRow,
) -> Result<ScimToken, StoreError> {
    let digest = <[u8; 32]>::try_from(digest.as_slice())
        .map_err(|_| StoreError::Malformed(format!("SCIM token {id} has a digest that is not 32 bytes")))?;
    Ok(ScimToken {
        id,
        label,
        digest,
        created_by,
        created_at: from_unix_micros(created),
        expires_at: from_unix_micros(expires),
        revoked_at: revoked.map(from_unix_micros),
    })
}

/// Only the profile columns a SCIM client may change; status and roles have their own paths.
pub(crate) const UPDATE_PROFILE: &str =
    "UPDATE users SET display_name = $2, email = $3, employee_id = $4 WHERE id = $1 AND status <> 'terminated'";
pub(crate) const UPSERT_ATTRIBUTES: &str = "INSERT INTO scim_users (user_id, attributes, updated_at_us) \
     VALUES ($1, $2, $3) ON CONFLICT (user_id) DO UPDATE SET attributes = excluded.attributes, \
     updated_at_us = excluded.updated_at_us";
pub(crate) const ALL_ATTRIBUTES: &str = "SELECT user_id, attributes, updated_at_us FROM scim_users";
pub(crate) const ATTRIBUTES_OF: &str = "SELECT user_id, attributes, updated_at_us FROM scim_users WHERE user_id = $1";

pub(crate) type AttributesRow = (String, String, i64);

pub(crate) fn attributes(
    (user_id, attrs, at): AttributesRow,
) -> Result<(String, serde_json::Value, OffsetDateTime), StoreError> {
    let v = serde_json::from_str(&attrs)
        .map_err(|_| StoreError::Malformed(format!("SCIM attributes of {user_id} are not JSON")))?;
    Ok((user_id, v, from_unix_micros(at)))
}

pub(crate) const INSERT_GROUP: &str = "INSERT INTO scim_groups (id, display_name, display_key, external_id, members, \
     created_at_us, updated_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub(crate) const UPDATE_GROUP: &str = "UPDATE scim_groups SET display_name = $2, display_key = $3, external_id = $4, \
     members = $5, updated_at_us = $6 WHERE id = $1";
pub(crate) const DELETE_GROUP: &str = "DELETE FROM scim_groups WHERE id = $1";
macro_rules! select_groups {
    ($rest:literal) => {
        concat!("SELECT id, display_name, external_id, members, created_at_us, updated_at_us FROM scim_groups ", $rest)
    };
}
pub(crate) const GROUP_BY_ID: &str = select_groups!("WHERE id = $1");
pub(crate) const ALL_GROUPS: &str = select_groups!("ORDER BY display_key");

pub(crate) type GroupRow = (String, String, Option<String>, String, i64, i64);

pub(crate) fn group(
    (id, display_name, external_id, members, created, updated): GroupRow,
) -> Result<ScimGroup, StoreError> {
    let members = serde_json::from_str(&members)
        .map_err(|_| StoreError::Malformed(format!("SCIM group {id} has members that are not a JSON list")))?;
    Ok(ScimGroup {
        id,
        display_name,
        external_id,
        members,
        created_at: from_unix_micros(created),
        updated_at: from_unix_micros(updated),
    })
}

pub(crate) fn display_key(name: &str) -> String {
    name.to_lowercase()
}

pub(crate) fn members_json(g: &ScimGroup) -> String {
    serde_json::Value::from(g.members.clone()).to_string()
}
