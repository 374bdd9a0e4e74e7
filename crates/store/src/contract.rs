//! The storage contract every backend implements, and the conformance suite proves.

use async_trait::async_trait;
use time::OffsetDateTime;
use wardgate_core::api_token::ApiToken;
use wardgate_core::audit::{AuditEvent, ChainHead, Checkpoint, StoredRecord};
use wardgate_core::device::Device;
use wardgate_core::flow::Flow;
use wardgate_core::governance::{BreakGlass, Campaign, Decision, Elevation, Item, Review, Vendor};
use wardgate_core::identity::{Factor, User, Username};
use wardgate_core::keys::SigningKeyRecord;
use wardgate_core::lifecycle::{Proofing, RecoveryRequest};
use wardgate_core::lockout::Attempts;
use wardgate_core::oidc::{AuthCode, Consent, Grant, LogoutNotice, OidcClient, OidcKey, RefreshToken};
use wardgate_core::policy::{NewPolicyVersion, PolicyVersion};
use wardgate_core::scim::group::ScimGroup;
use wardgate_core::scim::token::ScimToken;
use wardgate_core::session::{Session, SessionPolicy};

use crate::batch::{Write, Written};
use crate::{Durable, StoreError};

/// Progress markers that retention pruning respects: a record is deleted only once it has
/// been both exported and verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditMark {
    Exported,
    Verified,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditMarks {
    /// Highest sequence number written out by `audit export` (0: none).
    pub exported_seq: i64,
    /// Highest sequence number that `audit verify` found intact (0: none).
    pub verified_seq: i64,
}

/// Which column holds a sealed secret; used by KEK rotation to re-wrap every one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedColumn {
    FactorSecret,
    SigningKeyPrivate,
    OidcKeyPrivate,
}

/// One sealed value, where it lives and the context its AEAD is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRef {
    pub column: SealedColumn,
    pub id: String,
    pub context: String,
    pub sealed: String,
}

/// Everything Wardgate keeps. Implementations are cheap to clone behind an `Arc` and safe
/// to share between tasks; several processes (a server and the CLI, or several nodes on
/// PostgreSQL) may use one database at once.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `"sqlite"` or `"postgres"`, for logs and metrics.
    fn backend(&self) -> &'static str;

    /// The node name written into audit records appended through this handle.
    fn node(&self) -> &str;

    /// Cheap round trip, for readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;

    // --- installation metadata -------------------------------------------------------

    async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Sets `key` only if it has no value yet; returns the value now stored.
    async fn meta_init(&self, key: &str, value: &str) -> Result<String, StoreError>;

    /// A counter bumped by every administrative change. Running nodes poll it to pick up
    /// changes made by the CLI or by other nodes within a second.
    async fn revision(&self) -> Result<i64, StoreError>;

    // --- audit log ---------------------------------------------------------------------

    /// Appends `events` in order as one durable transaction (group commit) and returns
    /// the new chain head. Concurrent appenders, in this process or others, never fork
    /// the chain: the head is read and advanced under the database's write lock.
    async fn append_audit(&self, events: &[AuditEvent]) -> Result<ChainHead, StoreError>;

    /// Applies `writes` in order in one durable transaction with their audit records (the
    /// group commit of the token paths), returning what each found and the new chain head.
    /// All or nothing: if one write fails, none is kept and the error is returned (the
    /// caller retries the others alone).
    async fn commit(&self, writes: &[Write]) -> Result<(Vec<Written>, ChainHead), StoreError>;

    /// [`Store::append_audit`] for the group commit, which may go on with its next batch
    /// while this one reaches the disk: returns once the transaction is committed, with a
    /// [`Durable`] that resolves when it is on disk. Nobody may be told that the records are
    /// kept before it has resolved. A backend whose commit is already durable returns
    /// [`Durable::now`].
    async fn append_audit_pipelined(&self, events: &[AuditEvent]) -> Result<(ChainHead, Durable), StoreError> {
        Ok((self.append_audit(events).await?, Durable::now()))
    }

    /// [`Store::commit`] for the group commit, as [`Store::append_audit_pipelined`] is for
    /// appends.
    async fn commit_pipelined(&self, writes: &[Write]) -> Result<(Vec<Written>, ChainHead, Durable), StoreError> {
        let (found, head) = self.commit(writes).await?;
        Ok((found, head, Durable::now()))
    }

    async fn audit_head(&self) -> Result<ChainHead, StoreError>;

    /// Where verification starts: genesis, or the checkpoint retention pruned up to.
    async fn audit_anchor(&self) -> Result<ChainHead, StoreError>;

    /// Up to `limit` records with `seq > after_seq`, in sequence order.
    async fn audit_records(&self, after_seq: i64, limit: u32) -> Result<Vec<StoredRecord>, StoreError>;

    /// The first sequence number whose timestamp is `>= ts_us` (for `--since`).
    async fn audit_first_seq_at(&self, ts_us: i64) -> Result<Option<i64>, StoreError>;

    /// Number of records currently held.
    async fn audit_count(&self) -> Result<i64, StoreError>;

    async fn insert_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError>;

    /// Checkpoints with `after_seq < seq <= upto_seq`, in sequence order. Ranged because a
    /// six-year log holds millions of them: readers take them page by page with the records.
    async fn checkpoints(&self, after_seq: i64, upto_seq: i64) -> Result<Vec<Checkpoint>, StoreError>;

    async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError>;

    async fn audit_marks(&self) -> Result<AuditMarks, StoreError>;

    /// Raises a mark (never lowers it).
    async fn raise_audit_mark(&self, mark: AuditMark, seq: i64) -> Result<(), StoreError>;

    /// Deletes records with `seq <= through.seq`, makes `through` the new anchor, and
    /// appends `event` — all in one transaction. Returns how many records were deleted.
    /// The caller has checked retention, marks and the checkpoint's signature.
    async fn prune_audit(&self, through: &Checkpoint, event: &AuditEvent) -> Result<u64, StoreError>;

    // --- signing keys and sealed secrets --------------------------------------------

    async fn insert_signing_key(&self, key: &SigningKeyRecord, event: &AuditEvent) -> Result<(), StoreError>;

    /// Keys of one purpose, newest first.
    async fn signing_keys(&self, purpose: &str) -> Result<Vec<SigningKeyRecord>, StoreError>;

    /// Every sealed value in the store.
    async fn sealed_values(&self) -> Result<Vec<SealedRef>, StoreError>;

    /// Replaces one sealed value if it still equals `old.sealed` (compare-and-swap, so a
    /// concurrent change is never overwritten). Returns whether it was replaced.
    async fn replace_sealed(&self, old: &SealedRef, new_sealed: &str) -> Result<bool, StoreError>;

    // --- users ---------------------------------------------------------------------------

    /// Fails with [`StoreError::UsernameTaken`] if the username was ever used, by anyone;
    /// [`StoreError::NotFound`] if `user.vendor` names no vendor.
    async fn create_user(&self, user: &User, factors: &[Factor], event: &AuditEvent) -> Result<(), StoreError>;

    async fn user_by_username(&self, username: &Username) -> Result<Option<User>, StoreError>;

    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError>;

    /// Up to `limit` users whose username sorts after `after` (keyset paging), in order.
    async fn list_users(&self, after: Option<&str>, limit: u32) -> Result<Vec<User>, StoreError>;

    /// Active administrators (role `admin`, status `active`).
    async fn count_admins(&self) -> Result<i64, StoreError>;

    /// Writes the profile fields (display name, email, employee id, roles and their expiry,
    /// the privileged flag, vendor, account expiry, manager) and the status of `user` (found
    /// by id); not `last_login_at`, which only [`Store::record_login`] moves. Leaving `active` for `disabled` or `terminated` ends every
    /// session, API token and pending flow of the account in the same transaction; a
    /// `terminated` account also loses its factors. The username never changes.
    /// [`StoreError::NotFound`] if there is no such user, or no vendor of `user.vendor`.
    async fn update_user(&self, user: &User, event: &AuditEvent) -> Result<(), StoreError>;

    /// Replaces the failed-attempt counters if they still equal `expected` (compare-and-set,
    /// so that concurrent failures on several nodes are all counted: the loser re-reads and
    /// retries). Returns whether they were replaced. `event`, if any, is appended in the
    /// same transaction (a lockout, an unlock).
    async fn set_attempts(
        &self,
        user_id: &str,
        expected: &Attempts,
        new: &Attempts,
        event: Option<&AuditEvent>,
    ) -> Result<bool, StoreError>;

    // --- factors -------------------------------------------------------------------------

    async fn add_factor(&self, factor: &Factor, event: &AuditEvent) -> Result<(), StoreError>;

    /// Factors of one user, oldest first.
    async fn factors_of(&self, user_id: &str) -> Result<Vec<Factor>, StoreError>;

    /// The WebAuthn factor with this credential id (base64url), for username-less sign-in.
    async fn factor_by_credential(&self, credential_id: &str) -> Result<Option<Factor>, StoreError>;

    /// Compare-and-set on the factor's counter: sets it to `counter` (and `last_used_at`
    /// to `now`) only if it is unset or lower. This is what makes a TOTP time step usable
    /// once, even when two nodes receive the same code at once. Returns whether it advanced.
    async fn advance_factor_counter(
        &self,
        factor_id: &str,
        counter: i64,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Replaces the factor's secret, params, counter, label and `last_used_at` with those of
    /// `new` (same id) if its stored secret still equals `expected_secret`. Used to spend a
    /// recovery code and to update a WebAuthn credential after use. Returns whether it did.
    async fn update_factor(
        &self,
        new: &Factor,
        expected_secret: &str,
        event: Option<&AuditEvent>,
    ) -> Result<bool, StoreError>;

    /// Removes one factor of one user. [`StoreError::NotFound`] if there is none.
    async fn remove_factor(&self, user_id: &str, factor_id: &str, event: &AuditEvent) -> Result<(), StoreError>;

    // --- enrollment links ----------------------------------------------------------------

    /// Stores the digest of a one-time enrollment link for an invited user, replacing any
    /// earlier link of that user.
    async fn issue_enrollment(
        &self,
        user_id: &str,
        digest: &[u8; 32],
        expires_at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// The user an unexpired link belongs to.
    async fn enrollment_user(&self, digest: &[u8; 32], now: OffsetDateTime) -> Result<Option<String>, StoreError>;

    /// Atomically: the link is unexpired and belongs to `user_id`, still `invited` → the
    /// factors are stored, the account becomes `active`, the link is deleted and `event`
    /// appended. Otherwise [`StoreError::EnrollmentInvalid`] and nothing changes.
    async fn complete_enrollment(
        &self,
        digest: &[u8; 32],
        now: OffsetDateTime,
        user_id: &str,
        factors: &[Factor],
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    // --- flows (logins and enrollments between steps) --------------------------------------

    async fn insert_flow(&self, flow: &Flow) -> Result<(), StoreError>;

    /// The flow, if it exists and has not expired.
    async fn flow(&self, digest: &[u8; 32], now: OffsetDateTime) -> Result<Option<Flow>, StoreError>;

    /// Writes `flow.state`, `flow.user_id` and `flow.expires_at` with `version + 1` if the
    /// stored version is still `flow.version`. Returns whether it did.
    async fn update_flow(&self, flow: &Flow) -> Result<bool, StoreError>;

    async fn delete_flow(&self, digest: &[u8; 32]) -> Result<(), StoreError>;

    /// Deletes flows that expired before `now`; returns how many.
    async fn purge_expired_flows(&self, now: OffsetDateTime) -> Result<u64, StoreError>;

    // --- sessions -------------------------------------------------------------------------

    /// Stores a new session and appends `event`; `flow`, if given, is deleted in the same
    /// transaction so that a login's last step cannot be replayed for a second session.
    /// [`StoreError::NotFound`] if that flow is already gone (the step raced with itself).
    async fn create_session(
        &self,
        session: &Session,
        flow: Option<&[u8; 32]>,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    async fn session_by_digest(&self, digest: &[u8; 32]) -> Result<Option<Session>, StoreError>;

    /// The session and its account in one read: what every signed-in request needs first.
    async fn session_and_user(&self, digest: &[u8; 32]) -> Result<Option<(Session, User)>, StoreError>;

    /// The same by session id: for tokens that name the session they came from (`sid`).
    async fn session_with_user(&self, id: &str) -> Result<Option<(Session, User)>, StoreError>;

    /// Records activity (for the idle timeout).
    async fn touch_session(&self, digest: &[u8; 32], now: OffsetDateTime) -> Result<(), StoreError>;

    /// The user's sessions that are not revoked, newest first.
    async fn sessions_of(&self, user_id: &str) -> Result<Vec<Session>, StoreError>;

    /// Revokes one session of a user (by its public id). [`StoreError::NotFound`] if the
    /// user has no such unrevoked session.
    async fn revoke_session(
        &self,
        user_id: &str,
        session_id: &str,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Revokes every session of a user; returns how many were live.
    async fn revoke_sessions_of(
        &self,
        user_id: &str,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<u64, StoreError>;

    // --- API tokens -------------------------------------------------------------------------

    async fn create_api_token(&self, token: &ApiToken, event: &AuditEvent) -> Result<(), StoreError>;

    async fn api_token_by_digest(&self, digest: &[u8; 32]) -> Result<Option<ApiToken>, StoreError>;

    /// Tokens of one user, newest first (revoked ones included, for the record).
    async fn api_tokens_of(&self, user_id: &str) -> Result<Vec<ApiToken>, StoreError>;

    /// [`StoreError::NotFound`] if there is no such unrevoked token.
    async fn revoke_api_token(&self, id: &str, now: OffsetDateTime, event: &AuditEvent) -> Result<(), StoreError>;

    // --- first administrator ----------------------------------------------------------------

    /// Stores the digest of a new bootstrap token, replacing any earlier one.
    /// Fails with [`StoreError::AdminExists`] once an administrator exists.
    async fn issue_bootstrap(
        &self,
        digest: &[u8; 32],
        expires_at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Whether an unexpired bootstrap token is waiting.
    async fn bootstrap_pending(&self, now: OffsetDateTime) -> Result<bool, StoreError>;

    /// Atomically: the token matches and is unexpired and no administrator exists → the
    /// administrator is created, the token deleted and `event` appended. Otherwise
    /// [`StoreError::BootstrapInvalid`] (or [`StoreError::AdminExists`]) and nothing changes.
    async fn redeem_bootstrap(
        &self,
        digest: &[u8; 32],
        now: OffsetDateTime,
        admin: &User,
        factors: &[Factor],
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    // --- OpenID Connect: clients -----------------------------------------------------------

    /// [`StoreError::Conflict`] if the id exists.
    async fn create_client(&self, client: &OidcClient, event: &AuditEvent) -> Result<(), StoreError>;

    async fn client(&self, id: &str) -> Result<Option<OidcClient>, StoreError>;

    /// Every client, by name.
    async fn list_clients(&self) -> Result<Vec<OidcClient>, StoreError>;

    /// Replaces every field but the id and creation time. [`StoreError::NotFound`] if none.
    async fn update_client(&self, client: &OidcClient, event: &AuditEvent) -> Result<(), StoreError>;

    /// Deletes the client, its codes, its grants with their refresh tokens, and the
    /// consents given to it. [`StoreError::NotFound`] if none.
    async fn delete_client(&self, id: &str, event: &AuditEvent) -> Result<(), StoreError>;

    // --- OpenID Connect: consents ----------------------------------------------------------

    /// Records that the person agreed to share `consent.scopes` with the client, replacing
    /// the scopes and time of an earlier consent, and appends `event`. Not administrative:
    /// the revision stays. [`StoreError::NotFound`] if the user or the client does not exist.
    async fn grant_consent(&self, consent: &Consent, event: &AuditEvent) -> Result<(), StoreError>;

    async fn consent(&self, user_id: &str, client_id: &str) -> Result<Option<Consent>, StoreError>;

    /// Forgets a consent. Returns whether there was one; `event` is appended only if so.
    async fn revoke_consent(&self, user_id: &str, client_id: &str, event: &AuditEvent) -> Result<bool, StoreError>;

    /// The person's consents, by client id.
    async fn consents_of(&self, user_id: &str) -> Result<Vec<Consent>, StoreError>;

    // --- OpenID Connect: codes, grants, refresh tokens -------------------------------------

    async fn insert_auth_code(&self, code: &AuthCode) -> Result<(), StoreError>;

    /// A code as stored (redeemed or not, expired or not), to check a token request against
    /// before it is spent.
    async fn auth_code(&self, digest: &[u8; 32]) -> Result<Option<AuthCode>, StoreError>;

    /// The same with the account it was issued to, if that still exists, in one read.
    async fn auth_code_with_user(&self, digest: &[u8; 32]) -> Result<Option<(AuthCode, Option<User>)>, StoreError>;

    /// Redeems a code once, atomically. If it exists, is unexpired and unused, it is marked
    /// used with `grant_id` (the grant the caller is about to store with [`Store::insert_grant`],
    /// built from the returned code): `Fresh(code)`. A code already used returns
    /// `Reused(code)` (its `grant_id` names the grant to revoke) and changes nothing;
    /// unknown or expired: `Unknown`.
    async fn redeem_auth_code(
        &self,
        digest: &[u8; 32],
        now: OffsetDateTime,
        grant_id: &str,
    ) -> Result<CodeRedemption, StoreError>;

    /// Stores a grant (from a redeemed code, or client credentials) with its first refresh
    /// token, if any, and appends `event`.
    async fn insert_grant(
        &self,
        grant: &Grant,
        refresh: Option<&RefreshToken>,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    async fn grant(&self, id: &str) -> Result<Option<Grant>, StoreError>;

    /// The refresh token with this digest and its grant, whatever their state.
    async fn refresh_token(&self, digest: &[u8; 32]) -> Result<Option<(RefreshToken, Grant)>, StoreError>;

    /// The same with the account and the session the grant names, where they still exist:
    /// everything a refresh checks before it spends the token, in one read.
    async fn refresh_holder(&self, digest: &[u8; 32]) -> Result<Option<RefreshHolder>, StoreError>;

    /// Exchanges a refresh token for `next` (same grant), atomically:
    /// - unused, unexpired, grant not revoked → it is marked used, `next` stored: `Rotated(grant)`;
    /// - already used → the grant is revoked (reuse means theft) and `reuse_event` appended:
    ///   `Reused(grant)`;
    /// - unknown, expired, or grant revoked → `Unknown`.
    ///
    /// A used token is `Reused` even once expired (a replay is evidence of theft whenever it
    /// comes), but `Unknown` once its grant is revoked: there is nothing left to revoke, so
    /// concurrent replays give one `Reused` and one audit record. `next` is stored under the
    /// presented token's grant.
    async fn rotate_refresh_token(
        &self,
        digest: &[u8; 32],
        next: &RefreshToken,
        now: OffsetDateTime,
        reuse_event: &AuditEvent,
    ) -> Result<Rotation, StoreError>;

    /// Revokes a grant (and so its refresh tokens). Returns whether it was live.
    async fn revoke_grant(&self, id: &str, now: OffsetDateTime, event: &AuditEvent) -> Result<bool, StoreError>;

    /// Revokes every live grant made from one session (logout, session end); returns them.
    /// In the same transaction, queues one back-channel logout notice per client among
    /// them that has a `backchannel_logout_uri`, due at once, carrying `reason` (why the
    /// session ended) and the grant's person and correlation id: whoever ends a session —
    /// a server, the command line — leaves the logout tokens owed, for a server to deliver.
    /// `event` is appended only if a grant was live.
    async fn revoke_grants_of_session(
        &self,
        session_id: &str,
        now: OffsetDateTime,
        reason: &str,
        event: &AuditEvent,
    ) -> Result<Vec<Grant>, StoreError>;

    /// Sessions whose grants still have to be ended: sessions with a live grant that are
    /// either unrevoked but past the idle timeout or the lifetime of `policy` at `now`
    /// (they expired while nobody presented them), or revoked before `revoked_before`
    /// (whoever revoked them stopped before revoking their grants). Up to `limit`, least
    /// recently seen first. Sessions without a live grant are left alone, however many.
    async fn sessions_to_end(
        &self,
        policy: &SessionPolicy,
        now: OffsetDateTime,
        revoked_before: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Session>, StoreError>;

    // --- OpenID Connect: back-channel logout notices -------------------------------------

    /// Claims up to `limit` notices due at `now` — not delivered, not given up, next attempt
    /// at or before `now`, and not leased to anyone beyond `now` — for `node` until
    /// `now + lease`, and returns them, earliest due first. Until the lease runs out no
    /// other caller (another node on the same database) claims them; if `node` stops
    /// meanwhile, they are claimed again after it.
    async fn claim_logout_notices(
        &self,
        node: &str,
        now: OffsetDateTime,
        lease: time::Duration,
        limit: u32,
    ) -> Result<Vec<LogoutNotice>, StoreError>;

    /// Records a successful delivery by `node`: the attempt is counted, `delivered_at` set
    /// and the lease released. Returns false, changing nothing, if the notice is not
    /// claimed by `node` (its lease ran out and another node took it) or is already
    /// delivered or given up.
    async fn logout_notice_delivered(&self, id: i64, node: &str, now: OffsetDateTime) -> Result<bool, StoreError>;

    /// Records a failed attempt by `node`: the attempt is counted, `error` kept and the
    /// lease released; the notice is due again at `retry_at`, or given up at `now` when
    /// `None`. Returns false, changing nothing, in the cases of
    /// [`Store::logout_notice_delivered`].
    async fn logout_notice_failed(
        &self,
        id: i64,
        node: &str,
        now: OffsetDateTime,
        error: &str,
        retry_at: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError>;

    /// Every notice queued for a session, whatever its state, oldest first.
    async fn logout_notices_of_session(&self, session_id: &str) -> Result<Vec<LogoutNotice>, StoreError>;

    /// Housekeeping: deletes what ended before `before` and nothing needs any more —
    /// - notices delivered or given up;
    /// - grants revoked, with their refresh tokens; and client-credentials grants whose
    ///   access tokens had all expired (grants made through a session are kept while live:
    ///   ending them is what tells applications the session ended);
    /// - refresh tokens that expired unused (a used one stays with its grant while the
    ///   grant is live, because presenting it again must still revoke the grant);
    /// - authorization codes that expired, unless redeemed into a grant still live (a
    ///   replay must still revoke it).
    ///
    /// Not audited: these are leftovers of events already recorded.
    async fn purge_oidc_history(&self, before: OffsetDateTime) -> Result<OidcPurged, StoreError>;

    // --- OpenID Connect: signing keys --------------------------------------------------------

    async fn insert_oidc_key(&self, key: &OidcKey, event: &AuditEvent) -> Result<(), StoreError>;

    /// Every key, newest first, retired ones included.
    async fn oidc_keys(&self) -> Result<Vec<OidcKey>, StoreError>;

    /// Marks a key retired at `at`. [`StoreError::NotFound`] if none.
    async fn retire_oidc_key(&self, id: &str, at: OffsetDateTime, event: &AuditEvent) -> Result<(), StoreError>;

    /// Deletes keys retired before `before` (their tokens have all expired).
    async fn purge_oidc_keys(&self, before: OffsetDateTime) -> Result<u64, StoreError>;

    // --- access policy ---------------------------------------------------------------------

    /// Numbers the proposal (highest number so far + 1, never reused, safe under concurrent
    /// proposers, in this process or others), stores it as
    /// [`Proposed`](wardgate_core::policy::VersionStatus::Proposed), appends `event` and
    /// bumps the revision, in one transaction. [`StoreError::NotFound`] if `v.restores`
    /// names no version.
    async fn propose_policy(&self, v: &NewPolicyVersion, event: &AuditEvent) -> Result<PolicyVersion, StoreError>;

    async fn policy_version(&self, number: i64) -> Result<Option<PolicyVersion>, StoreError>;

    /// Every version, newest first.
    async fn policy_versions(&self) -> Result<Vec<PolicyVersion>, StoreError>;

    /// The version in force, if any has been activated.
    async fn active_policy(&self) -> Result<Option<PolicyVersion>, StoreError>;

    /// Makes a Proposed version the active one: the previously active version becomes
    /// Superseded, `approved_by` and `approved_at` (`at`) are recorded, `event` appended and
    /// the revision bumped, all in one transaction, and the version is returned as it now
    /// stands. [`StoreError::NotFound`] if there is no such version;
    /// [`StoreError::Conflict`] if it is not Proposed (already active, superseded or
    /// rejected) — of concurrent activations of the same version exactly one succeeds.
    async fn activate_policy(
        &self,
        number: i64,
        approved_by: &str,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<PolicyVersion, StoreError>;

    /// Proposed → Rejected, with `event`, bumping the revision; returns the version as it
    /// now stands. [`StoreError::NotFound`] if there is no such version;
    /// [`StoreError::Conflict`] if it is not Proposed.
    async fn reject_policy(&self, number: i64, event: &AuditEvent) -> Result<PolicyVersion, StoreError>;

    // --- devices -----------------------------------------------------------------------------

    /// Registers a device, with `event`, bumping the revision. [`StoreError::Conflict`] if
    /// the id, the name or the secret digest is taken (by a retired device too).
    async fn create_device(&self, device: &Device, event: &AuditEvent) -> Result<(), StoreError>;

    async fn device_by_name(&self, name: &str) -> Result<Option<Device>, StoreError>;

    /// Looks a device up by the SHA-256 of the secret it presents (retired ones included;
    /// callers check `revoked_at`).
    async fn device_by_digest(&self, digest: &[u8; 32]) -> Result<Option<Device>, StoreError>;

    /// Every device, by name (retired ones included).
    async fn list_devices(&self) -> Result<Vec<Device>, StoreError>;

    /// Replaces every mutable field (name, site, flags, posture, secret digest, `revoked_at`)
    /// of the device with this id, with `event`, bumping the revision; the id and creation
    /// time never change. [`StoreError::NotFound`] if there is no such device;
    /// [`StoreError::Conflict`] if the new name or digest belongs to another device.
    async fn update_device(&self, device: &Device, event: &AuditEvent) -> Result<(), StoreError>;

    // --- governance: accounts (A6) ------------------------------------------------------------
    //
    // Every governance write below appends its `event` and bumps the revision in the same
    // transaction, except `record_login`.

    /// Records a successful sign-in at `at`; the time only moves forward (two nodes may
    /// report out of order). Not audited (the sign-in has its own record) and not an
    /// administrative change. [`StoreError::NotFound`] if there is no such user.
    async fn record_login(&self, user_id: &str, at: OffsetDateTime) -> Result<(), StoreError>;

    /// Active accounts whose own expiry is at or before `now`, by username.
    async fn users_expired(&self, now: OffsetDateTime) -> Result<Vec<User>, StoreError>;

    /// Active accounts whose last sign-in — or creation, if they never signed in — is
    /// before `before`, by username.
    async fn users_dormant(&self, before: OffsetDateTime) -> Result<Vec<User>, StoreError>;

    // --- governance: break-glass (HIPAA 164.312(a)(2)(ii)) --------------------------------

    /// Stores a new emergency access. [`StoreError::Conflict`] if the id is taken;
    /// [`StoreError::NotFound`] if the user does not exist; [`StoreError::Malformed`] if it
    /// carries a review already.
    async fn open_break_glass(&self, bg: &BreakGlass, event: &AuditEvent) -> Result<(), StoreError>;

    async fn break_glass(&self, id: &str) -> Result<Option<BreakGlass>, StoreError>;

    /// Every access (or, with `pending_only`, those not yet reviewed), newest first.
    async fn list_break_glass(&self, pending_only: bool) -> Result<Vec<BreakGlass>, StoreError>;

    /// Ends an access early, if it is in force at `at` (opened, not expired, not ended):
    /// returns whether it did; `event` is appended only if so. [`StoreError::NotFound`] if
    /// there is no such access.
    async fn end_break_glass(&self, id: &str, at: OffsetDateTime, event: &AuditEvent) -> Result<bool, StoreError>;

    /// Records the review if there is none yet (a conditional update: of concurrent reviews,
    /// on any node, exactly one is kept). Returns whether this one was; `event` is appended
    /// only if so. [`StoreError::NotFound`] if there is no such access. The self-review rule
    /// is the caller's ([`BreakGlass::review`]).
    async fn review_break_glass(&self, id: &str, review: &Review, event: &AuditEvent) -> Result<bool, StoreError>;

    /// The user's accesses in force at `now`, newest first.
    async fn active_break_glass_of(&self, user_id: &str, now: OffsetDateTime) -> Result<Vec<BreakGlass>, StoreError>;

    // --- governance: just-in-time elevation (A4) ----------------------------------------------

    /// Stores a pending request. [`StoreError::Conflict`] if the id is taken;
    /// [`StoreError::NotFound`] if the user does not exist; [`StoreError::Malformed`] if it
    /// is not pending.
    async fn request_elevation(&self, e: &Elevation, event: &AuditEvent) -> Result<(), StoreError>;

    async fn elevation(&self, id: &str) -> Result<Option<Elevation>, StoreError>;

    /// Every request (or, with `pending_only`, those still pending, stale ones included),
    /// newest first.
    async fn list_elevations(&self, pending_only: bool) -> Result<Vec<Elevation>, StoreError>;

    /// Writes `e.status` (approved, denied or cancelled) if the stored request is still
    /// pending — of concurrent decisions exactly one is kept — and returns whether it did;
    /// `event` is appended only if so. An approval gives the requester the stored request's
    /// role until `expires_at` in the same transaction (as [`User::grant_role_until`]: a
    /// permanent assignment stays permanent, a later expiry is kept), so the approval and
    /// the role appear together. [`StoreError::NotFound`] if there is no such request;
    /// [`StoreError::Malformed`] if `e.status` is pending.
    async fn decide_elevation(&self, e: &Elevation, event: &AuditEvent) -> Result<bool, StoreError>;

    // --- governance: business associates (V1) -------------------------------------------------

    /// [`StoreError::Conflict`] if the name is taken.
    async fn create_vendor(&self, vendor: &Vendor, event: &AuditEvent) -> Result<(), StoreError>;

    async fn vendor(&self, name: &str) -> Result<Option<Vendor>, StoreError>;

    /// Every vendor, by name.
    async fn list_vendors(&self) -> Result<Vec<Vendor>, StoreError>;

    /// Replaces everything but the name and the creation time. [`StoreError::NotFound`] if
    /// there is no such vendor.
    async fn update_vendor(&self, vendor: &Vendor, event: &AuditEvent) -> Result<(), StoreError>;

    /// The vendor's accounts, whatever their status, by username.
    async fn vendor_users(&self, name: &str) -> Result<Vec<User>, StoreError>;

    // --- governance: access reviews (A6) ------------------------------------------------------

    /// Stores a campaign with its items. [`StoreError::Conflict`] if an id is taken;
    /// [`StoreError::NotFound`] if an item names no user; [`StoreError::Malformed`] if an
    /// item belongs to another campaign.
    async fn create_campaign(&self, campaign: &Campaign, items: &[Item], event: &AuditEvent) -> Result<(), StoreError>;

    async fn campaign(&self, id: &str) -> Result<Option<Campaign>, StoreError>;

    /// Every campaign, newest first.
    async fn list_campaigns(&self) -> Result<Vec<Campaign>, StoreError>;

    /// The campaign's items, by username then role.
    async fn campaign_items(&self, campaign_id: &str) -> Result<Vec<Item>, StoreError>;

    /// Records a decision on an undecided item of an open campaign (of concurrent decisions
    /// exactly one is kept) and returns whether it did; `event` is appended only if so. A
    /// [`Decision::Revoke`] takes the item's role (as stored) from the account in the same
    /// transaction. `by` is the reviewer's username or
    /// [`DEADLINE_DECIDER`](wardgate_core::governance::DEADLINE_DECIDER); the rules on who
    /// may decide are the caller's ([`Campaign::decide`]). [`StoreError::NotFound`] if there
    /// is no such item.
    async fn decide_item(
        &self,
        item_id: &str,
        decision: Decision,
        by: &str,
        at: OffsetDateTime,
        comment: Option<&str>,
        event: &AuditEvent,
    ) -> Result<bool, StoreError>;

    /// Closes an open campaign; returns whether it did (`event` is appended only if so).
    /// [`StoreError::NotFound`] if there is no such campaign.
    async fn close_campaign(&self, id: &str, at: OffsetDateTime, event: &AuditEvent) -> Result<bool, StoreError>;

    // --- SCIM (L4) ---------------------------------------------------------------------------
    //
    // Provisioning from the HR system. Changes of status (disable, enable, terminate) and of
    // roles go through the account methods above; these keep what only SCIM needs.

    async fn create_scim_token(&self, token: &ScimToken, event: &AuditEvent) -> Result<(), StoreError>;

    async fn scim_token_by_digest(&self, digest: &[u8; 32]) -> Result<Option<ScimToken>, StoreError>;

    /// Every SCIM token, newest first.
    async fn scim_tokens(&self) -> Result<Vec<ScimToken>, StoreError>;

    /// [`StoreError::NotFound`] if there is no such token or it is revoked already.
    async fn revoke_scim_token(&self, id: &str, now: OffsetDateTime, event: &AuditEvent) -> Result<(), StoreError>;

    /// The SCIM attributes kept for an account (JSON), and when SCIM last changed them.
    async fn scim_attributes(&self, user_id: &str) -> Result<Option<(serde_json::Value, OffsetDateTime)>, StoreError>;

    /// The SCIM attributes of every account that has them: (user id, JSON, last change).
    async fn all_scim_attributes(&self) -> Result<Vec<(String, serde_json::Value, OffsetDateTime)>, StoreError>;

    /// Writes an account's profile (display name, email, employee id) and its SCIM
    /// attributes together with `event`. [`StoreError::NotFound`] for an unknown or
    /// terminated account.
    async fn save_scim_user(
        &self,
        user: &User,
        attributes: &serde_json::Value,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// [`StoreError::Conflict`] if another group has the same name, regardless of case.
    async fn create_scim_group(&self, group: &ScimGroup, event: &AuditEvent) -> Result<(), StoreError>;

    async fn scim_group(&self, id: &str) -> Result<Option<ScimGroup>, StoreError>;

    /// Every group, by name.
    async fn scim_groups(&self) -> Result<Vec<ScimGroup>, StoreError>;

    /// [`StoreError::NotFound`], or [`StoreError::Conflict`] for a name taken by another group.
    async fn update_scim_group(&self, group: &ScimGroup, event: &AuditEvent) -> Result<(), StoreError>;

    async fn delete_scim_group(&self, id: &str, event: &AuditEvent) -> Result<(), StoreError>;

    // --- identity lifecycle (L1-L3) ---
    //
    // Every write below appends its `event` in the same transaction and bumps the revision.

    /// Stores an identity proofing record. [`StoreError::NotFound`] if the user does not
    /// exist; [`StoreError::Conflict`] if the id is taken.
    async fn record_proofing(&self, proofing: &Proofing, event: &AuditEvent) -> Result<(), StoreError>;

    /// The user's proofing records, oldest first.
    async fn proofings_of(&self, user_id: &str) -> Result<Vec<Proofing>, StoreError>;

    /// Every factor of one user (or of everyone), optionally only those with an expiry
    /// before `expiring_before`; by creation time. Secrets included: callers never show them.
    async fn factor_inventory(
        &self,
        user_id: Option<&str>,
        expiring_before: Option<OffsetDateTime>,
    ) -> Result<Vec<Factor>, StoreError>;

    /// Sets (or, with `None`, clears) a factor's expiry. [`StoreError::NotFound`] if the user
    /// has no such factor.
    async fn set_factor_expiry(
        &self,
        user_id: &str,
        factor_id: &str,
        expires_at: Option<OffsetDateTime>,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Stores a pending recovery request. [`StoreError::NotFound`] if the user does not
    /// exist; [`StoreError::Conflict`] if the id is taken; [`StoreError::Malformed`] if it is
    /// not pending.
    async fn open_recovery(&self, request: &RecoveryRequest, event: &AuditEvent) -> Result<(), StoreError>;

    async fn recovery_request(&self, id: &str) -> Result<Option<RecoveryRequest>, StoreError>;

    /// Every request (or only the pending ones), newest first.
    async fn list_recovery(&self, pending_only: bool) -> Result<Vec<RecoveryRequest>, StoreError>;

    /// Writes an approval (with the digest of its one-time link) or a denial if the stored
    /// request is still pending — of concurrent decisions exactly one is kept — and returns
    /// whether it did; `event` is appended only if so. [`StoreError::NotFound`] if there is
    /// no such request; [`StoreError::Malformed`] if `request.status` is not a decision or
    /// an approval comes without a digest.
    async fn decide_recovery(
        &self,
        request: &RecoveryRequest,
        link_digest: Option<&[u8; 32]>,
        event: &AuditEvent,
    ) -> Result<bool, StoreError>;

    /// The approved request whose link has this digest, if it is unused and unexpired at `now`.
    async fn recovery_by_link(
        &self,
        digest: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<Option<RecoveryRequest>, StoreError>;

    /// Atomically: the link is approved, unused, unexpired at `now` and belongs to
    /// `factor.user_id` → the request becomes `used` (naming the factor), the factor is
    /// stored, the factors named in `retire` are removed (only those of the same account:
    /// the ones the person lost) and `event` appended. Otherwise
    /// [`StoreError::EnrollmentInvalid`] and nothing changes, so a link works once.
    async fn complete_recovery(
        &self,
        digest: &[u8; 32],
        now: OffsetDateTime,
        factor: &Factor,
        retire: &[String],
        event: &AuditEvent,
    ) -> Result<(), StoreError>;
}

/// How many rows [`Store::purge_oidc_history`] deleted, by kind (the refresh tokens of
/// deleted grants included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OidcPurged {
    pub notices: u64,
    pub codes: u64,
    pub refresh_tokens: u64,
    pub grants: u64,
}

/// What redeeming an authorization code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRedemption {
    Fresh(AuthCode),
    Reused(AuthCode),
    Unknown,
}

/// A refresh token as [`Store::refresh_holder`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshHolder {
    pub token: RefreshToken,
    pub grant: Grant,
    /// The grant's account; `None` for a client's own grant or a deleted account.
    pub user: Option<User>,
    /// The session the grant came from, if the grant names one and it is still stored
    /// (revoked or not: the caller judges its state).
    pub session: Option<Session>,
}

/// What presenting a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    Rotated(Grant),
    /// The token had been used before: the grant is now revoked.
    Reused(Grant),
    Unknown,
}
