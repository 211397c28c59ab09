//! The parts of HTTP the gateway decides itself: Range (RFC 9110 §14),
//! validators, content types, and which request paths are acceptable.

use hydra_fs::PATH_MAX;

/// What a Range header asks of a representation of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No (usable) Range: the whole representation, 200.
    Full,
    /// One satisfiable range: `start..end` (end exclusive), 206.
    Partial(u64, u64),
    /// Nothing satisfiable: 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Interprets a `Range` header value for `len` bytes. Several ranges are
/// answered with the whole representation (RFC 9110 lets a server ignore
/// Range), and so is a header that does not parse.
pub fn range(header: Option<&str>, len: u64) -> RangeAnswer {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeAnswer::Full;
    };
    if spec.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // A suffix: the last N bytes.
        let Ok(n) = last.parse::<u64>() else {
            return RangeAnswer::Full;
        };
        if n == 0 || len == 0 {
            return RangeAnswer::Unsatisfiable;
        }
        return RangeAnswer::Partial(len.saturating_sub(n), len);
    }
    let Ok(start) = first.parse::<u64>() else {
        return RangeAnswer::Full;
    };
    let end = if last.is_empty() {
        len
    } else {
        match last.parse::<u64>() {
            Ok(l) if l >= start => (l + 1).min(len),
            _ => return RangeAnswer::Full,
        }
    };
    if start >= len {
        return RangeAnswer::Unsatisfiable;
    }
    RangeAnswer::Partial(start, end)
}

/// A media type for a file name, by its extension.
pub fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("txt" | "md" | "rs" | "toml" | "c" | "h" | "py" | "sh") => "text/plain; charset=utf-8",
        Some("css") => "text/css",
        Some("js" | "mjs") => "text/javascript",
        Some("json") => "application/json",
        Some("xml") => "application/xml",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("pdf") => "application/pdf",
        Some("wasm") => "application/wasm",
        Some("zip") => "application/zip",
        Some("gz" | "tgz") => "application/gzip",
        Some("tar") => "application/x-tar",
        Some("mp4") => "video/mp4",
        Some("mp3") => "audio/mpeg",
        _ => "application/octet-stream",
    }
}

/// Why a request path is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum BadPath {
    /// Longer than a path may be.
    TooLong,
    /// A `..` or `.` component, an encoded slash or NUL, or invalid UTF-8.
    Invalid,
}

/// The filesystem path of the raw (still percent-encoded) request path
/// after a prefix: `..`, `.`, encoded `/` or NUL, and over-long paths are
/// refused, so a path never leaves the filesystem it names.
pub fn fs_path(raw: &str) -> Result<Vec<u8>, BadPath> {
    if raw.len() > 3 * PATH_MAX {
        return Err(BadPath::TooLong);
    }
    let mut out = Vec::new();
    for segment in raw.split('/').filter(|s| !s.is_empty()) {
        let lower = segment.to_ascii_lowercase();
        if lower.contains("%2f") || lower.contains("%00") || lower.contains("%5c") {
            return Err(BadPath::Invalid);
        }
        let decoded = percent_decode(segment).ok_or(BadPath::Invalid)?;
        if decoded == b"." || decoded == b".." || decoded.contains(&0) {
            return Err(BadPath::Invalid);
        }
        out.push(b'/');
        out.extend_from_slice(&decoded);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    if out.len() > PATH_MAX {
        return Err(BadPath::TooLong);
    }
    Ok(out)
}

/// Decodes `%XX` escapes.
pub fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Escapes text for HTML.
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(range(None, 100), RangeAnswer::Full);
        assert_eq!(range(Some("bytes=0-9"), 100), RangeAnswer::Partial(0, 10));
        assert_eq!(range(Some("bytes=90-"), 100), RangeAnswer::Partial(90, 100));
        assert_eq!(
            range(Some("bytes=90-500"), 100),
            RangeAnswer::Partial(90, 100)
        );
        assert_eq!(range(Some("bytes=-10"), 100), RangeAnswer::Partial(90, 100));
        assert_eq!(range(Some("bytes=-500"), 100), RangeAnswer::Partial(0, 100));
        assert_eq!(range(Some("bytes=100-"), 100), RangeAnswer::Unsatisfiable);
        assert_eq!(range(Some("bytes=-0"), 100), RangeAnswer::Unsatisfiable);
        assert_eq!(range(Some("bytes=0-1,5-6"), 100), RangeAnswer::Full);
        assert_eq!(range(Some("bytes=5-1"), 100), RangeAnswer::Full);
        assert_eq!(range(Some("items=0-1"), 100), RangeAnswer::Full);
        assert_eq!(range(Some("bytes=0-0"), 0), RangeAnswer::Unsatisfiable);
    }

    #[test]
    fn paths_stay_inside() {
        assert_eq!(fs_path("a/b%20c").as_deref(), Ok(&b"/a/b c"[..]));
        assert_eq!(fs_path("").as_deref(), Ok(&b"/"[..]));
        assert_eq!(fs_path("a/../b"), Err(BadPath::Invalid));
        assert_eq!(fs_path("a/%2e%2e/b"), Err(BadPath::Invalid));
        assert_eq!(fs_path("a%2Fb"), Err(BadPath::Invalid));
        assert_eq!(fs_path("a%00"), Err(BadPath::Invalid));
        assert_eq!(fs_path(&"a/".repeat(3000)), Err(BadPath::TooLong));
    }
}

/// Whether `name` matches `pattern`, where `*` stands for any run of
/// characters (`fs/*`, `*`, `kv/users`).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod glob_tests {
    use super::glob_match;

    #[test]
    fn globs_match_as_shells_do() {
        assert!(glob_match("*", "fs/home"));
        assert!(glob_match("fs/*", "fs/home"));
        assert!(!glob_match("fs/*", "kv/home"));
        assert!(glob_match("kv/users", "kv/users"));
        assert!(!glob_match("kv/users", "kv/users2"));
        assert!(glob_match("*/h*e", "fs/home"));
        assert!(!glob_match("fs/*x", "fs/home"));
    }
}
