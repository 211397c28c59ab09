//! `mount.fuse.hydra`: the helper `mount(8)` runs for fstab entries and
//! `mount -t fuse.hydra`, when the `hydra` binary is installed under that
//! name (a symlink): `mount.fuse.hydra FS MOUNTPOINT [-o OPTIONS]` becomes
//! `hydra --store STORE mount FS MOUNTPOINT …`.
//!
//! Options: `store=PATH` (else `$HYDRA_STORE`, else the default store),
//! `ro`, `allow_other`, `commit_interval=SECS`, `max_inodes=N`,
//! `serve_9p=ADDR`, `snapshot=SNAP`; the generic ones mount(8) passes (`rw`, `defaults`,
//! `auto`, `noauto`, `user`, `nofail`, `_netdev`, `x-…`, …) are ignored.

use std::ffi::OsString;

/// The name the helper is installed under.
pub const HELPER_NAME: &str = "mount.fuse.hydra";

/// Options mount(8) passes that mean nothing to hydra.
const GENERIC: &[&str] = &[
    "rw", "defaults", "auto", "noauto", "user", "users", "nouser", "nofail", "_netdev", "dev",
    "nodev", "suid", "nosuid", "exec", "noexec", "atime", "noatime", "relatime",
];

/// Turns the helper's arguments into a `hydra` command line.
pub fn translate(args: &[OsString]) -> Result<Vec<OsString>, String> {
    let mut positional = Vec::new();
    let mut options = Vec::new();
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("-o") => {
                let o = it.next().ok_or("-o needs a value")?;
                options.extend(
                    o.to_str()
                        .ok_or("options are not UTF-8")?
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string),
                );
            }
            // -n (no mtab), -s (sloppy), -f (fake), -v (verbose) from mount(8).
            Some("-n" | "-s" | "-v") => {}
            Some("-f") => return Err("fake mounts (-f) are not supported".into()),
            _ => positional.push(a.clone()),
        }
    }
    let [fs, mountpoint] = positional.as_slice() else {
        return Err(format!("usage: {HELPER_NAME} FS MOUNTPOINT [-o OPTIONS]"));
    };
    let mut store = None;
    let mut rest: Vec<OsString> = Vec::new();
    for o in options {
        let (key, value) = match o.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (o.clone(), None),
        };
        match (key.as_str(), value) {
            ("store", Some(v)) => store = Some(v),
            ("ro", None) => rest.push("--read-only".into()),
            ("allow_other", None) => rest.push("--allow-other".into()),
            ("commit_interval", Some(v)) => {
                rest.extend(["--commit-interval".into(), v.into()]);
            }
            ("max_inodes", Some(v)) => rest.extend(["--max-inodes".into(), v.into()]),
            ("serve_9p", Some(v)) => rest.extend(["--serve-9p".into(), v.into()]),
            ("snapshot", Some(v)) => rest.extend(["--snapshot".into(), v.into()]),
            (k, _) if GENERIC.contains(&k) || k.starts_with("x-") => {}
            (k, _) => return Err(format!("unknown mount option {k:?}")),
        }
    }
    let mut out: Vec<OsString> = vec!["hydra".into()];
    if let Some(store) = store {
        out.extend(["--store".into(), store.into()]);
    }
    out.extend(["mount".into(), fs.clone(), mountpoint.clone()]);
    out.extend(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn fstab_options_become_flags() {
        let got = translate(&os(&[
            HELPER_NAME,
            "home",
            "/mnt/h",
            "-o",
            "rw,noauto,store=/var/lib/hydra,allow_other,commit_interval=9,max_inodes=500,x-systemd.automount",
        ]))
        .expect("translates");
        assert_eq!(
            got,
            os(&[
                "hydra",
                "--store",
                "/var/lib/hydra",
                "mount",
                "home",
                "/mnt/h",
                "--allow-other",
                "--commit-interval",
                "9",
                "--max-inodes",
                "500"
            ])
        );
        assert!(translate(&os(&[HELPER_NAME, "home"])).is_err());
        assert!(translate(&os(&[HELPER_NAME, "a", "/m", "-o", "bogus"])).is_err());
    }
}
