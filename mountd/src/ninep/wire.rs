//! The 9P2000.L wire format: every T-message and R-message, decoded from
//! and encoded to frames (`size[4] type[1] tag[2] body`), little-endian.
//!
//! Decoding never panics and never allocates more than the frame holds:
//! every length is checked against the bytes left before anything is
//! copied. Both directions exist for both kinds of message, so a client
//! (the tests') and the server share one codec.

use bytes::Bytes;

/// The tag of a message that needs none (Tversion).
pub const NOTAG: u16 = 0xffff;
/// "No fid" (Tattach without authentication).
pub const NOFID: u32 = 0xffff_ffff;
/// "No uid" in Tattach's n_uname: use the uname string.
pub const NONUNAME: u32 = 0xffff_ffff;
/// Most names one Twalk may carry.
pub const MAXWELEM: usize = 16;
/// Bytes of the frame header: size, type, tag.
pub const HEADER: usize = 7;
/// Bytes a client sets aside for the Twrite / Rread header: msize less
/// this is the most data one message carries (Linux's P9_IOHDRSZ).
pub const IOHDR: usize = 24;

/// Qid type bits.
pub mod qid_type {
    /// A directory.
    pub const DIR: u8 = 0x80;
    /// A symbolic link.
    pub const SYMLINK: u8 = 0x02;
    /// A plain file (or anything else).
    pub const FILE: u8 = 0x00;
}

/// Tgetattr request / Rgetattr valid bits.
pub mod getattr {
    /// Everything a Linux `stat` reports.
    pub const BASIC: u64 = 0x0000_07ff;
}

/// Tsetattr valid bits.
pub mod setattr {
    /// Set the mode.
    pub const MODE: u32 = 0x1;
    /// Set the owner.
    pub const UID: u32 = 0x2;
    /// Set the group.
    pub const GID: u32 = 0x4;
    /// Set the size.
    pub const SIZE: u32 = 0x8;
    /// Set the access time (to now unless `ATIME_SET`).
    pub const ATIME: u32 = 0x10;
    /// Set the modification time (to now unless `MTIME_SET`).
    pub const MTIME: u32 = 0x20;
    /// Set the change time (to now).
    pub const CTIME: u32 = 0x40;
    /// The access time is given.
    pub const ATIME_SET: u32 = 0x80;
    /// The modification time is given.
    pub const MTIME_SET: u32 = 0x100;
}

/// Tlock / Tgetlock lock types and Rlock statuses.
pub mod lock {
    /// A read (shared) lock.
    pub const RDLCK: u8 = 0;
    /// A write (exclusive) lock.
    pub const WRLCK: u8 = 1;
    /// Unlock.
    pub const UNLCK: u8 = 2;
    /// Tlock flag: the client will wait (it retries on BLOCKED).
    pub const FLAG_BLOCK: u32 = 1;
    /// Granted.
    pub const SUCCESS: u8 = 0;
    /// Held by someone else.
    pub const BLOCKED: u8 = 1;
    /// Failed.
    pub const ERROR: u8 = 2;
}

/// A 9P file identity: type, version and a unique path (the inode).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Qid {
    /// [`qid_type`] bits.
    pub kind: u8,
    /// Changes when the file does.
    pub version: u32,
    /// Unique per file.
    pub path: u64,
}

/// The changes of a Tsetattr.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetattrArgs {
    /// [`setattr`] bits.
    pub valid: u32,
    /// New mode.
    pub mode: u32,
    /// New owner.
    pub uid: u32,
    /// New group.
    pub gid: u32,
    /// New size.
    pub size: u64,
    /// Access time, seconds.
    pub atime_sec: u64,
    /// Access time, nanoseconds.
    pub atime_nsec: u64,
    /// Modification time, seconds.
    pub mtime_sec: u64,
    /// Modification time, nanoseconds.
    pub mtime_nsec: u64,
}

/// A byte-range lock as Tlock, Tgetlock and Rgetlock carry it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flock {
    /// [`lock`] type.
    pub kind: u8,
    /// Tlock flags (0 in Tgetlock and Rgetlock).
    pub flags: u32,
    /// First byte.
    pub start: u64,
    /// Bytes covered (0: to the end of the file).
    pub length: u64,
    /// The locking process on the client.
    pub proc_id: u32,
    /// The client's name.
    pub client_id: Vec<u8>,
}

/// Everything Rgetattr reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    /// Which fields are valid ([`getattr`] bits).
    pub valid: u64,
    /// The file's qid.
    pub qid: Qid,
    /// Type and permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Hard links.
    pub nlink: u64,
    /// Device number.
    pub rdev: u64,
    /// Size in bytes.
    pub size: u64,
    /// Preferred I/O size.
    pub blksize: u64,
    /// 512-byte blocks.
    pub blocks: u64,
    /// Access time (seconds, nanoseconds).
    pub atime: (u64, u64),
    /// Modification time.
    pub mtime: (u64, u64),
    /// Change time.
    pub ctime: (u64, u64),
}

/// Rstatfs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatfsReply {
    /// Filesystem type magic.
    pub kind: u32,
    /// Block size.
    pub bsize: u32,
    /// Total blocks.
    pub blocks: u64,
    /// Free blocks.
    pub bfree: u64,
    /// Blocks free to unprivileged users.
    pub bavail: u64,
    /// Inodes.
    pub files: u64,
    /// Free inodes.
    pub ffree: u64,
    /// Filesystem id.
    pub fsid: u64,
    /// Longest name.
    pub namelen: u32,
}

/// A request. Fields are named as in the 9P2000.L specification.
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tmsg {
    /// Negotiates msize and version; resets the session.
    Version { msize: u32, version: Vec<u8> },
    /// Asks for an authentication fid.
    Auth {
        afid: u32,
        uname: Vec<u8>,
        aname: Vec<u8>,
        n_uname: u32,
    },
    /// Attaches `fid` to the root of export `aname` as a user.
    Attach {
        fid: u32,
        afid: u32,
        uname: Vec<u8>,
        aname: Vec<u8>,
        n_uname: u32,
    },
    /// Cancels request `oldtag`.
    Flush { oldtag: u16 },
    /// Walks `names` from `fid`; `newfid` names the result.
    Walk {
        fid: u32,
        newfid: u32,
        names: Vec<Vec<u8>>,
    },
    /// Opens `fid` with Linux open flags.
    Lopen { fid: u32, flags: u32 },
    /// Creates and opens `name` in directory `fid`, which becomes the file.
    Lcreate {
        fid: u32,
        name: Vec<u8>,
        flags: u32,
        mode: u32,
        gid: u32,
    },
    /// Reads `count` bytes at `offset`.
    Read { fid: u32, offset: u64, count: u32 },
    /// Writes `data` at `offset`.
    Write { fid: u32, offset: u64, data: Bytes },
    /// Forgets `fid`.
    Clunk { fid: u32 },
    /// Removes the file of `fid` and forgets the fid.
    Remove { fid: u32 },
    /// Attributes of `fid`.
    Getattr { fid: u32, mask: u64 },
    /// Changes attributes of `fid`.
    Setattr { fid: u32, set: SetattrArgs },
    /// Directory entries after `offset`, at most `count` bytes of them.
    Readdir { fid: u32, offset: u64, count: u32 },
    /// Makes the file durable.
    Fsync { fid: u32, datasync: u32 },
    /// Creates directory `name` in `dfid`.
    Mkdir {
        dfid: u32,
        name: Vec<u8>,
        mode: u32,
        gid: u32,
    },
    /// Creates symlink `name` → `target` in `fid`.
    Symlink {
        fid: u32,
        name: Vec<u8>,
        target: Vec<u8>,
        gid: u32,
    },
    /// Creates a device, fifo or socket node.
    Mknod {
        dfid: u32,
        name: Vec<u8>,
        mode: u32,
        major: u32,
        minor: u32,
        gid: u32,
    },
    /// Moves the file of `fid` to `dfid`/`name`.
    Rename { fid: u32, dfid: u32, name: Vec<u8> },
    /// Moves `olddir`/`oldname` to `newdir`/`newname`.
    Renameat {
        olddir: u32,
        oldname: Vec<u8>,
        newdir: u32,
        newname: Vec<u8>,
    },
    /// Removes `name` from `dfid` (`flags` 0x200: a directory).
    Unlinkat {
        dfid: u32,
        name: Vec<u8>,
        flags: u32,
    },
    /// A symlink's target.
    Readlink { fid: u32 },
    /// Links the file of `fid` as `dfid`/`name`.
    Link { dfid: u32, fid: u32, name: Vec<u8> },
    /// Opens extended attribute `name` (empty: the list) of `fid` as `newfid`.
    Xattrwalk {
        fid: u32,
        newfid: u32,
        name: Vec<u8>,
    },
    /// Turns `fid` into a writer of extended attribute `name`.
    Xattrcreate {
        fid: u32,
        name: Vec<u8>,
        size: u64,
        flags: u32,
    },
    /// Filesystem counters.
    Statfs { fid: u32 },
    /// Takes or releases a byte-range lock.
    Lock { fid: u32, lock: Flock },
    /// Tests for a conflicting lock.
    Getlock { fid: u32, lock: Flock },
}

/// The names of the requests, in the order [`Tmsg::kind`] numbers them.
pub const TMSG_NAMES: [&str; 28] = [
    "version",
    "auth",
    "attach",
    "flush",
    "walk",
    "lopen",
    "lcreate",
    "read",
    "write",
    "clunk",
    "remove",
    "getattr",
    "setattr",
    "readdir",
    "fsync",
    "mkdir",
    "symlink",
    "mknod",
    "rename",
    "renameat",
    "unlinkat",
    "readlink",
    "link",
    "xattrwalk",
    "xattrcreate",
    "statfs",
    "lock",
    "getlock",
];

impl Tmsg {
    /// The request's kind: its index in [`TMSG_NAMES`].
    pub fn kind(&self) -> usize {
        match self {
            Tmsg::Version { .. } => 0,
            Tmsg::Auth { .. } => 1,
            Tmsg::Attach { .. } => 2,
            Tmsg::Flush { .. } => 3,
            Tmsg::Walk { .. } => 4,
            Tmsg::Lopen { .. } => 5,
            Tmsg::Lcreate { .. } => 6,
            Tmsg::Read { .. } => 7,
            Tmsg::Write { .. } => 8,
            Tmsg::Clunk { .. } => 9,
            Tmsg::Remove { .. } => 10,
            Tmsg::Getattr { .. } => 11,
            Tmsg::Setattr { .. } => 12,
            Tmsg::Readdir { .. } => 13,
            Tmsg::Fsync { .. } => 14,
            Tmsg::Mkdir { .. } => 15,
            Tmsg::Symlink { .. } => 16,
            Tmsg::Mknod { .. } => 17,
            Tmsg::Rename { .. } => 18,
            Tmsg::Renameat { .. } => 19,
            Tmsg::Unlinkat { .. } => 20,
            Tmsg::Readlink { .. } => 21,
            Tmsg::Link { .. } => 22,
            Tmsg::Xattrwalk { .. } => 23,
            Tmsg::Xattrcreate { .. } => 24,
            Tmsg::Statfs { .. } => 25,
            Tmsg::Lock { .. } => 26,
            Tmsg::Getlock { .. } => 27,
        }
    }
}

/// A reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rmsg {
    /// The negotiated msize and version.
    Version {
        /// Largest frame either side sends.
        msize: u32,
        /// "9P2000.L", or "unknown".
        version: Vec<u8>,
    },
    /// The authentication qid.
    Auth(Qid),
    /// The root's qid.
    Attach(Qid),
    /// An error number (Linux values).
    Lerror(u32),
    /// The flushed request is answered or gone.
    Flush,
    /// One qid per name walked.
    Walk(Vec<Qid>),
    /// The opened file's qid and the largest I/O (0: msize - 24).
    Lopen(Qid, u32),
    /// The created file's qid and iounit.
    Lcreate(Qid, u32),
    /// Bytes read.
    Read(Vec<u8>),
    /// Bytes written.
    Write(u32),
    /// Clunked.
    Clunk,
    /// Removed.
    Remove,
    /// Attributes.
    Getattr(Box<Stat>),
    /// Changed.
    Setattr,
    /// Encoded directory entries (see [`push_dirent`]).
    Readdir(Vec<u8>),
    /// Durable.
    Fsync,
    /// The new directory's qid.
    Mkdir(Qid),
    /// The new symlink's qid.
    Symlink(Qid),
    /// The new node's qid.
    Mknod(Qid),
    /// Moved.
    Rename,
    /// Moved.
    Renameat,
    /// Removed.
    Unlinkat,
    /// The target.
    Readlink(Vec<u8>),
    /// Linked.
    Link,
    /// The attribute's (or list's) size.
    Xattrwalk(u64),
    /// Ready for the value.
    Xattrcreate,
    /// Counters.
    Statfs(StatfsReply),
    /// A [`lock`] status.
    Lock(u8),
    /// The conflicting lock, or type UNLCK.
    Getlock(Flock),
}

/// Why a frame does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The frame ends inside a field.
    #[error("message truncated")]
    Short,
    /// Bytes left over after the last field.
    #[error("{0} bytes after the message")]
    Trailing(usize),
    /// The size field disagrees with the frame.
    #[error("size field {0} does not match the frame")]
    Size(u32),
    /// A message type this side does not take.
    #[error("unknown message type {0}")]
    Unknown(u8),
    /// More walk names than MAXWELEM.
    #[error("walk of {0} names (at most 16)")]
    TooManyNames(usize),
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::Short)?;
        let out = self.buf.get(self.pos..end).ok_or(WireError::Short)?;
        self.pos = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        let mut a = [0; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn str(&mut self) -> Result<Vec<u8>, WireError> {
        let n = self.u16()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    fn qid(&mut self) -> Result<Qid, WireError> {
        Ok(Qid {
            kind: self.u8()?,
            version: self.u32()?,
            path: self.u64()?,
        })
    }
    fn flock(&mut self, with_flags: bool) -> Result<Flock, WireError> {
        Ok(Flock {
            kind: self.u8()?,
            flags: if with_flags { self.u32()? } else { 0 },
            start: self.u64()?,
            length: self.u64()?,
            proc_id: self.u32()?,
            client_id: self.str()?,
        })
    }
    fn time(&mut self) -> Result<(u64, u64), WireError> {
        Ok((self.u64()?, self.u64()?))
    }
    fn finish(&self) -> Result<(), WireError> {
        match self.buf.len() - self.pos {
            0 => Ok(()),
            n => Err(WireError::Trailing(n)),
        }
    }
}

/// Reads the header of a whole frame: its type and tag.
fn header(frame: &[u8]) -> Result<(u8, u16), WireError> {
    let mut r = Reader { buf: frame, pos: 0 };
    let size = r.u32()?;
    if size as usize != frame.len() {
        return Err(WireError::Size(size));
    }
    Ok((r.u8()?, r.u16()?))
}

/// The tag of a frame whose header is intact (to answer a bad body).
pub fn frame_tag(frame: &[u8]) -> Option<u16> {
    header(frame).ok().map(|(_, tag)| tag)
}

/// Decodes a whole request frame (size field included) into its tag and message.
pub fn decode_t(frame: Bytes) -> Result<(u16, Tmsg), WireError> {
    let (kind, tag) = header(&frame)?;
    let mut r = Reader {
        buf: &frame,
        pos: HEADER,
    };
    let msg = match kind {
        100 => Tmsg::Version {
            msize: r.u32()?,
            version: r.str()?,
        },
        102 => Tmsg::Auth {
            afid: r.u32()?,
            uname: r.str()?,
            aname: r.str()?,
            n_uname: r.u32()?,
        },
        104 => Tmsg::Attach {
            fid: r.u32()?,
            afid: r.u32()?,
            uname: r.str()?,
            aname: r.str()?,
            n_uname: r.u32()?,
        },
        108 => Tmsg::Flush { oldtag: r.u16()? },
        110 => {
            let fid = r.u32()?;
            let newfid = r.u32()?;
            let n = r.u16()? as usize;
            if n > MAXWELEM {
                return Err(WireError::TooManyNames(n));
            }
            let mut names = Vec::with_capacity(n);
            for _ in 0..n {
                names.push(r.str()?);
            }
            Tmsg::Walk { fid, newfid, names }
        }
        12 => Tmsg::Lopen {
            fid: r.u32()?,
            flags: r.u32()?,
        },
        14 => Tmsg::Lcreate {
            fid: r.u32()?,
            name: r.str()?,
            flags: r.u32()?,
            mode: r.u32()?,
            gid: r.u32()?,
        },
        116 => Tmsg::Read {
            fid: r.u32()?,
            offset: r.u64()?,
            count: r.u32()?,
        },
        118 => {
            let fid = r.u32()?;
            let offset = r.u64()?;
            let count = r.u32()? as usize;
            let start = r.pos;
            r.take(count)?;
            Tmsg::Write {
                fid,
                offset,
                data: frame.slice(start..start + count),
            }
        }
        120 => Tmsg::Clunk { fid: r.u32()? },
        122 => Tmsg::Remove { fid: r.u32()? },
        24 => Tmsg::Getattr {
            fid: r.u32()?,
            mask: r.u64()?,
        },
        26 => Tmsg::Setattr {
            fid: r.u32()?,
            set: SetattrArgs {
                valid: r.u32()?,
                mode: r.u32()?,
                uid: r.u32()?,
                gid: r.u32()?,
                size: r.u64()?,
                atime_sec: r.u64()?,
                atime_nsec: r.u64()?,
                mtime_sec: r.u64()?,
                mtime_nsec: r.u64()?,
            },
        },
        40 => Tmsg::Readdir {
            fid: r.u32()?,
            offset: r.u64()?,
            count: r.u32()?,
        },
        50 => Tmsg::Fsync {
            fid: r.u32()?,
            datasync: r.u32()?,
        },
        72 => Tmsg::Mkdir {
            dfid: r.u32()?,
            name: r.str()?,
            mode: r.u32()?,
            gid: r.u32()?,
        },
        16 => Tmsg::Symlink {
            fid: r.u32()?,
            name: r.str()?,
            target: r.str()?,
            gid: r.u32()?,
        },
        18 => Tmsg::Mknod {
            dfid: r.u32()?,
            name: r.str()?,
            mode: r.u32()?,
            major: r.u32()?,
            minor: r.u32()?,
            gid: r.u32()?,
        },
        20 => Tmsg::Rename {
            fid: r.u32()?,
            dfid: r.u32()?,
            name: r.str()?,
        },
        74 => Tmsg::Renameat {
            olddir: r.u32()?,
            oldname: r.str()?,
            newdir: r.u32()?,
            newname: r.str()?,
        },
        76 => Tmsg::Unlinkat {
            dfid: r.u32()?,
            name: r.str()?,
            flags: r.u32()?,
        },
        22 => Tmsg::Readlink { fid: r.u32()? },
        70 => Tmsg::Link {
            dfid: r.u32()?,
            fid: r.u32()?,
            name: r.str()?,
        },
        30 => Tmsg::Xattrwalk {
            fid: r.u32()?,
            newfid: r.u32()?,
            name: r.str()?,
        },
        32 => Tmsg::Xattrcreate {
            fid: r.u32()?,
            name: r.str()?,
            size: r.u64()?,
            flags: r.u32()?,
        },
        8 => Tmsg::Statfs { fid: r.u32()? },
        52 => Tmsg::Lock {
            fid: r.u32()?,
            lock: r.flock(true)?,
        },
        54 => Tmsg::Getlock {
            fid: r.u32()?,
            lock: r.flock(false)?,
        },
        other => return Err(WireError::Unknown(other)),
    };
    r.finish()?;
    Ok((tag, msg))
}

/// Builds one frame: reserves the header, fills it in at the end.
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn new(kind: u8, tag: u16, capacity: usize) -> Writer {
        let mut buf = Vec::with_capacity(HEADER + capacity);
        buf.extend_from_slice(&[0, 0, 0, 0, kind]);
        buf.extend_from_slice(&tag.to_le_bytes());
        Writer { buf }
    }
    fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A string; longer than 65535 bytes is cut (no name or xattr name is).
    fn str(&mut self, s: &[u8]) -> &mut Self {
        let n = s.len().min(u16::MAX as usize);
        self.u16(n as u16);
        self.buf.extend_from_slice(&s[..n]);
        self
    }
    fn data(&mut self, d: &[u8]) -> &mut Self {
        self.u32(d.len() as u32);
        self.buf.extend_from_slice(d);
        self
    }
    fn qid(&mut self, q: &Qid) -> &mut Self {
        self.u8(q.kind).u32(q.version).u64(q.path)
    }
    fn flock(&mut self, l: &Flock, with_flags: bool) -> &mut Self {
        self.u8(l.kind);
        if with_flags {
            self.u32(l.flags);
        }
        self.u64(l.start)
            .u64(l.length)
            .u32(l.proc_id)
            .str(&l.client_id)
    }
    fn done(mut self) -> Vec<u8> {
        let size = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&size.to_le_bytes());
        self.buf
    }
}

/// Appends one Rreaddir entry to `out`.
pub fn push_dirent(out: &mut Vec<u8>, qid: &Qid, offset: u64, kind: u8, name: &[u8]) {
    out.push(qid.kind);
    out.extend_from_slice(&qid.version.to_le_bytes());
    out.extend_from_slice(&qid.path.to_le_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(name);
}

/// Bytes one Rreaddir entry of `name` takes.
pub fn dirent_len(name: &[u8]) -> usize {
    13 + 8 + 1 + 2 + name.len()
}

/// One entry of an Rreaddir body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dirent {
    /// The entry's qid.
    pub qid: Qid,
    /// Pass as the next Treaddir offset to continue after it.
    pub offset: u64,
    /// DT_* type.
    pub kind: u8,
    /// The name.
    pub name: Vec<u8>,
}

/// Decodes an Rreaddir body.
pub fn parse_dirents(data: &[u8]) -> Result<Vec<Dirent>, WireError> {
    let mut r = Reader { buf: data, pos: 0 };
    let mut out = Vec::new();
    while r.pos < data.len() {
        out.push(Dirent {
            qid: r.qid()?,
            offset: r.u64()?,
            kind: r.u8()?,
            name: r.str()?,
        });
    }
    Ok(out)
}

/// Encodes a reply as a head and a body to send after it: the body is
/// the data of an Rread or Rreaddir (sent without copying), else empty.
pub fn encode_r_parts(tag: u16, msg: &Rmsg) -> (Vec<u8>, &[u8]) {
    match msg {
        Rmsg::Read(d) | Rmsg::Readdir(d) => {
            let mut w = Writer::new(r_type(msg), tag, 4);
            w.u32(d.len() as u32);
            let mut head = w.buf;
            let size = (head.len() + d.len()) as u32;
            head[..4].copy_from_slice(&size.to_le_bytes());
            (head, d)
        }
        _ => (encode_r(tag, msg), &[]),
    }
}

/// Encodes a reply frame.
pub fn encode_r(tag: u16, msg: &Rmsg) -> Vec<u8> {
    let (kind, cap) = match msg {
        Rmsg::Read(d) | Rmsg::Readdir(d) => (r_type(msg), 4 + d.len()),
        _ => (r_type(msg), 64),
    };
    let mut w = Writer::new(kind, tag, cap);
    match msg {
        Rmsg::Version { msize, version } => {
            w.u32(*msize).str(version);
        }
        Rmsg::Auth(q) | Rmsg::Attach(q) | Rmsg::Mkdir(q) | Rmsg::Symlink(q) | Rmsg::Mknod(q) => {
            w.qid(q);
        }
        Rmsg::Lerror(e) => {
            w.u32(*e);
        }
        Rmsg::Walk(qids) => {
            w.u16(qids.len() as u16);
            for q in qids {
                w.qid(q);
            }
        }
        Rmsg::Lopen(q, iounit) | Rmsg::Lcreate(q, iounit) => {
            w.qid(q).u32(*iounit);
        }
        Rmsg::Read(d) | Rmsg::Readdir(d) => {
            w.data(d);
        }
        Rmsg::Write(n) => {
            w.u32(*n);
        }
        Rmsg::Getattr(s) => {
            w.u64(s.valid)
                .qid(&s.qid)
                .u32(s.mode)
                .u32(s.uid)
                .u32(s.gid)
                .u64(s.nlink)
                .u64(s.rdev)
                .u64(s.size)
                .u64(s.blksize)
                .u64(s.blocks);
            for (sec, nsec) in [s.atime, s.mtime, s.ctime, (0, 0)] {
                w.u64(sec).u64(nsec);
            }
            w.u64(0).u64(0);
        }
        Rmsg::Readlink(t) => {
            w.str(t);
        }
        Rmsg::Xattrwalk(n) => {
            w.u64(*n);
        }
        Rmsg::Statfs(s) => {
            w.u32(s.kind)
                .u32(s.bsize)
                .u64(s.blocks)
                .u64(s.bfree)
                .u64(s.bavail)
                .u64(s.files)
                .u64(s.ffree)
                .u64(s.fsid)
                .u32(s.namelen);
        }
        Rmsg::Lock(status) => {
            w.u8(*status);
        }
        Rmsg::Getlock(l) => {
            w.flock(l, false);
        }
        Rmsg::Flush
        | Rmsg::Clunk
        | Rmsg::Remove
        | Rmsg::Setattr
        | Rmsg::Fsync
        | Rmsg::Rename
        | Rmsg::Renameat
        | Rmsg::Unlinkat
        | Rmsg::Link
        | Rmsg::Xattrcreate => {}
    }
    w.done()
}

fn r_type(msg: &Rmsg) -> u8 {
    match msg {
        Rmsg::Lerror(_) => 7,
        Rmsg::Statfs(_) => 9,
        Rmsg::Lopen(..) => 13,
        Rmsg::Lcreate(..) => 15,
        Rmsg::Symlink(_) => 17,
        Rmsg::Mknod(_) => 19,
        Rmsg::Rename => 21,
        Rmsg::Readlink(_) => 23,
        Rmsg::Getattr(_) => 25,
        Rmsg::Setattr => 27,
        Rmsg::Xattrwalk(_) => 31,
        Rmsg::Xattrcreate => 33,
        Rmsg::Readdir(_) => 41,
        Rmsg::Fsync => 51,
        Rmsg::Lock(_) => 53,
        Rmsg::Getlock(_) => 55,
        Rmsg::Link => 71,
        Rmsg::Mkdir(_) => 73,
        Rmsg::Renameat => 75,
        Rmsg::Unlinkat => 77,
        Rmsg::Version { .. } => 101,
        Rmsg::Auth(_) => 103,
        Rmsg::Attach(_) => 105,
        Rmsg::Flush => 109,
        Rmsg::Walk(_) => 111,
        Rmsg::Read(_) => 117,
        Rmsg::Write(_) => 119,
        Rmsg::Clunk => 121,
        Rmsg::Remove => 123,
    }
}

/// Encodes a request frame (for clients and tests).
pub fn encode_t(tag: u16, msg: &Tmsg) -> Vec<u8> {
    let (kind, cap) = match msg {
        Tmsg::Write { data, .. } => (t_type(msg), 16 + data.len()),
        _ => (t_type(msg), 64),
    };
    let mut w = Writer::new(kind, tag, cap);
    match msg {
        Tmsg::Version { msize, version } => {
            w.u32(*msize).str(version);
        }
        Tmsg::Auth {
            afid,
            uname,
            aname,
            n_uname,
        } => {
            w.u32(*afid).str(uname).str(aname).u32(*n_uname);
        }
        Tmsg::Attach {
            fid,
            afid,
            uname,
            aname,
            n_uname,
        } => {
            w.u32(*fid).u32(*afid).str(uname).str(aname).u32(*n_uname);
        }
        Tmsg::Flush { oldtag } => {
            w.u16(*oldtag);
        }
        Tmsg::Walk { fid, newfid, names } => {
            w.u32(*fid).u32(*newfid).u16(names.len() as u16);
            for n in names {
                w.str(n);
            }
        }
        Tmsg::Lopen { fid, flags } => {
            w.u32(*fid).u32(*flags);
        }
        Tmsg::Lcreate {
            fid,
            name,
            flags,
            mode,
            gid,
        } => {
            w.u32(*fid).str(name).u32(*flags).u32(*mode).u32(*gid);
        }
        Tmsg::Read { fid, offset, count } | Tmsg::Readdir { fid, offset, count } => {
            w.u32(*fid).u64(*offset).u32(*count);
        }
        Tmsg::Write { fid, offset, data } => {
            w.u32(*fid).u64(*offset).data(data);
        }
        Tmsg::Clunk { fid }
        | Tmsg::Remove { fid }
        | Tmsg::Readlink { fid }
        | Tmsg::Statfs { fid } => {
            w.u32(*fid);
        }
        Tmsg::Getattr { fid, mask } => {
            w.u32(*fid).u64(*mask);
        }
        Tmsg::Setattr { fid, set } => {
            w.u32(*fid)
                .u32(set.valid)
                .u32(set.mode)
                .u32(set.uid)
                .u32(set.gid)
                .u64(set.size)
                .u64(set.atime_sec)
                .u64(set.atime_nsec)
                .u64(set.mtime_sec)
                .u64(set.mtime_nsec);
        }
        Tmsg::Fsync { fid, datasync } => {
            w.u32(*fid).u32(*datasync);
        }
        Tmsg::Mkdir {
            dfid,
            name,
            mode,
            gid,
        } => {
            w.u32(*dfid).str(name).u32(*mode).u32(*gid);
        }
        Tmsg::Symlink {
            fid,
            name,
            target,
            gid,
        } => {
            w.u32(*fid).str(name).str(target).u32(*gid);
        }
        Tmsg::Mknod {
            dfid,
            name,
            mode,
            major,
            minor,
            gid,
        } => {
            w.u32(*dfid)
                .str(name)
                .u32(*mode)
                .u32(*major)
                .u32(*minor)
                .u32(*gid);
        }
        Tmsg::Rename { fid, dfid, name } => {
            w.u32(*fid).u32(*dfid).str(name);
        }
        Tmsg::Renameat {
            olddir,
            oldname,
            newdir,
            newname,
        } => {
            w.u32(*olddir).str(oldname).u32(*newdir).str(newname);
        }
        Tmsg::Unlinkat { dfid, name, flags } => {
            w.u32(*dfid).str(name).u32(*flags);
        }
        Tmsg::Link { dfid, fid, name } => {
            w.u32(*dfid).u32(*fid).str(name);
        }
        Tmsg::Xattrwalk { fid, newfid, name } => {
            w.u32(*fid).u32(*newfid).str(name);
        }
        Tmsg::Xattrcreate {
            fid,
            name,
            size,
            flags,
        } => {
            w.u32(*fid).str(name).u64(*size).u32(*flags);
        }
        Tmsg::Lock { fid, lock } => {
            w.u32(*fid).flock(lock, true);
        }
        Tmsg::Getlock { fid, lock } => {
            w.u32(*fid).flock(lock, false);
        }
    }
    w.done()
}

fn t_type(msg: &Tmsg) -> u8 {
    match msg {
        Tmsg::Statfs { .. } => 8,
        Tmsg::Lopen { .. } => 12,
        Tmsg::Lcreate { .. } => 14,
        Tmsg::Symlink { .. } => 16,
        Tmsg::Mknod { .. } => 18,
        Tmsg::Rename { .. } => 20,
        Tmsg::Readlink { .. } => 22,
        Tmsg::Getattr { .. } => 24,
        Tmsg::Setattr { .. } => 26,
        Tmsg::Xattrwalk { .. } => 30,
        Tmsg::Xattrcreate { .. } => 32,
        Tmsg::Readdir { .. } => 40,
        Tmsg::Fsync { .. } => 50,
        Tmsg::Lock { .. } => 52,
        Tmsg::Getlock { .. } => 54,
        Tmsg::Link { .. } => 70,
        Tmsg::Mkdir { .. } => 72,
        Tmsg::Renameat { .. } => 74,
        Tmsg::Unlinkat { .. } => 76,
        Tmsg::Version { .. } => 100,
        Tmsg::Auth { .. } => 102,
        Tmsg::Attach { .. } => 104,
        Tmsg::Flush { .. } => 108,
        Tmsg::Walk { .. } => 110,
        Tmsg::Read { .. } => 116,
        Tmsg::Write { .. } => 118,
        Tmsg::Clunk { .. } => 120,
        Tmsg::Remove { .. } => 122,
    }
}

/// Decodes a whole reply frame into its tag and message (for clients and tests).
pub fn decode_r(frame: &[u8]) -> Result<(u16, Rmsg), WireError> {
    let (kind, tag) = header(frame)?;
    let mut r = Reader {
        buf: frame,
        pos: HEADER,
    };
    let msg = match kind {
        7 => Rmsg::Lerror(r.u32()?),
        9 => Rmsg::Statfs(StatfsReply {
            kind: r.u32()?,
            bsize: r.u32()?,
            blocks: r.u64()?,
            bfree: r.u64()?,
            bavail: r.u64()?,
            files: r.u64()?,
            ffree: r.u64()?,
            fsid: r.u64()?,
            namelen: r.u32()?,
        }),
        13 => Rmsg::Lopen(r.qid()?, r.u32()?),
        15 => Rmsg::Lcreate(r.qid()?, r.u32()?),
        17 => Rmsg::Symlink(r.qid()?),
        19 => Rmsg::Mknod(r.qid()?),
        21 => Rmsg::Rename,
        23 => Rmsg::Readlink(r.str()?),
        25 => {
            let mut s = Stat {
                valid: r.u64()?,
                qid: r.qid()?,
                mode: r.u32()?,
                uid: r.u32()?,
                gid: r.u32()?,
                nlink: r.u64()?,
                rdev: r.u64()?,
                size: r.u64()?,
                blksize: r.u64()?,
                blocks: r.u64()?,
                ..Stat::default()
            };
            s.atime = r.time()?;
            s.mtime = r.time()?;
            s.ctime = r.time()?;
            r.time()?; // btime
            r.time()?; // gen, data_version
            Rmsg::Getattr(Box::new(s))
        }
        27 => Rmsg::Setattr,
        31 => Rmsg::Xattrwalk(r.u64()?),
        33 => Rmsg::Xattrcreate,
        41 | 117 => {
            let n = r.u32()? as usize;
            let d = r.take(n)?.to_vec();
            if kind == 41 {
                Rmsg::Readdir(d)
            } else {
                Rmsg::Read(d)
            }
        }
        51 => Rmsg::Fsync,
        53 => Rmsg::Lock(r.u8()?),
        55 => Rmsg::Getlock(r.flock(false)?),
        71 => Rmsg::Link,
        73 => Rmsg::Mkdir(r.qid()?),
        75 => Rmsg::Renameat,
        77 => Rmsg::Unlinkat,
        101 => Rmsg::Version {
            msize: r.u32()?,
            version: r.str()?,
        },
        103 => Rmsg::Auth(r.qid()?),
        105 => Rmsg::Attach(r.qid()?),
        109 => Rmsg::Flush,
        111 => {
            let n = r.u16()? as usize;
            if n > MAXWELEM {
                return Err(WireError::TooManyNames(n));
            }
            let mut qids = Vec::with_capacity(n);
            for _ in 0..n {
                qids.push(r.qid()?);
            }
            Rmsg::Walk(qids)
        }
        119 => Rmsg::Write(r.u32()?),
        121 => Rmsg::Clunk,
        123 => Rmsg::Remove,
        other => return Err(WireError::Unknown(other)),
    };
    r.finish()?;
    Ok((tag, msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_t() -> Vec<Tmsg> {
        let lock = Flock {
            kind: lock::WRLCK,
            flags: 1,
            start: 10,
            length: 20,
            proc_id: 7,
            client_id: b"host".to_vec(),
        };
        vec![
            Tmsg::Version {
                msize: 1 << 20,
                version: b"9P2000.L".to_vec(),
            },
            Tmsg::Attach {
                fid: 1,
                afid: NOFID,
                uname: b"root".to_vec(),
                aname: b"fs@3".to_vec(),
                n_uname: 0,
            },
            Tmsg::Walk {
                fid: 1,
                newfid: 2,
                names: vec![b"a".to_vec(), b"b".to_vec()],
            },
            Tmsg::Write {
                fid: 2,
                offset: 99,
                data: Bytes::from_static(b"hello"),
            },
            Tmsg::Setattr {
                fid: 2,
                set: SetattrArgs {
                    valid: setattr::SIZE | setattr::MTIME,
                    size: 5,
                    ..SetattrArgs::default()
                },
            },
            Tmsg::Lock {
                fid: 2,
                lock: lock.clone(),
            },
            Tmsg::Getlock {
                fid: 2,
                lock: Flock { flags: 0, ..lock },
            },
            Tmsg::Renameat {
                olddir: 1,
                oldname: b"x".to_vec(),
                newdir: 3,
                newname: b"y".to_vec(),
            },
        ]
    }

    #[test]
    fn requests_round_trip() {
        for (i, msg) in sample_t().into_iter().enumerate() {
            let frame = encode_t(i as u16, &msg);
            let (tag, back) = decode_t(Bytes::from(frame)).expect("decodes");
            assert_eq!((tag, back), (i as u16, msg));
        }
    }

    #[test]
    fn replies_round_trip() {
        let stat = Stat {
            valid: getattr::BASIC,
            qid: Qid {
                kind: qid_type::DIR,
                version: 3,
                path: 1,
            },
            mode: 0o40755,
            nlink: 2,
            atime: (1, 2),
            mtime: (3, 4),
            ctime: (5, 6),
            ..Stat::default()
        };
        let mut dirents = Vec::new();
        push_dirent(&mut dirents, &stat.qid, 1, 4, b".");
        let read = Rmsg::Read(b"abc".to_vec());
        let (head, body) = encode_r_parts(9, &read);
        assert_eq!(
            [head, body.to_vec()].concat(),
            encode_r(9, &Rmsg::Read(b"abc".to_vec()))
        );
        for msg in [
            Rmsg::Lerror(2),
            Rmsg::Getattr(Box::new(stat)),
            Rmsg::Read(b"data".to_vec()),
            Rmsg::Readdir(dirents.clone()),
            Rmsg::Walk(vec![Qid::default(); 3]),
            Rmsg::Lock(lock::BLOCKED),
        ] {
            let frame = encode_r(5, &msg);
            assert_eq!(decode_r(&frame).expect("decodes"), (5, msg));
        }
        assert_eq!(parse_dirents(&dirents).expect("parses")[0].name, b".");
    }

    #[test]
    fn every_truncation_of_every_request_is_an_error() {
        for msg in sample_t() {
            let frame = encode_t(1, &msg);
            for cut in 0..frame.len() {
                let mut short = frame[..cut].to_vec();
                if short.len() >= 4 {
                    // A consistent size field, so the body is what is short.
                    let n = short.len() as u32;
                    short[..4].copy_from_slice(&n.to_le_bytes());
                }
                assert!(
                    decode_t(Bytes::from(short)).is_err(),
                    "{msg:?} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn hostile_lengths_are_refused_without_allocating() {
        // A walk claiming 65535 names, and a write claiming 4 GiB of data.
        let mut walk = encode_t(
            1,
            &Tmsg::Walk {
                fid: 1,
                newfid: 2,
                names: Vec::new(),
            },
        );
        let n = walk.len();
        walk[n - 2..].copy_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(
            decode_t(Bytes::from(walk)),
            Err(WireError::TooManyNames(65535))
        );
        let mut write = encode_t(
            1,
            &Tmsg::Write {
                fid: 1,
                offset: 0,
                data: Bytes::new(),
            },
        );
        let n = write.len();
        write[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_t(Bytes::from(write)), Err(WireError::Short));
        assert_eq!(
            decode_t(Bytes::from_static(&[9, 0, 0, 0, 200, 1, 0, 0, 0])),
            Err(WireError::Unknown(200))
        );
    }
}
