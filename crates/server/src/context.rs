//! Who is asking, from where: the request facts that go into audit records.

use std::net::{IpAddr, SocketAddr};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use ipnet::IpNet;

/// The TCP peer, attached to every request by the connection loop.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// The correlation id of this request, also returned as `X-Request-Id`.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

#[derive(Debug, Clone)]
pub struct ClientContext {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub request_id: String,
    /// The `Wardgate-Device` header: a registered workstation's secret, if it sent one.
    pub device_secret: Option<String>,
}

/// Proxies whose `X-Forwarded-For` is believed.
/// Shared, because every request carries it.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub std::sync::Arc<[IpNet]>);

impl TrustedProxies {
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client address: the peer, unless the peer is a trusted proxy, in which case the
    /// right-most `X-Forwarded-For` entry that is not itself a trusted proxy. Entries left
    /// of that were supplied by the client and prove nothing.
    pub fn client_ip(&self, peer: Option<IpAddr>, xff: Option<&str>) -> Option<IpAddr> {
        let peer = peer?;
        if !self.trusts(peer) {
            return Some(peer);
        }
        let Some(xff) = xff else { return Some(peer) };
        let mut last = peer;
        for hop in xff.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) if self.trusts(ip) => last = ip,
                Ok(ip) => return Some(ip),
                Err(_) => return Some(last),
            }
        }
        Some(last)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<PeerAddr>().map(|p| p.0.ip());
        let proxies = parts.extensions.get::<TrustedProxies>().cloned().unwrap_or_default();
        let xff = parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
        Ok(Self {
            ip: proxies.client_ip(peer, xff),
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(256).collect()),
            request_id: parts.extensions.get::<RequestId>().map(|r| r.0.clone()).unwrap_or_default(),
            device_secret: parts
                .headers
                .get(crate::access::context::DEVICE_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty() && s.len() <= 128),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let t = TrustedProxies(vec!["10.0.0.0/8".parse().unwrap()].into());
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(t.client_ip(ip("192.0.2.9"), Some("1.2.3.4")), ip("192.0.2.9"));
        assert_eq!(t.client_ip(ip("10.0.0.1"), Some("1.2.3.4")), ip("1.2.3.4"));
        // A client-supplied left-most entry is ignored in favour of what the proxy saw.
        assert_eq!(t.client_ip(ip("10.0.0.1"), Some("6.6.6.6, 198.51.100.7, 10.0.0.2")), ip("198.51.100.7"));
        assert_eq!(t.client_ip(ip("10.0.0.1"), None), ip("10.0.0.1"));
        assert_eq!(t.client_ip(ip("10.0.0.1"), Some("garbage")), ip("10.0.0.1"));
    }
}
