//! Sessions and their accounts as this node last read them, so that the requests of a
//! signed-in person — above all the gateway's, one per page and asset of a protected
//! application — do not each wait for a database read.
//!
//! An entry is used only while nothing was committed through this process's store since it
//! was read ([`wardgate_store::changes`]): signing out, ending a session, disabling an
//! account or removing a role on this node is seen by the very next request. Changes made
//! elsewhere (another node on PostgreSQL, the command line) are seen once the entry is
//! older than [`FRESH_FOR`]. The checks that depend on the time — idle timeout, absolute
//! lifetime, role and account expiry — are made on every request with the current time,
//! cached or not.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use wardgate_core::identity::User;
use wardgate_core::session::Session;

/// How long a change made outside this process may go unseen.
pub const FRESH_FOR: Duration = Duration::from_millis(500);
/// Entries kept; past it the cache starts again empty (each entry is a few hundred bytes).
const CAP: usize = 50_000;

struct Entry {
    session: Session,
    user: User,
    read_at: Instant,
    /// [`wardgate_store::changes`] noted before the read.
    changes: u64,
}

#[derive(Default)]
pub struct SessionCache {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

impl SessionCache {
    /// The session and account for `digest`, if read since the last change (`changes` is
    /// the count now) and less than [`FRESH_FOR`] ago.
    pub fn get(&self, digest: &[u8; 32], changes: u64) -> Option<(Session, User)> {
        let mut entries = self.entries.lock().ok()?;
        let e = entries.get(digest)?;
        if e.changes == changes && e.read_at.elapsed() < FRESH_FOR {
            return Some((e.session.clone(), e.user.clone()));
        }
        entries.remove(digest);
        None
    }

    /// Keeps what was read for `digest`; `changes` is the count noted *before* the read, so
    /// that a change committed meanwhile makes the entry stale at once.
    pub fn put(&self, digest: &[u8; 32], session: &Session, user: &User, changes: u64, read_at: Instant) {
        let Ok(mut entries) = self.entries.lock() else { return };
        if entries.len() >= CAP {
            entries.clear();
        }
        entries.insert(*digest, Entry { session: session.clone(), user: user.clone(), read_at, changes });
    }

    pub fn forget(&self, digest: &[u8; 32]) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(digest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;
    use wardgate_core::identity::AccountStatus;
    use wardgate_core::login::{Aal, Identified};

    fn sample() -> (Session, User) {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let username = wardgate_core::identity::Username::parse("nina").unwrap();
        let user =
            User::new("00112233445566778899aabbccddeeff".into(), username, "Nina".into(), AccountStatus::Active, now);
        let auth = Identified { user_id: user.id.clone(), correlation_id: "c".into() }
            .first_factor(wardgate_core::login::FactorUsed::Passphrase)
            .and_then(|f| f.second_factor(wardgate_core::login::FactorUsed::Totp))
            .unwrap();
        let (session, _) = Session::start(&auth, now, None, None).unwrap();
        assert_eq!(session.aal, Aal::Aal2);
        (session, user)
    }

    #[test]
    fn an_entry_serves_until_a_change_or_its_age() {
        let cache = SessionCache::default();
        let (session, user) = sample();
        let d = [1u8; 32];
        assert!(cache.get(&d, 7).is_none());
        cache.put(&d, &session, &user, 7, Instant::now());
        assert_eq!(cache.get(&d, 7).map(|(s, _)| s.id), Some(session.id.clone()));
        // A change committed since the read: stale, and gone.
        assert!(cache.get(&d, 8).is_none());
        assert!(cache.get(&d, 7).is_none());
        // Older than FRESH_FOR: stale.
        cache.put(&d, &session, &user, 7, Instant::now() - FRESH_FOR);
        assert!(cache.get(&d, 7).is_none());
        cache.put(&d, &session, &user, 7, Instant::now());
        cache.forget(&d);
        assert!(cache.get(&d, 7).is_none());
    }
}
