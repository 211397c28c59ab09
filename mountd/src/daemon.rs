//! Mount daemons: serving a filesystem over FUSE until told to stop, and
//! the registry of live mounts that `hydra status` and `hydra umount` read.
//!
//! The registry is a folder `mounts/` in the store with one JSON file per
//! mount, written by the daemon (which holds the store lock) and read
//! without opening the store.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use hydra_fs::Fs;
use serde::{Deserialize, Serialize};

/// What the registry records of one mount.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MountRecord {
    /// The daemon's process id.
    pub pid: u32,
    /// Where it is mounted.
    pub mountpoint: PathBuf,
    /// The filesystem served.
    pub fs: String,
    /// Read-only (or a snapshot).
    pub read_only: bool,
    /// The root last committed, refreshed by the daemon.
    pub root: Option<String>,
    /// Whether changes await a commit.
    pub dirty: bool,
    /// Bytes written and not yet stored.
    #[serde(default)]
    pub dirty_bytes: u64,
}

/// The registry folder of a store.
pub fn registry(store: &Path) -> PathBuf {
    store.join("mounts")
}

fn record_path(store: &Path, mountpoint: &Path) -> PathBuf {
    let key: String = mountpoint
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    registry(store).join(format!("{key}.json"))
}

/// Writes (or refreshes) a mount's record.
pub fn write_record(store: &Path, record: &MountRecord) -> Result<()> {
    std::fs::create_dir_all(registry(store))?;
    let path = record_path(store, &record.mountpoint);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(record)?)?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

/// Removes a mount's record.
pub fn remove_record(store: &Path, mountpoint: &Path) {
    let _ = std::fs::remove_file(record_path(store, mountpoint));
}

/// Whether process `pid` is alive.
pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The live mounts of a store (records of dead daemons are dropped).
pub fn live_mounts(store: &Path) -> Vec<MountRecord> {
    let Ok(dir) = std::fs::read_dir(registry(store)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let Some(record) = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<MountRecord>(&b).ok())
        else {
            continue;
        };
        if alive(record.pid) {
            out.push(record);
        } else {
            let _ = std::fs::remove_file(&path);
        }
    }
    out.sort_by(|a, b| a.mountpoint.cmp(&b.mountpoint));
    out
}

/// Whether `path` is a mount point of a FUSE filesystem served by hydra.
pub fn is_hydra_mount(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    info.lines().any(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let mount_point = fields.get(4).map(|m| m.replace("\\040", " "));
        let fstype = fields.iter().skip_while(|f| **f != "-").nth(1);
        mount_point.as_deref() == Some(want.as_ref())
            && fstype.is_some_and(|t| t.starts_with("fuse"))
    })
}

/// Serves `fs` at `mountpoint` until SIGINT/SIGTERM or an unmount, then
/// commits. Records itself in the store's registry while it runs.
pub fn serve(fs: Fs, store: &Path, mountpoint: &Path, name: &str, allow_other: bool) -> Result<()> {
    use fuser::{Config, MountOption, SessionACL};
    let read_only = fs.is_read_only();
    let mut options = vec![
        MountOption::FSName(format!("hydra:{name}")),
        MountOption::Subtype("hydra".into()),
        MountOption::Dev,
        MountOption::Suid,
        if read_only {
            MountOption::RO
        } else {
            MountOption::RW
        },
    ];
    if allow_other {
        options.push(MountOption::CUSTOM("allow_other".into()));
    }
    let mut config = Config::default();
    config.mount_options = options;
    config.acl = if allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    config.n_threads = Some(2);
    let notifier = std::sync::Arc::new(std::sync::OnceLock::new());
    let snapshots = if read_only {
        None
    } else {
        Some(crate::snapdir::Snapshots::new(fs.bucket().clone(), name)?)
    };
    let session = fuser::Session::new(
        crate::fuse::HydraFuse::new(fs.clone(), snapshots, notifier.clone()),
        mountpoint,
        &config,
    )
    .with_context(|| format!("cannot mount on {}", mountpoint.display()))?;
    let _ = notifier.set(session.notifier());
    let background = session.spawn().context("cannot start the FUSE session")?;

    let mut record = MountRecord {
        pid: std::process::id(),
        mountpoint: mountpoint.to_path_buf(),
        fs: name.to_string(),
        read_only,
        root: fs.base().map(|c| c.to_string()),
        dirty: false,
        dirty_bytes: 0,
    };
    write_record(store, &record)?;

    // Signals ask for an unmount; the session then ends and is joined below.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    let handle = signals.handle();
    let target = mountpoint.to_path_buf();
    let signal_thread = std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            eprintln!("hydra: signal {signal}: committing and unmounting");
            if let Err(e) = unmount(&target) {
                eprintln!("hydra: error: unmount of {} failed: {e}", target.display());
            }
        }
    });
    // Refresh the record while mounted (for `hydra status`).
    let refresh_fs = fs.clone();
    let refresh_store = store.to_path_buf();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let refresh_stop = stop.clone();
    let refresher = std::thread::spawn(move || {
        while !refresh_stop.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(500));
            record.root = refresh_fs.base().map(|c| c.to_string());
            record.dirty = refresh_fs.is_dirty();
            record.dirty_bytes = refresh_fs.pending_bytes();
            let _ = write_record(&refresh_store, &record);
        }
    });
    let joined = background.join();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    handle.close();
    let _ = signal_thread.join();
    let _ = refresher.join();
    let closed = fs.close();
    remove_record(store, mountpoint);
    joined.context("FUSE session failed")?;
    closed.context("final commit failed")?;
    Ok(())
}

/// Unmounts `mountpoint`: directly as root, else through fusermount3.
fn unmount(mountpoint: &Path) -> Result<()> {
    match rustix::mount::unmount(mountpoint, rustix::mount::UnmountFlags::empty()) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::PERM) => {
            let status = std::process::Command::new("fusermount3")
                .arg("-u")
                .arg(mountpoint)
                .status()
                .context("cannot run fusermount3")?;
            if !status.success() {
                bail!("fusermount3 -u failed ({status})");
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Waits until `mountpoint` is a live mount or the daemon `child` exits.
pub fn wait_until_mounted(
    child: &mut std::process::Child,
    mountpoint: &Path,
    log: &Path,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if is_hydra_mount(mountpoint) {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            let log_text = std::fs::read_to_string(log).unwrap_or_default();
            let last = log_text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no output")
                .trim_start_matches("hydra: error: ")
                .to_string();
            bail!("the mount daemon exited ({status}): {last}");
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not appear within 60 s (see {})",
                mountpoint.display(),
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asks the daemon serving `mountpoint` to commit and unmount; waits.
pub fn stop(store: &Path, mountpoint: &Path) -> Result<bool> {
    let Some(record) = live_mounts(store)
        .into_iter()
        .find(|r| r.mountpoint == mountpoint)
    else {
        return Ok(false);
    };
    let pid = rustix::process::Pid::from_raw(record.pid as i32)
        .context("bad pid in the mount registry")?;
    rustix::process::kill_process(pid, rustix::process::Signal::TERM)
        .with_context(|| format!("cannot signal the daemon (pid {})", record.pid))?;
    let deadline = Instant::now() + Duration::from_secs(300);
    while alive(record.pid) {
        if Instant::now() > deadline {
            bail!("the daemon (pid {}) did not stop within 300 s", record.pid);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(true)
}
