//! Enrollment through a one-time link: a passphrase, then at least one second factor (an
//! authenticator app or a security key / passkey), then recovery codes — nobody leaves with
//! a single factor. Nothing is stored on the account until the last step, which writes every
//! factor, activates the account and spends the link in one transaction.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, Outcome};
use wardgate_core::factors::{recovery_codes, totp};
use wardgate_core::flow::{ENROLLMENT_TTL, Flow, FlowKind};
use wardgate_core::identity::{AccountStatus, Factor, FactorKind, User};
use wardgate_core::lifecycle::EnrolledBy;
use wardgate_core::login::{FactorUsed, Identified};
use wardgate_core::session::Session;
use wardgate_core::{passphrase, token};
use wardgate_store::StoreError;
use webauthn_rs::prelude::{CreationChallengeResponse, PasskeyRegistration, RegisterPublicKeyCredential};
use zeroize::Zeroizing;

use super::login::SignedIn;
use super::webauthn as wa;
use crate::app::AppState;
use crate::context::ClientContext;

#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("this enrollment link is invalid, used or expired; ask the help desk for a new one")]
    Link,
    #[error("this enrollment has expired; open your enrollment link again")]
    Expired,
    #[error("{0}")]
    Passphrase(#[from] passphrase::PassphraseError),
    #[error("the two passphrases differ")]
    Mismatch,
    #[error("the code is not correct; check the time on your phone and try the current code")]
    WrongCode,
    #[error("{0}")]
    Malformed(String),
    #[error("this security key model is not allowed for your role; use one your organisation issued")]
    ModelRefused,
    #[error("the security key could not be registered: {0}")]
    Webauthn(String),
    #[error(
        "security keys and passkeys are not available on this server (its public_url has no domain name); use an authenticator app"
    )]
    NoWebauthn,
    #[error("this step is not expected now: {0}")]
    OutOfOrder(&'static str),
    #[error("the enrollment cannot be completed now")]
    Unavailable,
    /// L1: a role the person holds requires their identity to be proofed first.
    #[error(
        "your role {0} requires the help desk to verify your identity (with a photo ID) before you add an authenticator app or security key; nothing was saved"
    )]
    ProofingRequired(String),
    #[error("this recovery link is invalid, already used or expired; call the help desk for a new one")]
    RecoveryLink,
}

impl From<StoreError> for EnrollError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "enrollment: store failed");
        EnrollError::Unavailable
    }
}

/// A second factor proven during enrollment, waiting to be stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Proven {
    factor_id: String,
    kind: FactorKind,
    label: String,
    sealed: String,
    params: serde_json::Value,
    counter: Option<i64>,
    credential_id: Option<String>,
    used: FactorUsed,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct EnrollState {
    correlation_id: String,
    link_digest: String,
    /// Argon2id hash of the chosen passphrase (a PHC string, not the passphrase).
    passphrase_phc: Option<String>,
    /// The account already has a passphrase (the first administrator chose it on the
    /// bootstrap page).
    has_passphrase: bool,
    /// An authenticator-app secret shown but not yet confirmed by a code.
    totp_pending: Option<Proven>,
    webauthn_pending: Option<serde_json::Value>,
    second: Vec<Proven>,
    /// The help-desk recovery request whose link opened this flow (L3).
    #[serde(default)]
    recovery_id: Option<String>,
}

impl Proven {
    /// The factor to store, enrolled by `by` at `now`.
    fn factor(&self, user_id: &str, by: EnrolledBy, now: OffsetDateTime) -> Factor {
        let mut f =
            Factor::new(self.factor_id.clone(), user_id.to_owned(), self.kind, &self.label, self.sealed.clone(), now);
        f.params = self.params.clone();
        f.counter = self.counter;
        f.credential_id = self.credential_id.clone();
        f.enrolled_by = Some(by.to_string());
        f
    }
}

/// What the pages and the API show at each point.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub flow: String,
    pub username: String,
    pub display_name: String,
    pub passphrase_set: bool,
    pub second_factors: Vec<String>,
    pub can_finish: bool,
    /// Adding a factor to an active account (from the account page), not enrolling.
    pub adding: bool,
    /// Enrolling one replacement factor through a help-desk recovery link.
    pub recovering: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct TotpSetup {
    pub otpauth_uri: String,
    /// For apps that cannot scan: the secret in base32.
    pub secret: String,
    pub qr_svg: String,
}

pub struct Finished {
    pub signed_in: SignedIn,
    /// Shown once, never again.
    pub recovery_codes: Vec<Zeroizing<String>>,
}

struct Loaded {
    flow: Flow,
    st: EnrollState,
    user: User,
}

fn now(app: &AppState) -> OffsetDateTime {
    (app.clock)()
}

fn event(app: &AppState, ctx: &ClientContext, t: &'static str, outcome: Outcome, l: &Loaded) -> AuditEvent {
    AuditEvent::known(now(app), t, outcome)
        .subject(l.user.username.as_str())
        .client_ip(ctx.ip)
        .user_agent(ctx.user_agent.clone())
        .correlation_id(l.st.correlation_id.clone())
}

async fn record(app: &AppState, e: AuditEvent) -> Result<(), EnrollError> {
    app.audit.append(e).await.map_err(|err| {
        tracing::error!(error = %err, "enrollment: audit append failed");
        EnrollError::Unavailable
    })?;
    Ok(())
}

fn status(handle: &str, l: &Loaded) -> Status {
    Status {
        flow: handle.to_owned(),
        username: l.user.username.as_str().to_owned(),
        display_name: l.user.display_name.clone(),
        passphrase_set: l.st.has_passphrase || l.st.passphrase_phc.is_some(),
        second_factors: l.st.second.iter().map(|p| p.label.clone()).collect(),
        can_finish: (l.st.has_passphrase || l.st.passphrase_phc.is_some()) && !l.st.second.is_empty(),
        adding: matches!(l.flow.kind, FlowKind::AddFactor | FlowKind::Recovery),
        recovering: l.flow.kind == FlowKind::Recovery,
    }
}

/// Opens an enrollment from its link.
pub async fn begin(app: &AppState, ctx: &ClientContext, link: &str) -> Result<Status, EnrollError> {
    if link.len() != 43 {
        return Err(EnrollError::Link);
    }
    let t = now(app);
    let digest = token::digest(link);
    let user_id = app.store.enrollment_user(&digest, t).await?.ok_or(EnrollError::Link)?;
    let user = app.store.user_by_id(&user_id).await?.ok_or(EnrollError::Link)?;
    if user.status != AccountStatus::Invited {
        return Err(EnrollError::Link);
    }
    let has_passphrase = app.store.factors_of(&user.id).await?.iter().any(|f| f.kind == FactorKind::Passphrase);
    let st = EnrollState {
        correlation_id: token::random_id().map_err(|_| EnrollError::Unavailable)?,
        link_digest: hex::encode(digest),
        has_passphrase,
        ..Default::default()
    };
    let handle = token::generate().map_err(|_| EnrollError::Unavailable)?;
    let flow = Flow {
        id_digest: token::digest(&handle),
        kind: FlowKind::Enrollment,
        user_id: Some(user.id.clone()),
        state: serde_json::to_value(&st).map_err(|_| EnrollError::Unavailable)?,
        version: 0,
        created_at: t,
        expires_at: t + ENROLLMENT_TTL,
    };
    app.store.insert_flow(&flow).await?;
    let l = Loaded { flow, st, user };
    record(app, event(app, ctx, types::ENROLLMENT_STARTED, Outcome::Success, &l)).await?;
    Ok(status(&handle, &l))
}

/// Starts adding a factor to a signed-in, active account: the same steps as enrollment
/// (authenticator app or security key), without the passphrase and the recovery codes.
pub async fn begin_adding(app: &AppState, user: &User) -> Result<Status, EnrollError> {
    let t = now(app);
    let st = EnrollState {
        correlation_id: token::random_id().map_err(|_| EnrollError::Unavailable)?,
        has_passphrase: true,
        ..Default::default()
    };
    let handle = token::generate().map_err(|_| EnrollError::Unavailable)?;
    let flow = Flow {
        id_digest: token::digest(&handle),
        kind: FlowKind::AddFactor,
        user_id: Some(user.id.clone()),
        state: serde_json::to_value(&st).map_err(|_| EnrollError::Unavailable)?,
        version: 0,
        created_at: t,
        expires_at: t + ENROLLMENT_TTL,
    };
    app.store.insert_flow(&flow).await?;
    Ok(status(&handle, &Loaded { flow, st, user: user.clone() }))
}

/// Stores the factors proven in an add-factor flow, for the signed-in account that
/// started it (a flow handle from someone else's browser adds nothing to this account).
pub async fn finish_adding(
    app: &AppState,
    ctx: &ClientContext,
    handle: &str,
    signed_in: &User,
) -> Result<Vec<String>, EnrollError> {
    let l = load(app, handle).await?;
    if l.flow.kind != FlowKind::AddFactor || l.user.id != signed_in.id {
        return Err(EnrollError::Expired);
    }
    if l.st.second.is_empty() {
        return Err(EnrollError::OutOfOrder("add an authenticator app or a security key first"));
    }
    proofing_gate(app, ctx, &l).await?;
    let t = now(app);
    let mut labels = Vec::new();
    for p in &l.st.second {
        let f = p.factor(&l.user.id, EnrolledBy::Person, t);
        let e = event(app, ctx, types::ACCOUNT_FACTOR_ADDED, Outcome::Success, &l)
            .factor(f.kind.amr())
            .detail("factor_id", f.id.clone())
            .detail("kind", f.kind.as_str())
            .detail("label", f.label.clone());
        app.store.add_factor(&f, &e).await?;
        labels.push(f.label);
    }
    app.store.delete_flow(&l.flow.id_digest).await?;
    Ok(labels)
}

async fn load(app: &AppState, handle: &str) -> Result<Loaded, EnrollError> {
    if handle.len() != 43 {
        return Err(EnrollError::Expired);
    }
    let flow = app.store.flow(&token::digest(handle), now(app)).await?.ok_or(EnrollError::Expired)?;
    let expected = match flow.kind {
        FlowKind::Enrollment => AccountStatus::Invited,
        FlowKind::AddFactor | FlowKind::Recovery => AccountStatus::Active,
        FlowKind::Login | FlowKind::StepUp => return Err(EnrollError::Expired),
    };
    let st: EnrollState = serde_json::from_value(flow.state.clone()).map_err(|_| EnrollError::Expired)?;
    let user_id = flow.user_id.clone().ok_or(EnrollError::Expired)?;
    let user = app.store.user_by_id(&user_id).await?.ok_or(EnrollError::Expired)?;
    if user.status != expected {
        return Err(EnrollError::Link);
    }
    Ok(Loaded { flow, st, user })
}

async fn save(app: &AppState, l: &mut Loaded) -> Result<(), EnrollError> {
    l.flow.state = serde_json::to_value(&l.st).map_err(|_| EnrollError::Unavailable)?;
    if !app.store.update_flow(&l.flow).await? {
        return Err(EnrollError::OutOfOrder("another tab changed this enrollment; reload the page"));
    }
    l.flow.version += 1;
    Ok(())
}

pub async fn current(app: &AppState, handle: &str) -> Result<Status, EnrollError> {
    let l = load(app, handle).await?;
    Ok(status(handle, &l))
}

pub async fn set_passphrase(
    app: &AppState,
    ctx: &ClientContext,
    handle: &str,
    chosen: &str,
    confirm: Option<&str>,
) -> Result<Status, EnrollError> {
    let mut l = load(app, handle).await?;
    if l.st.has_passphrase {
        return Err(EnrollError::OutOfOrder("the passphrase is already set"));
    }
    if confirm.is_some_and(|c| c != chosen) {
        return Err(EnrollError::Mismatch);
    }
    let org = app.auth.settings.organization_name.clone();
    // Every account must also enroll a second factor, so the shorter minimum applies.
    passphrase::check_new(
        &app.auth.passphrases,
        chosen,
        false,
        &[l.user.username.as_str(), &l.user.display_name, &l.user.email, &org],
    )?;
    let params = app.auth.hash;
    let chosen = chosen.to_owned();
    let phc = tokio::task::spawn_blocking(move || passphrase::hash_with(params, &chosen))
        .await
        .map_err(|_| EnrollError::Unavailable)??;
    l.st.passphrase_phc = Some(phc);
    save(app, &mut l).await?;
    record(app, event(app, ctx, types::ENROLLMENT_PASSPHRASE_SET, Outcome::Success, &l).factor("pwd")).await?;
    Ok(status(handle, &l))
}

/// A new authenticator-app secret, shown as a QR code; it counts once a code confirms it.
pub async fn totp_begin(app: &AppState, ctx: &ClientContext, handle: &str) -> Result<TotpSetup, EnrollError> {
    let mut l = load(app, handle).await?;
    proofing_gate(app, ctx, &l).await?;
    let params = app.auth.totp;
    let secret = totp::generate_secret().map_err(|_| EnrollError::Unavailable)?;
    let factor_id = token::random_id().map_err(|_| EnrollError::Unavailable)?;
    let sealed =
        app.keyring.get().seal(&Factor::seal_context(&factor_id), &secret).map_err(|_| EnrollError::Unavailable)?;
    let org = &app.auth.settings.organization_name;
    let uri = totp::otpauth_uri(params, &secret, org, l.user.username.as_str())
        .map_err(|e| EnrollError::Malformed(e.to_string()))?;
    let qr = qrcode::QrCode::new(uri.as_bytes()).map_err(|_| EnrollError::Unavailable)?;
    let svg = qr.render::<qrcode::render::svg::Color<'_>>().min_dimensions(200, 200).build();
    l.st.totp_pending = Some(Proven {
        factor_id,
        kind: FactorKind::Totp,
        label: "Authenticator app".into(),
        sealed,
        params: params.to_json(),
        counter: None,
        credential_id: None,
        used: FactorUsed::Totp,
    });
    save(app, &mut l).await?;
    Ok(TotpSetup { otpauth_uri: uri, secret: totp::secret_base32(&secret), qr_svg: svg })
}

pub async fn totp_confirm(
    app: &AppState,
    ctx: &ClientContext,
    handle: &str,
    code: &str,
) -> Result<Status, EnrollError> {
    let mut l = load(app, handle).await?;
    let mut pending = l.st.totp_pending.clone().ok_or(EnrollError::OutOfOrder("show the QR code first"))?;
    let secret = app
        .keyring
        .get()
        .open(&Factor::seal_context(&pending.factor_id), &pending.sealed)
        .map_err(|_| EnrollError::Unavailable)?;
    let params = totp::TotpParams::from_json(&pending.params).unwrap_or_default();
    let step = match totp::verify(params, &secret, code, now(app), None) {
        Ok(step) => step,
        Err(totp::TotpError::Malformed(d)) => {
            return Err(EnrollError::Malformed(format!("the code must be {d} digits")));
        }
        Err(_) => {
            let e = event(app, ctx, types::ENROLLMENT_FACTOR_REFUSED, Outcome::Failure, &l)
                .factor("otp")
                .reason("wrong confirmation code");
            record(app, e).await?;
            return Err(EnrollError::WrongCode);
        }
    };
    // The confirming code is spent too: it cannot sign in a second time.
    pending.counter = i64::try_from(step).ok();
    l.st.totp_pending = None;
    l.st.second.retain(|p| p.kind != FactorKind::Totp);
    if l.flow.kind == FlowKind::Recovery {
        // A recovery link replaces one factor: the last one proven is the one kept.
        l.st.second.clear();
    }
    let factor_id = pending.factor_id.clone();
    l.st.second.push(pending);
    save(app, &mut l).await?;
    let e = event(app, ctx, types::ENROLLMENT_FACTOR_VERIFIED, Outcome::Success, &l)
        .factor("otp")
        .detail("factor_id", factor_id);
    record(app, e).await?;
    Ok(status(handle, &l))
}

pub async fn webauthn_begin(
    app: &AppState,
    ctx: &ClientContext,
    handle: &str,
) -> Result<CreationChallengeResponse, EnrollError> {
    let rp = app.auth.rp().ok_or(EnrollError::NoWebauthn)?;
    let mut l = load(app, handle).await?;
    proofing_gate(app, ctx, &l).await?;
    // Keys the account already has (after a passphrase reset) are excluded, so the
    // authenticator says so instead of making a duplicate the store would refuse.
    let existing: Vec<_> = super::factor_check::passkeys(&app.keyring.get(), &app.store.factors_of(&l.user.id).await?)
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    let (ccr, state) =
        wa::start_registration(rp, &l.user.id, l.user.username.as_str(), &l.user.display_name, &existing)
            .map_err(|e| EnrollError::Webauthn(e.to_string()))?;
    l.st.webauthn_pending = Some(serde_json::to_value(&state).map_err(|_| EnrollError::Unavailable)?);
    save(app, &mut l).await?;
    Ok(ccr)
}

pub async fn webauthn_finish(
    app: &AppState,
    ctx: &ClientContext,
    handle: &str,
    reg: &RegisterPublicKeyCredential,
    label: Option<&str>,
) -> Result<Status, EnrollError> {
    let mut l = load(app, handle).await?;
    let pending = l.st.webauthn_pending.take().ok_or(EnrollError::OutOfOrder("start the security key step first"))?;
    let state: PasskeyRegistration = serde_json::from_value(pending).map_err(|_| EnrollError::Expired)?;
    let proven = register_credential(app, &l.user, reg, &state, label);
    let proven = match proven {
        Ok(p) => p,
        Err(err) => {
            save(app, &mut l).await?;
            let e = event(app, ctx, types::ENROLLMENT_FACTOR_REFUSED, Outcome::Failure, &l)
                .factor("hwk")
                .reason(err.to_string());
            record(app, e).await?;
            return Err(err);
        }
    };
    let synced = proven.params.get("backup_eligible").and_then(serde_json::Value::as_bool).unwrap_or(false);
    let e = event(app, ctx, types::ENROLLMENT_FACTOR_VERIFIED, Outcome::Success, &l)
        .factor(if synced { "swk" } else { "hwk" })
        .detail("factor_id", proven.factor_id.clone())
        .detail("aaguid", proven.params.get("aaguid").cloned().unwrap_or_default());
    if l.flow.kind == FlowKind::Recovery {
        l.st.second.clear();
    }
    l.st.second.push(proven);
    save(app, &mut l).await?;
    record(app, e).await?;
    Ok(status(handle, &l))
}

/// Verifies a registration and turns it into a factor waiting to be stored: the passkey
/// sealed under the key-encryption key, its model and sync flag in the params.
fn register_credential(
    app: &AppState,
    user: &User,
    reg: &RegisterPublicKeyCredential,
    state: &PasskeyRegistration,
    label: Option<&str>,
) -> Result<Proven, EnrollError> {
    let rp = app.auth.rp().ok_or(EnrollError::NoWebauthn)?;
    let passkey = rp.finish_passkey_registration(reg, state).map_err(|e| EnrollError::Webauthn(e.to_string()))?;
    let facts = wa::device_facts(reg).ok_or_else(|| EnrollError::Webauthn("authenticator data unreadable".into()))?;
    if !wa::aaguid_allowed(&app.auth.settings.webauthn_allowed_aaguids, &user.roles, facts.aaguid) {
        return Err(EnrollError::ModelRefused);
    }
    let factor_id = token::random_id().map_err(|_| EnrollError::Unavailable)?;
    let json = serde_json::to_vec(&passkey).map_err(|_| EnrollError::Unavailable)?;
    let sealed =
        app.keyring.get().seal(&Factor::seal_context(&factor_id), &json).map_err(|_| EnrollError::Unavailable)?;
    let label = label
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.chars().take(64).collect::<String>())
        .or_else(|| wa::model_name(facts.aaguid).map(str::to_owned))
        .unwrap_or_else(|| if facts.backup_eligible { "Passkey".into() } else { "Security key".into() });
    let credential_id =
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, passkey.cred_id().as_slice());
    Ok(Proven {
        factor_id,
        kind: FactorKind::Webauthn,
        label,
        sealed,
        params: serde_json::json!({
            "aaguid": facts.aaguid.to_string(),
            "model": wa::model_name(facts.aaguid),
            "backup_eligible": facts.backup_eligible,
        }),
        counter: Some(0),
        credential_id: Some(credential_id),
        used: FactorUsed::Webauthn { user_verified: true, hardware_bound: !facts.backup_eligible },
    })
}

/// Stores everything, activates the account, signs the person in and returns the
/// recovery codes to show once.
pub async fn finish(app: &AppState, ctx: &ClientContext, handle: &str) -> Result<Finished, EnrollError> {
    let l = load(app, handle).await?;
    if l.flow.kind != FlowKind::Enrollment {
        return Err(EnrollError::OutOfOrder("this is not an enrollment"));
    }
    if !(l.st.has_passphrase || l.st.passphrase_phc.is_some()) {
        return Err(EnrollError::OutOfOrder("choose a passphrase first"));
    }
    let Some(second) = l.st.second.first().cloned() else {
        return Err(EnrollError::OutOfOrder("add an authenticator app or a security key first"));
    };
    proofing_gate(app, ctx, &l).await?;
    let t = now(app);
    let codes = tokio::task::spawn_blocking(recovery_codes::generate)
        .await
        .map_err(|_| EnrollError::Unavailable)?
        .map_err(|_| EnrollError::Unavailable)?;
    let new_id = || token::random_id().map_err(|_| EnrollError::Unavailable);
    let mut factors = Vec::new();
    if let Some(phc) = &l.st.passphrase_phc {
        let mut pwd = Factor::new(new_id()?, l.user.id.clone(), FactorKind::Passphrase, "Passphrase", phc.clone(), t);
        pwd.enrolled_by = Some(EnrolledBy::EnrollmentLink.to_string());
        factors.push(pwd);
    }
    for p in &l.st.second {
        factors.push(p.factor(&l.user.id, EnrolledBy::EnrollmentLink, t));
    }
    let slots = serde_json::to_string(&codes.hashes).map_err(|_| EnrollError::Unavailable)?;
    let mut rc = Factor::new(new_id()?, l.user.id.clone(), FactorKind::RecoveryCodes, "Recovery codes", slots, t);
    rc.params = serde_json::json!({"remaining": codes.codes.len()});
    rc.enrolled_by = Some(EnrolledBy::EnrollmentLink.to_string());
    factors.push(rc);
    let link: [u8; 32] =
        hex::decode(&l.st.link_digest).ok().and_then(|v| v.try_into().ok()).ok_or(EnrollError::Link)?;
    let e = event(app, ctx, types::ENROLLMENT_COMPLETED, Outcome::Success, &l)
        .detail("user_id", l.user.id.clone())
        .detail("factors", factors.iter().map(|f| f.kind.as_str()).collect::<Vec<_>>());
    match app.store.complete_enrollment(&link, t, &l.user.id, &factors, &e).await {
        Ok(()) => {}
        Err(StoreError::EnrollmentInvalid) => return Err(EnrollError::Link),
        Err(e) => return Err(e.into()),
    }
    // Enrollment proved a passphrase and a second factor just now: sign in with them.
    let auth = Identified { user_id: l.user.id.clone(), correlation_id: l.st.correlation_id.clone() }
        .first_factor(FactorUsed::Passphrase)
        .and_then(|f| f.second_factor(second.used))
        .map_err(|_| EnrollError::Unavailable)?;
    let (session, session_token) =
        Session::start(&auth, t, ctx.ip, ctx.user_agent.clone()).map_err(|_| EnrollError::Unavailable)?;
    let e = event(app, ctx, types::AUTH_LOGIN_SUCCEEDED, Outcome::Success, &l)
        .detail("user_id", l.user.id.clone())
        .detail("session_id", session.id.clone())
        .detail("aal", auth.aal.as_str())
        .detail("via", "enrollment");
    let e = auth.amr.iter().fold(e, |e, a| e.factor(a.clone()));
    app.store.create_session(&session, Some(&l.flow.id_digest), &e).await?;
    let mut user = l.user;
    user.status = AccountStatus::Active;
    Ok(Finished {
        signed_in: SignedIn { session, token: session_token, user, recovery_codes_left: None },
        recovery_codes: codes.codes,
    })
}

/// L1: refuses (and records the refusal) when a role the person holds requires identity
/// proofing and none is recorded. Enforced only while an approved policy is in force: the
/// first administrator enrolls before there is anyone to vouch for them, and before a
/// policy is approved Wardgate invents no rules of its own.
async fn proofing_gate(app: &AppState, ctx: &ClientContext, l: &Loaded) -> Result<(), EnrollError> {
    let Some(active) = app.access.current() else { return Ok(()) };
    let t = now(app);
    let Some(role) = crate::lifecycle::proofing::missing(&*app.store, &active.policy, &l.user, t).await? else {
        return Ok(());
    };
    let e = event(app, ctx, types::PROOFING_REQUIRED, Outcome::Denied, l)
        .reason(format!("role {role} requires identity proofing before a second factor is enrolled"))
        .detail("role", role.clone())
        .detail("flow", l.flow.kind.as_str())
        .detail("policy_version", active.number);
    record(app, e).await?;
    Err(EnrollError::ProofingRequired(role))
}

/// Opens a help-desk recovery link (L3): a flow that enrolls one authenticator app or
/// security key for the account, and nothing else — no passphrase, no session. An unknown,
/// used or expired link is refused and recorded.
pub async fn begin_recovery(app: &AppState, ctx: &ClientContext, link: &str) -> Result<Status, EnrollError> {
    let t = now(app);
    let refused = |why: &str| {
        AuditEvent::known(t, types::RECOVERY_LINK_REFUSED, Outcome::Denied)
            .client_ip(ctx.ip)
            .user_agent(ctx.user_agent.clone())
            .correlation_id(ctx.request_id.clone())
            .reason(why.to_owned())
    };
    let digest = token::digest(link);
    let request = if link.len() == 43 { app.store.recovery_by_link(&digest, t).await? } else { None };
    let Some(request) = request else {
        record(app, refused("unknown, used or expired recovery link")).await?;
        return Err(EnrollError::RecoveryLink);
    };
    let user = app.store.user_by_id(&request.user_id).await?.filter(|u| u.status == AccountStatus::Active);
    let Some(user) = user else {
        record(app, refused("the account is no longer active").subject(request.username.as_str())).await?;
        return Err(EnrollError::RecoveryLink);
    };
    let link_expires = match request.status {
        wardgate_core::lifecycle::RecoveryStatus::Approved { link_expires_at, .. } => link_expires_at,
        _ => return Err(EnrollError::RecoveryLink),
    };
    let st = EnrollState {
        correlation_id: token::random_id().map_err(|_| EnrollError::Unavailable)?,
        link_digest: hex::encode(digest),
        has_passphrase: true,
        recovery_id: Some(request.id.clone()),
        ..Default::default()
    };
    let handle = token::generate().map_err(|_| EnrollError::Unavailable)?;
    let flow = Flow {
        id_digest: token::digest(&handle),
        kind: FlowKind::Recovery,
        user_id: Some(user.id.clone()),
        state: serde_json::to_value(&st).map_err(|_| EnrollError::Unavailable)?,
        version: 0,
        created_at: t,
        expires_at: (t + ENROLLMENT_TTL).min(link_expires),
    };
    app.store.insert_flow(&flow).await?;
    let l = Loaded { flow, st, user };
    proofing_gate(app, ctx, &l).await?;
    let e = event(app, ctx, types::ENROLLMENT_STARTED, Outcome::Success, &l)
        .detail("via", "recovery")
        .detail("recovery_id", request.id);
    record(app, e).await?;
    Ok(status(&handle, &l))
}

/// Stores the one factor proven through a recovery link and spends the link, in one
/// transaction; the person then signs in with it as usual. Returns the factor's label.
pub async fn finish_recovery(app: &AppState, ctx: &ClientContext, handle: &str) -> Result<String, EnrollError> {
    let l = load(app, handle).await?;
    if l.flow.kind != FlowKind::Recovery {
        return Err(EnrollError::OutOfOrder("this is not a recovery"));
    }
    let (Some(p), Some(recovery_id)) = (l.st.second.last(), l.st.recovery_id.clone()) else {
        return Err(EnrollError::OutOfOrder("add an authenticator app or a security key first"));
    };
    proofing_gate(app, ctx, &l).await?;
    let t = now(app);
    let f = p.factor(&l.user.id, EnrolledBy::Recovery(recovery_id.clone()), t);
    let link: [u8; 32] =
        hex::decode(&l.st.link_digest).ok().and_then(|v| v.try_into().ok()).ok_or(EnrollError::RecoveryLink)?;
    // The help-desk path is for a person with no working second factor: every authenticator
    // app and key they had is lost or broken, and one that was lost may be in someone
    // else's hands. They go with the link, in the same transaction.
    let retire: Vec<String> = app
        .store
        .factors_of(&l.user.id)
        .await?
        .into_iter()
        .filter(|o| matches!(o.kind, FactorKind::Totp | FactorKind::Webauthn))
        .map(|o| o.id)
        .collect();
    let e = event(app, ctx, types::RECOVERY_COMPLETED, Outcome::Success, &l)
        .factor(f.kind.amr())
        .detail("recovery_id", recovery_id.clone())
        .detail("factor_id", f.id.clone())
        .detail("kind", f.kind.as_str())
        .detail("label", f.label.clone())
        .detail("retired_factor_ids", retire.clone());
    match app.store.complete_recovery(&link, t, &f, &retire, &e).await {
        Ok(()) => {}
        Err(StoreError::EnrollmentInvalid) => return Err(EnrollError::RecoveryLink),
        Err(e) => return Err(e.into()),
    }
    app.store.delete_flow(&l.flow.id_digest).await?;
    // Sessions made before the recovery may have been made with a lost factor.
    let e = event(app, ctx, types::AUTH_SESSIONS_REVOKED_ALL, Outcome::Success, &l)
        .reason("help-desk recovery: the lost factors were retired")
        .detail("recovery_id", recovery_id);
    super::session::revoke(app, &l.user.id, None, &e, "help-desk recovery").await?;
    Ok(f.label)
}
