//! Command-line parsing and dispatch; one file per subcommand below `cli/`.

mod archive;
mod blob;
mod block;
mod bucket;
mod car;
pub mod error;
mod fs;
pub mod fstab;
mod gateway;
mod gc;
pub mod git;
mod graph;
mod init;
mod kv;
mod mount;
mod output;
mod refs;
mod serve;
mod sql;
mod stats;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::{Parser, Subcommand};
use hydra_dag::{DagError, OpenMode, Store, StoreOptions};

/// hydra: a filesystem and data store over a content-addressed block DAG.
#[derive(Debug, Parser)]
#[command(name = "hydra", version, propagate_version = true)]
pub struct Cli {
    /// The store directory [default: $HYDRA_STORE, else ~/.local/share/hydra].
    #[arg(long, global = true, value_name = "PATH")]
    store: Option<PathBuf>,
    /// Print data as JSON (one document per command).
    #[arg(long, global = true)]
    json: bool,
    /// How long to wait for another process's hold on the store to end
    /// (e.g. another writer's commit) before giving up.
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        env = "HYDRA_LOCK_WAIT",
        default_value_t = 10.0
    )]
    lock_wait: f64,
    /// The bucket to work in [default: $HYDRA_BUCKET, else the first].
    #[arg(long, global = true, value_name = "NAME", env = "HYDRA_BUCKET")]
    bucket: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a store (an absent or empty directory).
    Init(init::InitArgs),
    /// Store files as chunked blobs; read them back at any offset.
    #[command(subcommand)]
    Blob(blob::BlobCommand),
    /// Store, read, inspect and remove raw blocks.
    #[command(subcommand)]
    Block(block::BlockCommand),
    /// Name roots with refs: get, set (compare-and-swap), log, list.
    #[command(subcommand)]
    Ref(refs::RefCommand),
    /// Work with a filesystem without mounting it: ls, cat, put, snapshots.
    #[command(subcommand)]
    Fs(fs::FsCommand),
    /// Key/value stores (prolly trees): get, put, del, scan, diff, log, import, export.
    Kv(kv::KvArgs),
    /// Graphs of RDF quads: add, del, match, path, import and export N-Quads.
    Graph(graph::GraphArgs),
    /// SQLite databases stored in the DAG: run a query, a script or a shell; `log`.
    Sql(sql::SqlArgs),
    /// git repositories stored in the DAG: import, export, log, ls, cat, checkout.
    #[command(subcommand)]
    Git(git::GitCommand),
    /// Delete blocks no ref or changelog entry reaches.
    Gc(gc::GcArgs),
    /// Verify every block the refs reach on every volume that should hold it.
    Fsck(bucket::CheckArgs),
    /// Like fsck, and rewrite each bad copy from a good one on another volume.
    Repair(bucket::CheckArgs),
    /// Copy refs, and the blocks they need that the destination lacks, between stores.
    Sync(bucket::SyncArgs),
    /// Serve the store over HTTP: files, blocks and CARs, key/value stores.
    Gateway(gateway::GatewayArgs),
    /// Buckets: create (over several volumes, with replication), show, list.
    #[command(subcommand)]
    Bucket(bucket::BucketCommand),
    /// Write data out of the store.
    #[command(subcommand)]
    Export(car::ExportCommand),
    /// Bring data into the store.
    #[command(subcommand)]
    Import(car::ImportCommand),
    /// Show block, byte, ref and changelog counts.
    Stats,
    /// Print the store's identity: the ed25519 key that signs its changelog.
    Id,
    /// Mount a filesystem with FUSE (in the background unless --foreground).
    Mount(mount::MountArgs),
    /// Serve a filesystem over 9P2000.L (in the background unless --foreground).
    Serve(serve::ServeArgs),
    /// Commit and stop a mount (by mount point) or a 9P server (by address).
    Umount(mount::UmountArgs),
    /// List live mounts and 9P servers.
    Status,
}

/// What every command gets: where the store is and how to print.
#[derive(Debug)]
pub struct Context {
    store_path: PathBuf,
    json: bool,
    /// How long an open waits for a lock held by another process.
    lock_wait: Duration,
    /// The command line as `hydra` understands it (what a daemon re-runs).
    argv: Vec<std::ffi::OsString>,
    /// The bucket commands work in (`None`: the first).
    bucket: Option<String>,
}

impl Context {
    /// Opens the store read-only (beside other readers).
    fn open_read(&self) -> Result<Store> {
        self.open(OpenMode::ReadOnly, &StoreOptions::default())
    }

    /// Opens the store, waiting up to `lock_wait` while another process
    /// holds a lock that excludes this one.
    fn open(&self, mode: OpenMode, options: &StoreOptions) -> Result<Store> {
        let deadline = Instant::now() + self.lock_wait;
        loop {
            match Store::open(&self.store_path, mode, options) {
                Err(DagError::Locked { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => {
                    let mut store = other?;
                    if let Some(name) = &self.bucket {
                        store.select_bucket(name)?;
                    }
                    return Ok(store);
                }
            }
        }
    }

    /// Opens the store for writing, creating it when the path does not exist.
    fn open_write(&self) -> Result<Store> {
        if !self.store_path.exists() {
            let (mut store, _) = Store::init(&self.store_path, &StoreOptions::default())?;
            if let Some(name) = &self.bucket {
                store.select_bucket(name)?;
            }
            eprintln!(
                "hydra: created a new store at {}",
                self.store_path.display()
            );
            return Ok(store);
        }
        self.open(OpenMode::ReadWrite, &StoreOptions::default())
    }
}

impl Context {
    /// The same switches, for another store path to be set.
    fn clone_with_path(&self) -> Context {
        Context {
            store_path: self.store_path.clone(),
            json: self.json,
            lock_wait: self.lock_wait,
            argv: self.argv.clone(),
            bucket: None,
        }
    }
}

/// The root a snapshot of ref `name` names (a changelog id or a CID).
pub fn snapshot_root_of(
    bucket: &hydra_dag::Bucket,
    name: &hydra_dag::RefName,
    spec: &str,
) -> Result<hydra_dag::Cid> {
    fs::snapshot_of(bucket, name, spec)
}

/// The store used when none is named.
pub(crate) fn default_store() -> PathBuf {
    if let Some(path) = std::env::var_os("HYDRA_STORE").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from);
    home.join(".local/share/hydra")
}

/// Runs one parsed command line; `argv` is the command line it came from.
pub fn run(cli: Cli, argv: Vec<std::ffi::OsString>) -> Result<()> {
    let cx = Context {
        store_path: cli.store.unwrap_or_else(default_store),
        json: cli.json,
        lock_wait: Duration::try_from_secs_f64(cli.lock_wait).map_err(|_| {
            anyhow::anyhow!("--lock-wait: {} is not a number of seconds", cli.lock_wait)
        })?,
        argv,
        bucket: cli.bucket,
    };
    match cli.command {
        Command::Init(args) => init::run(&cx, args),
        Command::Blob(cmd) => blob::run(&cx, cmd),
        Command::Block(cmd) => block::run(&cx, cmd),
        Command::Ref(cmd) => refs::run(&cx, cmd),
        Command::Fs(cmd) => fs::run(&cx, cmd),
        Command::Kv(args) => kv::run(&cx, args),
        Command::Graph(args) => graph::run(&cx, args),
        Command::Sql(args) => sql::run(&cx, args),
        Command::Git(cmd) => git::run(&cx, cmd),
        Command::Gc(args) => gc::run(&cx, args),
        Command::Fsck(args) => bucket::check(&cx, args, false),
        Command::Repair(args) => bucket::check(&cx, args, true),
        Command::Sync(args) => bucket::sync(&cx, args),
        Command::Bucket(cmd) => bucket::run(&cx, cmd),
        Command::Gateway(args) => gateway::run(&cx, args),
        Command::Export(cmd) => car::export(&cx, cmd),
        Command::Import(cmd) => car::import(&cx, cmd),
        Command::Stats => stats::run(&cx),
        Command::Id => refs::id(&cx),
        Command::Mount(args) => mount::mount(&cx, args),
        Command::Serve(args) => serve::serve(&cx, args),
        Command::Umount(args) => mount::umount(&cx, args),
        Command::Status => mount::status(&cx),
    }
}
