//! Helpers shared by the bench binaries: where criterion writes, and reading its medians back.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// `target/criterion` (or `$CARGO_TARGET_DIR/criterion`).
pub fn criterion_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("criterion")
}

/// The median (ns) criterion recorded for `group/function` since `since` (criterion writes
/// `/` in names as `_`).
pub fn median_ns(dir: &Path, group: &str, function: &str, since: SystemTime) -> Option<f64> {
    let clean = |s: &str| s.replace('/', "_");
    let path = dir
        .join(clean(group))
        .join(clean(function))
        .join("new/estimates.json");
    let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
    if modified < since {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    json["median"]["point_estimate"].as_f64()
}

/// Formats nanoseconds for a table.
pub fn ns(t: f64) -> String {
    if t >= 10_000.0 {
        format!("{:.1} µs", t / 1000.0)
    } else {
        format!("{t:.0} ns")
    }
}
