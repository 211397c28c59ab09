//! What the filesystem reports and accepts about inodes.

use crate::node::Kind;

/// An inode number, stable for the life of an [`crate::Fs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ino(pub u64);

impl Ino {
    /// The root directory.
    pub const ROOT: Ino = Ino(1);
}

/// An open file handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fh(pub u64);

/// The attributes of an inode, as `stat` reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    /// Inode number.
    pub ino: Ino,
    /// Type.
    pub kind: Kind,
    /// Permission bits with setuid/setgid/sticky.
    pub perm: u32,
    /// Hard links (for directories: 2 + subdirectories).
    pub nlink: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (symlinks: target length).
    pub size: u64,
    /// 512-byte blocks used.
    pub blocks: u64,
    /// Access time, ns since the epoch.
    pub atime: i64,
    /// Modification time, ns.
    pub mtime: i64,
    /// Status change time, ns.
    pub ctime: i64,
    /// Device number.
    pub rdev: u64,
}

impl Attr {
    /// `st_mode`: type bits and permission bits.
    pub fn mode(&self) -> u32 {
        self.kind.type_bits() | self.perm
    }
}

/// A time to set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeSet {
    /// The current time (UTIME_NOW).
    Now,
    /// This time, ns since the epoch.
    At(i64),
}

/// The changes of one setattr; `None` leaves a field alone (UTIME_OMIT).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetAttr {
    /// New permission bits (type bits are ignored).
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New size (truncate or extend with zeros).
    pub size: Option<u64>,
    /// New access time.
    pub atime: Option<TimeSet>,
    /// New modification time.
    pub mtime: Option<TimeSet>,
    /// A change time to restore, applied after everything else (imports
    /// only: root alone may set it, as no system call can).
    pub ctime: Option<i64>,
}

/// One directory entry from readdir.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The child (or the directory itself / its parent for `.` / `..`).
    pub ino: Ino,
    /// The name.
    pub name: Vec<u8>,
    /// The child's type.
    pub kind: Kind,
    /// Pass this to continue after this entry.
    pub cookie: u64,
}

/// How rename treats an existing target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RenameMode {
    /// Replace the target if there is one.
    #[default]
    Replace,
    /// Fail with EEXIST if the target exists (RENAME_NOREPLACE).
    NoReplace,
    /// Swap source and target, which must both exist (RENAME_EXCHANGE).
    Exchange,
    /// Replace the target if there is one and leave a whiteout (a 0/0
    /// character device, as overlayfs reads it) at the source's name
    /// (RENAME_WHITEOUT; needs root).
    Whiteout,
    /// As [`RenameMode::Whiteout`], but fail with EEXIST if the target
    /// exists (RENAME_WHITEOUT | RENAME_NOREPLACE).
    WhiteoutNoReplace,
}

impl RenameMode {
    /// What happens to an existing target, and whether a whiteout is left.
    pub(crate) fn split(self) -> (RenameMode, bool) {
        match self {
            RenameMode::Whiteout => (RenameMode::Replace, true),
            RenameMode::WhiteoutNoReplace => (RenameMode::NoReplace, true),
            other => (other, false),
        }
    }
}

/// How a file is opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenFlags {
    /// For reading.
    pub read: bool,
    /// For writing.
    pub write: bool,
    /// Every write goes to the end.
    pub append: bool,
    /// Cut to zero length on open.
    pub truncate: bool,
}

impl OpenFlags {
    /// For reading only.
    pub const READ: OpenFlags = OpenFlags {
        read: true,
        write: false,
        append: false,
        truncate: false,
    };

    /// From `open(2)` flags.
    pub fn from_libc(flags: i32) -> OpenFlags {
        let acc = flags & libc::O_ACCMODE;
        OpenFlags {
            read: acc == libc::O_RDONLY || acc == libc::O_RDWR,
            write: acc == libc::O_WRONLY || acc == libc::O_RDWR,
            append: flags & libc::O_APPEND != 0,
            truncate: flags & libc::O_TRUNC != 0,
        }
    }
}

/// Filesystem-wide counters for statfs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatFs {
    /// Block size the counts are in.
    pub block_size: u32,
    /// Total blocks of the medium.
    pub blocks: u64,
    /// Free blocks.
    pub blocks_free: u64,
    /// Free blocks for unprivileged users.
    pub blocks_available: u64,
    /// Inodes in use (loaded) plus free.
    pub files: u64,
    /// Free inodes.
    pub files_free: u64,
    /// Longest name.
    pub name_max: u32,
}
