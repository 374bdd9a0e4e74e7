//! The server's integration tests, in one binary (linking is the slow part of a build on
//! two cores). Each module starts real servers on ephemeral ports.

mod backchannel;
mod browser;
mod gateway;
mod governance;
mod http;
mod lifecycle;
mod login;
mod oidc;
mod openapi;
mod policy;
mod proxy;
mod scim;

/// An error answer: asserts it is an RFC 9457 problem document and returns its status and body.
async fn problem(resp: reqwest::Response) -> (reqwest::StatusCode, serde_json::Value) {
    let status = resp.status();
    assert_eq!(resp.headers()["content-type"], "application/problem+json", "status {status}");
    (status, resp.json().await.unwrap())
}

/// A client that does not follow redirects (the tests look at them). reqwest is built with
/// TLS but no crypto provider for the interoperability test; install ring's first.
fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}
