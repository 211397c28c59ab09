//! `hydra gateway`: the store over HTTP. Files of filesystems (`/fs`),
//! blocks and DAGs by CID (`/ipfs`, raw blocks and CAR as the IPFS
//! trustless-gateway conventions name them), key/value stores (`/kv`) and
//! a health check. Reads are open; writes need the bearer token and a
//! gateway that is not read-only. Store calls run on blocking threads;
//! file bodies stream both ways in 1 MiB pieces, so a slow or vanished
//! client holds at most a few of them.

mod car;
mod files;
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

use files::{fs_delete, fs_get, fs_put, serve_path};
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
