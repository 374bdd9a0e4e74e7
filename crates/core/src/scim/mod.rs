//! SCIM 2.0 (RFC 7643/7644): what the HR connector's requests mean, without HTTP or SQL.
//!
//! `filter` parses and evaluates filters, `patch` applies PATCH operations to a resource's
//! JSON form, `user` and `group` map between SCIM resources and Wardgate's accounts, and
//! `token` is the connector's bearer credential.

pub mod filter;
pub mod group;
pub mod patch;
pub mod token;
pub mod user;

use serde_json::Value;
use sha2::{Digest, Sha256};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// The `scimType` of an error response (RFC 7644 §3.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimType {
    InvalidFilter,
    TooMany,
    Uniqueness,
    Mutability,
    InvalidSyntax,
    InvalidPath,
    NoTarget,
    InvalidValue,
}

impl ScimType {
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::TooMany => "tooMany",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::InvalidValue => "invalidValue",
        }
    }
}

/// A weak entity tag over the resource as served, `meta` left out (it holds the tag): any
/// change to what a client can see changes the tag, whoever made it — SCIM, the CLI or the
/// admin API — without a version column every writer must remember to bump.
pub fn etag(resource: &Value) -> String {
    let mut v = resource.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("meta");
    }
    let digest = Sha256::digest(v.to_string().as_bytes());
    format!("W/\"{}\"", hex::encode(&digest[..12]))
}

/// Whether an `If-Match` header value admits the current tag (`*`, or one of a list).
pub fn if_match(header: &str, current: &str) -> bool {
    let weak = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    header.split(',').any(|t| t.trim() == "*" || weak(t) == weak(current))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn etags_ignore_meta_and_if_match_compares_weakly() {
        let a = json!({"id": "1", "userName": "a", "meta": {"version": "x"}});
        let b = json!({"id": "1", "userName": "a", "meta": {"version": "y"}});
        let c = json!({"id": "1", "userName": "b"});
        assert_eq!(etag(&a), etag(&b));
        assert_ne!(etag(&a), etag(&c));
        assert!(etag(&a).starts_with("W/\""));
        let t = etag(&a);
        assert!(if_match(&t, &t));
        assert!(if_match(t.trim_start_matches("W/"), &t));
        assert!(if_match("*", &t));
        assert!(if_match(&format!("\"zz\", {t}"), &t));
        assert!(!if_match(&etag(&c), &t));
    }
}
