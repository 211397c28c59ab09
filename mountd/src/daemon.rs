//! Daemons: serving a filesystem over FUSE, 9P or both until told to
//! stop, and the registry of live mounts and servers that `hydra status`
//! and `hydra umount` read.
//!
//! The registry is a folder `mounts/` in the store with one JSON file per
//! mount, written by the daemon (which holds the store lock) and read
//! without opening the store.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use anyhow::{Context as _, Result, bail};
use hydra_fs::{Changed, Fs, Ino};
use serde::{Deserialize, Serialize};

use crate::ninep::{self, Cidr, Export, Listen, session::Invalidate};
use crate::ops::OpCounts;

/// What the registry records of one mount.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MountRecord {
    /// The daemon's process id.
    pub pid: u32,
    /// Where it is mounted with FUSE (empty: not mounted, 9P only).
    pub mountpoint: PathBuf,
    /// Where it serves 9P.
    #[serde(default)]
    pub listen: Vec<String>,
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
    /// Inodes in memory.
    #[serde(default)]
    pub inodes: usize,
    /// Inodes unloaded (their numbers kept, see `hydra mount --max-inodes`).
    #[serde(default)]
    pub unloaded: usize,
    /// Inodes unloaded so far, counting each time.
    #[serde(default)]
    pub unloads: u64,
    /// What the 9P server holds (when it serves 9P).
    #[serde(default)]
    pub ninep: Option<ninep::server::Stats>,
    /// Where its HTTP gateway listens, if it has one.
    #[serde(default)]
    pub gateway: Option<String>,
    /// Requests to stop it so far (signals).
    #[serde(default)]
    pub stops: u64,
    /// Why the last request to stop was refused: its commit failed, so it
    /// stays mounted with the changes in memory.
    #[serde(default)]
    pub stop_refused: Option<String>,
    /// Which process `pid` was: a record left by a crash or a power cut may
    /// name a pid another process has since taken. (Absent in records of
    /// older daemons, which are then taken at their pid's word.)
    #[serde(default)]
    pub started: Option<Started>,
}

/// A process told apart from later ones given the same pid: the boot it ran
/// in and when it started (in clock ticks since that boot).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot: String,
    /// Field 22 of `/proc/<pid>/stat`.
    pub ticks: u64,
}

impl Started {
    /// The identity of process `pid`, if it is running.
    pub fn of(pid: u32) -> Option<Started> {
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The name (field 2) may hold spaces and parentheses: count the
        // fields after its closing one, which is field 3.
        let after_name = &stat[stat.rfind(')')? + 1..];
        let ticks = after_name.split_whitespace().nth(22 - 3)?.parse().ok()?;
        Some(Started {
            boot: boot.trim().to_string(),
            ticks,
        })
    }
}

/// The registry folder of a store.
pub fn registry(store: &Path) -> PathBuf {
    store.join("mounts")
}

/// The name a daemon is known by: its mount point, else its first address.
pub fn record_key(record: &MountRecord) -> String {
    if record.mountpoint.as_os_str().is_empty() {
        return record.listen.first().cloned().unwrap_or_default();
    }
    record.mountpoint.to_string_lossy().into_owned()
}

fn record_path(store: &Path, key: &str) -> PathBuf {
    let key: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    registry(store).join(format!("{key}.json"))
}

/// Writes (or refreshes) a mount's record.
pub fn write_record(store: &Path, record: &MountRecord) -> Result<()> {
    std::fs::create_dir_all(registry(store))?;
    let path = record_path(store, &record_key(record));
    let tmp = path.with_extension("tmp");
    let bytes = serde_json::to_vec_pretty(record)?;
    if let Err(e) = std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, &path)) {
        let _ = std::fs::remove_file(&tmp);
        // A full disk: rewrite the record in its own space (a reader that
        // catches it half written skips it, as a record being replaced).
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|_| e)?;
        std::io::Write::write_all(&mut file, &bytes)?;
        file.set_len(bytes.len() as u64)?;
    }
    Ok(())
}

/// Removes a daemon's record.
pub fn remove_record(store: &Path, record: &MountRecord) {
    let _ = std::fs::remove_file(record_path(store, &record_key(record)));
}

/// Whether the daemon `record` names still runs (not merely its pid).
pub fn record_alive(record: &MountRecord) -> bool {
    match &record.started {
        Some(started) => Started::of(record.pid).as_ref() == Some(started),
        None => alive(record.pid),
    }
}

/// Whether process `pid` is alive.
fn alive(pid: u32) -> bool {
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
        if record_alive(&record) {
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

/// What a daemon serves its filesystem through.
#[derive(Debug, Default)]
pub struct Fronts {
    /// Mount with FUSE here.
    pub mountpoint: Option<PathBuf>,
    /// Let other users use the FUSE mount.
    pub allow_other: bool,
    /// Serve 9P on these addresses.
    pub listen: Vec<Listen>,
    /// TCP clients the 9P server admits (empty: loopback only).
    pub allow: Vec<Cidr>,
    /// 9P connections served at once (`None`: the default).
    pub max_connections: Option<usize>,
    /// Also serve the store over HTTP.
    pub gateway: Option<GatewayFront>,
}

/// An HTTP gateway served by a mount daemon, its address already bound.
pub struct GatewayFront {
    /// The gateway (holding the store).
    pub gateway: crate::gateway::Gateway,
    /// Where it listens.
    pub listener: std::net::TcpListener,
}

impl std::fmt::Debug for GatewayFront {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GatewayFront({:?})", self.listener.local_addr().ok())
    }
}

/// Serves `fs` through `fronts` until SIGINT/SIGTERM (or an unmount of
/// the FUSE mount), then commits. Records itself in the store's registry
/// once every front end is live.
pub fn serve(fs: Fs, store: &Path, name: &str, fronts: Fronts) -> Result<()> {
    let read_only = fs.is_read_only();
    let notifier = Arc::new(OnceLock::new());
    let fuse_ops = Arc::new(OpCounts::new(crate::ops::FUSE_OPS));
    let ninep_ops = Arc::new(OpCounts::new(&ninep::wire::TMSG_NAMES));
    let ninep = if fronts.listen.is_empty() {
        None
    } else {
        let export = Export {
            fs: fs.clone(),
            name: name.to_string(),
            snapshots: Some(crate::snapdir::Snapshots::new(fs.bucket().clone(), name)?),
            invalidate: fronts
                .mountpoint
                .as_ref()
                .map(|_| Arc::new(FuseInvalidate(notifier.clone())) as Arc<dyn Invalidate>),
            ops: ninep_ops.clone(),
        };
        let mut config = ninep::Config {
            allow: fronts.allow.clone(),
            ..ninep::Config::default()
        };
        if let Some(n) = fronts.max_connections {
            config.max_connections = n;
        }
        let names: Vec<String> = fronts.listen.iter().map(ToString::to_string).collect();
        Some(
            ninep::server::start(export, config, &fronts.listen)
                .with_context(|| format!("cannot listen on {}", names.join(", ")))?,
        )
    };
    let fuse = match &fronts.mountpoint {
        Some(mountpoint) => Some(mount_fuse(
            &fs,
            name,
            mountpoint,
            fronts.allow_other,
            &notifier,
            fuse_ops.clone(),
        )?),
        None => None,
    };
    if fuse.is_some() {
        follow_in_kernel(&fs, FuseInvalidate(notifier.clone()));
    }
    let gateway_addr = fronts
        .gateway
        .as_ref()
        .and_then(|g| g.listener.local_addr().ok())
        .map(|a| a.to_string());
    if let Some(front) = fronts.gateway {
        let gateway = front.gateway.beside_mount(
            fs.clone(),
            fuse.as_ref().map(|_| fuse_ops.clone()),
            ninep.as_ref().map(|_| ninep_ops.clone()),
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("cannot start the gateway's runtime")?;
        let listener = front.listener;
        std::thread::spawn(move || {
            if let Err(e) = runtime.block_on(crate::gateway::serve_on(gateway, listener)) {
                eprintln!("hydra: error: gateway stopped: {e:#}");
            }
        });
    }

    let mut record = MountRecord {
        pid: std::process::id(),
        mountpoint: fronts.mountpoint.clone().unwrap_or_default(),
        listen: fronts.listen.iter().map(ToString::to_string).collect(),
        fs: name.to_string(),
        read_only,
        root: fs.base().map(|c| c.to_string()),
        dirty: false,
        dirty_bytes: 0,
        inodes: 0,
        unloaded: 0,
        unloads: 0,
        ninep: ninep.as_ref().map(|n| n.server.stats()),
        gateway: gateway_addr,
        stops: 0,
        stop_refused: None,
        started: Started::of(std::process::id()),
    };
    write_record(store, &record)?;

    // A signal unmounts (the FUSE session then ends) or, with no mount,
    // ends the wait below.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    let handle = signals.handle();
    let target = fronts.mountpoint.clone();
    let (signalled, wait_signal) = std::sync::mpsc::channel::<()>();
    let stopping = Arc::new(Mutex::new((0u64, None::<String>)));
    let (commit_fs, stop_state) = (fs.clone(), stopping.clone());
    let signal_thread = std::thread::spawn(move || {
        for signal in signals.forever() {
            eprintln!("hydra: signal {signal}: committing and stopping");
            // Commit while still mounted: when that fails (a full disk), the
            // changes live only in memory, so stay mounted until it works.
            let committed = commit_fs.fsync(None);
            let mut state = stop_state.lock().unwrap_or_else(PoisonError::into_inner);
            state.0 += 1;
            if let Err(e) = committed {
                let why = format!("cannot commit: {e}; still mounted with the changes in memory");
                eprintln!("hydra: error: {why}");
                state.1 = Some(why);
                continue;
            }
            state.1 = None;
            drop(state);
            if let Some(target) = &target
                && let Err(e) = unmount(target)
            {
                // A busy mount (a process working in it) stays, committed,
                // and the next signal tries again.
                let users = crate::busy::users(target, 5);
                let why = if users.is_empty() {
                    format!("{e:#}; still mounted (is a process using it?)")
                } else {
                    format!("{e:#}; still mounted, in use by {}", users.join(", "))
                };
                eprintln!(
                    "hydra: error: unmount of {} failed: {why}",
                    target.display()
                );
                stop_state.lock().unwrap_or_else(PoisonError::into_inner).1 = Some(why);
                continue;
            }
            let _ = signalled.send(());
            break;
        }
    });
    // Refresh the record while serving (for `hydra status`).
    let refresh_fs = fs.clone();
    let refresh_store = store.to_path_buf();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let refresh_stop = stop.clone();
    let final_record = record.clone();
    let server = ninep.as_ref().map(|n| n.server.clone());
    let refresher = std::thread::spawn(move || {
        while !refresh_stop.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(500));
            record.root = refresh_fs.base().map(|c| c.to_string());
            record.dirty = refresh_fs.is_dirty();
            record.dirty_bytes = refresh_fs.pending_bytes();
            (record.inodes, record.unloaded) = refresh_fs.inode_counts();
            record.unloads = refresh_fs.unloads();
            record.ninep = server.as_ref().map(|s| s.stats());
            (record.stops, record.stop_refused) = stopping
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let _ = write_record(&refresh_store, &record);
        }
    });
    let joined = match fuse {
        Some(background) => background.join().context("FUSE session failed"),
        None => {
            let _ = wait_signal.recv();
            Ok(())
        }
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    handle.close();
    let _ = signal_thread.join();
    let _ = refresher.join();
    if let Some(server) = ninep {
        server.stop();
    }
    let closed = fs.close();
    remove_record(store, &final_record);
    joined?;
    closed.context("final commit failed")?;
    Ok(())
}

/// Has the kernel drop what it caches of names and inodes another writer's
/// commit changed, from a thread of its own (a notification sent while the
/// kernel waits on a request of ours would wait for itself).
fn follow_in_kernel(fs: &Fs, invalidate: FuseInvalidate) {
    let (tx, rx) = std::sync::mpsc::channel::<Vec<Changed>>();
    fs.set_watcher(Arc::new(move |changes| {
        let _ = tx.send(changes);
    }));
    std::thread::spawn(move || {
        for changes in rx {
            for change in changes {
                match change {
                    Changed::Inode(ino) => invalidate.inode(ino),
                    Changed::Entry(parent, name) => invalidate.entry(parent, &name),
                }
            }
        }
    });
}

/// Mounts `fs` at `mountpoint` and starts the FUSE session threads.
fn mount_fuse(
    fs: &Fs,
    name: &str,
    mountpoint: &Path,
    allow_other: bool,
    notifier: &Arc<OnceLock<fuser::Notifier>>,
    ops: Arc<OpCounts>,
) -> Result<fuser::BackgroundSession> {
    use fuser::{Config, MountOption, SessionACL};
    let read_only = fs.is_read_only();
    let mut options = vec![
        MountOption::FSName(format!("hydra:{name}")),
        MountOption::Subtype("hydra".into()),
        MountOption::Dev,
        MountOption::Suid,
        // The kernel checks every access against the attributes `Fs`
        // gives, as `Fs` does: without it, a path walk through dentries the
        // kernel keeps (an hour) never asks, so a user could reach a file
        // under a directory it may not search once anyone had looked it up.
        MountOption::DefaultPermissions,
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
    let snapshots = if read_only {
        None
    } else {
        Some(crate::snapdir::Snapshots::new(fs.bucket().clone(), name)?)
    };
    let session = fuser::Session::new(
        crate::fuse::HydraFuse::new(
            fs.clone(),
            snapshots,
            Some(crate::gitviews::GitViews::new(fs.bucket().clone())?),
            ops,
        ),
        mountpoint,
        &config,
    )
    .with_context(|| format!("cannot mount on {}", mountpoint.display()))?;
    let _ = notifier.set(session.notifier());
    let session = session.spawn().context("cannot start the FUSE session")?;
    raise_read_ahead(mountpoint);
    Ok(session)
}

/// The kernel's read-ahead for the mount's files, in KiB: one full-size
/// request. Its default (128 KiB, 256 for `cat`) cuts sequential reads into
/// four to eight times as many requests, each a round trip to the daemon.
const READ_AHEAD_KB: u32 = crate::fuse::MAX_WRITE / 1024;

/// Raises the kernel's read-ahead for the mount (only root may; others
/// keep the default, which is slower but correct).
fn raise_read_ahead(mountpoint: &Path) {
    let Ok(stat) = rustix::fs::stat(mountpoint) else {
        return;
    };
    let (major, minor) = (
        rustix::fs::major(stat.st_dev),
        rustix::fs::minor(stat.st_dev),
    );
    let knob = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
    if let Err(e) = std::fs::write(&knob, format!("{READ_AHEAD_KB}\n")) {
        eprintln!("hydra: note: kernel read-ahead left at its default ({knob}: {e})");
    }
}

/// Drops the FUSE kernel's caches of what 9P clients change.
#[derive(Debug)]
struct FuseInvalidate(Arc<OnceLock<fuser::Notifier>>);

impl Invalidate for FuseInvalidate {
    fn inode(&self, ino: Ino) {
        if let Some(n) = self.0.get() {
            let _ = n.inval_inode(fuser::INodeNo(ino.0), 0, 0);
        }
    }

    fn entry(&self, parent: Ino, name: &[u8]) {
        if let Some(n) = self.0.get() {
            let _ = n.inval_entry(fuser::INodeNo(parent.0), std::ffi::OsStr::from_bytes(name));
        }
    }
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

/// Waits until the daemon `child` is live (`ready` says so) or exits.
pub fn wait_until_ready(
    child: &mut std::process::Child,
    what: &str,
    log: &Path,
    ready: impl Fn() -> bool,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if ready() {
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
            bail!("the daemon exited ({status}): {last}");
        }
        if Instant::now() > deadline {
            bail!("{what} was not live within 60 s (see {})", log.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the daemon `pid` has recorded itself as live.
pub fn is_registered(store: &Path, pid: u32) -> bool {
    live_mounts(store).iter().any(|r| r.pid == pid)
}

/// Asks the daemon mounted at `target` (or serving 9P at address
/// `target`) to commit and stop; waits.
pub fn stop(store: &Path, target: &Path) -> Result<bool> {
    let text = target.to_string_lossy();
    let Some(record) = live_mounts(store).into_iter().find(|r| {
        r.mountpoint == target
            || r.listen.iter().any(|l| *l == text)
            || text
                .parse::<Listen>()
                .is_ok_and(|t| r.listen.contains(&t.to_string()))
    }) else {
        return Ok(false);
    };
    let pid = rustix::process::Pid::from_raw(record.pid as i32)
        .context("bad pid in the mount registry")?;
    rustix::process::kill_process(pid, rustix::process::Signal::TERM)
        .with_context(|| format!("cannot signal the daemon (pid {})", record.pid))?;
    let deadline = Instant::now() + Duration::from_secs(300);
    while record_alive(&record) {
        if Instant::now() > deadline {
            bail!("the daemon (pid {}) did not stop within 300 s", record.pid);
        }
        // A daemon that cannot commit stays up and says why.
        let refused = live_mounts(store)
            .into_iter()
            .find(|r| r.pid == record.pid && r.stops > record.stops)
            .and_then(|r| r.stop_refused);
        if let Some(why) = refused {
            bail!("cannot unmount {}: {why}", target.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(true)
}
