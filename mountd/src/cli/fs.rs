//! `hydra fs …`: work with a filesystem without mounting it.

use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use hydra_dag::{Cid, RefName, RefNote, Store};
use hydra_fs::{Caller, Fs, FsOptions, Ino, Kind, OpenFlags, RenameMode, diff_roots, split_last};

use super::{Context, output};

/// Subcommands of `hydra fs`.
#[derive(Debug, Subcommand)]
pub enum FsCommand {
    /// List a directory.
    Ls {
        /// The filesystem.
        name: String,
        /// The directory (default: the root).
        #[arg(default_value = "/")]
        path: String,
        /// Show mode, links, owner, size and time.
        #[arg(short, long)]
        long: bool,
    },
    /// Write a file's bytes to stdout.
    Cat {
        /// The filesystem.
        name: String,
        /// The file.
        path: String,
    },
    /// Show an entry's attributes.
    Stat {
        /// The filesystem.
        name: String,
        /// The entry.
        path: String,
    },
    /// Create a directory.
    Mkdir {
        /// The filesystem.
        name: String,
        /// The directory.
        path: String,
        /// Create missing parents; no error if it exists.
        #[arg(short, long)]
        parents: bool,
    },
    /// Remove a file, or a directory with -r.
    Rm {
        /// The filesystem.
        name: String,
        /// The entry.
        path: String,
        /// Remove directories and their contents.
        #[arg(short, long)]
        recursive: bool,
    },
    /// Rename or move an entry.
    Mv {
        /// The filesystem.
        name: String,
        /// The entry.
        from: String,
        /// Its new path.
        to: String,
    },
    /// Copy a local file (or stdin, `-`) into the filesystem.
    Put {
        /// The filesystem.
        name: String,
        /// The local file, or `-`.
        local: PathBuf,
        /// The path inside the filesystem.
        path: String,
    },
    /// Mark the current root as a snapshot with a message.
    Snapshot {
        /// The filesystem.
        name: String,
        /// Why.
        #[arg(short, long, default_value = "snapshot")]
        message: String,
    },
    /// List the filesystem's commits and snapshots, newest first.
    Log {
        /// The filesystem.
        name: String,
        /// At most this many.
        #[arg(short = 'n', long, default_value_t = 50)]
        limit: usize,
    },
    /// Paths added (A), removed (D) or modified (M) between two snapshots.
    Diff {
        /// The filesystem.
        name: String,
        /// A changelog id or root CID.
        a: String,
        /// A changelog id or root CID.
        b: String,
    },
    /// Make a snapshot the current state again (a new commit).
    Restore {
        /// The filesystem.
        name: String,
        /// A changelog id or root CID.
        snapshot: String,
    },
}

/// The ref that names filesystem `name`'s root.
pub(super) fn fs_ref(name: &str) -> Result<RefName> {
    Ok(RefName::new(format!("fs/{name}"))?)
}

/// Opens filesystem `name` for one command (no background commits).
pub fn open_fs(store: &Store, name: &str, read_only: bool) -> Result<Fs> {
    let options = FsOptions {
        read_only,
        commit_interval: None,
        statfs_path: Some(store.path().to_path_buf()),
        commit_on_pressure: false,
        // Small files are stored every 64 MiB, so an import's memory stays
        // bounded by that, not by the archive.
        dirty_limit: 64 << 20,
        refresh_interval: None,
        ..FsOptions::default()
    };
    if read_only && store.bucket().get_ref(&fs_ref(name)?)?.is_none() {
        bail!("filesystem {name} does not exist");
    }
    Ok(Fs::open(
        store.bucket().clone(),
        name,
        &Caller::root(),
        options,
    )?)
}

/// The root CID a snapshot spec (changelog id or CID) names.
pub fn snapshot_root(store: &Store, name: &str, spec: &str) -> Result<Cid> {
    snapshot_of(store.bucket(), &fs_ref(name)?, spec)
}

/// The root a snapshot of ref `name` names: one of its changelog entries
/// by id, or a CID.
pub fn snapshot_of(bucket: &hydra_dag::Bucket, name: &RefName, spec: &str) -> Result<Cid> {
    if let Ok(id) = spec.parse::<u64>() {
        let entry = bucket
            .log(Some(name), usize::MAX)?
            .into_iter()
            .find(|e| e.id == id)
            .with_context(|| format!("{name} has no changelog entry {id}"))?;
        return entry
            .new
            .with_context(|| format!("changelog entry {id} deleted {name}"));
    }
    spec.parse::<Cid>()
        .with_context(|| format!("{spec:?} is neither a changelog id nor a CID"))
}

fn mode_string(kind: Kind, perm: u32) -> String {
    let t = match kind {
        Kind::File => '-',
        Kind::Dir => 'd',
        Kind::Symlink => 'l',
        Kind::Fifo => 'p',
        Kind::CharDev => 'c',
        Kind::BlockDev => 'b',
        Kind::Socket => 's',
    };
    let mut s = String::from(t);
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        s.push(if perm & (0o400 >> i) != 0 { c } else { '-' });
    }
    s
}

/// Runs a `hydra fs` subcommand.
pub fn run(cx: &Context, cmd: FsCommand) -> Result<()> {
    let root = Caller::root();
    match cmd {
        FsCommand::Ls { name, path, long } => {
            let store = cx.open_read()?;
            let fs = open_fs(&store, &name, true)?;
            let dir = fs.resolve(path.as_bytes(), &root)?;
            let mut entries = fs.readdir_plus(dir, 2, &root)?;
            entries.sort_by(|a, b| a.0.name.cmp(&b.0.name));
            if cx.json {
                let list: Vec<_> = entries
                    .iter()
                    .map(|(e, a)| {
                        serde_json::json!({
                            "name": String::from_utf8_lossy(&e.name),
                            "kind": format!("{:?}", a.kind).to_lowercase(),
                            "mode": a.perm, "uid": a.uid, "gid": a.gid,
                            "size": a.size, "nlink": a.nlink, "mtime_ns": a.mtime,
                        })
                    })
                    .collect();
                return output::json(&list);
            }
            let mut out = std::io::stdout().lock();
            for (e, a) in entries {
                let name = String::from_utf8_lossy(&e.name);
                if long {
                    let target = if a.kind == Kind::Symlink {
                        format!(" -> {}", String::from_utf8_lossy(&fs.readlink(a.ino)?))
                    } else {
                        String::new()
                    };
                    writeln!(
                        out,
                        "{} {:>3} {:>5} {:>5} {:>12} {} {name}{target}",
                        mode_string(a.kind, a.perm),
                        a.nlink,
                        a.uid,
                        a.gid,
                        a.size,
                        output::time(a.mtime)
                    )?;
                } else if a.kind == Kind::Dir {
                    writeln!(out, "{name}/")?;
                } else {
                    writeln!(out, "{name}")?;
                }
            }
            Ok(())
        }
        FsCommand::Cat { name, path } => {
            let store = cx.open_read()?;
            let fs = open_fs(&store, &name, true)?;
            let ino = fs.resolve(path.as_bytes(), &root)?;
            let fh = fs.open_file(ino, OpenFlags::READ, &root)?;
            let mut out = std::io::stdout().lock();
            let mut offset = 0;
            loop {
                let data = fs.read(fh, offset, 1 << 20)?;
                if data.is_empty() {
                    break;
                }
                out.write_all(&data)?;
                offset += data.len() as u64;
            }
            fs.release(fh)?;
            Ok(())
        }
        FsCommand::Stat { name, path } => {
            let store = cx.open_read()?;
            let fs = open_fs(&store, &name, true)?;
            let a = fs.getattr(fs.resolve(path.as_bytes(), &root)?)?;
            let value = serde_json::json!({
                "path": path, "ino": a.ino.0, "kind": format!("{:?}", a.kind).to_lowercase(),
                "mode": format!("{:o}", a.perm), "nlink": a.nlink, "uid": a.uid, "gid": a.gid,
                "size": a.size, "atime_ns": a.atime, "mtime_ns": a.mtime, "ctime_ns": a.ctime, "rdev": a.rdev,
            });
            if cx.json {
                return output::json(&value);
            }
            println!(
                "{}  {}  size {}  links {}  owner {}:{}",
                path,
                mode_string(a.kind, a.perm),
                a.size,
                a.nlink,
                a.uid,
                a.gid
            );
            println!(
                "modified {}  changed {}",
                output::time(a.mtime),
                output::time(a.ctime)
            );
            Ok(())
        }
        FsCommand::Mkdir {
            name,
            path,
            parents,
        } => change(cx, &name, &format!("mkdir {path}"), |fs| {
            if parents {
                fs.mkdir_p(Ino::ROOT, path.as_bytes(), &root)?;
            } else {
                let (parent, leaf) = split_last(path.as_bytes())?;
                let dir = fs.resolve(&parent, &root)?;
                fs.mkdir(dir, &leaf, 0o755, &root)?;
            }
            Ok(())
        }),
        FsCommand::Rm {
            name,
            path,
            recursive,
        } => change(cx, &name, &format!("rm {path}"), |fs| {
            let (parent, leaf) = split_last(path.as_bytes())?;
            let dir = fs.resolve(&parent, &root)?;
            let attr = fs.lookup(dir, &leaf, &root)?;
            if attr.kind == Kind::Dir {
                if !recursive {
                    bail!("{path} is a directory (use -r)");
                }
                remove_tree(fs, dir, &leaf)?;
            } else {
                fs.unlink(dir, &leaf, &root)?;
            }
            Ok(())
        }),
        FsCommand::Mv { name, from, to } => change(cx, &name, &format!("mv {from} {to}"), |fs| {
            let (fp, fl) = split_last(from.as_bytes())?;
            let (tp, tl) = split_last(to.as_bytes())?;
            let (fdir, tdir) = (fs.resolve(&fp, &root)?, fs.resolve(&tp, &root)?);
            // Moving onto a directory moves into it, as mv does.
            let (tdir, tl) = match fs.lookup(tdir, &tl, &root) {
                Ok(a) if a.kind == Kind::Dir => (a.ino, fl.clone()),
                _ => (tdir, tl),
            };
            fs.rename(fdir, &fl, tdir, &tl, RenameMode::Replace, &root)?;
            Ok(())
        }),
        FsCommand::Put { name, local, path } => change(cx, &name, &format!("put {path}"), |fs| {
            let mut input: Box<dyn Read> = if local.as_os_str().as_bytes() == b"-" {
                Box::new(std::io::stdin().lock())
            } else {
                Box::new(
                    std::fs::File::open(&local)
                        .with_context(|| format!("cannot open {}", local.display()))?,
                )
            };
            let (parent, leaf) = split_last(path.as_bytes())?;
            let dir = fs.resolve(&parent, &root)?;
            let fh = match fs.lookup(dir, &leaf, &root) {
                Ok(a) => fs.open_file(
                    a.ino,
                    OpenFlags {
                        write: true,
                        truncate: true,
                        ..OpenFlags::default()
                    },
                    &root,
                )?,
                Err(hydra_fs::FsError::NotFound) => {
                    fs.create(dir, &leaf, 0o644, OpenFlags::default(), &root)?.1
                }
                Err(e) => return Err(e.into()),
            };
            let mut buf = vec![0u8; 1 << 20];
            let mut offset = 0;
            loop {
                let n = input.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                fs.write(fh, offset, &buf[..n], &root)?;
                offset += n as u64;
            }
            fs.release(fh)?;
            Ok(())
        }),
        FsCommand::Snapshot { name, message } => {
            let store = cx.open_write()?;
            let r = fs_ref(&name)?;
            let bucket = store.bucket();
            let current = bucket
                .get_ref(&r)?
                .with_context(|| format!("filesystem {name} does not exist"))?;
            let entry = bucket.cas_ref(
                &r,
                Some(&current),
                Some(&current),
                &RefNote::by_current_user(message),
            )?;
            if cx.json {
                return output::json(&entry);
            }
            println!("snapshot {} of {name}: {current}", entry.id);
            Ok(())
        }
        FsCommand::Log { name, limit } => {
            let store = cx.open_read()?;
            let entries = store.bucket().log(Some(&fs_ref(&name)?), limit)?;
            output::log_entries(cx.json, &entries)
        }
        FsCommand::Diff { name, a, b } => {
            let store = cx.open_read()?;
            let (ra, rb) = (
                snapshot_root(&store, &name, &a)?,
                snapshot_root(&store, &name, &b)?,
            );
            let changes = diff_roots(store.bucket(), &ra, &rb)?;
            if cx.json {
                return output::json(&changes);
            }
            for c in changes {
                println!("{}\t{}", c.kind.letter(), c.path);
            }
            Ok(())
        }
        FsCommand::Restore { name, snapshot } => {
            let store = cx.open_write()?;
            let root_cid = snapshot_root(&store, &name, &snapshot)?;
            // Check it is a filesystem root before pointing the ref at it.
            hydra_fs::node::FsRoot::read(store.bucket(), &root_cid)?;
            let r = fs_ref(&name)?;
            let entry = store.bucket().set_ref(
                &r,
                Some(&root_cid),
                &RefNote::by_current_user(format!("restore {snapshot}")),
            )?;
            if cx.json {
                return output::json(&entry);
            }
            println!(
                "restored {name} to {root_cid} (changelog entry {})",
                entry.id
            );
            Ok(())
        }
    }
}

/// Opens `name` for writing, runs `f`, commits with `message`.
fn change(
    cx: &Context,
    name: &str,
    message: &str,
    f: impl FnOnce(&Fs) -> Result<()>,
) -> Result<()> {
    let store = cx.open_write()?;
    let fs = open_fs(&store, name, false)?;
    f(&fs)?;
    let entry = fs.commit(message)?;
    if cx.json {
        return output::json(
            &serde_json::json!({ "root": fs.base(), "changelog": entry.map(|e| e.id) }),
        );
    }
    Ok(())
}

fn remove_tree(fs: &Fs, parent: Ino, name: &[u8]) -> Result<()> {
    let root = Caller::root();
    let dir = fs.lookup(parent, name, &root)?.ino;
    for (entry, attr) in fs.readdir_plus(dir, 2, &root)? {
        if attr.kind == Kind::Dir {
            remove_tree(fs, dir, &entry.name)?;
        } else {
            fs.unlink(dir, &entry.name, &root)?;
        }
    }
    fs.rmdir(parent, name, &root)?;
    Ok(())
}
