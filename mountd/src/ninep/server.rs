//! The 9P2000.L server: listeners, connections, and the request loop.
//!
//! Each connection has a reader (frames in) and runs each request on a
//! blocking thread, which sends its own reply, so many tags are served
//! at once. Memory is bounded: a frame is read only after taking a permit of
//! its connection (at most [`PER_CONN`] outstanding) and of the server (at
//! most [`GLOBAL`] outstanding), and frames over msize close the
//! connection. Connections past the limit are closed at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Semaphore, watch};

use super::listen::{Cidr, Listen, admitted};
use super::locks::LockTable;
use super::session::{Export, NpError, Session};
use super::wire::{self, HEADER, Rmsg, Tmsg};

/// Largest msize granted.
pub const MAX_MSIZE: u32 = 1 << 20;
/// Requests one connection may have outstanding.
pub const PER_CONN: usize = 32;
/// Requests the whole server may have outstanding.
pub const GLOBAL: usize = 128;
/// How long a new connection may take to send its first message.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// How a server is set up.
#[derive(Clone, Debug)]
pub struct Config {
    /// TCP clients admitted (empty: loopback only).
    pub allow: Vec<Cidr>,
    /// Connections served at once; more are closed on arrival.
    pub max_connections: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            allow: Vec::new(),
            max_connections: 128,
        }
    }
}

/// A 9P server of one export.
#[derive(Debug)]
pub struct Server {
    export: Arc<Export>,
    locks: Arc<LockTable>,
    config: Config,
    connections: Arc<Semaphore>,
    global: Arc<Semaphore>,
    next_conn: AtomicU64,
    live: AtomicUsize,
    sessions: Mutex<Vec<std::sync::Weak<Session>>>,
}

/// What a server holds now, for `hydra status` and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Connections being served.
    pub connections: usize,
    /// Fids held by all of them.
    pub fids: usize,
    /// Byte-range locks held.
    pub locks: usize,
}

/// A bound listener, ready to serve.
#[derive(Debug)]
pub enum Bound {
    /// TCP.
    Tcp(TcpListener),
    /// A unix socket (its path is removed when the server ends).
    Unix(UnixListener, std::path::PathBuf),
}

/// Binds every address; fails on the first that cannot be bound.
pub async fn bind(addrs: &[Listen]) -> std::io::Result<Vec<Bound>> {
    let mut out = Vec::new();
    for a in addrs {
        out.push(match a {
            Listen::Tcp(addr) => Bound::Tcp(TcpListener::bind(addr).await?),
            Listen::Unix(path) => {
                // A socket file nobody listens on is left from a dead server.
                if path.exists() && std::os::unix::net::UnixStream::connect(path).is_err() {
                    let _ = std::fs::remove_file(path);
                }
                Bound::Unix(UnixListener::bind(path)?, path.clone())
            }
        });
    }
    Ok(out)
}

impl Server {
    /// A server of `export`.
    pub fn new(export: Export, config: Config) -> Arc<Server> {
        Arc::new(Server {
            export: Arc::new(export),
            locks: Arc::new(LockTable::default()),
            connections: Arc::new(Semaphore::new(config.max_connections)),
            global: Arc::new(Semaphore::new(GLOBAL)),
            config,
            next_conn: AtomicU64::new(1),
            live: AtomicUsize::new(0),
            sessions: Mutex::new(Vec::new()),
        })
    }

    /// Connections, fids and locks held now.
    pub fn stats(&self) -> Stats {
        let mut sessions = lock(&self.sessions);
        sessions.retain(|s| s.strong_count() > 0);
        Stats {
            connections: self.live.load(Ordering::Relaxed),
            fids: sessions
                .iter()
                .filter_map(std::sync::Weak::upgrade)
                .map(|s| s.fid_count())
                .sum(),
            locks: self.locks.count(),
        }
    }

    /// Serves every listener until `stop` turns true.
    pub async fn serve(self: Arc<Self>, bound: Vec<Bound>, mut stop: watch::Receiver<bool>) {
        let mut tasks = tokio::task::JoinSet::new();
        for b in bound {
            let me = self.clone();
            tasks.spawn(async move { me.accept_loop(b).await });
        }
        let _ = stop.wait_for(|s| *s).await;
        tasks.abort_all();
    }

    async fn accept_loop(self: Arc<Self>, bound: Bound) {
        match bound {
            Bound::Tcp(l) => loop {
                let Ok((stream, peer)) = l.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                if !admitted(peer.ip(), &self.config.allow) {
                    eprintln!("hydra: 9p: refused {peer}: not in --allow");
                    continue;
                }
                let _ = stream.set_nodelay(true);
                self.clone().admit(stream, peer.to_string());
            },
            Bound::Unix(l, path) => {
                let _cleanup = RemoveOnDrop(path);
                loop {
                    let Ok((stream, _)) = l.accept().await else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    self.clone().admit(stream, "unix".into());
                }
            }
        }
    }

    fn admit<S>(self: Arc<Self>, stream: S, peer: String)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let Ok(permit) = self.connections.clone().try_acquire_owned() else {
            eprintln!("hydra: 9p: refused {peer}: connection limit reached");
            return;
        };
        tokio::spawn(async move {
            self.live.fetch_add(1, Ordering::Relaxed);
            self.connection(stream).await;
            self.live.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }

    async fn connection<S>(self: &Arc<Self>, stream: S)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let session = Arc::new(Session::new(
            conn,
            self.export.clone(),
            self.locks.clone(),
            MAX_MSIZE,
        ));
        lock(&self.sessions).push(Arc::downgrade(&session));
        let (mut rd, wr) = tokio::io::split(stream);
        let tx = Arc::new(Replies::new(wr));
        let runtime = tokio::runtime::Handle::current();
        let mine = Arc::new(Semaphore::new(PER_CONN));
        let inflight: Inflight = Arc::new(Mutex::new(HashMap::new()));
        let mut msize = MAX_MSIZE;
        let mut first = true;
        let mut buf = BytesMut::new();
        loop {
            let mut size = [0u8; 4];
            let got = if first {
                match tokio::time::timeout(HELLO_TIMEOUT, rd.read_exact(&mut size)).await {
                    Ok(r) => r,
                    Err(_) => break,
                }
            } else {
                rd.read_exact(&mut size).await
            };
            if got.is_err() {
                break;
            }
            first = false;
            let n = u32::from_le_bytes(size);
            if (n as usize) < HEADER || n > msize {
                eprintln!(
                    "hydra: 9p: connection {conn}: frame of {n} bytes (msize {msize}); closing"
                );
                break;
            }
            let (Ok(own), Ok(global)) = (
                mine.clone().acquire_owned().await,
                self.global.clone().acquire_owned().await,
            ) else {
                break;
            };
            // One buffer per connection, reclaimed once the last request's
            // frame is dropped; read into its spare room without zeroing.
            buf.clear();
            buf.reserve(n as usize);
            buf.extend_from_slice(&size);
            let mut short = false;
            while buf.len() < n as usize {
                let mut limited = (&mut rd).take(n as u64 - buf.len() as u64);
                match limited.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => {
                        short = true;
                        break;
                    }
                    Ok(_) => {}
                }
            }
            if short {
                break;
            }
            let frame = buf.split_to(n as usize).freeze();
            let (tag, msg) = match wire::decode_t(frame.clone()) {
                Ok(m) => m,
                Err(e) => {
                    let Some(tag) = wire::frame_tag(&frame) else {
                        break;
                    };
                    let errno = NpError::Wire(e).errno();
                    tx.send(tag, &Rmsg::Lerror(errno)).await;
                    continue;
                }
            };
            match msg {
                Tmsg::Version {
                    msize: asked,
                    version,
                } => {
                    drop((own, global));
                    // Tversion aborts the session: wait for what is running,
                    // then clunk every fid.
                    let Ok(all) = mine.clone().acquire_many_owned(PER_CONN as u32).await else {
                        break;
                    };
                    let s = session.clone();
                    let _ = tokio::task::spawn_blocking(move || s.reset()).await;
                    drop(all);
                    msize = asked.clamp(HEADER as u32 + 4096, MAX_MSIZE);
                    session.set_msize(msize);
                    let version = if version.starts_with(b"9P2000.L") {
                        b"9P2000.L".to_vec()
                    } else {
                        b"unknown".to_vec()
                    };
                    tx.send(tag, &Rmsg::Version { msize, version }).await;
                }
                Tmsg::Flush { oldtag } => {
                    let running = lock(&inflight).get(&oldtag).map(|(_, rx)| rx.clone());
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        if let Some(mut rx) = running {
                            // Ends when the flushed request has answered.
                            let _ = rx.changed().await;
                        }
                        tx.send(tag, &Rmsg::Flush).await;
                        drop((own, global));
                    });
                }
                msg if is_quick(&msg) || session.is_quick(&msg) => {
                    // In-memory metadata work: answered here, which saves
                    // two thread hops per request. While a commit holds the
                    // filesystem this blocks one of the runtime's worker
                    // threads for that long; the other keeps serving.
                    let reply = session.handle(msg);
                    tx.send(tag, &reply).await;
                    drop((own, global));
                }
                msg => {
                    let (done, rx) = watch::channel(());
                    let generation = conn_generation();
                    lock(&inflight).insert(tag, (generation, rx));
                    let session = session.clone();
                    let tx = tx.clone();
                    let inflight = inflight.clone();
                    let runtime = runtime.clone();
                    tokio::task::spawn_blocking(move || {
                        let reply = session.handle(msg);
                        // Answered from this thread: no hop to another task.
                        runtime.block_on(tx.send(tag, &reply));
                        let mut map = lock(&inflight);
                        if map.get(&tag).is_some_and(|(g, _)| *g == generation) {
                            map.remove(&tag);
                        }
                        drop(map);
                        drop(done);
                        drop((own, global));
                    });
                }
            }
        }
        // Let running requests finish, then close every fid and lock.
        if let Ok(all) = mine.acquire_many_owned(PER_CONN as u32).await {
            let s = session.clone();
            let _ = tokio::task::spawn_blocking(move || s.reset()).await;
            drop(all);
        }
        tx.close().await;
    }
}

/// The sending half of a connection, shared by whoever answers.
struct Replies {
    w: tokio::sync::Mutex<BufWriter<Box<dyn AsyncWrite + Send + Unpin>>>,
}

impl Replies {
    fn new<W: AsyncWrite + Send + Unpin + 'static>(w: W) -> Replies {
        let w: Box<dyn AsyncWrite + Send + Unpin> = Box::new(w);
        Replies {
            w: tokio::sync::Mutex::new(BufWriter::with_capacity(64 << 10, w)),
        }
    }

    /// Sends one reply. A failed send is left to the reader, which sees
    /// the connection end.
    async fn send(&self, tag: u16, msg: &Rmsg) {
        let (head, body) = wire::encode_r_parts(tag, msg);
        let mut w = self.w.lock().await;
        let _ = async {
            w.write_all(&head).await?;
            w.write_all(body).await?;
            w.flush().await
        }
        .await;
    }

    async fn close(&self) {
        let _ = self.w.lock().await.shutdown().await;
    }
}

/// Requests that only touch the inode table in memory: no block I/O, no
/// waiting on a client (reads, writes, fsync, clunks of open files,
/// truncating setattrs and directory listings are not).
fn is_quick(msg: &Tmsg) -> bool {
    matches!(
        msg,
        Tmsg::Attach { .. }
            | Tmsg::Auth { .. }
            | Tmsg::Walk { .. }
            | Tmsg::Getattr { .. }
            | Tmsg::Statfs { .. }
            | Tmsg::Readlink { .. }
            | Tmsg::Mkdir { .. }
            | Tmsg::Symlink { .. }
            | Tmsg::Mknod { .. }
            | Tmsg::Link { .. }
            | Tmsg::Lcreate { .. }
            | Tmsg::Renameat { .. }
            | Tmsg::Unlinkat { .. }
            | Tmsg::Xattrwalk { .. }
            | Tmsg::Xattrcreate { .. }
            | Tmsg::Lock { .. }
            | Tmsg::Getlock { .. }
    )
}

/// Outstanding requests of a connection: tag → (generation, done signal).
type Inflight = Arc<Mutex<HashMap<u16, (u64, watch::Receiver<()>)>>>;

fn conn_generation() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A server running on its own runtime thread.
#[derive(Debug)]
pub struct Running {
    /// The server (for its counters).
    pub server: Arc<Server>,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Binds `listen` and serves `export` on a new runtime thread; fails
/// (binding nothing) when an address cannot be bound.
pub fn start(export: Export, config: Config, listen: &[Listen]) -> std::io::Result<Running> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("hydra-9p")
        .enable_all()
        .build()?;
    let bound = runtime.block_on(bind(listen))?;
    let server = Server::new(export, config);
    let (stop, stopped) = watch::channel(false);
    let serving = server.clone();
    let thread = std::thread::Builder::new()
        .name("hydra-9p-main".into())
        .spawn(move || {
            runtime.block_on(serving.serve(bound, stopped));
            runtime.shutdown_timeout(Duration::from_secs(5));
        })?;
    Ok(Running {
        server,
        stop,
        thread: Some(thread),
    })
}

impl Running {
    /// Stops listening, drops every connection and waits for the runtime.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.halt();
    }
}
