//! Where a person may be sent back to after signing in for a protected application.
//!
//! Only absolute URLs to the configured domains pass; everything an attacker could use to
//! bounce a signed-in person elsewhere is refused rather than repaired: other hosts,
//! scheme-relative and relative URLs, user info, backslashes, control characters, and
//! hosts that only look like an allowed one once decoded or folded.

use url::Url;

/// The checked URL, normalised (host lowercased and punycoded, path percent-encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnUrl(String);

impl ReturnUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `domains` holds host names (`ehr.example.org`) and domains (`.example.org`, which also
/// matches `example.org`). `allow_http` is for installations that serve plain HTTP
/// (development, tests); otherwise only `https` passes.
pub fn check(raw: &str, domains: &[String], allow_http: bool) -> Option<ReturnUrl> {
    // Refused before parsing: a URL parser "repairs" these into something else, and
    // browsers do not all repair them the same way.
    if raw.is_empty()
        || raw.len() > 2048
        || raw.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\')
        || !(raw.starts_with("https://") || (allow_http && raw.starts_with("http://")))
    {
        return None;
    }
    let url = Url::parse(raw).ok()?;
    if !(url.scheme() == "https" || (allow_http && url.scheme() == "http")) {
        return None;
    }
    if !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    // A domain name, not an address: return domains are configured by name.
    let Some(url::Host::Domain(host)) = url.host() else { return None };
    let host = host.to_ascii_lowercase();
    let allowed = domains.iter().any(|d| match d.strip_prefix('.') {
        Some(domain) => host == domain || host.ends_with(&format!(".{domain}")),
        None => host == *d,
    });
    allowed.then(|| ReturnUrl(url.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domains() -> Vec<String> {
        vec![".example.org".into(), "ehr.hospital.test".into()]
    }

    #[test]
    fn urls_to_the_configured_domains_pass_normalised() {
        for (raw, want) in [
            ("https://labs.example.org/results?id=7", "https://labs.example.org/results?id=7"),
            ("https://example.org/", "https://example.org/"),
            ("https://LABS.Example.ORG/a%20b", "https://labs.example.org/a%20b"),
            ("https://ehr.hospital.test:8443/x", "https://ehr.hospital.test:8443/x"),
        ] {
            assert_eq!(check(raw, &domains(), false).map(|u| u.0), Some(want.to_owned()), "{raw}");
        }
    }

    #[test]
    fn open_redirect_tricks_are_refused() {
        for raw in [
            // Other hosts, and hosts that merely contain an allowed name.
            "https://evil.test/",
            "https://example.org.evil.test/",
            "https://evilexample.org/",
            "https://hospital.test/",
            "https://x.ehr.hospital.test/",
            // Scheme-relative, relative, and other schemes.
            "//evil.test/",
            "/local/path",
            "labs.example.org/x",
            "javascript:alert(1)//labs.example.org",
            "data:text/html,<script>",
            "ftp://labs.example.org/",
            "http://labs.example.org/",
            "https:labs.example.org",
            "https:/labs.example.org/",
            // User info that hides the real host, and its encoded forms.
            "https://labs.example.org@evil.test/",
            "https://evil.test%2F@labs.example.org/",
            "https://labs.example.org%40evil.test/",
            "https://user:pass@labs.example.org/",
            // Backslashes, which browsers treat as slashes.
            "https://evil.test\\@labs.example.org/",
            "https://labs.example.org\\.evil.test/",
            "/\\evil.test",
            // Encoded and folded hosts.
            "https://%65vil.test/",
            "https://evil%2etest/",
            "https://labs.example.org%2eevil.test/",
            "https://labs.ex\u{0430}mple.org/",
            // Control characters and whitespace (header splitting, parser confusion).
            "https://labs.example.org/\r\nSet-Cookie: x=1",
            "https://labs.example.org/\t",
            " https://labs.example.org/",
            // Addresses rather than names.
            "https://127.0.0.1/",
            "https://[::1]/",
            "",
        ] {
            assert_eq!(check(raw, &domains(), false), None, "{raw:?} must be refused");
        }
    }

    #[test]
    fn plain_http_only_when_the_installation_itself_is_plain() {
        assert!(check("http://labs.example.org/", &domains(), true).is_some());
        assert!(check("http://labs.example.org/", &domains(), false).is_none());
    }
}
