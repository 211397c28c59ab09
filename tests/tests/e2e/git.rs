//! `hydra git` and `git-remote-hydra` from the command line, against real git.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use hydra_tests::{TestStore, git_history, hydra_bin, sh, tree_digest};

/// Runs git in `dir` with the remote helper on PATH and the test's store
/// as the default; asserts success; returns stdout.
fn git(s: &TestStore, dir: &Path, args: &[&str]) -> String {
    let out = git_cmd(s, dir).args(args).output().expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn git_cmd(s: &TestStore, dir: &Path) -> Command {
    let bin_dir = hydra_bin().parent().expect("bin dir");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .env("PATH", path)
        .env("HYDRA_STORE", s.path())
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .stdin(Stdio::null());
    cmd
}

#[test]
fn import_export_log_ls_cat_match_git() {
    let s = TestStore::new();
    let work = s.scratch("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    let source = git_history(&work, 520);
    let src = source.to_str().expect("utf-8");
    s.ok(&["git", "import", src, "--as", "h"]);
    // Through a URL: git itself fetches, then the same import.
    s.ok(&["git", "import", &format!("file://{src}"), "--as", "u"]);
    assert_eq!(s.ok(&["git", "list"]), "h\nu\n");

    let g = |args: &[&str]| git(&s, &source, args);
    assert_eq!(
        s.ok(&["git", "log", "h", "--oneline"]),
        g(&["log", "--format=%H %s"])
    );
    assert_eq!(
        s.ok(&["git", "log", "u", "-n", "5"]),
        g(&["log", "-n", "5"])
    );
    assert_eq!(
        s.ok(&["git", "log", "h", "v0.1", "-n", "40"]),
        g(&["log", "v0.1", "-n", "40"])
    );
    assert_eq!(s.ok(&["git", "ls", "h", "HEAD"]), g(&["ls-tree", "HEAD"]));
    assert_eq!(
        s.ok(&["git", "ls", "h", "main~3", "-r"]),
        g(&["-c", "core.quotePath=false", "ls-tree", "-r", "main~3"])
    );
    assert_eq!(
        s.ok(&["git", "ls", "h", "HEAD", "tools"]),
        g(&["ls-tree", "HEAD", "tools/"])
    );
    assert_eq!(
        s.ok(&["git", "cat", "h", "HEAD~4:tools/run.sh"]),
        g(&["show", "HEAD~4:tools/run.sh"])
    );
    assert_eq!(
        s.ok(&["git", "cat", "h", "HEAD"]),
        g(&["cat-file", "commit", "HEAD"])
    );

    // SQL over the commits: every commit any ref reaches, as git log --all.
    assert_eq!(
        s.ok(&[
            "sql",
            "q",
            "SELECT id, author_time, summary FROM hydra_git_commits('h')",
            "--format",
            "csv"
        ]),
        g(&["log", "--all", "--format=%H,%at,%s"])
    );
    assert_eq!(
        s.ok(&[
            "sql",
            "q",
            "SELECT author, count(*) FROM hydra_git_commits('h') WHERE parents LIKE '% %' GROUP BY author ORDER BY author",
            "--format",
            "csv"
        ]),
        {
            let merges = g(&["log", "--all", "--merges", "--format=%an"]);
            let mut counts = std::collections::BTreeMap::new();
            for a in merges.lines() {
                *counts.entry(a.to_string()).or_insert(0) += 1;
            }
            counts
                .iter()
                .map(|(a, n)| format!("{a},{n}\n"))
                .collect::<String>()
        }
    );
    s.fails(&["sql", "q", "SELECT * FROM hydra_git_commits('nosuch')"]);

    let out = s.scratch("out.git");
    s.ok(&["git", "export", "h", out.to_str().expect("utf-8")]);
    git(&s, &out, &["fsck", "--full", "--strict"]);
    assert_eq!(git(&s, &out, &["for-each-ref"]), g(&["for-each-ref"]));

    // Bad input: one line, exit 1, the store as it was.
    let before = tree_digest(&s.path());
    let log_before = s.ok(&["--json", "ref", "log"]);
    s.fails(&["git", "log", "nosuch"]);
    s.fails(&["git", "log", "h", "no-such-branch"]);
    s.fails(&["git", "cat", "h", "HEAD:no/such/file"]);
    s.fails(&["git", "import", "/no/such/repository", "--as", "x"]);
    s.fails(&["git", "import", work.to_str().expect("utf-8"), "--as", "x"]);
    sh(
        &format!("git clone -q --depth 2 file://{src} shallow"),
        &work,
    );
    let err = s.fails(&[
        "git",
        "import",
        work.join("shallow").to_str().expect("utf-8"),
        "--as",
        "x",
    ]);
    assert!(err.contains("shallow"), "{err}");
    let err = s.fails(&["git", "export", "h", work.to_str().expect("utf-8")]);
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(tree_digest(&s.path()), before);
    assert_eq!(s.ok(&["--json", "ref", "log"]), log_before);
}

#[test]
fn checkout_into_a_filesystem_matches_a_git_checkout() {
    let s = TestStore::new();
    let work = s.scratch("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    let source = git_history(&work, 400);
    let src = source.to_str().expect("utf-8");
    s.ok(&["git", "import", src, "--as", "h"]);
    let commits_before = s.ok(&["ref", "log"]).lines().count();
    s.ok(&[
        "git", "checkout", "h", "main~7", "--fs", "w", "--at", "/proj",
    ]);
    assert_eq!(s.ok(&["ref", "log"]).lines().count(), commits_before + 1);
    // Not into a directory that has something in it.
    s.fails(&["git", "checkout", "h", "main", "--fs", "w", "--at", "/"]);

    let tar = work.join("w.tar");
    s.ok(&[
        "export",
        "tar",
        "--fs",
        "w",
        "/proj",
        "-o",
        tar.to_str().expect("utf-8"),
    ]);
    let listing = "find . -path ./.git -prune -o -printf '%y %m %s %p %l\\n' | sort";
    let ours = sh(
        &format!("mkdir ours && tar -xf w.tar -C ours && cd ours && {listing}"),
        &work,
    );
    let theirs = sh(
        &format!("git clone -q {src} theirs && cd theirs && git checkout -q main~7 && {listing}"),
        &work,
    );
    assert_eq!(ours, theirs);
    sh("diff -r --exclude=.git ours theirs", &work);

    // The same files imported from disk are the same blobs: the content
    // is stored once for the repository and every filesystem.
    sh("rm -rf theirs/.git", &work);
    s.ok(&[
        "import",
        "dir",
        work.join("theirs").to_str().expect("utf-8"),
        "--fs",
        "plain",
        "--at",
        "/proj",
    ]);
    let cids = |fs: &str| {
        s.ok(&[
            "sql",
            "q",
            &format!(
                "SELECT path, cid FROM hydra_files('{fs}') WHERE kind = 'file' AND size > 1024 ORDER BY path"
            ),
        ])
    };
    let checked_out = cids("w");
    assert!(checked_out.lines().count() > 100, "{checked_out}");
    assert_eq!(checked_out, cids("plain"));
}

#[test]
fn git_clones_fetches_and_pushes_through_the_remote_helper() {
    let s = TestStore::new();
    let work = s.scratch("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    let source = git_history(&work, 120);
    s.ok(&[
        "git",
        "import",
        source.to_str().expect("utf-8"),
        "--as",
        "h",
    ]);

    git(&s, &work, &["clone", "-q", "hydra::h", "a"]);
    let a = work.join("a");
    assert_eq!(
        git(&s, &a, &["log", "--format=%H"]),
        git(&s, &source, &["log", "--format=%H"])
    );
    git(&s, &a, &["fsck", "--full"]);
    std::fs::write(a.join("new.txt"), "new\n").expect("write");
    git(&s, &a, &["add", "new.txt"]);
    git(&s, &a, &["commit", "-q", "-m", "from a"]);
    git(
        &s,
        &a,
        &["push", "-q", "origin", "main", "main:refs/heads/topic"],
    );
    let head = git(&s, &a, &["rev-parse", "HEAD"]);
    assert_eq!(
        s.ok(&["git", "log", "h", "-n", "1", "--oneline"]),
        format!("{} from a\n", head.trim())
    );
    assert!(s.ok(&["git", "ls", "h", "topic"]).contains("new.txt"));

    // A second clone by explicit store path, then a fetch of more work.
    let url = format!("hydra::{}#h", s.path().display());
    git(&s, &work, &["clone", "-q", &url, "b"]);
    let b = work.join("b");
    std::fs::write(a.join("more.txt"), "more\n").expect("write");
    git(&s, &a, &["add", "more.txt"]);
    git(&s, &a, &["commit", "-q", "-m", "more"]);
    git(&s, &a, &["push", "-q"]);
    git(&s, &b, &["pull", "-q", "--ff-only"]);
    assert_eq!(
        git(&s, &b, &["rev-parse", "HEAD"]),
        git(&s, &a, &["rev-parse", "HEAD"])
    );
    // Deleting a branch.
    git(&s, &a, &["push", "-q", "origin", ":refs/heads/topic"]);
    s.fails(&["git", "ls", "h", "topic"]);

    // The helper's own checks, spoken to directly as git would: a push
    // that is not a fast-forward, and a ref name git refuses.
    git(&s, &b, &["reset", "-q", "--hard", "HEAD~3"]);
    std::fs::write(b.join("other.txt"), "other\n").expect("write");
    git(&s, &b, &["add", "other.txt"]);
    git(&s, &b, &["commit", "-q", "-m", "diverged"]);
    let log_before = s.ok(&["--json", "ref", "log"]);
    let helper = hydra_bin().with_file_name("git-remote-hydra");
    let mut child = Command::new(&helper)
        .args(["origin", "h"])
        .current_dir(&b)
        .env("GIT_DIR", b.join(".git"))
        .env("HYDRA_STORE", s.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn helper");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(
            b"capabilities\npush refs/heads/main:refs/heads/main\npush refs/heads/main:refs/heads/bad..name\n\n",
        )
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let reply = String::from_utf8_lossy(&out.stdout);
    assert!(
        reply.contains("error refs/heads/main non-fast-forward"),
        "{reply}"
    );
    assert!(
        reply.contains("error refs/heads/bad..name invalid ref name"),
        "{reply}"
    );
    assert_eq!(s.ok(&["--json", "ref", "log"]), log_before, "nothing moved");
    // Forced, it lands.
    git(&s, &b, &["push", "-q", "-f", "origin", "main"]);
    assert_eq!(
        s.ok(&["git", "log", "h", "-n", "1", "--oneline"]),
        format!("{} diverged\n", git(&s, &b, &["rev-parse", "HEAD"]).trim())
    );

    // A push into a repository the store does not have yet creates it.
    git(&s, &work, &["init", "-q", "-b", "main", "fresh"]);
    let fresh = work.join("fresh");
    std::fs::write(fresh.join("f"), "f\n").expect("write");
    git(&s, &fresh, &["add", "f"]);
    git(&s, &fresh, &["commit", "-q", "-m", "first"]);
    git(&s, &fresh, &["push", "-q", "hydra::fresh", "main"]);
    git(&s, &work, &["clone", "-q", "hydra::fresh", "fresh2"]);
    assert_eq!(
        std::fs::read_to_string(work.join("fresh2/f")).expect("read"),
        "f\n"
    );
}
