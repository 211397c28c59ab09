//! `hydra gc`.

use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Args;
use hydra_dag::GcOptions;

use super::{Context, output};

/// Arguments of `hydra gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Keep unreachable blocks younger than this (e.g. 10m, 1h; 0 sweeps all).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    grace: Duration,
    /// Rewrite packs whose live fraction is below this (0 to 1).
    #[arg(long, default_value_t = 0.5)]
    min_live: f64,
}

fn parse_duration(s: &str) -> Result<Duration> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s)
        .with_context(|| format!("{s:?} is not a duration like 30s, 10m, 1h"))
}

/// Runs a collection and prints what it did.
pub fn run(cx: &Context, args: GcArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&args.min_live) {
        anyhow::bail!("--min-live must be between 0 and 1");
    }
    let store = cx.open_write()?;
    let report = store.bucket().gc(&GcOptions {
        grace: args.grace,
        min_live: args.min_live,
    })?;
    if cx.json {
        return output::json(&report);
    }
    println!(
        "marked {} reachable blocks from {} roots; swept {} blocks ({}); kept {} young or pinned",
        report.marked,
        report.roots,
        report.swept_blocks,
        output::bytes(report.swept_bytes),
        report.kept_young
    );
    if report.compact.packs_rewritten > 0 {
        println!(
            "rewrote {} packs, reclaimed {}",
            report.compact.packs_rewritten,
            output::bytes(report.compact.bytes_reclaimed)
        );
    }
    if report.missing > 0 {
        println!(
            "warning: {} linked blocks are missing from the store",
            report.missing
        );
    }
    Ok(())
}
