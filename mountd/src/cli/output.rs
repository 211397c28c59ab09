//! Printing results as text or JSON.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;

/// Prints `value` as one JSON document on stdout.
pub fn json<T: Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Formats nanoseconds since the epoch as an RFC 3339 UTC time.
pub fn time(ns: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A CID or a dash for none.
pub fn opt_cid(cid: Option<hydra_dag::Cid>) -> String {
    cid.map_or_else(|| "-".to_string(), |c| c.to_string())
}

/// Bytes in a human unit.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
