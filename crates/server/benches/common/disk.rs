//! The disk's own flush time, printed beside the results. Every grant and every gateway
//! decision is answered only after its audit record is flushed, so the latency targets
//! stand on this floor: a VM whose `fdatasync` takes milliseconds at p99 shows it in every
//! p99 the benchmarks report.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// `fdatasync` after each 4 KiB append to a file in `dir`, `n` times with a millisecond
/// between (so that each flush has one fresh block, as a lightly loaded group commit's
/// has): a line with the median and the 99th percentile.
pub fn flush_floor(dir: &Path, n: usize) -> String {
    let path = dir.join("flush-probe");
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).unwrap();
    let block = [0x5a_u8; 4096];
    let mut took = Vec::with_capacity(n);
    for _ in 0..n {
        f.write_all(&block).unwrap();
        let t = Instant::now();
        f.sync_data().unwrap();
        took.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(f);
    let _ = std::fs::remove_file(&path);
    took.sort();
    let at = |q: f64| took[((took.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    format!(
        "disk: fdatasync of a 4 KiB append p50 {:.3} ms, p99 {:.3} ms ({n} flushes, before the runs)",
        at(0.5),
        at(0.99)
    )
}
