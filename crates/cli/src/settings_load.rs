//! Layered configuration: safe defaults, then the TOML file, then `WARDGATE_*`
//! environment variables, then command-line flags — merged by the `config` crate.
//!
//! Environment names are the key path in capitals with `.` as `_`: `server.listen` is
//! `WARDGATE_SERVER_LISTEN`, `data_dir` is `WARDGATE_DATA_DIR`. Only known keys are read,
//! so unrelated `WARDGATE_*` variables (a test's database URL, say) are left alone.

use std::collections::BTreeMap;
use std::path::Path;

use config::{Config, File, FileFormat};
use wardgate_core::settings::Settings;

use crate::{Failure, GlobalArgs, ServeArgs};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Integer,
    Text,
    TextList,
    /// A table of lists of strings, such as role → allowed authenticator models.
    TextListTable,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Bool => "true or false",
            Kind::Integer => "a non-negative integer",
            Kind::Text => "a string",
            Kind::TextList => "a list of strings",
            Kind::TextListTable => "a table whose values are lists of strings",
        }
    }
}

/// Every settable key and the kind of value it takes, derived from the defaults so the
/// list cannot drift from the `Settings` type.
pub fn known_keys() -> BTreeMap<String, Kind> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, Kind>) {
        if let serde_json::Value::Object(m) = v {
            for (k, v) in m {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                let kind = match v {
                    // An empty table by default is a map the operator fills in, not a section.
                    serde_json::Value::Object(m) if m.is_empty() => Kind::TextListTable,
                    serde_json::Value::Object(_) => {
                        walk(&path, v, out);
                        continue;
                    }
                    serde_json::Value::Bool(_) => Kind::Bool,
                    serde_json::Value::Number(_) => Kind::Integer,
                    serde_json::Value::Array(_) => Kind::TextList,
                    serde_json::Value::String(_) | serde_json::Value::Null => Kind::Text,
                };
                out.insert(path, kind);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", &serde_json::to_value(Settings::default()).unwrap_or_default(), &mut out);
    out
}

pub fn env_name(key: &str) -> String {
    format!("WARDGATE_{}", key.replace('.', "_").to_uppercase())
}

/// The effective settings for a command. `serve` is given for `wardgate serve`'s flags.
pub fn load(global: &GlobalArgs, serve: Option<&ServeArgs>) -> Result<Settings, Failure> {
    let mut b = Config::builder();
    b = b.add_source(Config::try_from(&Settings::default()).map_err(|e| Failure::new(format!("defaults: {e}")))?);
    if let Some(path) = &global.config {
        let problems = check_file(path);
        if !problems.is_empty() {
            return Err(Failure::new(problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; ")));
        }
        b = b.add_source(File::from(path.as_path()).format(FileFormat::Toml));
    }
    let known = known_keys();
    for (key, kind) in &known {
        if let Ok(v) = std::env::var(env_name(key)) {
            b = set(b, key, *kind, &v)?;
        }
    }
    let mut flags: Vec<(&str, String)> = Vec::new();
    if let Some(d) = &global.data_dir {
        flags.push(("data_dir", d.display().to_string()));
    }
    if let Some(d) = &global.database {
        flags.push(("database", d.clone()));
    }
    if let Some(f) = &global.log_format {
        flags.push(("log.format", f.clone()));
    }
    if let Some(s) = serve {
        if let Some(l) = &s.listen {
            flags.push(("server.listen", l.clone()));
        }
        if s.behind_proxy {
            flags.push(("server.behind_proxy", "true".into()));
        }
        if !s.trusted_proxies.is_empty() {
            flags.push(("server.trusted_proxies", s.trusted_proxies.join(",")));
        }
        if let Some(c) = &s.tls_cert {
            flags.push(("server.tls_cert", c.display().to_string()));
        }
        if let Some(k) = &s.tls_key {
            flags.push(("server.tls_key", k.display().to_string()));
        }
        if s.dev_tls {
            flags.push(("server.dev_tls", "true".into()));
        }
    }
    for (key, value) in flags {
        let kind = known.get(key).copied().unwrap_or(Kind::Text);
        b = set(b, key, kind, &value)?;
    }
    let settings: Settings =
        b.build().and_then(|c| c.try_deserialize()).map_err(|e| Failure::new(format!("configuration: {e}")))?;
    let problems = settings.validate();
    if !problems.is_empty() {
        return Err(Failure::new(format!(
            "configuration is not valid: {}",
            problems.iter().map(|p| format!("{}: {}", p.key, p.message)).collect::<Vec<_>>().join("; ")
        )));
    }
    Ok(settings)
}

fn set(
    b: config::ConfigBuilder<config::builder::DefaultState>,
    key: &str,
    kind: Kind,
    raw: &str,
) -> Result<config::ConfigBuilder<config::builder::DefaultState>, Failure> {
    let bad = || Failure::new(format!("{} ({key}): expected {}, got {raw:?}", env_name(key), kind.name()));
    let r = match kind {
        Kind::Bool => b.set_override(key, raw.parse::<bool>().map_err(|_| bad())?),
        Kind::Integer => b.set_override(key, raw.parse::<u64>().map_err(|_| bad())?),
        Kind::Text => b.set_override(key, raw),
        Kind::TextList => b.set_override(
            key,
            raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect::<Vec<_>>(),
        ),
        Kind::TextListTable => {
            return Err(Failure::new(format!(
                "{} ({key}): a table cannot be given in the environment; set it in the configuration file",
                env_name(key)
            )));
        }
    };
    r.map_err(|e| Failure::new(format!("{key}: {e}")))
}

/// One problem in a configuration file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    pub file: String,
    pub line: usize,
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for FileProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        } else {
            write!(f, "{}:{}: {}: {}", self.file, self.line, self.key, self.message)
        }
    }
}

/// Every problem in `path`: syntax, unknown keys, wrong kinds, then invalid values.
pub fn check_file(path: &Path) -> Vec<FileProblem> {
    let file = path.display().to_string();
    let problem =
        |line, key: &str, message: String| FileProblem { file: file.clone(), line, key: key.to_owned(), message };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return vec![problem(0, "", format!("cannot read: {e}"))],
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return vec![problem(0, "", "is not UTF-8 text".into())];
    };
    let doc = match toml_edit::Document::parse(text.as_str()) {
        Ok(d) => d,
        Err(e) => {
            let line = e.span().map(|s| line_of(&text, s.start)).unwrap_or(0);
            return vec![problem(line, "", format!("not valid TOML: {}", e.message()))];
        }
    };
    let known = known_keys();
    let mut lines = BTreeMap::new();
    let mut problems = Vec::new();
    walk(doc.as_table(), "", &text, &known, &mut lines, &mut problems);
    // Drop what is already reported so the values that remain are still checked.
    let mut cleaned: toml_edit::DocumentMut = doc.into_mut();
    for (_, key, _) in &problems {
        match key.rsplit_once('.') {
            None => {
                cleaned.remove(key);
            }
            Some((section, leaf)) => {
                if let Some(t) = cleaned.get_mut(section).and_then(|i| i.as_table_like_mut()) {
                    t.remove(leaf);
                }
            }
        }
    }
    let mut problems: Vec<FileProblem> =
        problems.into_iter().map(|(line, key, msg)| problem(line, &key, msg)).collect();
    {
        let merged = Config::builder()
            .add_source(Config::try_from(&Settings::default()).unwrap_or_default())
            .add_source(File::from_str(&cleaned.to_string(), FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize::<Settings>());
        match merged {
            Ok(settings) => {
                for p in settings.validate() {
                    let base = p.key.split('[').next().unwrap_or(&p.key).to_owned();
                    let line = lines.get(&base).copied().unwrap_or(0);
                    problems.push(problem(line, &p.key, p.message));
                }
            }
            Err(e) => problems.push(problem(0, "", e.to_string())),
        }
    }
    problems.sort_by_key(|p| p.line);
    problems
}

/// Records each key's line and reports unknown keys and wrong kinds, descending into the
/// known sections (`[server]`, `[audit]`, …).
fn walk(
    table: &dyn toml_edit::TableLike,
    prefix: &str,
    text: &str,
    known: &BTreeMap<String, Kind>,
    lines: &mut BTreeMap<String, usize>,
    problems: &mut Vec<(usize, String, String)>,
) {
    for (key, item) in table.iter() {
        let path = if prefix.is_empty() { key.to_owned() } else { format!("{prefix}.{key}") };
        let line =
            table.key(key).and_then(|k| k.span()).or_else(|| item.span()).map(|s| line_of(text, s.start)).unwrap_or(0);
        lines.insert(path.clone(), line);
        let is_section = known.keys().any(|k| k.starts_with(&format!("{path}.")));
        if let Some(t) = item.as_table_like().filter(|_| is_section) {
            walk(t, &path, text, known, lines, problems);
            continue;
        }
        match known.get(&path) {
            None => problems.push((line, path, "unknown key".into())),
            Some(kind) if !kind_matches(*kind, item) => {
                problems.push((line, path, format!("expected {}", kind.name())))
            }
            Some(_) => {}
        }
    }
}

fn kind_matches(kind: Kind, item: &toml_edit::Item) -> bool {
    if kind == Kind::TextListTable {
        return item.as_table_like().is_some_and(|t| {
            t.iter().all(|(_, v)| v.as_value().and_then(|v| v.as_array()).is_some_and(|a| a.iter().all(|x| x.is_str())))
        });
    }
    let Some(v) = item.as_value() else { return false };
    match kind {
        Kind::Bool => v.is_bool(),
        Kind::Integer => v.as_integer().is_some_and(|i| i >= 0),
        Kind::Text => v.is_str(),
        Kind::TextList => v.as_array().is_some_and(|a| a.iter().all(|x| x.is_str())),
        Kind::TextListTable => false,
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// The settings as TOML, with credentials in the database URL masked.
pub fn show(settings: &Settings) -> Result<String, Failure> {
    let mut s = settings.clone();
    if let Some(db) = &s.database {
        s.database = Some(mask_url_password(db));
    }
    toml_edit::ser::to_string_pretty(&s).map_err(|e| Failure::new(format!("cannot render settings: {e}")))
}

fn mask_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((userinfo, host)) = rest.split_once('@') else { return url.to_owned() };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:****@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wardgate.toml");
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn known_keys_cover_nested_settings_and_env_names() {
        let k = known_keys();
        assert_eq!(k.get("server.listen"), Some(&Kind::Text));
        assert_eq!(k.get("audit.retention_days"), Some(&Kind::Integer));
        assert_eq!(k.get("server.trusted_proxies"), Some(&Kind::TextList));
        assert_eq!(k.get("auth.webauthn_allowed_aaguids"), Some(&Kind::TextListTable));
        assert_eq!(k.get("master_key_file"), Some(&Kind::Text));
        assert_eq!(env_name("server.listen"), "WARDGATE_SERVER_LISTEN");
    }

    #[test]
    fn every_problem_is_reported_with_key_and_line() {
        let (_d, p) = write(
            "data_dir = \"/tmp/x\"\n\n[server]\nlisten = 8080\nbogus = true\n\n[audit]\nretention_days = \"long\"\n",
        );
        let probs = check_file(&p);
        let got: Vec<_> = probs.iter().map(|p| (p.line, p.key.as_str())).collect();
        assert_eq!(got, [(4, "server.listen"), (5, "server.bogus"), (8, "audit.retention_days")]);
    }

    #[test]
    fn invalid_values_are_located() {
        let (_d, p) = write("[server]\nlisten = \"0.0.0.0:8080\"\n[audit]\nretention_days = 30\n");
        let probs = check_file(&p);
        let got: Vec<_> = probs.iter().map(|p| (p.line, p.key.as_str())).collect();
        assert_eq!(got, [(2, "server.listen"), (4, "audit.retention_days")]);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let (_d, p) = write("[server]\nlisten = \"127.0.0.1:1\"\nthis is not toml\n");
        let probs = check_file(&p);
        assert_eq!(probs.len(), 1);
        assert_eq!(probs[0].line, 3);
        assert!(probs[0].message.starts_with("not valid TOML"), "{}", probs[0]);
    }

    #[test]
    fn database_passwords_are_masked() {
        assert_eq!(mask_url_password("postgres://wg:s3cret@db/wardgate"), "postgres://wg:****@db/wardgate");
        assert_eq!(mask_url_password("postgres://db/wardgate"), "postgres://db/wardgate");
    }
}
