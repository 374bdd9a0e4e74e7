//! The gateway for applications that cannot do MFA themselves (I3): forward-auth for a
//! proxy the hospital already runs (`GET /gate/check`), and the sign-in hand-off that gives
//! the browser a gateway cookie for the protected hosts (`GET /gate/start`).
//!
//! A protected application is a route (host and path prefix); whether a person may use
//! it is the access policy's action `gateway.<route>` with the path as resource, so the
//! same rules — roles, network, device, assurance — decide here as everywhere else.

pub mod check;
pub mod decide;
pub mod proxy;
pub mod return_url;
pub mod start;

use wardgate_core::settings::{GatewayRoute, GatewaySettings};

/// The gateway cookie: set for the parent domain of the protected hosts, so it cannot be
/// a `__Host-` cookie; `__Secure-` still makes browsers refuse it over plain HTTP.
pub const GATE_COOKIE: &str = "__Secure-wardgate-gate";

/// The gateway's configuration, checked at start.
#[derive(Debug, Clone, Default)]
pub struct Gateway {
    pub cookie_domain: Option<String>,
    pub return_domains: Vec<String>,
    pub routes: Vec<GatewayRoute>,
    /// The installation itself is served over plain HTTP (development, tests): return URLs
    /// may then be `http://` too.
    pub allow_http: bool,
}

impl Gateway {
    pub fn new(settings: &GatewaySettings, base_url: &str) -> Self {
        Self {
            cookie_domain: settings.cookie_domain.clone(),
            return_domains: settings.return_domains(),
            routes: settings.routes.clone(),
            allow_http: base_url.starts_with("http://"),
        }
    }

    /// The route for a host and path: the longest path prefix among the host's routes,
    /// matched on whole path segments (`/lab` covers `/lab` and `/lab/x`, not `/labs`).
    pub fn route(&self, host: &str, path: &str) -> Option<&GatewayRoute> {
        self.routes
            .iter()
            .filter(|r| r.host.eq_ignore_ascii_case(host))
            .filter(|r| {
                let p = r.path_prefix.as_str();
                path.starts_with(p) && (p.ends_with('/') || path.len() == p.len() || path[p.len()..].starts_with('/'))
            })
            .max_by_key(|r| r.path_prefix.len())
    }

    /// The policy action a route stands for.
    pub fn action(route: &GatewayRoute) -> String {
        format!("gateway.{}", route.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, host: &str, prefix: &str) -> GatewayRoute {
        GatewayRoute::new(name, host, prefix)
    }

    #[test]
    fn the_longest_prefix_on_whole_segments_wins() {
        let g = Gateway {
            routes: vec![route("all", "labs.example.org", "/"), route("admin", "labs.example.org", "/admin")],
            ..Gateway::default()
        };
        let name = |h: &str, p: &str| g.route(h, p).map(|r| r.name.as_str());
        assert_eq!(name("labs.example.org", "/results"), Some("all"));
        assert_eq!(name("LABS.example.org", "/admin/users"), Some("admin"));
        assert_eq!(name("labs.example.org", "/admin"), Some("admin"));
        assert_eq!(name("labs.example.org", "/administrator"), Some("all"));
        assert_eq!(name("other.example.org", "/"), None);
    }
}
