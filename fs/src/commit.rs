//! Commits: storing every change and moving the ref, merging other
//! writers' commits, following them while clean, and the background timer.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use hydra_dag::{LogEntry, RefNote, now_ns};

use crate::attr::Fh;
use crate::error::{FsError, FsResult};
use crate::follow::Changed;
use crate::fs::{Fs, Inner, Watcher, lock};
use crate::merge::merge_roots;

/// How long a commit keeps merging onto other writers' commits before it
/// reports a conflict.
const MERGE_DEADLINE: Duration = Duration::from_secs(30);

impl Fs {
    /// Makes everything written so far durable: commits the filesystem.
    ///
    /// Concurrent fsyncs share commits: a commit begun after this call
    /// holds everything written before it, so when one has succeeded by
    /// the time this caller gets its turn, there is nothing left to do.
    pub fn fsync(&self, _fh: Option<Fh>) -> FsResult<()> {
        if self.inner.options.read_only || self.inner.name.is_none() {
            return Ok(());
        }
        let needed = self.inner.commits_begun.load(Ordering::SeqCst) + 1;
        self.commit_unless_durable("fsync", Some(needed))
            .map(|_| ())
    }

    /// Stores every change and moves `fs/<name>`; returns the changelog
    /// entry, or `None` when nothing changed. When another writer committed
    /// meanwhile, both sides' changes are merged (see [`crate::OnConflict`]).
    pub fn commit(&self, message: &str) -> FsResult<Option<LogEntry>> {
        self.commit_unless_durable(message, None)
    }

    /// Commits, unless commit attempt `needed` or a later one has already
    /// left memory equal to the store.
    fn commit_unless_durable(
        &self,
        message: &str,
        needed: Option<u64>,
    ) -> FsResult<Option<LogEntry>> {
        let started = std::time::Instant::now();
        let committed = self.commit_now(message, needed);
        if let Ok(Some(_)) = &committed {
            let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.inner.commits.fetch_add(1, Ordering::Relaxed);
            self.inner.commit_ns.fetch_add(ns, Ordering::Relaxed);
        }
        committed
    }

    /// Commits made through this filesystem object and their total time.
    pub fn commit_stats(&self) -> (u64, Duration) {
        (
            self.inner.commits.load(Ordering::Relaxed),
            Duration::from_nanos(self.inner.commit_ns.load(Ordering::Relaxed)),
        )
    }

    fn commit_now(&self, message: &str, needed: Option<u64>) -> FsResult<Option<LogEntry>> {
        let Some(name) = &self.inner.name else {
            return Err(FsError::ReadOnly);
        };
        self.writable()?;
        let mut s = self.state();
        if needed.is_some_and(|n| self.inner.commit_durable.load(Ordering::SeqCst) >= n) {
            return Ok(None);
        }
        // Numbered under the state lock: this attempt sees every change
        // made before the number was taken.
        let attempt = self.inner.commits_begun.fetch_add(1, Ordering::SeqCst) + 1;
        if !s.is_dirty() {
            self.inner
                .commit_durable
                .fetch_max(attempt, Ordering::SeqCst);
            return Ok(None);
        }
        let note = RefNote {
            author: self.inner.options.author.clone(),
            message: message.to_string(),
            ..RefNote::default()
        };
        // The new blocks and the ref's move are stored at once; when the
        // ref moved meanwhile, the blocks are stored all the same and the
        // rounds below merge.
        let planned = s.plan_root()?;
        let root = planned.root;
        let first = match s.session.put_blocks_and_cas_ref(
            &planned.blocks,
            name,
            s.base.as_ref(),
            Some(&root),
            &note,
        ) {
            Err(e) if !matches!(e, hydra_dag::DagError::RefConflict { .. }) => {
                return Err(e.into());
            }
            moved => moved,
        };
        s.root_written(planned);
        let mut first = Some(first);
        let bucket = &self.inner.bucket;
        let mut target = root;
        let mut merged_from = None;
        // Each round merges onto the newest root. A writer that keeps
        // losing the race backs off a random while, up to a deadline.
        let deadline = std::time::Instant::now() + MERGE_DEADLINE;
        for round in 0u32.. {
            if round >= 3 {
                if std::time::Instant::now() > deadline {
                    break;
                }
                let cap_ms = 1u64 << round.min(7);
                let jitter =
                    (now_ns() as u64 ^ u64::from(round).wrapping_mul(0x9E37_79B9)) % cap_ms;
                std::thread::sleep(Duration::from_millis(jitter + 1));
            }
            let expected = merged_from.or(s.base);
            let moved = match first.take() {
                Some(moved) => moved,
                None => bucket.cas_ref(name, expected.as_ref(), Some(&target), &note),
            };
            match moved {
                Ok(entry) => {
                    // Memory holds ours, clean; after a merge it is brought
                    // to the merged root.
                    s.base = Some(root);
                    let changes = match merged_from {
                        Some(_) => s.follow(target)?,
                        None => Vec::new(),
                    };
                    s.renew_session();
                    self.inner
                        .commit_durable
                        .fetch_max(attempt, Ordering::SeqCst);
                    drop(s);
                    self.tell(changes);
                    return Ok(Some(entry));
                }
                Err(hydra_dag::DagError::RefConflict { .. }) => {
                    let Some(theirs) = bucket.get_ref(name)? else {
                        break;
                    };
                    let merged = merge_roots(
                        bucket,
                        s.base.as_ref(),
                        &root,
                        &theirs,
                        self.inner.options.on_conflict,
                    )?;
                    s.session.put_blocks(&merged.blocks)?;
                    for path in &merged.conflicts {
                        eprintln!(
                            "hydra: {name}: {path} was changed by another writer too; both kept"
                        );
                    }
                    target = merged.root;
                    merged_from = Some(theirs);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(FsError::Conflict {
            name: name.to_string(),
        })
    }

    /// Takes in commits of other writers when there are no changes here;
    /// returns whether the filesystem moved.
    pub fn refresh(&self) -> FsResult<bool> {
        let Some(name) = &self.inner.name else {
            return Ok(false);
        };
        let mut s = self.state();
        if s.is_dirty() {
            return Ok(false);
        }
        let Some(current) = self.inner.bucket.get_ref(name)? else {
            return Ok(false);
        };
        if Some(current) == s.base {
            return Ok(false);
        }
        let changes = s.follow(current)?;
        drop(s);
        self.tell(changes);
        Ok(true)
    }

    /// Sets who is told what changed when another writer's commit is
    /// taken in (called from the thread that took it in).
    pub fn set_watcher(&self, watcher: Watcher) {
        *lock(&self.inner.watcher.0) = Some(watcher);
    }

    fn tell(&self, changes: Vec<Changed>) {
        if changes.is_empty() {
            return;
        }
        let watcher = lock(&self.inner.watcher.0).clone();
        if let Some(watcher) = watcher {
            watcher(changes);
        }
    }

    /// Commits and stops the background committer.
    pub fn close(&self) -> FsResult<()> {
        {
            let (stopped, cv) = &*self.inner.stop;
            *lock(stopped) = true;
            cv.notify_all();
        }
        if self.inner.name.is_some() && !self.inner.options.read_only {
            self.commit("close")?;
        }
        Ok(())
    }
}

/// Commits (and looks for other writers' commits) every `tick` until
/// `stop` is set or the filesystem is gone.
pub(crate) fn commit_timer(
    fs: Weak<Inner>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    tick: Duration,
    commit: Option<Duration>,
) {
    let mut last_commit = std::time::Instant::now();
    loop {
        {
            let (stopped, cv) = &*stop;
            let guard = lock(stopped);
            let (guard, _) = cv
                .wait_timeout_while(guard, tick, |stopped| !*stopped)
                .unwrap_or_else(|e| e.into_inner());
            if *guard {
                return;
            }
        }
        let Some(inner) = fs.upgrade() else { return };
        let fs = Fs { inner };
        // Write buffers kept for the next write go back once writing stops.
        hydra_chunker::release_idle_buffers();
        // Unloads what the front ends stopped holding while nothing ran.
        {
            let mut s = fs.state();
            s.next_round();
            s.maybe_trim();
        }
        // A failed background commit leaves the changes in memory; the next
        // commit (timer, fsync or close) tries again and reports.
        if let Some(interval) = commit
            && fs.is_dirty()
        {
            if last_commit.elapsed() >= interval {
                if let Err(e) = fs.commit("auto") {
                    eprintln!("hydra: background commit failed: {e}");
                }
                last_commit = std::time::Instant::now();
            }
        } else if fs.inner.options.refresh_interval.is_some()
            && let Err(e) = fs.refresh()
        {
            eprintln!("hydra: refresh failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use hydra_dag::Bucket;

    use crate::attr::{Ino, OpenFlags, RenameMode, SetAttr};
    use crate::fs::{Fs, FsOptions};
    use crate::perm::Caller;

    fn rw() -> OpenFlags {
        OpenFlags {
            read: true,
            write: true,
            ..OpenFlags::default()
        }
    }

    /// Options that commit only when asked.
    fn untimed() -> FsOptions {
        FsOptions {
            commit_interval: None,
            ..FsOptions::default()
        }
    }

    /// An fsync whose writes a commit begun after it already stored skips
    /// its own commit, even with later writes pending; one begun before it
    /// does not count.
    #[test]
    fn an_fsync_shares_a_commit_begun_after_it() {
        let root = Caller::root();
        let fs = Fs::open(Bucket::in_memory(), "t", &root, untimed()).expect("open");
        let (_, fh) = fs
            .create(Ino::ROOT, b"a", 0o644, rw(), &root)
            .expect("create");
        fs.write(fh, 0, b"mine", &root).expect("write");
        let commits = || fs.commit_stats().0;
        // The caller's fsync takes its number, then another commit runs
        // first and later writes arrive before the caller's turn.
        let needed = fs.inner.commits_begun.load(Ordering::SeqCst) + 1;
        fs.commit("timer").expect("commit");
        let after_timer = commits();
        fs.write(fh, 4, b" and later", &root).expect("write");
        fs.commit_unless_durable("fsync", Some(needed))
            .expect("fsync");
        assert_eq!(commits(), after_timer, "the timer's commit served it");
        assert!(fs.state().is_dirty(), "the later write waits");
        // Numbered before the last commit began: that one may have missed
        // this caller's writes, so it commits.
        let stale = fs.inner.commits_begun.load(Ordering::SeqCst);
        fs.commit_unless_durable("fsync", Some(stale + 1))
            .expect("fsync");
        assert_eq!(commits(), after_timer + 1);
        assert!(!fs.state().is_dirty());
        fs.release(fh).expect("release");
    }

    /// Each commit writes again only the entries that changed; the lists
    /// it stores equal the lists written whole.
    #[test]
    fn lists_written_in_part_equal_lists_written_whole() {
        let root = Caller::root();
        let options = untimed();
        let bucket = Bucket::in_memory();
        let fs = Fs::open(bucket.clone(), "t", &root, options.clone()).expect("open");
        let d = fs.mkdir(Ino::ROOT, b"d", 0o755, &root).expect("mkdir").ino;
        let mut files = Vec::new();
        for i in 0..300 {
            let name = format!("f{i:03}");
            let (attr, fh) = fs
                .create(d, name.as_bytes(), 0o644, rw(), &root)
                .expect("create");
            fs.write(fh, 0, name.as_bytes(), &root).expect("write");
            fs.release(fh).expect("release");
            files.push(attr.ino);
        }
        let sub = fs.mkdir(d, b"sub", 0o755, &root).expect("mkdir").ino;
        let check = |step: &str| {
            fs.commit(step).expect("commit");
            let mut s = fs.state();
            for dir in [Ino::ROOT, d, sub] {
                let (whole, stored) = s.lists_of(dir).expect("lists");
                assert_eq!(stored, whole, "{step}: directory {dir:?}");
            }
        };
        check("first");
        let (_, fh) = fs.create(d, b"new", 0o600, rw(), &root).expect("create");
        fs.release(fh).expect("release");
        check("create");
        fs.unlink(d, b"f007", &root).expect("unlink");
        fs.unlink(d, b"f100", &root).expect("unlink");
        check("unlink");
        fs.rename(d, b"f010", d, b"g010", RenameMode::Replace, &root)
            .expect("rename");
        fs.rename(d, b"f011", Ino::ROOT, b"out", RenameMode::Replace, &root)
            .expect("rename");
        fs.rename(d, b"f012", sub, b"in", RenameMode::Replace, &root)
            .expect("rename");
        fs.rename(d, b"f013", d, b"f014", RenameMode::Replace, &root)
            .expect("rename");
        check("rename");
        let chmod = SetAttr {
            mode: Some(0o600),
            ..SetAttr::default()
        };
        fs.setattr(files[20], &chmod, None, &root).expect("chmod");
        fs.setxattr(files[21], b"user.k", b"v", 0, &root)
            .expect("setxattr");
        let fh = fs.open_file(files[22], rw(), &root).expect("open");
        fs.write(fh, 1, b"changed", &root).expect("write");
        fs.release(fh).expect("release");
        check("attributes and content");
        fs.link(files[30], sub, b"linked", &root).expect("link");
        check("link");
        fs.link(files[40], d, b"f040-too", &root).expect("link");
        check("link in the same directory");
        fs.setattr(files[40], &chmod, None, &root).expect("chmod");
        fs.rename(d, b"f040", d, b"f040-moved", RenameMode::Replace, &root)
            .expect("rename");
        check("a linked file changed and renamed");
        fs.unlink(d, b"f040-moved", &root).expect("unlink");
        fs.setxattr(files[40], b"user.k", b"v", 0, &root)
            .expect("setxattr");
        check("a linked file's first name gone, then a change");
        fs.rename(d, b"f041", sub, b"moved", RenameMode::Replace, &root)
            .expect("rename");
        check("moved away");
        fs.setattr(files[41], &chmod, None, &root).expect("chmod");
        fs.setattr(files[42], &chmod, None, &root).expect("chmod");
        fs.rename(d, b"f042", sub, b"moved-too", RenameMode::Replace, &root)
            .expect("rename");
        check("changed after a move, and before one");
        fs.unlink(sub, b"linked", &root).expect("unlink");
        fs.mkdir(sub, b"deeper", 0o755, &root).expect("mkdir");
        check("unlink a link, mkdir below");
        for i in 200..300 {
            fs.unlink(d, format!("f{i:03}").as_bytes(), &root)
                .expect("unlink");
        }
        check("unlink many");
        // Another writer's commit, taken in, then a change over it.
        let other = Fs::open(bucket, "t", &root, options).expect("open");
        let od = other.lookup(Ino::ROOT, b"d", &root).expect("d").ino;
        let (_, fh) = other
            .create(od, b"theirs", 0o644, rw(), &root)
            .expect("create");
        other.release(fh).expect("release");
        other.unlink(od, b"f050", &root).expect("unlink");
        other.commit("theirs").expect("commit");
        assert!(fs.refresh().expect("refresh"), "not taken in");
        fs.unlink(d, b"f051", &root).expect("unlink");
        check("after taking in another writer's commit");
    }
}
