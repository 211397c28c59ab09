//! `hydra mount`, `hydra umount`, `hydra status`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use hydra_dag::{OpenMode, Store, StoreOptions};
use hydra_fs::{Caller, Fs, FsOptions, OnConflict};

use super::fs::snapshot_root;
use super::{Context, output};
use crate::daemon;
use crate::ninep::{Cidr, Listen};

/// Block cache of a mount daemon.
const DAEMON_CACHE: usize = 64 << 20;
/// Changed bytes a mount daemon holds before committing.
const DAEMON_DIRTY_LIMIT: u64 = 64 << 20;

/// Arguments of `hydra mount`.
#[derive(Debug, Args)]
pub struct MountArgs {
    /// The filesystem (created empty if it does not exist).
    fs: String,
    /// Where to mount it.
    mountpoint: PathBuf,
    /// Refuse every change.
    #[arg(long)]
    read_only: bool,
    /// Mount this snapshot (changelog id or root CID), read-only.
    #[arg(long, value_name = "SNAP")]
    snapshot: Option<String>,
    /// Stay in the foreground instead of starting a daemon.
    #[arg(long)]
    foreground: bool,
    /// Let other users than the mounting one use the mount.
    #[arg(long)]
    allow_other: bool,
    #[command(flatten)]
    intervals: IntervalArgs,
    /// Also serve the filesystem over 9P2000.L here (repeatable).
    #[arg(long = "serve-9p", value_name = "tcp:HOST:PORT|unix:PATH")]
    serve_9p: Vec<Listen>,
    /// TCP clients the 9P server admits (CIDR, repeatable; default: loopback).
    #[arg(long, value_name = "CIDR")]
    allow: Vec<Cidr>,
    /// Also serve the store over HTTP here (see `hydra gateway`), with
    /// FUSE and 9P request counts in its /metrics.
    #[arg(long, value_name = "ADDR")]
    gateway: Option<std::net::SocketAddr>,
    /// The bearer token file the gateway's writes need.
    #[arg(long, value_name = "FILE", requires = "gateway")]
    gateway_token_file: Option<PathBuf>,
}

/// Arguments of `hydra umount`.
#[derive(Debug, Args)]
pub struct UmountArgs {
    /// The mount point.
    mountpoint: PathBuf,
}

/// Mounts, in the background unless `--foreground`.
pub fn mount(cx: &Context, args: MountArgs) -> Result<()> {
    let mountpoint = std::fs::canonicalize(&args.mountpoint)
        .with_context(|| format!("mount point {} does not exist", args.mountpoint.display()))?;
    if !mountpoint.is_dir() {
        bail!("mount point {} is not a directory", mountpoint.display());
    }
    if daemon::is_hydra_mount(&mountpoint) {
        bail!("{} is already a mount point", mountpoint.display());
    }
    if !args.foreground {
        let read_only = args.read_only || args.snapshot.is_some();
        let (child, log) = spawn_daemon(cx, &args.fs, read_only)?;
        return report_started(
            cx,
            child,
            &log,
            &args.fs,
            &mountpoint.display().to_string(),
            || daemon::is_hydra_mount(&mountpoint),
        );
    }
    let read_only = args.read_only || args.snapshot.is_some();
    // A taken address fails before anything is created.
    let listener = args.gateway.map(crate::gateway::bind).transpose()?;
    let token = super::gateway::read_token(args.gateway_token_file.as_deref())?;
    let store = open_store(cx, read_only)?;
    let fs = open(
        &store,
        &args.fs,
        args.snapshot.as_deref(),
        read_only,
        args.intervals.intervals()?,
    )?;
    let path = store.path().to_path_buf();
    let (gateway, store) = match listener {
        Some(listener) => {
            let gateway = crate::gateway::Gateway::new(store, read_only, token);
            (Some(daemon::GatewayFront { gateway, listener }), None)
        }
        None => (None, Some(store)),
    };
    let fronts = daemon::Fronts {
        mountpoint: Some(mountpoint),
        allow_other: args.allow_other,
        listen: args.serve_9p,
        allow: args.allow,
        max_connections: None,
        gateway,
    };
    let served = daemon::serve(fs, &path, &args.fs, fronts);
    // The store (and its lock) lives until the daemon is done.
    drop(store);
    served
}

/// Opens a store for a daemon: created when absent (unless read-only).
pub(super) fn open_store(cx: &Context, read_only: bool) -> Result<Store> {
    // A daemon keeps its memory small: a modest block cache (the kernel's
    // page cache holds file data anyway) and frequent settling of writes.
    let options = StoreOptions {
        cache_bytes: DAEMON_CACHE,
        ..StoreOptions::default()
    };
    let mode = if read_only {
        OpenMode::ReadOnly
    } else {
        OpenMode::ReadWrite
    };
    if !read_only && !cx.store_path.exists() {
        Store::init(&cx.store_path, &options)?;
    }
    cx.open(mode, &options)
}

/// How often a daemon commits and looks for other writers' commits, and
/// how many inodes it keeps in memory.
#[derive(Debug, Args)]
pub struct IntervalArgs {
    /// Commit this often while there are changes (at least 1).
    #[arg(long, value_name = "SECS", default_value_t = 5, value_parser = at_least_one::<u64>)]
    commit_interval: u64,
    /// Look this often for commits of other writers of the filesystem
    /// (another daemon on a shared volume); 0: never.
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    refresh_interval: f64,
    /// Inodes kept in memory before directories nobody uses are unloaded
    /// (they come back, with the same numbers, when next used).
    #[arg(long, value_name = "N", default_value_t = hydra_fs::MAX_INODES,
          value_parser = at_least_one::<usize>)]
    max_inodes: usize,
}

/// A whole number that must be at least 1.
fn at_least_one<T: std::str::FromStr + PartialOrd + From<u8>>(s: &str) -> Result<T, String> {
    match s.parse::<T>() {
        Ok(n) if n >= T::from(1) => Ok(n),
        Ok(_) => Err("must be at least 1".into()),
        Err(_) => Err("not a whole number".into()),
    }
}

impl IntervalArgs {
    /// The intervals asked for, checked.
    pub(super) fn intervals(&self) -> Result<Intervals> {
        let refresh = Duration::try_from_secs_f64(self.refresh_interval).map_err(|_| {
            anyhow::anyhow!(
                "--refresh-interval: {} is not a number of seconds",
                self.refresh_interval
            )
        })?;
        Ok(Intervals {
            commit: Duration::from_secs(self.commit_interval),
            refresh: Some(refresh).filter(|r| !r.is_zero()),
            max_inodes: self.max_inodes,
        })
    }
}

/// How often a daemon commits and looks for other writers' commits.
#[derive(Clone, Copy, Debug)]
pub(super) struct Intervals {
    /// Commit this often while there are changes.
    pub commit: Duration,
    /// Look for other writers' commits this often (`None`: never).
    pub refresh: Option<Duration>,
    /// Inodes kept in memory before unused ones are unloaded.
    pub max_inodes: usize,
}

/// Opens filesystem `name` (or its snapshot) for a daemon, creating it
/// empty when it does not exist and may be written. Another writer's
/// conflicting change is kept beside ours, never refused (a daemon has no
/// one to hand the refusal to).
pub(super) fn open(
    store: &Store,
    name: &str,
    snapshot: Option<&str>,
    read_only: bool,
    intervals: Intervals,
) -> Result<Fs> {
    let bucket = store.bucket().clone();
    if let Some(snap) = snapshot {
        let root = snapshot_root(store, name, snap)?;
        return Ok(Fs::open_snapshot(bucket, root)?);
    }
    let exists = bucket.get_ref(&super::fs::fs_ref(name)?)?.is_some();
    if !exists && read_only {
        bail!("filesystem {name} does not exist");
    }
    if !exists {
        eprintln!("{}", created_note(name));
    }
    let owner = Caller::user(
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw(),
    );
    let options = FsOptions {
        read_only,
        commit_interval: Some(intervals.commit),
        refresh_interval: intervals.refresh,
        on_conflict: OnConflict::KeepBoth,
        statfs_path: Some(store.path().to_path_buf()),
        dirty_limit: DAEMON_DIRTY_LIMIT,
        max_inodes: intervals.max_inodes,
        ..FsOptions::default()
    };
    let fs = Fs::open(bucket, name, &owner, options)?;
    if !exists {
        fs.commit("create")?;
    }
    Ok(fs)
}

/// What a mount or server says when it creates the filesystem `name`.
fn created_note(name: &str) -> String {
    format!("hydra: note: filesystem {name} does not exist yet; created it empty")
}

/// Starts this very command again in the background with
/// `--foreground`, its output going to a log in the store.
pub(super) fn spawn_daemon(
    cx: &Context,
    fs: &str,
    read_only: bool,
) -> Result<(std::process::Child, PathBuf)> {
    // Fail here, not in the daemon, on a bad name or a store that cannot
    // be opened; a bad name before a store is created.
    let fs_ref = super::fs::fs_ref(fs)?;
    if !read_only && !cx.store_path.exists() {
        Store::init(&cx.store_path, &StoreOptions::default())?;
        eprintln!("hydra: created a new store at {}", cx.store_path.display());
    }
    let mode = if read_only {
        OpenMode::ReadOnly
    } else {
        OpenMode::ReadWrite
    };
    let store = cx.open(mode, &StoreOptions::default())?;
    // The daemon creates a missing filesystem; the note is said here, where
    // the user sees it, not only in the daemon's log.
    if !read_only && store.bucket().get_ref(&fs_ref)?.is_none() {
        eprintln!("{}", created_note(fs));
    }
    drop(store);
    let logs = daemon::registry(&cx.store_path);
    std::fs::create_dir_all(&logs)?;
    let log = logs.join(format!("{fs}.log"));
    let log_file =
        std::fs::File::create(&log).with_context(|| format!("cannot write {}", log.display()))?;
    let exe = std::env::current_exe().context("cannot find the hydra binary")?;
    let mut cmd = Command::new(exe);
    // The same command line; the store path travels in the environment,
    // which a `--store` on the command line still overrides.
    cmd.env("HYDRA_STORE", &cx.store_path)
        .args(cx.argv.iter().skip(1))
        .arg("--foreground");
    // glibc's allocator keeps freed megabyte buffers (chunk segments, I/O
    // frames) in per-thread arenas and raises its mmap threshold as they
    // come and go, so a long-lived daemon's RSS only grows. Fewer arenas
    // and a fixed threshold hand such buffers back to the kernel.
    if std::env::var_os("GLIBC_TUNABLES").is_none() {
        cmd.env(
            "GLIBC_TUNABLES",
            "glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=262144:glibc.malloc.trim_threshold=1048576",
        );
    }
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
        .context("cannot start the daemon")?;
    Ok((child, log))
}

/// Waits for a started daemon to be live and says where it serves.
pub(super) fn report_started(
    cx: &Context,
    mut child: std::process::Child,
    log: &Path,
    fs: &str,
    place: &str,
    ready: impl Fn() -> bool,
) -> Result<()> {
    daemon::wait_until_ready(&mut child, place, log, ready)?;
    if cx.json {
        return output::json(&serde_json::json!({ "at": place, "pid": child.id(), "fs": fs }));
    }
    let verb = if place.starts_with("tcp:") || place.starts_with("unix:") {
        "serving"
    } else {
        "mounted"
    };
    println!(
        "{verb} {fs} at {place} (pid {}, log {})",
        child.id(),
        log.display()
    );
    Ok(())
}

/// Commits and unmounts.
pub fn umount(cx: &Context, args: UmountArgs) -> Result<()> {
    let mountpoint = std::fs::canonicalize(&args.mountpoint).unwrap_or(args.mountpoint.clone());
    if daemon::stop(&cx.store_path, &mountpoint)? {
        println!("unmounted {}", mountpoint.display());
        return Ok(());
    }
    if !daemon::is_hydra_mount(&mountpoint) {
        bail!(
            "{} is not a hydra mount of store {}",
            mountpoint.display(),
            cx.store_path.display()
        );
    }
    // A mount whose daemon this store does not know: unmount it plainly.
    for tool in ["fusermount3", "fusermount", "umount"] {
        let args: &[&str] = if tool == "umount" { &[] } else { &["-u"] };
        if let Ok(status) = Command::new(tool).args(args).arg(&mountpoint).status()
            && status.success()
        {
            println!("unmounted {}", mountpoint.display());
            return Ok(());
        }
    }
    bail!("cannot unmount {}", mountpoint.display())
}

/// Lists live mounts.
pub fn status(cx: &Context) -> Result<()> {
    let mounts = daemon::live_mounts(&cx.store_path);
    if cx.json {
        return output::json(&mounts);
    }
    if mounts.is_empty() {
        println!("no live mounts or servers");
    }
    for m in mounts {
        let pending = if m.dirty {
            format!(
                ", changes pending ({} unstored)",
                output::bytes(m.dirty_bytes)
            )
        } else {
            String::new()
        };
        let mut at = Vec::new();
        if !m.mountpoint.as_os_str().is_empty() {
            at.push(m.mountpoint.display().to_string());
        }
        at.extend(m.listen.iter().map(|l| format!("9p {l}")));
        at.extend(m.gateway.iter().map(|g| format!("http {g}")));
        println!(
            "{}\t{}\tpid {}\t{}{}\t{} inodes ({} unloaded)\troot {}",
            at.join(", "),
            m.fs,
            m.pid,
            if m.read_only { "ro" } else { "rw" },
            pending,
            m.inodes,
            m.unloaded,
            m.root.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}
