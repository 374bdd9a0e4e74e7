//! A running node: opens the installation, starts the audit writer and the listener, and
//! shuts everything down in order (stop accepting, drain requests, flush the audit log).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::oneshot;
use wardgate_core::audit::checkpoint::CheckpointPolicy;
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::settings::{Problem as ConfigProblem, Settings};
use wardgate_store::audit_writer::{AuditWriter, AuditWriterConfig};
use wardgate_store::{Store, StoreError};

use crate::app::{AppState, RouterOptions, router};
use crate::context::TrustedProxies;
use crate::installation::{Installation, InstallationError, OpenMode};
use crate::tls::{self, TlsError};

/// Bootstrap links expire a day after they are issued.
pub const BOOTSTRAP_TTL: time::Duration = time::Duration::hours(24);

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("configuration is not valid: {}", .0.iter().map(|p| format!("{}: {}", p.key, p.message)).collect::<Vec<_>>().join("; "))]
    Config(Vec<ConfigProblem>),
    #[error(transparent)]
    Installation(#[from] InstallationError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("audit log write failed at start-up: {0}")]
    Audit(String),
    #[error("authentication set-up failed: {0}")]
    Auth(String),
    #[error("the built-in proxy cannot start: {0}")]
    Proxy(String),
}

/// A started node. Call [`Node::stop`] for an orderly shutdown.
pub struct Node {
    pub addr: SocketAddr,
    pub base_url: String,
    /// Printed once: the store keeps only its digest.
    pub bootstrap_url: Option<String>,
    /// An unused link from an earlier start is still valid (its token cannot be shown again).
    pub bootstrap_pending: bool,
    pub dev_cert: Option<std::path::PathBuf>,
    pub store: Arc<dyn Store>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

pub fn system_clock() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

impl Node {
    pub async fn start(settings: Settings) -> Result<Self, NodeError> {
        Self::start_with_clock(settings, system_clock).await
    }

    pub async fn start_with_clock(settings: Settings, clock: fn() -> OffsetDateTime) -> Result<Self, NodeError> {
        let problems = settings.validate();
        if !problems.is_empty() {
            return Err(NodeError::Config(problems));
        }
        crate::telemetry::recorder();
        let tls = if settings.server.dev_tls {
            let (acceptor, cert) = tls::dev_acceptor(&settings.data_dir)?;
            Some((acceptor, Some(cert)))
        } else if let (Some(cert), Some(key)) = (&settings.server.tls_cert, &settings.server.tls_key) {
            Some((tls::acceptor_from_pem(cert, key)?, None))
        } else {
            None
        };
        let inst = Installation::open(settings.clone(), OpenMode::Create).await?;
        let now = clock();
        let signer = Arc::new(inst.checkpoint_signer(now).await?);
        let (writer, audit) = AuditWriter::spawn(
            Arc::clone(&inst.store),
            signer,
            AuditWriterConfig {
                max_batch: settings.audit.max_batch as usize,
                checkpoints: CheckpointPolicy {
                    every: settings.audit.checkpoint_every as i64,
                    interval: time::Duration::seconds(settings.audit.checkpoint_interval_secs as i64),
                },
                clock,
            },
        );
        let head = inst.store.audit_head().await?;
        metrics::gauge!("wardgate_audit_chain_length").set(head.seq as f64);

        let listener = tokio::net::TcpListener::bind(&settings.server.listen)
            .await
            .map_err(|source| NodeError::Bind { addr: settings.server.listen.clone(), source })?;
        let addr =
            listener.local_addr().map_err(|source| NodeError::Bind { addr: settings.server.listen.clone(), source })?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base_url = settings
            .public_url
            .clone()
            .map(|u| u.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("{scheme}://{addr}"));

        audit
            .append(
                AuditEvent::known(now, types::SYSTEM_STARTED, Outcome::Success)
                    .actor(format!("node:{}", inst.node_id))
                    .detail("version", env!("CARGO_PKG_VERSION"))
                    .detail("listen", addr.to_string())
                    .detail("store", inst.store.backend()),
            )
            .await
            .map_err(|e| NodeError::Audit(e.to_string()))?;

        let (bootstrap_url, bootstrap_pending) =
            issue_bootstrap_if_needed(&*inst.store, &base_url, now, &inst.node_id).await?;

        let auth =
            Arc::new(crate::auth::Auth::new(&settings.auth, &base_url).map_err(|e| NodeError::Auth(e.to_string()))?);
        let oidc_keys = crate::oidc::keys::load_or_create(
            &*inst.store,
            &inst.keyring.get(),
            now,
            &format!("node:{}", inst.node_id),
        )
        .await
        .map_err(|e| NodeError::Auth(e.to_string()))?;
        let oidc = Arc::new(crate::oidc::Provider::new(base_url.clone(), oidc_keys, &settings.oidc));
        let access = Arc::new(crate::access::Access::default());
        access.reload(&*inst.store).await.map_err(NodeError::Store)?;
        let gateway = Arc::new(crate::gateway::Gateway::new(&settings.gateway, &base_url));
        let proxy = crate::gateway::proxy::Proxy::new(&gateway, &base_url).map_err(NodeError::Proxy)?.map(Arc::new);
        let governance = Arc::new(settings.governance.clone());
        let state = AppState::new(crate::app::Shared {
            store: Arc::clone(&inst.store),
            audit: audit.clone(),
            keyring: Arc::clone(&inst.keyring),
            node_id: inst.node_id.clone(),
            clock,
            bootstrap_limit: crate::ratelimit::Limit::per_minute(10, 5),
            login_limit: crate::ratelimit::Limit::per_minute(
                settings.auth.source_attempts_per_minute as u32,
                (settings.auth.source_attempts_per_minute / 4).max(10) as u32,
            ),
            auth,
            base_url: base_url.clone(),
            oidc,
            access,
            gateway: Arc::clone(&gateway),
            governance: Arc::clone(&governance),
            scim: Arc::new(settings.scim.clone()),
            scim_limit: crate::ratelimit::Limit::per_minute(6000, 600),
        });
        let deliverer_state = state.clone();
        let limits = state.bootstrap_limit.clone();
        let login_limits = state.login_limit.clone();
        let scim_limits = state.scim_limit.clone();
        let purge_store = Arc::clone(&inst.store);
        let oidc_reload = Arc::clone(&state.oidc);
        let access_reload = Arc::clone(&state.access);
        let oidc_keyring = Arc::clone(&inst.keyring);
        let oidc_node = format!("node:{}", inst.node_id);
        let governance = Arc::clone(&state.governance);
        let app = router(
            state,
            RouterOptions {
                max_body_bytes: settings.server.max_body_bytes as usize,
                request_timeout: Duration::from_secs(settings.server.request_timeout_secs),
                trusted_proxies: TrustedProxies(settings.trusted_proxy_nets().into()),
                tls: tls.is_some() || settings.server.behind_proxy,
                proxy,
            },
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let keyring = Arc::clone(&inst.keyring);
        let node_id = inst.node_id.clone();
        let store = Arc::clone(&inst.store);
        let acceptor = tls.as_ref().map(|(a, _)| a.clone());
        let task = tokio::spawn(async move {
            // Back-channel logout tokens owed by sessions ended anywhere, and the sweep for
            // sessions that expired unobserved.
            let deliverer = tokio::spawn(crate::oidc::backchannel::run(deliverer_state));
            // Key rotation by the CLI rewrites the key file; pick it up within a second.
            let reload = tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                let mut seen_revision = purge_store.revision().await.unwrap_or_default();
                for second in 0u64.. {
                    tick.tick().await;
                    // Clients and signing keys changed by the CLI or another node: the
                    // cached clients go within a second (a rotated secret or a deleted
                    // client stops working), keys are reloaded.
                    if let Ok(rev) = purge_store.revision().await
                        && rev != seen_revision
                    {
                        seen_revision = rev;
                        oidc_reload.forget_clients();
                        if let Err(e) = access_reload.reload(&*purge_store).await {
                            tracing::error!(error = %e, "could not reload the access policy");
                        }
                        match crate::oidc::keys::load_or_create(&*purge_store, &oidc_keyring.get(), clock(), &oidc_node)
                            .await
                        {
                            Ok(keys) => oidc_reload.replace_keys(keys),
                            Err(e) => tracing::error!(error = %e, "could not reload token-signing keys"),
                        }
                    }
                    // Expired and dormant accounts, access reviews past their deadline,
                    // overdue break-glass reviews: soon after start, then every minute.
                    if second % 60 == 5 {
                        match crate::governance::sweep::run(&*purge_store, &governance, &oidc_node, clock()).await {
                            Ok(n) if n.expired + n.dormant + n.campaigns_closed > 0 => {
                                tracing::info!(?n, "governance sweep")
                            }
                            Ok(_) => {}
                            Err(e) => tracing::error!(error = %e, "governance sweep failed"),
                        }
                    }
                    if second % 60 == 59 {
                        limits.shrink();
                        login_limits.shrink();
                        scim_limits.shrink();
                        // Abandoned logins and enrollments; their handles are useless anyway.
                        if let Err(e) = purge_store.purge_expired_flows(clock()).await {
                            tracing::warn!(error = %e, "could not purge expired flows");
                        }
                    }
                    // Revoked grants, spent codes and tokens, logout notices done with: a
                    // few minutes after start, then hourly.
                    if second % 3600 == 120 {
                        match purge_store.purge_oidc_history(clock() - crate::oidc::HISTORY_KEPT).await {
                            Ok(n) => tracing::debug!(?n, "purged OpenID Connect history"),
                            Err(e) => tracing::warn!(error = %e, "could not purge OpenID Connect history"),
                        }
                    }
                    match keyring.reload_if_changed() {
                        Ok(true) => tracing::info!("key file changed; reloaded key-encryption keys"),
                        Ok(false) => {}
                        Err(e) => {
                            tracing::error!(error = %e, "key file changed but cannot be read; keeping the keys in memory")
                        }
                    }
                }
            });
            crate::serve::serve(listener, app, acceptor, async {
                let _ = stopped.await;
            })
            .await;
            reload.abort();
            deliverer.abort();
            let bye =
                AuditEvent::known(clock(), types::SYSTEM_STOPPED, Outcome::Success).actor(format!("node:{node_id}"));
            if let Err(e) = audit.append(bye).await {
                tracing::error!(error = %e, "could not record node stop");
            }
            drop(audit);
            writer.close().await;
        });
        Ok(Self {
            addr,
            base_url,
            bootstrap_url,
            bootstrap_pending,
            dev_cert: tls.and_then(|(_, c)| c),
            store,
            stop,
            task,
        })
    }

    /// Stops accepting, finishes in-flight requests, flushes the audit log and signs a
    /// final checkpoint.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

async fn issue_bootstrap_if_needed(
    store: &dyn Store,
    base_url: &str,
    now: OffsetDateTime,
    node_id: &str,
) -> Result<(Option<String>, bool), NodeError> {
    if store.count_admins().await? > 0 {
        return Ok((None, false));
    }
    if store.bootstrap_pending(now).await? {
        return Ok((None, true));
    }
    let (url, _) = issue_bootstrap(store, base_url, now, &format!("node:{node_id}")).await?;
    Ok((Some(url), false))
}

/// Issues a fresh one-time link (replacing any earlier one) and returns it with its expiry.
pub async fn issue_bootstrap(
    store: &dyn Store,
    base_url: &str,
    now: OffsetDateTime,
    actor: &str,
) -> Result<(String, OffsetDateTime), StoreError> {
    let token = wardgate_core::token::generate().map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let expires = now + BOOTSTRAP_TTL;
    let event = AuditEvent::known(now, types::ADMIN_BOOTSTRAP_ISSUED, Outcome::Success)
        .actor(actor)
        .detail("expires_at", wardgate_core::audit::record::format_ts(expires));
    store.issue_bootstrap(&wardgate_core::token::digest(&token), expires, &event).await?;
    Ok((format!("{base_url}/bootstrap?token={token}"), expires))
}
