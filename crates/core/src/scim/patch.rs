//! SCIM PATCH (RFC 7644 §3.5.2) applied to a resource's JSON form.
//!
//! The caller renders the resource, applies the operations here, and converts the result
//! back, so that every attribute goes through the same validation as a PUT. Operation names
//! are case-insensitive because Entra ID sends `Replace` and `Add`.

use serde_json::{Map, Value};

use super::ScimType;
use super::filter::{AttrPath, CompareOp, Filter, get_ci};

pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Add,
    Replace,
    Remove,
}

/// `attr`, `attr.sub`, `attr[filter]` or `attr[filter].sub`, each optionally URN-qualified.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PatchOp {
    pub op: OpKind,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct PatchError {
    pub scim_type: ScimType,
    pub detail: String,
}

fn fail(scim_type: ScimType, detail: impl Into<String>) -> PatchError {
    PatchError { scim_type, detail: detail.into() }
}

impl PatchPath {
    pub fn parse(s: &str) -> Result<Self, PatchError> {
        let bad = || fail(ScimType::InvalidPath, format!("{s:?} is not an attribute path"));
        let Some(open) = s.find('[') else {
            return Ok(Self { attr: AttrPath::parse(s.trim()).ok_or_else(bad)?, filter: None });
        };
        let close = s.rfind(']').ok_or_else(bad)?;
        if close < open {
            return Err(bad());
        }
        let attr = AttrPath::parse(s[..open].trim()).ok_or_else(bad)?;
        if attr.sub.is_some() {
            return Err(bad());
        }
        let filter =
            Filter::parse(&s[open + 1..close]).map_err(|e| fail(ScimType::InvalidPath, format!("{s:?}: {e}")))?;
        let sub = match &s[close + 1..] {
            "" => None,
            rest => {
                let name = rest.strip_prefix('.').ok_or_else(bad)?;
                Some(AttrPath::parse(name).filter(|p| p.sub.is_none() && p.urn.is_none()).ok_or_else(bad)?.attr)
            }
        };
        Ok(Self { attr: AttrPath { sub, ..attr }, filter: Some(filter) })
    }
}

/// Reads a PatchOp request body.
pub fn parse_request(body: &Value) -> Result<Vec<PatchOp>, PatchError> {
    let schemas_ok = get_ci(body, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|u| u.as_str().is_some_and(|u| u.eq_ignore_ascii_case(PATCH_OP))));
    if !schemas_ok {
        return Err(fail(ScimType::InvalidSyntax, format!("schemas must list {PATCH_OP}")));
    }
    let ops = get_ci(body, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| fail(ScimType::InvalidSyntax, "Operations must be an array"))?;
    ops.iter()
        .map(|o| {
            let name = get_ci(o, "op").and_then(Value::as_str).unwrap_or_default();
            let op = match name.to_ascii_lowercase().as_str() {
                "add" => OpKind::Add,
                "replace" => OpKind::Replace,
                "remove" => OpKind::Remove,
                _ => return Err(fail(ScimType::InvalidSyntax, format!("unknown op {name:?}"))),
            };
            let path = match get_ci(o, "path") {
                None | Some(Value::Null) => None,
                Some(Value::String(p)) if p.trim().is_empty() => None,
                Some(Value::String(p)) => Some(PatchPath::parse(p)?),
                Some(_) => return Err(fail(ScimType::InvalidPath, "path must be a string")),
            };
            let value = get_ci(o, "value").cloned();
            match (op, &path, &value) {
                (OpKind::Remove, None, _) => Err(fail(ScimType::NoTarget, "remove needs a path")),
                (OpKind::Add | OpKind::Replace, _, None) => {
                    Err(fail(ScimType::InvalidValue, "add and replace need a value"))
                }
                (OpKind::Add | OpKind::Replace, None, Some(v)) if !v.is_object() => {
                    Err(fail(ScimType::InvalidValue, "without a path, the value must be an object"))
                }
                _ => Ok(PatchOp { op, path, value }),
            }
        })
        .collect()
}

/// What the resource type says about its attributes.
pub struct Schema<'a> {
    /// The core schema URN (paths qualified with it mean the plain attribute).
    pub core_urn: &'a str,
    /// Extension URNs in their canonical spelling.
    pub extensions: &'a [&'a str],
    /// Attributes a client may not change: `id`, `meta`, `groups`…
    pub read_only: &'a [&'a str],
}

/// Applies `ops` in order; any failure leaves the caller to discard `resource`.
pub fn apply(resource: &mut Value, ops: &[PatchOp], schema: &Schema) -> Result<(), PatchError> {
    for op in ops {
        match &op.path {
            Some(path) => match whole_extension(path, schema) {
                Some(ext) => apply_extension(resource, op.op, ext, op.value.as_ref(), schema)?,
                None => apply_at(resource, op.op, path, op.value.as_ref(), schema)?,
            },
            None => {
                let Some(Value::Object(map)) = &op.value else { continue };
                for (key, v) in map {
                    if let Some(ext) = schema.extensions.iter().find(|e| e.eq_ignore_ascii_case(key)) {
                        let Value::Object(fields) = v else {
                            return Err(fail(ScimType::InvalidValue, format!("{ext} must be an object")));
                        };
                        for (k, v) in fields {
                            let path = PatchPath::parse(&format!("{ext}:{k}"))?;
                            apply_at(resource, op.op, &path, Some(v), schema)?;
                        }
                        continue;
                    }
                    let path = PatchPath::parse(key)?;
                    // RFC 7644 §3.5.2: read-only attributes in a path-less value are ignored.
                    if is_read_only(&path, schema) {
                        continue;
                    }
                    apply_at(resource, op.op, &path, Some(v), schema)?;
                }
            }
        }
    }
    Ok(())
}

/// A path that names an extension schema itself (`urn:…:enterprise:2.0:User`), which parses
/// as attribute `User` of schema `urn:…:enterprise:2.0`.
fn whole_extension<'a>(path: &PatchPath, schema: &Schema<'a>) -> Option<&'a str> {
    let urn = path.attr.urn.as_deref()?;
    if path.filter.is_some() || path.attr.sub.is_some() {
        return None;
    }
    let full = format!("{urn}:{}", path.attr.attr);
    schema.extensions.iter().copied().find(|e| e.eq_ignore_ascii_case(&full))
}

fn apply_extension(
    resource: &mut Value,
    op: OpKind,
    ext: &str,
    value: Option<&Value>,
    schema: &Schema,
) -> Result<(), PatchError> {
    if op == OpKind::Remove {
        if let Some(root) = resource.as_object_mut()
            && let Some(k) = key_ci(root, ext)
        {
            root.remove(&k);
        }
        return Ok(());
    }
    let Some(Value::Object(fields)) = value else {
        return Err(fail(ScimType::InvalidValue, format!("{ext} takes an object")));
    };
    for (k, v) in fields {
        apply_at(resource, op, &PatchPath::parse(&format!("{ext}:{k}"))?, Some(v), schema)?;
    }
    Ok(())
}

fn is_read_only(path: &PatchPath, schema: &Schema) -> bool {
    let core = path.attr.urn.as_deref().is_none_or(|u| u.eq_ignore_ascii_case(schema.core_urn));
    let name = &path.attr.attr;
    core && (schema.read_only.iter().any(|r| r.eq_ignore_ascii_case(name)) || name.eq_ignore_ascii_case("schemas"))
}

/// The object holding the attribute: the resource, or its extension object (created on add).
fn container<'a>(
    resource: &'a mut Value,
    attr: &AttrPath,
    schema: &Schema,
    create: bool,
) -> Option<&'a mut Map<String, Value>> {
    let root = resource.as_object_mut()?;
    let Some(urn) = attr.urn.as_deref().filter(|u| !u.eq_ignore_ascii_case(schema.core_urn)) else {
        return Some(root);
    };
    let canonical = schema.extensions.iter().find(|e| e.eq_ignore_ascii_case(urn))?;
    let key = root.keys().find(|k| k.eq_ignore_ascii_case(canonical)).cloned();
    let key = match key {
        Some(k) => k,
        None if create => {
            root.insert((*canonical).to_owned(), Value::Object(Map::new()));
            (*canonical).to_owned()
        }
        None => return None,
    };
    root.get_mut(&key)?.as_object_mut()
}

fn key_ci(map: &Map<String, Value>, name: &str) -> Option<String> {
    map.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

fn apply_at(
    resource: &mut Value,
    op: OpKind,
    path: &PatchPath,
    value: Option<&Value>,
    schema: &Schema,
) -> Result<(), PatchError> {
    if is_read_only(path, schema) {
        return Err(fail(ScimType::Mutability, format!("{} is read-only", path.attr.attr)));
    }
    let unknown_ext = path.attr.urn.as_deref().is_some_and(|u| {
        !u.eq_ignore_ascii_case(schema.core_urn) && !schema.extensions.iter().any(|e| e.eq_ignore_ascii_case(u))
    });
    if unknown_ext {
        return Err(fail(
            ScimType::InvalidPath,
            format!("unknown schema {}", path.attr.urn.as_deref().unwrap_or_default()),
        ));
    }
    let Some(map) = container(resource, &path.attr, schema, op != OpKind::Remove) else {
        return Ok(()); // removing from an extension the resource does not have
    };
    let key = key_ci(map, &path.attr.attr).unwrap_or_else(|| path.attr.attr.clone());
    match &path.filter {
        None => apply_plain(map, &key, path.attr.sub.as_deref(), op, value),
        Some(filter) => apply_filtered(map, &key, filter, path.attr.sub.as_deref(), op, value, schema.core_urn),
    }
}

fn apply_plain(
    map: &mut Map<String, Value>,
    key: &str,
    sub: Option<&str>,
    op: OpKind,
    value: Option<&Value>,
) -> Result<(), PatchError> {
    if let Some(sub) = sub {
        if op == OpKind::Remove {
            if let Some(Value::Object(parent)) = map.get_mut(key)
                && let Some(k) = key_ci(parent, sub)
            {
                parent.remove(&k);
            }
            return Ok(());
        }
        let parent = map.entry(key.to_owned()).or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(parent) = parent else {
            return Err(fail(ScimType::InvalidPath, format!("{key} has no sub-attributes")));
        };
        let k = key_ci(parent, sub).unwrap_or_else(|| sub.to_owned());
        parent.insert(k, value.cloned().unwrap_or(Value::Null));
        return Ok(());
    }
    let Some(value) = value else {
        // Remove without a filter: the attribute and all its values.
        map.remove(key);
        return Ok(());
    };
    match (op, map.get_mut(key), value) {
        (OpKind::Remove, Some(Value::Array(items)), Value::Array(gone)) => {
            // Entra removes members as {"path": "members", "value": [{"value": id}]}.
            items.retain(|i| !gone.iter().any(|g| same_element(i, g)));
        }
        (OpKind::Remove, _, _) => {
            map.remove(key);
        }
        (OpKind::Add, Some(Value::Array(items)), v) => {
            let new = match v {
                Value::Array(vs) => vs.clone(),
                v => vec![v.clone()],
            };
            for n in new {
                if !items.iter().any(|i| same_element(i, &n)) {
                    items.push(n);
                }
            }
        }
        (_, Some(Value::Object(existing)), Value::Object(fields)) => {
            for (k, v) in fields {
                let k = key_ci(existing, k).unwrap_or_else(|| k.clone());
                existing.insert(k, v.clone());
            }
        }
        (_, _, v) => {
            map.insert(key.to_owned(), v.clone());
        }
    }
    Ok(())
}

/// Elements of a multi-valued attribute are the same when their `value`s are (members by
/// id, emails by address), or when they are equal as a whole.
fn same_element(a: &Value, b: &Value) -> bool {
    match (get_ci(a, "value"), get_ci(b, "value")) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn apply_filtered(
    map: &mut Map<String, Value>,
    key: &str,
    filter: &Filter,
    sub: Option<&str>,
    op: OpKind,
    value: Option<&Value>,
    core_urn: &str,
) -> Result<(), PatchError> {
    if !map.contains_key(key) {
        if op == OpKind::Remove {
            return Ok(());
        }
        map.insert(key.to_owned(), Value::Array(Vec::new()));
    }
    let Some(Value::Array(items)) = map.get_mut(key) else {
        return Err(fail(ScimType::InvalidPath, format!("{key} is not multi-valued")));
    };
    if op == OpKind::Remove {
        match sub {
            None => items.retain(|i| !filter.matches(i, core_urn)),
            Some(sub) => {
                for item in items.iter_mut().filter(|i| filter.matches(i, core_urn)) {
                    if let Value::Object(o) = item
                        && let Some(k) = key_ci(o, sub)
                    {
                        o.remove(&k);
                    }
                }
            }
        }
        return Ok(());
    }
    let value = value.cloned().unwrap_or(Value::Null);
    let mut matched = false;
    for item in items.iter_mut().filter(|i| filter.matches(i, core_urn)) {
        matched = true;
        let Value::Object(o) = item else { continue };
        match (sub, &value) {
            (Some(sub), v) => {
                let k = key_ci(o, sub).unwrap_or_else(|| sub.to_owned());
                o.insert(k, v.clone());
            }
            (None, Value::Object(fields)) => {
                for (k, v) in fields {
                    let k = key_ci(o, k).unwrap_or_else(|| k.clone());
                    o.insert(k, v.clone());
                }
            }
            (None, _) => {
                return Err(fail(ScimType::InvalidValue, "a filtered path without a sub-attribute takes an object"));
            }
        }
    }
    if matched {
        return Ok(());
    }
    // Entra ID sets `emails[type eq "work"].value` on a person who has no work address yet:
    // a filter of equalities describes the element to create.
    let (Some(sub), Some(mut element)) = (sub, element_from(filter)) else {
        return Err(fail(ScimType::NoTarget, format!("no element of {key} matches the filter")));
    };
    element.insert(sub.to_owned(), value);
    items.push(Value::Object(element));
    Ok(())
}

fn element_from(filter: &Filter) -> Option<Map<String, Value>> {
    match filter {
        Filter::Compare(p, CompareOp::Eq, v) if p.urn.is_none() && p.sub.is_none() => {
            Some(Map::from_iter([(p.attr.clone(), v.clone())]))
        }
        Filter::And(a, b) => {
            let mut m = element_from(a)?;
            m.extend(element_from(b)?);
            Some(m)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    const SCHEMA: Schema = Schema {
        core_urn: "urn:ietf:params:scim:schemas:core:2.0:User",
        extensions: &[ENTERPRISE],
        read_only: &["id", "meta", "groups"],
    };

    fn patch(resource: &mut Value, ops: Value) -> Result<(), PatchError> {
        let body = json!({"schemas": [PATCH_OP], "Operations": ops});
        apply(resource, &parse_request(&body)?, &SCHEMA)
    }

    fn base() -> Value {
        json!({"id": "u1", "userName": "bjensen", "active": true,
               "emails": [{"value": "b@example.org", "type": "work", "primary": true}],
               "members": [{"value": "a"}, {"value": "b"}]})
    }

    #[test]
    fn entra_style_operations() {
        let mut r = base();
        patch(&mut r, json!([
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "new@example.org"},
            {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "ICU"},
            {"op": "Add", "path": "name.givenName", "value": "Barbara"},
            {"op": "Remove", "path": "members", "value": [{"value": "a"}]}
        ])).unwrap();
        assert_eq!(r["active"], "False", "the string is converted with the other attributes");
        assert_eq!(r["emails"][0]["value"], "new@example.org");
        assert_eq!(r[ENTERPRISE]["department"], "ICU");
        assert_eq!(r["name"]["givenName"], "Barbara");
        assert_eq!(r["members"], json!([{"value": "b"}]));
    }

    #[test]
    fn okta_style_operations() {
        let mut r = base();
        patch(&mut r, json!([{"op": "replace", "value": {"active": false, "id": "ignored"}}])).unwrap();
        assert_eq!(r["active"], false);
        assert_eq!(r["id"], "u1");
        patch(&mut r, json!([{"op": "add", "path": "members", "value": [{"value": "c"}, {"value": "b"}]}])).unwrap();
        assert_eq!(r["members"], json!([{"value": "a"}, {"value": "b"}, {"value": "c"}]));
        patch(&mut r, json!([{"op": "remove", "path": "members[value eq \"b\"]"}])).unwrap();
        assert_eq!(r["members"], json!([{"value": "a"}, {"value": "c"}]));
        patch(
            &mut r,
            json!([{"op": "replace", "value": {ENTERPRISE: {"employeeNumber": "42"}, "name.familyName": "J"}}]),
        )
        .unwrap();
        assert_eq!(r[ENTERPRISE]["employeeNumber"], "42");
        patch(&mut r, json!([{"op": "add", "path": ENTERPRISE, "value": {"department": "ICU"}}])).unwrap();
        assert_eq!(r[ENTERPRISE]["department"], "ICU");
        patch(&mut r, json!([{"op": "remove", "path": ENTERPRISE}])).unwrap();
        assert!(r.get(ENTERPRISE).is_none());
        assert_eq!(r["name"]["familyName"], "J");
    }

    #[test]
    fn missing_work_email_is_created_and_errors_are_typed() {
        let mut r = json!({"userName": "x"});
        patch(&mut r, json!([{"op": "add", "path": "emails[type eq \"work\"].value", "value": "x@example.org"}]))
            .unwrap();
        assert_eq!(r["emails"], json!([{"type": "work", "value": "x@example.org"}]));

        let err = |ops: Value| patch(&mut base(), ops).unwrap_err().scim_type;
        assert_eq!(err(json!([{"op": "replace", "path": "id", "value": "x"}])), ScimType::Mutability);
        assert_eq!(err(json!([{"op": "remove"}])), ScimType::NoTarget);
        assert_eq!(
            err(json!([{"op": "replace", "path": "emails[value co \"zzz\"]", "value": {"type": "x"}}])),
            ScimType::NoTarget
        );
        assert_eq!(err(json!([{"op": "replace", "path": "emails[type eq", "value": 1}])), ScimType::InvalidPath);
        assert_eq!(err(json!([{"op": "replace", "path": "urn:x:y:z", "value": 1}])), ScimType::InvalidPath);
        assert_eq!(err(json!([{"op": "move", "path": "a"}])), ScimType::InvalidSyntax);
        assert_eq!(err(json!([{"op": "replace", "path": "active"}])), ScimType::InvalidValue);
        assert!(parse_request(&json!({"Operations": []})).is_err(), "schemas is required");
    }
}
