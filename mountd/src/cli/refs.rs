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
        /// Check every entry's signature and show its signer; exit 3 when
        /// one does not match.
        #[arg(long)]
        verify: bool,
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
        RefCommand::Log {
            name,
            limit,
            verify,
        } => {
            let store = cx.open_read()?;
            let entries = store.bucket().log(name.as_ref(), limit)?;
            if verify {
                let me = store.bucket().identity().map(hydra_dag::Identity::signer);
                return verify_log(cx, &entries, me.as_deref());
            }
            if cx.json {
                return output::json(&entries);
            }
            for e in &entries {
                println!("{}", log_line(e));
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

/// Prints the public key that signs this store's changelog entries.
pub fn id(cx: &Context) -> Result<()> {
    let store = cx.open_read()?;
    let Some(identity) = store.bucket().identity() else {
        anyhow::bail!("this store has no identity yet (it gets one when opened for writing)");
    };
    if cx.json {
        return output::json(&serde_json::json!({ "signer": identity.signer() }));
    }
    println!("{}", identity.signer());
    Ok(())
}

/// One changelog entry as `hydra ref log` prints it.
fn log_line(e: &hydra_dag::LogEntry) -> String {
    format!(
        "{:>6}  {}  {}  {} -> {}  {}: {}",
        e.id,
        output::time(e.time_ns),
        e.name,
        output::opt_cid(e.old),
        output::opt_cid(e.new),
        e.author,
        e.message
    )
}

/// Prints each entry with its signer and what checking found; fails (exit
/// 3) when a signature does not match its entry.
fn verify_log(cx: &Context, entries: &[hydra_dag::LogEntry], me: Option<&str>) -> Result<()> {
    use hydra_dag::Verdict;
    let mut bad = None;
    let (mut valid, mut unsigned) = (0, 0);
    let mut rows = Vec::new();
    for e in entries {
        let verdict = e.verify();
        let (status, signer) = match &verdict {
            Verdict::Valid(s) => {
                valid += 1;
                ("valid", Some(s.as_str()))
            }
            Verdict::Unsigned => {
                unsigned += 1;
                ("unsigned", None)
            }
            Verdict::Invalid(s) => {
                bad.get_or_insert((e.id, e.name.to_string(), s.clone()));
                ("INVALID", Some(s.as_str()))
            }
        };
        if cx.json {
            rows.push(serde_json::json!({ "entry": e, "verified": status }));
            continue;
        }
        let by = match signer {
            Some(s) if Some(s) == me => format!("{s} (this store)"),
            Some(s) => s.to_string(),
            None => "-".into(),
        };
        println!("{}\n        {status}  signed by {by}", log_line(e));
    }
    if cx.json {
        output::json(&rows)?;
    } else {
        println!(
            "{} entries: {valid} valid, {unsigned} unsigned, {} invalid",
            entries.len(),
            entries.len() - valid - unsigned
        );
    }
    if let Some((id, name, signer)) = bad {
        return Err(DagError::BadSignature { id, name, signer }.into());
    }
    Ok(())
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
