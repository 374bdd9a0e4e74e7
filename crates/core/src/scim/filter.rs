//! SCIM filters (RFC 7644 §3.4.2.2): parsing into a typed tree, and evaluation against a
//! resource's JSON form.
//!
//! Evaluation runs in memory over resources already loaded: a hospital directory holds
//! thousands of people, not millions, so translating filters into two SQL dialects would buy
//! nothing but a second place for bugs.

use serde_json::Value;

/// An attribute reference: `[urn:…:]attr[.sub]`, spelled as given. SCIM attribute names are
/// case-insensitive (RFC 7643 §2.1): every comparison of names ignores case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    /// The schema URN, when the attribute was qualified with one.
    pub urn: Option<String>,
    pub attr: String,
    pub sub: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Present(AttrPath),
    Compare(AttrPath, CompareOp, Value),
    /// `emails[type eq "work"]`: some element of a multi-valued attribute matches.
    ValuePath(AttrPath, Box<Filter>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter at character {at}: {what}")]
pub struct FilterError {
    pub at: usize,
    pub what: String,
}

/// Filters longer than this are refused: nothing an HR connector sends comes near it, and it
/// bounds the parser's recursion.
const MAX_FILTER_LEN: usize = 4096;
const MAX_DEPTH: usize = 32;

impl AttrPath {
    /// Parses `attr`, `attr.sub`, `urn:…:attr` or `urn:…:attr.sub`.
    pub fn parse(s: &str) -> Option<Self> {
        let (urn, rest) = if s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
            let i = s.rfind(':')?;
            (Some(s[..i].to_owned()), &s[i + 1..])
        } else {
            (None, s)
        };
        let mut parts = rest.split('.');
        let attr = parts.next()?;
        let sub = parts.next();
        let name_ok = |n: &str| {
            n.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '$')
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
        };
        if parts.next().is_some() || !name_ok(attr) || sub.is_some_and(|s| !name_ok(s)) {
            return None;
        }
        Some(Self { urn, attr: attr.to_owned(), sub: sub.map(str::to_owned) })
    }
}

impl Filter {
    pub fn parse(s: &str) -> Result<Self, FilterError> {
        if s.len() > MAX_FILTER_LEN {
            return Err(FilterError { at: MAX_FILTER_LEN, what: "filter too long".into() });
        }
        let mut p = Parser { s, pos: 0, depth: 0 };
        let f = p.or()?;
        p.skip_ws();
        if p.pos < s.len() {
            return Err(p.error("unexpected text after the filter"));
        }
        Ok(f)
    }

    /// Whether `resource` matches. `urn_of_core` names the resource's core schema, so that
    /// `urn:…:core:2.0:User:userName` and `userName` mean the same.
    pub fn matches(&self, resource: &Value, core_urn: &str) -> bool {
        match self {
            Filter::And(a, b) => a.matches(resource, core_urn) && b.matches(resource, core_urn),
            Filter::Or(a, b) => a.matches(resource, core_urn) || b.matches(resource, core_urn),
            Filter::Not(f) => !f.matches(resource, core_urn),
            Filter::Present(path) => values(resource, path, core_urn).iter().any(|v| present(v)),
            // `attr eq null` holds when the attribute is absent, `ne null` when present.
            Filter::Compare(path, op, Value::Null) => {
                let present = values(resource, path, core_urn).iter().any(|v| present(v));
                if *op == CompareOp::Eq { !present } else { present }
            }
            Filter::Compare(path, op, lit) => values(resource, path, core_urn).iter().any(|v| compare(v, *op, lit)),
            Filter::ValuePath(path, inner) => match lookup(resource, path, core_urn) {
                Some(Value::Array(items)) => items.iter().any(|item| inner.matches(item, core_urn)),
                Some(item @ Value::Object(_)) => inner.matches(item, core_urn),
                _ => false,
            },
        }
    }
}

/// The attribute (without its sub-attribute) in `resource`, names compared case-insensitively.
pub fn lookup<'a>(resource: &'a Value, path: &AttrPath, core_urn: &str) -> Option<&'a Value> {
    let container = match &path.urn {
        Some(urn) if !urn.eq_ignore_ascii_case(core_urn) => get_ci(resource, urn)?,
        _ => resource,
    };
    get_ci(container, &path.attr)
}

/// A member of an object by case-insensitive name.
pub fn get_ci<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

/// Every value the path reaches: a multi-valued attribute yields each element (or each
/// element's sub-attribute, or its `value` when a complex element is compared whole).
fn values<'a>(resource: &'a Value, path: &AttrPath, core_urn: &str) -> Vec<&'a Value> {
    let Some(v) = lookup(resource, path, core_urn) else { return Vec::new() };
    let pick = |item: &'a Value| -> Option<&'a Value> {
        match (&path.sub, item) {
            (Some(sub), _) => get_ci(item, sub),
            (None, Value::Object(_)) => get_ci(item, "value"),
            (None, _) => Some(item),
        }
    };
    match v {
        Value::Array(items) => items.iter().filter_map(pick).collect(),
        Value::Object(_) if path.sub.is_none() => vec![v],
        other => pick(other).into_iter().collect(),
    }
}

fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

/// Strings compare case-insensitively: the attributes Wardgate exposes are `caseExact: false`
/// except ids, which are lowercase hex anyway.
fn compare(v: &Value, op: CompareOp, lit: &Value) -> bool {
    use CompareOp::*;
    match (v, lit) {
        (Value::String(a), Value::String(b)) => {
            let (a, b) = (a.to_lowercase(), b.to_lowercase());
            match op {
                Eq => a == b,
                Ne => a != b,
                Co => a.contains(&b),
                Sw => a.starts_with(&b),
                Ew => a.ends_with(&b),
                Gt => a > b,
                Ge => a >= b,
                Lt => a < b,
                Le => a <= b,
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            let (Some(a), Some(b)) = (a.as_f64(), b.as_f64()) else { return false };
            match op {
                Eq => a == b,
                Ne => a != b,
                Gt => a > b,
                Ge => a >= b,
                Lt => a < b,
                Le => a <= b,
                Co | Sw | Ew => false,
            }
        }
        (Value::Bool(a), Value::Bool(b)) => match op {
            Eq => a == b,
            Ne => a != b,
            _ => false,
        },
        _ => op == Ne,
    }
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> FilterError {
        FilterError { at: self.pos, what: what.to_owned() }
    }

    fn rest(&self) -> &str {
        &self.s[self.pos..]
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start_matches([' ', '\t', '\n', '\r']);
        self.pos = self.s.len() - trimmed.len();
    }

    /// A keyword (`and`, `or`, `not`, an operator) followed by a space or `(`.
    fn keyword(&mut self, word: &str) -> bool {
        self.skip_ws();
        let r = self.rest();
        let ok = r.len() >= word.len()
            && r.is_char_boundary(word.len())
            && r[..word.len()].eq_ignore_ascii_case(word)
            && r[word.len()..].chars().next().is_none_or(|c| c.is_whitespace() || c == '(' || c == '"');
        if ok {
            self.pos += word.len();
        }
        ok
    }

    fn or(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            left = Filter::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("filter nested too deeply"));
        }
        let f = if self.keyword("not") {
            self.skip_ws();
            if !self.rest().starts_with('(') {
                return Err(self.error("expected '(' after 'not'"));
            }
            Filter::Not(Box::new(self.unary()?))
        } else {
            self.skip_ws();
            if self.rest().starts_with('(') {
                self.pos += 1;
                let f = self.or()?;
                self.skip_ws();
                if !self.rest().starts_with(')') {
                    return Err(self.error("expected ')'"));
                }
                self.pos += 1;
                f
            } else {
                self.comparison()?
            }
        };
        self.depth -= 1;
        Ok(f)
    }

    fn path(&mut self) -> Result<AttrPath, FilterError> {
        self.skip_ws();
        let len = self
            .rest()
            .find(|c: char| !(c.is_ascii_alphanumeric() || "_-$:.".contains(c)))
            .unwrap_or(self.rest().len());
        if len == 0 {
            return Err(self.error("expected an attribute name"));
        }
        let text = &self.rest()[..len];
        let path = AttrPath::parse(text).ok_or_else(|| self.error(&format!("{text:?} is not an attribute path")))?;
        self.pos += len;
        Ok(path)
    }

    fn comparison(&mut self) -> Result<Filter, FilterError> {
        let path = self.path()?;
        if self.rest().starts_with('[') {
            if path.sub.is_some() {
                return Err(self.error("a value filter follows an attribute, not a sub-attribute"));
            }
            self.pos += 1;
            let inner = self.or()?;
            self.skip_ws();
            if !self.rest().starts_with(']') {
                return Err(self.error("expected ']'"));
            }
            self.pos += 1;
            // `emails[type eq "work"].value` is a PATCH path, not a filter.
            return Ok(Filter::ValuePath(path, Box::new(inner)));
        }
        if self.keyword("pr") {
            return Ok(Filter::Present(path));
        }
        let ops = [
            ("eq", CompareOp::Eq),
            ("ne", CompareOp::Ne),
            ("co", CompareOp::Co),
            ("sw", CompareOp::Sw),
            ("ew", CompareOp::Ew),
            ("gt", CompareOp::Gt),
            ("ge", CompareOp::Ge),
            ("lt", CompareOp::Lt),
            ("le", CompareOp::Le),
        ];
        let Some(op) = ops.iter().find(|(w, _)| self.keyword(w)).map(|(_, op)| *op) else {
            return Err(self.error("expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)"));
        };
        let value = self.literal()?;
        if matches!(value, Value::Null | Value::Bool(_)) && !matches!(op, CompareOp::Eq | CompareOp::Ne) {
            return Err(self.error("true, false and null compare only with eq and ne"));
        }
        Ok(Filter::Compare(path, op, value))
    }

    fn literal(&mut self) -> Result<Value, FilterError> {
        self.skip_ws();
        let r = self.rest();
        if r.starts_with('"') {
            // The longest prefix that is one JSON string: scan for the closing quote, skipping
            // escapes, then let serde_json decode the escapes.
            let bytes = r.as_bytes();
            let mut i = 1;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' => i += 2,
                    b'"' => break,
                    _ => i += 1,
                }
            }
            if i >= bytes.len() {
                return Err(self.error("unterminated string"));
            }
            let s: String =
                serde_json::from_str(&r[..=i]).map_err(|_| self.error("invalid escape in string literal"))?;
            self.pos += i + 1;
            return Ok(Value::String(s));
        }
        let len = r.find(|c: char| c.is_whitespace() || c == ')' || c == ']').unwrap_or(r.len());
        let word = &r[..len];
        let v = match word.to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            "null" => Value::Null,
            _ => match serde_json::from_str::<serde_json::Number>(word) {
                Ok(n) => Value::Number(n),
                Err(_) => {
                    return Err(
                        self.error("expected a value: a string in double quotes, a number, true, false or null")
                    );
                }
            },
        };
        self.pos += len;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CORE: &str = "urn:ietf:params:scim:schemas:core:2.0:user";

    fn user() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": "abc",
            "userName": "bjensen",
            "name": {"familyName": "Jensen", "givenName": "Barbara"},
            "active": true,
            "emails": [{"value": "bjensen@example.org", "type": "work", "primary": true},
                       {"value": "babs@home.example", "type": "home"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "701984", "department": "ICU"},
            "meta": {"lastModified": "2026-11-28T10:00:00Z"}
        })
    }

    fn m(f: &str) -> bool {
        Filter::parse(f).unwrap_or_else(|e| panic!("{f}: {e}")).matches(&user(), CORE)
    }

    #[test]
    fn attribute_paths_operators_and_case() {
        assert!(m(r#"userName eq "bjensen""#));
        assert!(m(r#"USERNAME EQ "BJensen""#));
        assert!(!m(r#"userName ne "bjensen""#));
        assert!(m(r#"name.familyName co "ens""#));
        assert!(m(r#"name.FAMILYNAME sw "J""#));
        assert!(m(r#"userName ew "sen""#));
        assert!(!m("title pr"));
        assert!(m("emails pr"));
        assert!(m("active eq true"));
        assert!(!m("active eq false"));
        assert!(m(r#"meta.lastModified gt "2026-01-01T00:00:00Z""#));
        assert!(m(r#"meta.lastModified le "2026-11-28T10:00:00Z""#));
        assert!(!m(r#"meta.lastModified lt "2026-11-28T10:00:00Z""#));
        assert!(m(r#"emails eq "babs@home.example""#), "a complex attribute compares by its value");
        assert!(m(r#"emails.type eq "home""#));
        assert!(m("title eq null"));
    }

    #[test]
    fn value_paths_and_urns() {
        assert!(m(r#"emails[type eq "work" and value co "example.org"]"#));
        assert!(!m(r#"emails[type eq "home" and value co "example.org"]"#));
        assert!(m(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#));
        assert!(m(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "icu""#));
        assert!(m(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "bjensen""#));
    }

    #[test]
    fn precedence_parentheses_and_not() {
        // and binds tighter than or.
        assert!(m(r#"userName eq "x" or userName eq "bjensen" and active eq true"#));
        assert!(!m(r#"(userName eq "x" or userName eq "bjensen") and active eq false"#));
        assert!(m(r#"not (userName eq "x")"#));
        assert!(!m(r#"not(userName eq "bjensen")"#));
        assert!(m(r#"userName eq "a\"b" or userName eq "bj\u0065nsen""#), "JSON escapes");
        let f = Filter::parse(r#"a eq 1 or b eq 2 and c eq 3"#).unwrap();
        assert!(matches!(f, Filter::Or(_, ref r) if matches!(**r, Filter::And(..))));
        assert!(Filter::parse("x eq 1.5e3").is_ok());
    }

    #[test]
    fn malformed_filters_are_typed_errors() {
        for bad in [
            "",
            "userName",
            "userName eq",
            r#"userName xx "a""#,
            r#"userName eq "unterminated"#,
            r#"userName eq bjensen"#,
            r#"(userName eq "a""#,
            r#"userName eq "a")"#,
            r#"emails[type eq "work""#,
            r#"userName eq "a" and"#,
            r#"not userName eq "a""#,
            r#"userName gt true"#,
            r#"user name eq "a""#,
            r#"userName eq "\x""#,
            "1abc eq 1",
        ] {
            assert!(Filter::parse(bad).is_err(), "{bad:?} parsed");
        }
        let deep = format!("{}a eq 1{}", "(".repeat(100), ")".repeat(100));
        assert!(Filter::parse(&deep).is_err(), "deep nesting is refused, not a stack overflow");
    }
}
