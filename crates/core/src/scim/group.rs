//! A SCIM Group (RFC 7643 §4.2) and the roles it confers through `[scim.group_roles]`.
//!
//! Groups are the HR side's teams; Wardgate's permissions come from roles. The mapping in
//! the settings says which roles membership of a group gives. A role that appears anywhere
//! in the mapping is owned by SCIM: it is given and taken away only through membership.
//! Roles outside the mapping belong to administrators and SCIM never touches them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::GROUP_SCHEMA;
use super::filter::get_ci;
use super::user::InvalidUser;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimGroup {
    pub id: String,
    /// Unique, compared case-insensitively.
    pub display_name: String,
    pub external_id: Option<String>,
    /// Member user ids, sorted, without duplicates.
    pub members: Vec<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// What a client sends for a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInput {
    pub display_name: String,
    pub external_id: Option<String>,
    pub members: Vec<String>,
}

impl GroupInput {
    pub fn from_json(v: &Value) -> Result<Self, InvalidUser> {
        let text = |name: &str| match get_ci(v, name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_owned()).filter(|s| !s.is_empty())),
            Some(_) => Err(InvalidUser(format!("{name} must be a string"))),
        };
        let display_name = text("displayName")?.ok_or_else(|| InvalidUser("displayName is required".into()))?;
        if display_name.chars().count() > 256 || display_name.chars().any(char::is_control) {
            return Err(InvalidUser("displayName must be 1-256 characters without control characters".into()));
        }
        let mut members = match get_ci(v, "members") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|m| match get_ci(m, "value") {
                    Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                    _ => Err(InvalidUser("every member needs a value (the member's id)".into())),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(InvalidUser("members must be an array".into())),
        };
        members.sort();
        members.dedup();
        Ok(Self { display_name, external_id: text("externalId")?, members })
    }
}

impl ScimGroup {
    /// The JSON form without `meta`, listing `members` (ids of live accounts). RFC 7643 §4.2
    /// gives a Group's members `value`, `$ref` and `type`; no `display`.
    pub fn to_json(&self, members: &[String], base: &str) -> Value {
        let mut v = json!({
            "schemas": [GROUP_SCHEMA],
            "id": self.id,
            "displayName": self.display_name,
            "members": members.iter().map(|id| json!({
                "value": id, "type": "User", "$ref": format!("{base}/Users/{id}")
            })).collect::<Vec<_>>(),
        });
        if let (Some(x), Some(o)) = (&self.external_id, v.as_object_mut()) {
            o.insert("externalId".into(), json!(x));
        }
        v
    }
}

/// The `[scim.group_roles]` mapping: group display name → roles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupRoles(pub BTreeMap<String, Vec<String>>);

impl GroupRoles {
    /// Every role SCIM owns.
    pub fn managed(&self) -> BTreeSet<String> {
        self.0.values().flatten().cloned().collect()
    }

    /// The roles membership of `groups` (display names) confers; names match case-insensitively.
    pub fn roles_for<'a>(&self, groups: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
        let groups: Vec<&str> = groups.into_iter().collect();
        self.0
            .iter()
            .filter(|(g, _)| groups.iter().any(|n| n.eq_ignore_ascii_case(g)))
            .flat_map(|(_, roles)| roles.iter().cloned())
            .collect()
    }

    /// An account's roles after recomputation: its roles outside the mapping, plus `wanted`.
    pub fn recompute(&self, current: &[String], wanted: &BTreeSet<String>) -> Vec<String> {
        let managed = self.managed();
        let mut roles: BTreeSet<String> = current.iter().filter(|r| !managed.contains(*r)).cloned().collect();
        roles.extend(wanted.iter().cloned());
        roles.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_owns_only_mapped_roles() {
        let m = GroupRoles(BTreeMap::from([
            ("ICU Nurses".to_owned(), vec!["nurse".to_owned(), "icu".to_owned()]),
            ("Pharmacy".to_owned(), vec!["pharmacist".to_owned()]),
        ]));
        let wanted = m.roles_for(["icu nurses"]);
        assert_eq!(wanted, BTreeSet::from(["icu".to_owned(), "nurse".to_owned()]));
        let current = vec!["auditor".to_owned(), "pharmacist".to_owned()];
        assert_eq!(
            m.recompute(&current, &wanted),
            ["auditor", "icu", "nurse"],
            "admin roles stay, SCIM roles follow groups"
        );
        assert_eq!(m.recompute(&current, &BTreeSet::new()), ["auditor"]);
    }

    #[test]
    fn group_input_is_checked() {
        let g = GroupInput::from_json(
            &json!({"displayName": "ICU", "members": [{"value": "b"}, {"value": "a"}, {"value": "a"}]}),
        )
        .unwrap();
        assert_eq!(g.members, ["a", "b"]);
        for bad in [
            json!({}),
            json!({"displayName": 1}),
            json!({"displayName": "x", "members": [{}]}),
            json!({"displayName": "x", "members": "a"}),
        ] {
            assert!(GroupInput::from_json(&bad).is_err(), "{bad}");
        }
    }
}
