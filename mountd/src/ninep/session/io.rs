//! Opening, creating, reading and writing through fids, and listing
//! directories.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use hydra_fs::{DirEntry, FsError, Kind, OpenFlags};

use super::convert::{dt, qid, qid_kind};
use super::{Fid, NpError, NpResult, Opened, Session, release, with_gid};
use crate::ninep::wire::{self, IOHDR, Qid, Rmsg};

impl Session {
    /// Tlopen: opens a walked fid.
    pub(super) fn lopen(&self, fid: u32, flags: u32) -> NpResult<Rmsg> {
        let f = self.fid(fid)?;
        if !matches!(f.opened, Opened::No) {
            return Err(NpError::AlreadyOpen(fid));
        }
        let attr = f.fs.getattr(f.ino)?;
        let flags = OpenFlags::from_libc(flags as i32);
        let fh = f.fs.open_file(f.ino, flags, &f.caller)?;
        let opened = if attr.kind == Kind::Dir {
            Opened::Dir(fh)
        } else {
            Opened::File(fh, flags.write)
        };
        self.set_opened(fid, opened, &f)?;
        Ok(Rmsg::Lopen(qid(&attr), 0))
    }

    /// Records that `fid` is open; if the fid went away meanwhile, the
    /// handle is closed again.
    pub(super) fn set_opened(&self, fid: u32, opened: Opened, f: &Fid) -> NpResult<()> {
        let mut fids = self.fids();
        match fids.get_mut(&fid) {
            Some(entry) => {
                entry.opened = opened;
                Ok(())
            }
            None => {
                drop(fids);
                let _ = release(&Fid {
                    opened,
                    ..f.clone()
                });
                Err(NpError::BadFid(fid))
            }
        }
    }

    /// Tlcreate: creates a file and opens the directory's fid on it.
    pub(super) fn lcreate(
        &self,
        fid: u32,
        name: Vec<u8>,
        flags: u32,
        mode: u32,
        gid: u32,
    ) -> NpResult<Rmsg> {
        let d = self.fid(fid)?;
        if !matches!(d.opened, Opened::No) {
            return Err(NpError::AlreadyOpen(fid));
        }
        let c = with_gid(&d.caller, gid);
        let (attr, fh) = d.fs.create(
            d.ino,
            &name,
            mode & 0o7777,
            OpenFlags::from_libc(flags as i32),
            &c,
        )?;
        let created = Fid {
            ino: attr.ino,
            place: Some((d.ino, Arc::from(name.as_slice()))),
            ..d.clone()
        };
        {
            let mut fids = self.fids();
            if let Some(entry) = fids.get_mut(&fid) {
                *entry = Fid {
                    opened: Opened::File(fh, true),
                    ..created
                };
            } else {
                drop(fids);
                let _ = d.fs.release(fh);
                return Err(NpError::BadFid(fid));
            }
        }
        Ok(Rmsg::Lcreate(qid(&attr), 0))
    }

    /// The most data one Rread or Twrite carries.
    pub(super) fn max_io(&self) -> usize {
        (self.msize.load(Ordering::Relaxed) as usize).saturating_sub(IOHDR)
    }

    /// Tread: file bytes, or an extended attribute being read.
    pub(super) fn read(&self, fid: u32, offset: u64, count: u32) -> NpResult<Rmsg> {
        let f = self.fid(fid)?;
        let count = (count as usize).min(self.max_io());
        match &f.opened {
            Opened::File(fh, _) => Ok(Rmsg::Read(f.fs.read(*fh, offset, count)?)),
            Opened::XattrRead(data) => {
                let start = (offset.min(data.len() as u64)) as usize;
                let end = start.saturating_add(count).min(data.len());
                Ok(Rmsg::Read(data[start..end].to_vec()))
            }
            Opened::Dir(_) => Err(FsError::IsDir.into()),
            _ => Err(NpError::NotOpen(fid)),
        }
    }

    /// Twrite: file bytes, or an extended attribute being written.
    pub(super) fn write(&self, fid: u32, offset: u64, data: Bytes) -> NpResult<Rmsg> {
        let f = self.fid(fid)?;
        match &f.opened {
            Opened::File(fh, _) => {
                let n = f.fs.write(*fh, offset, &data, &f.caller)?;
                Ok(Rmsg::Write(n as u32))
            }
            Opened::XattrWrite(_) => {
                let mut fids = self.fids();
                let Some(Fid {
                    opened: Opened::XattrWrite(x),
                    ..
                }) = fids.get_mut(&fid)
                else {
                    return Err(NpError::NotOpen(fid));
                };
                if offset != x.data.len() as u64 {
                    return Err(FsError::Invalid("extended attribute written out of order").into());
                }
                if x.data.len() as u64 + data.len() as u64 > x.size {
                    return Err(NpError::TooBig);
                }
                x.data.extend_from_slice(&data);
                Ok(Rmsg::Write(data.len() as u32))
            }
            _ => Err(NpError::NotOpen(fid)),
        }
    }

    /// Treaddir: entries from `offset`, as many as fit in `count`.
    pub(super) fn readdir(&self, fid: u32, offset: u64, count: u32) -> NpResult<Rmsg> {
        let f = self.fid(fid)?;
        let room = (count as usize).min(self.max_io());
        let mut out = Vec::with_capacity(room.min(64 << 10));
        // Names and kinds only: attributes would be worked out for nothing.
        let mut add = |e: DirEntry, ()| {
            if out.len() + wire::dirent_len(&e.name) > room {
                return false;
            }
            let q = Qid {
                kind: qid_kind(e.kind),
                version: 0,
                path: e.ino.0,
            };
            wire::push_dirent(&mut out, &q, e.cookie, dt(e.kind), &e.name);
            true
        };
        match f.opened {
            Opened::Dir(fh) => f.fs.readdir_open(fh, offset, &f.caller, &mut add)?,
            _ => {
                f.fs.readdir_with(f.ino, offset, None, &f.caller, &mut add)?;
            }
        }
        Ok(Rmsg::Readdir(out))
    }
}
