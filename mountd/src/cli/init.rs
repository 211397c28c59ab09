//! `hydra init [--volume redis://HOST:PORT[,HOST:PORT…]] [--prefix NAME]
//! [--replicas N] [--compress zstd[:LEVEL]] [--encrypt]`.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use clap::Args;
use hydra_dag::{
    EncryptionSpec, RedisVolume, Secret, Store, StoreConfig, StoreOptions, Transforms, VolumeSpec,
};

use super::{Context, output};

/// Arguments of `hydra init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where blocks and refs live: the embedded volume (default) or
    /// `redis://HOST:PORT[,HOST:PORT…]` (one Redis or any nodes of a
    /// Redis Cluster; every store pointed at it shares its data).
    #[arg(long, value_name = "URL")]
    volume: Option<String>,
    /// With a Redis volume: the key prefix that names this data in it.
    #[arg(long, default_value = "hydra", value_name = "NAME")]
    prefix: String,
    /// With a Redis volume: replicas each write must reach before it is
    /// acknowledged (capped by the replicas a master has).
    #[arg(long, default_value_t = 1, value_name = "N")]
    replicas: usize,
    /// Compress stored bytes: `zstd` or `zstd:LEVEL` (1–19; 3 by default).
    #[arg(long, value_name = "ALGORITHM")]
    compress: Option<String>,
    /// Encrypt stored bytes (XChaCha20-Poly1305) with the key in
    /// `$HYDRA_KEY_FILE` or derived from `$HYDRA_PASSPHRASE`; every later
    /// command needs the same.
    #[arg(long)]
    encrypt: bool,
}

/// The zstd level a `--compress` value asks for.
fn zstd_level(spec: &str) -> Result<i32> {
    let level = match spec.split_once(':') {
        None if spec == "zstd" => 3,
        Some(("zstd", level)) => level
            .parse()
            .map_err(|_| anyhow::anyhow!("--compress: {level:?} is not a zstd level"))?,
        _ => bail!("--compress: {spec:?} is not zstd or zstd:LEVEL"),
    };
    if !(1..=19).contains(&level) {
        bail!("--compress: zstd level {level} is not between 1 and 19");
    }
    Ok(level)
}

/// Creates the store, or reports that it exists.
pub fn run(cx: &Context, args: InitArgs) -> Result<()> {
    let transforms = Transforms {
        zstd_level: args.compress.as_deref().map(zstd_level).transpose()?,
        encryption: if args.encrypt {
            let secret = Secret::from_env()?.ok_or_else(|| {
                anyhow::anyhow!("--encrypt needs a key: set HYDRA_KEY_FILE or HYDRA_PASSPHRASE")
            })?;
            Some(EncryptionSpec::new(&secret)?)
        } else {
            None
        },
    };
    let spec = match &args.volume {
        None => VolumeSpec {
            kind: "local".into(),
            settings: BTreeMap::from([("path".to_string(), ".".to_string())]),
        },
        Some(url) if url.starts_with("redis://") => {
            let nodes = RedisVolume::parse_url(url)?;
            VolumeSpec {
                kind: "redis".into(),
                settings: BTreeMap::from([
                    ("nodes".to_string(), nodes.join(",")),
                    ("prefix".to_string(), args.prefix.clone()),
                    ("replicas".to_string(), args.replicas.to_string()),
                ]),
            }
        }
        Some(url) => bail!("unknown volume {url:?} (the embedded default, or redis://HOST:PORT)"),
    };
    let mut config = StoreConfig::single(spec);
    config.buckets[0].policy.transforms = transforms;
    let (store, created) = Store::init_with(&cx.store_path, config, &StoreOptions::default())?;
    let path = store.path().display().to_string();
    let signer = store.bucket().identity().map(hydra_dag::Identity::signer);
    if cx.json {
        return output::json(
            &serde_json::json!({ "store": path, "created": created, "identity": signer }),
        );
    }
    if created {
        println!("created store at {path}");
    } else {
        println!("store at {path} already exists");
    }
    if let Some(signer) = signer {
        println!("identity {signer}");
    }
    Ok(())
}
