//! The SQLite VFS `hydra`: main database files are [`PageFile`]s,
//! everything else (journals, temporary files) lives in memory.
//!
//! SQLite's locks map onto snapshots: taking SHARED pins the newest commit
//! (a reader sees one version for its whole transaction); RESERVED takes
//! the one writer slot of the database in this process and fails with
//! SQLITE_BUSY when the pinned snapshot is no longer the newest; the sync
//! at the end of a transaction commits the changed pages with one
//! compare-and-swap. Journals never reach the store: until that commit,
//! the store holds the previous version whole, so a crash loses only the
//! open transaction.
//!
//! `unsafe` is forced here: a VFS is a table of C callbacks that SQLite
//! calls with raw pointers. Soundness rests on SQLite's contract: each
//! `sqlite3_file` it passes was allocated with `szOsFile` bytes (the size
//! of [`File`]), was set up by `x_open` (which writes a `File` there
//! before returning SQLITE_OK and leaves `pMethods` null otherwise), is
//! used by one thread at a time, and is passed to `x_close` exactly once.

#![allow(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use hydra_dag::Bucket;
use rusqlite::ffi;

use crate::pages::{PageFile, Source};

/// The name the VFS is registered under.
pub const VFS_NAME: &CStr = c"hydra";

/// What a database path opened through the VFS stands for.
#[derive(Debug)]
pub struct Target {
    /// Where the pages are.
    pub bucket: Bucket,
    /// Which version(s).
    pub source: Source,
    /// The changelog message of the next commit.
    pub message: Mutex<String>,
    /// The last failure a callback could only report as an error code.
    pub last_error: Mutex<Option<String>>,
}

impl Target {
    fn writer_key(&self) -> Option<(usize, String)> {
        match &self.source {
            Source::Live(name) => Some((self.bucket.id(), name.to_string())),
            Source::At(_) => None,
        }
    }

    fn fail(&self, e: impl std::fmt::Display) {
        *lock(&self.last_error) = Some(e.to_string());
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn targets() -> &'static Mutex<HashMap<String, Arc<Target>>> {
    static T: OnceLock<Mutex<HashMap<String, Arc<Target>>>> = OnceLock::new();
    T.get_or_init(Default::default)
}

/// Databases whose writer slot is taken, by bucket and ref.
fn writers() -> &'static Mutex<HashSet<(usize, String)>> {
    static W: OnceLock<Mutex<HashSet<(usize, String)>>> = OnceLock::new();
    W.get_or_init(Default::default)
}

/// Makes `target` openable; returns the path to open it by.
pub fn add_target(target: Arc<Target>) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let path = format!("hydra-db-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    lock(targets()).insert(path.clone(), target);
    path
}

/// Forgets a path made by [`add_target`].
pub fn remove_target(path: &str) {
    lock(targets()).remove(path);
}

/// Registers the VFS with SQLite (once per process).
pub fn register() -> Result<(), c_int> {
    static DONE: OnceLock<c_int> = OnceLock::new();
    let rc = *DONE.get_or_init(|| {
        // SAFETY: sqlite3_vfs_find with a null name returns the default
        // VFS (or null), a pointer SQLite keeps valid for the process.
        let default = unsafe { ffi::sqlite3_vfs_find(std::ptr::null()) };
        if default.is_null() {
            return ffi::SQLITE_ERROR;
        }
        let vfs = Box::new(ffi::sqlite3_vfs {
            iVersion: 1,
            szOsFile: std::mem::size_of::<File>() as c_int,
            mxPathname: 512,
            pNext: std::ptr::null_mut(),
            zName: VFS_NAME.as_ptr(),
            pAppData: default.cast(),
            xOpen: Some(x_open),
            xDelete: Some(x_delete),
            xAccess: Some(x_access),
            xFullPathname: Some(x_full_pathname),
            xDlOpen: None,
            xDlError: None,
            xDlSym: None,
            xDlClose: None,
            xRandomness: Some(x_randomness),
            xSleep: Some(x_sleep),
            xCurrentTime: Some(x_current_time),
            xGetLastError: Some(x_get_last_error),
            xCurrentTimeInt64: None,
            xSetSystemCall: None,
            xGetSystemCall: None,
            xNextSystemCall: None,
        });
        // SAFETY: the VFS is leaked, so it outlives every use SQLite makes
        // of it; its callbacks follow the contract in the module docs.
        unsafe { ffi::sqlite3_vfs_register(Box::leak(vfs), 0) }
    });
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rc)
    }
}

/// The file SQLite allocates for us: its header, then our state.
#[repr(C)]
struct File {
    base: ffi::sqlite3_file,
    state: *mut State,
}

enum State {
    Main(Box<Main>),
    Memory(Vec<u8>),
}

struct Main {
    pages: PageFile,
    target: Arc<Target>,
    lock: c_int,
    writer: bool,
}

impl Main {
    fn release_writer(&mut self) {
        if self.writer {
            if let Some(key) = self.target.writer_key() {
                lock(writers()).remove(&key);
            }
            self.writer = false;
        }
    }

    fn commit(&mut self) -> Result<(), String> {
        let message = lock(&self.target.message).clone();
        match self.pages.commit(&message) {
            Ok(_) => Ok(()),
            Err(e) => {
                self.pages.discard();
                Err(e.to_string())
            }
        }
    }
}

static IO_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 1,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_unlock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(x_file_control),
    xSectorSize: Some(x_sector_size),
    xDeviceCharacteristics: Some(x_device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

/// Runs a callback body; a panic becomes an I/O error instead of
/// unwinding into C.
fn guard(f: impl FnOnce() -> c_int) -> c_int {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(ffi::SQLITE_IOERR)
}

/// The state behind a file SQLite passes us.
///
/// SAFETY: `file` must be a `File` that `x_open` set up and `x_close` has
/// not yet torn down (SQLite's contract, see the module docs).
unsafe fn state<'a>(file: *mut ffi::sqlite3_file) -> &'a mut State {
    // SAFETY: per the contract above, `file` points to a live `File`
    // whose `state` came from `Box::into_raw` in `x_open`.
    unsafe { &mut *(*file.cast::<File>()).state }
}

unsafe extern "C" fn x_open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    guard(|| {
        // SAFETY: SQLite gives us szOsFile writable bytes at `file`;
        // `pMethods` stays null unless the open succeeds.
        unsafe { (*file).pMethods = std::ptr::null() };
        let state = if flags & ffi::SQLITE_OPEN_MAIN_DB != 0 {
            if name.is_null() {
                return ffi::SQLITE_CANTOPEN;
            }
            // SAFETY: a non-null name is a NUL-terminated string.
            let path = unsafe { CStr::from_ptr(name) }.to_string_lossy();
            let Some(target) = lock(targets()).get(path.as_ref()).cloned() else {
                return ffi::SQLITE_CANTOPEN;
            };
            let pages = match PageFile::open(target.bucket.clone(), target.source.clone()) {
                Ok(p) => p,
                Err(e) => {
                    target.fail(e);
                    return ffi::SQLITE_CANTOPEN;
                }
            };
            if pages.is_read_only() && flags & ffi::SQLITE_OPEN_READWRITE != 0 {
                target.fail("a past version is read-only");
                return ffi::SQLITE_READONLY;
            }
            State::Main(Box::new(Main {
                pages,
                target,
                lock: ffi::SQLITE_LOCK_NONE,
                writer: false,
            }))
        } else {
            State::Memory(Vec::new())
        };
        let state = Box::into_raw(Box::new(state));
        // SAFETY: as above; writing a whole `File` initializes it.
        unsafe {
            file.cast::<File>().write(File {
                base: ffi::sqlite3_file {
                    pMethods: &IO_METHODS,
                },
                state,
            });
            if !out_flags.is_null() {
                *out_flags = flags;
            }
        }
        ffi::SQLITE_OK
    })
}

unsafe extern "C" fn x_close(file: *mut ffi::sqlite3_file) -> c_int {
    guard(|| {
        // SAFETY: x_close is called once per opened file; the state came
        // from Box::into_raw and is not used after this.
        let state = unsafe { Box::from_raw((*file.cast::<File>()).state) };
        if let State::Main(mut main) = *state {
            main.release_writer();
        }
        ffi::SQLITE_OK
    })
}

unsafe extern "C" fn x_read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    guard(|| {
        let (Ok(len), Ok(offset)) = (usize::try_from(amount), u64::try_from(offset)) else {
            return ffi::SQLITE_IOERR_READ;
        };
        // SAFETY: SQLite passes a buffer of `amount` writable bytes.
        let buf = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), len) };
        // SAFETY: see `state`.
        let got = match unsafe { state(file) } {
            State::Main(main) => match main.pages.read(offset, buf) {
                Ok(n) => n,
                Err(e) => {
                    main.target.fail(e);
                    return ffi::SQLITE_IOERR_READ;
                }
            },
            State::Memory(data) => {
                let start = (offset as usize).min(data.len());
                let n = (data.len() - start).min(len);
                buf[..n].copy_from_slice(&data[start..start + n]);
                buf[n..].fill(0);
                n
            }
        };
        if got < len {
            ffi::SQLITE_IOERR_SHORT_READ
        } else {
            ffi::SQLITE_OK
        }
    })
}

unsafe extern "C" fn x_write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    guard(|| {
        let (Ok(len), Ok(offset)) = (usize::try_from(amount), u64::try_from(offset)) else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        // SAFETY: SQLite passes `amount` readable bytes.
        let data = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) };
        // SAFETY: see `state`.
        match unsafe { state(file) } {
            State::Main(main) => {
                if main.pages.is_read_only() {
                    return ffi::SQLITE_READONLY;
                }
                if let Err(e) = main.pages.write(offset, data) {
                    main.target.fail(e);
                    return ffi::SQLITE_IOERR_WRITE;
                }
            }
            State::Memory(mem) => {
                let start = offset as usize;
                if mem.len() < start + len {
                    mem.resize(start + len, 0);
                }
                mem[start..start + len].copy_from_slice(data);
            }
        }
        ffi::SQLITE_OK
    })
}

unsafe extern "C" fn x_truncate(file: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    guard(|| {
        let Ok(size) = u64::try_from(size) else {
            return ffi::SQLITE_IOERR_TRUNCATE;
        };
        // SAFETY: see `state`.
        match unsafe { state(file) } {
            State::Main(main) => {
                if let Err(e) = main.pages.truncate(size) {
                    main.target.fail(e);
                    return ffi::SQLITE_IOERR_TRUNCATE;
                }
            }
            State::Memory(mem) => mem.resize(size as usize, 0),
        }
        ffi::SQLITE_OK
    })
}

unsafe extern "C" fn x_sync(file: *mut ffi::sqlite3_file, _flags: c_int) -> c_int {
    guard(|| {
        // SAFETY: see `state`.
        if let State::Main(main) = unsafe { state(file) }
            && main.writer
            && main.pages.is_dirty()
            && let Err(e) = main.commit()
        {
            main.target.fail(e);
            return ffi::SQLITE_IOERR_FSYNC;
        }
        ffi::SQLITE_OK
    })
}

unsafe extern "C" fn x_file_size(
    file: *mut ffi::sqlite3_file,
    out: *mut ffi::sqlite3_int64,
) -> c_int {
    guard(|| {
        // SAFETY: see `state`.
        let size = match unsafe { state(file) } {
            State::Main(main) => main.pages.size(),
            State::Memory(mem) => mem.len() as u64,
        };
        // SAFETY: SQLite passes a writable out pointer.
        unsafe { *out = size as ffi::sqlite3_int64 };
        ffi::SQLITE_OK
    })
}

unsafe extern "C" fn x_lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    guard(|| {
        // SAFETY: see `state`.
        let State::Main(main) = (unsafe { state(file) }) else {
            return ffi::SQLITE_OK;
        };
        if level <= main.lock {
            return ffi::SQLITE_OK;
        }
        if main.lock == ffi::SQLITE_LOCK_NONE && !main.pages.is_dirty() {
            // A new read transaction: the newest version.
            if let Err(e) = main.pages.refresh() {
                main.target.fail(e);
                return ffi::SQLITE_IOERR_LOCK;
            }
        }
        if level >= ffi::SQLITE_LOCK_RESERVED && !main.writer {
            let Some(key) = main.target.writer_key() else {
                return ffi::SQLITE_READONLY;
            };
            if !lock(writers()).insert(key) {
                return ffi::SQLITE_BUSY;
            }
            main.writer = true;
            // Writing on an old snapshot would lose the newer commit.
            match main.pages.newest() {
                Ok(newest) if newest == main.pages.root() => {}
                Ok(_) => {
                    main.release_writer();
                    return ffi::SQLITE_BUSY;
                }
                Err(e) => {
                    main.release_writer();
                    main.target.fail(e);
                    return ffi::SQLITE_IOERR_LOCK;
                }
            }
        }
        main.lock = level;
        ffi::SQLITE_OK
    })
}

unsafe extern "C" fn x_unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    guard(|| {
        // SAFETY: see `state`.
        let State::Main(main) = (unsafe { state(file) }) else {
            return ffi::SQLITE_OK;
        };
        let mut rc = ffi::SQLITE_OK;
        if level < ffi::SQLITE_LOCK_RESERVED && main.writer {
            // Changes left at the end of a write transaction: a rollback
            // that wrote the old pages back, or a commit made without a
            // sync (synchronous=OFF).
            if main.pages.is_dirty() {
                match main.pages.changes_are_noops() {
                    Ok(true) => main.pages.discard(),
                    Ok(false) => {
                        if let Err(e) = main.commit() {
                            main.target.fail(e);
                            rc = ffi::SQLITE_IOERR_UNLOCK;
                        }
                    }
                    Err(e) => {
                        main.pages.discard();
                        main.target.fail(e);
                        rc = ffi::SQLITE_IOERR_UNLOCK;
                    }
                }
            }
            main.release_writer();
        }
        main.lock = level;
        rc
    })
}

unsafe extern "C" fn x_check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    guard(|| {
        // SAFETY: see `state`.
        let held = match unsafe { state(file) } {
            State::Main(main) => main
                .target
                .writer_key()
                .is_some_and(|k| lock(writers()).contains(&k)),
            State::Memory(_) => false,
        };
        // SAFETY: SQLite passes a writable out pointer.
        unsafe { *out = c_int::from(held) };
        ffi::SQLITE_OK
    })
}

unsafe extern "C" fn x_file_control(
    _file: *mut ffi::sqlite3_file,
    _op: c_int,
    _arg: *mut c_void,
) -> c_int {
    ffi::SQLITE_NOTFOUND
}

unsafe extern "C" fn x_sector_size(_file: *mut ffi::sqlite3_file) -> c_int {
    crate::pages::UNIT as c_int
}

unsafe extern "C" fn x_device_characteristics(_file: *mut ffi::sqlite3_file) -> c_int {
    ffi::SQLITE_IOCAP_POWERSAFE_OVERWRITE
}

unsafe extern "C" fn x_delete(
    _vfs: *mut ffi::sqlite3_vfs,
    _name: *const c_char,
    _sync: c_int,
) -> c_int {
    // Only journals and temporary files are ever deleted, and they live
    // in memory until closed.
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_access(
    _vfs: *mut ffi::sqlite3_vfs,
    _name: *const c_char,
    _flags: c_int,
    out: *mut c_int,
) -> c_int {
    // No journal outlives its connection, so none is ever "hot".
    // SAFETY: SQLite passes a writable out pointer.
    unsafe { *out = 0 };
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_full_pathname(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    n_out: c_int,
    out: *mut c_char,
) -> c_int {
    guard(|| {
        // SAFETY: `name` is NUL-terminated; `out` has `n_out` bytes.
        let name = unsafe { CStr::from_ptr(name) }.to_bytes_with_nul();
        if name.len() > n_out.max(0) as usize {
            return ffi::SQLITE_CANTOPEN;
        }
        // SAFETY: the length was checked against `n_out` just above.
        unsafe { std::ptr::copy_nonoverlapping(name.as_ptr().cast(), out, name.len()) };
        ffi::SQLITE_OK
    })
}

/// The default VFS, kept in our VFS's app data.
///
/// SAFETY: `vfs` must be the VFS `register` built.
unsafe fn default_vfs(vfs: *mut ffi::sqlite3_vfs) -> *mut ffi::sqlite3_vfs {
    // SAFETY: `register` stored the default VFS there.
    unsafe { (*vfs).pAppData.cast() }
}

unsafe extern "C" fn x_randomness(vfs: *mut ffi::sqlite3_vfs, n: c_int, out: *mut c_char) -> c_int {
    // SAFETY: forwarded to the default VFS with its own pointer.
    unsafe {
        let d = default_vfs(vfs);
        match (*d).xRandomness {
            Some(f) => f(d, n, out),
            None => 0,
        }
    }
}

unsafe extern "C" fn x_sleep(vfs: *mut ffi::sqlite3_vfs, micros: c_int) -> c_int {
    // SAFETY: forwarded to the default VFS with its own pointer.
    unsafe {
        let d = default_vfs(vfs);
        match (*d).xSleep {
            Some(f) => f(d, micros),
            None => 0,
        }
    }
}

unsafe extern "C" fn x_current_time(vfs: *mut ffi::sqlite3_vfs, out: *mut f64) -> c_int {
    // SAFETY: forwarded to the default VFS with its own pointer.
    unsafe {
        let d = default_vfs(vfs);
        match (*d).xCurrentTime {
            Some(f) => f(d, out),
            None => ffi::SQLITE_ERROR,
        }
    }
}

unsafe extern "C" fn x_get_last_error(
    vfs: *mut ffi::sqlite3_vfs,
    n: c_int,
    out: *mut c_char,
) -> c_int {
    // SAFETY: forwarded to the default VFS with its own pointer.
    unsafe {
        let d = default_vfs(vfs);
        match (*d).xGetLastError {
            Some(f) => f(d, n, out),
            None => 0,
        }
    }
}
