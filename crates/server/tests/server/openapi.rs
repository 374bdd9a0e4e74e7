//! The OpenAPI document against the real server: it is the one served, it is well-formed,
//! every operation it documents exists, and every API route in the router is documented.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use wardgate_core::settings::Settings;
use wardgate_server::Node;

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn manifest_file(rel: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `$ref` in `v`, with the JSON pointer of the object holding it.
fn refs<'a>(v: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push((at.clone(), r));
            }
            for (k, x) in m {
                refs(x, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                refs(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// A value for a path parameter: the first of its `enum`, if it has one, else a dummy.
fn param_value(doc: &Value, item: &Value, name: &str) -> String {
    let resolve = |v: &Value| match v["$ref"].as_str().and_then(|r| r.strip_prefix('#')) {
        Some(p) => doc.pointer(p).cloned().unwrap_or(Value::Null),
        None => v.clone(),
    };
    item["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(resolve)
        .find(|p| p["name"] == name && p["in"] == "path")
        .and_then(|p| resolve(&p["schema"])["enum"][0].as_str().map(str::to_owned))
        .unwrap_or_else(|| "dummy".to_owned())
}

/// Every `.route("/api/v1/…", …)` in the router's source: its path, and the methods its
/// method router names (`get(…)`, `.post(…)`, `axum::routing::delete(…)`, …).
fn api_routes_in_router() -> Vec<(String, Vec<&'static str>)> {
    let src = manifest_file("src/app.rs");
    let mut routes = Vec::new();
    for rest in src.split(".route(").skip(1) {
        // The call's arguments: up to the parenthesis that closes `.route(`.
        let mut depth = 1;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                depth == 0
            })
            .map_or(rest.len(), |(i, _)| i);
        let call = &rest[..end];
        let Some(path) = call.strip_prefix('"').and_then(|p| p.split('"').next()) else { continue };
        if !path.starts_with("/api/v1/") {
            continue;
        }
        let named = |m: &str| {
            call.match_indices(&format!("{m}("))
                .any(|(i, _)| !call[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
        };
        let methods = ["get", "post", "put", "delete", "patch"].into_iter().filter(|m| named(m)).collect();
        routes.push((path.to_owned(), methods));
    }
    routes
}

#[tokio::test]
async fn openapi_document_matches_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings { data_dir: dir.path().join("data"), ..Settings::default() };
    settings.server.listen = "127.0.0.1:0".into();
    let node = Node::start(settings).await.unwrap();
    let http = crate::http_client();
    let url = |p: &str| format!("{}{p}", node.base_url);

    // The served document is the file, and it is OpenAPI 3.1.
    let file = manifest_file("src/api/openapi.json");
    let resp = http.get(url("/api/v1/openapi.json")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let served = resp.text().await.unwrap();
    assert_eq!(served, file, "the served document differs from src/api/openapi.json");
    let doc: Value = serde_json::from_str(&served).expect("the document is JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "Wardgate API");
    let paths = doc["paths"].as_object().expect("paths");

    // Every reference resolves inside the document.
    let mut found = Vec::new();
    refs(&doc, String::new(), &mut found);
    assert!(!found.is_empty());
    for (at, r) in &found {
        let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("{at}: external $ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "{at}: $ref {r} does not resolve");
    }

    // Every documented operation exists on the server, and operation ids are unique.
    let mut ids = std::collections::BTreeSet::new();
    for (path, item) in paths {
        let concrete = path
            .split('/')
            .map(|seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => param_value(&doc, item, name),
                None => seg.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/");
        let ops: Vec<_> = item.as_object().unwrap().iter().filter(|(m, _)| METHODS.contains(&m.as_str())).collect();
        assert!(!ops.is_empty(), "{path} documents no operation");
        for (method, op) in ops {
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path}: no operationId"));
            assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
            let m = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
            let mut req = http.request(m.clone(), url(&concrete));
            if m != Method::GET && m != Method::HEAD {
                req = req.header("content-type", "application/json").body("{}");
            }
            let resp = req.send().await.unwrap();
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path} is not routed: {body}");
            assert!(
                !(status == StatusCode::NOT_FOUND && body.contains("urn:wardgate:problem:not-found")),
                "{method} {path} is not routed: {body}"
            );
        }
    }

    // Every API route of the router is documented, with each of its methods.
    let routes = api_routes_in_router();
    assert!(routes.len() >= 20, "found only {routes:?} in src/app.rs");
    let mut missing = Vec::new();
    for (path, methods) in &routes {
        assert!(!methods.is_empty(), "no method found for {path} in src/app.rs");
        for m in methods {
            if paths.get(path).and_then(|item| item.get(*m)).is_none() {
                missing.push(format!("{} {path}", m.to_ascii_uppercase()));
            }
        }
    }
    assert!(missing.is_empty(), "routes in src/app.rs missing from openapi.json: {missing:?}");
}
