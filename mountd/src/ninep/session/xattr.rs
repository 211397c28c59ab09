//! Extended attributes over 9P: read through a fid Txattrwalk makes,
//! written through one Txattrcreate turns, and set when it is clunked.

use std::sync::Arc;

use hydra_fs::{FsError, XATTR_CREATE, XATTR_REPLACE};

use super::{Fid, NpError, NpResult, Opened, Session};
use crate::ninep::wire::Rmsg;

/// Largest extended attribute value a client may write (Linux's XATTR_SIZE_MAX).
const XATTR_MAX: u64 = 64 << 10;

/// An extended attribute being written, in pieces, until clunk.
#[derive(Clone, Debug)]
pub(super) struct XattrWrite {
    pub(super) name: Vec<u8>,
    pub(super) size: u64,
    pub(super) flags: i32,
    pub(super) data: Vec<u8>,
}

impl Session {
    /// Txattrwalk: a new fid reading one extended attribute, or the list of names.
    pub(super) fn xattrwalk(&self, fid: u32, newfid: u32, name: &[u8]) -> NpResult<Rmsg> {
        let f = self.fid(fid)?;
        let data = if name.is_empty() {
            let mut list = Vec::new();
            for n in f.fs.listxattr(f.ino, &f.caller)? {
                list.extend_from_slice(&n);
                list.push(0);
            }
            list
        } else {
            f.fs.getxattr(f.ino, name, &f.caller)?
        };
        let size = data.len() as u64;
        let x = Fid {
            opened: Opened::XattrRead(Arc::new(data)),
            ..f
        };
        self.insert(newfid, x, newfid == fid)?;
        Ok(Rmsg::Xattrwalk(size))
    }

    /// Txattrcreate: the fid becomes an extended attribute to write, set on clunk.
    pub(super) fn xattrcreate(
        &self,
        fid: u32,
        name: Vec<u8>,
        size: u64,
        flags: u32,
    ) -> NpResult<Rmsg> {
        if size > XATTR_MAX {
            return Err(NpError::TooBig);
        }
        let f = self.fid(fid)?;
        if f.fs.is_read_only() {
            return Err(FsError::ReadOnly.into());
        }
        if !matches!(f.opened, Opened::No) {
            return Err(NpError::AlreadyOpen(fid));
        }
        let x = XattrWrite {
            name,
            size,
            flags: flags as i32,
            data: Vec::with_capacity(size as usize),
        };
        let mut fids = self.fids();
        let entry = fids.get_mut(&fid).ok_or(NpError::BadFid(fid))?;
        entry.opened = Opened::XattrWrite(x);
        Ok(Rmsg::Xattrcreate)
    }
}

/// Sets the attribute written through `f`, now that it is clunked.
pub(super) fn set(f: &Fid, x: &XattrWrite) -> NpResult<()> {
    if x.data.len() as u64 != x.size {
        return Err(FsError::Invalid("extended attribute shorter than announced").into());
    }
    if x.size == 0 && x.flags & XATTR_CREATE == 0 {
        // Linux sends removexattr as a zero-length create.
        match f.fs.removexattr(f.ino, &x.name, &f.caller) {
            Err(FsError::NoAttribute) if x.flags & XATTR_REPLACE == 0 => {
                f.fs.setxattr(f.ino, &x.name, &[], x.flags, &f.caller)?
            }
            other => other?,
        }
    } else {
        f.fs.setxattr(f.ino, &x.name, &x.data, x.flags, &f.caller)?;
    }
    Ok(())
}
