//! `hydra git import|export|log|ls|cat|checkout|list`, and the remote
//! helper `git-remote-hydra` that lets git clone, fetch and push
//! `hydra::NAME`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use hydra_dag::{OpenMode, Store, StoreOptions};
use hydra_fs::Caller;
use hydra_git::{ObjectKind, Oid, Repo, TreeEntry, format_date};

use super::{Context, default_store, fs::open_fs, output};

/// Subcommands of `hydra git`.
#[derive(Debug, Subcommand)]
pub enum GitCommand {
    /// Store every object and ref of a repository (a path or any URL git
    /// can clone) as `git/NAME`; again, only what is new.
    Import {
        /// A repository path, or a URL.
        source: String,
        /// The name to store it under.
        #[arg(long = "as", value_name = "NAME")]
        name: String,
    },
    /// Write a stored repository out as a bare repository (same ids and refs).
    Export {
        /// The repository.
        name: String,
        /// Where (absent or an empty directory).
        path: PathBuf,
    },
    /// Show commits reachable from REV (default HEAD), newest first.
    Log {
        /// The repository.
        name: String,
        /// Where to start.
        rev: Option<String>,
        /// At most this many.
        #[arg(short = 'n', long)]
        limit: Option<usize>,
        /// One line per commit: id and subject.
        #[arg(long)]
        oneline: bool,
    },
    /// List a tree, as `git ls-tree` does.
    Ls {
        /// The repository.
        name: String,
        /// The revision.
        rev: String,
        /// A path in its tree.
        path: Option<String>,
        /// Recurse into subdirectories.
        #[arg(short = 'r')]
        recursive: bool,
    },
    /// Print an object: `REV:PATH` for a file's bytes, or any revision.
    Cat {
        /// The repository.
        name: String,
        /// `REV:PATH`, or a revision.
        object: String,
    },
    /// Write the tree of REV into a filesystem of the store, in one commit.
    Checkout {
        /// The repository.
        name: String,
        /// The revision.
        rev: String,
        /// The filesystem (created if absent).
        #[arg(long = "fs", value_name = "FS")]
        fs: String,
        /// Where in it (absent or an empty directory).
        #[arg(long, default_value = "/")]
        at: String,
    },
    /// List the stored repositories.
    List,
}

/// Runs `hydra git …`.
pub fn run(cx: &Context, cmd: GitCommand) -> Result<()> {
    match cmd {
        GitCommand::Import { source, name } => import(cx, &source, &name),
        GitCommand::Export { name, path } => {
            let store = cx.open_read()?;
            let repo = Repo::open_existing(store.bucket(), &name)?;
            let r = hydra_git::export(&repo, &path)?;
            eprintln!(
                "exported {} objects and {} refs to {}",
                r.objects,
                r.refs,
                path.display()
            );
            Ok(())
        }
        GitCommand::Log {
            name,
            rev,
            limit,
            oneline,
        } => {
            let store = cx.open_read()?;
            let repo = Repo::open_existing(store.bucket(), &name)?;
            let start = repo.resolve(rev.as_deref().unwrap_or("HEAD"))?;
            let commits = repo.log(&[start], limit.unwrap_or(usize::MAX))?;
            let mut out = std::io::stdout().lock();
            for (i, (oid, c)) in commits.into_iter().enumerate() {
                if oneline {
                    writeln!(out, "{oid} {}", c.summary())?;
                    continue;
                }
                if i > 0 {
                    writeln!(out)?;
                }
                writeln!(out, "commit {oid}")?;
                if c.parents.len() > 1 {
                    let short: Vec<String> = c
                        .parents
                        .iter()
                        .map(|p| p.to_string()[..7].to_string())
                        .collect();
                    writeln!(out, "Merge: {}", short.join(" "))?;
                }
                writeln!(out, "Author: {} <{}>", c.author.name, c.author.email)?;
                writeln!(
                    out,
                    "Date:   {}\n",
                    format_date(c.author.time, c.author.offset_minutes)
                )?;
                for line in c.message.trim_end_matches('\n').lines() {
                    writeln!(out, "    {line}")?;
                }
            }
            Ok(())
        }
        GitCommand::Ls {
            name,
            rev,
            path,
            recursive,
        } => {
            let store = cx.open_read()?;
            let repo = Repo::open_existing(store.bucket(), &name)?;
            let tree = repo.peel(&repo.resolve(&rev)?, ObjectKind::Tree)?.0;
            let path = path.unwrap_or_default();
            let path = path.trim_matches('/');
            let mut out = std::io::stdout().lock();
            match repo.entry_at(&tree, path)? {
                Some(entry) if entry.object_kind() != ObjectKind::Tree => {
                    print_entry(&mut out, &entry, path.as_bytes())?;
                }
                Some(entry) => {
                    list_tree(&repo, &mut out, &entry.oid, &format!("{path}/"), recursive)?
                }
                None => list_tree(&repo, &mut out, &tree, "", recursive)?,
            }
            Ok(())
        }
        GitCommand::Cat { name, object } => {
            let store = cx.open_read()?;
            let repo = Repo::open_existing(store.bucket(), &name)?;
            let oid = match object.split_once(':') {
                Some((rev, path)) => {
                    let tree = repo.peel(&repo.resolve(rev)?, ObjectKind::Tree)?.0;
                    match repo.entry_at(&tree, path)? {
                        Some(e) => e.oid,
                        None => tree,
                    }
                }
                None => repo.resolve(&object)?,
            };
            let (kind, data) = repo.read(&oid)?;
            let mut out = std::io::stdout().lock();
            if kind == ObjectKind::Tree {
                list_tree(&repo, &mut out, &oid, "", false)?;
            } else {
                out.write_all(&data)?;
            }
            Ok(())
        }
        GitCommand::Checkout { name, rev, fs, at } => {
            let store = cx.open_write()?;
            let repo = Repo::open_existing(store.bucket(), &name)?;
            let target = open_fs(&store, &fs, false)?;
            let me = Caller::user(
                rustix::process::geteuid().as_raw(),
                rustix::process::getegid().as_raw(),
            );
            let started = Instant::now();
            let r = hydra_git::checkout(&repo, &rev, &target, at.as_bytes(), &me)?;
            target.close()?;
            eprintln!(
                "checked out {} ({} files and directories) into {fs}:{at} in {:.2?}",
                r.commit,
                r.nodes,
                started.elapsed()
            );
            Ok(())
        }
        GitCommand::List => {
            let store = cx.open_read()?;
            let mut out = std::io::stdout().lock();
            for name in hydra_git::list(store.bucket())? {
                writeln!(out, "{name}")?;
            }
            Ok(())
        }
    }
}

fn print_entry(out: &mut dyn Write, e: &TreeEntry, path: &[u8]) -> Result<()> {
    write!(out, "{:06o} {} {}\t", e.mode, e.object_kind().name(), e.oid)?;
    out.write_all(path)?;
    out.write_all(b"\n")?;
    Ok(())
}

fn list_tree(
    repo: &Repo,
    out: &mut dyn Write,
    tree: &Oid,
    prefix: &str,
    recursive: bool,
) -> Result<()> {
    for e in repo.tree(tree)? {
        let mut path = prefix.as_bytes().to_vec();
        path.extend_from_slice(&e.name);
        if recursive && e.object_kind() == ObjectKind::Tree {
            let sub = format!("{}/", String::from_utf8_lossy(&path));
            list_tree(repo, out, &e.oid, &sub, true)?;
        } else {
            print_entry(out, &e, &path)?;
        }
    }
    Ok(())
}

fn import(cx: &Context, source: &str, name: &str) -> Result<()> {
    let local = Path::new(source);
    let store = cx.open_write()?;
    let started = Instant::now();
    let report = if local.exists() {
        hydra_git::import(store.bucket(), name, local, &format!("git import {source}"))?
    } else {
        // Anything else is a URL for git itself to fetch (every transport
        // and credential helper it knows), mirrored into a scratch copy.
        let scratch = store
            .path()
            .join(format!("git-import-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        let out = Command::new("git")
            .args(["clone", "--mirror", "--quiet", "--", source])
            .arg(&scratch)
            .output()
            .context("cannot run git to fetch the repository")?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&scratch);
            let why = String::from_utf8_lossy(&out.stderr);
            bail!(
                "git clone --mirror {source} failed: {}",
                why.trim().lines().last().unwrap_or("no message")
            );
        }
        let result = hydra_git::import(
            store.bucket(),
            name,
            &scratch,
            &format!("git import {source}"),
        );
        let _ = std::fs::remove_dir_all(&scratch);
        result?
    };
    eprintln!(
        "imported {} new objects ({}), {} refs into git/{name} in {:.2?}",
        report.copied.objects,
        output::bytes(report.copied.bytes),
        report.refs,
        started.elapsed()
    );
    Ok(())
}

/// The store path and repository name of a `hydra::` URL: `NAME` (store
/// from `$HYDRA_STORE` or the default) or `STORE_PATH#NAME`.
fn parse_url(url: &str) -> (PathBuf, String) {
    let url = url.strip_prefix("hydra://").unwrap_or(url);
    match url.rsplit_once('#') {
        Some((store, name)) => (PathBuf::from(store), name.to_string()),
        None => (default_store(), url.to_string()),
    }
}

/// `git-remote-hydra REMOTE URL`: serves git's remote helper commands on
/// stdin/stdout.
pub fn remote_helper(args: &[std::ffi::OsString]) -> ExitCode {
    match remote_helper_inner(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => super::error::report(&err),
    }
}

fn remote_helper_inner(args: &[std::ffi::OsString]) -> Result<()> {
    let url = args
        .get(2)
        .or(args.get(1))
        .and_then(|a| a.to_str())
        .context("usage: git-remote-hydra REMOTE [URL] (run by git for hydra:: URLs)")?;
    let (store_path, name) = parse_url(url);
    let git_dir = std::env::var_os("GIT_DIR").map_or_else(|| PathBuf::from("."), PathBuf::from);
    let local = git2_open(&git_dir)?;
    let lock_wait = std::env::var("HYDRA_LOCK_WAIT")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .unwrap_or(Duration::from_secs(10));
    let cx = Context {
        store_path,
        json: false,
        lock_wait,
        argv: Vec::new(),
        bucket: std::env::var("HYDRA_BUCKET").ok().filter(|b| !b.is_empty()),
    };
    let mut held: Option<Store> = None;
    let mut open = |write: bool| -> hydra_git::GitResult<hydra_dag::Bucket> {
        let reopen = match &held {
            None => true,
            Some(store) => write && store.mode() == OpenMode::ReadOnly,
        };
        if reopen {
            held = None;
            let opened = if write {
                cx.open_write()
            } else if !cx.store_path.exists() {
                Err(anyhow::anyhow!("no store at {}", cx.store_path.display()))
            } else {
                cx.open(OpenMode::ReadOnly, &StoreOptions::default())
            };
            held = Some(opened.map_err(|e| hydra_git::GitError::Source(format!("{e:#}")))?);
        }
        match &held {
            Some(store) => Ok(store.bucket().clone()),
            None => Err(hydra_git::GitError::Source("store not open".into())),
        }
    };
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut stdout = std::io::stdout().lock();
    hydra_git::remote::serve(&name, &mut open, &local, &mut input, &mut stdout)?;
    Ok(())
}

fn git2_open(dir: &Path) -> Result<hydra_git::git2::Repository> {
    hydra_git::git2::Repository::open(dir)
        .with_context(|| format!("cannot open the local repository {}", dir.display()))
}
