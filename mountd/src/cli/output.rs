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

/// Prints the changelog entries of one ref: id, time, new root, author
/// and message a line (or JSON).
pub fn log_entries(json_out: bool, entries: &[hydra_dag::LogEntry]) -> Result<()> {
    if json_out {
        return json(&entries);
    }
    for e in entries {
        println!(
            "{:>6}  {}  {}  {}: {}",
            e.id,
            time(e.time_ns),
            opt_cid(e.new),
            e.author,
            e.message
        );
    }
    Ok(())
}

/// The lines of `file`, or of stdin for `-`.
pub fn input_lines(file: &std::path::Path) -> Result<std::io::Lines<Box<dyn std::io::BufRead>>> {
    use anyhow::Context as _;
    use std::io::BufRead;
    let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?,
        ))
    };
    Ok(reader.lines())
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

/// A reader that advances a progress bar on stderr when it is a terminal.
pub struct Progress<R> {
    inner: R,
    bar: Option<indicatif::ProgressBar>,
}

impl<R: std::io::Read> Progress<R> {
    /// Wraps `inner`, which yields `len` bytes if known.
    pub fn new(inner: R, len: Option<u64>) -> Self {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = len.map_or_else(
                indicatif::ProgressBar::new_spinner,
                indicatif::ProgressBar::new,
            );
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} {eta}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        Progress { inner, bar }
    }

    /// Clears the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl<R: std::io::Read> std::io::Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(bar) = &self.bar {
            bar.inc(n as u64);
        }
        Ok(n)
    }
}
