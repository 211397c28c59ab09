//! `/fs`: files and listings of filesystems, read at any snapshot, and
//! written (one commit a request) with the token.

use super::*;

/// The query of a `/fs` read: the snapshot to read at.
#[derive(serde::Deserialize)]
pub(super) struct FsQuery {
    at: Option<String>,
}

fn fs_ref(name: &str) -> Result<RefName, Failure> {
    RefName::new(format!("fs/{name}")).map_err(|e| Failure(StatusCode::BAD_REQUEST, e.to_string()))
}

pub(super) async fn fs_get(
    State(gw): State<Shared>,
    UrlPath(params): UrlPath<Vec<(String, String)>>,
    Query(query): Query<FsQuery>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    gw.count("fs");
    let name = params.first().map(|p| p.1.clone()).unwrap_or_default();
    let path = match checked_path(&uri, 2) {
        Ok(p) => p,
        Err(f) => return f.into_response(),
    };
    if query.at.is_none()
        && let Ok(refname) = fs_ref(&name)
        && let Some(root) = gw.cached_root(&refname)
        && let Some(file) = gw.small_file(root, &path)
    {
        let len = file.data.len() as u64;
        return answer_file(
            &path,
            &method,
            &headers,
            len,
            file.etag,
            Some(file.data),
            None,
        );
    }
    let bucket = gw.bucket();
    let gw2 = gw.clone();
    let keep = gw.clone();
    let open = move || {
        let refname = fs_ref(&name)?;
        let root = match &query.at {
            Some(spec) => crate::cli::snapshot_root_of(&bucket, &refname, spec)
                .map_err(|e| Failure(StatusCode::NOT_FOUND, format!("{e:#}")))?,
            None => gw2
                .root_of(&refname)?
                .ok_or_else(|| Failure(StatusCode::NOT_FOUND, format!("no filesystem {name}")))?,
        };
        gw2.view(root)
    };
    serve_path(open, path, method, headers, uri, Some(keep)).await
}

/// Answers a GET of `path` in `fs`: a file's bytes or a directory listing;
/// small files are kept in `cache`'s small-file cache.
pub(super) async fn serve_path(
    open: impl FnOnce() -> Result<Fs, Failure> + Send + 'static,
    path: Vec<u8>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    cache: Option<Shared>,
) -> Response {
    let p = path.clone();
    // One trip to a blocking thread finds the file and, when it is
    // small, reads it too.
    let found = blocking(move || {
        let fs = open()?;
        let me = Caller::root();
        let ino = fs.resolve(&p, &me).map_err(failure)?;
        let attr = fs.getattr(ino).map_err(failure)?;
        let etag = fs.content_id(ino).map_err(failure)?;
        let small = if attr.kind == Kind::File && attr.size <= PIECE as u64 {
            let fh = fs.open_file(ino, OpenFlags::READ, &me).map_err(failure)?;
            let data = fs.read(fh, 0, attr.size as usize).map_err(failure);
            let _ = fs.release(fh);
            Some(Bytes::from(data?))
        } else {
            None
        };
        Ok((fs, ino, attr, etag, small))
    })
    .await;
    let (fs, ino, attr, etag, small) = match found {
        Ok(f) => f,
        Err(f) => return f.into_response(),
    };
    if attr.kind == Kind::Dir {
        return listing(fs, ino, path, headers, uri).await;
    }
    if attr.kind != Kind::File {
        return Failure(StatusCode::NOT_FOUND, "not a file or directory".into()).into_response();
    }
    if let (Some(gw), Some(root), Some(data)) = (&cache, fs.base(), &small) {
        let file = SmallFile {
            etag,
            data: data.clone(),
        };
        gw.keep_small_file(root, path.clone(), file);
    }
    answer_file(
        &path,
        &method,
        &headers,
        attr.size,
        etag,
        small,
        Some((fs, ino)),
    )
}

/// Answers a GET or HEAD of a file of `len` bytes: conditional requests,
/// ranges, then the bytes (`small`, else read from `fs` as they are sent).
fn answer_file(
    path: &[u8],
    method: &Method,
    headers: &HeaderMap,
    len: u64,
    etag: Option<Cid>,
    small: Option<Bytes>,
    fs: Option<(Fs, Ino)>,
) -> Response {
    let etag = etag.map(|c| format!("\"{c}\""));
    if let (Some(tag), Some(inm)) = (&etag, headers.get(header::IF_NONE_MATCH)) {
        let matches = inm
            .to_str()
            .map(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"))
            .unwrap_or(false);
        if matches {
            let mut r = StatusCode::NOT_MODIFIED.into_response();
            if let Ok(v) = HeaderValue::from_str(tag) {
                r.headers_mut().insert(header::ETAG, v);
            }
            return r;
        }
    }
    let ranged = range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        len,
    );
    let (status, start, end) = match ranged {
        RangeAnswer::Full => (StatusCode::OK, 0, len),
        RangeAnswer::Partial(s, e) => (StatusCode::PARTIAL_CONTENT, s, e),
        RangeAnswer::Unsatisfiable => {
            let mut r = Failure(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range not satisfiable".into(),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let name =
        String::from_utf8_lossy(path.rsplit(|&b| b == b'/').next().unwrap_or(b"")).into_owned();
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type(&name))
        .header(header::CONTENT_LENGTH, end - start)
        .header(header::ACCEPT_RANGES, "bytes");
    if let Some(tag) = &etag {
        builder = builder.header(header::ETAG, tag.as_str());
    }
    if status == StatusCode::PARTIAL_CONTENT {
        builder = builder.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{len}", end - 1),
        );
    }
    if *method == Method::HEAD {
        return builder
            .body(Body::empty())
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    if let Some(data) = small {
        return builder
            .body(Body::from(data.slice(start as usize..end as usize)))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    let Some((fs, ino)) = fs else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    // A producer on a blocking thread; the channel holds two pieces, so a
    // slow client slows the reads instead of filling memory, and a gone
    // one stops them.
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::task::spawn_blocking(move || {
        let fh = match fs.open_file(ino, OpenFlags::READ, &Caller::root()) {
            Ok(fh) => fh,
            Err(e) => {
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                return;
            }
        };
        let mut at = start;
        while at < end {
            let n = ((end - at) as usize).min(PIECE);
            let piece = fs
                .read(fh, at, n)
                .map(Bytes::from)
                .map_err(|e| std::io::Error::other(e.to_string()));
            let stop = piece.is_err();
            if tx.blocking_send(piece).is_err() || stop {
                break;
            }
            at += n as u64;
        }
        let _ = fs.release(fh);
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    builder
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// A directory: HTML for browsers (by Accept), JSON otherwise.
async fn listing(fs: Fs, ino: Ino, path: Vec<u8>, headers: HeaderMap, uri: Uri) -> Response {
    let entries = blocking(move || {
        let me = Caller::root();
        let mut out = Vec::new();
        let mut cookie = 0;
        loop {
            let page = fs.readdir_plus(ino, cookie, &me).map_err(failure)?;
            if page.is_empty() {
                break;
            }
            for (e, a) in &page {
                cookie = e.cookie;
                if e.name != b"." && e.name != b".." {
                    out.push((
                        String::from_utf8_lossy(&e.name).into_owned(),
                        a.kind,
                        a.size,
                    ));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    })
    .await;
    let entries = match entries {
        Ok(e) => e,
        Err(f) => return f.into_response(),
    };
    let kind = |k: Kind| match k {
        Kind::Dir => "dir",
        Kind::File => "file",
        Kind::Symlink => "symlink",
        _ => "other",
    };
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let shown = String::from_utf8_lossy(&path).into_owned();
    if wants_html {
        let base = uri.path().trim_end_matches('/');
        let mut html = format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{0}</title></head>\n<body><h1>Index of {0}</h1>\n<table>\n",
            html_escape(&shown)
        );
        for (name, k, size) in &entries {
            let slash = if *k == Kind::Dir { "/" } else { "" };
            html.push_str(&format!(
                "<tr><td><a href=\"{}/{}{slash}\">{}{slash}</a></td><td>{}</td><td>{size}</td></tr>\n",
                base,
                percent_encode(name),
                html_escape(name),
                kind(*k)
            ));
        }
        html.push_str("</table></body></html>\n");
        return ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    }
    let list: Vec<serde_json::Value> = entries
        .iter()
        .map(|(n, k, s)| serde_json::json!({"name": n, "kind": kind(*k), "size": s}))
        .collect();
    axum::Json(serde_json::json!({"path": shown, "entries": list})).into_response()
}

fn percent_encode(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn open_rw(bucket: Bucket, name: &str) -> Result<Fs, Failure> {
    let options = FsOptions {
        commit_interval: None,
        commit_on_pressure: false,
        author: "hydra gateway".into(),
        refresh_interval: None,
        ..FsOptions::default()
    };
    Fs::open(bucket, name, &Caller::root(), options).map_err(failure)
}

/// The filesystem and path a write names, once the caller may write.
fn write_target(
    gw: &Gateway,
    params: &[(String, String)],
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(String, Vec<u8>), Failure> {
    gw.may_write(headers)?;
    let name = params.first().map(|p| p.1.clone()).unwrap_or_default();
    match checked_path(uri, 2)? {
        p if p == b"/" => Err(Failure(
            StatusCode::BAD_REQUEST,
            "a path inside the filesystem is needed".into(),
        )),
        p => Ok((name, p)),
    }
}

pub(super) async fn fs_put(
    State(gw): State<Shared>,
    UrlPath(params): UrlPath<Vec<(String, String)>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (name, path) = match write_target(&gw, &params, &uri, &headers) {
        Ok(t) => t,
        Err(f) => return f.into_response(),
    };
    let (tx, mut rx) = mpsc::channel::<Bytes>(2);
    let bucket = gw.bucket();
    let gw_put = gw.clone();
    let writer = tokio::task::spawn_blocking(move || -> Result<u64, Failure> {
        let fs = open_rw(bucket, &name)?;
        let me = Caller::root();
        let (dir, file) = split_last(&path).map_err(failure)?;
        let parent = fs.mkdir_p(Ino::ROOT, &dir, &me).map_err(failure)?;
        let flags = OpenFlags {
            write: true,
            truncate: true,
            ..OpenFlags::default()
        };
        let fh = match fs.lookup(parent, &file, &me) {
            Ok(a) if a.kind == Kind::File => fs.open_file(a.ino, flags, &me).map_err(failure)?,
            Ok(_) => return Err(Failure(StatusCode::CONFLICT, "not a file".into())),
            Err(FsError::NotFound) => {
                fs.create(parent, &file, 0o644, flags, &me)
                    .map_err(failure)?
                    .1
            }
            Err(e) => return Err(failure(e)),
        };
        let mut at = 0u64;
        while let Some(piece) = rx.blocking_recv() {
            fs.write(fh, at, &piece, &me).map_err(failure)?;
            at += piece.len() as u64;
        }
        fs.release(fh).map_err(failure)?;
        let committed = gw_put
            .timed_commit(|| fs.commit(&format!("gateway PUT {}", String::from_utf8_lossy(&path))));
        committed.map_err(failure)?;
        Ok(at)
    });
    let mut stream = body.into_data_stream();
    while let Some(piece) = stream.next().await {
        match piece {
            // The writer stopped (an error it reports below).
            Ok(p) => {
                if tx.send(p).await.is_err() {
                    break;
                }
            }
            // The client went away: nothing is committed.
            Err(_) => {
                drop(tx);
                let _ = writer.await;
                return Failure(StatusCode::BAD_REQUEST, "the upload broke off".into())
                    .into_response();
            }
        }
    }
    drop(tx);
    match writer.await {
        Ok(Ok(n)) => (StatusCode::CREATED, format!("{n} bytes\n")).into_response(),
        Ok(Err(f)) => f.into_response(),
        Err(e) => Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

pub(super) async fn fs_delete(
    State(gw): State<Shared>,
    UrlPath(params): UrlPath<Vec<(String, String)>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (name, path) = match write_target(&gw, &params, &uri, &headers) {
        Ok(t) => t,
        Err(f) => return f.into_response(),
    };
    let bucket = gw.bucket();
    let gw_del = gw.clone();
    let done = blocking(move || {
        let fs = open_rw(bucket, &name)?;
        let me = Caller::root();
        let (dir, file) = split_last(&path).map_err(failure)?;
        let parent = fs.resolve(&dir, &me).map_err(failure)?;
        let attr = fs.lookup(parent, &file, &me).map_err(failure)?;
        if attr.kind == Kind::Dir {
            fs.rmdir(parent, &file, &me).map_err(failure)?;
        } else {
            fs.unlink(parent, &file, &me).map_err(failure)?;
        }
        gw_del
            .timed_commit(|| {
                fs.commit(&format!(
                    "gateway DELETE {}",
                    String::from_utf8_lossy(&path)
                ))
            })
            .map_err(failure)?;
        Ok(())
    })
    .await;
    match done {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(f) => f.into_response(),
    }
}
