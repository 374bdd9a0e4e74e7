//! Wardgate's HTTP layer and node runtime: routes, pages, TLS, metrics, problem documents,
//! and the wiring that turns settings into a running node.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod access;
pub mod accounts;
pub mod api;
pub mod app;
pub mod auth;
mod bootstrap;
pub mod clients;
pub mod context;
pub mod datadir;
pub mod devices;
mod envelope;
pub mod gateway;
pub mod governance;
pub mod installation;
pub mod lifecycle;
pub mod node;
pub mod oidc;
mod ops;
pub mod pages;
pub mod policies;
pub mod problem;
pub mod ratelimit;
pub mod roles;
pub mod scim;
mod serve;
pub mod telemetry;
pub mod tls;

pub use installation::{Installation, InstallationError, OpenMode};
pub use node::{Node, NodeError};
