//! `wardgate breakglass|elevate|vendor|review|report`: emergency and privileged access,
//! business associates and access reviews, from the server's shell.

use clap::Subcommand;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, Time};
use wardgate_core::governance::{Decision, DefaultAction, ReviewOutcome, Scope};
use wardgate_core::policy::document::parse_duration;
use wardgate_server::governance::{GovernanceError, breakglass, elevation, reviews, vendors};
use wardgate_server::roles::catalog;

use crate::user::{actor, open, print_json, print_table};
use crate::{Failure, GlobalArgs};

#[derive(Subcommand)]
pub enum BreakglassCommand {
    /// Every break-glass access, newest first; overdue reviews are flagged.
    List {
        /// Only those not yet reviewed.
        #[arg(long)]
        pending: bool,
        #[arg(long)]
        json: bool,
    },
    /// Record a review finding. The reviewer needs `breakglass.review` and cannot be the
    /// person who opened the access.
    Review {
        id: String,
        /// The reviewer's username.
        #[arg(long = "as", value_name = "USERNAME")]
        as_: String,
        /// justified, not_justified or needs_follow_up.
        #[arg(long)]
        outcome: String,
        /// Required unless the finding is `justified`.
        #[arg(long, default_value = "")]
        comment: String,
    },
}

#[derive(Subcommand)]
pub enum ElevateCommand {
    /// Ask for a role for a limited time; another administrator approves.
    Request {
        user: String,
        role: String,
        /// How long, e.g. 2h (at most governance.elevation_max_hours).
        #[arg(long = "for", value_name = "DURATION")]
        for_: String,
        #[arg(long)]
        reason: String,
    },
    /// Approve a request (two-person rule: not the requester).
    Approve {
        id: String,
        #[arg(long = "as", value_name = "USERNAME")]
        as_: String,
    },
    /// Deny a request.
    Deny {
        id: String,
        #[arg(long = "as", value_name = "USERNAME")]
        as_: String,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Requests, newest first.
    List {
        #[arg(long)]
        pending: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum VendorCommand {
    /// Register a business associate and its agreement (BAA).
    Add {
        /// 1-64 characters of a-z, 0-9, '.', '_', '-'.
        name: String,
        #[arg(long)]
        display: String,
        /// The agreement's reference.
        #[arg(long)]
        baa: String,
        /// YYYY-MM-DD.
        #[arg(long)]
        baa_effective: String,
        /// YYYY-MM-DD; vendor accounts expire no later than this.
        #[arg(long)]
        baa_expires: String,
        /// The staff member responsible for the vendor.
        #[arg(long)]
        sponsor: String,
    },
    /// Change a vendor; accounts that would outlive a shortened agreement are brought forward.
    Set {
        name: String,
        #[arg(long)]
        display: Option<String>,
        #[arg(long)]
        baa: Option<String>,
        #[arg(long)]
        baa_effective: Option<String>,
        #[arg(long)]
        baa_expires: Option<String>,
        #[arg(long)]
        sponsor: Option<String>,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    /// A vendor with its accounts.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum ReviewCommand {
    /// Open a recertification campaign over role:ROLE, manager:USERNAME or vendor:NAME.
    Start {
        #[arg(long)]
        scope: String,
        #[arg(long)]
        reviewer: String,
        /// How long the reviewer has, e.g. 14d.
        #[arg(long, default_value = "14d")]
        deadline: String,
        /// What undecided items become at the deadline: revoke or escalate
        /// (default: governance.review_default_action).
        #[arg(long = "default")]
        default_action: Option<String>,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    /// A campaign and its items.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Keep or revoke one item; a revocation takes the role away at once.
    Decide {
        item: String,
        /// keep or revoke.
        decision: String,
        #[arg(long = "as", value_name = "USERNAME")]
        as_: String,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Close a campaign; past its deadline, undecided items follow the default first.
    Close { id: String },
}

#[derive(Subcommand)]
pub enum ReportCommand {
    /// Each vendor's accounts, factors, last access and MFA evidence.
    Vendors {
        /// json or html.
        #[arg(long, default_value = "json")]
        format: String,
    },
    /// Administrative overrides read from the audit log: unlocks, passphrase resets, factor
    /// removals, re-enabled accounts, break-glass accesses, approved elevations.
    Overrides {
        /// From this day (YYYY-MM-DD) or time (RFC 3339); default: 90 days ago.
        #[arg(long)]
        since: Option<String>,
        /// json or html.
        #[arg(long, default_value = "json")]
        format: String,
    },
}

fn fail(e: GovernanceError) -> Failure {
    Failure { code: e.exit_code(), message: e.to_string() }
}

fn invalid(message: String) -> Failure {
    Failure { code: 2, message }
}

fn duration(flag: &str, s: &str) -> Result<time::Duration, Failure> {
    parse_duration(s).ok_or_else(|| invalid(format!("{flag} {s:?}: a duration such as 2h or 14d")))
}

pub fn date(flag: &str, s: &str) -> Result<Date, Failure> {
    Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| invalid(format!("{flag} {s:?}: a date such as 2027-06-30")))
}

/// An RFC 3339 time, or a date (midnight UTC at its start).
pub fn instant(flag: &str, s: &str) -> Result<OffsetDateTime, Failure> {
    OffsetDateTime::parse(s, &Rfc3339).or_else(|_| date(flag, s).map(|d| d.with_time(Time::MIDNIGHT).assume_utc()))
}

fn s(v: &Value, k: &str) -> String {
    match &v[k] {
        Value::String(x) => x.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub async fn breakglass_run(global: &GlobalArgs, cmd: BreakglassCommand) -> Result<(), Failure> {
    let inst = open(global).await?;
    let now = OffsetDateTime::now_utc();
    let within = inst.settings.governance.review_within();
    match cmd {
        BreakglassCommand::List { pending, json } => {
            let list = inst.store.list_break_glass(pending).await?;
            let items: Vec<Value> = list.iter().map(|b| breakglass::json(b, within, now)).collect();
            if json {
                return print_json(&items);
            }
            let rows = items
                .iter()
                .map(|b| {
                    let review = match &b["review"] {
                        Value::Null if b["overdue"] == true => "OVERDUE".to_owned(),
                        Value::Null => "pending".to_owned(),
                        r => format!("{} by {}", s(r, "outcome"), s(r, "reviewer")),
                    };
                    vec![
                        s(b, "id"),
                        s(b, "username"),
                        s(b, "reason_code"),
                        s(b, "opened_at"),
                        if b["active"] == true { "active".into() } else { "ended".into() },
                        review,
                    ]
                })
                .collect();
            print_table(&["ID", "USERNAME", "REASON", "OPENED", "ACCESS", "REVIEW"], rows);
            let overdue = items.iter().filter(|b| b["overdue"] == true).count();
            if overdue > 0 {
                println!("{overdue} review(s) overdue (more than {} days).", within.whole_days());
            }
        }
        BreakglassCommand::Review { id, as_, outcome, comment } => {
            let o = ReviewOutcome::parse(&outcome).ok_or_else(|| {
                invalid(format!("--outcome {outcome:?}: justified, not_justified or needs_follow_up"))
            })?;
            let policy = catalog(&*inst.store).await?;
            let bg =
                breakglass::review(&*inst.store, &policy, &actor(), &id, &as_, o, &comment, now).await.map_err(fail)?;
            println!("Break-glass {} by {} reviewed by {as_}: {}.", bg.id, bg.username, o.as_str());
        }
    }
    Ok(())
}

pub async fn elevate_run(global: &GlobalArgs, cmd: ElevateCommand) -> Result<(), Failure> {
    let inst = open(global).await?;
    let now = OffsetDateTime::now_utc();
    let store = &*inst.store;
    match cmd {
        ElevateCommand::Request { user, role, for_, reason } => {
            let policy = catalog(store).await?;
            let max = inst.settings.governance.elevation_max();
            let d = duration("--for", &for_)?;
            let e =
                elevation::request(store, &policy, &actor(), &user, &role, d, max, &reason, now).await.map_err(fail)?;
            println!("Request {} : {} asks for {} for {for_}. Another administrator approves with:", e.id, user, role);
            println!("  wardgate elevate approve {} --as USERNAME", e.id);
        }
        ElevateCommand::Approve { id, as_ } => {
            let e = elevation::approve(store, &actor(), &id, &as_, now).await.map_err(fail)?;
            let v = elevation::json(&e, now);
            println!("{} holds {} until {} (approved by {as_}).", e.username, e.role, s(&v, "expires_at"));
        }
        ElevateCommand::Deny { id, as_, comment } => {
            let e = elevation::deny(store, &actor(), &id, &as_, &comment, now).await.map_err(fail)?;
            println!("Request {} of {} for {} denied by {as_}.", e.id, e.username, e.role);
        }
        ElevateCommand::List { pending, json } => {
            let items: Vec<Value> =
                store.list_elevations(pending).await?.iter().map(|e| elevation::json(e, now)).collect();
            if json {
                return print_json(&items);
            }
            let rows = items
                .iter()
                .map(|e| {
                    let status = if e["stale"] == true { "stale".to_owned() } else { s(e, "status") };
                    vec![s(e, "id"), s(e, "username"), s(e, "role"), status, s(e, "expires_at"), s(e, "reason")]
                })
                .collect();
            print_table(&["ID", "USERNAME", "ROLE", "STATUS", "UNTIL", "REASON"], rows);
        }
    }
    Ok(())
}

async fn vendor_json(store: &dyn wardgate_store::Store, name: &str, now: OffsetDateTime) -> Result<Value, Failure> {
    let v = store.vendor(name).await?.ok_or_else(|| Failure { code: 1, message: format!("no vendor named {name}") })?;
    let mut j = vendors::json(&v, now);
    j["users"] = store
        .vendor_users(name)
        .await?
        .iter()
        .map(|u| {
            serde_json::json!({
                "username": u.username.as_str(),
                "display_name": u.display_name,
                "status": u.status.as_str(),
                "account_expires": u.account_expires.map(wardgate_core::audit::record::format_ts),
                "last_login_at": u.last_login_at.map(wardgate_core::audit::record::format_ts),
            })
        })
        .collect();
    Ok(j)
}

pub async fn vendor_run(global: &GlobalArgs, cmd: VendorCommand) -> Result<(), Failure> {
    let inst = open(global).await?;
    let now = OffsetDateTime::now_utc();
    let store = &*inst.store;
    match cmd {
        VendorCommand::Add { name, display, baa, baa_effective, baa_expires, sponsor } => {
            let eff = date("--baa-effective", &baa_effective)?;
            let exp = date("--baa-expires", &baa_expires)?;
            let v =
                vendors::add(store, &actor(), &name, &display, &baa, eff, exp, &sponsor, now).await.map_err(fail)?;
            println!(
                "Vendor {} ({}) registered; agreement {} until {}.",
                v.name, v.display_name, v.baa_reference, v.baa_expires
            );
        }
        VendorCommand::Set { name, display, baa, baa_effective, baa_expires, sponsor } => {
            let change = vendors::VendorChange {
                display_name: display,
                baa_reference: baa,
                baa_effective: baa_effective.map(|d| date("--baa-effective", &d)).transpose()?,
                baa_expires: baa_expires.map(|d| date("--baa-expires", &d)).transpose()?,
                sponsor,
            };
            let (v, moved) = vendors::update(store, &actor(), &name, change, now).await.map_err(fail)?;
            println!("Vendor {} updated; agreement {} until {}.", v.name, v.baa_reference, v.baa_expires);
            if !moved.is_empty() {
                println!("Accounts now expiring with the agreement: {}.", moved.join(", "));
            }
        }
        VendorCommand::List { json } => {
            let items: Vec<Value> = store.list_vendors().await?.iter().map(|v| vendors::json(v, now)).collect();
            if json {
                return print_json(&items);
            }
            let rows = items
                .iter()
                .map(|v| {
                    vec![
                        s(v, "name"),
                        s(v, "display_name"),
                        s(v, "baa_reference"),
                        s(v, "baa_expires"),
                        s(v, "sponsor"),
                    ]
                })
                .collect();
            print_table(&["NAME", "DISPLAY", "BAA", "BAA EXPIRES", "SPONSOR"], rows);
        }
        VendorCommand::Show { name, json } => {
            let j = vendor_json(store, &name, now).await?;
            if json {
                return print_json(&j);
            }
            println!("{} ({})", s(&j, "name"), s(&j, "display_name"));
            println!(
                "  agreement {} from {} to {}; sponsor {}",
                s(&j, "baa_reference"),
                s(&j, "baa_effective"),
                s(&j, "baa_expires"),
                s(&j, "sponsor")
            );
            let rows = j["users"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|u| vec![s(u, "username"), s(u, "status"), s(u, "account_expires"), s(u, "last_login_at")])
                .collect();
            print_table(&["USERNAME", "STATUS", "EXPIRES", "LAST SIGN-IN"], rows);
        }
    }
    Ok(())
}

pub async fn review_run(global: &GlobalArgs, cmd: ReviewCommand) -> Result<(), Failure> {
    let inst = open(global).await?;
    let now = OffsetDateTime::now_utc();
    let store = &*inst.store;
    match cmd {
        ReviewCommand::Start { scope, reviewer, deadline, default_action } => {
            let scope = Scope::parse(&scope).map_err(|e| invalid(e.to_string()))?;
            let deadline = now + duration("--deadline", &deadline)?;
            let default = match default_action {
                Some(d) => {
                    DefaultAction::parse(&d).ok_or_else(|| invalid(format!("--default {d:?}: revoke or escalate")))?
                }
                None => inst.settings.governance.default_action(),
            };
            let (c, items) =
                reviews::start(store, &actor(), scope, &reviewer, deadline, default, now).await.map_err(fail)?;
            println!(
                "Campaign {} over {} opened: {} item(s) for {} to review.",
                c.id,
                c.scope,
                items.len(),
                c.reviewer
            );
            print_items(&reviews::campaign_json(&c, &items, now));
        }
        ReviewCommand::List { json } => {
            let mut out = Vec::new();
            for c in store.list_campaigns().await? {
                let items = store.campaign_items(&c.id).await?;
                out.push(reviews::campaign_json(&c, &items, now));
            }
            if json {
                return print_json(&out);
            }
            let rows = out
                .iter()
                .map(|c| {
                    let items = c["items"].as_array().cloned().unwrap_or_default();
                    let open = items.iter().filter(|i| i["decision"].is_null()).count();
                    let state = if !c["closed_at"].is_null() {
                        "closed"
                    } else if c["overdue"] == true {
                        "OVERDUE"
                    } else {
                        "open"
                    };
                    vec![
                        s(c, "id"),
                        s(c, "scope"),
                        s(c, "reviewer"),
                        s(c, "deadline"),
                        state.into(),
                        format!("{open}/{}", items.len()),
                    ]
                })
                .collect();
            print_table(&["ID", "SCOPE", "REVIEWER", "DEADLINE", "STATE", "UNDECIDED"], rows);
        }
        ReviewCommand::Show { id, json } => {
            let c =
                store.campaign(&id).await?.ok_or_else(|| Failure { code: 1, message: format!("no campaign {id}") })?;
            let j = reviews::campaign_json(&c, &store.campaign_items(&id).await?, now);
            if json {
                return print_json(&j);
            }
            println!(
                "Campaign {} over {}, reviewer {}, deadline {} (default {}).",
                s(&j, "id"),
                s(&j, "scope"),
                s(&j, "reviewer"),
                s(&j, "deadline"),
                s(&j, "default_action")
            );
            print_items(&j);
        }
        ReviewCommand::Decide { item, decision, as_, comment } => {
            let d = Decision::parse(&decision).ok_or_else(|| invalid(format!("{decision:?}: keep or revoke")))?;
            let i = reviews::decide(store, &actor(), &item, &as_, d, &comment, now).await.map_err(fail)?;
            match d {
                Decision::Keep => println!("{} keeps {}.", i.username, i.role),
                Decision::Revoke => println!("{} no longer holds {}.", i.username, i.role),
            }
        }
        ReviewCommand::Close { id } => {
            let (c, undecided) = reviews::close(store, &actor(), &id, now).await.map_err(fail)?;
            println!("Campaign {} closed; {undecided} item(s) left undecided (escalated).", c.id);
        }
    }
    Ok(())
}

fn print_items(c: &Value) {
    let rows = c["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| vec![s(i, "id"), s(i, "username"), s(i, "role"), s(i, "decision"), s(i, "decided_by")])
        .collect();
    print_table(&["ITEM", "USERNAME", "ROLE", "DECISION", "BY"], rows);
}

pub async fn report_run(global: &GlobalArgs, cmd: ReportCommand) -> Result<(), Failure> {
    let inst = open(global).await?;
    let now = OffsetDateTime::now_utc();
    match cmd {
        ReportCommand::Vendors { format } => {
            let report = crate::report::vendors(&*inst.store, now).await?;
            match format.as_str() {
                "json" => print_json(&report)?,
                "html" => print!("{}", crate::report::vendors_html(&report)),
                other => return Err(invalid(format!("--format {other:?}: json or html"))),
            }
        }
        ReportCommand::Overrides { since, format } => {
            let since = match since {
                Some(t) => instant("--since", &t)?,
                None => now - time::Duration::days(90),
            };
            let since_us = (since.unix_timestamp_nanos() / 1000) as i64;
            let report = crate::report::overrides(&*inst.store, since_us, now).await?;
            match format.as_str() {
                "json" => print_json(&report)?,
                "html" => print!("{}", crate::report::overrides_html(&report)),
                other => return Err(invalid(format!("--format {other:?}: json or html"))),
            }
        }
    }
    Ok(())
}
