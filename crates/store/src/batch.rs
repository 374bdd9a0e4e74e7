//! Writes that ride in the audit log's group commit.
//!
//! A token grant is one small write and one audit record; written alone, each pays a whole
//! durable commit (an fsync on SQLite) behind the one write lock. The audit writer already
//! batches records; these are the grant-path writes it batches with them, so that many
//! concurrent grants share one transaction and one commit. Each write keeps the meaning of
//! the single-write [`Store`](crate::Store) method it mirrors, and its audit record is
//! appended in the same transaction, in batch order, as everywhere else.

use time::OffsetDateTime;
use wardgate_core::audit::AuditEvent;
use wardgate_core::oidc::{AuthCode, Grant, RefreshToken};

use crate::{CodeRedemption, Rotation};

/// One write and what it records.
#[derive(Debug, Clone)]
pub enum Write {
    /// Only the record.
    Audit(AuditEvent),
    /// As [`Store::insert_grant`](crate::Store::insert_grant).
    InsertGrant { grant: Grant, refresh: Option<RefreshToken>, event: AuditEvent },
    /// As [`Store::insert_auth_code`](crate::Store::insert_auth_code), with the authorization's record.
    InsertCode { code: AuthCode, event: AuditEvent },
    /// As [`Store::redeem_auth_code`](crate::Store::redeem_auth_code); no record (the grant that
    /// follows, or the refusal, is the record).
    RedeemCode { digest: [u8; 32], now: OffsetDateTime, grant_id: String },
    /// The redemption and the grant it buys in one write: the code is spent under
    /// `grant.id` and, only if it was fresh, the grant, its first refresh token and `event`
    /// are stored. Answers the redemption, as [`Write::RedeemCode`] does.
    ///
    /// `read` is the code as the caller read it just before, unused and unexpired, if it
    /// was: the store may then spend it without reading it again, guarded so that a code
    /// spent meanwhile fails the blind attempt and takes the reading path instead.
    RedeemIntoGrant {
        digest: [u8; 32],
        now: OffsetDateTime,
        grant: Grant,
        refresh: RefreshToken,
        event: AuditEvent,
        read: Option<AuthCode>,
    },
    /// As [`Store::rotate_refresh_token`](crate::Store::rotate_refresh_token): `rotated` is
    /// recorded when the token is exchanged, `reused` when a replay revokes the grant.
    ///
    /// `live` is the token's grant as the caller read it just before, when the token was
    /// unused and unexpired and the grant not revoked: as `read` above.
    RotateRefresh {
        digest: [u8; 32],
        next: RefreshToken,
        now: OffsetDateTime,
        rotated: AuditEvent,
        reused: AuditEvent,
        live: Option<Grant>,
    },
}

impl Write {
    pub fn is_audit_only(&self) -> bool {
        matches!(self, Write::Audit(_))
    }

    /// Adds rows and finds nothing: a batch of these needs no answer from the database
    /// before its commit, so it can be sent as one statement list.
    pub fn is_insert(&self) -> bool {
        matches!(self, Write::Audit(_) | Write::InsertGrant { .. } | Write::InsertCode { .. })
    }

    /// An insert, or a spend whose outcome the caller read ahead: a batch of these can be
    /// sent as one guarded statement list.
    pub fn is_read_ahead(&self) -> bool {
        self.is_insert()
            || matches!(self, Write::RedeemIntoGrant { read: Some(_), .. } | Write::RotateRefresh { live: Some(_), .. })
    }
}

/// What a write found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Done,
    Redemption(CodeRedemption),
    Rotation(Rotation),
}
