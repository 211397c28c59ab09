//! `hydra ref get|set|log|list`.

use anyhow::Result;
use clap::Subcommand;
use hydra_dag::{Cid, DagError, RefName, RefNote};

use super::{Context, output};

/// Subcommands of `hydra ref`.
#[derive(Debug, Subcommand)]
pub enum RefCommand {
    /// Print the CID a ref names.
    Get {
        /// The ref, e.g. `fs/home`.
        name: RefName,
    },
    /// Point a ref at a block (a logged compare-and-swap).
    Set {
        /// The ref.
        name: RefName,
        /// The new root; it must be in the store.
        cid: Cid,
        /// Why (kept in the changelog).
        #[arg(short, long, default_value = "")]
        message: String,
        /// Only change the ref if it currently names this CID.
        #[arg(long, value_name = "CID")]
        expect: Option<Cid>,
    },
    /// Show the changelog of one ref, or of all, newest first.
    Log {
        /// The ref; all refs when omitted.
        name: Option<RefName>,
        /// At most this many entries.
        #[arg(short = 'n', long, default_value_t = 100)]
        limit: usize,
    },
    /// List every ref and its root.
    List,
    /// Print ref updates as they happen (until interrupted): `ID REF OLD -> NEW MESSAGE`.
    Watch {
        /// Refs to follow; `*` stands for anything (`fs/*`).
        #[arg(default_value = "*")]
        pattern: String,
        /// Start after this changelog id (default: now).
        #[arg(long, value_name = "ID")]
        from: Option<u64>,
        /// Stop after this many updates.
        #[arg(short = 'n', long)]
        count: Option<usize>,
    },
}

/// Runs a `hydra ref` subcommand.
pub fn run(cx: &Context, cmd: RefCommand) -> Result<()> {
    match cmd {
        RefCommand::Watch {
            pattern,
            from,
            count,
        } => watch(cx, &pattern, from, count),
        RefCommand::Get { name } => {
            let store = cx.open_read()?;
            let Some(cid) = store.bucket().get_ref(&name)? else {
                anyhow::bail!("ref {name} does not exist");
            };
            if cx.json {
                return output::json(&serde_json::json!({ "name": name, "cid": cid }));
            }
            println!("{cid}");
            Ok(())
        }
        RefCommand::Set {
            name,
            cid,
            message,
            expect,
        } => {
            let store = cx.open_write()?;
            let bucket = store.bucket();
            if !bucket.has(&cid)? {
                return Err(DagError::NotFound { cid }.into());
            }
            let note = RefNote::by_current_user(message);
            let entry = match expect {
                Some(old) => bucket.cas_ref(&name, Some(&old), Some(&cid), &note)?,
                None => bucket.set_ref(&name, Some(&cid), &note)?,
            };
            if cx.json {
                return output::json(&entry);
            }
            println!("{name}: {} -> {cid}", output::opt_cid(entry.old));
            Ok(())
        }
        RefCommand::Log { name, limit } => {
            let store = cx.open_read()?;
            let entries = store.bucket().log(name.as_ref(), limit)?;
            if cx.json {
                return output::json(&entries);
            }
            for e in entries {
                println!(
                    "{:>6}  {}  {}  {} -> {}  {}: {}",
                    e.id,
                    output::time(e.time_ns),
                    e.name,
                    output::opt_cid(e.old),
                    output::opt_cid(e.new),
                    e.author,
                    e.message
                );
            }
            Ok(())
        }
        RefCommand::List => {
            let store = cx.open_read()?;
            let refs = store.bucket().list_refs()?;
            if cx.json {
                let list: Vec<_> = refs
                    .iter()
                    .map(|(n, c)| serde_json::json!({ "name": n, "cid": c }))
                    .collect();
                return output::json(&list);
            }
            for (name, cid) in refs {
                println!("{name}\t{cid}");
            }
            Ok(())
        }
    }
}

/// Polls the changelog and prints what matches, opening the store only
/// for each look so writers are never kept waiting.
fn watch(cx: &Context, pattern: &str, from: Option<u64>, count: Option<usize>) -> Result<()> {
    use std::io::Write;
    let latest = |cx: &Context| -> Result<Vec<hydra_dag::LogEntry>> {
        let store = cx.open_read()?;
        Ok(store.bucket().log(None, 10_000)?)
    };
    let mut after = match from {
        Some(id) => id,
        None => latest(cx)?.first().map_or(0, |e| e.id),
    };
    let mut shown = 0;
    let show = |c: Option<Cid>| c.map_or_else(|| "-".to_string(), |c| c.to_string());
    loop {
        let entries = latest(cx)?;
        let since = after;
        for entry in entries.into_iter().rev().filter(|e| e.id > since) {
            after = entry.id;
            if !crate::gateway::http::glob_match(pattern, entry.name.as_str()) {
                continue;
            }
            if cx.json {
                println!("{}", serde_json::to_string(&entry)?);
            } else {
                println!(
                    "{} {} {} -> {} {}",
                    entry.id,
                    entry.name,
                    show(entry.old),
                    show(entry.new),
                    entry.message
                );
            }
            std::io::stdout().flush()?;
            shown += 1;
            if count.is_some_and(|n| shown >= n) {
                return Ok(());
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}
