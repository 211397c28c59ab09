//! `hydra gateway`: the store over HTTP. Files of filesystems (`/fs`),
//! blocks and DAGs by CID (`/ipfs`, raw blocks and CAR as the IPFS
//! trustless-gateway conventions name them), key/value stores (`/kv`) and
//! a health check. Reads are open; writes need the bearer token and a
//! gateway that is not read-only. Store calls run on blocking threads;
//! file bodies stream both ways in 1 MiB pieces, so a slow or vanished
//! client holds at most a few of them.

mod car;
pub(crate) mod http;
mod ipfs;
mod metrics;
mod views;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use futures_util::StreamExt;
use hydra_dag::{Bucket, Cid, Codec, RefName, Store};
use hydra_fs::{Caller, Fs, FsError, FsOptions, Ino, Kind, OpenFlags, split_last};
use hydra_kv::Kv;
use tokio::sync::mpsc;

use http::{BadPath, RangeAnswer, content_type, fs_path, html_escape, range};

/// Bytes per piece of a streamed body.
const PIECE: usize = 1 << 20;

/// What the gateway serves and how.
pub struct Gateway {
    /// Keeps the store (and its lock) for the gateway's life.
    store: Store,
    read_only: bool,
    token: Option<String>,
    /// Requests answered, by endpoint (for `/metrics`).
    counts: [std::sync::atomic::AtomicU64; ENDPOINTS.len()],
    /// Filesystem versions opened lately, by root: a version never
    /// changes, so its loaded directories serve every later request.
    views: std::sync::Mutex<Vec<(Cid, Fs)>>,
    /// Roots of refs read lately, kept only when no one else can move a
    /// ref: every volume is local to this store, whose lock the gateway
    /// holds (so only its own writes, which clear this, change refs).
    refs: Option<std::sync::Mutex<std::collections::HashMap<RefName, Option<Cid>>>>,
    /// Commits this gateway made, and their total time in microseconds.
    commits: std::sync::atomic::AtomicU64,
    commit_us: std::sync::atomic::AtomicU64,
    /// Requests of the front ends served beside the gateway (metric
    /// name, counts).
    front_ends: Vec<(&'static str, Arc<crate::ops::OpCounts>)>,
    /// The mount's filesystem, when the gateway runs in a mount daemon
    /// (for its commit count and time).
    mounted: Option<Fs>,
    /// Small files served lately, by root and path: a version never
    /// changes, so a hit is answered without a trip to a blocking thread.
    small_files: std::sync::Mutex<lru::LruCache<(Cid, Vec<u8>), SmallFile>>,
}

/// A small file's bytes and content CID, as served.
#[derive(Clone)]
struct SmallFile {
    etag: Option<Cid>,
    data: Bytes,
}

/// Files up to this size are kept in the small-file cache ...
const SMALL_FILE: usize = 32 << 10;
/// ... which holds at most this many (so at most 64 MiB).
const SMALL_FILES: usize = 2048;

/// How many opened versions the gateway keeps.
const VIEWS: usize = 16;

/// The endpoints `/metrics` counts.
const ENDPOINTS: [&str; 6] = ["fs", "ipfs", "kv", "sql", "events", "metrics"];

/// An answer that is an error.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (
            self.0,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}\n", self.1),
        )
            .into_response()
    }
}

/// The one place store errors become HTTP statuses.
fn failure(e: impl Into<anyhow::Error>) -> Failure {
    let e = e.into();
    let status = match e.downcast_ref::<FsError>() {
        Some(FsError::NotFound) => StatusCode::NOT_FOUND,
        Some(FsError::Exists) => StatusCode::CONFLICT,
        Some(FsError::NotDir | FsError::IsDir | FsError::NotEmpty) => StatusCode::CONFLICT,
        // Another writer changed the same file meanwhile: nothing written.
        Some(FsError::Conflict { .. } | FsError::MergeConflict { .. }) => StatusCode::CONFLICT,
        Some(FsError::Access | FsError::NotPermitted | FsError::ReadOnly) => StatusCode::FORBIDDEN,
        Some(FsError::NameTooLong) => StatusCode::URI_TOO_LONG,
        Some(FsError::Invalid(_)) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    Failure(status, format!("{e:#}"))
}

type Shared = Arc<Gateway>;

impl Gateway {
    /// A gateway over `store`; writes need `token` unless it is `None`
    /// (then none are allowed) and the gateway is not read-only.
    pub fn new(store: Store, read_only: bool, token: Option<String>) -> Gateway {
        let private = store
            .config()
            .buckets
            .iter()
            .all(|b| b.volumes.iter().all(|v| v.kind == "local"));
        Gateway {
            refs: private.then(|| std::sync::Mutex::new(Default::default())),
            store,
            read_only,
            token,
            counts: Default::default(),
            views: std::sync::Mutex::new(Vec::new()),
            commits: Default::default(),
            commit_us: Default::default(),
            front_ends: Vec::new(),
            mounted: None,
            small_files: std::sync::Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(SMALL_FILES).unwrap_or(std::num::NonZeroUsize::MIN),
            )),
        }
    }

    /// The root of `name` if it is at hand without blocking (cached).
    fn cached_root(&self, name: &RefName) -> Option<Cid> {
        let cache = self.refs.as_ref()?;
        let roots = cache.lock().unwrap_or_else(|e| e.into_inner());
        roots.get(name).copied().flatten()
    }

    /// A small file served before from this version.
    fn small_file(&self, root: Cid, path: &[u8]) -> Option<SmallFile> {
        let mut files = self.small_files.lock().unwrap_or_else(|e| e.into_inner());
        files.get(&(root, path.to_vec())).cloned()
    }

    /// Keeps a small file for the next request of it.
    fn keep_small_file(&self, root: Cid, path: Vec<u8>, file: SmallFile) {
        if file.data.len() <= SMALL_FILE {
            let mut files = self.small_files.lock().unwrap_or_else(|e| e.into_inner());
            files.put((root, path), file);
        }
    }

    /// The gateway of a mount daemon serving `fs`: refs also move by the
    /// mount's commits (so none is cached), and `/metrics` counts the FUSE
    /// and 9P requests the daemon serves and the mount's commits.
    pub fn beside_mount(
        mut self,
        fs: Fs,
        fuse: Option<Arc<crate::ops::OpCounts>>,
        ninep: Option<Arc<crate::ops::OpCounts>>,
    ) -> Gateway {
        self.refs = None;
        self.mounted = Some(fs);
        self.front_ends = [
            ("hydra_fuse_ops_total", fuse),
            ("hydra_9p_ops_total", ninep),
        ]
        .into_iter()
        .filter_map(|(name, ops)| Some((name, ops?)))
        .collect();
        self
    }

    /// The root `name` names now.
    fn root_of(&self, name: &RefName) -> Result<Option<Cid>, Failure> {
        let Some(cache) = &self.refs else {
            return self.bucket().get_ref(name).map_err(failure);
        };
        if let Some(root) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(name) {
            return Ok(*root);
        }
        let root = self.bucket().get_ref(name).map_err(failure)?;
        cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.clone(), root);
        Ok(root)
    }

    /// Runs a commit, timing it for `/metrics`, then forgets cached refs.
    fn timed_commit<T>(&self, commit: impl FnOnce() -> T) -> T {
        let started = std::time::Instant::now();
        let result = commit();
        self.commits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.commit_us.fetch_add(
            started.elapsed().as_micros() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        self.forget_refs();
        result
    }

    /// Forgets cached ref roots (after this gateway moved a ref).
    fn forget_refs(&self) {
        if let Some(cache) = &self.refs {
            cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }

    /// The read-only filesystem at `root`, from the cache when lately used.
    fn view(&self, root: Cid) -> Result<Fs, Failure> {
        {
            let mut views = self.views.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = views.iter().position(|(r, _)| *r == root) {
                let hit = views.remove(i);
                let fs = hit.1.clone();
                views.push(hit);
                return Ok(fs);
            }
        }
        let fs = Fs::open_snapshot(self.bucket(), root).map_err(failure)?;
        let mut views = self.views.lock().unwrap_or_else(|e| e.into_inner());
        if views.len() >= VIEWS {
            views.remove(0);
        }
        views.push((root, fs.clone()));
        Ok(fs)
    }

    fn count(&self, endpoint: &str) {
        if let Some(i) = ENDPOINTS.iter().position(|e| *e == endpoint) {
            self.counts[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Whether the request carries the write token (whatever `read_only`).
    fn has_token(&self, headers: &HeaderMap) -> bool {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match (&self.token, given) {
            (Some(t), Some(g)) => constant_eq(g.as_bytes(), t.as_bytes()),
            _ => false,
        }
    }

    fn bucket(&self) -> Bucket {
        self.store.bucket().clone()
    }

    fn may_write(&self, headers: &HeaderMap) -> Result<(), Failure> {
        if self.read_only {
            return Err(Failure(
                StatusCode::FORBIDDEN,
                "the gateway is read-only".into(),
            ));
        }
        let Some(token) = &self.token else {
            return Err(Failure(
                StatusCode::FORBIDDEN,
                "writes need a gateway started with --token-file".into(),
            ));
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given.is_some_and(|g| constant_eq(g.as_bytes(), token.as_bytes())) {
            Ok(())
        } else {
            Err(Failure(
                StatusCode::UNAUTHORIZED,
                "a valid bearer token is needed".into(),
            ))
        }
    }
}

/// Compares secrets in time independent of where they differ.
fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The router of every endpoint.
pub fn router(gateway: Gateway) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/fs/:name", get(fs_get).put(fs_put).delete(fs_delete))
        .route("/fs/:name/", get(fs_get).put(fs_put).delete(fs_delete))
        .route("/fs/:name/*path", get(fs_get).put(fs_put).delete(fs_delete))
        .route("/ipfs/:cid", get(ipfs::ipfs_get))
        .route("/ipfs/:cid/*path", get(ipfs::ipfs_get))
        .route("/kv/:name", get(views::kv_list))
        .route(
            "/kv/:name/*key",
            get(views::kv_get)
                .put(views::kv_put)
                .delete(views::kv_delete),
        )
        .route("/sql/:name", axum::routing::post(views::sql_post))
        .route("/events", get(views::events))
        .route("/metrics", get(metrics::metrics))
        .with_state(Arc::new(gateway))
}

/// Serves `gateway` on `addr` until the process is stopped.
pub async fn serve(gateway: Gateway, addr: SocketAddr) -> anyhow::Result<()> {
    serve_on(gateway, bind(addr)?).await
}

/// Binds the gateway's address (so a taken port fails at once).
pub fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves `gateway` on a bound listener until the process is stopped.
pub async fn serve_on(gateway: Gateway, listener: std::net::TcpListener) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    eprintln!(
        "hydra gateway listening on http://{}",
        listener.local_addr()?
    );
    // Replies go out as written: a small body must not wait for the
    // client to acknowledge the headers (Nagle's algorithm).
    axum::serve(listener, router(gateway))
        .tcp_nodelay(true)
        .await?;
    Ok(())
}

/// Runs `f` on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

/// The raw path after `/PREFIX/NAME`, still percent-encoded.
fn rest_of(uri: &Uri, segments: usize) -> String {
    uri.path()
        .split('/')
        .skip(segments + 1)
        .collect::<Vec<_>>()
        .join("/")
}

fn checked_path(uri: &Uri, segments: usize) -> Result<Vec<u8>, Failure> {
    fs_path(&rest_of(uri, segments)).map_err(|e| match e {
        BadPath::TooLong => Failure(StatusCode::URI_TOO_LONG, "path too long".into()),
        BadPath::Invalid => Failure(StatusCode::BAD_REQUEST, "path not allowed".into()),
    })
}

#[derive(serde::Deserialize)]
struct FsQuery {
    at: Option<String>,
}

fn fs_ref(name: &str) -> Result<RefName, Failure> {
    RefName::new(format!("fs/{name}")).map_err(|e| Failure(StatusCode::BAD_REQUEST, e.to_string()))
}

async fn fs_get(
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
async fn serve_path(
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
            let fh = fs
                .open_file(
                    ino,
                    OpenFlags {
                        read: true,
                        ..OpenFlags::default()
                    },
                    &me,
                )
                .map_err(failure)?;
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
        let fh = match fs.open_file(
            ino,
            OpenFlags {
                read: true,
                ..OpenFlags::default()
            },
            &Caller::root(),
        ) {
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

async fn fs_put(
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

async fn fs_delete(
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
