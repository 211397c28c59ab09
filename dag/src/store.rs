//! A store on disk: a directory with a config, a lock and its volumes.
//!
//! `hydra.json` records the format and, per bucket, its policy and the
//! registry names of its volumes, so a store reopens with the backends it
//! was created with. `LOCK` is held exclusively by the one writing process
//! and shared by read-only openers.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::bucket::{Bucket, BucketPolicy};
use crate::cache::CachedVolume;
use crate::durable;
use crate::error::{DagError, DagResult};
use crate::identity::Identity;
use crate::local::LocalVolume;
use crate::memory::MemoryVolume;
use crate::redis_volume::RedisVolume;
use crate::transform::{Secret, TransformVolume};
use crate::verify::VerifiedVolume;
use crate::volume::Volume;

/// Version of the store layout this code reads and writes.
pub const STORE_FORMAT: u32 = 1;
const CONFIG: &str = "hydra.json";
const LOCK: &str = "LOCK";

/// How a store is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// The one writer; fails if another process holds the store.
    ReadWrite,
    /// A reader beside other readers; fails while a writer holds the store.
    ReadOnly,
}

/// Switches for opening a store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Bytes of block cache in front of each volume.
    pub cache_bytes: usize,
    /// The key of an encrypted store (by default from `$HYDRA_KEY_FILE`
    /// or `$HYDRA_PASSPHRASE`).
    pub secret: Option<Secret>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: 256 << 20,
            // A key file that cannot be read is reported when an
            // encrypted store opens.
            secret: Secret::from_env().ok().flatten(),
        }
    }
}

/// One volume of a bucket as recorded in the config.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VolumeSpec {
    /// The registry name of the backend (`local`, `memory`).
    pub kind: String,
    /// Backend settings (for `local`: `path`, relative to the store).
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

/// One bucket as recorded in the config.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BucketSpec {
    /// The bucket's name.
    pub name: String,
    /// Its policy.
    pub policy: BucketPolicy,
    /// Its volumes, primary first.
    pub volumes: Vec<VolumeSpec>,
}

/// The contents of `hydra.json`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoreConfig {
    /// Layout version.
    pub format: u32,
    /// The buckets, default first.
    pub buckets: Vec<BucketSpec>,
}

impl StoreConfig {
    /// One default bucket over the one volume `spec`.
    pub fn single(spec: VolumeSpec) -> StoreConfig {
        StoreConfig {
            format: STORE_FORMAT,
            buckets: vec![BucketSpec {
                name: "default".into(),
                policy: BucketPolicy::default(),
                volumes: vec![spec],
            }],
        }
    }

    fn default_local() -> StoreConfig {
        StoreConfig {
            format: STORE_FORMAT,
            buckets: vec![BucketSpec {
                name: "default".into(),
                policy: BucketPolicy::default(),
                volumes: vec![VolumeSpec {
                    kind: "local".into(),
                    settings: BTreeMap::from([("path".to_string(), ".".to_string())]),
                }],
            }],
        }
    }
}

/// What a volume factory is given.
#[derive(Debug)]
pub struct VolumeContext<'a> {
    /// The store directory.
    pub store: &'a Path,
    /// The recorded spec.
    pub spec: &'a VolumeSpec,
    /// Whether the store is opened read-only.
    pub read_only: bool,
}

/// Opens a backend from its recorded spec.
pub type VolumeFactory = fn(&VolumeContext<'_>) -> DagResult<Arc<dyn Volume>>;

/// Backends by registry name.
#[derive(Clone, Debug)]
pub struct VolumeRegistry {
    factories: BTreeMap<&'static str, VolumeFactory>,
}

impl Default for VolumeRegistry {
    fn default() -> Self {
        let mut registry = VolumeRegistry {
            factories: BTreeMap::new(),
        };
        registry.register("local", |cx| {
            let rel = cx.spec.settings.get("path").map_or(".", String::as_str);
            Ok(Arc::new(LocalVolume::open(
                &cx.store.join(rel),
                cx.read_only,
            )?))
        });
        registry.register("memory", |_| Ok(Arc::new(MemoryVolume::new())));
        registry.register("redis", |cx| {
            let setting = |k: &str| cx.spec.settings.get(k).map(String::as_str);
            let nodes = setting("nodes")
                .ok_or_else(|| DagError::Other("a redis volume needs nodes".into()))?
                .split(',')
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect();
            let replicas = setting("replicas")
                .map(|r| {
                    r.parse().map_err(|_| {
                        DagError::Other(format!("redis replicas {r:?} is not a number"))
                    })
                })
                .transpose()?
                .unwrap_or(1);
            Ok(Arc::new(RedisVolume::open(
                nodes,
                setting("prefix").unwrap_or("hydra"),
                replicas,
            )?))
        });
        registry
    }
}

impl VolumeRegistry {
    /// Adds or replaces a backend.
    pub fn register(&mut self, name: &'static str, factory: VolumeFactory) {
        self.factories.insert(name, factory);
    }

    /// Opens the backend a spec names.
    pub fn open(&self, cx: &VolumeContext<'_>) -> DagResult<Arc<dyn Volume>> {
        let factory = self.factories.get(cx.spec.kind.as_str()).ok_or_else(|| {
            DagError::Unsupported(format!("volume kind {:?} is not built in", cx.spec.kind))
        })?;
        factory(cx)
    }
}

/// An open store.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    config: StoreConfig,
    buckets: Vec<Bucket>,
    mode: OpenMode,
    _lock: File,
}

impl Store {
    /// Creates a store at `path` (an absent or empty directory) and opens it.
    /// Returns the store and whether it was newly created.
    pub fn init(path: &Path, options: &StoreOptions) -> DagResult<(Store, bool)> {
        Store::init_with(path, StoreConfig::default_local(), options)
    }

    /// Creates a store at `path` whose blocks and refs live where `config`
    /// says (an existing store is opened as it is).
    pub fn init_with(
        path: &Path,
        config: StoreConfig,
        options: &StoreOptions,
    ) -> DagResult<(Store, bool)> {
        check_dir(path)?;
        if path.join(CONFIG).exists() {
            return Ok((Store::open(path, OpenMode::ReadWrite, options)?, false));
        }
        if path.exists() {
            let non_empty = std::fs::read_dir(path)
                .map_err(|e| DagError::io(path, e))?
                .next()
                .is_some();
            if non_empty {
                return Err(store_err(
                    path,
                    "directory is not empty and holds no hydra store",
                ));
            }
        }
        // Reach every volume kept elsewhere before anything is written
        // here: a store that cannot open is not created.
        for bucket in &config.buckets {
            for spec in bucket.volumes.iter().filter(|v| v.kind != "local") {
                VolumeRegistry::default().open(&VolumeContext {
                    store: path,
                    spec,
                    read_only: false,
                })?;
            }
        }
        std::fs::create_dir_all(path).map_err(|e| DagError::io(path, e))?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            durable::sync_dir(parent)?;
        }
        let lock = lock(path, OpenMode::ReadWrite)?;
        write_config(path, &config)?;
        drop(lock);
        Ok((Store::open(path, OpenMode::ReadWrite, options)?, true))
    }

    /// Opens an existing store.
    pub fn open(path: &Path, mode: OpenMode, options: &StoreOptions) -> DagResult<Store> {
        Store::open_with(path, mode, options, &VolumeRegistry::default())
    }

    /// Opens an existing store with a custom backend registry.
    pub fn open_with(
        path: &Path,
        mode: OpenMode,
        options: &StoreOptions,
        registry: &VolumeRegistry,
    ) -> DagResult<Store> {
        check_dir(path)?;
        if !path.exists() {
            return Err(store_err(
                path,
                "no such store (create it with `hydra init`)",
            ));
        }
        let config_path = path.join(CONFIG);
        let raw = match std::fs::read(&config_path) {
            Ok(raw) => raw,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(store_err(
                    path,
                    "not a hydra store: no hydra.json (run `hydra init`)",
                ));
            }
            Err(e) => return Err(DagError::io(config_path, e)),
        };
        let config: StoreConfig = serde_json::from_slice(&raw)
            .map_err(|e| store_err(path, &format!("hydra.json is malformed: {e}")))?;
        if config.format != STORE_FORMAT {
            return Err(store_err(
                path,
                &format!(
                    "store format {} is not the supported {STORE_FORMAT}",
                    config.format
                ),
            ));
        }
        let lock = lock(path, mode)?;
        let mut buckets = Vec::new();
        for spec in &config.buckets {
            let mut volumes = Vec::new();
            for vspec in &spec.volumes {
                let cx = VolumeContext {
                    store: path,
                    spec: vspec,
                    read_only: mode == OpenMode::ReadOnly,
                };
                let mut backend = registry.open(&cx)?;
                if !spec.policy.transforms.is_none() {
                    if spec.policy.transforms.encryption.is_some() && options.secret.is_none() {
                        // Name the unreadable key file, if that is why.
                        Secret::from_env()?;
                    }
                    backend = Arc::new(TransformVolume::new(
                        backend,
                        &spec.policy.transforms,
                        options.secret.as_ref(),
                    )?);
                }
                let verified: Arc<dyn Volume> = Arc::new(VerifiedVolume::new(backend));
                volumes
                    .push(Arc::new(CachedVolume::new(verified, options.cache_bytes))
                        as Arc<dyn Volume>);
            }
            buckets.push(Bucket::new(
                spec.name.clone(),
                spec.policy.clone(),
                volumes,
            )?);
        }
        if buckets.is_empty() {
            return Err(store_err(path, "hydra.json names no bucket"));
        }
        // A store opened for writing gets an identity if it lacks one.
        if let Some(identity) = Identity::load(path, mode == OpenMode::ReadWrite)? {
            for bucket in &buckets {
                bucket.set_identity(identity.clone());
            }
        }
        Ok(Store {
            path: path.to_path_buf(),
            config,
            buckets,
            mode,
            _lock: lock,
        })
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The recorded configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// How the store was opened.
    pub fn mode(&self) -> OpenMode {
        self.mode
    }

    /// The default bucket.
    pub fn bucket(&self) -> &Bucket {
        &self.buckets[0]
    }

    /// A bucket by name.
    pub fn bucket_named(&self, name: &str) -> Option<&Bucket> {
        self.buckets.iter().find(|b| b.name() == name)
    }

    /// Every bucket, the default (or selected) one first.
    pub fn buckets(&self) -> &[Bucket] {
        &self.buckets
    }

    /// Makes bucket `name` the one [`Store::bucket`] returns.
    pub fn select_bucket(&mut self, name: &str) -> DagResult<()> {
        let i = self
            .buckets
            .iter()
            .position(|b| b.name() == name)
            .ok_or_else(|| store_err(&self.path, &format!("no bucket named {name}")))?;
        self.buckets.swap(0, i);
        Ok(())
    }

    /// Adds a bucket over new volumes to the store (recorded in
    /// `hydra.json`); the volumes are opened first, so a bucket that
    /// cannot open is not recorded.
    pub fn add_bucket(&mut self, spec: BucketSpec, options: &StoreOptions) -> DagResult<()> {
        if self.mode == OpenMode::ReadOnly {
            return Err(store_err(&self.path, "opened read-only"));
        }
        if self.config.buckets.iter().any(|b| b.name == spec.name) {
            return Err(store_err(
                &self.path,
                &format!("bucket {} exists", spec.name),
            ));
        }
        if spec.volumes.is_empty() {
            return Err(store_err(&self.path, "a bucket needs a volume"));
        }
        let mut volumes = Vec::new();
        for vspec in &spec.volumes {
            let backend = VolumeRegistry::default().open(&VolumeContext {
                store: &self.path,
                spec: vspec,
                read_only: false,
            })?;
            let verified: Arc<dyn Volume> = Arc::new(VerifiedVolume::new(backend));
            volumes.push(Arc::new(CachedVolume::new(verified, options.cache_bytes)) as Arc<dyn Volume>);
        }
        let bucket = Bucket::new(spec.name.clone(), spec.policy.clone(), volumes)?;
        if let Some(identity) = self.bucket().identity() {
            bucket.set_identity(identity.clone());
        }
        let mut config = self.config.clone();
        config.buckets.push(spec);
        write_config(&self.path, &config)?;
        self.config = config;
        self.buckets.push(bucket);
        Ok(())
    }
}

/// Writes `hydra.json` atomically.
fn write_config(path: &Path, config: &StoreConfig) -> DagResult<()> {
    let json = serde_json::to_vec_pretty(config).map_err(|e| DagError::Other(e.to_string()))?;
    let tmp = path.join("hydra.json.tmp");
    std::fs::write(&tmp, json)
        .and_then(|()| File::open(&tmp)?.sync_all())
        .map_err(|e| DagError::io(path.join(CONFIG), e))?;
    durable::replace(&tmp, &path.join(CONFIG))
}

fn store_err(path: &Path, reason: &str) -> DagError {
    DagError::Store {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn check_dir(path: &Path) -> DagResult<()> {
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_dir() => Err(store_err(path, "is a file, not a store directory")),
        _ => Ok(()),
    }
}

fn lock(path: &Path, mode: OpenMode) -> DagResult<File> {
    let lock_path = path.join(LOCK);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(mode == OpenMode::ReadWrite)
        .truncate(false)
        .open(&lock_path)
        .or_else(|e| match (mode, e.kind()) {
            // A read-only opener of a store that never had a writer.
            (OpenMode::ReadOnly, std::io::ErrorKind::NotFound) => {
                OpenOptions::new().read(true).open(path.join(CONFIG))
            }
            _ => Err(e),
        })
        .map_err(|e| DagError::io(&lock_path, e))?;
    let attempt = match mode {
        OpenMode::ReadWrite => file.try_lock(),
        OpenMode::ReadOnly => file.try_lock_shared(),
    };
    match attempt {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(DagError::Locked {
                path: path.to_path_buf(),
                holder: (!holder.is_empty()).then(|| holder.to_string()),
            });
        }
        Err(TryLockError::Error(e)) => return Err(DagError::io(&lock_path, e)),
    }
    if mode == OpenMode::ReadWrite {
        let me = format!("pid {}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(me.as_bytes()))
            .map_err(|e| DagError::io(&lock_path, e))?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cid::Codec;

    #[test]
    fn second_writer_is_refused_and_readers_share() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s");
        let opts = StoreOptions::default();
        let (store, created) = Store::init(&path, &opts).expect("init");
        assert!(created);
        let cid = store.bucket().put(Codec::RAW, &b"x"[..]).expect("put");
        let err = Store::open(&path, OpenMode::ReadWrite, &opts).expect_err("locked");
        assert!(matches!(err, DagError::Locked { .. }), "{err}");
        drop(store);
        let r1 = Store::open(&path, OpenMode::ReadOnly, &opts).expect("reader");
        let r2 = Store::open(&path, OpenMode::ReadOnly, &opts).expect("reader");
        assert!(r1.bucket().get(&cid).expect("get").is_some());
        assert!(r2.bucket().put(Codec::RAW, &b"y"[..]).is_err());
        assert!(Store::open(&path, OpenMode::ReadWrite, &opts).is_err());
    }

    #[test]
    fn refuses_files_and_foreign_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").expect("write");
        let opts = StoreOptions::default();
        assert!(Store::init(&file, &opts).is_err());
        assert!(Store::open(&file, OpenMode::ReadWrite, &opts).is_err());
        assert!(Store::init(dir.path(), &opts).is_err());
        assert!(Store::open(&dir.path().join("absent"), OpenMode::ReadOnly, &opts).is_err());
    }
}
