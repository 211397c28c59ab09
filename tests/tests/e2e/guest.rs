//! The QEMU guest the kernel tests boot: Debian's kernel and busybox (built
//! by `tests/guest/build.sh`), the host's root shared read-only, a script
//! of the host's run inside it, and optionally a disk of its own that the
//! test can pull the power from.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a guest may run before the test gives up on it.
const LIMIT: Duration = Duration::from_secs(1500);

/// Builds (once, cached) the guest kernel and initramfs; returns their folder.
pub fn image() -> PathBuf {
    for tool in ["qemu-system-x86_64", "busybox", "cpio"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .status()
            .is_ok_and(|s| s.success());
        assert!(found, "{tool} missing: scripts/test.sh installs it");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    let out = home.join(".cache/hydra-guest");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("guest/build.sh");
    let status = Command::new("sh")
        .arg(&script)
        .arg(&out)
        .status()
        .expect("run build.sh");
    assert!(status.success(), "building the guest failed");
    out
}

/// Boots the guest on `script` with `disk` (a raw image) as `/dev/vda`;
/// returns what it printed. When `cut` says so, given everything printed so
/// far, the guest loses its power: QEMU is killed, so what the guest's
/// kernel had not yet handed to the disk is gone, as in a power cut.
pub fn boot(
    image: &Path,
    script: &Path,
    disk: Option<&Path>,
    mut cut: impl FnMut(&str) -> bool,
) -> String {
    let mut qemu = Command::new("qemu-system-x86_64");
    qemu.args(["-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "2"])
        .args(["-m", "3072", "-nographic", "-no-reboot"])
        .arg("-kernel")
        .arg(image.join("vmlinuz"))
        .arg("-initrd")
        .arg(image.join("initrd.img"))
        .arg("-append")
        .arg(format!(
            "console=ttyS0 quiet panic=-1 hydra.script={}",
            script.display()
        ))
        .args([
            "-netdev",
            "user,id=n0",
            "-device",
            "virtio-net-pci,netdev=n0",
        ])
        .args([
            "-virtfs",
            "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
        ]);
    if let Some(disk) = disk {
        // cache=unsafe: QEMU's writes land in the host's page cache, which
        // outlives QEMU, so killing it loses exactly what the guest had not
        // yet written out.
        qemu.arg("-drive").arg(format!(
            "file={},format=raw,if=virtio,cache=unsafe",
            disk.display()
        ));
    }
    let mut child = qemu
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run qemu");
    let stdout = child.stdout.take().expect("qemu's stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(mut line) = line else { break };
            // The serial console ends its lines with "\r\n".
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if tx
                .send(String::from_utf8_lossy(&line).into_owned())
                .is_err()
            {
                break;
            }
        }
    });
    let deadline = Instant::now() + LIMIT;
    let mut console = String::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                console.push_str(&line);
                console.push('\n');
                if cut(&console) {
                    child.kill().expect("kill qemu");
                    console.push_str("POWER CUT\n");
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() > deadline => {
                child.kill().expect("kill qemu");
                console.push_str("GUEST TIMED OUT\n");
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    child.wait().expect("wait for qemu");
    drop(rx);
    reader.join().expect("console reader");
    console
}
