//! What every response from Wardgate itself carries, and what every request is given on
//! the way in: a request id, the trusted proxies, a problem document for bare errors and
//! the security headers.
//!
//! One service around the whole router rather than a stack of middleware functions on
//! every route: those are cloned and boxed again for each request, which under
//! forward-auth load was a large share of the server's time.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Response;
use tower::{Layer, Service};

use crate::context::{RequestId, TrustedProxies};

/// No scripts, no frames, no third parties; forms post only to us.
/// The one script is ours, for WebAuthn; it talks only to us.
pub const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const HSTS: HeaderValue = HeaderValue::from_static("max-age=63072000; includeSubDomains");

#[derive(Clone)]
pub struct EnvelopeLayer {
    proxies: TrustedProxies,
    /// Adds HSTS; set when this server or its proxy terminates TLS.
    tls: bool,
}

impl EnvelopeLayer {
    pub fn new(proxies: TrustedProxies, tls: bool) -> Self {
        Self { proxies, tls }
    }
}

impl<S> Layer<S> for EnvelopeLayer {
    type Service = Envelope<S>;

    fn layer(&self, inner: S) -> Envelope<S> {
        Envelope { inner, proxies: self.proxies.clone(), tls: self.tls }
    }
}

#[derive(Clone)]
pub struct Envelope<S> {
    inner: S,
    proxies: TrustedProxies,
    tls: bool,
}

impl<S> Service<Request> for Envelope<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Finishing<S::Future, Enveloping>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let id = request_id();
        let id_header = HeaderValue::from_str(&id).ok();
        req.extensions_mut().insert(RequestId(id));
        req.extensions_mut().insert(self.proxies.clone());
        Finishing::new(self.inner.call(req), Enveloping { id: id_header, tls: self.tls })
    }
}

/// Random bytes from the operating system, drawn 256 request ids at a time: a system call
/// for each of many thousand requests a second was a measurable share of a small one's cost.
const ID_POOL: usize = 16 * 256;

thread_local! {
    static ID_BYTES: std::cell::RefCell<([u8; ID_POOL], usize)> = const { std::cell::RefCell::new(([0; ID_POOL], ID_POOL)) };
}

/// 128 random bits in hex, unique per request (as [`wardgate_core::token::random_id`], but
/// without a system call each time).
fn request_id() -> String {
    ID_BYTES.with_borrow_mut(|(pool, used)| {
        if *used == ID_POOL {
            if getrandom::fill(pool).is_err() {
                return "unavailable".to_owned();
            }
            *used = 0;
        }
        let id = hex::encode(&pool[*used..*used + 16]);
        *used += 16;
        id
    })
}

/// What a layer does to the response once its inner service has answered, with what it
/// kept from the request.
pub(crate) trait Finish {
    fn finish(self, resp: Response) -> Response;
}

pin_project_lite::pin_project! {
    /// The inner service's future, then [`Finish`].
    pub struct Finishing<F, T> {
        #[pin]
        inner: F,
        then: Option<T>,
    }
}

impl<F, T> Finishing<F, T> {
    pub(crate) fn new(inner: F, then: T) -> Self {
        Self { inner, then: Some(then) }
    }
}

impl<F, T> Future for Finishing<F, T>
where
    F: Future<Output = Result<Response, Infallible>>,
    T: Finish,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(resp) = std::task::ready!(this.inner.poll(cx));
        Poll::Ready(Ok(match this.then.take() {
            Some(then) => then.finish(resp),
            None => resp,
        }))
    }
}

/// What the envelope kept from the request.
pub struct Enveloping {
    id: Option<HeaderValue>,
    tls: bool,
}

impl Finish for Enveloping {
    fn finish(self, resp: Response) -> Response {
        let mut resp = crate::problem::with_problem_body(resp);
        let h = resp.headers_mut();
        if let Some(id) = self.id {
            h.insert("x-request-id", id);
        }
        // The form-post response sets its own CSP, naming the client's origin.
        h.entry(header::CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static(CSP));
        h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
        h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin"));
        if self.tls {
            h.insert(header::STRICT_TRANSPORT_SECURITY, HSTS);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids stay distinct and well-formed across refills of the pool.
    #[test]
    fn request_ids_are_128_random_bits_in_hex_and_never_repeat() {
        let ids: std::collections::HashSet<String> = (0..3 * ID_POOL / 16 + 5).map(|_| request_id()).collect();
        assert_eq!(ids.len(), 3 * ID_POOL / 16 + 5);
        assert!(ids.iter().all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())));
    }
}
