//! A SCIM User (RFC 7643 §4.1, with the enterprise extension §4.3) and how it maps onto a
//! Wardgate account.
//!
//! Wardgate's [`User`] stays authoritative for what it enforces — the username, the
//! display name, the address, the employee number, whether the account may be used — and
//! those are always served from it. The other SCIM attributes the connector sends (names,
//! title, department, manager, every address) are kept beside the account as given.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::filter::get_ci;
use super::{ENTERPRISE_SCHEMA, USER_SCHEMA};
use crate::identity::{AccountStatus, User};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Name {
    pub formatted: Option<String>,
    pub family_name: Option<String>,
    pub given_name: Option<String>,
    pub middle_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    pub value: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub primary: bool,
}

/// The attributes of a SCIM User that Wardgate understands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScimUser {
    pub user_name: String,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    pub name: Name,
    pub title: Option<String>,
    pub user_type: Option<String>,
    pub emails: Vec<Email>,
    pub active: bool,
    pub employee_number: Option<String>,
    pub department: Option<String>,
    pub organization: Option<String>,
    pub division: Option<String>,
    pub cost_center: Option<String>,
    /// The manager's SCIM id (a Wardgate user id).
    pub manager: Option<String>,
    /// The manager's `$ref`, as the connector sent it.
    pub manager_ref: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidUser(pub String);

/// A string attribute, or an error naming it; absent and `null` are `None`.
fn string(v: &Value, name: &str) -> Result<Option<String>, InvalidUser> {
    match get_ci(v, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(_) => Err(InvalidUser(format!("{name} must be a string"))),
    }
}

/// A boolean; Entra ID sends `"True"` and `"False"` as strings.
fn boolean(v: &Value, name: &str) -> Result<Option<bool>, InvalidUser> {
    match get_ci(v, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(InvalidUser(format!("{name} must be true or false"))),
    }
}

impl ScimUser {
    /// Reads a User resource as a client sent it (POST, PUT, or the result of a PATCH).
    /// Attribute names are case-insensitive; unknown attributes are ignored.
    pub fn from_json(v: &Value) -> Result<Self, InvalidUser> {
        if !v.is_object() {
            return Err(InvalidUser("a User must be a JSON object".into()));
        }
        let user_name = string(v, "userName")?.ok_or_else(|| InvalidUser("userName is required".into()))?;
        let name = match get_ci(v, "name") {
            None | Some(Value::Null) => Name::default(),
            Some(n @ Value::Object(_)) => Name {
                formatted: string(n, "formatted")?,
                family_name: string(n, "familyName")?,
                given_name: string(n, "givenName")?,
                middle_name: string(n, "middleName")?,
            },
            Some(_) => return Err(InvalidUser("name must be an object".into())),
        };
        let emails = match get_ci(v, "emails") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|e| {
                    Ok(Email {
                        value: string(e, "value")?.ok_or_else(|| InvalidUser("every email needs a value".into()))?,
                        kind: string(e, "type")?,
                        primary: boolean(e, "primary")?.unwrap_or(false),
                    })
                })
                .collect::<Result<_, InvalidUser>>()?,
            Some(_) => return Err(InvalidUser("emails must be an array".into())),
        };
        if emails.iter().filter(|e| e.primary).count() > 1 {
            return Err(InvalidUser("at most one email may be primary".into()));
        }
        let empty = Value::Object(Map::new());
        let ext = get_ci(v, ENTERPRISE_SCHEMA).unwrap_or(&empty);
        if !ext.is_object() {
            return Err(InvalidUser(format!("{ENTERPRISE_SCHEMA} must be an object")));
        }
        let (manager, manager_ref) = match get_ci(ext, "manager") {
            None | Some(Value::Null) => (None, None),
            Some(Value::String(s)) => (Some(s.clone()).filter(|s| !s.is_empty()), None),
            Some(m @ Value::Object(_)) => (string(m, "value")?, string(m, "$ref")?),
            Some(_) => return Err(InvalidUser("manager must be an object with a value".into())),
        };
        Ok(Self {
            user_name,
            external_id: string(v, "externalId")?,
            display_name: string(v, "displayName")?,
            name,
            title: string(v, "title")?,
            user_type: string(v, "userType")?,
            emails,
            active: boolean(v, "active")?.unwrap_or(true),
            employee_number: string(ext, "employeeNumber")?,
            department: string(ext, "department")?,
            organization: string(ext, "organization")?,
            division: string(ext, "division")?,
            cost_center: string(ext, "costCenter")?,
            manager,
            manager_ref,
        })
    }

    /// The address Wardgate keeps: the primary one, else the work one, else the first.
    pub fn primary_email(&self) -> Option<&str> {
        let e = self.emails.iter();
        e.clone()
            .find(|e| e.primary)
            .or_else(|| e.clone().find(|e| e.kind.as_deref() == Some("work")))
            .or_else(|| self.emails.first())
            .map(|e| e.value.as_str())
    }

    /// The name Wardgate shows: displayName, else the formatted name, else given and family
    /// name, else the userName.
    pub fn wardgate_display_name(&self) -> String {
        let joined = [self.name.given_name.as_deref(), self.name.family_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        self.display_name
            .clone()
            .or_else(|| self.name.formatted.clone())
            .or_else(|| (!joined.is_empty()).then_some(joined))
            .unwrap_or_else(|| self.user_name.clone())
    }

    /// The resource for `user`, from what the connector last sent (if anything) and the
    /// account as it is now, which wins where Wardgate enforces the attribute.
    pub fn of(user: &User, stored: Option<&ScimUser>) -> Self {
        let mut s = stored.cloned().unwrap_or_default();
        s.user_name = user.username.to_string();
        // A name Wardgate derived (the connector sent no displayName) is not echoed back as
        // if the connector had set it.
        let derived =
            stored.is_some_and(|st| st.display_name.is_none() && st.wardgate_display_name() == user.display_name);
        s.display_name = (!derived).then(|| user.display_name.clone());
        // An invited account belongs to someone employed who has not enrolled yet: HR
        // considers it active; only a suspension makes it inactive.
        s.active = matches!(user.status, AccountStatus::Active | AccountStatus::Invited);
        s.employee_number = user.employee_id.clone();
        if s.primary_email() != Some(user.email.as_str()) {
            s.emails.retain(|e| !e.primary);
            if !user.email.is_empty() {
                s.emails.insert(0, Email { value: user.email.clone(), kind: Some("work".into()), primary: true });
            }
        }
        s
    }

    /// The JSON form, without `meta` (added by the caller, who knows the location).
    pub fn to_json(&self, id: &str, groups: &[(String, String)]) -> Value {
        let mut o = Map::new();
        let mut schemas = vec![json!(USER_SCHEMA)];
        o.insert("id".into(), json!(id));
        o.insert("userName".into(), json!(self.user_name));
        let put = |o: &mut Map<String, Value>, k: &str, v: &Option<String>| {
            if let Some(v) = v {
                o.insert(k.into(), json!(v));
            }
        };
        put(&mut o, "externalId", &self.external_id);
        put(&mut o, "displayName", &self.display_name);
        let mut name = Map::new();
        put(&mut name, "formatted", &self.name.formatted);
        put(&mut name, "familyName", &self.name.family_name);
        put(&mut name, "givenName", &self.name.given_name);
        put(&mut name, "middleName", &self.name.middle_name);
        if !name.is_empty() {
            o.insert("name".into(), Value::Object(name));
        }
        put(&mut o, "title", &self.title);
        put(&mut o, "userType", &self.user_type);
        if !self.emails.is_empty() {
            let emails = self
                .emails
                .iter()
                .map(|e| {
                    let mut m = Map::new();
                    m.insert("value".into(), json!(e.value));
                    put(&mut m, "type", &e.kind);
                    m.insert("primary".into(), json!(e.primary));
                    Value::Object(m)
                })
                .collect();
            o.insert("emails".into(), Value::Array(emails));
        }
        o.insert("active".into(), json!(self.active));
        if !groups.is_empty() {
            let g = groups.iter().map(|(id, name)| json!({"value": id, "display": name, "type": "direct"})).collect();
            o.insert("groups".into(), Value::Array(g));
        }
        let mut ext = Map::new();
        put(&mut ext, "employeeNumber", &self.employee_number);
        put(&mut ext, "department", &self.department);
        put(&mut ext, "organization", &self.organization);
        put(&mut ext, "division", &self.division);
        put(&mut ext, "costCenter", &self.cost_center);
        if let Some(m) = &self.manager {
            let mut manager = Map::from_iter([("value".to_owned(), json!(m))]);
            put(&mut manager, "$ref", &self.manager_ref);
            ext.insert("manager".into(), Value::Object(manager));
        }
        if !ext.is_empty() {
            schemas.push(json!(ENTERPRISE_SCHEMA));
            o.insert(ENTERPRISE_SCHEMA.into(), Value::Object(ext));
        }
        o.insert("schemas".into(), Value::Array(schemas));
        Value::Object(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Username;

    fn t0() -> time::OffsetDateTime {
        time::macros::datetime!(2026-11-28 07:00 UTC)
    }

    #[test]
    fn a_connector_resource_maps_both_ways() {
        let v = json!({
            "schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA],
            "userName": "jsmith@st-marys.example",
            "externalId": "WD-1234",
            "name": {"givenName": "Jane", "familyName": "Smith"},
            "title": "Charge Nurse",
            "emails": [{"value": "home@example.net", "type": "home"}, {"value": "jsmith@st-marys.example", "type": "work"}],
            "Active": "False",
            ENTERPRISE_SCHEMA: {"employeeNumber": "701984", "department": "ICU", "manager": {"value": "m1"}}
        });
        let s = ScimUser::from_json(&v).unwrap();
        assert!(!s.active);
        assert_eq!(s.primary_email(), Some("jsmith@st-marys.example"));
        assert_eq!(s.wardgate_display_name(), "Jane Smith");
        assert_eq!(s.manager.as_deref(), Some("m1"));
        assert_eq!(s.department.as_deref(), Some("ICU"));

        let mut user = User::new(
            "u1".into(),
            Username::parse("jsmith@st-marys.example").unwrap(),
            "Jane Smith".into(),
            AccountStatus::Invited,
            t0(),
        );
        user.email = "jsmith@st-marys.example".into();
        user.employee_id = Some("701984".into());
        let out = ScimUser::of(&user, Some(&s)).to_json("u1", &[("g1".into(), "ICU Nurses".into())]);
        assert_eq!(out["active"], true, "invited counts as active for HR");
        assert_eq!(out["title"], "Charge Nurse");
        assert_eq!(out[ENTERPRISE_SCHEMA]["employeeNumber"], "701984");
        assert_eq!(out["groups"][0]["display"], "ICU Nurses");
        assert_eq!(ScimUser::from_json(&out).unwrap().external_id.as_deref(), Some("WD-1234"));
    }

    #[test]
    fn invalid_resources_are_refused() {
        for bad in [
            json!({}),
            json!({"userName": 5}),
            json!({"userName": "a", "active": "maybe"}),
            json!({"userName": "a", "emails": [{"type": "work"}]}),
            json!({"userName": "a", "emails": [{"value": "a@x.org", "primary": true}, {"value": "b@x.org", "primary": true}]}),
            json!({"userName": "a", "name": "Jane"}),
            json!([1]),
        ] {
            assert!(ScimUser::from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn accounts_without_scim_attributes_are_served_from_the_account() {
        let mut user =
            User::new("u2".into(), Username::parse("nina").unwrap(), "Nina".into(), AccountStatus::Disabled, t0());
        user.email = "nina@example.org".into();
        let out = ScimUser::of(&user, None).to_json("u2", &[]);
        assert_eq!(out["active"], false);
        assert_eq!(out["emails"][0]["value"], "nina@example.org");
        assert_eq!(out["displayName"], "Nina");
    }
}
