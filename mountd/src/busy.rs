//! Which processes keep a mount busy, for the message of a refused unmount.

use std::path::Path;

/// Processes whose working directory, root or an open file lies under
/// `mountpoint`, as `name[pid]`: at most `limit`, and only those this
/// process may inspect.
pub fn users(mountpoint: &Path, limit: usize) -> Vec<String> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    // Link targets come from the kernel's dentries: no request reaches the
    // mount, so this works while it is busy or hung.
    let under = |link: &Path| std::fs::read_link(link).is_ok_and(|t| t.starts_with(mountpoint));
    let mut out = Vec::new();
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let dir = entry.path();
        let uses = under(&dir.join("cwd"))
            || under(&dir.join("root"))
            || std::fs::read_dir(dir.join("fd"))
                .is_ok_and(|mut fds| fds.any(|fd| fd.is_ok_and(|fd| under(&fd.path()))));
        if uses {
            let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            out.push(format!("{}[{pid}]", name.trim()));
            if out.len() == limit {
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_working_in_a_directory_is_named() {
        let dir = std::env::temp_dir().join(format!("hydra-busy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let dir = dir.canonicalize().expect("canonical");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .current_dir(&dir)
            .spawn()
            .expect("sleep");
        // The child runs in the directory once it has exec'd.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut found = users(&dir, 10);
        while found.is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
            found = users(&dir, 10);
        }
        let elsewhere = users(&dir.join("elsewhere"), 10);
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            found
                .iter()
                .any(|u| u.ends_with(&format!("[{}]", child.id()))),
            "{found:?}"
        );
        assert!(elsewhere.is_empty(), "{elsewhere:?}");
    }
}
