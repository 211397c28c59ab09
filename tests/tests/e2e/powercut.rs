//! Power cuts under a mount: a QEMU guest keeps its store on an ext4 disk
//! of its own and runs `tests/powercut.py` in a FUSE mount (or, every
//! second boot, through its kernel's 9P client) until QEMU is killed at a
//! random moment, losing whatever the guest's kernel had not yet
//! written to the disk. The next boot checks the store (`hydra fsck`),
//! mounts it, and finds every change whose fsync returned, then writes on
//! until the next cut. A kill -9 of the daemon (the FUSE tests) keeps the
//! page cache; this does not.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hydra_tests::hydra_bin;

use super::guest;

/// Power cuts in one run; one more boot checks the last.
const CUTS: u32 = 2;

/// The guest's script for boot `k` (from 1): check what cut `k - 1` left,
/// then write in `c<k>` until the power goes (or, after the last cut, stop).
fn boot_script(k: u32, work: &Path, seed: u64) -> String {
    let mut s = format!(
        r#"set -eu
W={w}
H={hydra}
export HYDRA_STORE=/tmp/disk/store
mkdir -p /tmp/disk /tmp/h
"#,
        w = work.display(),
        hydra = hydra_bin().display()
    );
    if k == 1 {
        s += "mkfs.ext4 -q -F /dev/vda\n";
    }
    // data=writeback: file data has no ordering against metadata, so the
    // store may rely on nothing but its own fsyncs.
    s += "mount -t ext4 -o data=writeback /dev/vda /tmp/disk\necho DISK-MOUNTED\n";
    if k > 1 {
        s += "$H fsck >/tmp/fsck.out 2>&1 || { cat /tmp/fsck.out; exit 1; }\necho FSCK-OK\n";
    }
    if k.is_multiple_of(2) {
        // The even boots go through the guest kernel's 9P client.
        s += "$H serve pc --listen tcp:127.0.0.1:5640 --commit-interval 1\n\
              mount -t 9p -o trans=tcp,port=5640,version=9p2000.L,msize=1048576,cache=loose,aname=pc \
              127.0.0.1 /tmp/h || { cat /tmp/disk/store/mounts/pc.log; exit 1; }\n";
    } else {
        s += "$H mount pc /tmp/h --commit-interval 1\n";
    }
    s += "echo HYDRA-MOUNTED\n";
    for j in 1..k.saturating_sub(1) {
        s += &format!("python3 $W/powercut.py same /tmp/h/c{j} /tmp/disk/manifest-{j}\n");
    }
    if k > 1 {
        let j = k - 1;
        s += &format!(
            "python3 $W/powercut.py check /tmp/h/c{j} /tmp/disk/oracle-{j}\n\
             python3 $W/powercut.py manifest /tmp/h/c{j} /tmp/disk/manifest-{j}\nsync\n"
        );
    }
    if k <= CUTS {
        s += &format!("python3 $W/powercut.py write /tmp/h/c{k} /tmp/disk/oracle-{k} {seed}\n");
    } else {
        s += "$H umount /tmp/h\n$H fsck >/tmp/fsck.out 2>&1 || { cat /tmp/fsck.out; exit 1; }\necho ALL-DONE\n";
    }
    s
}

/// A number that differs from run to run (printed, so a failure can be replayed).
fn entropy() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    (nanos as u64) ^ (u64::from(std::process::id()) << 32)
}

#[test]
fn every_fsync_survives_power_cuts_under_the_mount() {
    let image = guest::image();
    let work = tempfile::Builder::new()
        .prefix("hydra-powercut-")
        .tempdir_in("/var/tmp")
        .expect("tempdir");
    let w = work.path();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("powercut.py"),
        w.join("powercut.py"),
    )
    .expect("copy powercut.py");
    let disk = w.join("disk.img");
    std::fs::File::create(&disk)
        .and_then(|f| f.set_len(4 << 30))
        .expect("make the disk");
    let seed = std::env::var("POWERCUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(entropy);
    eprintln!("powercut: POWERCUT_SEED={seed}");
    for k in 1..=CUTS + 1 {
        let script = w.join(format!("boot{k}.sh"));
        let run_seed = seed.wrapping_add(u64::from(k));
        std::fs::write(&script, boot_script(k, w, run_seed)).expect("write the script");
        // Cut after 20 to 59 changes, 0 to 1.5 s after the last one began.
        let after = 20 + run_seed % 40;
        let delay = Duration::from_millis((run_seed >> 8) % 1500);
        let marker = format!("OPS {after}\n");
        let console = guest::boot(&image, &script, Some(&disk), |console| {
            let cut = k <= CUTS && console.contains(&marker);
            if cut {
                std::thread::sleep(delay);
            }
            cut
        });
        let context = format!("boot {k} (POWERCUT_SEED={seed}):\n{console}");
        assert!(!console.contains("POWERCUT-FAIL"), "{context}");
        assert!(console.contains("HYDRA-MOUNTED"), "{context}");
        if k > 1 {
            assert!(console.contains("FSCK-OK"), "{context}");
            assert!(console.contains("POWERCUT-CHECKED"), "{context}");
            assert_eq!(
                console.matches("POWERCUT-SAME").count(),
                (k - 2) as usize,
                "{context}"
            );
        }
        if k <= CUTS {
            assert!(console.contains("POWER CUT"), "{context}");
            assert!(!console.contains("GUEST-EXIT"), "{context}");
        } else {
            assert!(console.contains("ALL-DONE"), "{context}");
            assert!(console.contains("GUEST-EXIT 0"), "{context}");
        }
        for line in console.lines().filter(|l| l.starts_with("POWERCUT-")) {
            eprintln!("powercut: boot {k}: {line}");
        }
        eprintln!("powercut: boot {k} ok");
    }
}
