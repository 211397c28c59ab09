//! Writes, truncates and chowns through the mount take away setuid, setgid
//! and file capabilities exactly as the kernel does on tmpfs, and users are
//! allowed and refused what tmpfs allows and refuses them.

use std::path::Path;

use hydra_tests::{TestStore, Unmount, sh};

/// The files [`SCRIPT`] makes.
const FILES: &str = "suid sgidx sgid cap capr rootw tr trr ch chcap otr nofs notr noot nosg rsg";

/// Prints each of [`FILES`] with its mode, owner, size and capabilities.
const LISTING: &str = r#"
for f in $FILES; do
  echo "$f $(stat -c '%a %U %s' $f) $(getcap $f | awk '{print $2}')"
done
"#;

/// Makes [`FILES`] with setuid, setgid and capabilities in the current
/// directory and has `nobody` and root write, truncate and chown them.
const SCRIPT: &str = r#"
for f in $FILES; do echo x > $f; done
chmod 4777 suid rootw tr; chmod 2777 sgidx; chmod 2767 sgid; chmod 4755 ch; chmod 4666 trr otr
setcap cap_net_raw+ep cap; chmod 666 cap; setcap cap_net_raw+ep capr; setcap cap_net_raw+ep chcap
runuser -u nobody -- sh -c 'echo y >> suid && echo y >> sgidx && echo y >> sgid && echo y >> cap && truncate -s 1 tr && : > otr'
echo y >> rootw; echo y >> capr; truncate -s 1 trr
chmod 4755 nofs notr noot; chgrp nogroup nosg rsg; chmod 2755 rsg
capsh --drop=cap_fsetid -- -c 'echo y >> nofs; truncate -s 1 notr; : > noot; chmod 2755 nosg'
chown nobody ch chcap
"#;

/// What [`LISTING`] prints in `dir`.
fn listed(dir: &Path) -> String {
    sh(&format!("FILES='{FILES}'\n{LISTING}"), dir)
}

/// Runs [`SCRIPT`] in `dir` (made writable by everyone) and lists what
/// each file is left with.
fn privileges_left(dir: &Path) -> String {
    sh("chmod 0777 .", dir);
    sh(&format!("FILES='{FILES}'\n{SCRIPT}"), dir);
    listed(dir)
}

/// Mounts filesystem `home` of `s` on `point` with `--allow-other`, where
/// every user can reach it; unmounted when the guard drops.
fn mount_for_everyone<'a>(s: &'a TestStore, point: &Path) -> Unmount<'a> {
    sh("chmod 0755 .", &s.scratch(""));
    std::fs::create_dir_all(point).expect("mkdir");
    s.ok(&[
        "mount",
        "--allow-other",
        "home",
        point.to_str().expect("utf-8"),
    ]);
    Unmount(s, point.to_path_buf())
}

#[test]
fn writes_truncates_and_chowns_drop_privileges_as_on_tmpfs() {
    for tool in ["setcap", "getcap", "capsh", "runuser"] {
        assert!(
            std::process::Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success()),
            "{tool} missing: scripts/test.sh installs libcap2-bin and util-linux"
        );
    }
    let tmpfs = tempfile::tempdir_in("/dev/shm").expect("a tmpfs directory");
    let want = privileges_left(tmpfs.path());
    assert!(
        [
            "suid 777 root 4",
            "nofs 755 root 4",
            "notr 755 root 1",
            "nosg 755 root 2",
            "rsg 2755 root 2"
        ]
        .iter()
        .all(|line| want.contains(line)),
        "tmpfs as expected: {want}"
    );

    let s = TestStore::new();
    let point = s.scratch("m");
    let guard = mount_for_everyone(&s, &point);
    assert_eq!(privileges_left(&point), want);
    drop(guard);
    // What was dropped stays dropped.
    s.ok(&["mount", "home", point.to_str().expect("utf-8")]);
    let _guard = Unmount(&s, point.clone());
    let after = listed(&point);
    assert_eq!(after, want);
}

#[test]
fn users_are_allowed_and_refused_as_on_tmpfs() {
    // `tests/posix.py` runs the same steps on tmpfs and in the mount, some
    // as users 1000 and 1001: among them a user reaching a file under a
    // directory it may not search right after root looked the file up
    // (the kernel keeps that name for an hour).
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("posix.py");
    let tmpfs = tempfile::tempdir_in("/dev/shm").expect("a tmpfs directory");
    // The users must reach both directories.
    sh("chmod 0755 .", tmpfs.path());
    let s = TestStore::new();
    let point = s.scratch("m");
    let _guard = mount_for_everyone(&s, &point);
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(tmpfs.path())
        .arg(&point)
        .output()
        .expect("python3 (scripts/test.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("differences: 0"), "{text}");
}
