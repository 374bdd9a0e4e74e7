//! The server's integration tests, in one binary (linking is the slow part of a build on
//! two cores). Each module starts real servers on ephemeral ports.

mod browser;
mod http;
mod login;
mod openapi;

/// An error answer: asserts it is an RFC 9457 problem document and returns its status and body.
async fn problem(resp: reqwest::Response) -> (reqwest::StatusCode, serde_json::Value) {
    let status = resp.status();
    assert_eq!(resp.headers()["content-type"], "application/problem+json", "status {status}");
    (status, resp.json().await.unwrap())
}
