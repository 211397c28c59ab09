//! `hydra kv NAME get|put|del|scan|diff|log|import|export`.

use std::io::Write;
use std::ops::Bound;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use hydra_dag::Cid;
use hydra_kv::{Change, Kv, Tree, diff};

use super::{Context, output};

/// Arguments of `hydra kv`.
#[derive(Debug, Args)]
pub struct KvArgs {
    /// The store's name (ref `kv/NAME`).
    name: String,
    #[command(subcommand)]
    command: KvCommand,
}

/// Subcommands of `hydra kv NAME`.
#[derive(Debug, Subcommand)]
enum KvCommand {
    /// Print a key's value.
    Get {
        /// The key.
        key: String,
    },
    /// Set a key (one commit).
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Delete a key (one commit).
    Del {
        /// The key.
        key: String,
    },
    /// Print `key<TAB>value` lines in key order.
    Scan {
        /// Only keys starting with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Last key first.
        #[arg(long)]
        reverse: bool,
        /// At most this many lines.
        #[arg(long)]
        limit: Option<usize>,
        /// Read this snapshot (changelog id or root CID) instead.
        #[arg(long, value_name = "SNAP")]
        at: Option<String>,
    },
    /// Print the changes from A to B (changelog ids or root CIDs):
    /// `A`dded, `D`eleted, `M`odified, one key a line.
    Diff {
        /// The older snapshot.
        a: String,
        /// The newer snapshot.
        b: String,
    },
    /// List the store's commits, newest first.
    Log {
        /// At most this many entries.
        #[arg(short = 'n', long, default_value_t = 100)]
        limit: usize,
    },
    /// Put every `{"key": …, "value": …}` line of a JSON-lines file (or
    /// `-`) in one commit; nothing is stored if any line is bad.
    Import {
        /// The file.
        file: PathBuf,
    },
    /// Write every pair as JSON lines to stdout.
    Export,
}

/// Runs `hydra kv`.
pub fn run(cx: &Context, args: KvArgs) -> Result<()> {
    match args.command {
        KvCommand::Get { key } => {
            let store = cx.open_read()?;
            let tree = Kv::open(store.bucket().clone(), &args.name)?.tree()?;
            let Some(value) = tree.get(key.as_bytes())? else {
                bail!("key {key:?} is not in kv {}", args.name);
            };
            if cx.json {
                return output::json(&serde_json::json!({
                    "key": key,
                    "value": String::from_utf8_lossy(&value),
                }));
            }
            let mut out = std::io::stdout().lock();
            out.write_all(&value)?;
            out.write_all(b"\n")?;
            Ok(())
        }
        KvCommand::Put { key, value } => {
            let store = cx.open_write()?;
            let kv = Kv::open(store.bucket().clone(), &args.name)?;
            let mut txn = kv.begin()?;
            txn.put(key.as_bytes(), value.as_bytes())?;
            txn.commit(&format!("put {key}"))?;
            Ok(())
        }
        KvCommand::Del { key } => {
            let store = cx.open_write()?;
            let kv = Kv::open(store.bucket().clone(), &args.name)?;
            let mut txn = kv.begin()?;
            if txn.get(key.as_bytes())?.is_none() {
                bail!("key {key:?} is not in kv {}", args.name);
            }
            txn.delete(key.as_bytes())?;
            txn.commit(&format!("del {key}"))?;
            Ok(())
        }
        KvCommand::Scan {
            prefix,
            reverse,
            limit,
            at,
        } => {
            let store = cx.open_read()?;
            let kv = Kv::open(store.bucket().clone(), &args.name)?;
            let tree = match at {
                Some(snap) => kv.at(Some(snapshot(&kv, &snap)?)),
                None => kv.tree()?,
            };
            scan(
                cx,
                &tree,
                prefix.as_deref(),
                reverse,
                limit.unwrap_or(usize::MAX),
            )
        }
        KvCommand::Diff { a, b } => {
            let store = cx.open_read()?;
            let kv = Kv::open(store.bucket().clone(), &args.name)?;
            let (ta, tb) = (
                kv.at(Some(snapshot(&kv, &a)?)),
                kv.at(Some(snapshot(&kv, &b)?)),
            );
            let mut rows = Vec::new();
            for change in diff(&ta, &tb)? {
                rows.push(match change {
                    Change::Added(k, v) => ("A", k, Some(tb.value(&v)?)),
                    Change::Removed(k, _) => ("D", k, None),
                    Change::Changed(k, _, v) => ("M", k, Some(tb.value(&v)?)),
                });
            }
            if cx.json {
                let rows: Vec<_> = rows
                    .iter()
                    .map(|(c, k, v)| {
                        serde_json::json!({
                            "change": c,
                            "key": String::from_utf8_lossy(k),
                            "value": v.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()),
                        })
                    })
                    .collect();
                return output::json(&rows);
            }
            let mut out = std::io::stdout().lock();
            for (c, k, v) in rows {
                match v {
                    Some(v) => writeln!(
                        out,
                        "{c}\t{}\t{}",
                        String::from_utf8_lossy(&k),
                        String::from_utf8_lossy(&v)
                    )?,
                    None => writeln!(out, "{c}\t{}", String::from_utf8_lossy(&k))?,
                }
            }
            Ok(())
        }
        KvCommand::Log { limit } => {
            let store = cx.open_read()?;
            let entries = Kv::open(store.bucket().clone(), &args.name)?.log(limit)?;
            output::log_entries(cx.json, &entries)
        }
        KvCommand::Import { file } => {
            // Read and check every line before anything is stored.
            let pairs = read_jsonl(&file)?;
            let store = cx.open_write()?;
            let kv = Kv::open(store.bucket().clone(), &args.name)?;
            let mut txn = kv.begin()?;
            for (line, (k, v)) in &pairs {
                txn.put(k.as_bytes(), v.as_bytes())
                    .with_context(|| format!("line {line}"))?;
            }
            txn.commit(&format!("import {}", file.display()))?;
            if !cx.json {
                println!("imported {} pairs into kv {}", pairs.len(), args.name);
            }
            Ok(())
        }
        KvCommand::Export => {
            let store = cx.open_read()?;
            let tree = Kv::open(store.bucket().clone(), &args.name)?.tree()?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut failed = None;
            tree.scan(Bound::Unbounded, Bound::Unbounded, false, &mut |k, item| {
                let v = tree.value(item)?;
                let line = serde_json::json!({
                    "key": String::from_utf8_lossy(k),
                    "value": String::from_utf8_lossy(&v),
                });
                if let Err(e) = writeln!(out, "{line}") {
                    failed = Some(e);
                    return Ok(false);
                }
                Ok(true)
            })?;
            if let Some(e) = failed {
                return Err(e.into());
            }
            out.flush()?;
            Ok(())
        }
    }
}

/// The root a snapshot names: a changelog id of the store, or a CID.
fn snapshot(kv: &Kv, spec: &str) -> Result<Cid> {
    super::fs::snapshot_of(kv.bucket(), kv.ref_name(), spec)
}

fn scan(
    cx: &Context,
    tree: &Tree,
    prefix: Option<&str>,
    reverse: bool,
    limit: usize,
) -> Result<()> {
    let from = prefix.map(str::as_bytes);
    let end = from.and_then(hydra_kv::prefix_end);
    let lo = from.map_or(Bound::Unbounded, Bound::Included);
    let hi = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
    let mut rows = Vec::new();
    tree.scan(lo, hi, reverse, &mut |k, item| {
        rows.push((k.clone(), tree.value(item)?));
        Ok(rows.len() < limit)
    })?;
    if cx.json {
        let rows: Vec<_> = rows
            .iter()
            .map(|(k, v)| {
                serde_json::json!({
                    "key": String::from_utf8_lossy(k),
                    "value": String::from_utf8_lossy(v),
                })
            })
            .collect();
        return output::json(&rows);
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (k, v) in rows {
        out.write_all(&k)?;
        out.write_all(b"\t")?;
        out.write_all(&v)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// Every `(line number, (key, value))` of a JSON-lines file; the first bad
/// line is an error naming it.
fn read_jsonl(file: &std::path::Path) -> Result<Vec<(usize, (String, String))>> {
    let mut out = Vec::new();
    for (i, line) in output::input_lines(file)?.enumerate() {
        let n = i + 1;
        let line = line.with_context(|| format!("line {n}: cannot read"))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(&line).with_context(|| format!("line {n}: not JSON"))?;
        let (Some(k), Some(val)) = (
            v.get("key").and_then(|k| k.as_str()),
            v.get("value").and_then(|k| k.as_str()),
        ) else {
            bail!("line {n}: expected {{\"key\": \"…\", \"value\": \"…\"}} with string fields");
        };
        hydra_kv::check_key(k.as_bytes()).with_context(|| format!("line {n}"))?;
        out.push((n, (k.to_string(), val.to_string())));
    }
    Ok(out)
}
