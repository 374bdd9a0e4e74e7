//! `wardgate policy …`: the access policy's versions, approval, explanation and simulation.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Subcommand;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use wardgate_core::identity::Username;
use wardgate_core::login::Aal;
use wardgate_core::policy::document::{format_duration, parse_duration};
use wardgate_core::policy::{Policy, PolicyVersion, Request, SessionFacts};
use wardgate_server::access::context;
use wardgate_server::policies::{Policies, PoliciesError, compile};

use crate::user::{actor, open, print_json, print_table};
use crate::{Failure, GlobalArgs};

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Check a policy file without storing it: every problem with its line.
    Check { file: PathBuf },
    /// Store a policy file as a new proposed version. It takes effect when another
    /// administrator approves it.
    Propose {
        file: PathBuf,
        /// Why: goes into the history and the audit log.
        #[arg(long)]
        reason: String,
    },
    /// Put a proposed version in force (not by its author, under the two-person rule).
    Approve {
        #[arg(value_name = "VERSION")]
        number: i64,
    },
    /// Refuse a proposed version.
    Reject {
        #[arg(value_name = "VERSION")]
        number: i64,
        #[arg(long)]
        reason: String,
    },
    /// Every version with its author, approver, time and reason.
    History {
        #[arg(long)]
        json: bool,
    },
    /// Print a version's file (default: the one in force).
    Show {
        #[arg(value_name = "VERSION")]
        number: Option<i64>,
    },
    /// What changed between two versions, as a unified diff.
    Diff { from: i64, to: i64 },
    /// Put an earlier approved version back in force at once.
    Rollback {
        #[arg(value_name = "VERSION")]
        number: i64,
        #[arg(long)]
        reason: String,
    },
    /// Decide one request and show every rule's verdict.
    Explain {
        #[arg(long)]
        user: String,
        #[arg(long)]
        action: String,
        #[arg(long)]
        resource: Option<String>,
        /// A segment name from the policy; the request is taken to come from inside it.
        #[arg(long, conflicts_with = "ip")]
        network: Option<String>,
        /// Or the client address itself.
        #[arg(long)]
        ip: Option<IpAddr>,
        /// A registered device name; omitted means an unknown device.
        #[arg(long)]
        device: Option<String>,
        /// The session's assurance (aal1, aal2, aal3).
        #[arg(long, default_value = "aal2")]
        aal: String,
        /// How long ago the person last authenticated, e.g. 10m.
        #[arg(long, default_value = "1m")]
        auth_age: String,
        /// Evaluate this file instead of the version in force.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Replay recorded decisions against a policy file and list what would change.
    Simulate {
        file: PathBuf,
        /// How far back, e.g. 7d or 12h.
        #[arg(long, default_value = "7d")]
        since: String,
        #[arg(long)]
        json: bool,
    },
}

fn failure(e: PoliciesError) -> Failure {
    let code = if matches!(e, PoliciesError::Store(_)) { 1 } else { 2 };
    // One line, every problem with its line number, so a script can show it as it is.
    Failure { code, message: e.to_string() }
}

fn read(path: &PathBuf) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .map_err(|e| Failure { code: 2, message: format!("cannot read {}: {e}", path.display()) })
}

fn ts(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_else(|| "-".into())
}

fn view(v: &PolicyVersion) -> serde_json::Value {
    serde_json::json!({
        "version": v.number,
        "status": v.status.as_str(),
        "author": v.author,
        "reason": v.reason,
        "proposed_at": ts(Some(v.proposed_at)),
        "approved_by": v.approved_by,
        "approved_at": v.approved_at.map(|t| ts(Some(t))),
        "restores": v.restores,
    })
}

fn duration(s: &str, what: &str) -> Result<Duration, Failure> {
    parse_duration(s)
        .ok_or_else(|| Failure { code: 2, message: format!("{what}: {s:?} is not a duration such as 30m, 12h or 7d") })
}

pub async fn run(global: &GlobalArgs, cmd: PolicyCommand) -> Result<(), Failure> {
    if let PolicyCommand::Check { file } = &cmd {
        let p = compile(&read(file)?).map_err(failure)?;
        for w in p.warnings() {
            eprintln!("wardgate: warning: {w}");
        }
        println!(
            "{}: valid — {} rules, {} roles, {} network segments",
            file.display(),
            p.rule_names().count(),
            p.roles().len(),
            p.segments().len()
        );
        return Ok(());
    }
    let inst = open(global).await?;
    let actor = actor();
    let now = OffsetDateTime::now_utc();
    let policies = Policies::new(&*inst.store, &actor, now, inst.settings.policy.two_person_approval);
    match cmd {
        PolicyCommand::Check { .. } => {}
        PolicyCommand::Propose { file, reason } => {
            let source = read(&file)?;
            let v = policies.propose(&source, &reason).await.map_err(failure)?;
            for w in compile(&source).map(|p| p.warnings()).unwrap_or_default() {
                eprintln!("wardgate: warning: {w}");
            }
            println!("Version {} proposed by {}.", v.number, v.author);
            if inst.settings.policy.two_person_approval {
                println!("Another administrator puts it in force with: wardgate policy approve {}", v.number);
            } else {
                println!("Put it in force with: wardgate policy approve {}", v.number);
            }
        }
        PolicyCommand::Approve { number } => {
            let v = policies.approve(number).await.map_err(failure)?;
            println!("Version {} is in force (proposed by {}, approved by {}).", v.number, v.author, actor);
            println!("Running nodes apply it within a second.");
        }
        PolicyCommand::Reject { number, reason } => {
            let v = policies.reject(number, &reason).await.map_err(failure)?;
            println!("Version {} rejected.", v.number);
        }
        PolicyCommand::History { json } => {
            let all = policies.history().await.map_err(failure)?;
            if json {
                print_json(&all.iter().map(view).collect::<Vec<_>>())?;
            } else {
                let rows = all
                    .iter()
                    .map(|v| {
                        vec![
                            v.number.to_string(),
                            v.status.as_str().to_owned(),
                            ts(Some(v.proposed_at)),
                            v.author.clone(),
                            v.approved_by.clone().unwrap_or_else(|| "-".into()),
                            v.reason.clone(),
                        ]
                    })
                    .collect();
                print_table(&["VERSION", "STATUS", "PROPOSED", "AUTHOR", "APPROVED BY", "REASON"], rows);
            }
        }
        PolicyCommand::Show { number } => {
            let v = match number {
                Some(n) => policies.show(n).await.map_err(failure)?,
                None => inst
                    .store
                    .active_policy()
                    .await
                    .map_err(Failure::new)?
                    .ok_or_else(|| Failure { code: 1, message: "no policy version is in force yet".into() })?,
            };
            print!("{}", v.source);
        }
        PolicyCommand::Diff { from, to } => print!("{}", policies.diff(from, to).await.map_err(failure)?),
        PolicyCommand::Rollback { number, reason } => {
            let v = policies.rollback(number, &reason).await.map_err(failure)?;
            println!("Version {} (a copy of version {number}) is in force.", v.number);
        }
        PolicyCommand::Explain { user, action, resource, network, ip, device, aal, auth_age, file } => {
            let policy = match file {
                Some(f) => compile(&read(&f)?).map_err(failure)?,
                None => {
                    let v = inst.store.active_policy().await.map_err(Failure::new)?.ok_or_else(|| Failure {
                        code: 1,
                        message: "no policy version is in force yet; give --file".into(),
                    })?;
                    compile(&v.source).map_err(failure)?
                }
            };
            let username = Username::parse(&user).map_err(|e| Failure { code: 2, message: e.to_string() })?;
            let user = inst
                .store
                .user_by_username(&username)
                .await
                .map_err(Failure::new)?
                .ok_or_else(|| Failure { code: 2, message: format!("no account named {username}") })?;
            let ip = match (network, ip) {
                (Some(seg), _) => Some(segment_address(&policy, &seg)?),
                (None, ip) => ip,
            };
            let device = match device {
                Some(name) => Some(
                    inst.store
                        .device_by_name(&name.to_ascii_lowercase())
                        .await
                        .map_err(Failure::new)?
                        .filter(|d| d.revoked_at.is_none())
                        .ok_or_else(|| Failure { code: 2, message: format!("no registered device named {name}") })?,
                ),
                None => None,
            };
            let aal = match aal.as_str() {
                "aal1" => Aal::Aal1,
                "aal2" => Aal::Aal2,
                "aal3" => Aal::Aal3,
                other => return Err(Failure { code: 2, message: format!("--aal {other:?}: aal1, aal2 or aal3") }),
            };
            let roles = user.roles_at(now);
            let req = Request {
                action: &action,
                resource: resource.as_deref(),
                subject: context::subject(&user, &roles, now),
                session: Some(SessionFacts { aal, authenticated_at: now - duration(&auth_age, "--auth-age")? }),
                device: device.as_ref().map(context::device_facts),
                ip,
                now,
            };
            let e = policy.explain(&req);
            let d = &e.decision;
            println!("Decision: {} — {} (rule {})", d.effect.as_str(), d.reason, d.rule);
            println!("Required assurance: {}", d.required.as_str());
            if let Some(f) = d.fresh {
                println!("Authenticated within: {}", format_duration(f));
            }
            println!(
                "Session limits: idle {}, lifetime {}, reauthenticate after {}",
                format_duration(d.limits.idle_timeout),
                format_duration(d.limits.lifetime),
                format_duration(d.limits.reauthenticate_after)
            );
            println!("Network segment: {}", d.segment.unwrap_or("(none)"));
            println!("Roles in force: {}", if roles.is_empty() { "(none)".into() } else { roles.join(", ") });
            println!("Action granted by a role: {}", if e.granted { "yes" } else { "no" });
            println!("Rules:");
            for s in &e.steps {
                let verdict = match s.matched {
                    Ok(()) => "MATCH".to_owned(),
                    Err(m) => format!("no ({})", m.as_str()),
                };
                println!("  line {:>4}  {:<36} {:<28} {}", s.line, s.rule, verdict, s.outcome);
            }
        }
        PolicyCommand::Simulate { file, since, json } => {
            let since = now - duration(&since, "--since")?;
            let s = policies.simulate(&read(&file)?, since).await.map_err(failure)?;
            if json {
                print_json(&s)?;
            } else {
                println!(
                    "Replayed {} recorded decisions since {}; {} would change.",
                    s.replayed,
                    ts(Some(since)),
                    s.changed
                );
                let rows = s
                    .changes
                    .iter()
                    .map(|c| {
                        vec![
                            c.username.clone(),
                            c.action.clone(),
                            c.before.clone(),
                            c.after.clone(),
                            c.count.to_string(),
                            c.rule.clone(),
                        ]
                    })
                    .collect();
                print_table(&["USER", "ACTION", "NOW", "PROPOSED", "TIMES", "DECIDING RULE"], rows);
            }
        }
    }
    Ok(())
}

/// An address inside the named segment, for explaining "a request from there".
fn segment_address(policy: &Policy, name: &str) -> Result<IpAddr, Failure> {
    let seg = policy
        .segments()
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| Failure { code: 2, message: format!("the policy has no network segment named {name:?}") })?;
    // The first address of the most specific range, so that a broader segment listed
    // elsewhere does not claim it.
    let net = seg.networks.iter().max_by_key(|n| n.prefix_len()).ok_or_else(|| Failure::new("empty segment"))?;
    let candidate = net.hosts().next().unwrap_or(net.network());
    match policy.segment_of(candidate) {
        Some(i) if policy.segments()[i].name == name => Ok(candidate),
        _ => {
            Err(Failure { code: 2, message: format!("segment {name:?} is covered by a more specific one; give --ip") })
        }
    }
}
