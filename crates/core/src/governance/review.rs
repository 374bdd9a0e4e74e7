//! Periodic access reviews (A6, recertification): a campaign asks one reviewer to confirm
//! or revoke each role held by the accounts in its scope, before a deadline. What happens
//! to items left undecided at the deadline is the campaign's default action.
//!
//! A reviewer never decides about their own account: such items are left to the default
//! action (or to the administrator who escalates them).

use time::OffsetDateTime;

use crate::identity::{AccountStatus, User, Username, valid_role};

/// Who a campaign covers. The string forms `role:NAME`, `manager:USERNAME` and
/// `vendor:NAME` are stable (stored, and given on the command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every account holding this role (one item each, for that role).
    Role(String),
    /// Every account whose manager this is (one item per role held).
    Manager(Username),
    /// Every account of this vendor (one item per role held).
    Vendor(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a review scope: expected role:NAME, manager:USERNAME or vendor:NAME")]
pub struct ScopeError(pub String);

impl Scope {
    pub fn parse(s: &str) -> Result<Self, ScopeError> {
        let bad = || ScopeError(s.to_owned());
        let (kind, value) = s.split_once(':').ok_or_else(bad)?;
        match kind {
            "role" if valid_role(value) => Ok(Scope::Role(value.to_owned())),
            // A username is folded to lowercase; the stored form is the folded one.
            "manager" if !value.trim().is_empty() => Username::parse(value).map(Scope::Manager).map_err(|_| bad()),
            "vendor" if super::vendor::valid_vendor_name(value) => Ok(Scope::Vendor(value.to_owned())),
            _ => Err(bad()),
        }
    }

    /// Whether `user` falls under this scope.
    pub fn includes(&self, user: &User) -> bool {
        match self {
            Scope::Role(role) => user.roles.iter().any(|r| r == role),
            Scope::Manager(manager) => user.manager.as_ref() == Some(manager),
            Scope::Vendor(vendor) => user.vendor.as_deref() == Some(vendor.as_str()),
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Role(r) => write!(f, "role:{r}"),
            Scope::Manager(m) => write!(f, "manager:{m}"),
            Scope::Vendor(v) => write!(f, "vendor:{v}"),
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// What happens to an item nobody decided by the deadline. Stable strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultAction {
    /// The role is taken away: access nobody vouches for ends (the safe default).
    Revoke,
    /// The role stays and the item is reported to the administrators.
    Escalate,
}

impl DefaultAction {
    pub fn as_str(self) -> &'static str {
        match self {
            DefaultAction::Revoke => "revoke",
            DefaultAction::Escalate => "escalate",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Revoke, Self::Escalate].into_iter().find(|k| k.as_str() == s)
    }
}

/// A reviewer's decision about one role of one account. Stable strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Keep,
    Revoke,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Keep => "keep",
            Decision::Revoke => "revoke",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Keep, Self::Revoke].into_iter().find(|k| k.as_str() == s)
    }
}

/// Recorded as `decided_by` for a default action applied at the deadline. Not a username
/// (usernames have no `:`), so it cannot be mistaken for a person.
pub const DEADLINE_DECIDER: &str = "system:deadline";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign {
    /// Random, stable, never reused.
    pub id: String,
    pub scope: Scope,
    pub reviewer: Username,
    /// Who started it: `operator:<name>`, `user:<name>` or `token:<id>:<name>`.
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub deadline: OffsetDateTime,
    pub default_action: DefaultAction,
    pub closed_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Random, stable, never reused.
    pub id: String,
    pub campaign_id: String,
    pub user_id: String,
    pub username: Username,
    pub role: String,
    pub decision: Option<Decision>,
    /// The reviewer's username, or [`DEADLINE_DECIDER`].
    pub decided_by: Option<String>,
    pub decided_at: Option<OffsetDateTime>,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    #[error("the deadline must lie after the campaign starts")]
    DeadlineNotAfterStart,
    #[error("the campaign is closed")]
    Closed,
    #[error("the item belongs to another campaign")]
    WrongCampaign,
    #[error("only the campaign's reviewer decides its items")]
    NotReviewer,
    #[error("a reviewer cannot decide about their own account")]
    SelfReview,
    #[error("the item has already been decided")]
    AlreadyDecided,
}

impl Campaign {
    /// An open campaign started at `now`.
    pub fn new(
        id: String,
        scope: Scope,
        reviewer: Username,
        created_by: String,
        deadline: OffsetDateTime,
        default_action: DefaultAction,
        now: OffsetDateTime,
    ) -> Result<Self, ReviewError> {
        if deadline <= now {
            return Err(ReviewError::DeadlineNotAfterStart);
        }
        Ok(Self { id, scope, reviewer, created_by, created_at: now, deadline, default_action, closed_at: None })
    }

    pub fn is_open(&self) -> bool {
        self.closed_at.is_none()
    }

    /// Open with its deadline passed: the default action is due.
    pub fn overdue_at(&self, now: OffsetDateTime) -> bool {
        self.is_open() && now >= self.deadline
    }

    /// The items to review among `users`: the accounts in scope that are not terminated
    /// (a terminated account can never be used again), one item per role the scope
    /// concerns, ordered by username then role. `new_id` names each item.
    pub fn items_for(&self, users: &[User], mut new_id: impl FnMut() -> String) -> Vec<Item> {
        let mut pairs: Vec<(&User, &str)> = users
            .iter()
            .filter(|u| u.status != AccountStatus::Terminated && self.scope.includes(u))
            .flat_map(|u| {
                u.roles
                    .iter()
                    .filter(|r| !matches!(&self.scope, Scope::Role(only) if only != *r))
                    .map(move |r| (u, r.as_str()))
            })
            .collect();
        pairs.sort_by(|a, b| (a.0.username.as_str(), a.1).cmp(&(b.0.username.as_str(), b.1)));
        pairs
            .into_iter()
            .map(|(u, role)| Item {
                id: new_id(),
                campaign_id: self.id.clone(),
                user_id: u.id.clone(),
                username: u.username.clone(),
                role: role.to_owned(),
                decision: None,
                decided_by: None,
                decided_at: None,
                comment: None,
            })
            .collect()
    }

    /// Records `by`'s decision on `item`: only the campaign's reviewer, never about their
    /// own account, once, while the campaign is open (the deadline passing does not stop a
    /// late decision until the campaign is closed). An empty comment is kept as none.
    pub fn decide(
        &self,
        item: &mut Item,
        by: &Username,
        decision: Decision,
        comment: &str,
        now: OffsetDateTime,
    ) -> Result<(), ReviewError> {
        if !self.is_open() {
            return Err(ReviewError::Closed);
        }
        if item.campaign_id != self.id {
            return Err(ReviewError::WrongCampaign);
        }
        if *by != self.reviewer {
            return Err(ReviewError::NotReviewer);
        }
        if *by == item.username {
            return Err(ReviewError::SelfReview);
        }
        if item.decision.is_some() {
            return Err(ReviewError::AlreadyDecided);
        }
        let comment = comment.trim();
        item.decision = Some(decision);
        item.decided_by = Some(by.to_string());
        item.decided_at = Some(now);
        item.comment = (!comment.is_empty()).then(|| comment.to_owned());
        Ok(())
    }

    /// Applies the default action to an undecided item once the deadline has passed:
    /// [`DefaultAction::Revoke`] decides it (by [`DEADLINE_DECIDER`]) and returns the
    /// decision; [`DefaultAction::Escalate`] leaves it for a person and returns `None`, as
    /// does an item that is decided, of another campaign, or not yet due.
    pub fn apply_default(&self, item: &mut Item, now: OffsetDateTime) -> Option<Decision> {
        let due = self.overdue_at(now) && item.campaign_id == self.id && item.decision.is_none();
        if !due || self.default_action != DefaultAction::Revoke {
            return None;
        }
        item.decision = Some(Decision::Revoke);
        item.decided_by = Some(DEADLINE_DECIDER.to_owned());
        item.decided_at = Some(now);
        item.comment = Some("not reviewed by the deadline".to_owned());
        Some(Decision::Revoke)
    }

    /// Closes the campaign; decisions stop.
    pub fn close(&mut self, now: OffsetDateTime) -> Result<(), ReviewError> {
        if !self.is_open() {
            return Err(ReviewError::Closed);
        }
        self.closed_at = Some(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use time::Duration;
    use time::macros::datetime;

    use super::*;

    const T0: OffsetDateTime = datetime!(2026-12-01 08:00 UTC);

    fn name(s: &str) -> Username {
        Username::parse(s).unwrap()
    }

    fn person(id: &str, username: &str, roles: &[&str]) -> User {
        User::new(id.into(), name(username), username.into(), AccountStatus::Active, T0)
            .with_roles(roles.iter().map(|r| (*r).to_owned()))
    }

    fn campaign(scope: &str, default_action: DefaultAction) -> Campaign {
        Campaign::new(
            "c1".into(),
            Scope::parse(scope).unwrap(),
            name("sam"),
            "operator:root".into(),
            T0 + Duration::days(14),
            default_action,
            T0,
        )
        .unwrap()
    }

    fn ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("i{n}")
        }
    }

    #[test]
    fn scopes_parse_and_print_their_stable_form() {
        for (text, scope) in [
            ("role:nurse", Scope::Role("nurse".into())),
            ("role:ward:4b", Scope::Role("ward:4b".into())),
            ("manager:sam", Scope::Manager(name("sam"))),
            ("vendor:acme", Scope::Vendor("acme".into())),
        ] {
            assert_eq!(Scope::parse(text), Ok(scope.clone()), "{text}");
            assert_eq!(scope.to_string(), text);
            assert_eq!(text.parse::<Scope>(), Ok(scope));
        }
        // Usernames fold to lowercase, as everywhere.
        assert_eq!(Scope::parse("manager:Sam").unwrap().to_string(), "manager:sam");
        for bad in [
            "",
            "nurse",
            "role:",
            "role:Nurse",
            "manager:",
            "manager: ",
            "manager:a b",
            "vendor:",
            "vendor:a:b",
            "team:x",
            "ROLE:nurse",
            ":nurse",
        ] {
            assert_eq!(Scope::parse(bad), Err(ScopeError(bad.into())), "{bad:?}");
        }
        let msg = Scope::parse("team:x").unwrap_err().to_string();
        assert!(msg.contains("role:NAME, manager:USERNAME or vendor:NAME"), "{msg}");
    }

    #[test]
    fn actions_and_decisions_round_trip() {
        for a in [DefaultAction::Revoke, DefaultAction::Escalate] {
            assert_eq!(DefaultAction::parse(a.as_str()), Some(a));
        }
        for d in [Decision::Keep, Decision::Revoke] {
            assert_eq!(Decision::parse(d.as_str()), Some(d));
        }
        assert_eq!((DefaultAction::parse("keep"), Decision::parse("escalate")), (None, None));
    }

    #[test]
    fn a_deadline_must_follow_the_start() {
        let r = Campaign::new(
            "c".into(),
            Scope::Role("nurse".into()),
            name("sam"),
            "x".into(),
            T0,
            DefaultAction::Revoke,
            T0,
        );
        assert_eq!(r, Err(ReviewError::DeadlineNotAfterStart));
    }

    #[test]
    fn items_cover_the_scope_one_per_role_and_skip_terminated_accounts() {
        let mut ann = person("u-ann", "ann", &["nurse", "pharmacist"]);
        ann.manager = Some(name("sam"));
        let mut bob = person("u-bob", "bob", &["nurse"]);
        bob.vendor = Some("acme".into());
        bob.manager = Some(name("sam"));
        let gone = User { status: AccountStatus::Terminated, ..person("u-cy", "cy", &["nurse"]) };
        let sam = person("u-sam", "sam", &["nurse", "charge-nurse"]);
        let users = [sam, bob, ann, gone];
        let summary = |items: Vec<Item>| {
            items.into_iter().map(|i| format!("{}:{}:{}", i.id, i.username, i.role)).collect::<Vec<_>>()
        };

        let by_role = campaign("role:nurse", DefaultAction::Revoke).items_for(&users, ids());
        assert!(by_role.iter().all(|i| i.campaign_id == "c1" && i.decision.is_none() && i.decided_by.is_none()));
        assert_eq!(summary(by_role), ["i1:ann:nurse", "i2:bob:nurse", "i3:sam:nurse"]);
        let by_manager = campaign("manager:sam", DefaultAction::Revoke).items_for(&users, ids());
        assert_eq!(summary(by_manager), ["i1:ann:nurse", "i2:ann:pharmacist", "i3:bob:nurse"]);
        let by_vendor = campaign("vendor:acme", DefaultAction::Revoke).items_for(&users, ids());
        assert_eq!(summary(by_vendor), ["i1:bob:nurse"]);
        assert!(campaign("vendor:globex", DefaultAction::Revoke).items_for(&users, ids()).is_empty());
    }

    #[test]
    fn the_reviewer_decides_once_and_never_about_their_own_account() {
        let c = campaign("role:nurse", DefaultAction::Revoke);
        let users = [person("u-ann", "ann", &["nurse"]), person("u-sam", "sam", &["nurse"])];
        let mut items = c.items_for(&users, ids());
        let (ann, sam) = items.split_at_mut(1);
        let (ann, sam) = (&mut ann[0], &mut sam[0]);
        let now = T0 + Duration::days(1);

        assert_eq!(c.decide(sam, &name("sam"), Decision::Keep, "", now), Err(ReviewError::SelfReview));
        assert_eq!(sam.decision, None);
        assert_eq!(c.decide(ann, &name("ola"), Decision::Keep, "", now), Err(ReviewError::NotReviewer));
        c.decide(ann, &name("sam"), Decision::Revoke, " moved to outpatients ", now).unwrap();
        assert_eq!(
            (ann.decision, ann.decided_by.as_deref(), ann.decided_at, ann.comment.as_deref()),
            (Some(Decision::Revoke), Some("sam"), Some(now), Some("moved to outpatients"))
        );
        let before = ann.clone();
        assert_eq!(c.decide(ann, &name("sam"), Decision::Keep, "", now), Err(ReviewError::AlreadyDecided));
        assert_eq!(*ann, before);

        let mut other = Item { campaign_id: "c2".into(), ..before.clone() };
        other.decision = None;
        assert_eq!(c.decide(&mut other, &name("sam"), Decision::Keep, "", now), Err(ReviewError::WrongCampaign));
        let mut closed = c.clone();
        closed.close(now).unwrap();
        assert_eq!(closed.close(now), Err(ReviewError::Closed));
        let mut fresh = Item { decision: None, ..before };
        assert_eq!(closed.decide(&mut fresh, &name("sam"), Decision::Keep, "", now), Err(ReviewError::Closed));
        // An empty comment is none.
        c.decide(&mut fresh, &name("sam"), Decision::Keep, "  ", now).unwrap();
        assert_eq!(fresh.comment, None);
    }

    #[test]
    fn undecided_items_get_the_default_action_only_after_the_deadline() {
        let users = [person("u-ann", "ann", &["nurse"])];
        let revoke = campaign("role:nurse", DefaultAction::Revoke);
        let mut item = revoke.items_for(&users, ids()).remove(0);
        let deadline = revoke.deadline;
        assert!(!revoke.overdue_at(deadline - Duration::seconds(1)));
        assert_eq!(revoke.apply_default(&mut item, deadline - Duration::seconds(1)), None);
        assert_eq!(item.decision, None);
        assert!(revoke.overdue_at(deadline));
        assert_eq!(revoke.apply_default(&mut item, deadline), Some(Decision::Revoke));
        assert_eq!((item.decided_by.as_deref(), item.decided_at), (Some(DEADLINE_DECIDER), Some(deadline)));
        assert_eq!(revoke.apply_default(&mut item, deadline), None, "decided once");

        let escalate = campaign("role:nurse", DefaultAction::Escalate);
        let mut item = escalate.items_for(&users, ids()).remove(0);
        assert_eq!(escalate.apply_default(&mut item, deadline + Duration::days(1)), None);
        assert_eq!(item.decision, None, "escalation leaves the decision to a person");

        let mut closed = revoke.clone();
        closed.close(deadline).unwrap();
        assert!(!closed.overdue_at(deadline + Duration::days(1)));
        let mut item = closed.items_for(&users, ids()).remove(0);
        assert_eq!(closed.apply_default(&mut item, deadline + Duration::days(1)), None);
    }
}
