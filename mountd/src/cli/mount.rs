//! `hydra mount`, `hydra umount`, `hydra status`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use hydra_dag::{OpenMode, Store, StoreOptions};
use hydra_fs::{Caller, Fs, FsOptions};

use super::fs::snapshot_root;
use super::{Context, output};
use crate::daemon;

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
    /// Commit this often while there are changes.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    commit_interval: u64,
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
        return spawn_daemon(cx, &args, &mountpoint);
    }
    let read_only = args.read_only || args.snapshot.is_some();
    // A daemon keeps its memory small: a modest block cache (the kernel's
    // page cache holds file data anyway) and frequent settling of writes.
    let options = StoreOptions {
        cache_bytes: DAEMON_CACHE,
    };
    let mode = if read_only {
        OpenMode::ReadOnly
    } else {
        OpenMode::ReadWrite
    };
    if !read_only && !cx.store_path.exists() {
        Store::init(&cx.store_path, &options)?;
    }
    let store = Store::open(&cx.store_path, mode, &options)?;
    let fs = open(&store, &args, read_only)?;
    daemon::serve(fs, store.path(), &mountpoint, &args.fs, args.allow_other)
}

fn open(store: &Store, args: &MountArgs, read_only: bool) -> Result<Fs> {
    let bucket = store.bucket().clone();
    if let Some(snap) = &args.snapshot {
        let root = snapshot_root(store, &args.fs, snap)?;
        return Ok(Fs::open_snapshot(bucket, root)?);
    }
    let name = hydra_dag::RefName::new(format!("fs/{}", args.fs))?;
    let exists = bucket.get_ref(&name)?.is_some();
    if !exists && read_only {
        bail!("filesystem {} does not exist", args.fs);
    }
    if !exists {
        eprintln!(
            "hydra: note: filesystem {} does not exist yet; created it empty",
            args.fs
        );
    }
    let owner = Caller::user(
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw(),
    );
    let options = FsOptions {
        read_only,
        commit_interval: Some(std::time::Duration::from_secs(args.commit_interval.max(1))),
        statfs_path: Some(store.path().to_path_buf()),
        dirty_limit: DAEMON_DIRTY_LIMIT,
        ..FsOptions::default()
    };
    let fs = Fs::open(bucket, &args.fs, &owner, options)?;
    if !exists {
        fs.commit("create")?;
    }
    Ok(fs)
}

fn spawn_daemon(cx: &Context, args: &MountArgs, mountpoint: &Path) -> Result<()> {
    // Fail here, not in the daemon, when the store cannot be opened.
    if !cx.store_path.exists() {
        Store::init(&cx.store_path, &StoreOptions::default())?;
        eprintln!("hydra: created a new store at {}", cx.store_path.display());
    }
    let mode = if args.read_only || args.snapshot.is_some() {
        OpenMode::ReadOnly
    } else {
        OpenMode::ReadWrite
    };
    drop(Store::open(&cx.store_path, mode, &StoreOptions::default())?);
    let logs = daemon::registry(&cx.store_path);
    std::fs::create_dir_all(&logs)?;
    let log = logs.join(format!("{}.log", args.fs));
    let log_file =
        std::fs::File::create(&log).with_context(|| format!("cannot write {}", log.display()))?;
    let exe = std::env::current_exe().context("cannot find the hydra binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("--store")
        .arg(&cx.store_path)
        .arg("mount")
        .arg(&args.fs)
        .arg(mountpoint)
        .arg("--foreground")
        .arg("--commit-interval")
        .arg(args.commit_interval.to_string());
    if args.read_only {
        cmd.arg("--read-only");
    }
    if args.allow_other {
        cmd.arg("--allow-other");
    }
    if let Some(snap) = &args.snapshot {
        cmd.arg("--snapshot").arg(snap);
    }
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
        .context("cannot start the mount daemon")?;
    daemon::wait_until_mounted(&mut child, mountpoint, &log)?;
    if cx.json {
        return output::json(
            &serde_json::json!({ "mountpoint": mountpoint, "pid": child.id(), "fs": args.fs }),
        );
    }
    println!(
        "mounted {} at {} (pid {}, log {})",
        args.fs,
        mountpoint.display(),
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
        println!("no live mounts");
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
        println!(
            "{}\t{}\tpid {}\t{}{}\troot {}",
            m.mountpoint.display(),
            m.fs,
            m.pid,
            if m.read_only { "ro" } else { "rw" },
            pending,
            m.root.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}
