//! Model-based tests of the filesystem core against the kernel's own
//! filesystem, plus focused POSIX-semantics tests.
//!
//! The model runs random operation sequences against a hydra [`Fs`] and a
//! real directory in a temporary directory (via std and rustix), and after
//! every operation compares the errno of both sides and then the whole
//! tree: names, kinds, sizes, bytes, symlink targets, link counts, which
//! names share an inode, permission bits and `user.*` xattrs. Handles kept
//! open across operations are compared read for read. It runs as root, on
//! a temporary directory whose filesystem has `user.*` xattrs and
//! `renameat2` flags (ext4, xfs, btrfs, tmpfs >= 6.6).
//!
//! The bugs this model found are fixed and pinned by the regression tests
//! at the end; `HYDRA_MODEL_STEER=1` steers around them (see `steer`) when
//! a new one is being chased. `PROPTEST_CASES` sets the number of
//! sequences (default 256).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{
    DirBuilderExt, FileExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt,
};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hydra_dag::Bucket;
use hydra_fs::{
    Caller, Fh, Fs, FsError, FsOptions, Ino, Kind, OpenFlags, RenameMode, SetAttr, TimeSet,
    XATTR_CREATE, XATTR_REPLACE,
};
use proptest::prelude::*;
use rustix::fs::{RenameFlags, XattrFlags};

mod support;
use support::*;

/// Options for a model run: with a small `dirty_limit`, writes commit (or
/// only store file content) under memory pressure.
fn model_opts(pressure: Option<bool>) -> FsOptions {
    match pressure {
        None => opts(),
        Some(commit_on_pressure) => FsOptions {
            dirty_limit: 512 << 10,
            commit_on_pressure,
            ..opts()
        },
    }
}

fn hy<T>(r: Result<T, FsError>) -> Result<T, i32> {
    r.map_err(errno)
}

fn os(e: std::io::Error) -> i32 {
    e.raw_os_error()
        .unwrap_or_else(|| panic!("not an OS error: {e}"))
}

fn rx(e: rustix::io::Errno) -> i32 {
    e.raw_os_error()
}

// ---------------------------------------------------------------------------
// The reference side: a real directory (on whatever filesystem holds the
// temporary directory; it needs `user.*` xattrs and renameat2 flags).

/// The permission bits the process umask takes from new files (found by
/// probing once: the workspace forbids the `unsafe` a `umask` call needs).
fn umask() -> u32 {
    static UMASK: OnceLock<u32> = OnceLock::new();
    *UMASK.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let probe = dir.path().join("probe");
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o777)
            .open(&probe)
            .expect("probe");
        let mode = std::fs::metadata(&probe).expect("stat").mode();
        0o777 & !mode
    })
}

/// Gives back the bits the umask took from a node just created with `mode`
/// (keeping whatever else the kernel decided, such as inherited setgid).
fn undo_umask(path: &Path, mode: u32) -> std::io::Result<()> {
    let taken = mode & umask();
    if taken != 0 {
        let now = std::fs::symlink_metadata(path)?.mode() & 0o7777;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(now | taken))?;
    }
    Ok(())
}

fn xattr_flags(flags: i32) -> XattrFlags {
    let mut out = XattrFlags::empty();
    if flags & XATTR_CREATE != 0 {
        out |= XattrFlags::CREATE;
    }
    if flags & XATTR_REPLACE != 0 {
        out |= XattrFlags::REPLACE;
    }
    out
}

fn real_setxattr(p: &Path, name: &[u8], value: &[u8], flags: i32) -> Result<(), i32> {
    rustix::fs::lsetxattr(p, name, value, xattr_flags(flags)).map_err(rx)
}

fn real_removexattr(p: &Path, name: &[u8]) -> Result<(), i32> {
    rustix::fs::lremovexattr(p, name).map_err(rx)
}

/// The `user.*` attributes of `p` (not following a symlink).
fn real_xattrs(p: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut list = vec![0u8; 65536];
    let n = rustix::fs::llistxattr(p, &mut list[..]).expect("llistxattr");
    list.truncate(n);
    let mut out = BTreeMap::new();
    for name in list.split(|b| *b == 0).filter(|n| n.starts_with(b"user.")) {
        let mut value = vec![0u8; 65536];
        let len = rustix::fs::lgetxattr(p, name, &mut value[..]).expect("lgetxattr");
        value.truncate(len);
        out.insert(name.to_vec(), value);
    }
    out
}

fn real_rename(from: &Path, to: &Path, mode: RenameMode) -> Result<(), i32> {
    let flags = match mode {
        RenameMode::Replace => RenameFlags::empty(),
        RenameMode::NoReplace => RenameFlags::NOREPLACE,
        RenameMode::Exchange => RenameFlags::EXCHANGE,
        RenameMode::Whiteout => RenameFlags::WHITEOUT,
        RenameMode::WhiteoutNoReplace => RenameFlags::WHITEOUT | RenameFlags::NOREPLACE,
    };
    rustix::fs::renameat_with(rustix::fs::CWD, from, rustix::fs::CWD, to, flags).map_err(rx)
}

// ---------------------------------------------------------------------------
// A tree snapshot both sides are reduced to.

#[derive(Clone, Debug, PartialEq, Eq)]
struct Node {
    kind: Kind,
    perm: u32,
    nlink: u32,
    /// Files and symlinks only (directory sizes differ between filesystems).
    size: u64,
    /// File bytes or symlink target.
    content: Vec<u8>,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Device number (devices only).
    rdev: u64,
    /// The first path (in walk order) naming the same inode, if not this one.
    same_as: Option<String>,
}

type Tree = BTreeMap<String, Node>;

fn describe_diff(real: &Tree, hydra: &Tree) -> String {
    let mut out = String::new();
    for path in real.keys().chain(hydra.keys()) {
        let (r, h) = (real.get(path), hydra.get(path));
        if r == h || out.contains(&format!("'{path}'")) {
            continue;
        }
        match (r, h) {
            (Some(_), None) => out.push_str(&format!("  '{path}' only in the real tree\n")),
            (None, Some(_)) => out.push_str(&format!("  '{path}' only in hydra\n")),
            (Some(r), Some(h)) => {
                out.push_str(&format!("  '{path}':"));
                if r.kind != h.kind {
                    out.push_str(&format!(" kind {:?} vs {:?}", r.kind, h.kind));
                }
                if r.perm != h.perm {
                    out.push_str(&format!(" perm {:o} vs {:o}", r.perm, h.perm));
                }
                if r.nlink != h.nlink {
                    out.push_str(&format!(" nlink {} vs {}", r.nlink, h.nlink));
                }
                if r.size != h.size {
                    out.push_str(&format!(" size {} vs {}", r.size, h.size));
                }
                if r.content != h.content {
                    let first = r
                        .content
                        .iter()
                        .zip(&h.content)
                        .position(|(a, b)| a != b)
                        .unwrap_or(r.content.len().min(h.content.len()));
                    out.push_str(&format!(
                        " content differs from byte {first} (lengths {} vs {})",
                        r.content.len(),
                        h.content.len()
                    ));
                }
                if r.rdev != h.rdev {
                    out.push_str(&format!(" rdev {:#x} vs {:#x}", r.rdev, h.rdev));
                }
                if r.xattrs != h.xattrs {
                    out.push_str(&format!(" xattrs {:?} vs {:?}", r.xattrs, h.xattrs));
                }
                if r.same_as != h.same_as {
                    out.push_str(&format!(
                        " same inode as {:?} vs {:?}",
                        r.same_as, h.same_as
                    ));
                }
                out.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

fn kind_of(ft: std::fs::FileType) -> Kind {
    if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_file() {
        Kind::File
    } else if ft.is_fifo() {
        Kind::Fifo
    } else if ft.is_socket() {
        Kind::Socket
    } else if ft.is_char_device() {
        Kind::CharDev
    } else {
        Kind::BlockDev
    }
}

fn real_tree(base: &Path) -> Tree {
    fn walk(base: &Path, rel: &str, tree: &mut Tree, seen: &mut HashMap<(u64, u64), String>) {
        let dir = base.join(rel);
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let name = name.to_str().expect("test names are UTF-8").to_string();
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let full = base.join(&path);
            let md = std::fs::symlink_metadata(&full).expect("lstat");
            let ft = md.file_type();
            let kind = kind_of(ft);
            let (size, content) = match kind {
                Kind::Dir => (0, Vec::new()),
                Kind::Symlink => {
                    let t = std::fs::read_link(&full).expect("readlink");
                    (md.len(), t.as_os_str().as_bytes().to_vec())
                }
                Kind::File => (md.len(), std::fs::read(&full).expect("read")),
                _ => (0, Vec::new()),
            };
            let key = (md.dev(), md.ino());
            let same_as = if kind == Kind::Dir {
                None
            } else {
                match seen.get(&key) {
                    Some(first) => Some(first.clone()),
                    None => {
                        seen.insert(key, path.clone());
                        None
                    }
                }
            };
            let xattrs = if kind == Kind::Symlink {
                BTreeMap::new()
            } else {
                real_xattrs(&full)
            };
            tree.insert(
                path.clone(),
                Node {
                    kind,
                    perm: md.mode() & 0o7777,
                    nlink: md.nlink() as u32,
                    size,
                    content,
                    xattrs,
                    rdev: if kind == Kind::CharDev { md.rdev() } else { 0 },
                    same_as,
                },
            );
            if kind == Kind::Dir {
                walk(base, &path, tree, seen);
            }
        }
    }
    let mut tree = Tree::new();
    walk(base, "", &mut tree, &mut HashMap::new());
    tree
}

fn read_all(fs: &Fs, ino: Ino) -> Vec<u8> {
    let fh = fs.open_file(ino, ro(), &root()).expect("open for read");
    let mut out = Vec::new();
    loop {
        let piece = fs.read(fh, out.len() as u64, 1 << 20).expect("read");
        if piece.is_empty() {
            break;
        }
        out.extend_from_slice(&piece);
    }
    fs.release(fh).expect("release");
    out
}

fn hydra_tree(fs: &Fs) -> Tree {
    fn walk(fs: &Fs, dir: Ino, rel: &str, tree: &mut Tree, seen: &mut HashMap<Ino, String>) {
        let mut entries = fs.readdir(dir, 0, &root()).expect("readdir");
        assert_eq!(entries[0].name, b".", "readdir starts with '.'");
        assert_eq!(entries[1].name, b"..", "then '..'");
        assert_eq!(entries[0].ino, dir);
        let entries = entries.split_off(2);
        let mut names: Vec<_> = entries.iter().map(|e| e.name.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), entries.len(), "readdir lists a name twice");
        let mut subdirs = 0;
        let mut sorted = entries;
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        for e in sorted {
            let name = String::from_utf8(e.name.clone()).expect("test names are UTF-8");
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let attr = fs.getattr(e.ino).expect("getattr");
            assert_eq!(attr.kind, e.kind, "{path}: readdir kind vs getattr");
            let looked = fs.lookup(dir, &e.name, &root()).expect("lookup");
            assert_eq!(looked.ino, e.ino, "{path}: readdir ino vs lookup");
            let (size, content) = match attr.kind {
                Kind::Dir => {
                    subdirs += 1;
                    let dotdot = fs.lookup(e.ino, b"..", &root()).expect("lookup ..");
                    assert_eq!(dotdot.ino, dir, "{path}/.. is its parent");
                    (0, Vec::new())
                }
                Kind::File => {
                    let data = read_all(fs, e.ino);
                    assert_eq!(data.len() as u64, attr.size, "{path}: bytes read vs size");
                    (attr.size, data)
                }
                Kind::Symlink => (attr.size, fs.readlink(e.ino).expect("readlink")),
                Kind::Fifo | Kind::Socket | Kind::CharDev => (attr.size, Vec::new()),
                other => panic!("unexpected kind {other:?} at {path}"),
            };
            let same_as = if attr.kind == Kind::Dir {
                None
            } else {
                match seen.get(&e.ino) {
                    Some(first) => Some(first.clone()),
                    None => {
                        seen.insert(e.ino, path.clone());
                        None
                    }
                }
            };
            let mut xattrs = BTreeMap::new();
            for name in fs.listxattr(e.ino, &root()).expect("listxattr") {
                let value = fs.getxattr(e.ino, &name, &root()).expect("getxattr");
                xattrs.insert(name, value);
            }
            tree.insert(
                path.clone(),
                Node {
                    kind: attr.kind,
                    perm: attr.perm,
                    nlink: attr.nlink,
                    size,
                    content,
                    xattrs,
                    rdev: attr.rdev,
                    same_as,
                },
            );
            if attr.kind == Kind::Dir {
                walk(fs, e.ino, &path, tree, seen);
            }
        }
        assert_eq!(
            fs.getattr(dir).expect("getattr").nlink,
            2 + subdirs,
            "{rel:?}: directory nlink is 2 + subdirectories"
        );
    }
    let mut tree = Tree::new();
    walk(fs, Ino::ROOT, "", &mut tree, &mut HashMap::new());
    tree
}

// ---------------------------------------------------------------------------
// Operations.

/// Whether to steer around the bugs this model once found (each has its
/// regression test below). They are fixed, so the model runs straight
/// into every case; `HYDRA_MODEL_STEER=1` turns steering back on while a
/// new bug is being worked on.
fn steer() -> bool {
    std::env::var_os("HYDRA_MODEL_STEER").is_some()
}

const NAME_255: usize = 4;
const NAME_256: usize = 5;

fn name(i: u8) -> String {
    match i as usize {
        NAME_255 => "n".repeat(255),
        NAME_256 => "m".repeat(256),
        i => ["a", "b", "c", "d"][i % 4].to_string(),
    }
}

const FILE_MODES: [u32; 6] = [0o644, 0o600, 0o755, 0o4755, 0o2755, 0o1644];
const DIR_MODES: [u32; 5] = [0o755, 0o700, 0o777, 0o1777, 0o555];
const CHMODS: [u32; 9] = [
    0o644, 0o600, 0o755, 0o4755, 0o2755, 0o1777, 0o000, 0o2644, 0o6711,
];
const TARGETS: [&str; 5] = ["a", "../b", "/nonexistent/x", "c/d/e", "."];
const XATTR_NAMES: [&[u8]; 3] = [b"user.a", b"user.b", b"user.c"];

#[derive(Clone, Debug)]
enum Op {
    Create {
        parent: u16,
        name: u8,
        mode: u8,
        size: u32,
        seed: u64,
    },
    /// Overwrite (`how` 0), append (1), or open with O_TRUNC and write (2).
    Write {
        target: u16,
        offset: u32,
        len: u32,
        seed: u64,
        how: u8,
    },
    Truncate {
        target: u16,
        size: u32,
    },
    Mkdir {
        parent: u16,
        name: u8,
        mode: u8,
    },
    Unlink {
        target: u16,
    },
    Rmdir {
        target: u16,
    },
    Rename {
        src: u16,
        parent: u16,
        name: u8,
        mode: u8,
    },
    Link {
        src: u16,
        parent: u16,
        name: u8,
    },
    Symlink {
        parent: u16,
        name: u8,
        target: u8,
    },
    /// A fifo (0), socket (1) or character device (2).
    Mknod {
        parent: u16,
        name: u8,
        kind: u8,
        mode: u8,
    },
    Chmod {
        target: u16,
        mode: u8,
    },
    SetXattr {
        target: u16,
        name: u8,
        value: u64,
        flags: u8,
    },
    RemoveXattr {
        target: u16,
        name: u8,
    },
    /// Open a handle (read, or read-write) and keep it.
    Open {
        target: u16,
        write: bool,
    },
    /// Read through a kept handle.
    HRead {
        h: u8,
        offset: u32,
        len: u32,
    },
    /// Write through a kept handle (`truncate`: ftruncate instead).
    HWrite {
        h: u8,
        offset: u32,
        len: u32,
        seed: u64,
        truncate: bool,
    },
    Close {
        h: u8,
    },
    Commit,
    Reopen,
}

fn name_strategy() -> impl Strategy<Value = u8> {
    prop_oneof![20 => 0u8..4, 1 => Just(NAME_255 as u8), 1 => Just(NAME_256 as u8)]
}

fn size_strategy() -> impl Strategy<Value = u32> {
    prop_oneof![
        2 => Just(0u32),
        6 => 1u32..=1024,
        3 => 60_000u32..140_000,
        1 => 3_000_000u32..6_500_000,
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let sel = any::<u16>;
    prop_oneof![
        8 => (sel(), name_strategy(), 0u8..6, size_strategy(), any::<u64>()).prop_map(
            |(parent, name, mode, size, seed)| Op::Create { parent, name, mode, size, seed }
        ),
        6 => (
            sel(),
            any::<u32>(),
            prop_oneof![3 => 1u32..=100, 3 => 1u32..=8192, 1 => 8192u32..=300_000],
            any::<u64>(),
            prop_oneof![6 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
        )
            .prop_map(|(target, offset, len, seed, how)| Op::Write { target, offset, len, seed, how }),
        4 => (sel(), any::<u32>()).prop_map(|(target, size)| Op::Truncate { target, size }),
        5 => (sel(), name_strategy(), 0u8..5).prop_map(|(parent, name, mode)| Op::Mkdir { parent, name, mode }),
        3 => sel().prop_map(|target| Op::Unlink { target }),
        2 => sel().prop_map(|target| Op::Rmdir { target }),
        6 => (sel(), sel(), name_strategy(), prop_oneof![4 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)])
            .prop_map(|(src, parent, name, mode)| Op::Rename { src, parent, name, mode }),
        3 => (sel(), sel(), name_strategy()).prop_map(|(src, parent, name)| Op::Link { src, parent, name }),
        2 => (sel(), name_strategy(), 0u8..5).prop_map(|(parent, name, target)| Op::Symlink { parent, name, target }),
        2 => (sel(), 0u8..9).prop_map(|(target, mode)| Op::Chmod { target, mode }),
        3 => (sel(), 0u8..3, any::<u64>(), 0u8..3)
            .prop_map(|(target, name, value, flags)| Op::SetXattr { target, name, value, flags }),
        1 => (sel(), 0u8..3).prop_map(|(target, name)| Op::RemoveXattr { target, name }),
        1 => (sel(), name_strategy(), 0u8..3, 0u8..6)
            .prop_map(|(parent, name, kind, mode)| Op::Mknod { parent, name, kind, mode }),
        1 => Just(Op::Commit),
        1 => Just(Op::Reopen),
        2 => (sel(), any::<bool>()).prop_map(|(target, write)| Op::Open { target, write }),
        3 => (any::<u8>(), any::<u32>(), 1u32..=200_000).prop_map(|(h, offset, len)| Op::HRead { h, offset, len }),
        3 => (any::<u8>(), any::<u32>(), 1u32..=20_000, any::<u64>(), prop::bool::weighted(0.2))
            .prop_map(|(h, offset, len, seed, truncate)| Op::HWrite { h, offset, len, seed, truncate }),
        1 => any::<u8>().prop_map(|h| Op::Close { h }),
    ]
}

/// Whether opening a path of this kind compares: not through a symlink
/// (the kernel follows it; hydra's front ends resolve it first) and not a
/// fifo or device (the kernel blocks or hands over to a driver).
fn plain(kind: Option<Kind>) -> bool {
    matches!(kind, None | Some(Kind::File | Kind::Dir))
}

/// Both sides of one model run.
struct World {
    dir: tempfile::TempDir,
    bucket: Bucket,
    fs: Fs,
    options: FsOptions,
    /// What the last operation resolved to, for messages.
    last: String,
    /// Kept handles.
    handles: Vec<Kept>,
}

/// A handle kept open across operations on both sides.
struct Kept {
    file: std::fs::File,
    fh: Fh,
    ino: Ino,
    flags: OpenFlags,
}

/// What an operation's selectors resolved to.
#[derive(Clone, Debug)]
enum Outcome {
    /// Both sides ran it; these are their results.
    Ran(Result<(), i32>, Result<(), i32>),
    /// Both failed, with errnos that differ only by a known bug (named).
    Tolerated(&'static str),
    /// Not comparable (it would follow a symlink); neither side ran it.
    Skipped,
}

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_string()
    } else {
        format!("{rel}/{name}")
    }
}

fn split(rel: &str) -> (&str, &str) {
    match rel.rfind('/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => ("", rel),
    }
}

impl World {
    fn new(options: FsOptions) -> World {
        let bucket = Bucket::in_memory();
        let fs = Fs::open(bucket.clone(), "model", &root(), options.clone()).expect("open");
        World {
            dir: tempfile::tempdir().expect("tempdir"),
            bucket,
            fs,
            options,
            last: String::new(),
            handles: Vec::new(),
        }
    }

    /// Closes a handle as the kernel does: flush, then release.
    fn close(&self, fh: Fh) {
        self.fs.flush(fh).expect("flush");
        self.fs.release(fh).expect("release");
    }

    fn reopen(&mut self) {
        self.fs =
            Fs::open(self.bucket.clone(), "model", &root(), self.options.clone()).expect("reopen");
    }

    fn real(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.dir.path().to_path_buf()
        } else {
            self.dir.path().join(rel)
        }
    }

    /// Every entry of the reference tree (not the root), with its kind.
    fn entries(&self) -> Vec<(String, Kind)> {
        real_tree(self.dir.path())
            .into_iter()
            .map(|(p, n)| (p, n.kind))
            .collect()
    }

    /// An existing entry, or (sometimes) a missing one.
    fn target(&self, sel: u16) -> (String, Option<Kind>) {
        let all = self.entries();
        let k = sel as usize % (all.len() + 1);
        match all.get(k) {
            Some((p, kind)) => (p.clone(), Some(*kind)),
            None => ("zz".to_string(), None),
        }
    }

    /// A directory (the root is ""), or sometimes a regular file.
    fn parent(&self, sel: u16) -> String {
        let all = self.entries();
        let mut dirs: Vec<String> = vec![String::new()];
        dirs.extend(
            all.iter()
                .filter(|(_, k)| *k == Kind::Dir)
                .map(|(p, _)| p.clone()),
        );
        let k = sel as usize % (dirs.len() + 1);
        match dirs.get(k) {
            Some(d) => d.clone(),
            None => all
                .iter()
                .find(|(_, k)| *k == Kind::File)
                .map(|(p, _)| p.clone())
                .unwrap_or_default(),
        }
    }

    fn lookup(&self, rel: &str) -> Result<Ino, i32> {
        let mut ino = Ino::ROOT;
        for part in rel.split('/').filter(|s| !s.is_empty()) {
            ino = hy(self.fs.lookup(ino, part.as_bytes(), &root()))?.ino;
        }
        Ok(ino)
    }

    fn real_size(&self, rel: &str) -> u64 {
        std::fs::symlink_metadata(self.real(rel))
            .map(|m| if m.is_file() { m.len() } else { 0 })
            .unwrap_or(0)
    }

    fn hydra_write(&self, ino: Ino, flags: OpenFlags, offset: u64, data: &[u8]) -> Result<(), i32> {
        let fh = hy(self.fs.open_file(ino, flags, &root()))?;
        // Sequential pieces, as the kernel sends them.
        let mut result = Ok(());
        let mut at = 0;
        loop {
            let end = (at + (128 << 10)).min(data.len());
            if let Err(e) = self
                .fs
                .write(fh, offset + at as u64, &data[at..end], &root())
            {
                result = Err(errno(e));
                break;
            }
            at = end;
            if at >= data.len() {
                break;
            }
        }
        self.close(fh);
        result
    }

    /// Known bug (`overlay_shrink_then_grow_reads_zeros`): a large file with
    /// pending random writes, cut shorter and then grown again, shows its old
    /// bytes instead of zeros. A commit after the cut settles the file.
    fn steer_after_shrink(&self, old: u64, new: u64) {
        if steer() && new < old && old > 4 << 20 {
            self.fs.commit("steer").expect("commit");
        }
    }

    fn apply(&mut self, op: &Op) -> Outcome {
        match *op {
            Op::Create {
                parent,
                name: n,
                mode,
                size,
                seed,
            } => {
                let path = join(&self.parent(parent), &name(n));
                let mode = FILE_MODES[mode as usize % FILE_MODES.len()];
                let data = bytes(seed, size as usize);
                self.last = format!("create {path:?} mode {mode:o} size {size}");
                let real = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(mode)
                    .open(self.real(&path))
                    .and_then(|mut f| f.write_all(&data))
                    .and_then(|()| undo_umask(&self.real(&path), mode))
                    .map_err(os);
                let (p, leaf) = split(&path);
                let hydra = self.lookup(p).and_then(|dir| {
                    let (_, fh) = hy(self.fs.create(dir, leaf.as_bytes(), mode, rw(), &root()))?;
                    let mut at = 0;
                    let mut result = Ok(());
                    while at < data.len() {
                        let end = (at + (128 << 10)).min(data.len());
                        if let Err(e) = self.fs.write(fh, at as u64, &data[at..end], &root()) {
                            result = Err(errno(e));
                            break;
                        }
                        at = end;
                    }
                    self.close(fh);
                    result
                });
                Outcome::Ran(real, hydra)
            }
            Op::Write {
                target,
                offset,
                len,
                seed,
                how,
            } => {
                let (path, kind) = self.target(target);
                if !plain(kind) {
                    return Outcome::Skipped;
                }
                let size = self.real_size(&path);
                let data = bytes(seed, len as usize);
                let (append, truncate) = (how == 1, how == 2);
                let offset = if truncate {
                    u64::from(offset) % 4096
                } else {
                    u64::from(offset) % (size + (128 << 10) + 1)
                };
                self.last = format!(
                    "write {len} at {offset} of {path:?} (size {size}, append {append}, \
                     O_TRUNC {truncate})"
                );
                let real = std::fs::OpenOptions::new()
                    .write(true)
                    .append(append)
                    .truncate(truncate)
                    .open(self.real(&path))
                    .and_then(|mut f| {
                        if append {
                            f.write_all(&data)
                        } else {
                            f.write_all_at(&data, offset)
                        }
                    })
                    .map_err(os);
                let flags = OpenFlags {
                    read: false,
                    write: true,
                    append,
                    truncate,
                };
                let hydra = self
                    .lookup(&path)
                    .and_then(|ino| self.hydra_write(ino, flags, offset, &data));
                Outcome::Ran(real, hydra)
            }
            Op::Truncate { target, size } => {
                let (path, kind) = self.target(target);
                if !plain(kind) {
                    return Outcome::Skipped;
                }
                let cur = self.real_size(&path);
                let new = u64::from(size) % (cur + cur / 2 + (1 << 20) + 1);
                self.last = format!("truncate {path:?} from {cur} to {new}");
                let real = std::fs::OpenOptions::new()
                    .write(true)
                    .open(self.real(&path))
                    .and_then(|f| f.set_len(new))
                    .map_err(os);
                let hydra = self.lookup(&path).and_then(|ino| {
                    let set = SetAttr {
                        size: Some(new),
                        ..SetAttr::default()
                    };
                    hy(self.fs.setattr(ino, &set, None, &root())).map(|_| ())
                });
                self.steer_after_shrink(cur, new);
                Outcome::Ran(real, hydra)
            }
            Op::Mkdir {
                parent,
                name: n,
                mode,
            } => {
                let path = join(&self.parent(parent), &name(n));
                let mode = DIR_MODES[mode as usize % DIR_MODES.len()];
                self.last = format!("mkdir {path:?} mode {mode:o}");
                let real = std::fs::DirBuilder::new()
                    .mode(mode)
                    .create(self.real(&path))
                    .and_then(|()| undo_umask(&self.real(&path), mode))
                    .map_err(os);
                let (p, leaf) = split(&path);
                let hydra = self.lookup(p).and_then(|dir| {
                    hy(self.fs.mkdir(dir, leaf.as_bytes(), mode, &root())).map(|_| ())
                });
                Outcome::Ran(real, hydra)
            }
            Op::Unlink { target } => {
                let (path, _) = self.target(target);
                self.last = format!("unlink {path:?}");
                let real = std::fs::remove_file(self.real(&path)).map_err(os);
                let (p, leaf) = split(&path);
                let hydra = self
                    .lookup(p)
                    .and_then(|dir| hy(self.fs.unlink(dir, leaf.as_bytes(), &root())));
                Outcome::Ran(real, hydra)
            }
            Op::Rmdir { target } => {
                let (path, _) = self.target(target);
                self.last = format!("rmdir {path:?}");
                let real = std::fs::remove_dir(self.real(&path)).map_err(os);
                let (p, leaf) = split(&path);
                let hydra = self
                    .lookup(p)
                    .and_then(|dir| hy(self.fs.rmdir(dir, leaf.as_bytes(), &root())));
                Outcome::Ran(real, hydra)
            }
            Op::Rename {
                src,
                parent,
                name: n,
                mode,
            } => {
                let (from, from_kind) = self.target(src);
                let to = join(&self.parent(parent), &name(n));
                let mode = [
                    RenameMode::Replace,
                    RenameMode::NoReplace,
                    RenameMode::Exchange,
                ][mode as usize % 3];
                if mode == RenameMode::Exchange && steer() {
                    // Known bug (`exchange_of_file_and_symlink_keeps_directory_nlink`):
                    // exchanging two non-directories of different kinds across
                    // directories miscounts both directories' subdirectories.
                    let to_kind = std::fs::symlink_metadata(self.real(&to))
                        .ok()
                        .map(|m| kind_of(m.file_type()));
                    if let (Some(a), Some(b)) = (from_kind, to_kind)
                        && a != b
                        && a != Kind::Dir
                        && b != Kind::Dir
                        && split(&from).0 != split(&to).0
                    {
                        return Outcome::Skipped;
                    }
                }
                self.last = format!("rename {from:?} -> {to:?} {mode:?}");
                let real = real_rename(&self.real(&from), &self.real(&to), mode);
                let ((fp, fl), (tp, tl)) = (split(&from), split(&to));
                let hydra = self.lookup(fp).and_then(|a| {
                    let b = self.lookup(tp)?;
                    hy(self
                        .fs
                        .rename(a, fl.as_bytes(), b, tl.as_bytes(), mode, &root()))
                });
                if steer() {
                    let bug = match (hydra, real) {
                        (Err(libc::ENAMETOOLONG), Err(libc::ENOENT | libc::ENOTDIR)) => {
                            Some("rename_checks_the_paths_before_the_new_name")
                        }
                        (Err(libc::EINVAL), Err(libc::EEXIST | libc::ENOENT)) => {
                            Some("rename_reports_noreplace_and_exchange_errors_before_einval")
                        }
                        (Err(libc::EISDIR), Err(libc::ENOTEMPTY))
                            if from.starts_with(&format!("{to}/")) =>
                        {
                            Some("rename_of_a_file_over_its_ancestor_is_enotempty")
                        }
                        _ => None,
                    };
                    if let Some(bug) = bug {
                        return Outcome::Tolerated(bug);
                    }
                }
                Outcome::Ran(real, hydra)
            }
            Op::Link {
                src,
                parent,
                name: n,
            } => {
                let (from, from_kind) = self.target(src);
                let to = join(&self.parent(parent), &name(n));
                self.last = format!("link {from:?} -> {to:?}");
                let real = std::fs::hard_link(self.real(&from), self.real(&to)).map_err(os);
                let (tp, tl) = split(&to);
                let hydra = self.lookup(&from).and_then(|ino| {
                    let dir = self.lookup(tp)?;
                    hy(self.fs.link(ino, dir, tl.as_bytes(), &root())).map(|_| ())
                });
                if steer()
                    && from_kind == Some(Kind::Dir)
                    && hydra == Err(libc::EPERM)
                    && matches!(real, Err(libc::EEXIST | libc::ENOTDIR | libc::ENAMETOOLONG))
                {
                    return Outcome::Tolerated(
                        "link_checks_the_destination_before_the_source_kind",
                    );
                }
                Outcome::Ran(real, hydra)
            }
            Op::Symlink {
                parent,
                name: n,
                target,
            } => {
                let path = join(&self.parent(parent), &name(n));
                let target = TARGETS[target as usize % TARGETS.len()];
                self.last = format!("symlink {path:?} -> {target:?}");
                let real = std::os::unix::fs::symlink(target, self.real(&path)).map_err(os);
                let (p, leaf) = split(&path);
                let hydra = self.lookup(p).and_then(|dir| {
                    hy(self
                        .fs
                        .symlink(dir, leaf.as_bytes(), target.as_bytes(), &root()))
                    .map(|_| ())
                });
                Outcome::Ran(real, hydra)
            }
            Op::Mknod {
                parent,
                name: n,
                kind,
                mode,
            } => {
                let path = join(&self.parent(parent), &name(n));
                let mode = FILE_MODES[mode as usize % FILE_MODES.len()];
                let (file_type, bits, rdev) = match kind % 3 {
                    0 => (rustix::fs::FileType::Fifo, libc::S_IFIFO, 0),
                    1 => (rustix::fs::FileType::Socket, libc::S_IFSOCK, 0),
                    _ => (rustix::fs::FileType::CharacterDevice, libc::S_IFCHR, 0x0103),
                };
                self.last = format!("mknod {path:?} {bits:o} mode {mode:o}");
                let real = rustix::fs::mknodat(
                    rustix::fs::CWD,
                    self.real(&path),
                    file_type,
                    rustix::fs::Mode::from_raw_mode(mode),
                    rdev,
                )
                .map_err(rx)
                .and_then(|()| undo_umask(&self.real(&path), mode).map_err(os));
                let (p, leaf) = split(&path);
                let hydra = self.lookup(p).and_then(|dir| {
                    hy(self
                        .fs
                        .mknod(dir, leaf.as_bytes(), bits | mode, rdev, &root()))
                    .map(|_| ())
                });
                Outcome::Ran(real, hydra)
            }
            Op::Chmod { target, mode } => {
                let (path, kind) = self.target(target);
                if kind == Some(Kind::Symlink) {
                    return Outcome::Skipped;
                }
                let mode = CHMODS[mode as usize % CHMODS.len()];
                self.last = format!("chmod {path:?} {mode:o}");
                let real = std::fs::set_permissions(
                    self.real(&path),
                    std::fs::Permissions::from_mode(mode),
                )
                .map_err(os);
                let hydra = self.lookup(&path).and_then(|ino| {
                    let set = SetAttr {
                        mode: Some(mode),
                        ..SetAttr::default()
                    };
                    hy(self.fs.setattr(ino, &set, None, &root())).map(|_| ())
                });
                Outcome::Ran(real, hydra)
            }
            Op::SetXattr {
                target,
                name: n,
                value,
                flags,
            } => {
                let (path, _) = self.target(target);
                let attr = XATTR_NAMES[n as usize % 3];
                let value = bytes(value, (value % 33) as usize);
                let flags = [0, XATTR_CREATE, XATTR_REPLACE][flags as usize % 3];
                self.last = format!("setxattr {path:?} {attr:?} flags {flags}");
                let real = real_setxattr(&self.real(&path), attr, &value, flags);
                let hydra = self
                    .lookup(&path)
                    .and_then(|ino| hy(self.fs.setxattr(ino, attr, &value, flags, &root())));
                Outcome::Ran(real, hydra)
            }
            Op::RemoveXattr { target, name: n } => {
                let (path, _) = self.target(target);
                let attr = XATTR_NAMES[n as usize % 3];
                self.last = format!("removexattr {path:?} {attr:?}");
                let real = real_removexattr(&self.real(&path), attr);
                let hydra = self
                    .lookup(&path)
                    .and_then(|ino| hy(self.fs.removexattr(ino, attr, &root())));
                Outcome::Ran(real, hydra)
            }
            Op::Open { target, write } => {
                let (path, kind) = self.target(target);
                if !plain(kind) {
                    return Outcome::Skipped;
                }
                self.last = format!("open {path:?} write={write}");
                if self.handles.len() >= 4 {
                    let kept = self.handles.remove(0);
                    self.close(kept.fh);
                }
                let real = std::fs::OpenOptions::new()
                    .read(true)
                    .write(write)
                    .open(self.real(&path))
                    .map_err(os);
                let flags = OpenFlags {
                    read: true,
                    write,
                    ..OpenFlags::default()
                };
                let hydra = self
                    .lookup(&path)
                    .and_then(|ino| Ok((hy(self.fs.open_file(ino, flags, &root()))?, ino)));
                match (real, hydra) {
                    (Ok(file), Ok((fh, ino))) => {
                        self.handles.push(Kept {
                            file,
                            fh,
                            ino,
                            flags,
                        });
                        Outcome::Ran(Ok(()), Ok(()))
                    }
                    (Ok(_), Err(e)) => Outcome::Ran(Ok(()), Err(e)),
                    (Err(e), Ok((fh, _))) => {
                        self.fs.release(fh).expect("release");
                        Outcome::Ran(Err(e), Ok(()))
                    }
                    (Err(a), Err(b)) => Outcome::Ran(Err(a), Err(b)),
                }
            }
            Op::HRead { h, offset, len } => {
                if self.handles.is_empty() {
                    return Outcome::Skipped;
                }
                let i = h as usize % self.handles.len();
                if steer() {
                    // Known bug (`a_kept_handle_sees_a_same_size_rewrite`): a handle's
                    // cached reader of an inline blob ignores rewrites of the same
                    // size. Read through a fresh handle on the same inode.
                    let kept = &mut self.handles[i];
                    if let Ok(fh) = self.fs.open_file(kept.ino, kept.flags, &root()) {
                        self.fs.release(kept.fh).expect("release");
                        kept.fh = fh;
                    }
                }
                let Kept { file, fh, .. } = &self.handles[i];
                let size = file.metadata().map(|m| m.len()).unwrap_or(0);
                let offset = u64::from(offset) % (size + 100);
                let mut buf = vec![0u8; len as usize];
                let mut got = 0;
                let real = loop {
                    match file.read_at(&mut buf[got..], offset + got as u64) {
                        Ok(0) => break Ok(()),
                        Ok(n) => {
                            got += n;
                            if got == buf.len() {
                                break Ok(());
                            }
                        }
                        Err(e) => break Err(os(e)),
                    }
                };
                buf.truncate(got);
                let hydra = hy(self.fs.read(*fh, offset, len as usize));
                self.last = format!("read {len} at {offset} through handle {i}");
                match (real, hydra) {
                    (Ok(()), Ok(data)) => {
                        assert!(
                            data == buf,
                            "read {len} at {offset} through handle {i}: hydra gave {} bytes, \
                             the kernel {} (first difference at {:?})",
                            data.len(),
                            buf.len(),
                            data.iter().zip(&buf).position(|(a, b)| a != b)
                        );
                        Outcome::Ran(Ok(()), Ok(()))
                    }
                    (real, hydra) => Outcome::Ran(real, hydra.map(|_| ())),
                }
            }
            Op::HWrite {
                h,
                offset,
                len,
                seed,
                truncate,
            } => {
                if self.handles.is_empty() {
                    return Outcome::Skipped;
                }
                let i = h as usize % self.handles.len();
                let size = self.handles[i]
                    .file
                    .metadata()
                    .map(|m| m.len())
                    .unwrap_or(0);
                if truncate {
                    if steer() && !self.handles[i].flags.write {
                        // Known bug (`ftruncate_needs_a_handle_open_for_writing`).
                        return Outcome::Skipped;
                    }
                    let Kept { file, fh, ino, .. } = &self.handles[i];
                    let new = u64::from(offset) % (size * 2 + 4096);
                    self.last = format!("ftruncate handle {i} to {new}");
                    let real = file.set_len(new).map_err(os);
                    let set = SetAttr {
                        size: Some(new),
                        ..SetAttr::default()
                    };
                    let hydra = hy(self.fs.setattr(*ino, &set, Some(*fh), &root())).map(|_| ());
                    self.steer_after_shrink(size, new);
                    return Outcome::Ran(real, hydra);
                }
                let Kept { file, fh, .. } = &self.handles[i];
                let offset = u64::from(offset) % (size + 8192);
                let data = bytes(seed, len as usize);
                self.last = format!("write {len} at {offset} through handle {i}");
                let real = file.write_all_at(&data, offset).map_err(os);
                let hydra = hy(self.fs.write(*fh, offset, &data, &root())).map(|_| ());
                Outcome::Ran(real, hydra)
            }
            Op::Close { h } => {
                if self.handles.is_empty() {
                    return Outcome::Skipped;
                }
                let i = h as usize % self.handles.len();
                let kept = self.handles.remove(i);
                self.close(kept.fh);
                Outcome::Ran(Ok(()), Ok(()))
            }
            Op::Commit => {
                self.fs.commit("model").expect("commit");
                if !steer() || self.handles.is_empty() {
                    // (Known bug `commit_is_clean_while_an_unlinked_file_is_open`:
                    // an open unlinked file keeps every later commit dirty.)
                    assert!(
                        self.fs.commit("again").expect("commit").is_none(),
                        "a second commit right after one has nothing to store"
                    );
                }
                Outcome::Ran(Ok(()), Ok(()))
            }
            Op::Reopen => {
                for kept in std::mem::take(&mut self.handles) {
                    self.close(kept.fh);
                }
                self.fs.commit("before reopen").expect("commit");
                self.reopen();
                Outcome::Ran(Ok(()), Ok(()))
            }
        }
    }

    fn check_tree(&self, context: &str) {
        let (real, hydra) = (real_tree(self.dir.path()), hydra_tree(&self.fs));
        if real != hydra {
            panic!("trees differ {context}:\n{}", describe_diff(&real, &hydra));
        }
    }
}

/// Runs `ops` on both sides. With `lazy`, the trees are compared only at
/// the end: comparing loads every directory, and directories a reopened
/// filesystem has not loaded yet take other paths through commit.
/// Runs `ops`; with `unload`, the filesystem keeps a single inode in
/// memory, so every clean directory nobody has open is unloaded between
/// operations and must come back unchanged.
fn run_model(pressure: Option<bool>, lazy: bool, unload: bool, ops: &[Op]) {
    let mut options = model_opts(pressure);
    if unload {
        options.max_inodes = 1;
    }
    let mut world = World::new(options);
    let mut tolerated = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        world.last.clear();
        match world.apply(op) {
            Outcome::Ran(real, hydra) => assert_eq!(
                hydra, real,
                "op #{i} {op:?} ({}): hydra's result (left) differs from the kernel's (right)",
                world.last
            ),
            Outcome::Tolerated(bug) => tolerated.push(format!("op #{i}: {bug}")),
            Outcome::Skipped => {}
        }
        if lazy {
            continue;
        }
        world.check_tree(&format!(
            "after op #{i} {op:?} ({}; divergences tolerated: {tolerated:?})",
            world.last
        ));
    }
    world.fs.commit("end").expect("commit");
    world.reopen();
    world.check_tree(&format!(
        "after the final reopen (divergences tolerated: {tolerated:?})"
    ));
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn model_matches_the_kernel(
        pressure in prop_oneof![2 => Just(None), 1 => Just(Some(true)), 1 => Just(Some(false))],
        lazy in prop::bool::weighted(0.3),
        unload in prop::bool::weighted(0.4),
        ops in prop::collection::vec(op_strategy(), 1..80),
    ) {
        run_model(pressure, lazy, unload, &ops);
    }
}

// ---------------------------------------------------------------------------
// Focused tests: semantics the model does not reach (other users, times,
// handles of removed directories), each checked against POSIX or, where
// the test process can, against the kernel itself.

fn new_fs() -> (Bucket, Fs) {
    let bucket = Bucket::in_memory();
    let fs = Fs::open(bucket.clone(), "t", &root(), opts()).expect("open");
    (bucket, fs)
}

fn reopen(bucket: &Bucket, fs: &Fs) -> Fs {
    fs.commit("reopen").expect("commit");
    Fs::open(bucket.clone(), "t", &root(), opts()).expect("reopen")
}

fn put(fs: &Fs, parent: Ino, name: &str, data: &[u8], c: &Caller) -> Ino {
    let (attr, fh) = fs
        .create(parent, name.as_bytes(), 0o644, rw(), c)
        .expect("create");
    if !data.is_empty() {
        fs.write(fh, 0, data, c).expect("write");
    }
    fs.release(fh).expect("release");
    attr.ino
}

fn at(fs: &Fs, p: &str) -> Ino {
    let mut ino = Ino::ROOT;
    for part in p.split('/').filter(|s| !s.is_empty()) {
        ino = fs.lookup(ino, part.as_bytes(), &root()).expect(p).ino;
    }
    ino
}

fn world_dir(fs: &Fs, name: &str) -> Ino {
    fs.mkdir(Ino::ROOT, name.as_bytes(), 0o777, &root())
        .expect("mkdir")
        .ino
}

#[test]
fn xattr_flags_namespaces_and_errnos() {
    let (bucket, fs) = new_fs();
    let f = put(&fs, Ino::ROOT, "f", b"x", &root());
    let set =
        |name: &[u8], value: &[u8], flags: i32| hy(fs.setxattr(f, name, value, flags, &root()));
    assert_eq!(
        set(b"user.k", b"v", XATTR_REPLACE).expect_err("replace missing"),
        libc::ENODATA
    );
    set(b"user.k", b"v1", XATTR_CREATE).expect("create");
    assert_eq!(
        set(b"user.k", b"v2", XATTR_CREATE).expect_err("create existing"),
        libc::EEXIST
    );
    set(b"user.k", b"v2", XATTR_REPLACE).expect("replace existing");
    assert_eq!(
        set(b"user.k", b"v3", XATTR_CREATE | XATTR_REPLACE).expect_err("both flags"),
        libc::EEXIST
    );
    set(b"user.k", b"v3", 0).expect("plain set");
    set(b"user.empty", b"", 0).expect("empty value");
    let binary: Vec<u8> = (0..=255u8).collect();
    set(b"user.bin", &binary, 0).expect("binary value");
    set(b"trusted.t", b"root only", 0).expect("trusted by root");
    set(b"security.s", b"sec", 0).expect("security by owner");
    assert_eq!(
        set(b"bogus.x", b"v", 0).expect_err("unknown namespace"),
        libc::EOPNOTSUPP
    );
    assert_eq!(
        errno(fs.getxattr(f, b"user.none", &root()).expect_err("missing")),
        libc::ENODATA
    );
    assert_eq!(
        errno(
            fs.removexattr(f, b"user.none", &root())
                .expect_err("missing")
        ),
        libc::ENODATA
    );

    // Ordinary users: user.* follows the mode bits, trusted.* is invisible.
    let alice = Caller::user(1000, 1000);
    assert_eq!(fs.getxattr(f, b"user.k", &alice).expect("readable"), b"v3");
    assert_eq!(
        errno(
            fs.setxattr(f, b"user.k", b"x", 0, &alice)
                .expect_err("0644 not writable")
        ),
        libc::EACCES
    );
    assert_eq!(
        errno(fs.getxattr(f, b"trusted.t", &alice).expect_err("hidden")),
        libc::ENODATA
    );
    assert_eq!(
        errno(
            fs.setxattr(f, b"trusted.t", b"x", 0, &alice)
                .expect_err("not root")
        ),
        libc::EPERM
    );
    assert_eq!(
        errno(
            fs.setxattr(f, b"security.s", b"x", 0, &alice)
                .expect_err("not owner")
        ),
        libc::EPERM
    );
    let listed = fs.listxattr(f, &alice).expect("list");
    assert!(
        !listed.contains(&b"trusted.t".to_vec()),
        "trusted.* listed to a user"
    );
    assert!(listed.contains(&b"user.k".to_vec()));
    assert!(
        fs.listxattr(f, &root())
            .expect("list")
            .contains(&b"trusted.t".to_vec())
    );

    // user.* is for files and directories only.
    let l = fs
        .symlink(Ino::ROOT, b"l", b"f", &root())
        .expect("symlink")
        .ino;
    assert_eq!(
        errno(
            fs.setxattr(l, b"user.k", b"v", 0, &root())
                .expect_err("symlink")
        ),
        libc::EPERM
    );
    assert_eq!(
        errno(fs.getxattr(l, b"user.k", &root()).expect_err("symlink")),
        libc::ENODATA
    );
    let d = fs
        .mkdir(Ino::ROOT, b"d", 0o755, &root())
        .expect("mkdir")
        .ino;
    fs.setxattr(d, b"user.dir", b"yes", 0, &root())
        .expect("dir xattr");

    // Everything survives a commit and a reopen, byte for byte.
    let again = reopen(&bucket, &fs);
    let f2 = at(&again, "f");
    assert_eq!(again.getxattr(f2, b"user.k", &root()).expect("k"), b"v3");
    assert_eq!(
        again.getxattr(f2, b"user.empty", &root()).expect("empty"),
        b""
    );
    assert_eq!(
        again.getxattr(f2, b"user.bin", &root()).expect("bin"),
        binary
    );
    assert_eq!(
        again.getxattr(f2, b"trusted.t", &root()).expect("t"),
        b"root only"
    );
    assert_eq!(
        again
            .getxattr(at(&again, "d"), b"user.dir", &root())
            .expect("d"),
        b"yes"
    );
    again.removexattr(f2, b"user.k", &root()).expect("remove");
    let again = reopen(&bucket, &again);
    assert_eq!(
        errno(
            again
                .getxattr(at(&again, "f"), b"user.k", &root())
                .expect_err("removed")
        ),
        libc::ENODATA
    );
}

#[test]
fn utimens_now_omit_and_permissions() {
    let (bucket, fs) = new_fs();
    let f = put(&fs, Ino::ROOT, "f", b"x", &root());
    let before = fs.getattr(f).expect("attr");
    std::thread::sleep(std::time::Duration::from_millis(2));
    // atime explicit, mtime omitted.
    let a = fs
        .setattr(
            f,
            &SetAttr {
                atime: Some(TimeSet::At(1_234_567_891_123_456_789)),
                ..SetAttr::default()
            },
            None,
            &root(),
        )
        .expect("set atime");
    assert_eq!(a.atime, 1_234_567_891_123_456_789);
    assert_eq!(a.mtime, before.mtime, "UTIME_OMIT leaves mtime alone");
    assert!(a.ctime > before.ctime, "a time change changes ctime");
    // Both explicit, one before the epoch.
    let b = fs
        .setattr(
            f,
            &SetAttr {
                atime: Some(TimeSet::At(-5)),
                mtime: Some(TimeSet::At(42)),
                ..SetAttr::default()
            },
            None,
            &root(),
        )
        .expect("set both");
    assert_eq!((b.atime, b.mtime), (-5, 42));
    // UTIME_NOW.
    let t0 = hydra_dag::now_ns();
    let c = fs
        .setattr(
            f,
            &SetAttr {
                mtime: Some(TimeSet::Now),
                ..SetAttr::default()
            },
            None,
            &root(),
        )
        .expect("now");
    let t1 = hydra_dag::now_ns();
    assert!(
        c.mtime >= t0 && c.mtime <= t1,
        "mtime {} not in [{t0}, {t1}]",
        c.mtime
    );
    assert_eq!(c.atime, -5, "omitted atime kept");
    // Times are stored to the nanosecond.
    let again = reopen(&bucket, &fs);
    let back = again.getattr(at(&again, "f")).expect("attr");
    assert_eq!(
        (back.atime, back.mtime, back.ctime),
        (c.atime, c.mtime, c.ctime)
    );

    // Who may set times: explicit times need ownership; "now" needs ownership
    // or write permission.
    let alice = Caller::user(1000, 1000);
    let shared = again
        .mkdir(Ino::ROOT, b"shared", 0o777, &root())
        .expect("mkdir")
        .ino;
    let open = put(&again, shared, "open", b"", &root());
    again
        .setattr(
            open,
            &SetAttr {
                mode: Some(0o666),
                ..SetAttr::default()
            },
            None,
            &root(),
        )
        .expect("chmod");
    let closed = put(&again, shared, "closed", b"", &root());
    let now = SetAttr {
        atime: Some(TimeSet::Now),
        mtime: Some(TimeSet::Now),
        ..SetAttr::default()
    };
    let explicit = SetAttr {
        mtime: Some(TimeSet::At(7)),
        ..SetAttr::default()
    };
    again
        .setattr(open, &now, None, &alice)
        .expect("now with write permission");
    assert_eq!(
        errno(
            again
                .setattr(open, &explicit, None, &alice)
                .expect_err("explicit")
        ),
        libc::EPERM
    );
    assert_eq!(
        errno(
            again
                .setattr(closed, &now, None, &alice)
                .expect_err("no write")
        ),
        libc::EACCES
    );
    let mine = put(&again, shared, "mine", b"", &alice);
    again
        .setattr(
            mine,
            &SetAttr {
                mode: Some(0o444),
                ..SetAttr::default()
            },
            None,
            &alice,
        )
        .expect("chmod own");
    again
        .setattr(mine, &explicit, None, &alice)
        .expect("owner sets explicit times");
    again
        .setattr(mine, &now, None, &alice)
        .expect("owner sets now without write permission");
}

/// Sleeps long enough for the clock to move, then returns the time.
fn tick() -> i64 {
    std::thread::sleep(std::time::Duration::from_millis(2));
    hydra_dag::now_ns()
}

#[test]
fn operations_update_mtime_and_ctime() {
    let (_bucket, fs) = new_fs();
    let d1 = fs
        .mkdir(Ino::ROOT, b"d1", 0o755, &root())
        .expect("mkdir")
        .ino;
    let d2 = fs
        .mkdir(Ino::ROOT, b"d2", 0o755, &root())
        .expect("mkdir")
        .ino;
    let attr = |ino| fs.getattr(ino).expect("attr");

    let t = tick();
    let f = put(&fs, d1, "f", b"", &root());
    assert!(
        attr(d1).mtime >= t && attr(d1).ctime >= t,
        "create changes the directory"
    );

    let t = tick();
    let fh = fs.open_file(f, rw(), &root()).expect("open");
    fs.write(fh, 0, b"data", &root()).expect("write");
    fs.release(fh).expect("release");
    assert!(
        attr(f).mtime >= t && attr(f).ctime >= t,
        "write changes mtime and ctime"
    );

    let (m, t) = (attr(f).mtime, tick());
    fs.setattr(
        f,
        &SetAttr {
            mode: Some(0o600),
            ..SetAttr::default()
        },
        None,
        &root(),
    )
    .expect("chmod");
    assert_eq!(attr(f).mtime, m, "chmod leaves mtime");
    assert!(attr(f).ctime >= t, "chmod changes ctime");

    let (m, t) = (attr(f).mtime, tick());
    fs.setxattr(f, b"user.x", b"1", 0, &root())
        .expect("setxattr");
    assert_eq!(attr(f).mtime, m, "setxattr leaves mtime");
    assert!(attr(f).ctime >= t, "setxattr changes ctime");

    let t = tick();
    fs.setattr(
        f,
        &SetAttr {
            size: Some(1),
            ..SetAttr::default()
        },
        None,
        &root(),
    )
    .expect("truncate");
    assert!(
        attr(f).mtime >= t && attr(f).ctime >= t,
        "truncate changes mtime and ctime"
    );

    let t = tick();
    fs.link(f, d2, b"g", &root()).expect("link");
    assert!(attr(f).ctime >= t, "link changes the inode's ctime");
    assert!(attr(d2).mtime >= t, "link changes the directory");

    let t = tick();
    fs.rename(d1, b"f", d2, b"h", RenameMode::Replace, &root())
        .expect("rename");
    assert!(
        attr(d1).mtime >= t && attr(d2).mtime >= t,
        "rename changes both directories"
    );
    assert!(attr(f).ctime >= t, "rename changes the inode's ctime");

    let (m, t) = (attr(f).mtime, tick());
    fs.unlink(d2, b"g", &root()).expect("unlink");
    assert!(attr(d2).mtime >= t, "unlink changes the directory");
    assert!(
        attr(f).ctime >= t,
        "unlink changes the remaining inode's ctime"
    );
    assert_eq!(attr(f).mtime, m, "unlink leaves the inode's mtime");
}

#[test]
fn sticky_directories_restrict_rename_and_removal() {
    let (_bucket, fs) = new_fs();
    let alice = Caller::user(1000, 1000);
    let bob = Caller::user(1001, 1001);
    let carol = Caller::user(1002, 1002);
    let s = fs
        .mkdir(Ino::ROOT, b"s", 0o1777, &root())
        .expect("mkdir")
        .ino;
    fs.setattr(
        s,
        &SetAttr {
            uid: Some(1002),
            ..SetAttr::default()
        },
        None,
        &root(),
    )
    .expect("chown");
    put(&fs, s, "a", b"alice", &alice);
    put(&fs, s, "b", b"bob", &bob);
    let rename = |from: &[u8], to: &[u8], mode, c: &Caller| hy(fs.rename(s, from, s, to, mode, c));
    use RenameMode::{Exchange, Replace};
    assert_eq!(
        rename(b"a", b"x", Replace, &bob).expect_err("not his"),
        libc::EPERM
    );
    assert_eq!(
        rename(b"b", b"a", Replace, &bob).expect_err("over hers"),
        libc::EPERM
    );
    assert_eq!(
        rename(b"b", b"a", Exchange, &bob).expect_err("swap with hers"),
        libc::EPERM
    );
    assert_eq!(
        errno(fs.rmdir(s, b"a", &bob).expect_err("not a dir")),
        libc::ENOTDIR
    );
    rename(b"b", b"b2", Replace, &bob).expect("his own");
    rename(b"a", b"a2", Replace, &alice).expect("her own");
    rename(b"a2", b"a3", Replace, &carol).expect("the directory's owner");
    rename(b"a3", b"b2", Replace, &root()).expect("root");
    let sub = fs.mkdir(s, b"sub", 0o777, &alice).expect("mkdir").ino;
    assert_eq!(
        errno(fs.rmdir(s, b"sub", &bob).expect_err("sticky rmdir")),
        libc::EPERM
    );
    // The sticky bit of the directory, not of the entry, is what counts.
    put(&fs, sub, "f", b"", &alice);
    fs.unlink(sub, b"f", &bob).expect("sub is not sticky");
    fs.rmdir(s, b"sub", &alice).expect("owner removes");
}

#[test]
fn setuid_and_setgid_bits() {
    let (_bucket, fs) = new_fs();
    let alice = Caller::user(1000, 1000);
    let sg = fs
        .mkdir(Ino::ROOT, b"sg", 0o2777, &root())
        .expect("mkdir")
        .ino;
    // mkdir drops setgid from its mode, as Linux's VFS does: set it after.
    fs.setattr(
        sg,
        &SetAttr {
            gid: Some(50),
            mode: Some(0o2777),
            ..SetAttr::default()
        },
        None,
        &root(),
    )
    .expect("chgrp");
    // New entries take the directory's group; subdirectories stay setgid.
    let sub = fs.mkdir(sg, b"sub", 0o755, &alice).expect("mkdir");
    assert_eq!((sub.gid, sub.perm), (50, 0o2755));
    let (f, fh) = fs.create(sg, b"f", 0o2755, rw(), &alice).expect("create");
    fs.release(fh).expect("release");
    assert_eq!(f.gid, 50);
    assert_eq!(
        f.perm, 0o755,
        "setgid of a file in a group alice is not in is dropped"
    );
    // chmod by a non-member drops setgid; by root it stays.
    let a = fs
        .setattr(
            f.ino,
            &SetAttr {
                mode: Some(0o2755),
                ..SetAttr::default()
            },
            None,
            &alice,
        )
        .expect("chmod");
    assert_eq!(a.perm, 0o755);
    let a = fs
        .setattr(
            f.ino,
            &SetAttr {
                mode: Some(0o6755),
                ..SetAttr::default()
            },
            None,
            &root(),
        )
        .expect("chmod");
    assert_eq!(a.perm, 0o6755);
    // chown drops setuid, and setgid when group-executable.
    let a = fs
        .setattr(
            f.ino,
            &SetAttr {
                uid: Some(1001),
                ..SetAttr::default()
            },
            None,
            &root(),
        )
        .expect("chown");
    assert_eq!(a.perm, 0o755);
    fs.setattr(
        f.ino,
        &SetAttr {
            mode: Some(0o2644),
            ..SetAttr::default()
        },
        None,
        &root(),
    )
    .expect("chmod");
    let a = fs
        .setattr(
            f.ino,
            &SetAttr {
                gid: Some(0),
                ..SetAttr::default()
            },
            None,
            &root(),
        )
        .expect("chgrp");
    assert_eq!(
        a.perm, 0o2644,
        "setgid without group-execute is a locking mark: kept"
    );
    // A write by a non-root owner drops setuid and group-executable setgid.
    fs.setattr(
        f.ino,
        &SetAttr {
            uid: Some(1000),
            ..SetAttr::default()
        },
        None,
        &root(),
    )
    .expect("chown back");
    fs.setattr(
        f.ino,
        &SetAttr {
            mode: Some(0o6755),
            ..SetAttr::default()
        },
        None,
        &root(),
    )
    .expect("chmod");
    let fh = fs.open_file(f.ino, rw(), &alice).expect("open");
    fs.write(fh, 0, b"x", &alice).expect("write");
    fs.release(fh).expect("release");
    assert_eq!(fs.getattr(f.ino).expect("attr").perm, 0o755);
    // A write by root keeps them.
    fs.setattr(
        f.ino,
        &SetAttr {
            mode: Some(0o6755),
            ..SetAttr::default()
        },
        None,
        &root(),
    )
    .expect("chmod");
    let fh = fs.open_file(f.ino, rw(), &root()).expect("open");
    fs.write(fh, 0, b"y", &root()).expect("write");
    fs.release(fh).expect("release");
    assert_eq!(fs.getattr(f.ino).expect("attr").perm, 0o6755);
}

#[test]
fn truncate_by_non_root_clears_setuid() {
    let (_bucket, fs) = new_fs();
    let alice = Caller::user(1000, 1000);
    let d = world_dir(&fs, "d");
    let f = put(&fs, d, "f", b"data", &alice);
    fs.setattr(
        f,
        &SetAttr {
            mode: Some(0o6755),
            ..SetAttr::default()
        },
        None,
        &alice,
    )
    .expect("chmod");
    fs.setattr(
        f,
        &SetAttr {
            size: Some(1),
            ..SetAttr::default()
        },
        None,
        &alice,
    )
    .expect("truncate");
    assert_eq!(fs.getattr(f).expect("attr").perm, 0o755, "truncate(2)");
    fs.setattr(
        f,
        &SetAttr {
            mode: Some(0o6755),
            ..SetAttr::default()
        },
        None,
        &alice,
    )
    .expect("chmod");
    let fh = fs
        .open_file(
            f,
            OpenFlags {
                write: true,
                truncate: true,
                ..OpenFlags::default()
            },
            &alice,
        )
        .expect("open O_TRUNC");
    fs.release(fh).expect("release");
    assert_eq!(fs.getattr(f).expect("attr").perm, 0o755, "O_TRUNC");
}

#[test]
fn directory_nlink_through_mkdir_rename_rmdir_and_reopen() {
    let (bucket, fs) = new_fs();
    let nlink = |fs: &Fs, p: &str| fs.getattr(at(fs, p)).expect("attr").nlink;
    let a = fs
        .mkdir(Ino::ROOT, b"a", 0o755, &root())
        .expect("mkdir")
        .ino;
    let b = fs
        .mkdir(Ino::ROOT, b"b", 0o755, &root())
        .expect("mkdir")
        .ino;
    for n in ["x", "y", "z"] {
        fs.mkdir(a, n.as_bytes(), 0o755, &root()).expect("mkdir");
    }
    put(&fs, a, "file", b"", &root());
    assert_eq!(
        (nlink(&fs, ""), nlink(&fs, "a"), nlink(&fs, "b")),
        (4, 5, 2)
    );
    fs.rename(a, b"x", b, b"x", RenameMode::Replace, &root())
        .expect("move dir");
    assert_eq!((nlink(&fs, "a"), nlink(&fs, "b")), (4, 3));
    fs.rename(a, b"y", b, b"x", RenameMode::Replace, &root())
        .expect("over empty dir");
    assert_eq!((nlink(&fs, "a"), nlink(&fs, "b")), (3, 3));
    fs.rename(a, b"z", b, b"x", RenameMode::Exchange, &root())
        .expect("swap dirs");
    assert_eq!((nlink(&fs, "a"), nlink(&fs, "b")), (3, 3));
    fs.rename(a, b"file", b, b"x", RenameMode::Exchange, &root())
        .expect("swap dir and file");
    assert_eq!((nlink(&fs, "a"), nlink(&fs, "b")), (4, 2));
    fs.rename(Ino::ROOT, b"b", a, b"b", RenameMode::Replace, &root())
        .expect("nest");
    assert_eq!((nlink(&fs, ""), nlink(&fs, "a")), (3, 5));
    let again = reopen(&bucket, &fs);
    assert_eq!(
        (nlink(&again, ""), nlink(&again, "a"), nlink(&again, "a/b")),
        (3, 5, 2)
    );
    again
        .rmdir(at(&again, "a"), b"file", &root())
        .expect("rmdir");
    again.rmdir(at(&again, "a"), b"z", &root()).expect("rmdir");
    assert_eq!(nlink(&again, "a"), 3);
    let again = reopen(&bucket, &again);
    assert_eq!(nlink(&again, "a"), 3);
}

#[test]
fn unlinked_open_files_across_commit_and_reopen() {
    let (bucket, fs) = new_fs();
    let f = put(&fs, Ino::ROOT, "f", b"hello", &root());
    let keep = put(&fs, Ino::ROOT, "keep", b"k", &root());
    fs.link(keep, Ino::ROOT, b"keep2", &root()).expect("link");
    fs.commit("base").expect("commit");
    let fh = fs.open_file(f, rw(), &root()).expect("open");
    let kh = fs.open_file(keep, rw(), &root()).expect("open");
    fs.unlink(Ino::ROOT, b"f", &root()).expect("unlink");
    fs.unlink(Ino::ROOT, b"keep", &root())
        .expect("unlink one name");
    fs.write(fh, 5, b" world", &root())
        .expect("write after unlink");
    fs.write(kh, 1, b"eep", &root()).expect("write");
    fs.commit("after unlink").expect("commit");
    // Another mount of the committed state sees neither the file nor the name.
    let other = Fs::open(bucket.clone(), "t", &root(), opts()).expect("open");
    assert_eq!(
        errno(other.lookup(Ino::ROOT, b"f", &root()).expect_err("gone")),
        libc::ENOENT
    );
    let k2 = at(&other, "keep2");
    assert_eq!(other.getattr(k2).expect("attr").nlink, 1);
    assert_eq!(read_all(&other, k2), b"keep");
    // The handle still works, on an inode with no names.
    assert_eq!(fs.read(fh, 0, 100).expect("read"), b"hello world");
    assert_eq!(fs.getattr(f).expect("attr").nlink, 0);
    fs.release(fh).expect("release");
    fs.release(kh).expect("release");
    assert_eq!(errno(fs.getattr(f).expect_err("forgotten")), libc::ENOENT);
    let again = reopen(&bucket, &fs);
    let names: Vec<Vec<u8>> = again
        .readdir(Ino::ROOT, 0, &root())
        .expect("readdir")
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, [&b"."[..], b"..", b"keep2"]);
}

#[test]
fn commit_is_clean_while_an_unlinked_file_is_open() {
    let (bucket, fs) = new_fs();
    let (attr, fh) = fs
        .create(Ino::ROOT, b"tmp", 0o600, rw(), &root())
        .expect("create");
    fs.write(fh, 0, b"scratch", &root()).expect("write");
    fs.unlink(Ino::ROOT, b"tmp", &root()).expect("unlink");
    assert!(fs.commit("one").expect("commit").is_some());
    let entries = bucket.log(None, 100).expect("log").len();
    assert!(
        fs.commit("two").expect("commit").is_none(),
        "nothing changed, yet the commit stored a new root"
    );
    assert_eq!(bucket.log(None, 100).expect("log").len(), entries);
    fs.release(fh).expect("release");
    let _ = attr;
}

#[test]
fn creating_in_a_removed_directory_is_enoent() {
    // The kernel first.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("d");
    std::fs::create_dir(&dir).expect("mkdir");
    let handle = std::fs::File::open(&dir).expect("open dir");
    std::fs::remove_dir(&dir).expect("rmdir");
    assert_eq!(handle.metadata().expect("fstat").nlink(), 0);
    let kernel = rustix::fs::mkdirat(&handle, "x", rustix::fs::Mode::from_raw_mode(0o755))
        .map_err(rx)
        .expect_err("mkdir in a removed directory");
    assert_eq!(kernel, libc::ENOENT);

    let (_bucket, fs) = new_fs();
    let d = fs
        .mkdir(Ino::ROOT, b"d", 0o755, &root())
        .expect("mkdir")
        .ino;
    let fh = fs.open_file(d, ro(), &root()).expect("opendir");
    fs.rmdir(Ino::ROOT, b"d", &root()).expect("rmdir");
    assert_eq!(fs.getattr(d).expect("still open").nlink, 0);
    assert_eq!(
        errno(fs.mkdir(d, b"x", 0o755, &root()).expect_err("mkdir")),
        kernel
    );
    assert_eq!(
        errno(
            fs.create(d, b"f", 0o644, rw(), &root())
                .expect_err("create")
        ),
        kernel
    );
    fs.release(fh).expect("release");
}

#[test]
fn zero_length_write_past_eof_does_not_extend() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = std::fs::File::create(tmp.path().join("f")).expect("create");
    file.write_at(b"", 100).expect("pwrite");
    assert_eq!(file.metadata().expect("fstat").len(), 0, "the kernel");

    let (_bucket, fs) = new_fs();
    let (attr, fh) = fs
        .create(Ino::ROOT, b"f", 0o644, rw(), &root())
        .expect("create");
    assert_eq!(fs.write(fh, 100, b"", &root()).expect("write"), 0);
    assert_eq!(fs.getattr(attr.ino).expect("attr").size, 0);
    fs.release(fh).expect("release");
}

#[test]
fn ftruncate_needs_a_handle_open_for_writing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("f"), b"data").expect("write");
    let file = std::fs::File::open(tmp.path().join("f")).expect("open read-only");
    let kernel = os(file.set_len(0).expect_err("ftruncate of a read-only fd"));
    assert_eq!(kernel, libc::EINVAL);

    let (_bucket, fs) = new_fs();
    let d = world_dir(&fs, "d");
    let theirs = put(&fs, d, "theirs", b"data", &root());
    let alice = Caller::user(1000, 1000);
    let ro_fh = fs
        .open_file(theirs, ro(), &alice)
        .expect("0644 is readable");
    let cut = SetAttr {
        size: Some(0),
        ..SetAttr::default()
    };
    let r = fs.setattr(theirs, &cut, Some(ro_fh), &alice);
    assert!(r.is_err(), "truncated through a read-only handle");
    let mine = put(&fs, d, "mine", b"", &alice);
    let my_fh = fs.open_file(mine, rw(), &alice).expect("open");
    let r = fs.setattr(theirs, &cut, Some(my_fh), &alice);
    assert!(
        r.is_err(),
        "truncated another user's file through a handle of another file"
    );
    assert_eq!(fs.getattr(theirs).expect("attr").size, 4);
}

#[test]
fn a_kept_handle_sees_a_same_size_rewrite() {
    let (_bucket, fs) = new_fs();
    let f = put(&fs, Ino::ROOT, "f", b"aaaa", &root());
    fs.commit("one").expect("commit");
    let reader = fs.open_file(f, ro(), &root()).expect("open");
    assert_eq!(fs.read(reader, 0, 10).expect("read"), b"aaaa");
    let writer = fs.open_file(f, rw(), &root()).expect("open");
    fs.write(writer, 0, b"bbbb", &root()).expect("write");
    fs.release(writer).expect("release");
    assert_eq!(
        fs.read(reader, 0, 10).expect("read"),
        b"bbbb",
        "before the commit"
    );
    fs.commit("two").expect("commit");
    assert_eq!(
        fs.read(reader, 0, 10).expect("read"),
        b"bbbb",
        "after the commit"
    );
    fs.release(reader).expect("release");
}

#[test]
fn overlay_shrink_then_grow_reads_zeros() {
    let (bucket, fs) = new_fs();
    let big = bytes(7, 6 << 20);
    let f = put(&fs, Ino::ROOT, "f", &big, &root());
    fs.commit("big").expect("commit");
    let fh = fs.open_file(f, rw(), &root()).expect("open");
    fs.write(fh, 0, b"X", &root()).expect("write"); // now an overlay over the blob
    let set = |size| {
        fs.setattr(
            f,
            &SetAttr {
                size: Some(size),
                ..SetAttr::default()
            },
            Some(fh),
            &root(),
        )
        .expect("truncate")
    };
    set(1 << 20);
    set(3 << 20);
    fs.write(fh, (4 << 20) + 1, b"Y", &root())
        .expect("write past the end");
    let mut want = big[..1 << 20].to_vec();
    want[0] = b'X';
    want.resize((4 << 20) + 1, 0);
    want.push(b'Y');
    let got = fs.read(fh, 0, want.len() + 10).expect("read");
    assert_eq!(got.len(), want.len());
    assert!(
        got == want,
        "first wrong byte before commit at {:?}",
        got.iter().zip(&want).position(|(a, b)| a != b)
    );
    fs.release(fh).expect("release");
    let again = reopen(&bucket, &fs);
    let got = read_all(&again, at(&again, "f"));
    assert!(
        got == want,
        "first wrong byte after commit at {:?}",
        got.iter().zip(&want).position(|(a, b)| a != b)
    );
}

#[test]
fn exchange_of_file_and_symlink_keeps_directory_nlink() {
    let (_bucket, fs) = new_fs();
    let a = fs
        .mkdir(Ino::ROOT, b"a", 0o755, &root())
        .expect("mkdir")
        .ino;
    let b = fs
        .mkdir(Ino::ROOT, b"b", 0o755, &root())
        .expect("mkdir")
        .ino;
    fs.mkdir(b, b"sub", 0o755, &root()).expect("mkdir");
    put(&fs, a, "file", b"", &root());
    fs.symlink(b, b"link", b"target", &root()).expect("symlink");
    fs.rename(a, b"file", b, b"link", RenameMode::Exchange, &root())
        .expect("exchange");
    assert_eq!(
        fs.getattr(a).expect("attr").nlink,
        2,
        "a has no subdirectories"
    );
    assert_eq!(fs.getattr(b).expect("attr").nlink, 3, "b has one");
}

/// Runs `op` on a fresh reference directory and a fresh hydra filesystem,
/// both prepared by `setup` (paths relative to the top), and returns the
/// two errnos: (kernel, hydra).
fn both_errnos(
    setup: &[(&str, Kind)],
    kernel: impl FnOnce(&Path) -> Result<(), i32>,
    hydra: impl FnOnce(&Fs) -> Result<(), i32>,
) -> (i32, i32) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_bucket, fs) = new_fs();
    for (path, kind) in setup {
        let (p, leaf) = split(path);
        let parent = at(&fs, p);
        match kind {
            Kind::Dir => {
                std::fs::create_dir(tmp.path().join(path)).expect("mkdir");
                fs.mkdir(parent, leaf.as_bytes(), 0o755, &root())
                    .expect("mkdir");
            }
            _ => {
                std::fs::write(tmp.path().join(path), b"x").expect("write");
                put(&fs, parent, leaf, b"x", &root());
            }
        }
    }
    let k = kernel(tmp.path()).expect_err("the kernel refuses");
    let h = hydra(&fs).expect_err("hydra refuses");
    (k, h)
}

#[test]
fn link_checks_the_destination_before_the_source_kind() {
    let setup = [("d", Kind::Dir), ("f", Kind::File)];
    let link = |to: &'static str| {
        both_errnos(
            &setup,
            move |t| std::fs::hard_link(t.join("d"), t.join(to)).map_err(os),
            move |fs| {
                let (p, leaf) = split(to);
                hy(fs.link(at(fs, "d"), at(fs, p), leaf.as_bytes(), &root())).map(|_| ())
            },
        )
    };
    for to in ["f", "d", "f/x"] {
        let (kernel, hydra) = link(to);
        assert_eq!(hydra, kernel, "link d -> {to}");
    }
    let long: &'static str = Box::leak(name(NAME_256 as u8).into_boxed_str());
    let (kernel, hydra) = link(long);
    assert_eq!(hydra, kernel, "link d -> a 256-byte name");
}

#[test]
fn rename_checks_the_paths_before_the_new_name() {
    let long = name(NAME_256 as u8);
    let setup = [("f", Kind::File)];
    let (kernel, hydra) = both_errnos(
        &setup,
        |t| std::fs::rename(t.join("missing"), t.join(&long)).map_err(os),
        |fs| {
            hy(fs.rename(
                Ino::ROOT,
                b"missing",
                Ino::ROOT,
                long.as_bytes(),
                RenameMode::Replace,
                &root(),
            ))
        },
    );
    assert_eq!(hydra, kernel, "missing source, long new name");
    let (kernel, hydra) = both_errnos(
        &[("f", Kind::File), ("g", Kind::File)],
        |t| std::fs::rename(t.join("g"), t.join("f").join(&long)).map_err(os),
        |fs| {
            hy(fs.rename(
                Ino::ROOT,
                b"g",
                at(fs, "f"),
                long.as_bytes(),
                RenameMode::Replace,
                &root(),
            ))
        },
    );
    assert_eq!(hydra, kernel, "new parent a file, long new name");
}

#[test]
fn rename_reports_noreplace_and_exchange_errors_before_einval() {
    let setup = [("a", Kind::Dir), ("a/b", Kind::Dir)];
    let (kernel, hydra) = both_errnos(
        &setup,
        |t| real_rename(&t.join("a"), &t.join("a/b"), RenameMode::NoReplace),
        |fs| {
            hy(fs.rename(
                Ino::ROOT,
                b"a",
                at(fs, "a"),
                b"b",
                RenameMode::NoReplace,
                &root(),
            ))
        },
    );
    assert_eq!(hydra, kernel, "NOREPLACE a -> a/b (exists)");
    let (kernel, hydra) = both_errnos(
        &setup,
        |t| real_rename(&t.join("a"), &t.join("a/missing"), RenameMode::Exchange),
        |fs| {
            hy(fs.rename(
                Ino::ROOT,
                b"a",
                at(fs, "a"),
                b"missing",
                RenameMode::Exchange,
                &root(),
            ))
        },
    );
    assert_eq!(hydra, kernel, "EXCHANGE a <-> a/missing");
}

#[test]
fn rename_of_a_file_over_its_ancestor_is_enotempty() {
    let setup = [("a", Kind::Dir), ("a/f", Kind::File)];
    let (kernel, hydra) = both_errnos(
        &setup,
        |t| std::fs::rename(t.join("a/f"), t.join("a")).map_err(os),
        |fs| {
            hy(fs.rename(
                at(fs, "a"),
                b"f",
                Ino::ROOT,
                b"a",
                RenameMode::Replace,
                &root(),
            ))
        },
    );
    assert_eq!(hydra, kernel);
}

#[test]
fn large_directories_page_and_persist() {
    let (bucket, fs) = new_fs();
    let d = fs
        .mkdir(Ino::ROOT, b"big", 0o755, &root())
        .expect("mkdir")
        .ino;
    // name -> content (directories: None)
    let mut model: BTreeMap<String, Option<String>> = BTreeMap::new();
    for i in 0..3000 {
        let name = format!("entry-{i:05}-{}", "x".repeat(i % 40));
        if i % 10 == 0 {
            fs.mkdir(d, name.as_bytes(), 0o755, &root()).expect("mkdir");
            model.insert(name, None);
        } else {
            put(&fs, d, &name, name.as_bytes(), &root());
            model.insert(name.clone(), Some(name));
        }
    }
    let check = |fs: &Fs, model: &BTreeMap<String, Option<String>>| {
        let d = at(fs, "big");
        // Page through with cookies, 97 entries at a time.
        let mut seen = Vec::new();
        let mut cookie = 0;
        loop {
            let page = fs.readdir(d, cookie, &root()).expect("readdir");
            if page.is_empty() {
                break;
            }
            for e in page.iter().take(97) {
                seen.push(String::from_utf8(e.name.clone()).expect("utf-8"));
                cookie = e.cookie;
            }
        }
        assert_eq!(&seen[..2], [".", ".."]);
        let listed: std::collections::BTreeSet<String> = seen[2..].iter().cloned().collect();
        assert_eq!(listed.len(), seen.len() - 2, "a name listed twice");
        assert!(
            listed.iter().eq(model.keys()),
            "listing differs from the model"
        );
        let subdirs = model.values().filter(|c| c.is_none()).count();
        assert_eq!(fs.getattr(d).expect("attr").nlink as usize, 2 + subdirs);
        for (name, content) in model.iter().step_by(37) {
            let attr = fs.lookup(d, name.as_bytes(), &root()).expect("lookup");
            match content {
                Some(c) => assert_eq!(read_all(fs, attr.ino), c.as_bytes()),
                None => assert_eq!(attr.kind, Kind::Dir),
            }
        }
    };
    check(&fs, &model);
    let fs = reopen(&bucket, &fs);
    check(&fs, &model);
    let d = at(&fs, "big");
    let names: Vec<String> = model.keys().cloned().collect();
    for (i, name) in names.iter().enumerate() {
        if i % 3 == 0 {
            let attr = fs.lookup(d, name.as_bytes(), &root()).expect("lookup");
            if attr.kind == Kind::Dir {
                fs.rmdir(d, name.as_bytes(), &root()).expect("rmdir");
            } else {
                fs.unlink(d, name.as_bytes(), &root()).expect("unlink");
            }
            model.remove(name);
        } else if i % 7 == 0 {
            let new = format!("{name}-renamed");
            fs.rename(
                d,
                name.as_bytes(),
                d,
                new.as_bytes(),
                RenameMode::Replace,
                &root(),
            )
            .expect("rename");
            let content = model.remove(name).expect("in the model");
            model.insert(new, content);
        }
    }
    check(&fs, &model);
    let fs = reopen(&bucket, &fs);
    check(&fs, &model);
}

#[test]
fn snapshots_are_read_only_and_frozen() {
    let (bucket, fs) = new_fs();
    let f = put(&fs, Ino::ROOT, "f", b"old", &root());
    let root_cid = fs
        .commit("one")
        .expect("commit")
        .expect("changed")
        .new
        .expect("root");
    let fh = fs.open_file(f, rw(), &root()).expect("open");
    fs.write(fh, 0, b"new", &root()).expect("write");
    fs.release(fh).expect("release");
    fs.commit("two").expect("commit");
    let snap = Fs::open_snapshot(bucket, root_cid).expect("snapshot");
    let sf = at(&snap, "f");
    assert_eq!(read_all(&snap, sf), b"old");
    let erofs = |r: Result<(), FsError>| assert_eq!(errno(r.expect_err("read-only")), libc::EROFS);
    erofs(snap.mkdir(Ino::ROOT, b"d", 0o755, &root()).map(|_| ()));
    erofs(snap.unlink(Ino::ROOT, b"f", &root()));
    erofs(snap.open_file(sf, rw(), &root()).map(|_| ()));
    erofs(
        snap.setattr(
            sf,
            &SetAttr {
                mode: Some(0o600),
                ..SetAttr::default()
            },
            None,
            &root(),
        )
        .map(|_| ()),
    );
    erofs(snap.setxattr(sf, b"user.x", b"1", 0, &root()));
    erofs(snap.commit("no").map(|_| ()));
    erofs(snap.access(sf, 2, &root()));
}
