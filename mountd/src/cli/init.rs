//! `hydra init [--volume redis://HOST:PORT[,HOST:PORT…]] [--prefix NAME] [--replicas N]`.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use clap::Args;
use hydra_dag::{RedisVolume, Store, StoreConfig, StoreOptions, VolumeSpec};

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
}

/// Creates the store, or reports that it exists.
pub fn run(cx: &Context, args: InitArgs) -> Result<()> {
    let (store, created) = match &args.volume {
        None => Store::init(&cx.store_path, &StoreOptions::default())?,
        Some(url) if url.starts_with("redis://") => {
            let nodes = RedisVolume::parse_url(url)?;
            let spec = VolumeSpec {
                kind: "redis".into(),
                settings: BTreeMap::from([
                    ("nodes".to_string(), nodes.join(",")),
                    ("prefix".to_string(), args.prefix.clone()),
                    ("replicas".to_string(), args.replicas.to_string()),
                ]),
            };
            Store::init_with(
                &cx.store_path,
                StoreConfig::single(spec),
                &StoreOptions::default(),
            )?
        }
        Some(url) => bail!("unknown volume {url:?} (the embedded default, or redis://HOST:PORT)"),
    };
    let path = store.path().display().to_string();
    if cx.json {
        return output::json(&serde_json::json!({ "store": path, "created": created }));
    }
    if created {
        println!("created store at {path}");
    } else {
        println!("store at {path} already exists");
    }
    Ok(())
}
