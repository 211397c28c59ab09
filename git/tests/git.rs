//! The git view against real git: a round trip of a repository with
//! thousands of commits, incremental imports, history, trees and files as
//! git prints them, checkout into a filesystem, and bad sources refused
//! with nothing stored.

use std::path::{Path, PathBuf};
use std::process::Command;

use hydra_dag::{Bucket, OpenMode, Store, StoreOptions};
use hydra_fs::node::{Kind, Stored};
use hydra_fs::{Caller, Fs, FsOptions};
use hydra_git::{GitError, ObjectKind, Repo, checkout, export, import};

/// Runs git in `dir`; asserts success; returns stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run git (the test command installs it)");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A bare repository of `commits` commits made by the fixture script.
fn history(dir: &Path, commits: u32) -> PathBuf {
    let dest = dir.join("history.git");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/git_history.py");
    let status = Command::new("python3")
        .arg(script)
        .arg(&dest)
        .arg(commits.to_string())
        .status()
        .expect("run python3 (the test command installs it)");
    assert!(status.success(), "fixture script failed");
    dest
}

fn store(dir: &Path) -> Store {
    Store::init(&dir.join("store"), &StoreOptions::default())
        .expect("init")
        .0
}

fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn a_repository_with_thousands_of_commits_round_trips() {
    let tmp = tempfile::tempdir().expect("tmp");
    let source = history(tmp.path(), 3000);
    let store = store(tmp.path());
    let bucket = store.bucket().clone();

    let report = import(&bucket, "h", &source, "import").expect("import");
    let objects = git(&source, &["rev-list", "--all", "--objects"]);
    assert_eq!(report.copied.objects as usize, objects.lines().count());
    let repo = report.repo;

    // The same ids and refs back out; git finds nothing wrong.
    let out = tmp.path().join("out.git");
    let exported = export(&repo, &out).expect("export");
    assert_eq!(exported.objects, report.copied.objects);
    git(&out, &["fsck", "--full", "--strict"]);
    assert_eq!(
        git(&out, &["for-each-ref"]),
        git(&source, &["for-each-ref"])
    );
    assert_eq!(
        git(&out, &["symbolic-ref", "HEAD"]),
        git(&source, &["symbolic-ref", "HEAD"])
    );
    assert_eq!(
        sorted_lines(&git(&out, &["rev-list", "--all", "--objects"])),
        sorted_lines(&objects)
    );

    // Importing again stores nothing and leaves the version as it was.
    let again = import(&bucket, "h", &source, "again").expect("re-import");
    assert_eq!(again.copied.objects, 0);
    assert_eq!(again.repo.root(), repo.root());

    // New commits: only the new objects are copied.
    let work = tmp.path().join("work");
    git(
        tmp.path(),
        &["clone", "-q", source.to_str().expect("utf-8"), "work"],
    );
    git(&work, &["config", "user.email", "t@example.com"]);
    git(&work, &["config", "user.name", "t"]);
    std::fs::write(work.join("new.txt"), "new\n").expect("write");
    git(&work, &["add", "new.txt"]);
    git(&work, &["commit", "-q", "-m", "one more"]);
    git(&work, &["push", "-q", "origin", "main"]);
    let new = git(&source, &["rev-list", "--objects", "main", "^main~1"]);
    let third = import(&bucket, "h", &source, "third").expect("import");
    assert_eq!(third.copied.objects as usize, new.lines().count());
    assert_eq!(
        third.repo.resolve("main").expect("main").to_string(),
        git(&source, &["rev-parse", "main"]).trim()
    );
}

#[test]
fn history_trees_and_files_read_as_git_reads_them() {
    let tmp = tempfile::tempdir().expect("tmp");
    let source = history(tmp.path(), 700);
    let bucket = Bucket::in_memory();
    let repo = import(&bucket, "h", &source, "import")
        .expect("import")
        .repo;

    let head = repo.resolve("HEAD").expect("HEAD");
    let ids: Vec<String> = repo
        .log(&[head], usize::MAX)
        .expect("log")
        .into_iter()
        .map(|(oid, _)| oid.to_string())
        .collect();
    let want: Vec<String> = git(&source, &["rev-list", "HEAD"])
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(ids, want);

    for rev in [
        "main~3",
        "HEAD^2",
        "main~10^",
        "v0.1",
        "v0.1^{tree}",
        "v0.1^{}",
        "light-700",
        "feature/f200~2",
        "main~5^2",
    ] {
        let ours = repo.resolve(rev).map(|o| o.to_string());
        let theirs = Command::new("git")
            .args(["rev-parse", "--verify", "-q", rev])
            .current_dir(&source)
            .output()
            .expect("git");
        let theirs = String::from_utf8_lossy(&theirs.stdout).trim().to_string();
        if theirs.is_empty() {
            assert!(ours.is_err(), "{rev}: git knows no such revision");
        } else {
            assert_eq!(ours.expect(rev), theirs, "{rev}");
        }
    }
    let short = &want[5][..8];
    assert_eq!(repo.resolve(short).expect("short id").to_string(), want[5]);
    assert!(matches!(
        repo.resolve("no-such-branch"),
        Err(GitError::UnknownRevision(_))
    ));

    // Files of the head tree read back as git shows them.
    let listing = git(&source, &["ls-tree", "-r", "-z", "HEAD"]);
    let head_tree = repo.peel(&head, ObjectKind::Tree).expect("tree").0;
    let mut checked = 0;
    for line in listing.split('\0').filter(|l| !l.is_empty()).step_by(7) {
        let (meta, path) = line.split_once('\t').expect("tab");
        let entry = repo
            .entry_at(&head_tree, path)
            .expect("entry")
            .expect("present");
        assert_eq!(
            format!("{:06o} {}", entry.mode, entry.oid),
            format!("{} {}", &meta[..6], meta.rsplit(' ').next().expect("id"))
        );
        if entry.object_kind() == ObjectKind::Blob {
            let (_, ours) = repo.read(&entry.oid).expect("read");
            let theirs = Command::new("git")
                .args(["cat-file", "blob", &entry.oid.to_string()])
                .current_dir(&source)
                .output()
                .expect("git");
            assert_eq!(ours.as_ref(), theirs.stdout.as_slice(), "{path}");
            checked += 1;
        }
    }
    assert!(checked > 50, "{checked}");
}

#[test]
fn checkout_writes_the_tree_into_a_filesystem_in_one_commit() {
    let tmp = tempfile::tempdir().expect("tmp");
    let source = history(tmp.path(), 300);
    let store = store(tmp.path());
    let bucket = store.bucket().clone();
    let repo = import(&bucket, "h", &source, "import")
        .expect("import")
        .repo;

    let me = Caller::root();
    let options = FsOptions {
        commit_interval: None,
        ..FsOptions::default()
    };
    let fs = Fs::open(bucket.clone(), "work", &me, options).expect("fs");
    let before = bucket.log(None, usize::MAX).expect("log").len();
    let report = checkout(&repo, "main~2", &fs, b"/src/app", &me).expect("checkout");
    assert_eq!(bucket.log(None, usize::MAX).expect("log").len(), before + 1);
    // Into a directory that is not empty: refused, nothing changed.
    assert!(checkout(&repo, "main", &fs, b"/src", &me).is_err());
    fs.close().expect("close");

    // What git checks out, file by file: kind, mode and bytes.
    let wt = tmp.path().join("wt");
    git(
        tmp.path(),
        &["clone", "-q", source.to_str().expect("utf-8"), "wt"],
    );
    git(&wt, &["checkout", "-q", &report.commit.to_string()]);
    let root = bucket
        .get_ref(&hydra_dag::RefName::new("fs/work").expect("name"))
        .expect("ref")
        .expect("committed");
    let mut seen = 0;
    hydra_fs::walk(&bucket, &root, &mut |path, record| {
        let Some(rel) = path.strip_prefix(b"/src/app/") else {
            return Ok(true);
        };
        let on_disk = wt.join(std::str::from_utf8(rel).expect("utf-8"));
        let meta = std::fs::symlink_metadata(&on_disk).expect("git has it");
        match (&record.kind, &record.content) {
            (Kind::File, Stored::File(blob)) => {
                let want = std::fs::read(&on_disk).expect("read");
                assert_eq!(blob.size(), want.len() as u64, "{}", on_disk.display());
                let mut r = hydra_chunker::BlobReader::new(bucket.clone(), blob.clone());
                assert_eq!(r.read_at(0, want.len()).expect("read"), want);
                use std::os::unix::fs::PermissionsExt;
                assert_eq!(record.meta.perm & 0o100, meta.permissions().mode() & 0o100);
            }
            (Kind::Symlink, Stored::Symlink(target)) => {
                assert_eq!(
                    target.as_slice(),
                    std::fs::read_link(&on_disk)
                        .expect("link")
                        .as_os_str()
                        .as_encoded_bytes()
                );
            }
            (Kind::Dir, _) => assert!(meta.is_dir()),
            other => panic!("unexpected {other:?}"),
        }
        seen += 1;
        Ok(true)
    })
    .expect("walk");
    let files = git(&wt, &["ls-files"]).lines().count();
    assert!(seen >= files, "{seen} nodes for {files} files");
    // The submodule is an empty directory.
    assert!(wt.join("vendor/sub").is_dir());
    assert_eq!(report.nodes as usize, seen);

    // Reopened read-only, the committed tree is there.
    drop(store);
    let store = Store::open(
        &tmp.path().join("store"),
        OpenMode::ReadOnly,
        &StoreOptions::default(),
    )
    .expect("reopen");
    let fs = Fs::open_snapshot(store.bucket().clone(), root).expect("snapshot");
    let ino = fs.resolve(b"/src/app/tools/run.sh", &me).expect("exists");
    assert_eq!(fs.getattr(ino).expect("attr").perm, 0o755);
}

#[test]
fn bad_sources_are_refused_and_store_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let source = history(tmp.path(), 60);
    let store = store(tmp.path());
    let bucket = store.bucket().clone();
    let good = import(&bucket, "h", &source, "import")
        .expect("import")
        .repo;
    let state = |b: &Bucket| {
        (
            b.list_refs().expect("refs"),
            b.log(None, 1000).expect("log").len(),
        )
    };
    let before = state(&bucket);

    // Not a repository.
    let err = import(&bucket, "x", tmp.path(), "x").expect_err("not a repo");
    assert!(err.to_string().contains("is not a git repository"), "{err}");

    // A shallow clone.
    let url = format!("file://{}", source.display());
    git(
        tmp.path(),
        &["clone", "-q", "--depth", "3", &url, "shallow"],
    );
    let err = import(&bucket, "s", &tmp.path().join("shallow"), "s").expect_err("shallow");
    assert!(err.to_string().contains("shallow"), "{err}");
    assert_eq!(state(&bucket), before);

    // A missing object: unpack, then delete a blob the head tree needs.
    let broken = tmp.path().join("broken");
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--bare",
            "--no-local",
            source.to_str().expect("utf-8"),
            "broken",
        ],
    );
    // unpack-objects skips objects the repository has: move the pack out.
    let pack_dir = broken.join("objects/pack");
    let moved = tmp.path().join("packs");
    std::fs::rename(&pack_dir, &moved).expect("move packs");
    for entry in std::fs::read_dir(&moved).expect("ls") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "pack") {
            let out = Command::new("git")
                .arg("unpack-objects")
                .stdin(std::fs::File::open(&path).expect("open"))
                .current_dir(&broken)
                .output()
                .expect("unpack");
            assert!(out.status.success());
        }
    }
    let blob = git(&broken, &["rev-parse", "HEAD:tools/run.sh"]);
    let blob = blob.trim();
    let loose = broken.join("objects").join(&blob[..2]).join(&blob[2..]);
    let saved = std::fs::read(&loose).expect("read");
    std::fs::remove_file(&loose).expect("rm object");
    let err = import(&bucket, "m", &broken, "broken").expect_err("missing object");
    assert!(matches!(err, GitError::MissingObject { .. }), "{err}");
    assert!(err.to_string().contains(blob), "{err}");
    assert_eq!(state(&bucket), before);

    // A corrupt object: another object's bytes under a tree's name.
    std::fs::write(&loose, saved).expect("restore");
    let tree = git(&broken, &["rev-parse", "HEAD~1^{tree}"]);
    let tree = tree.trim();
    let commit = git(&broken, &["rev-parse", "HEAD~2"]);
    let commit = commit.trim();
    let tree_file = broken.join("objects").join(&tree[..2]).join(&tree[2..]);
    let commit_file = broken.join("objects").join(&commit[..2]).join(&commit[2..]);
    let _ = std::fs::set_permissions(
        &tree_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    );
    std::fs::copy(&commit_file, &tree_file).expect("swap");
    let err = import(&bucket, "fresh", &broken, "corrupt").expect_err("corrupt");
    assert!(
        matches!(
            err,
            GitError::CorruptObject { .. } | GitError::WrongKind { .. }
        ),
        "{err}"
    );
    assert_eq!(state(&bucket), before);

    // A ref name git itself would refuse, written by hand.
    let odd = tmp.path().join("odd");
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--bare",
            source.to_str().expect("utf-8"),
            "odd",
        ],
    );
    let head = git(&odd, &["rev-parse", "HEAD"]);
    let packed = odd.join("packed-refs");
    let mut refs = std::fs::read_to_string(&packed).unwrap_or_default();
    refs.push_str(&format!("{} refs/heads/bad..name\n", head.trim()));
    std::fs::write(&packed, refs).expect("write");
    let err = import(&bucket, "h", &odd, "odd").expect_err("odd ref");
    assert!(
        matches!(err, GitError::BadRefName(_) | GitError::Git(_)),
        "{err}"
    );
    assert_eq!(state(&bucket), before);
    assert_eq!(Repo::open(&bucket, "h").expect("open").root(), good.root());
}

#[test]
fn this_projects_own_repository_round_trips() {
    let tmp = tempfile::tempdir().expect("tmp");
    let project = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf();
    assert!(
        project.join(".git").exists(),
        "the tests run from a git clone of the project; {} has no .git",
        project.display()
    );
    // A bare mirror of it (its working tree and index play no part).
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--mirror",
            "--no-local",
            project.to_str().expect("utf-8"),
            "self.git",
        ],
    );
    let source = tmp.path().join("self.git");
    let bucket = Bucket::in_memory();
    let repo = import(&bucket, "self", &source, "import")
        .expect("import")
        .repo;
    let out = tmp.path().join("out.git");
    export(&repo, &out).expect("export");
    git(&out, &["fsck", "--full", "--strict"]);
    assert_eq!(
        git(&out, &["for-each-ref"]),
        git(&source, &["for-each-ref"])
    );
    assert_eq!(
        sorted_lines(&git(&out, &["rev-list", "--all", "--objects"])),
        sorted_lines(&git(&source, &["rev-list", "--all", "--objects"]))
    );
}
