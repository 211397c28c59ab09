//! `hydra-fs`: the filesystem core over the block DAG.
//!
//! [`Fs`] implements every POSIX operation the FUSE and 9P front ends
//! translate into: inodes with stable numbers, real hard links, xattrs,
//! permission checks for a [`Caller`], a write-back overlay and commits
//! that store changed nodes bottom-up and move `fs/<name>` by
//! compare-and-swap. Errors map to errno in one place, [`FsError::errno`].
//!
//! ```
//! use hydra_dag::Bucket;
//! use hydra_fs::{Caller, Fs, FsOptions, Ino, OpenFlags};
//!
//! let bucket = Bucket::in_memory();
//! let me = Caller::root();
//! let options = FsOptions { commit_interval: None, ..FsOptions::default() };
//! let fs = Fs::open(bucket.clone(), "demo", &me, options.clone())?;
//! let (attr, fh) = fs.create(Ino::ROOT, b"hello.txt", 0o644, OpenFlags::default(), &me)?;
//! fs.write(fh, 0, b"hello", &me)?;
//! fs.release(fh)?;
//! fs.commit("first")?;
//!
//! let again = Fs::open(bucket, "demo", &me, options)?;
//! let found = again.lookup(Ino::ROOT, b"hello.txt", &me)?;
//! let fh = again.open_file(found.ino, OpenFlags::READ, &me)?;
//! assert_eq!(again.read(fh, 0, 100)?, b"hello");
//! # let _ = attr;
//! # Ok::<(), hydra_fs::FsError>(())
//! ```

mod acl;
mod archive;
mod attr;
mod commit;
mod error;
mod file;
mod follow;
mod fs;
mod import_dir;
mod io;
mod listing;
mod merge;
mod namespace;
pub mod node;
mod path;
mod perm;
mod proof;
mod snapshot;
mod state;
mod trim;
mod xattr;

pub use archive::{ArchiveReport, decompress, export_tar, import_tar};
pub use attr::{Attr, DirEntry, Fh, Ino, OpenFlags, RenameMode, SetAttr, StatFs, TimeSet};
pub use error::{Errno, FsError, FsResult};
pub use follow::Changed;
pub use fs::{Fs, FsOptions, ReadAhead, Seek, check_name};
pub use import_dir::import_dir;
pub use listing::Listed;
pub use merge::{Merged, OnConflict, merge_roots};
pub use node::Kind;
pub use path::{PATH_MAX, components, split_last};
pub use perm::{Caller, Groups};
pub use proof::{PathProof, blob_blocks, entry_tree_blocks, prove_path};
pub use snapshot::{Change, ChangeKind, diff_roots, walk};
pub use trim::{Holds, MAX_INODES};
pub use xattr::{XATTR_CREATE, XATTR_REPLACE};
