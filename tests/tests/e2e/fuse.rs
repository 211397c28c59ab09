//! The FUSE mount driven by real programs through the kernel.

use std::path::{Path, PathBuf};
use std::process::Command;

use hydra_tests::{TestStore, sh};

/// A mount that is unmounted (and checked) when dropped.
struct Mounted<'a> {
    store: &'a TestStore,
    point: PathBuf,
}

impl<'a> Mounted<'a> {
    fn new(store: &'a TestStore, fs: &str, point: &Path, extra: &[&str]) -> Self {
        Mounted::saying(store, fs, point, extra).0
    }

    /// As `new`, with what `hydra mount` said on stderr.
    fn saying(store: &'a TestStore, fs: &str, point: &Path, extra: &[&str]) -> (Self, String) {
        std::fs::create_dir_all(point).expect("mkdir mount point");
        let mut args = vec!["mount", fs, point.to_str().expect("utf-8")];
        args.extend_from_slice(extra);
        let out = store.run(&args);
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "hydra {args:?} failed: {said}");
        let mounted = Mounted {
            store,
            point: point.to_path_buf(),
        };
        (mounted, said)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.point.join(rel)
    }

    fn umount(mut self) {
        let point = std::mem::take(&mut self.point);
        self.store.ok(&["umount", point.to_str().expect("utf-8")]);
    }
}

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        if !self.point.as_os_str().is_empty() {
            let _ = self
                .store
                .run(&["umount", self.point.to_str().unwrap_or("")]);
            let _ = Command::new("umount").arg("-l").arg(&self.point).status();
        }
    }
}

/// Asserts `diff -r` finds the same bytes under `a` and `b` (`extra`: more
/// of diff's arguments); fifos and devices, which diff cannot compare, aside.
fn assert_same_bytes(a: &Path, b: &Path, extra: &[&str]) {
    let diff = Command::new("diff")
        .args(["-r", "--no-dereference"])
        .args(extra)
        .arg(a)
        .arg(b)
        .output()
        .expect("diff");
    let report = String::from_utf8_lossy(&diff.stdout);
    let real: Vec<&str> = report
        .lines()
        .filter(|l| !l.contains("fifo") && !l.contains("character special"))
        .collect();
    assert!(real.is_empty(), "bytes differ: {real:?}");
}

/// Mounts `fs` at `point`, runs `script` there, then checks with `check`
/// once more after a remount.
fn script_then_check_after_remount(
    s: &TestStore,
    fs: &str,
    point: &Path,
    script: &str,
    check: &str,
) {
    let m = Mounted::new(s, fs, point, &[]);
    sh(script, point);
    m.umount();
    let m = Mounted::new(s, fs, point, &[]);
    sh(check, point);
    m.umount();
}

#[test]
fn mount_write_umount_remount() {
    let s = TestStore::new();
    let point = s.scratch("mnt");
    let (m, said) = Mounted::saying(&s, "home", &point, &[]);
    // The daemon creates the filesystem, and the command says so.
    let note = "filesystem home does not exist yet; created it empty";
    assert!(said.contains(note), "{said}");
    // The kernel reads ahead one full-size request (1 MiB), not 128 KiB.
    let dev = std::os::unix::fs::MetadataExt::dev(&std::fs::metadata(&point).expect("stat"));
    let knob = format!(
        "/sys/class/bdi/{}:{}/read_ahead_kb",
        libc::major(dev),
        libc::minor(dev)
    );
    let read_ahead = std::fs::read_to_string(&knob).expect("read_ahead_kb");
    assert_eq!(read_ahead.trim(), "1024", "{knob}");
    std::fs::write(m.path("hello.txt"), b"hello").expect("write");
    std::fs::create_dir(m.path("dir")).expect("mkdir");
    std::fs::hard_link(m.path("hello.txt"), m.path("dir/link")).expect("link");
    std::os::unix::fs::symlink("../hello.txt", m.path("dir/sym")).expect("symlink");
    let status = s.ok(&["status"]);
    assert!(status.contains("home") && status.contains("rw"), "{status}");
    m.umount();
    assert!(s.ok(&["status"]).contains("no live mounts"));
    // Committed: the CLI sees it without a mount.
    assert_eq!(s.ok(&["fs", "cat", "home", "/dir/link"]), "hello");
    let m = Mounted::new(&s, "home", &point, &["--read-only"]);
    assert_eq!(std::fs::read(m.path("dir/sym")).expect("read"), b"hello");
    let err = std::fs::write(m.path("x"), b"no").expect_err("read-only");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    m.umount();
    let (m, said) = Mounted::saying(&s, "home", &point, &[]);
    assert!(
        !said.contains(note),
        "an existing filesystem is not created: {said}"
    );
    m.umount();
}

#[test]
fn tar_extract_into_the_mount_matches_tmpfs() {
    let s = TestStore::new();
    let work = s.scratch("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    hydra_tests::awkward_tar(&work, 50, 20);
    let m = Mounted::new(&s, "t", &s.scratch("mnt"), &[]);
    let listing = r#"find . -mindepth 1 -printf '%p|%y|%m|%U:%G|%s|%T@|%n|%l\n' | LC_ALL=C sort | awk -F'|' '$2=="d"{$5="-"}1'; getfattr -h -d -m '^user\.' -R . 2>/dev/null | grep -v '^$'"#;
    std::fs::create_dir_all(work.join("ref")).expect("mkdir");
    sh("tar --xattrs --xattrs-include='*' -xpf t.tar -C ref", &work);
    sh(
        &format!(
            "tar --xattrs --xattrs-include='*' -xpf t.tar -C {}",
            m.point.display()
        ),
        &work,
    );
    let expected = sh(listing, &work.join("ref"));
    let got = sh(listing, &m.point);
    assert_eq!(got, expected, "listing through the mount");
    assert_same_bytes(&work.join("ref"), &m.point, &[]);
    // cp -a keeps modes: it sets them through an ACL xattr last, which must
    // land in the mode bits and in what the kernel has cached, at once (a
    // stat right after saw the creation's 0600 in about 1 of 50 copies
    // while the kernel's attributes were dropped only after the answer).
    sh(
        &format!(
            "cd {} && for i in $(seq 100); do cp -a target mode-copy && test \"$(stat -c %a mode-copy)\" = \"$(stat -c %a target)\" && rm mode-copy || exit 1; done",
            m.point.display()
        ),
        &work,
    );
    // cp -a and mv between directories inside the mount.
    sh(
        &format!(
            "cd {} && cp -a many copy && mv copy/d1 moved && diff -r many/d1 moved && rm -r copy",
            m.point.display()
        ),
        &work,
    );
    // rsync -a (temporary files, renames over, times and modes) likewise.
    sh(
        &format!(
            "cd {} && rsync -a many/ synced/ && diff -r many synced && \
             test \"$(stat -c %Y many/d2/f7)\" = \"$(stat -c %Y synced/d2/f7)\" && rm -r synced",
            m.point.display()
        ),
        &work,
    );
    m.umount();
    // What was extracted through the mount is what export gives back.
    let exported = work.join("out.tar");
    s.ok(&[
        "export",
        "tar",
        "--fs",
        "t",
        "-o",
        exported.to_str().expect("utf-8"),
    ]);
    std::fs::create_dir_all(work.join("back")).expect("mkdir");
    sh(
        "tar --xattrs --xattrs-include='*' -xpf out.tar -C back",
        &work,
    );
    let back = sh(listing, &work.join("back"));
    let strip_moved = |t: &str| {
        t.lines()
            .filter(|l| !l.starts_with("./moved"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip_moved(&back), strip_moved(&expected));
}

#[test]
fn sqlite_database_survives_remount() {
    let s = TestStore::new();
    let point = s.scratch("mnt");
    let m = Mounted::new(&s, "db", &point, &[]);
    let db = m.path("test.db");
    let out = Command::new("sqlite3")
        .arg(&db)
        .arg(
            "PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); \
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 100000) \
             INSERT INTO t(v) SELECT hex(randomblob(20)) FROM c; SELECT count(*) FROM t;",
        )
        .output()
        .expect("sqlite3 (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("100000"));
    m.umount();
    let m = Mounted::new(&s, "db", &point, &[]);
    let out = Command::new("sqlite3")
        .arg(m.path("test.db"))
        .arg("PRAGMA integrity_check; SELECT count(*) FROM t;")
        .output()
        .expect("sqlite3");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n100000\n");
    m.umount();
}

#[test]
fn kill_9_leaves_the_last_commit_and_every_fsync() {
    let s = TestStore::new();
    let point = s.scratch("mnt");
    let m = Mounted::new(&s, "c", &point, &["--commit-interval", "3600"]);
    // fsync'd files must survive; unsynced ones may not.
    for i in 0..20 {
        let data = vec![i as u8; 100_000 + i * 1000];
        let path = m.path(&format!("synced{i}"));
        let mut f = std::fs::File::create(&path).expect("create");
        std::io::Write::write_all(&mut f, &data).expect("write");
        f.sync_all().expect("fsync");
    }
    std::fs::write(m.path("unsynced"), vec![7u8; 5_000_000]).expect("write");
    let status: serde_json::Value =
        serde_json::from_str(&s.ok(&["--json", "status"])).expect("json");
    let pid = status[0]["pid"].as_u64().expect("pid");
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = Command::new("umount").arg("-l").arg(&point).status();
    std::mem::forget(m);
    let m = Mounted::new(&s, "c", &point, &[]);
    for i in 0..20 {
        let got = std::fs::read(m.path(&format!("synced{i}"))).expect("synced file survives");
        assert_eq!(got, vec![i as u8; 100_000 + i * 1000]);
    }
    if let Ok(data) = std::fs::read(m.path("unsynced")) {
        assert!(
            data.iter().all(|&b| b == 7),
            "an unsynced file is whole or absent"
        );
    }
    m.umount();
}

#[test]
fn eight_processes_at_once() {
    let s = TestStore::new();
    let point = s.scratch("mnt");
    let m = Mounted::new(&s, "p", &point, &[]);
    let script = r#"
set -e
d="$1/w$2"; mkdir -p "$d" "$1/shared"
for i in $(seq 1 60); do
  # Every tenth file is large enough to be chunked: cp shares its chunks.
  n=$((i * 517)); [ $((i % 10)) = 0 ] && n=$((i * 100000))
  head -c $n /dev/urandom > "$d/f$i"
  cp "$d/f$i" "$d/g$i"; cmp "$d/f$i" "$d/g$i"
  mv "$d/g$i" "$1/shared/p$2-$i"
  [ $((i % 3)) = 0 ] && rm "$d/f$i"
done
echo done
"#;
    // All eight started before any is waited for.
    let children: Vec<_> = (0..8)
        .map(|p| {
            Command::new("bash")
                .args(["-c", script, "x"])
                .arg(&m.point)
                .arg(p.to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for (p, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().expect("run");
        assert!(
            out.status.success(),
            "process {p}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    m.umount();
    let m = Mounted::new(&s, "p", &point, &["--read-only"]);
    let shared = std::fs::read_dir(m.path("shared")).expect("ls").count();
    assert_eq!(shared, 8 * 60);
    for p in 0..8 {
        assert_eq!(
            std::fs::read_dir(m.path(&format!("w{p}")))
                .expect("ls")
                .count(),
            40
        );
    }
    m.umount();
}

#[test]
fn git_clone_status_fsck_checkout_gc() {
    let s = TestStore::new();
    let work = s.scratch("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    // A real repository with history: generated here, cloned into the mount.
    hydra_tests::git_origin(&work, 30);
    let m = Mounted::new(&s, "git", &s.scratch("mnt"), &[]);
    let clone = m.path("clone");
    sh(
        &format!(
            "git clone -q --no-hardlinks {}/origin {} && cd {} && \
             test -z \"$(git status --porcelain)\" && git fsck --full && \
             git checkout -q v1 && test -z \"$(git status --porcelain)\" && \
             git checkout -q main && git gc -q && git fsck --full && git log --oneline | wc -l",
            work.display(),
            clone.display(),
            clone.display()
        ),
        &work,
    );
    m.umount();
    let m = Mounted::new(&s, "git", &s.scratch("mnt"), &[]);
    sh(
        &format!(
            "cd {} && git fsck --full && test -z \"$(git status --porcelain)\"",
            m.path("clone").display()
        ),
        &work,
    );
    m.umount();
}

#[test]
fn fio_verifies_random_and_sequential_writes() {
    let s = TestStore::new();
    let m = Mounted::new(&s, "fio", &s.scratch("mnt"), &[]);
    // fio saves its verify state in the working directory.
    let state = s.scratch("fio-state");
    std::fs::create_dir(&state).expect("fio state dir");
    for rw in ["randwrite", "write"] {
        let out = Command::new("fio")
            .args([
                "--name=v",
                &format!("--directory={}", m.point.display()),
                &format!("--rw={rw}"),
                "--bs=4k",
                "--size=32m",
                "--verify=crc32c",
                "--do_verify=1",
                "--ioengine=psync",
                "--end_fsync=1",
            ])
            .current_dir(&state)
            .output()
            .expect("fio (scripts/test.sh installs it)");
        assert!(
            out.status.success(),
            "fio {rw}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("verify: bad"), "{text}");
    }
    m.umount();
}

#[test]
fn terabyte_sparse_files_grow_and_fill_through_the_mount() {
    // Growing a file by a terabyte, preallocating, writing into the hole
    // and punching one cost a few blocks each, not a pass over every zero.
    let s = TestStore::new();
    let point = s.scratch("mnt");
    let out = s.scratch("out");
    std::fs::create_dir_all(&out).expect("mkdir");
    let check = format!(
        r#"
        test "$(stat -c %s big)" = 1099511627776
        cmp islands {out}/islands
        test "$(stat -c %s pre)" = 2147483648
        dd if=big bs=1M skip=300000 count=1 status=none | cmp - punched
        test -z "$(dd if=big bs=4096 skip=$((300000 * 256 - 1)) count=1 status=none | tr -d '\0')"
        test -z "$(dd if=big bs=1M skip=700000 count=1 status=none | tr -d '\0')"
        test -z "$(dd if=pre bs=1M skip=1000 count=1 status=none | tr -d '\0')"
        # Holes take no blocks, and SEEK_DATA / SEEK_HOLE find them.
        test "$(stat -c %b big)" -lt 8192
        python3 - <<'PY'
import os
fd = os.open("big", os.O_RDONLY)
lump = 300000 << 20
data = os.lseek(fd, 0, os.SEEK_DATA)
assert lump - (256 << 10) <= data <= lump, data
hole = os.lseek(fd, data, os.SEEK_HOLE)
assert lump + (1 << 20) <= hole <= lump + (1 << 20) + (256 << 10), hole
assert os.lseek(fd, 5, os.SEEK_HOLE) == 5
try:
    os.lseek(fd, 1 << 40, os.SEEK_DATA)
    raise SystemExit("data past the end")
except OSError as e:
    assert e.errno == 6, e
PY
    "#,
        out = out.display()
    );
    script_then_check_after_remount(
        &s,
        "sparse",
        &point,
        &format!(
            r#"
            truncate -s 1T big
            fallocate -l 2G pre
            fallocate -n -l 3G pre
            head -c 1048576 /dev/urandom > lump
            dd if=lump of=big bs=1M seek=300000 conv=notrunc,fsync status=none
            dd if=big bs=1M skip=300000 count=1 status=none | cmp - lump
            # Punch 8 KiB out of the middle of it (and a gigabyte elsewhere).
            fallocate -p -o $((300000 * 1048576 + 4096)) -l 8192 big
            fallocate -p -o $((500000 * 1048576)) -l 1G big
            cp lump punched
            dd if=/dev/zero of=punched bs=4096 seek=1 count=2 conv=notrunc status=none
            # Zeroing a range reads as zeros, like the punched copy; with
            # --keep-size past the end it changes nothing, else it grows.
            cp lump zeroed
            fallocate -z -o 4096 -l 8192 zeroed
            cmp zeroed punched
            fallocate -z -n -o 1048576 -l 4096 zeroed
            test "$(stat -c %s zeroed)" = 1048576
            fallocate -z -o 1048000 -l 4096 zeroed
            test "$(stat -c %s zeroed)" = $((1048000 + 4096))
            head -c 1048000 punched | cmp - <(head -c 1048000 zeroed)
            test "$(tail -c 4096 zeroed | tr -d '\0' | wc -c)" = 0
            sync big
            # 300 writes of 512 bytes into a 1 GiB hole (and the same into a
            # file outside): each leaves a 256 KiB chunk of mostly zeros,
            # which the store keeps trimmed, not whole (75 MB).
            before=$(du -sk {store} | cut -f1)
            python3 - {out}/islands <<'PY'
import os, random, sys
random.seed(5)
files = [os.open(p, os.O_RDWR | os.O_CREAT) for p in ("islands", sys.argv[1])]
for fd in files:
    os.ftruncate(fd, 1 << 30)
for _ in range(300):
    at, data = random.randrange(0, (1 << 30) - 512), os.urandom(512)
    for fd in files:
        os.pwrite(fd, data, at)
os.fsync(files[0])
PY
            grown=$(( $(du -sk {store} | cut -f1) - before ))
            test "$grown" -lt 16384 || {{ echo "store grew $grown KiB"; exit 1; }}
            {check}
            # Sparse-aware tools skip the holes: tar -S and cp out of the mount.
            timeout 60 tar -cSf {out}/big.tar big
            test "$(stat -c %s {out}/big.tar)" -lt 8388608
            timeout 60 cp --sparse=always big {out}/big
            test "$(stat -c %s {out}/big)" = 1099511627776
            dd if={out}/big bs=1M skip=300000 count=1 status=none | cmp - punched
            mkdir {out}/x && tar -xSf {out}/big.tar -C {out}/x
            dd if={out}/x/big bs=1M skip=300000 count=1 status=none | cmp - punched"#,
            out = out.display(),
            store = s.path().display(),
        ),
        &check,
    );
}

#[test]
fn stress_ng_file_stressors_verify_their_data() {
    let s = TestStore::new();
    let m = Mounted::new(&s, "stress", &s.scratch("mnt"), &[]);
    let mut args = vec!["--temp-path".to_string(), m.point.display().to_string()];
    for stressor in [
        "fsize",
        "fallocate",
        "seek",
        "hdd",
        "iomix",
        "dir",
        "rename",
        "link",
        "symlink",
        "xattr",
        "lockf",
        "flock",
        "fcntl",
        "mmap",
    ] {
        args.extend([format!("--{stressor}"), "1".to_string()]);
    }
    args.extend(
        [
            "--hdd-opts",
            "wr-rnd,rd-rnd,fsync",
            "--timeout",
            "5",
            "--verify",
        ]
        .map(String::from),
    );
    let out = Command::new("stress-ng")
        .args(&args)
        .output()
        .expect("stress-ng (scripts/test.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "stress-ng: {text}");
    assert!(text.contains("successful run completed"), "{text}");
    m.umount();
}

/// A tmpfs mounted for a test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn new(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).expect("mkdir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount tmpfs at {}", at.display());
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_store_says_enospc_and_keeps_the_mount_until_a_commit_works() {
    // The store on a 64 MiB tmpfs: 100 MiB written and fsynced fail with
    // ENOSPC, not EIO; `hydra umount` then refuses in one line and leaves
    // the mount and what is only in memory in place. Once there is room
    // it commits and unmounts, and everything is there after a remount.
    let s = TestStore::new();
    let store = s.path();
    let _tmpfs = Tmpfs::new(&store, "64m");
    s.ok(&["init"]);
    let point = s.scratch("mnt");
    let m = Mounted::new(&s, "full", &point, &[]);
    sh(
        r#"
        echo hello > keep
        if dd if=/dev/urandom of=big bs=1M count=100 conv=fsync 2> err; then exit 1; fi
        grep -q 'fsync failed.*No space left on device' err
        echo again > keep2
        "#,
        &point,
    );
    let err = s.fails(&["umount", point.to_str().expect("utf-8")]);
    assert!(
        err.contains("cannot unmount")
            && err.contains("/big: file content lost, the store is full")
            && err.contains("still mounted")
            && err.lines().count() == 1,
        "{err}"
    );
    assert_eq!(
        std::fs::read(m.path("keep2")).expect("still mounted"),
        b"again\n"
    );
    std::fs::remove_file(m.path("big")).expect("rm big");
    sh(
        &format!("mount -o remount,size=256m {}", store.display()),
        &point,
    );
    m.umount();
    let m = Mounted::new(&s, "full", &point, &[]);
    sh(
        "test \"$(cat keep keep2)\" = \"$(printf 'hello\\nagain')\" && test ! -e big",
        &point,
    );
    m.umount();
    s.ok(&["fsck"]);
}

#[test]
fn a_record_left_by_a_crash_names_no_daemon_though_its_pid_is_taken() {
    // After a crash or a power cut, the registry may name a pid another
    // process has taken since (found by the power-cut test: the next boot
    // gave the new daemon its predecessor's pid, and `hydra serve` said it
    // was serving before it listened). Such a record is no live mount:
    // `hydra status` leaves it out and `hydra umount` signals nobody.
    let s = TestStore::new();
    s.ok(&["init"]);
    let point = s.scratch("gone");
    std::fs::create_dir(&point).expect("mkdir");
    let mut bystander = Command::new("sleep").arg("600").spawn().expect("sleep");
    let record = serde_json::json!({
        "pid": bystander.id(),
        "mountpoint": point,
        "listen": [],
        "fs": "gone",
        "read_only": false,
        "root": null,
        "dirty": false,
        "started": { "boot": "00000000-0000-0000-0000-000000000000", "ticks": 1 },
    });
    std::fs::create_dir_all(s.path().join("mounts")).expect("mkdir");
    std::fs::write(s.path().join("mounts/gone.json"), record.to_string()).expect("write");
    let status: serde_json::Value =
        serde_json::from_str(&s.ok(&["--json", "status"])).expect("json");
    assert_eq!(status, serde_json::json!([]));
    let err = s.fails(&["umount", point.to_str().expect("utf-8")]);
    assert!(err.contains("is not a hydra mount"), "{err}");
    assert!(
        bystander.try_wait().expect("wait").is_none(),
        "the process that took the pid was signalled"
    );
    bystander.kill().expect("kill");
    bystander.wait().expect("wait");
    // A live daemon's record says which process it is.
    let m = Mounted::new(&s, "live", &point, &[]);
    let status: serde_json::Value =
        serde_json::from_str(&s.ok(&["--json", "status"])).expect("json");
    assert_eq!(status.as_array().map(Vec::len), Some(1), "{status}");
    assert!(status[0]["started"]["ticks"].as_u64().is_some(), "{status}");
    m.umount();
}

#[test]
fn bad_mount_and_umount_requests_say_why_in_one_line_and_change_nothing() {
    let s = TestStore::new();
    let point = s.scratch("mnt");
    let m = Mounted::new(&s, "home", &point, &[]);
    std::fs::write(m.path("kept"), b"kept").expect("write");
    m.umount();
    let refs = s.ok(&["ref", "list"]);
    let file = s.scratch("a-file");
    std::fs::write(&file, b"x").expect("write");
    let missing = s.scratch("missing");
    let (p, file, missing) = (
        point.to_str().expect("utf-8"),
        file.to_str().expect("utf-8"),
        missing.to_str().expect("utf-8"),
    );
    let cases: &[(&[&str], &str)] = &[
        (&["mount", "home", missing], "does not exist"),
        (&["mount", "home", file], "is not a directory"),
        (
            &["mount", "home", p, "--commit-interval", "0"],
            "at least 1",
        ),
        (&["mount", "home", p, "--max-inodes", "0"], "at least 1"),
        (
            &["mount", "home", p, "--serve-9p", "bogus"],
            "tcp:HOST:PORT",
        ),
        (&["mount", "../bad", p], "invalid ref name"),
        (&["mount", "home", p, "--snapshot", "nosuch"], "nosuch"),
        (
            &["mount", "ghost", p, "--read-only"],
            "ghost does not exist",
        ),
        (&["umount", p], "not a hydra mount"),
    ];
    for (args, why) in cases {
        let err = s.fails(args);
        assert!(err.contains(why), "hydra {args:?}: {err}");
    }
    let m = Mounted::new(&s, "home", &point, &[]);
    let err = s.fails(&["mount", "home", p]);
    assert!(err.contains("already a mount point"), "{err}");
    assert_eq!(std::fs::read(m.path("kept")).expect("read"), b"kept");
    m.umount();
    assert_eq!(s.ok(&["ref", "list"]), refs, "no filesystem made or moved");
    assert!(s.ok(&["status"]).contains("no live mounts"));
    // A read-only mount of a store that does not exist makes none.
    let nowhere = s.scratch("no-store");
    let out = Command::new(hydra_tests::hydra_bin())
        .args(["--store", nowhere.to_str().expect("utf-8")])
        .args(["mount", "home", p, "--read-only"])
        .output()
        .expect("spawn hydra");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no such store"),
        "{err}"
    );
    assert!(
        !nowhere.exists(),
        "a store was made at {}",
        nowhere.display()
    );
}

#[test]
fn a_busy_mount_refuses_to_unmount_and_a_later_umount_works() {
    // A process working in the mount keeps it busy: `hydra umount` says so
    // in one line at once (not after a timeout), the mount stays with
    // everything committed, and once the process is gone a second `hydra
    // umount` (a second signal to the same daemon) unmounts.
    let s = TestStore::new();
    let point = s.scratch("mnt");
    let m = Mounted::new(&s, "busy", &point, &[]);
    sh("echo kept > f", &point);
    let mut user = std::process::Command::new("sleep")
        .arg("600")
        .current_dir(&point)
        .spawn()
        .expect("sleep");
    let started = std::time::Instant::now();
    let err = s.fails(&["umount", point.to_str().expect("utf-8")]);
    assert!(
        err.contains("cannot unmount")
            && err.contains("busy")
            && err.contains(&format!("still mounted, in use by sleep[{}]", user.id())),
        "{err}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        std::fs::read(m.path("f")).expect("still mounted"),
        b"kept\n"
    );
    user.kill().expect("kill");
    user.wait().expect("wait");
    m.umount();
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
    assert!(
        !mounts.contains(point.to_str().expect("utf-8")),
        "unmounted"
    );
    let m = Mounted::new(&s, "busy", &point, &[]);
    assert_eq!(std::fs::read(m.path("f")).expect("read"), b"kept\n");
    m.umount();
}

#[test]
fn cargo_and_make_build_inside_the_mount() {
    // Builds in the mount: cargo (its lock file, hard links from deps/ to
    // the binary, the linker's output) and make -j2 over C files into an
    // archive. The programs run from the mount; a second build finds
    // everything up to date, and a touched source rebuilds only its own.
    let s = TestStore::new();
    let point = s.scratch("mnt");
    let m = Mounted::new(&s, "build", &point, &[]);
    let cargo = env!("CARGO");
    sh(
        &format!(
            r#"
            export CARGO_TARGET_DIR=$PWD/hello/target
            {cargo} new -q --vcs none hello
            cd hello
            main='fn main() {{ println!("{{}}", 0'
            for i in $(seq 1 20); do
              echo "pub fn f() -> u64 {{ $i }}" > src/m$i.rs
              sed -i "1i mod m$i;" src/main.rs
              main="$main + m$i::f()"
            done
            sed -i '/^fn main/,$d' src/main.rs
            echo "$main); }}" >> src/main.rs
            {cargo} build -q --offline
            test "$(./target/debug/hello)" = 210
            test "$(stat -c %h target/debug/hello)" = 2
            {cargo} build -v --offline 2>&1 | grep -q 'Fresh hello'
            sleep 1
            echo 'pub fn f() -> u64 {{ 1003 }}' > src/m3.rs
            {cargo} build -v --offline 2>&1 | grep -q 'Running `.*rustc'
            test "$(./target/debug/hello)" = 1210
            cd ..
            mkdir c && cd c && calls=
            for i in $(seq 1 40); do
              echo "int f$i(void) {{ return $i; }}" > f$i.c
              echo "int f$i(void);" >> decl.h
              calls="$calls + f$i()"
            done
            printf '#include <stdio.h>
#include "decl.h"
int main(void) {{ printf("%%d", 0%s); return 0; }}
' "$calls" > main.c
            printf 'OBJS = $(patsubst %%.c,%%.o,$(wildcard f*.c))
prog: main.o libf.a
	cc -o $@ main.o libf.a
libf.a: $(OBJS)
	ar rcs $@ $^
%%.o: %%.c decl.h
	cc -O1 -c -o $@ $<
' > Makefile
            make -s -j2
            test "$(./prog)" = 820
            make -q
            sleep 1
            echo 'int f7(void) {{ return 1007; }}' > f7.c
            test "$(make -j2 | grep -c '^cc -O1')" = 1
            test "$(./prog)" = 1820
            "#
        ),
        &point,
    );
    m.umount();
    // Committed: the built program is in the store.
    let ls = s.ok(&["fs", "ls", "build", "/c"]);
    assert!(ls.contains("prog") && ls.contains("libf.a"), "{ls}");
}

#[test]
fn fsx_random_file_operations_agree_with_a_disk_file_system() {
    // `tests/fsx.py`: random writes, mmaps, truncates, fallocates, copies,
    // renames and cache drops through the mount and on a disk file system
    // give the same results and bytes, and the same files again after a
    // remount.
    let s = TestStore::new();
    let point = s.scratch("mnt");
    let fsx = Path::new(env!("CARGO_MANIFEST_DIR")).join("fsx.py");
    // The reference must zero ranges as the mount does (tmpfs cannot):
    // a disk file system such as ext4 or xfs.
    let reference = tempfile::Builder::new()
        .prefix("hydra-fsx-")
        .tempdir_in("/var/tmp")
        .expect("reference directory");
    let probe = reference.path().join("probe");
    std::fs::write(&probe, [1u8; 8192]).expect("probe file");
    let zeroed = Command::new("fallocate")
        .args(["-z", "-o", "0", "-l", "4096"])
        .arg(&probe)
        .status();
    assert!(
        zeroed.is_ok_and(|st| st.success()),
        "fsx needs a reference file system with fallocate's ZERO_RANGE under /var/tmp (ext4, xfs)"
    );
    std::fs::remove_file(&probe).expect("remove probe");
    let run = |args: &[&Path], what: &str| {
        let out = Command::new("python3")
            .arg(&fsx)
            .args(args)
            .output()
            .expect("python3 (scripts/test.sh installs it)");
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "fsx {what}: {text}");
        eprint!("{text}{}", String::from_utf8_lossy(&out.stdout));
    };
    for seed in ["1", "2", "3"] {
        let dir = reference.path().join(seed);
        std::fs::create_dir(&dir).expect("mkdir");
        let m = Mounted::new(&s, "fsx", &point, &[]);
        let inside = m.path(seed);
        std::fs::create_dir(&inside).expect("mkdir in the mount");
        let (run_, ops) = (Path::new("run"), Path::new("600"));
        run(&[run_, &inside, &dir, Path::new(seed), ops], seed);
        m.umount();
        let m = Mounted::new(&s, "fsx", &point, &[]);
        run(&[Path::new("check"), &m.path(seed), &dir], seed);
        m.umount();
    }
}

#[test]
fn copies_share_chunks_and_restore_from_snapshots() {
    // `cp` (copy_file_range) shares the source's chunks: copies of large
    // and terabyte sparse files take no time and no space, at any offset,
    // from the live tree or a snapshot, and survive a remount.
    let s = TestStore::new();
    let point = s.scratch("mnt");
    let store = s.path();
    let store = store.to_str().expect("utf-8");
    let check = r#"
        cmp big copy
        cmp big copy2
        cmp orig restored
        cmp - ranged < want
        test "$(stat -c %s sparse2)" = 1099511627776
        dd if=sparse2 bs=1M skip=400000 count=1 status=none | cmp - lump
    "#;
    script_then_check_after_remount(
        &s,
        "copies",
        &point,
        &format!(
            r#"
            head -c 268435456 /dev/urandom > orig
            dd if=orig of=big bs=1M conv=fsync status=none
            before=$(du -sb {store} | cut -f1)
            timeout 20 cp big copy
            timeout 20 cp --reflink=never big copy2
            sync
            grown=$(( $(du -sb {store} | cut -f1) - before ))
            echo "two copies of 256 MiB stored $grown bytes" >&2
            test "$grown" -lt 8388608
            # Ranges at odd offsets, into a file with bytes of its own.
            python3 - <<'PY'
import os
src = os.open("big", os.O_RDONLY)
dst = os.open("ranged", os.O_RDWR | os.O_CREAT, 0o644)
os.write(dst, b"x" * 100_000)
want = bytearray(b"x" * 100_000)
orig = open("orig", "rb").read()
for at, frm, n in [(5, 12_345, 3_000_001), (90_000, 100_000_000, 50_000_000), (200_000_000, 1, 7)]:
    done = 0
    while done < n:
        k = os.copy_file_range(src, dst, n - done, frm + done, at + done)
        assert k > 0, (at, frm, n, done)
        done += k
    if len(want) < at + n:
        want.extend(bytes(at + n - len(want)))
    want[at:at + n] = orig[frm:frm + n]
# Past the source's end: nothing.
assert os.copy_file_range(src, dst, 10, 1 << 40, 0) == 0
open("want", "wb").write(want)
PY
            # Changed and committed, then restored from the snapshot before.
            snap=$(ls .snapshots | sort -n | tail -1)
            dd if=/dev/urandom of=big bs=1M seek=100 count=1 conv=notrunc,fsync status=none
            ! cmp -s big orig
            timeout 20 cp .snapshots/$snap/big restored
            cp restored big
            # A terabyte sparse file copies in a moment.
            truncate -s 1T sparse
            head -c 1048576 /dev/urandom > lump
            dd if=lump of=sparse bs=1M seek=400000 conv=notrunc status=none
            timeout 60 cp sparse sparse2
            {check}"#
        ),
        check,
    );
}

#[test]
fn snapshots_are_reachable_by_id_and_hidden_from_readdir() {
    let s = TestStore::new();
    let m = Mounted::new(&s, "snap", &s.scratch("mnt"), &[]);
    let fsync = |p: &Path| {
        std::fs::File::open(p)
            .and_then(|f| f.sync_all())
            .expect("fsync")
    };
    std::fs::write(m.path("f"), b"one").expect("write");
    fsync(&m.path("f"));
    std::fs::write(m.path("f"), b"two").expect("write");
    fsync(&m.path("f"));
    let names: Vec<String> = std::fs::read_dir(&m.point)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["f"], "the root's listing does not show .snapshots");
    let mut ids: Vec<u64> = std::fs::read_dir(m.path(".snapshots"))
        .expect("ls .snapshots")
        .map(|e| {
            e.expect("entry")
                .file_name()
                .to_string_lossy()
                .parse()
                .expect("ids are numbers")
        })
        .collect();
    ids.sort();
    assert!(ids.len() >= 3, "{ids:?}");
    let contents: Vec<Option<Vec<u8>>> = ids
        .iter()
        .map(|id| std::fs::read(m.path(&format!(".snapshots/{id}/f"))).ok())
        .collect();
    assert!(contents.contains(&Some(b"one".to_vec())), "{contents:?}");
    assert_eq!(contents.last().cloned().flatten(), Some(b"two".to_vec()));
    let last = ids.last().expect("an id");
    let err = std::fs::write(m.path(&format!(".snapshots/{last}/f")), b"x").expect_err("read-only");
    assert_eq!(
        err.raw_os_error(),
        Some(libc::EROFS),
        "snapshots are read-only"
    );
    let err =
        std::fs::create_dir(m.path(&format!(".snapshots/{last}/new"))).expect_err("read-only");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    m.umount();
}

#[test]
fn a_normal_user_mounts_through_fusermount3() {
    assert!(
        Command::new("fusermount3").arg("-V").output().is_ok(),
        "fusermount3 missing: scripts/test.sh installs fuse3"
    );
    // Debian's udev rule makes /dev/fuse 0666; a bare container may not.
    sh("chmod 0666 /dev/fuse", Path::new("/"));
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let bin = d.join("hydra");
    std::fs::copy(hydra_tests::hydra_bin(), &bin)
        .expect("copy the binary where the user can run it");
    sh(
        &format!(
            "chmod 0755 {bin} && mkdir {d}/m && chown -R nobody:nogroup {d} && chmod 0755 {d}",
            bin = bin.display(),
            d = d.display()
        ),
        d,
    );
    let as_user = |args: &str| {
        sh(
            &format!(
                "runuser -u nobody -- env HOME={d} {bin} --store {d}/store {args}",
                d = d.display(),
                bin = bin.display()
            ),
            d,
        )
    };
    as_user(&format!("mount home {}/m", d.display()));
    let mounts = std::fs::read_to_string("/proc/mounts").expect("mounts");
    let line = mounts
        .lines()
        .find(|l| l.contains(&format!("{}/m", d.display())))
        .expect("mounted");
    assert!(
        line.contains("fuse.hydra") && line.contains("user_id=65534"),
        "mounted by the user through fusermount3: {line}"
    );
    sh(
        &format!(
            "runuser -u nobody -- sh -c 'echo mine > {d}/m/f && mkdir {d}/m/dir && test \"$(stat -c %u {d}/m/f)\" = 65534'",
            d = d.display()
        ),
        d,
    );
    // Without --allow-other the mount is its user's alone, even to root.
    assert!(std::fs::metadata(d.join("m/f")).is_err());
    as_user(&format!("umount {}/m", d.display()));
    assert_eq!(as_user("fs cat home /f"), "mine\n");
}

/// Removes the installed fstab helper when the test ends.
struct Helper(PathBuf);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn fstab_helper_serves_mount_t_fuse_hydra() {
    let s = TestStore::new();
    // mount(8) runs /sbin/mount.fuse.hydra for type fuse.hydra: the hydra
    // binary under that name.
    let helper = Helper(PathBuf::from("/sbin/mount.fuse.hydra"));
    let _ = std::fs::remove_file(&helper.0);
    std::os::unix::fs::symlink(hydra_tests::hydra_bin(), &helper.0).expect("install the helper");
    let point = s.scratch("mnt");
    std::fs::create_dir_all(&point).expect("mkdir");
    let out = Command::new("mount")
        .args(["-t", "fuse.hydra", "-o"])
        .arg(format!(
            "rw,noauto,store={},commit_interval=2,x-systemd.automount",
            s.path().display()
        ))
        .arg("home")
        .arg(&point)
        .output()
        .expect("run mount");
    assert!(
        out.status.success(),
        "mount -t fuse.hydra: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(point.join("from-fstab"), b"mounted by mount(8)").expect("write");
    // A bad option is one clear line and mounts nothing.
    let bad = Command::new(&helper.0)
        .args(["home", "/nonexistent", "-o", "store=/x,bogus"])
        .output()
        .expect("run the helper");
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("unknown mount option") && err.lines().count() == 1,
        "{err}"
    );
    s.ok(&["umount", point.to_str().expect("utf-8")]);
    assert_eq!(
        s.ok(&["fs", "cat", "home", "/from-fstab"]),
        "mounted by mount(8)"
    );
}

#[test]
fn git_views_show_every_revision_read_only() {
    let s = TestStore::new();
    let work = s.scratch("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    let source = hydra_tests::git_history(&work, 520);
    let src = source.to_str().expect("utf-8");
    s.ok(&["git", "import", src, "--as", "h"]);
    let m = Mounted::new(&s, "home", &s.scratch("mnt"), &[]);
    let views = m.path(".git-views");
    // Reachable by name, not listed in the root.
    let root: Vec<_> = std::fs::read_dir(&m.point)
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(!root.iter().any(|n| n == ".git-views"), "{root:?}");
    assert_eq!(
        sh(&format!("ls {}", views.display()), &work),
        "h\n",
        "one repository"
    );
    let names = sh(&format!("ls {}", views.join("h").display()), &work);
    for want in ["HEAD", "main", "v0.1", "feature:f200"] {
        assert!(names.lines().any(|l| l == want), "{want} in {names}");
    }
    // Branch, tag, commit id and expression views match git's checkouts.
    let commit = sh(&format!("git -C {src} rev-parse main~7"), &work);
    let commit = commit.trim();
    let listing = "find . -path ./.git -prune -o -printf '%y %m %s %p %l\\n' | sort";
    for (rev, name) in [
        ("main", "main"),
        ("v0.1", "v0.1"),
        ("feature/f200", "feature:f200"),
        (commit, commit),
        ("main~7", "main~7"),
    ] {
        let theirs = sh(
            &format!(
                "rm -rf wt && git clone -q {src} wt && git -C wt checkout -q {rev} && cd wt && {listing}"
            ),
            &work,
        );
        let view = views.join("h").join(name);
        let ours = sh(&format!("cd '{}' && {listing}", view.display()), &work);
        assert_eq!(ours, theirs, "{rev}");
        sh(
            &format!("diff -r --exclude=.git wt '{}'", view.display()),
            &work,
        );
    }
    // `cp` out of a view shares its chunks with the live tree, and the copy
    // reads the same after a remount.
    let main = views.join("h/main");
    sh(
        &format!(
            "cd '{}' && for f in $(find . -type f -size +1k | sort | head -3); do cp $f {}/from-git-$(basename $f); cmp $f {}/from-git-$(basename $f); done",
            main.display(),
            m.point.display(),
            m.point.display()
        ),
        &work,
    );
    let err = std::fs::write(views.join("h/main/new.txt"), b"x").expect_err("read-only");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    let err = std::fs::metadata(views.join("h/no-such-branch")).expect_err("absent");
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    let err = std::fs::metadata(views.join("nosuch")).expect_err("absent");
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    let point = m.point.clone();
    m.umount();
    let m = Mounted::new(&s, "home", &point, &[]);
    let copies = sh(
        &format!(
            "cd '{}' && for f in $(find . -type f -size +1k | sort | head -3); do cmp $f {}/from-git-$(basename $f); echo ok; done",
            m.path(".git-views/h/main").display(),
            m.point.display()
        ),
        &work,
    );
    assert_eq!(copies, "ok\nok\nok\n");
    m.umount();
}

/// Has the kernel drop its unused dentries and inodes every 200 ms while
/// it lives.
struct DropCaches(std::process::Child);

impl DropCaches {
    fn every_200ms() -> Self {
        DropCaches(
            Command::new("bash")
                .args([
                    "-c",
                    "while :; do echo 2 > /proc/sys/vm/drop_caches; sleep 0.2; done",
                ])
                .spawn()
                .expect("spawn bash"),
        )
    }
}

impl Drop for DropCaches {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The daemon's inode counts from `hydra status`: (in memory, unloaded).
fn inode_counts(s: &TestStore) -> (u64, u64, bool) {
    let status: serde_json::Value =
        serde_json::from_str(&s.ok(&["--json", "status"])).expect("json");
    let m = &status[0];
    (
        m["inodes"].as_u64().expect("inodes"),
        m["unloaded"].as_u64().expect("unloaded"),
        m["dirty"].as_bool().expect("dirty"),
    )
}

#[test]
fn forgotten_directories_unload_and_come_back_unchanged() {
    let s = TestStore::new();
    let work = s.scratch("work");
    std::fs::create_dir_all(work.join("ref")).expect("mkdir");
    hydra_tests::awkward_tar(&work, 40, 1);
    hydra_tests::git_origin(&work, 12);
    let m = Mounted::new(
        &s,
        "u",
        &s.scratch("mnt"),
        &["--max-inodes", "32", "--commit-interval", "1"],
    );
    let point = m.point.display().to_string();
    let tar = "tar --xattrs --xattrs-include='*' -xpf t.tar -C";
    sh(&format!("{tar} ref && {tar} {point}/"), &work);
    sh(
        &format!("git clone -q --no-hardlinks origin {point}/clone"),
        &work,
    );
    // Inode numbers included: they must not change when inodes unload.
    let listing = r#"find . -mindepth 1 -printf '%i|%p|%y|%m|%U:%G|%s|%T@|%n|%l\n' | LC_ALL=C sort -t'|' -k2 | awk -F'|' -v OFS='|' '$3=="d"{$6="-"}1'"#;
    let before = sh(listing, &m.point);
    assert!(before.lines().count() > 200, "{before}");
    hydra_tests::eventually("the changes committed", || !inode_counts(&s).2);
    // The kernel forgets its unused inodes; the daemon then unloads them.
    std::fs::write("/proc/sys/vm/drop_caches", "2").expect("drop caches");
    hydra_tests::eventually("the forgotten directories unloaded", || {
        let (inodes, unloaded, _) = inode_counts(&s);
        inodes <= 64 && unloaded >= 200
    });
    eprintln!("after drop_caches: {:?}", inode_counts(&s));
    // Everything comes back as it was: names, numbers, counts and bytes.
    assert_eq!(sh(listing, &m.point), before);
    assert_same_bytes(&work.join("ref"), &m.point, &["-x", "clone"]);
    // git while the kernel keeps forgetting: lookups of unloaded inodes
    // race the daemon's unloading.
    let dropper = DropCaches::every_200ms();
    sh(
        &format!(
            "cd {point}/clone && test -z \"$(git status --porcelain)\" && git fsck --full && \
             for i in 1 2 3; do git checkout -q HEAD~5 && git checkout -q main && \
             test -z \"$(git status --porcelain)\"; done && \
             echo more >> README && git commit -qam more && git gc -q && git fsck --full"
        ),
        &work,
    );
    drop(dropper);
    m.umount();
    let m = Mounted::new(&s, "u", &s.scratch("mnt"), &[]);
    let strip = |t: &str| {
        t.lines()
            .filter(|l| !l.contains("/clone"))
            .map(|l| l.split_once('|').map_or(l, |(_, rest)| rest).to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&sh(listing, &m.point)), strip(&before));
    m.umount();
}
