//! The Linux kernel's 9P client against `hydra serve`: a QEMU guest (built
//! by `tests/guest/build.sh` from Debian's kernel and busybox) mounts the
//! server with `mount -t 9p -o trans=tcp` and runs the host's own tar,
//! git, sqlite3, fio and `tests/fsx.py` in it, as the FUSE tests do on the
//! host.

use std::path::Path;

use hydra_tests::TestStore;

use super::guest;
use super::ninep::Served;

#[test]
fn linux_kernel_client_carries_tar_git_sqlite_fio_fsx() {
    let image = guest::image();
    let s = TestStore::new();
    // The guest sees the host's root read-only, but its /tmp is its own:
    // inputs live under /var/tmp.
    let work = tempfile::Builder::new()
        .prefix("hydra-9p-")
        .tempdir_in("/var/tmp")
        .expect("tempdir");
    let w = work.path();
    hydra_tests::awkward_tar(w, 40, 8);
    hydra_tests::git_origin(w, 20);
    // (Under /var/tmp too: the checkout may live in the host's /tmp.)
    let fsx = w.join("fsx.py");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("fsx.py"), &fsx).expect("copy fsx.py");
    // Few inodes kept: what the guest walked and closed unloads once
    // committed, and its fids and cached qids must still name it.
    let srv = Served::serve(&s, "k", &["--max-inodes", "64", "--commit-interval", "1"]);
    let port = srv.addr.rsplit(':').next().expect("port");
    let script = w.join("guest.sh");
    std::fs::write(
        &script,
        format!(
            r#"set -eu
W={w}
mnt() {{ mount -t 9p -o trans=tcp,port={port},version=9p2000.L,msize=1048576,cache=loose,aname=k 10.0.2.2 /tmp/h; }}
# Times to the second: the 6.1 kernel's v9fs keeps 1 s granularity.
listing() {{
  cd "$1" && find . -mindepth 1 -printf '%p|%y|%m|%U:%G|%s|%T@|%n|%l\n' | LC_ALL=C sort | awk -F'|' '$2=="d"{{$5="-"}} {{split($6,t,"."); $6=t[1]}} 1'
}}
mkdir -p /tmp/h /tmp/ref
mnt
grep ' 9p ' /proc/mounts | grep -q 10.0.2.2 && echo MOUNTED
tar --xattrs --xattrs-include='*' -xpf $W/t.tar -C /tmp/ref
mkdir /tmp/h/tar
tar --xattrs --xattrs-include='*' -xpf $W/t.tar -C /tmp/h/tar
(listing /tmp/ref) > /tmp/l1
(listing /tmp/h/tar) > /tmp/l2
diff /tmp/l1 /tmp/l2
diff -r --no-dereference /tmp/ref /tmp/h/tar | grep -v -e fifo -e 'character special' > /tmp/d || true
test ! -s /tmp/d
# (the guest's tmpfs keeps no user xattrs; the mount must)
test "$(getfattr -h --only-values -n user.k /tmp/h/tar/target)" = v
test "$(getfattr -h --only-values -n user.k /tmp/h/tar/hard)" = v
echo TAR-OK
cd /tmp/h && cp -a tar/many copy && mv copy/d1 moved && diff -r tar/many/d1 moved && rm -r copy && cd /
echo CP-MV-OK
git clone -q --no-hardlinks $W/origin /tmp/h/clone
cd /tmp/h/clone
test -z "$(git status --porcelain)"
git fsck --full 2>/dev/null
git checkout -q v1 && test -z "$(git status --porcelain)"
git checkout -q main && git gc -q && git fsck --full 2>/dev/null
cd /
echo GIT-OK
sqlite3 /tmp/h/test.db "PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 100000) INSERT INTO t(v) SELECT hex(randomblob(20)) FROM c; SELECT count(*) FROM t;" | grep -q 100000
echo SQLITE-OK
for rw in randwrite write; do
  fio --name=v --directory=/tmp/h --rw=$rw --bs=4k --size=16m --verify=crc32c --do_verify=1 --ioengine=psync --end_fsync=1 > /tmp/fio.out
  ! grep -q 'verify: bad' /tmp/fio.out
done
echo FIO-OK
# 9P has no fallocate: the rest of fsx's operations, against the guest's /tmp.
mkdir /tmp/h/fsx /tmp/fsx
python3 {fsx} run /tmp/h/fsx /tmp/fsx 7 300 alloc,punch,zero
echo FSX-OK
umount /tmp/h
mnt
python3 {fsx} check /tmp/h/fsx /tmp/fsx
test "$(sqlite3 /tmp/h/test.db 'PRAGMA integrity_check; SELECT count(*) FROM t;' | tr '\n' ' ')" = "ok 100000 "
cd /tmp/h/clone && git fsck --full 2>/dev/null && test -z "$(git status --porcelain)" && cd /
umount /tmp/h
echo REMOUNT-OK
"#,
            w = w.display(),
            fsx = fsx.display()
        ),
    )
    .expect("write guest script");
    let console = guest::boot(&image, &script, None, |_| false);
    for marker in [
        "MOUNTED",
        "TAR-OK",
        "CP-MV-OK",
        "GIT-OK",
        "SQLITE-OK",
        "FIO-OK",
        "FSX-OK",
        "REMOUNT-OK",
        "GUEST-EXIT 0",
    ] {
        assert!(
            console.contains(marker),
            "guest did not reach {marker}:\n{console}"
        );
    }
    let status: serde_json::Value =
        serde_json::from_str(&s.ok(&["--json", "status"])).expect("json");
    assert!(
        status[0]["unloads"].as_u64().expect("unloads") > 0,
        "nothing unloaded: {status}"
    );
    srv.stop();
    // Everything the guest wrote is committed in the store.
    let ls = s.ok(&["fs", "ls", "k", "/"]);
    for name in ["tar", "clone", "test.db", "moved"] {
        assert!(ls.contains(name), "{name} missing: {ls}");
    }
}
