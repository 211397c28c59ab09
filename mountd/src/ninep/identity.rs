//! Who a 9P client speaks for: Tattach's uid (or user name) becomes a
//! [`Caller`] with the group and supplementary groups this machine's
//! `/etc/passwd` and `/etc/group` give that user.

use hydra_fs::Caller;

use super::wire::NONUNAME;

/// The group of a user this machine does not know (nogroup).
const NOGROUP: u32 = 65534;

/// One `/etc/passwd` line's name, uid and gid.
fn passwd_entry(line: &str) -> Option<(&str, u32, u32)> {
    let mut f = line.split(':');
    let name = f.next()?;
    let _password = f.next()?;
    let uid = f.next()?.parse().ok()?;
    let gid = f.next()?.parse().ok()?;
    Some((name, uid, gid))
}

/// The caller for `uname` / `n_uname`; `None` when neither names a user.
pub fn caller(uname: &[u8], n_uname: u32) -> Option<Caller> {
    caller_from(
        &std::fs::read_to_string("/etc/passwd").unwrap_or_default(),
        &std::fs::read_to_string("/etc/group").unwrap_or_default(),
        uname,
        n_uname,
    )
}

fn caller_from(passwd: &str, group: &str, uname: &[u8], n_uname: u32) -> Option<Caller> {
    let users: Vec<(&str, u32, u32)> = passwd.lines().filter_map(passwd_entry).collect();
    let found = if n_uname != NONUNAME {
        users.iter().find(|u| u.1 == n_uname).copied()
    } else {
        let name = std::str::from_utf8(uname).ok()?;
        Some(*users.iter().find(|u| u.0 == name)?)
    };
    let uid = if n_uname != NONUNAME {
        n_uname
    } else {
        found?.1
    };
    let Some((name, _, gid)) = found else {
        return Some(Caller::user(uid, NOGROUP));
    };
    let mut c = Caller::user(uid, gid);
    for line in group.lines() {
        let mut f = line.split(':');
        let (Some(_), Some(_), Some(g), Some(members)) = (f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        if let Ok(g) = g.parse::<u32>()
            && g != gid
            && members.split(',').any(|m| m == name)
        {
            c.groups.push(g);
        }
    }
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nalice:x:1000:\nstaff:x:50:alice,bob\nwheel:x:10:bob\n";

    #[test]
    fn uid_and_names_resolve_with_groups() {
        let a = caller_from(PASSWD, GROUP, b"", 1000).expect("alice");
        assert_eq!((a.uid, a.gid, a.groups.list()), (1000, 1000, &[50][..]));
        let by_name = caller_from(PASSWD, GROUP, b"alice", NONUNAME).expect("alice");
        assert_eq!(by_name, a);
        let stranger = caller_from(PASSWD, GROUP, b"", 4242).expect("uid");
        assert_eq!((stranger.uid, stranger.gid), (4242, NOGROUP));
        assert!(caller_from(PASSWD, GROUP, b"nobody-here", NONUNAME).is_none());
        assert!(
            caller_from(PASSWD, GROUP, b"root", NONUNAME)
                .expect("root")
                .is_root()
        );
    }
}
