//! OpenID Connect provider domain (capability I1): clients, authorization codes, grants
//! with rotating refresh tokens, signing keys, PKCE, the `acr` values that name assurance
//! levels, and back-channel logout notices with their retry schedule. Protocol handling
//! over HTTP lives in the server crate.

pub mod acr;
pub mod client;
pub mod grant;
pub mod notice;
pub mod pkce;

pub use acr::Acr;
pub use client::{ClientError, OidcClient};
pub use grant::{AuthCode, Consent, Grant, OidcKey, RefreshToken};
pub use notice::LogoutNotice;
