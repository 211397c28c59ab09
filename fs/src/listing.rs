//! Directory listings: from a cookie on, a page at a time, and through an
//! open handle, which leaves out names made after its listing began.

use crate::attr::{Attr, DirEntry, Fh, Ino};
use crate::error::{FsError, FsResult};
use crate::fs::{Fs, lock};
use crate::node::Kind;
use crate::perm::{Caller, R};
use crate::state::{FIRST_COOKIE, Name, State};

/// Entries looked up between two attribute passes.
const BATCH: usize = 64;

/// What a listing hands over with each entry: its attributes ([`Attr`]),
/// or nothing more (`()`; the entry has its kind), which spares working
/// them out (a large file's holes are walked for its `st_blocks`).
pub trait Listed: Sized {
    /// Made from attributes worked out elsewhere (a listing a front end
    /// makes up).
    fn from_attr(attr: Attr) -> Self;
    /// The kind of `ino` and what goes with it.
    #[doc(hidden)]
    fn look(s: &mut State, ino: Ino) -> FsResult<(Kind, Self)>;
}

impl Listed for Attr {
    fn from_attr(attr: Attr) -> Self {
        attr
    }

    fn look(s: &mut State, ino: Ino) -> FsResult<(Kind, Self)> {
        let attr = s.attr(ino)?;
        Ok((attr.kind, attr))
    }
}

impl Listed for () {
    fn from_attr(_: Attr) -> Self {}

    fn look(s: &mut State, ino: Ino) -> FsResult<(Kind, Self)> {
        Ok((s.get(ino)?.kind, ()))
    }
}

impl Fs {
    /// Entries of directory `ino` after `cookie` (0 starts at `.`).
    pub fn readdir(&self, ino: Ino, cookie: u64, c: &Caller) -> FsResult<Vec<DirEntry>> {
        let mut out = Vec::new();
        self.readdir_with(ino, cookie, None, c, |e, ()| {
            out.push(e);
            true
        })?;
        Ok(out)
    }

    /// Entries after `cookie` with their attributes.
    pub fn readdir_plus(
        &self,
        ino: Ino,
        cookie: u64,
        c: &Caller,
    ) -> FsResult<Vec<(DirEntry, Attr)>> {
        let mut out = Vec::new();
        self.readdir_with(ino, cookie, None, c, |e, a: Attr| {
            out.push((e, a));
            true
        })?;
        Ok(out)
    }

    /// Lists the directory open as `fh` after `cookie`, handing `add` each
    /// entry and what `T` asks for until it returns false (its buffer is
    /// full). A listing begins at cookie 0 and takes the directory as it is
    /// then: names made later (a rename makes one) are left out until the
    /// next beginning, so renaming every entry while listing ends.
    pub fn readdir_open<T: Listed>(
        &self,
        fh: Fh,
        cookie: u64,
        c: &Caller,
        add: impl FnMut(DirEntry, T) -> bool,
    ) -> FsResult<()> {
        let handle = self.handle(fh)?;
        let (ino, end) = {
            let h = lock(&handle);
            (h.ino, h.listing_end.filter(|_| cookie > 0))
        };
        let next = self.readdir_with(ino, cookie, end, c, add)?;
        let mut h = lock(&handle);
        // A listing continued where the kernel's cache left off began
        // before this first call: bounded from here.
        if cookie == 0 || h.listing_end.is_none() {
            h.listing_end = Some(next);
        }
        Ok(())
    }

    /// Hands `add` the entries of `ino` after `cookie` whose cookies are
    /// below `end`, with what `T` asks for, until it returns false; returns
    /// the cookie the directory's next new name will get.
    pub fn readdir_with<T: Listed>(
        &self,
        ino: Ino,
        cookie: u64,
        end: Option<u64>,
        c: &Caller,
        mut add: impl FnMut(DirEntry, T) -> bool,
    ) -> FsResult<u64> {
        let mut s = self.state_at(&[ino])?;
        let dir = s.get(ino)?;
        if dir.kind != Kind::Dir {
            return Err(FsError::NotDir);
        }
        c.check(&dir.meta, dir.kind, R)?;
        let parent = dir.parent;
        s.load_dir(ino)?;
        let next = s.entries(ino)?.next_cookie();
        let end = end.unwrap_or(next).min(next);
        for (at, name, who) in [(1, &b"."[..], ino), (2, &b".."[..], parent)] {
            if cookie < at {
                let (_, listed) = T::look(&mut s, who)?;
                let entry = DirEntry {
                    ino: who,
                    name: name.to_vec(),
                    kind: Kind::Dir,
                    cookie: at,
                };
                if !add(entry, listed) {
                    return Ok(next);
                }
            }
        }
        let mut from = cookie.max(FIRST_COOKIE - 1) + 1;
        while from < end {
            // Looking up attributes may load inodes and unload others.
            s.load_dir(ino)?;
            let batch: Vec<(u64, Name, Ino)> = {
                let e = s.entries(ino)?;
                e.by_cookie
                    .range(from..end)
                    .take(BATCH)
                    .filter_map(|(ck, name)| e.get(name).map(|child| (*ck, name.clone(), child)))
                    .collect()
            };
            let Some(&(last, _, _)) = batch.last() else {
                break;
            };
            from = last + 1;
            for (ck, name, child) in batch {
                let (kind, listed) = T::look(&mut s, child)?;
                let entry = DirEntry {
                    ino: child,
                    name: name.to_vec(),
                    kind,
                    cookie: ck,
                };
                if !add(entry, listed) {
                    return Ok(next);
                }
            }
        }
        Ok(next)
    }
}
