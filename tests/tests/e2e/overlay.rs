//! An overlayfs whose upper layer is in the mount, as container runtimes
//! and build sandboxes stack them: whiteouts (RENAME_WHITEOUT), opaque
//! directories (`trusted.` xattrs) and copy-ups behave as over tmpfs.

use std::path::Path;

use hydra_tests::{TestStore, Unmount, sh};

/// Changes made through the overlay: copy-ups, deletions of lower files
/// and directories, a directory renamed and one made opaque.
const CHANGES: &str = r#"
echo new > o/n.txt
rm o/l.txt
echo changed >> o/sub/s.txt
mv o/sub o/sub2
rm -r o/gone
mkdir o/gone && echo back > o/gone/b.txt
mv o/keep.txt o/kept.txt
ln o/kept.txt o/kept-link
chmod 600 o/kept.txt
"#;

/// The overlay's view and the upper layer (types, modes, links, device
/// numbers, files' sizes and bytes, `trusted.overlay.*` attributes),
/// without times and directory sizes, which differ between filesystems.
const LISTING: &str = r#"
for d in o up; do
  echo "== $d"
  (cd $d && find . -mindepth 1 | LC_ALL=C sort | while read -r p; do
    echo "$p $(stat -c '%F %a %h %t:%T' "$p") $(if [ -f "$p" ]; then echo "$(stat -c %s "$p") $(md5sum < "$p" | cut -c1-8)"; fi) $(getfattr -h -m trusted.overlay -d "$p" 2>/dev/null | grep -v '^#' | tr '\n' ' ')"
  done)
done
"#;

/// Mounts an overlay with lower `low` and upper and work under `dir` on
/// `dir/o`, applies [`CHANGES`], lists, and unmounts it.
fn overlay_in(dir: &Path, low: &Path) -> String {
    sh(
        &format!(
            "mkdir -p up work o && mount -t overlay overlay -o lowerdir={},upperdir=up,workdir=work o",
            low.display()
        ),
        dir,
    );
    sh(CHANGES, dir);
    let listed = sh(LISTING, dir);
    sh("umount o", dir);
    listed
}

#[test]
fn overlayfs_with_its_upper_layer_in_the_mount_matches_tmpfs() {
    let low = tempfile::tempdir_in("/dev/shm").expect("a tmpfs directory");
    sh(
        "mkdir sub gone && echo lower > l.txt && echo s > sub/s.txt && echo g > gone/g.txt \
         && echo k > keep.txt",
        low.path(),
    );
    let tmpfs = tempfile::tempdir_in("/dev/shm").expect("a tmpfs directory");
    let want = overlay_in(tmpfs.path(), low.path());
    assert!(
        want.contains("./l.txt character special file 0 ") && want.contains("./gone directory"),
        "tmpfs as expected: {want}"
    );

    let s = TestStore::new();
    let point = s.scratch("m");
    std::fs::create_dir_all(&point).expect("mkdir");
    s.ok(&["mount", "home", point.to_str().expect("utf-8")]);
    let guard = Unmount(&s, point.clone());
    assert_eq!(overlay_in(&point, low.path()), want);
    drop(guard);
    // The upper layer, whiteouts and all, is committed: the overlay
    // mounted again over the remounted store shows the same. (Mounting
    // empties the work directory, which held one more link of the shared
    // whiteout, so only the overlay's view is compared whole.)
    s.ok(&["mount", "home", point.to_str().expect("utf-8")]);
    let _guard = Unmount(&s, point.clone());
    let again = sh(
        &format!(
            "mount -t overlay overlay -o lowerdir={},upperdir=up,workdir=work o\n{LISTING}\numount o",
            low.path().display()
        ),
        &point,
    );
    let view = |listed: &str| listed.split("== up").next().unwrap_or("").to_string();
    assert_eq!(view(&again), view(&want));
    assert!(
        again.contains("./l.txt character special file 0 ") && again.contains("opaque"),
        "{again}"
    );
}
