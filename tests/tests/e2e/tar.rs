//! Tar round trips through `hydra import tar` / `hydra export tar`, with a
//! generated tree that holds every awkward case, compared with what real
//! `tar` extracts.

use std::path::Path;
use std::process::Command;

use hydra_tests::{TestStore, last_line, sh};

fn need(tool: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(found, "{tool} is required (scripts/test.sh installs it)");
}

/// Builds the awkward tree under `dir/src`.
fn awkward_tree(dir: &Path, big_mib: u32) {
    sh(
        &format!(
            r#"
mkdir src && cd src
# thousands of small files in a few dozen directories
for d in $(seq 1 30); do
  mkdir -p "many/d$d"
  for f in $(seq 1 100); do
    head -c $(( (d * 131 + f * 977) % 16384 )) /dev/urandom > "many/d$d/f$f"
  done
done
: > empty
head -c {big_mib}M /dev/urandom > big.bin
# long names and deep paths
long=$(printf 'n%.0s' $(seq 1 255)); echo long > "$long"
deep=$(printf 'deep-directory-%02d/' $(seq 1 60)); mkdir -p "$deep"; echo deep > "${{deep}}leaf"
# links of every kind
echo target > target.txt
ln target.txt hard1; mkdir h; ln target.txt h/hard2
ln -s target.txt rel-link; ln -s /etc/passwd abs-link; ln -s ../../nowhere dangling
ln -s "$long" long-link-target
mkfifo fifo
mknod chardev c 1 3; mknod blockdev b 7 0
# modes and owners
echo suid > suid; chmod 4755 suid
echo sgid > sgid; chmod 2755 sgid
mkdir sticky; chmod 1777 sticky
echo odd > odd-owner; chown 12345:54321 odd-owner
mkdir "with space" "ünïcødé ✓"; echo s > "with space/a b"; echo u > "ünïcødé ✓/ф"
# xattrs
setfattr -n user.color -v blue target.txt
setfattr -n user.empty odd-owner
setfattr -n user.bin -v 0x00ff10 "with space/a b"
# nanosecond times
touch -h -d '2001-02-03 04:05:06.123456789' target.txt
touch -d '1999-12-31 23:59:59.5' "ünïcødé ✓"
"#
        ),
        dir,
    );
}

/// A listing of a tree: path, type, mode, owner, size, mtime (ns), link
/// count, link target, and xattrs, one line each, sorted.
fn listing(dir: &Path) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(
            "find . -mindepth 1 -printf '%p|%y|%m|%U:%G|%s|%T@|%n|%l\\n' | LC_ALL=C sort; \
             getfattr -h -d -m '^user\\.' -R . 2>/dev/null | grep -v '^$' ",
        )
        .current_dir(dir)
        .output()
        .expect("find");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    // Directory sizes are the host filesystem's business, not the archive's.
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            if f.len() == 8 && f[1] == "d" {
                format!("{}|d|{}|{}|-|{}|{}|", f[0], f[2], f[3], f[5], f[6])
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn extract(archive: &Path, into: &Path) {
    std::fs::create_dir_all(into).expect("mkdir");
    let out = Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "-xpf"])
        .arg(archive)
        .arg("-C")
        .arg(into)
        .output()
        .expect("tar -x");
    assert!(
        out.status.success(),
        "tar -x: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn tar_round_trip_keeps_everything() {
    for tool in ["tar", "setfattr", "getfattr", "gzip", "zstd", "xz", "bzip2"] {
        need(tool);
    }
    let s = TestStore::new();
    let work = s.scratch("work");
    std::fs::create_dir(&work).expect("mkdir");
    awkward_tree(&work, 200);
    sh(
        "tar --format=pax --xattrs --xattrs-include='*' -cpf orig.tar -C src . && \
         tar --format=pax --xattrs --xattrs-include='*' --exclude=./big.bin -cpf small.tar -C src . && \
         gzip -c small.tar > small.tar.gz && zstd -q -c small.tar > small.tar.zst && \
         xz -T1 -0 -c small.tar > small.tar.xz && bzip2 -c small.tar > small.tar.bz2",
        &work,
    );
    extract(&work.join("orig.tar"), &work.join("a"));
    let expected = listing(&work.join("a"));
    assert!(
        expected.contains("user.color=\"blue\""),
        "the fixture has xattrs"
    );

    {
        let (i, name) = (0, "orig.tar");
        let fs_name = format!("t{i}");
        let archive = work.join(name);
        let out = s.ok(&[
            "import",
            "tar",
            archive.to_str().expect("utf-8"),
            "--fs",
            &fs_name,
        ]);
        assert!(last_line(&out).starts_with("bafy"), "{out}");
        let exported = work.join(format!("out{i}.tar"));
        s.ok(&[
            "export",
            "tar",
            "--fs",
            &fs_name,
            "-o",
            exported.to_str().expect("utf-8"),
        ]);
        let back = work.join(format!("b{i}"));
        extract(&exported, &back);
        let got = listing(&back);
        if got != expected {
            let a: Vec<&str> = expected.lines().collect();
            let b: Vec<&str> = got.lines().collect();
            let only_a: Vec<&&str> = a.iter().filter(|l| !b.contains(l)).take(10).collect();
            let only_b: Vec<&&str> = b.iter().filter(|l| !a.contains(l)).take(10).collect();
            panic!(
                "{name}: listings differ\nonly in original: {only_a:#?}\nonly in round trip: {only_b:#?}"
            );
        }
        let diff = Command::new("diff")
            .args(["-r", "--no-dereference"])
            .arg(work.join("a"))
            .arg(&back)
            .output()
            .expect("diff");
        let report = String::from_utf8_lossy(&diff.stdout);
        let real: Vec<&str> = report
            .lines()
            .filter(|l| {
                !l.contains("is a fifo")
                    && !l.contains("character special")
                    && !l.contains("block special")
            })
            .collect();
        assert!(real.is_empty(), "{name}: bytes differ: {real:?}");
    }
    // Every compressed form gives the same archive back as the plain one.
    let toc = |archive: &Path| -> String {
        let out = Command::new("tar")
            .args(["--full-time", "--numeric-owner", "-tvf"])
            .arg(archive)
            .output()
            .expect("tar -t");
        assert!(out.status.success());
        String::from_utf8(out.stdout).expect("utf-8")
    };
    // The same tree imported as a directory of this machine round-trips too.
    s.ok(&[
        "import",
        "dir",
        work.join("src").to_str().expect("utf-8"),
        "--fs",
        "fromdir",
    ]);
    let dir_out = work.join("fromdir.tar");
    s.ok(&[
        "export",
        "tar",
        "--fs",
        "fromdir",
        "-o",
        dir_out.to_str().expect("utf-8"),
    ]);
    extract(&dir_out, &work.join("d"));
    let from_dir = listing(&work.join("d"));
    // The source's own top directory times differ from tar's extraction of it.
    let strip_top = |l: &str| {
        l.lines()
            .filter(|x| !x.starts_with(".|"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        strip_top(&from_dir),
        strip_top(&listing(&work.join("src"))),
        "import dir keeps everything"
    );

    // Compressed forms (of the tree without the big file) give back the
    // same archive as the plain one.
    s.ok(&[
        "import",
        "tar",
        work.join("small.tar").to_str().expect("utf-8"),
        "--fs",
        "small",
    ]);
    s.ok(&[
        "export",
        "tar",
        "--fs",
        "small",
        "-o",
        work.join("small-out.tar").to_str().expect("utf-8"),
    ]);
    let plain = toc(&work.join("small-out.tar"));
    assert!(plain.contains("many/d30/f100"), "{plain}");
    for (i, name) in [
        "small.tar.gz",
        "small.tar.zst",
        "small.tar.xz",
        "small.tar.bz2",
    ]
    .iter()
    .enumerate()
    {
        let fs_name = format!("c{i}");
        s.ok(&[
            "import",
            "tar",
            work.join(name).to_str().expect("utf-8"),
            "--fs",
            &fs_name,
        ]);
        let out = work.join(format!("c{i}.tar"));
        s.ok(&[
            "export",
            "tar",
            "--fs",
            &fs_name,
            "-o",
            out.to_str().expect("utf-8"),
        ]);
        assert_eq!(toc(&out), plain, "{name}");
    }
}

#[test]
fn second_import_of_the_same_archive_stores_almost_nothing() {
    need("tar");
    let s = TestStore::new();
    let work = s.scratch("work");
    std::fs::create_dir(&work).expect("mkdir");
    sh(
        "mkdir src && for i in $(seq 1 200); do head -c $((i * 300)) /dev/urandom > src/f$i; done && \
         head -c 20M /dev/urandom > src/big && tar -cf x.tar -C src .",
        &work,
    );
    let tar = work.join("x.tar");
    s.ok(&["import", "tar", tar.to_str().expect("utf-8"), "--fs", "one"]);
    let stats = |s: &TestStore| -> u64 {
        let v: serde_json::Value = serde_json::from_str(&s.ok(&["--json", "stats"])).expect("json");
        v["volumes"][0]["block_bytes"].as_u64().expect("bytes")
    };
    let before = stats(&s);
    s.ok(&["import", "tar", tar.to_str().expect("utf-8"), "--fs", "two"]);
    let added = stats(&s) - before;
    let size = std::fs::metadata(&tar).expect("stat").len();
    assert!(
        added * 100 < size,
        "second import added {added} bytes for a {size}-byte archive"
    );
}

#[test]
fn hostile_archives_are_contained() {
    need("python3");
    let s = TestStore::new();
    let work = s.scratch("work");
    std::fs::create_dir(&work).expect("mkdir");
    sh(
        r#"python3 - <<'PY'
import io, tarfile
def add(t, name, data=b"x", **kw):
    info = tarfile.TarInfo(name); info.size = len(data)
    for k, v in kw.items(): setattr(info, k, v)
    t.addfile(info, io.BytesIO(data))
with tarfile.open("evil.tar", "w", format=tarfile.PAX_FORMAT) as t:
    add(t, "/abs/file", b"absolute")
    add(t, "../escape", b"up")
    add(t, "ok/../../escape2", b"up2")
    link = tarfile.TarInfo("link"); link.type = tarfile.SYMTYPE; link.linkname = "/etc"; t.addfile(link)
    add(t, "link/passwd", b"through the symlink")
    add(t, "fine", b"fine")
PY"#,
        &work,
    );
    let out = s.run(&[
        "import",
        "tar",
        work.join("evil.tar").to_str().expect("utf-8"),
        "--fs",
        "e",
        "--at",
        "/inside",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let warnings = String::from_utf8_lossy(&out.stderr);
    for name in ["../escape", "ok/../../escape2", "link/passwd"] {
        assert!(
            warnings.contains(name),
            "a warning names {name}: {warnings}"
        );
    }
    let listing = s.ok(&["fs", "ls", "e", "/inside"]);
    let names: Vec<&str> = listing.lines().collect();
    assert_eq!(
        names,
        ["abs/", "fine", "link"],
        "nothing lands outside --at"
    );
    assert_eq!(s.ok(&["fs", "ls", "e", "/"]).trim(), "inside/");
    assert_eq!(s.ok(&["fs", "cat", "e", "/inside/abs/file"]), "absolute");
}

#[test]
fn broken_archives_change_nothing() {
    need("tar");
    let s = TestStore::new();
    let work = s.scratch("work");
    std::fs::create_dir(&work).expect("mkdir");
    sh(
        "mkdir src && head -c 100000 /dev/urandom > src/a && head -c 300000 /dev/urandom > src/b && \
         tar -cf good.tar -C src . && head -c 150000 good.tar > truncated.tar && \
         cp good.tar corrupt.tar && printf 'garbage!' | dd of=corrupt.tar bs=1 seek=148 conv=notrunc status=none && \
         head -c 5000 /dev/urandom > random.bin && gzip -c good.tar | head -c 20000 > cut.tar.gz",
        &work,
    );
    s.ok(&[
        "import",
        "tar",
        work.join("good.tar").to_str().expect("utf-8"),
        "--fs",
        "x",
    ]);
    let root = last_line(&s.ok(&["ref", "get", "fs/x"])).to_string();
    let log = s.ok(&["--json", "fs", "log", "x"]);
    for bad in ["truncated.tar", "corrupt.tar", "random.bin", "cut.tar.gz"] {
        let err = s.fails(&[
            "import",
            "tar",
            work.join(bad).to_str().expect("utf-8"),
            "--fs",
            "x",
        ]);
        assert!(err.contains("archive"), "{bad}: {err}");
        assert_eq!(
            last_line(&s.ok(&["ref", "get", "fs/x"])),
            root,
            "{bad} left fs/x as it was"
        );
    }
    let trunc = s.fails(&[
        "import",
        "tar",
        work.join("truncated.tar").to_str().expect("utf-8"),
        "--fs",
        "x",
    ]);
    assert!(trunc.contains("./b"), "the error names the entry: {trunc}");
    assert_eq!(s.ok(&["--json", "fs", "log", "x"]), log);
    // A failed import into a new filesystem does not create it.
    s.fails(&[
        "import",
        "tar",
        work.join("corrupt.tar").to_str().expect("utf-8"),
        "--fs",
        "new",
    ]);
    s.fails(&["ref", "get", "fs/new"]);
}

#[test]
fn fs_commands_and_snapshots() {
    let s = TestStore::new();
    let local = s.scratch("local");
    std::fs::write(&local, b"version one").expect("write");
    s.ok(&["fs", "mkdir", "w", "/a/b/c", "-p"]);
    s.ok(&[
        "fs",
        "put",
        "w",
        local.to_str().expect("utf-8"),
        "/a/b/c/file",
    ]);
    assert_eq!(s.ok(&["fs", "cat", "w", "/a/b/c/file"]), "version one");
    let snap: serde_json::Value =
        serde_json::from_str(&s.ok(&["--json", "fs", "snapshot", "w", "-m", "v1"])).expect("json");
    let snap_id = snap["id"].as_u64().expect("id").to_string();
    std::fs::write(&local, b"version two").expect("write");
    s.ok(&[
        "fs",
        "put",
        "w",
        local.to_str().expect("utf-8"),
        "/a/b/c/file",
    ]);
    s.ok(&["fs", "put", "w", local.to_str().expect("utf-8"), "/a/new"]);
    s.ok(&["fs", "mv", "w", "/a/b", "/moved"]);
    s.ok(&["fs", "rm", "w", "/a/new"]);
    s.ok(&["fs", "mkdir", "w", "/gone"]);
    let head = last_line(&s.ok(&["ref", "get", "fs/w"])).to_string();
    let diff = s.ok(&["fs", "diff", "w", &snap_id, &head]);
    assert!(diff.contains("D\t/a/b/"), "{diff}");
    assert!(diff.contains("A\t/moved/"), "{diff}");
    assert!(diff.contains("A\t/gone/"), "{diff}");
    s.ok(&["fs", "restore", "w", &snap_id]);
    assert_eq!(s.ok(&["fs", "cat", "w", "/a/b/c/file"]), "version one");
    let log = s.ok(&["fs", "log", "w"]);
    assert!(log.contains("restore") && log.contains("v1"), "{log}");
    // Names and paths the kernel would refuse.
    let long = "x".repeat(256);
    assert!(
        s.fails(&["fs", "mkdir", "w", &format!("/{long}")])
            .contains("too long")
    );
    let deep = "/d".repeat(2100);
    assert!(
        s.fails(&["fs", "mkdir", "w", &deep, "-p"])
            .contains("too long")
    );
    assert!(
        s.fails(&["fs", "cat", "w", "/absent"])
            .contains("no such file")
    );
    assert!(s.fails(&["fs", "rm", "w", "/a"]).contains("use -r"));
    s.ok(&["fs", "rm", "w", "/a", "-r"]);
    assert_eq!(s.ok(&["fs", "ls", "w", "/"]), "");
    s.fails(&["fs", "ls", "nosuchfs"]);
}
