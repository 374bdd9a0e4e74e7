//! Per-client rate limits (capability R5) for endpoints that cost the server real work or
//! invite guessing.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::problem::Problem;

/// A keyed limiter: each client address has its own bucket.
#[derive(Clone)]
pub struct Limit {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

impl Limit {
    /// `per_minute` requests a minute on average, in bursts of up to `burst`.
    pub fn per_minute(per_minute: u32, burst: u32) -> Self {
        let rate = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Self { limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst))) }
    }

    /// `Err` when `client` is over its limit. Requests whose address is unknown share one
    /// bucket rather than escape the limit.
    pub fn check(&self, client: Option<IpAddr>) -> Result<(), RateLimited> {
        let key = client.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        self.limiter.check_key(&key).map_err(|not_until| RateLimited {
            retry_after_secs: not_until.wait_time_from(DefaultClock::default().now()).as_secs().max(1),
        })
    }

    /// Forgets buckets that are full again, so memory does not grow with every address seen.
    pub fn shrink(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// A refusal: a 429 problem document with `Retry-After`.
#[derive(Debug)]
pub struct RateLimited {
    pub retry_after_secs: u64,
}

impl IntoResponse for RateLimited {
    fn into_response(self) -> Response {
        let wait = self.retry_after_secs;
        let mut resp = Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Too many requests")
            .detail(format!("try again in {wait} s"))
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_has_its_own_bucket() {
        let l = Limit::per_minute(1, 2);
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        assert!(l.check(a).is_ok());
        assert!(l.check(a).is_ok());
        let refused = l.check(a).unwrap_err().into_response();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.headers().contains_key(header::RETRY_AFTER));
        assert!(l.check(b).is_ok());
    }
}
