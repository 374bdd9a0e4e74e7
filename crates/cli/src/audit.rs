//! `wardgate audit verify|export|tail|prune`.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Subcommand, ValueEnum};
use time::OffsetDateTime;
use wardgate_core::audit::chain::{BreakKind, ChainBreak};
use wardgate_core::audit::event::types;
use wardgate_core::audit::{AuditEvent, AuditRecord, ChainHead, ChainVerifier, Checkpoint, Outcome, StoredRecord};
use wardgate_server::{Installation, OpenMode};
use wardgate_store::{AuditMark, Store};

use crate::{Failure, GlobalArgs, settings_load};

const PAGE: u32 = 20_000;
/// Exit code for a broken chain, distinct from "could not run".
const EXIT_TAMPERED: u8 = 3;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the whole hash chain and every checkpoint signature.
    Verify,
    /// Write records in a SIEM format (docs/audit-schema.md).
    Export {
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
        /// Only records at or after this time (RFC 3339 or YYYY-MM-DD, UTC).
        #[arg(long)]
        since: Option<String>,
        /// Only records before this time.
        #[arg(long)]
        until: Option<String>,
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Print the latest records, then follow new ones.
    Tail {
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
        /// How many existing records to print first.
        #[arg(long, short = 'n', default_value_t = 10)]
        lines: u32,
        /// Print and exit instead of following.
        #[arg(long)]
        no_follow: bool,
    },
    /// Delete records older than the retention period that are exported and verified.
    Prune {
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Jsonl,
    Syslog,
}

pub async fn run(global: &GlobalArgs, cmd: AuditCommand) -> Result<(), Failure> {
    let settings = settings_load::load(global, None)?;
    let retention_days = settings.audit.retention_days;
    let inst = Installation::open(settings, OpenMode::Existing).await?;
    match cmd {
        AuditCommand::Verify => verify(&inst).await,
        AuditCommand::Export { format, since, until, output } => {
            export(&*inst.store, format, parse_time(since.as_deref())?, parse_time(until.as_deref())?, output).await
        }
        AuditCommand::Tail { format, lines, no_follow } => tail(&*inst.store, format, lines, !no_follow).await,
        AuditCommand::Prune { dry_run } => prune(&inst, retention_days, dry_run).await,
    }
}

type Keys = std::collections::HashMap<String, ed25519_dalek::VerifyingKey>;

/// A checkpoint whose signature does not verify under a key that is provably ours is
/// itself a break at its sequence number.
fn require_signed(keys: &Keys, cp: &Checkpoint) -> Result<(), Failure> {
    if keys.get(&cp.key_id).is_some_and(|k| cp.verify(k)) {
        return Ok(());
    }
    Err(broken(
        ChainBreak { seq: cp.seq, kind: BreakKind::CheckpointMismatch },
        "checkpoint signature is invalid or made with an unknown key",
    ))
}

/// The signatures that carry the proof: the newest checkpoint's (its hash commits, through
/// the chain, to every record before it, so a rewrite anywhere cannot agree with it) and
/// the anchor's (where a pruned log starts). Older checkpoints still have to agree with the
/// chain where it passes them, but need no signature check — a six-year log holds
/// millions, and checking each would cost more than hashing the records.
async fn proof_checkpoints(inst: &Installation, anchor: ChainHead, keys: &Keys) -> Result<Option<Checkpoint>, Failure> {
    let store = &inst.store;
    if anchor != ChainHead::GENESIS {
        let at_anchor = store.checkpoints(anchor.seq - 1, anchor.seq).await?;
        match at_anchor.first() {
            Some(cp) if cp.head() == anchor => require_signed(keys, cp)?,
            _ => {
                return Err(broken(
                    ChainBreak { seq: anchor.seq + 1, kind: BreakKind::BadLink },
                    "the retention anchor does not match a signed checkpoint",
                ));
            }
        }
    }
    let latest = store.latest_checkpoint().await?;
    if let Some(cp) = &latest {
        require_signed(keys, cp)?;
    }
    Ok(latest)
}

fn broken(b: ChainBreak, extra: &str) -> Failure {
    Failure { message: format!("{b} ({extra}); first bad sequence number: {}", b.seq), code: EXIT_TAMPERED }
}

async fn verify(inst: &Installation) -> Result<(), Failure> {
    let store = &inst.store;
    let anchor = store.audit_anchor().await?;
    let head = store.audit_head().await?;
    let keys = inst.trusted_checkpoint_keys().await?;
    let latest = proof_checkpoints(inst, anchor, &keys).await?;
    let last_cp = latest.as_ref().map(|c| c.seq).unwrap_or(anchor.seq);
    // The newest checkpoint goes in first: a log that ends before it was truncated.
    let mut v = ChainVerifier::new(anchor, latest.as_slice());
    let mut checkpoints_seen = 0usize;
    let bar = indicatif::ProgressBar::new(head.seq.saturating_sub(anchor.seq).max(0) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("verifying {bar:40} {pos}/{len} records ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    // Keep two pages in flight on two connections while hashing the current one, so that
    // SQLite, row decoding and hashing overlap. Sequence numbers are contiguous in an
    // intact log, so page k starts after `anchor + k * PAGE`; in a damaged one the
    // verifier stops at the first gap, before any page boundary could matter.
    let mut in_flight = std::collections::VecDeque::new();
    let mut next_after = anchor.seq;
    for _ in 0..2 {
        in_flight.push_back(fetch(store, next_after));
        next_after += i64::from(PAGE);
    }
    while let Some(handle) = in_flight.pop_front() {
        let (page, checkpoints) = handle.await.map_err(|e| Failure::new(format!("audit read failed: {e}")))??;
        if page.is_empty() {
            break;
        }
        in_flight.push_back(fetch(store, next_after));
        next_after += i64::from(PAGE);
        checkpoints_seen += checkpoints.len();
        v.add_checkpoints(&checkpoints);
        for r in &page {
            if let Err(b) = v.push(r) {
                bar.abandon();
                record_verification(&**store, Outcome::Failure, Some(b.seq)).await;
                return Err(broken(b, "altered, deleted, inserted or reordered"));
            }
        }
        bar.set_position(v.verified());
    }
    bar.finish_and_clear();
    let verified = v.verified();
    let tip = v.finish().map_err(|b| broken(b, "the log ends before a signed checkpoint"))?;
    store.raise_audit_mark(AuditMark::Verified, tip.seq).await?;
    println!(
        "audit log intact: {verified} records (sequence {}..{}), {checkpoints_seen} checkpoints, head {}",
        anchor.seq + 1,
        tip.seq,
        hex::encode(tip.hash)
    );
    if tip.seq > last_cp {
        println!("note: {} newest record(s) are not yet under a signed checkpoint", tip.seq - last_cp);
    }
    record_verification(&**store, Outcome::Success, None).await;
    Ok(())
}

type Page = (Vec<StoredRecord>, Vec<Checkpoint>);

/// A page of records after `after`, with the checkpoints that fall within it.
fn fetch(
    store: &std::sync::Arc<dyn Store>,
    after: i64,
) -> tokio::task::JoinHandle<Result<Page, wardgate_store::StoreError>> {
    let store = std::sync::Arc::clone(store);
    tokio::spawn(async move {
        let records = store.audit_records(after, PAGE).await?;
        let checkpoints = match records.last() {
            Some(last) => store.checkpoints(after, last.seq).await?,
            None => Vec::new(),
        };
        Ok((records, checkpoints))
    })
}

/// The check itself is evidence; failing to record it does not change its result.
async fn record_verification(store: &dyn Store, outcome: Outcome, first_bad: Option<i64>) {
    let mut e = AuditEvent::known(OffsetDateTime::now_utc(), types::AUDIT_VERIFIED, outcome)
        .actor(format!("cli:{}", crate::admin::whoami()));
    if let Some(seq) = first_bad {
        e = e.detail("first_bad_seq", seq);
    }
    if let Err(err) = store.append_audit(&[e]).await {
        eprintln!("wardgate: warning: could not record the verification: {err}");
    }
}

fn render(format: Format, r: &StoredRecord) -> Result<String, Failure> {
    match format {
        Format::Jsonl => Ok(r.body.clone()),
        Format::Syslog => {
            let rec: AuditRecord = serde_json::from_str(&r.body)
                .map_err(|e| Failure::new(format!("record {} is unreadable: {e}", r.seq)))?;
            Ok(wardgate_core::audit::syslog::render(&rec, &r.body, &hex::encode(&r.hash)))
        }
    }
}

async fn export(
    store: &dyn Store,
    format: Format,
    since: Option<OffsetDateTime>,
    until: Option<OffsetDateTime>,
    output: Option<PathBuf>,
) -> Result<(), Failure> {
    let mut out: Box<dyn std::io::Write> = match &output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| Failure::new(format!("cannot write {}: {e}", p.display())))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut after = match since {
        Some(t) => match store.audit_first_seq_at(wardgate_core::unix_micros(t)).await? {
            Some(seq) => seq - 1,
            None => return Ok(()),
        },
        None => store.audit_anchor().await?.seq,
    };
    let until_us = until.map(wardgate_core::unix_micros);
    let mut written = 0u64;
    'pages: loop {
        let page = store.audit_records(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for r in &page {
            if until_us.is_some_and(|u| r.ts_us >= u) {
                break 'pages;
            }
            let line = render(format, r)?;
            if let Err(e) = writeln!(out, "{line}") {
                // `… | head` closes the pipe early: that is the reader's choice, not an error.
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(());
                }
                return Err(Failure::new(format!("write failed: {e}")));
            }
            written += 1;
        }
    }
    out.flush().map_err(|e| Failure::new(format!("write failed: {e}")))?;
    // Only a complete export from the start may let retention delete what it covered.
    if since.is_none() && until.is_none() && written > 0 {
        store.raise_audit_mark(AuditMark::Exported, after).await?;
    }
    if output.is_some() {
        eprintln!("exported {written} record(s)");
    }
    Ok(())
}

async fn tail(store: &dyn Store, format: Format, lines: u32, follow: bool) -> Result<(), Failure> {
    let head = store.audit_head().await?;
    let anchor = store.audit_anchor().await?;
    let mut after = (head.seq - i64::from(lines)).max(anchor.seq);
    let stdout = std::io::stdout();
    loop {
        let page = store.audit_records(after, PAGE).await?;
        for r in &page {
            let mut lock = stdout.lock();
            if writeln!(lock, "{}", render(format, r)?).and_then(|_| lock.flush()).is_err() {
                return Ok(());
            }
            after = r.seq;
        }
        if !follow {
            return Ok(());
        }
        if page.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = tokio::signal::ctrl_c() => return Ok(()),
            }
        }
    }
}

async fn prune(inst: &Installation, retention_days: u64, dry_run: bool) -> Result<(), Failure> {
    let store = &inst.store;
    let now = OffsetDateTime::now_utc();
    let cutoff = wardgate_core::unix_micros(now - time::Duration::days(retention_days as i64));
    let marks = store.audit_marks().await?;
    let anchor = store.audit_anchor().await?;
    // The last record older than the cutoff: everything up to it is past retention.
    let old_through = match store.audit_first_seq_at(cutoff).await? {
        Some(first_young) => first_young - 1,
        None => store.audit_head().await?.seq,
    };
    let limit = marks.exported_seq.min(marks.verified_seq).min(old_through);
    let keys = inst.trusted_checkpoint_keys().await?;
    // Look back from the limit in growing windows: the first prune of a long log would
    // otherwise load every checkpoint since installation.
    let mut target = None;
    let (mut upto, mut window) = (limit, 1024i64);
    while target.is_none() && upto > anchor.seq {
        let from = (upto - window).max(anchor.seq);
        let cps = store.checkpoints(from, upto).await?;
        target = prune_target(&cps, anchor.seq, marks, old_through).cloned();
        (upto, window) = (from, window.saturating_mul(4));
    }
    if let Some(cp) = &target {
        require_signed(&keys, cp)?;
    }
    let Some(cp) = target else {
        println!(
            "nothing to prune: records are deleted only when older than {retention_days} days, exported (up to {}), verified (up to {}) and under a signed checkpoint",
            marks.exported_seq, marks.verified_seq
        );
        return Ok(());
    };
    if dry_run {
        println!("would delete records {}..{}", anchor.seq + 1, cp.seq);
        return Ok(());
    }
    let event = AuditEvent::known(now, types::AUDIT_RETENTION_PRUNED, Outcome::Success)
        .actor(format!("cli:{}", crate::admin::whoami()))
        .detail("through_seq", cp.seq)
        .detail("retention_days", retention_days);
    let n = store.prune_audit(&cp, &event).await?;
    println!("deleted {n} record(s) through sequence {}; the chain now starts from that signed checkpoint", cp.seq);
    Ok(())
}

/// The newest signed checkpoint that retention may prune through: past the anchor, and
/// no further than what is exported, verified and older than the retention period.
fn prune_target(
    checkpoints: &[Checkpoint],
    anchor_seq: i64,
    marks: wardgate_store::AuditMarks,
    old_through: i64,
) -> Option<&Checkpoint> {
    let limit = marks.exported_seq.min(marks.verified_seq).min(old_through);
    checkpoints.iter().rev().find(|c| c.seq > anchor_seq && c.seq <= limit)
}

fn parse_time(s: Option<&str>) -> Result<Option<OffsetDateTime>, Failure> {
    let Some(s) = s else { return Ok(None) };
    if let Ok(t) = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(Some(t));
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &fmt).map(|d| Some(d.midnight().assume_utc())).map_err(|_| {
        Failure::new(format!("{s:?} is not a time: use RFC 3339 (2026-11-28T07:00:00Z) or a date (2026-11-28)"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wardgate_store::AuditMarks;

    fn cp(seq: i64) -> Checkpoint {
        Checkpoint { seq, hash: [0; 32], ts_us: 0, node: "n".into(), key_id: "k".into(), signature: [0; 64] }
    }

    #[test]
    fn prune_stops_at_the_first_limit_reached() {
        let cps = [cp(10), cp(20), cp(30), cp(40)];
        let marks = |exported_seq, verified_seq| AuditMarks { exported_seq, verified_seq };
        // Everything exported and verified; age decides.
        assert_eq!(prune_target(&cps, 0, marks(100, 100), 35).map(|c| c.seq), Some(30));
        // Not exported past 25.
        assert_eq!(prune_target(&cps, 0, marks(25, 100), 100).map(|c| c.seq), Some(20));
        // Not verified past 15.
        assert_eq!(prune_target(&cps, 0, marks(100, 15), 100).map(|c| c.seq), Some(10));
        // Nothing old enough, or nothing beyond the current anchor.
        assert_eq!(prune_target(&cps, 0, marks(100, 100), 9), None);
        assert_eq!(prune_target(&cps, 40, marks(100, 100), 100), None);
        assert_eq!(prune_target(&[], 0, marks(100, 100), 100), None);
    }
}
