//! Revisions as git spells them (`main`, `v1.0`, `HEAD~2`, `3f2a9c^2`,
//! `v1^{tree}`), and history in git log's order.

use std::collections::{BinaryHeap, HashMap, HashSet};

use crate::error::{GitError, GitResult};
use crate::object::{Commit, ObjectKind, Oid};
use crate::repo::Repo;

/// Where git looks for a short name, in order.
const REF_PATTERNS: [&str; 6] = [
    "{}",
    "refs/{}",
    "refs/tags/{}",
    "refs/heads/{}",
    "refs/remotes/{}",
    "refs/remotes/{}/HEAD",
];

impl Repo {
    /// The object `rev` names.
    pub fn resolve(&self, rev: &str) -> GitResult<Oid> {
        let unknown = || GitError::UnknownRevision(rev.to_string());
        let split = rev.find(['~', '^']).unwrap_or(rev.len());
        let (base, mut ops) = rev.split_at(split);
        let mut oid = self.resolve_base(if base.is_empty() { "HEAD" } else { base })?;
        while !ops.is_empty() {
            let op = ops.as_bytes()[0];
            ops = &ops[1..];
            if op == b'^' && ops.starts_with('{') {
                let end = ops.find('}').ok_or_else(unknown)?;
                let want = &ops[1..end];
                ops = &ops[end + 1..];
                oid = match want {
                    "" => self.peel_tags(&oid)?,
                    "commit" => self.peel(&oid, ObjectKind::Commit)?.0,
                    "tree" => self.peel(&oid, ObjectKind::Tree)?.0,
                    "blob" => self.peel(&oid, ObjectKind::Blob)?.0,
                    "tag" => self.peel(&oid, ObjectKind::Tag)?.0,
                    _ => return Err(unknown()),
                };
                continue;
            }
            let digits = ops.len() - ops.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            let n: usize = if digits == 0 {
                1
            } else {
                ops[..digits].parse().map_err(|_| unknown())?
            };
            ops = &ops[digits..];
            if op == b'~' {
                for _ in 0..n {
                    let (_, c) = self.commit_object(&oid)?;
                    oid = *c.parents.first().ok_or_else(unknown)?;
                }
            } else if n == 0 {
                oid = self.commit_object(&oid)?.0;
            } else {
                let (_, c) = self.commit_object(&oid)?;
                oid = *c.parents.get(n - 1).ok_or_else(unknown)?;
            }
        }
        Ok(oid)
    }

    fn resolve_base(&self, name: &str) -> GitResult<Oid> {
        for pattern in REF_PATTERNS {
            if let Some(oid) = self.ref_target(&pattern.replace("{}", name)) {
                return Ok(oid);
            }
        }
        let hex =
            name.len() >= 4 && name.len() <= 40 && name.bytes().all(|b| b.is_ascii_hexdigit());
        if hex {
            let found = self.find_prefix(&name.to_ascii_lowercase(), 2)?;
            match found.as_slice() {
                [one] => return Ok(*one),
                [] => {}
                _ => return Err(GitError::Ambiguous(name.to_string())),
            }
        }
        Err(GitError::UnknownRevision(name.to_string()))
    }

    fn peel_tags(&self, oid: &Oid) -> GitResult<Oid> {
        let mut oid = *oid;
        loop {
            let (kind, data) = self.read(&oid)?;
            if kind != ObjectKind::Tag {
                return Ok(oid);
            }
            oid = crate::object::parse_tag(&oid, &data)?.0;
        }
    }

    /// Commits reachable from `start`, newest commit time first (ties in
    /// the order reached), as `git log` lists them; at most `limit`.
    pub fn log(&self, start: &[Oid], limit: usize) -> GitResult<Vec<(Oid, Commit)>> {
        // (commit time, -sequence): a max-heap pops the newest, and among
        // equal times the one reached first.
        let mut heap = BinaryHeap::new();
        let mut seen = HashSet::new();
        let mut seq: i64 = 0;
        let mut queued = HashMap::new();
        let mut out = Vec::new();
        for oid in start {
            let (oid, commit) = self.commit_object(oid)?;
            if seen.insert(oid) {
                heap.push((commit.committer.time, -seq, oid));
                queued.insert(oid, commit);
                seq += 1;
            }
        }
        while let Some((_, _, oid)) = heap.pop() {
            if out.len() >= limit {
                break;
            }
            let Some(commit) = queued.remove(&oid) else {
                continue;
            };
            for parent in &commit.parents {
                if seen.insert(*parent) {
                    let (_, c) = self.commit_object(parent)?;
                    heap.push((c.committer.time, -seq, *parent));
                    queued.insert(*parent, c);
                    seq += 1;
                }
            }
            out.push((oid, commit));
        }
        Ok(out)
    }

    /// Whether commit `ancestor` is reachable from commit `from` (or is it).
    pub fn is_ancestor(&self, ancestor: &Oid, from: &Oid) -> GitResult<bool> {
        let mut stack = vec![*from];
        let mut seen = HashSet::new();
        while let Some(oid) = stack.pop() {
            if oid == *ancestor {
                return Ok(true);
            }
            if !seen.insert(oid) {
                continue;
            }
            let (_, c) = self.commit_object(&oid)?;
            stack.extend(c.parents);
        }
        Ok(false)
    }
}

/// A time as git log prints it by default: `Mon Nov 30 07:28:30 2026 +0000`
/// in the offset it was recorded with.
pub fn format_date(time: i64, offset_minutes: i32) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let local = time + i64::from(offset_minutes) * 60;
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let off = offset_minutes.unsigned_abs();
    format!(
        "{} {} {} {:02}:{:02}:{:02} {} {}{:02}{:02}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        day,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
        year,
        sign,
        off / 60,
        off % 60
    )
}

#[cfg(test)]
mod tests {
    use super::format_date;

    #[test]
    fn dates_print_as_git_prints_them() {
        assert_eq!(format_date(0, 0), "Thu Jan 1 00:00:00 1970 +0000");
        assert_eq!(
            format_date(1_700_000_000, 90),
            "Tue Nov 14 23:43:20 2023 +0130"
        );
        assert_eq!(
            format_date(1_709_208_000, -480),
            "Thu Feb 29 04:00:00 2024 -0800"
        );
    }
}
