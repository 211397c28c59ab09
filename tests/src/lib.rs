//! Helpers for end-to-end tests: find (and build) the real `hydra` binary,
//! run it against a temporary store, and check its output.

pub mod ninep;
/// Real redis-server deployments (shared with the hydra-dag tests).
#[path = "../../dag/tests/support/redis.rs"]
pub mod redis;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The path of the `hydra` binary, built from this workspace on first use.
///
/// `HYDRA_BIN` overrides it. Otherwise `cargo build -p hydra-mountd` runs
/// once per test process (a no-op when fresh), so tests never run a stale
/// binary.
pub fn hydra_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("HYDRA_BIN") {
            return PathBuf::from(bin);
        }
        let exe = std::env::current_exe().expect("test binary path");
        // target/<profile>/deps/<test> → target/<profile>/hydra
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test binary lives in target/<profile>/deps");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let target_dir = profile_dir.parent().expect("target dir");
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "hydra-mountd", "--bins"])
            .env("CARGO_TARGET_DIR", target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build for the hydra binary");
        assert!(status.success(), "cargo build of the hydra binary failed");
        let bin = target_dir.join("debug").join("hydra");
        assert!(bin.exists(), "hydra binary not found at {}", bin.display());
        bin
    })
}

/// A temporary store and a way to run `hydra` against it.
#[derive(Debug)]
pub struct TestStore {
    dir: tempfile::TempDir,
}

impl Default for TestStore {
    fn default() -> Self {
        Self::new()
    }
}

impl TestStore {
    /// A fresh temporary directory; the store inside it does not exist yet.
    pub fn new() -> Self {
        TestStore {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// The store path (`<tmp>/store`).
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// A scratch path beside the store.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A `hydra` command with `--store` set.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(hydra_bin());
        cmd.arg("--store").arg(self.path()).stdin(Stdio::null());
        cmd
    }

    /// Runs `hydra ARGS`; returns its output, whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("spawn hydra")
    }

    /// Runs `hydra ARGS`, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "hydra {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs `hydra ARGS`, asserts failure with one stderr line; returns it.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "hydra {args:?} should fail");
        let err = String::from_utf8(out.stderr).expect("utf-8 stderr");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "one-line error, got {err:?}"
        );
        assert!(err.starts_with("hydra: error: "), "{err:?}");
        err
    }
}

/// Unmounts (and so stops the daemon of) a mount point of a store when
/// dropped, also when a test fails.
pub struct Unmount<'a>(pub &'a TestStore, pub PathBuf);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let point = self.1.to_str().unwrap_or("");
        if !self.0.run(&["umount", point]).status.success() {
            let _ = Command::new("umount").arg("-l").arg(point).status();
        }
    }
}

/// Waits up to 20 s for `check`; says what it waited for on failure.
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !check() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Writes `t.tar` into `work`: a tree with every awkward case (small
/// files in 3 directories, `files` each, a `big_mib` MiB file, an empty
/// one, hard and symbolic links, a fifo, a device, setuid and sticky
/// modes, an odd owner, a 255-byte name, non-ASCII names, an xattr and a
/// nanosecond mtime), extracted with `tar --xattrs -xp` by the tests.
pub fn awkward_tar(work: &Path, files: u32, big_mib: u32) {
    sh(
        &format!(
            r#"mkdir src && cd src
for d in 1 2 3; do mkdir -p "many/d$d"; for f in $(seq 1 {files}); do head -c $((f * 97)) /dev/urandom > "many/d$d/f$f"; done; done
head -c {big_mib}M /dev/urandom > big; : > empty
echo t > target; ln target hard; ln -s target rel; ln -s /etc/passwd abs; ln -s nowhere dangling
mkfifo fifo; mknod chr c 1 3
echo s > suid; chmod 4755 suid; mkdir sticky; chmod 1777 sticky
echo o > odd; chown 4321:8765 odd
long=$(printf 'l%.0s' $(seq 1 255)); echo long > "$long"
mkdir -p "a b/ünï"; echo u > "a b/ünï/f"
setfattr -n user.k -v v target
touch -h -d '2001-02-03 04:05:06.123456789' target
cd .. && tar --xattrs --xattrs-include='*' -cpf t.tar -C src . && rm -rf src"#
        ),
        work,
    );
}

/// Makes a git repository `origin` in `work` with `commits` commits of
/// generated files under `src/` and a tag `v1` eight commits back.
pub fn git_origin(work: &Path, commits: u32) {
    sh(
        &format!(
            r#"git init -q -b main origin && cd origin
git config user.email t@example.com && git config user.name t
for c in $(seq 1 {commits}); do
  mkdir -p "src/m$((c % 5))"
  head -c $((c * 3000)) /dev/urandom | base64 > "src/m$((c % 5))/f$c.txt"
  echo "line $c" >> README
  git add -A && git commit -q -m "commit $c"
done
git tag v1 HEAD~8"#
        ),
        work,
    );
}

/// Makes a bare repository `history.git` in `work` with `commits` commits
/// (branches, merges, tags, odd entries) by `tests/fixtures/git_history.py`.
pub fn git_history(work: &Path, commits: u32) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/git_history.py");
    let dest = work.join("history.git");
    let status = Command::new("python3")
        .arg(script)
        .arg(&dest)
        .arg(commits.to_string())
        .status()
        .expect("run python3 (the test command installs it)");
    assert!(status.success(), "the history fixture script failed");
    dest
}

/// The names in directory `dir`, sorted (what `ls -A` lists).
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The last line of some output.
pub fn last_line(s: &str) -> &str {
    s.trim_end().lines().last().unwrap_or("")
}

/// Every file below `dir` but the lock and the SQLite files (which SQLite
/// may rewrite on open and close), with its bytes: for checking that a
/// failed command left a store's packs and config as they were.
pub fn tree_digest(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let entry = entry.expect("entry");
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n != "LOCK" && !n.starts_with("index.sqlite"))
            {
                out.push((path.clone(), std::fs::read(&path).expect("read")));
            }
        }
    }
    out.sort();
    out
}

/// Runs a bash script (`-eu`) in `dir`; asserts it succeeds; returns stdout.
pub fn sh(script: &str, dir: &Path) -> String {
    let out = Command::new("bash")
        .arg("-euc")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "script failed: {script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
