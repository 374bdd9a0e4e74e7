//! SCIM 2.0 provisioning against the real server: the resource operations an HR connector
//! uses (Entra ID and Okta bodies both), and deprovisioning that ends every kind of access
//! at once — sessions, the gateway, OpenID Connect tokens — with the audit trail to show it.

use reqwest::StatusCode;
use serde_json::{Value, json};
use wardgate_core::identity::AccountStatus;
use wardgate_core::settings::GatewayRoute;
use wardgate_server::clients::{Clients, NewClient};

use crate::gateway::{gateway_cookie, nurse_signs_in, nurse_under_policy};
use crate::login::{Harness, clock, start_with};

const SCIM_JSON: &str = "application/scim+json";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const APP_HOST: &str = "labs.wardgate.test";
const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// A connector token, made as `wardgate scim token create` does.
async fn token(h: &Harness) -> String {
    wardgate_server::scim::tokens::create(&*h.node.store, "operator:test", clock(), "hr", 30).await.unwrap().1
}

struct Scim<'a> {
    h: &'a Harness,
    token: String,
}

impl Scim<'_> {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        if_match: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self.h.http.request(method, self.h.url(&format!("/scim/v2{path}"))).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.header("content-type", SCIM_JSON).body(b.to_string());
        }
        if let Some(tag) = if_match {
            req = req.header("if-match", tag);
        }
        req.send().await.unwrap()
    }

    /// Sends and expects `want`; returns the ETag and the body (null for 204).
    async fn expect(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        if_match: Option<&str>,
        want: StatusCode,
    ) -> (Option<String>, Value) {
        let resp = self.send(method.clone(), path, body, if_match).await;
        let status = resp.status();
        let etag = resp.headers().get("etag").map(|v| v.to_str().unwrap().to_owned());
        let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
        let text = resp.text().await.unwrap();
        assert_eq!(status, want, "{method} {path}: {text}");
        if status == StatusCode::NO_CONTENT {
            return (etag, Value::Null);
        }
        assert_eq!(ct.as_deref(), Some(SCIM_JSON), "{method} {path}");
        let v: Value = serde_json::from_str(&text).unwrap();
        if !status.is_success() {
            assert_eq!(v["schemas"], json!([ERROR]), "{v}");
            assert_eq!(v["status"], status.as_u16().to_string(), "{v}");
        }
        (etag, v)
    }

    async fn get(&self, path: &str) -> Value {
        self.expect(reqwest::Method::GET, path, None, None, StatusCode::OK).await.1
    }

    async fn patch(&self, path: &str, ops: Value) -> Value {
        let body = json!({"schemas": [PATCH_OP], "Operations": ops});
        self.expect(reqwest::Method::PATCH, path, Some(body), None, StatusCode::OK).await.1
    }
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn an_hr_connector_manages_users_and_groups_with_filters_pages_etags_and_patches() {
    let h = start_with(|s| s.server.max_body_bytes = 65536).await;
    let scim = Scim { h: &h, token: token(&h).await };
    use reqwest::Method as M;

    // Without a token, or with a wrong one: 401 with a Bearer challenge, in SCIM's shape.
    for auth in [None, Some("Bearer not-a-token")] {
        let mut req = h.http.get(h.url("/scim/v2/Users"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(resp.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
        let v: Value = resp.json().await.unwrap();
        assert_eq!((v["schemas"].clone(), v["status"].clone()), (json!([ERROR]), json!("401")));
    }

    // Discovery.
    let spc = scim.get("/ServiceProviderConfig").await;
    assert_eq!((spc["patch"]["supported"].clone(), spc["etag"]["supported"].clone()), (json!(true), json!(true)));
    assert_eq!(scim.get("/ResourceTypes").await["totalResults"], 2);
    assert_eq!(scim.get("/Schemas").await["totalResults"], 3);
    assert_eq!(scim.get(&format!("/Schemas/{ENTERPRISE}")).await["name"], "EnterpriseUser");

    // Okta-style creation; the username is folded to lowercase as everywhere in Wardgate.
    let (etag, jane) = scim
        .expect(
            M::POST,
            "/Users",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
                "userName": "JSmith@st-marys.example",
                "externalId": "00u1",
                "name": {"givenName": "Jane", "familyName": "Smith"},
                "emails": [{"value": "jsmith@st-marys.example", "type": "work", "primary": true}],
                "active": true,
                ENTERPRISE: {"employeeNumber": "701984", "department": "ICU"}
            })),
            None,
            StatusCode::CREATED,
        )
        .await;
    let id = jane["id"].as_str().unwrap().to_owned();
    assert_eq!(jane["userName"], "jsmith@st-marys.example");
    assert!(jane.get("displayName").is_none(), "a derived name is not echoed as if sent: {jane}");
    assert_eq!(jane[ENTERPRISE]["department"], "ICU");
    assert_eq!(jane["meta"]["version"].as_str(), etag.as_deref());
    let account = h.node.store.user_by_id(&id).await.unwrap().unwrap();
    assert_eq!(account.status, AccountStatus::Invited, "created as `wardgate user add` would, without factors");
    assert_eq!(account.employee_id.as_deref(), Some("701984"));
    assert_eq!(account.display_name, "Jane Smith", "from the given and family names");
    // The same userName again, in any case: 409 uniqueness.
    let (_, dup) = scim
        .expect(M::POST, "/Users", Some(json!({"userName": "jsmith@ST-MARYS.example"})), None, StatusCode::CONFLICT)
        .await;
    assert_eq!(dup["scimType"], "uniqueness");
    let (_, bad) =
        scim.expect(M::POST, "/Users", Some(json!({"userName": "has space"})), None, StatusCode::BAD_REQUEST).await;
    assert_eq!(bad["scimType"], "invalidValue");

    for (i, dept) in ["ICU", "Pharmacy", "ICU"].iter().enumerate() {
        scim.expect(
            M::POST,
            "/Users",
            Some(json!({"userName": format!("user{i}"), "emails": [{"value": format!("u{i}@example.org"), "type": "work"}],
                        ENTERPRISE: {"department": dept}})),
            None,
            StatusCode::CREATED,
        )
        .await;
    }

    // Pages: 4 people, two at a time.
    let page = scim.get("/Users?startIndex=1&count=2").await;
    assert_eq!((page["totalResults"].clone(), page["Resources"].as_array().unwrap().len()), (json!(4), 2));
    let page2 = scim.get("/Users?startIndex=3&count=2").await;
    assert_eq!((page2["startIndex"].clone(), page2["itemsPerPage"].clone()), (json!(3), json!(2)));
    assert_ne!(page["Resources"][0]["id"], page2["Resources"][0]["id"]);

    // Filters.
    let count = |v: Value| v["totalResults"].as_u64().unwrap();
    assert_eq!(count(scim.get(&format!("/Users?filter={}", enc(r#"userName eq "JSMITH@st-marys.example""#))).await), 1);
    assert_eq!(
        count(scim.get(&format!("/Users?filter={}", enc(&format!(r#"{ENTERPRISE}:department eq "icu""#)))).await),
        3
    );
    assert_eq!(
        count(
            scim.get(&format!(
                "/Users?filter={}",
                enc(r#"emails[type eq "work" and value ew "example.org"] and not (userName sw "user2")"#)
            ))
            .await
        ),
        2
    );
    assert_eq!(
        count(scim.get(&format!("/Users?filter={}", enc(r#"name.familyName co "mit" or externalId eq "nope""#))).await),
        1
    );
    for bad in [r#"userName eq"#, r#"userName eq "x" and"#, r#"emails[type eq "work""#, "(userName pr"] {
        let (_, e) =
            scim.expect(M::GET, &format!("/Users?filter={}", enc(bad)), None, None, StatusCode::BAD_REQUEST).await;
        assert_eq!(e["scimType"], "invalidFilter", "{bad}");
    }
    // The same through POST /.search.
    let (_, found) = scim
        .expect(
            M::POST,
            "/Users/.search",
            Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                        "filter": "userName sw \"user\"", "count": 2, "attributes": ["userName"]})),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!((found["totalResults"].clone(), found["itemsPerPage"].clone()), (json!(3), json!(2)));
    // attributes= trims the resources.
    let slim = scim.get(&format!("/Users?filter={}&attributes=userName", enc(r#"userName eq "user0""#))).await;
    let r = &slim["Resources"][0];
    assert!(r["userName"].is_string() && r["id"].is_string() && r.get("emails").is_none(), "{r}");

    // PUT with If-Match: a stale tag is refused, the current one accepted.
    let path = format!("/Users/{id}");
    let mut replaced = jane.clone();
    replaced["title"] = json!("Charge Nurse");
    let (_, e) =
        scim.expect(M::PUT, &path, Some(replaced.clone()), Some("W/\"stale\""), StatusCode::PRECONDITION_FAILED).await;
    assert_eq!(e["status"], "412");
    let (etag2, after) = scim.expect(M::PUT, &path, Some(replaced), etag.as_deref(), StatusCode::OK).await;
    assert_eq!(after["title"], "Charge Nurse");
    assert_ne!(etag2, etag, "a change gives a new version");
    // Retries racing with the same version: one change is applied, the rest see it and
    // get 412 instead of overwriting it.
    let racing = (0..8).map(|i| {
        let mut body = after.clone();
        body["title"] = json!(format!("Ward clerk {i}"));
        scim.send(M::PUT, &path, Some(body), etag2.as_deref())
    });
    let statuses: Vec<StatusCode> =
        futures_util::future::join_all(racing).await.into_iter().map(|r| r.status()).collect();
    let won = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let lost = statuses.iter().filter(|s| **s == StatusCode::PRECONDITION_FAILED).count();
    assert_eq!((won, lost), (1, 7), "{statuses:?}");
    let (_, after) = scim.expect(M::GET, &path, None, None, StatusCode::OK).await;
    assert!(after["title"].as_str().unwrap().starts_with("Ward clerk"), "{after}");
    scim.expect(M::DELETE, &path, None, etag.as_deref(), StatusCode::PRECONDITION_FAILED).await;
    // userName is permanent.
    let (_, e) =
        scim.expect(M::PUT, &path, Some(json!({"userName": "someone.else"})), None, StatusCode::BAD_REQUEST).await;
    assert_eq!(e["scimType"], "mutability");

    // Entra ID's PATCH: capitalised ops, "False" as a string, value-filter paths.
    let patched = scim
        .patch(
            &path,
            json!([
                {"op": "Replace", "path": "displayName", "value": "Jane A. Smith"},
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "jane.smith@st-marys.example"},
                {"op": "Add", "path": format!("{ENTERPRISE}:department"), "value": "Cardiology"},
                {"op": "Replace", "path": "active", "value": "False"}
            ]),
        )
        .await;
    assert_eq!(patched["active"], false);
    assert_eq!(patched["displayName"], "Jane A. Smith");
    assert_eq!(patched[ENTERPRISE]["department"], "Cardiology");
    let account = h.node.store.user_by_id(&id).await.unwrap().unwrap();
    assert_eq!(account.status, AccountStatus::Disabled);
    assert_eq!(account.email, "jane.smith@st-marys.example");
    // Okta's PATCH: a path-less replace brings the account back.
    let patched = scim.patch(&path, json!([{"op": "replace", "value": {"active": true}}])).await;
    assert_eq!(patched["active"], true);
    assert_eq!(h.node.store.user_by_id(&id).await.unwrap().unwrap().status, AccountStatus::Invited, "no factors yet");
    for (ops, want) in [
        (json!([{"op": "replace", "path": "id", "value": "x"}]), "mutability"),
        (json!([{"op": "remove"}]), "noTarget"),
        (json!([{"op": "replace", "path": "emails[type eq", "value": "x"}]), "invalidPath"),
        (json!([{"op": "replace", "path": "active", "value": "perhaps"}]), "invalidValue"),
    ] {
        let body = json!({"schemas": [PATCH_OP], "Operations": ops});
        let (_, e) = scim.expect(M::PATCH, &path, Some(body), None, StatusCode::BAD_REQUEST).await;
        assert_eq!(e["scimType"], want, "{ops}");
    }

    // Groups: create with a member, find it, rename with PATCH, members show on the user.
    let (_, group) = scim
        .expect(
            M::POST,
            "/Groups",
            Some(json!({"displayName": "ICU Nurses", "members": [{"value": id}]})),
            None,
            StatusCode::CREATED,
        )
        .await;
    let gid = group["id"].as_str().unwrap().to_owned();
    assert_eq!(group["members"][0]["value"], id.as_str());
    scim.expect(M::POST, "/Groups", Some(json!({"displayName": "icu nurses"})), None, StatusCode::CONFLICT).await;
    let (_, e) = scim
        .expect(
            M::POST,
            "/Groups",
            Some(json!({"displayName": "Ghosts", "members": [{"value": "nobody"}]})),
            None,
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert_eq!(e["scimType"], "invalidValue");
    let found = scim.get(&format!("/Groups?filter={}", enc(r#"displayName eq "ICU NURSES""#))).await;
    assert_eq!(count(found.clone()), 1);
    // The list names the members as a single read does.
    assert_eq!(found["Resources"][0]["members"][0]["value"], id.as_str());
    assert_eq!(scim.get(&path).await["groups"][0]["value"], gid.as_str());
    let renamed =
        scim.patch(&format!("/Groups/{gid}"), json!([{"op": "replace", "path": "displayName", "value": "ICU"}])).await;
    assert_eq!(renamed["displayName"], "ICU");
    scim.expect(M::DELETE, &format!("/Groups/{gid}"), None, None, StatusCode::NO_CONTENT).await;
    scim.expect(M::GET, &format!("/Groups/{gid}"), None, None, StatusCode::NOT_FOUND).await;

    // DELETE terminates: gone for SCIM, the username reserved for good.
    scim.expect(M::DELETE, &path, None, None, StatusCode::NO_CONTENT).await;
    scim.expect(M::GET, &path, None, None, StatusCode::NOT_FOUND).await;
    assert_eq!(h.node.store.user_by_id(&id).await.unwrap().unwrap().status, AccountStatus::Terminated);
    let (_, e) = scim
        .expect(M::POST, "/Users", Some(json!({"userName": "jsmith@st-marys.example"})), None, StatusCode::CONFLICT)
        .await;
    assert_eq!(e["scimType"], "uniqueness");

    // Every change is on record with the connector as the actor.
    let records = h.audit().await;
    let by = |t: &str| records.iter().filter(|r| r["type"] == t && r["actor"] == "scim:hr").count();
    assert_eq!(by("admin.user.invited"), 4);
    assert_eq!(by("admin.user.disabled"), 1);
    assert_eq!(by("admin.user.enabled"), 1);
    assert_eq!(by("admin.user.terminated"), 1);
    assert!(by("scim.user.updated") >= 6);
    assert_eq!((by("scim.group.created"), by("scim.group.updated"), by("scim.group.deleted")), (1, 1, 1));
}

/// `/gate/check` as Traefik asks it, for a JSON client: 200 passes.
async fn gate(h: &Harness, cookie: &str) -> StatusCode {
    h.http
        .get(h.url("/gate/check"))
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", APP_HOST)
        .header("x-forwarded-uri", "/results")
        .header("x-forwarded-method", "GET")
        .header("accept", "application/json")
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
}

const POLICY: &str = r#"
[roles.nurse]
permissions = ["ephi.read", "gateway.labs"]

[[rule]]
name = "sign-in"
actions = ["login", "sso"]
require = "aal2"

[[rule]]
name = "labs"
actions = ["gateway.labs"]
require = "aal2"
"#;

#[tokio::test]
async fn deactivation_through_scim_ends_gateway_access_refresh_tokens_and_introspection_at_once() {
    let h = start_with(|s| {
        s.server.trusted_proxies = vec!["127.0.0.1/32".into()];
        s.gateway.cookie_domain = Some("wardgate.test".into());
        s.gateway.routes = vec![GatewayRoute::new("labs", APP_HOST, "/")];
        s.scim.group_roles.insert("ICU Nurses".into(), vec!["nurse".into()]);
    })
    .await;
    let nina_secret = nurse_under_policy(&h, POLICY).await;
    let session = nurse_signs_in(&h, &nina_secret).await;
    let nina = h
        .node
        .store
        .user_by_username(&wardgate_core::identity::Username::parse("nina").unwrap())
        .await
        .unwrap()
        .unwrap();
    let scim = Scim { h: &h, token: token(&h).await };

    // The application asks to be told of logouts (OpenID Connect Back-Channel Logout).
    let logouts = std::sync::Arc::new(tokio::sync::Mutex::new(Vec::<String>::new()));
    let sink = std::sync::Arc::clone(&logouts);
    let bcl = axum::Router::new().route(
        "/bcl",
        axum::routing::post(move |axum::Form(f): axum::Form<std::collections::HashMap<String, String>>| {
            let sink = std::sync::Arc::clone(&sink);
            async move {
                sink.lock().await.push(f.get("logout_token").cloned().unwrap_or_default());
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bcl_uri = format!("http://{}/bcl", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, bcl).await.unwrap() });

    // Nina signs in to it with the code flow: an access and a refresh token.
    let (client, secret) = Clients::new(&*h.node.store, "operator:test", clock())
        .add(NewClient {
            name: "EHR".into(),
            redirect_uris: vec![REDIRECT.into()],
            backchannel_logout_uri: Some(bcl_uri),
            ..Default::default()
        })
        .await
        .unwrap();
    let secret = secret.unwrap();
    let authorize = format!(
        "{}?response_type=code&scope=openid&client_id={}&redirect_uri={REDIRECT}&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
        h.url("/oidc/authorize"),
        client.id
    );
    let resp = h.http.get(&authorize).header("cookie", &session).send().await.unwrap();
    let location = resp.headers().get("location").map(|l| l.to_str().unwrap().to_owned()).unwrap_or_default();
    let code = crate::oidc::query_param(&location, "code").unwrap_or_else(|| panic!("no code in {location:?}"));
    let tokens: Value = h
        .http
        .post(h.url("/oidc/token"))
        .basic_auth(&client.id, Some(&secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().unwrap_or_else(|| panic!("{tokens}")).to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap_or_else(|| panic!("{tokens}")).to_owned();
    let introspect = |t: String| {
        let (h, client, secret) = (&h, client.id.clone(), secret.clone());
        async move {
            let v: Value = h
                .http
                .post(h.url("/oidc/introspect"))
                .basic_auth(&client, Some(&secret))
                .form(&[("token", t.as_str())])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v
        }
    };
    assert_eq!(introspect(access.clone()).await["active"], true);

    // And through the gateway.
    let gate_cookie = gateway_cookie(&h, &session, &format!("https://{APP_HOST}/results")).await;
    assert_eq!(gate(&h, &gate_cookie).await, StatusCode::OK);

    // HR puts Nina in "ICU Nurses" (which owns the nurse role), then takes her out: the
    // role, and the gateway route that needs it, go with the response.
    let (_, group) = scim
        .expect(
            reqwest::Method::POST,
            "/Groups",
            Some(json!({"displayName": "ICU Nurses", "members": [{"value": nina.id}]})),
            None,
            StatusCode::CREATED,
        )
        .await;
    let gid = group["id"].as_str().unwrap().to_owned();
    assert_eq!(gate(&h, &gate_cookie).await, StatusCode::OK);
    scim.patch(&format!("/Groups/{gid}"), json!([{"op": "Remove", "path": "members", "value": [{"value": nina.id}]}]))
        .await;
    let roles = h.node.store.user_by_id(&nina.id).await.unwrap().unwrap().roles;
    assert!(roles.is_empty(), "{roles:?}");
    assert_eq!(gate(&h, &gate_cookie).await, StatusCode::FORBIDDEN, "the role is gone at once");
    scim.patch(&format!("/Groups/{gid}"), json!([{"op": "add", "path": "members", "value": [{"value": nina.id}]}]))
        .await;
    assert_eq!(gate(&h, &gate_cookie).await, StatusCode::OK);

    // HR deactivates Nina, as Entra ID sends it.
    let user = scim
        .patch(&format!("/Users/{}", nina.id), json!([{"op": "Replace", "path": "active", "value": "False"}]))
        .await;
    assert_eq!(user["active"], false);

    // Immediately: no gateway, no refresh, and introspection says inactive.
    assert_eq!(gate(&h, &gate_cookie).await, StatusCode::UNAUTHORIZED);
    let refreshed = h
        .http
        .post(h.url("/oidc/token"))
        .basic_auth(&client.id, Some(&secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(refreshed.json::<Value>().await.unwrap()["error"], "invalid_grant");
    assert_eq!(introspect(access).await, json!({"active": false}));
    assert_eq!(introspect(refresh).await, json!({"active": false}));
    let me = h.http.get(h.url("/api/v1/me")).header("cookie", &session).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED, "the session itself is over");

    // The running server delivers the back-channel logout notice (waited for, not timed).
    let start = std::time::Instant::now();
    while logouts.lock().await.is_empty() {
        assert!(start.elapsed() < std::time::Duration::from_secs(60), "no back-channel logout notice");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(!logouts.lock().await[0].is_empty(), "a logout token");

    // The record: the connector removed the role and disabled the account; the grant went
    // with the session. (h.audit() verifies the hash chain on the way.)
    let records = h.audit().await;
    let find = |t: &str| records.iter().filter(|r| r["type"] == t).cloned().collect::<Vec<_>>();
    let changes = find("scim.roles.changed");
    assert!(changes.iter().any(|r| r["details"]["removed"] == "nurse" && r["actor"] == "scim:hr"), "{changes:#?}");
    let disabled = find("admin.user.disabled");
    assert_eq!(disabled.len(), 1);
    assert_eq!((disabled[0]["actor"].as_str(), disabled[0]["subject"].as_str()), (Some("scim:hr"), Some("nina")));
    assert!(find("oidc.grant.revoked").iter().any(|r| r["subject"] == "nina" && r["actor"] == "scim:hr"));
}
