//! Who sent a request: what the FUSE header says, and what /proc adds.

use fuser::Request;
use hydra_fs::{Caller, Groups};

/// The value of field `key` (`Groups`, `CapEff`) in `/proc/<pid>/status`:
/// what the FUSE header does not carry about a caller.
fn proc_status(pid: u32, key: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name == key).then(|| value.trim().to_string())
    })
}

/// The supplementary groups of process `pid`, from /proc (none when it is
/// gone).
fn groups_of(pid: u32) -> Vec<u32> {
    proc_status(pid, "Groups").map_or_else(Vec::new, |groups| {
        groups
            .split_whitespace()
            .filter_map(|g| g.parse().ok())
            .collect()
    })
}

/// The caller of a request, with supplementary groups read from /proc
/// when a check first needs them (the FUSE header carries only uid and
/// gid; root needs none).
pub(super) fn caller(req: &Request) -> Caller {
    let mut c = Caller::user(req.uid(), req.gid());
    if c.uid != 0 {
        c.groups = Groups::lazy(groups_of, req.pid());
    }
    c
}

/// The caller of a request that makes a node, with the umask it sent.
pub(super) fn creator(req: &Request, umask: u32) -> Caller {
    Caller {
        umask: umask & 0o777,
        ..caller(req)
    }
}

/// Whether the process `pid` holds CAP_FSETID (a process already gone is
/// taken not to).
pub(super) fn holds_cap_fsetid(pid: u32) -> bool {
    const CAP_FSETID: u32 = 4;
    proc_status(pid, "CapEff")
        .and_then(|caps| u64::from_str_radix(&caps, 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_FSETID) != 0)
}
