//! `hydra bucket create|show|list`, `hydra fsck`, `hydra repair` and
//! `hydra sync`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use hydra_dag::{
    BucketPolicy, BucketSpec, FsckReport, OpenMode, RedisVolume, RefName, Store, StoreOptions,
    VolumeSpec,
};

use super::{Context, output};

/// Subcommands of `hydra bucket`.
#[derive(Debug, Subcommand)]
pub enum BucketCommand {
    /// Add a bucket over one or more volumes; every block is written to
    /// the first N (`--replicas`) and read from the first that has it.
    Create {
        /// Its name (select it with `--bucket NAME`).
        name: String,
        /// A volume: `local:DIR` (relative to the store, or absolute) or
        /// `redis://HOST:PORT[,HOST:PORT…]`; repeat for several.
        #[arg(long = "volume", value_name = "SPEC", required = true)]
        volumes: Vec<String>,
        /// How many of the volumes receive every block.
        #[arg(long, default_value_t = 1)]
        replicas: usize,
    },
    /// Show a bucket's policy, volumes and counts.
    Show {
        /// The bucket (default: the selected one).
        name: Option<String>,
    },
    /// List the buckets.
    List,
}

/// Arguments of `hydra fsck` and `hydra repair`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Only what this ref reaches (default: every ref and its history).
    #[arg(value_name = "REF")]
    name: Option<String>,
}

/// Arguments of `hydra sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The store to copy from.
    src: PathBuf,
    /// The store to copy to (created if absent).
    dst: PathBuf,
    /// Only this ref (default: every ref).
    #[arg(value_name = "REF")]
    name: Option<String>,
}

fn volume_spec(text: &str, bucket: &str) -> Result<VolumeSpec> {
    if let Some(dir) = text.strip_prefix("local:") {
        if dir.is_empty() {
            bail!("{text:?}: local:DIR needs a directory");
        }
        return Ok(VolumeSpec {
            kind: "local".into(),
            settings: BTreeMap::from([("path".to_string(), dir.to_string())]),
        });
    }
    if text.starts_with("redis://") {
        let nodes = RedisVolume::parse_url(text)?;
        return Ok(VolumeSpec {
            kind: "redis".into(),
            settings: BTreeMap::from([
                ("nodes".to_string(), nodes.join(",")),
                ("prefix".to_string(), bucket.to_string()),
            ]),
        });
    }
    bail!("{text:?} is not a volume (local:DIR or redis://HOST:PORT)")
}

/// Runs `hydra bucket …`.
pub fn run(cx: &Context, cmd: BucketCommand) -> Result<()> {
    match cmd {
        BucketCommand::Create {
            name,
            volumes,
            replicas,
        } => {
            if replicas == 0 || replicas > volumes.len() {
                bail!(
                    "--replicas must be between 1 and the number of volumes ({})",
                    volumes.len()
                );
            }
            let specs = volumes
                .iter()
                .map(|v| volume_spec(v, &name))
                .collect::<Result<Vec<_>>>()?;
            let mut store = cx.open_write()?;
            let policy = BucketPolicy {
                replication: replicas,
                ..store.bucket().policy().clone()
            };
            store.add_bucket(
                BucketSpec {
                    name: name.clone(),
                    policy,
                    volumes: specs,
                },
                &StoreOptions::default(),
            )?;
            println!(
                "created bucket {name} ({replicas} of {} volumes per block)",
                volumes.len()
            );
            Ok(())
        }
        BucketCommand::Show { name } => {
            let store = cx.open_read()?;
            let bucket = match &name {
                Some(n) => store
                    .bucket_named(n)
                    .ok_or_else(|| anyhow::anyhow!("no bucket named {n}"))?,
                None => store.bucket(),
            };
            let spec = store
                .config()
                .buckets
                .iter()
                .find(|b| b.name == bucket.name())
                .ok_or_else(|| anyhow::anyhow!("bucket {} is not in hydra.json", bucket.name()))?;
            let stats = bucket.stats()?;
            output::json(&serde_json::json!({
                "name": spec.name,
                "policy": spec.policy,
                "volumes": spec.volumes,
                "stats": stats,
            }))
        }
        BucketCommand::List => {
            let store = cx.open_read()?;
            for b in &store.config().buckets {
                let kinds: Vec<&str> = b.volumes.iter().map(|v| v.kind.as_str()).collect();
                println!(
                    "{}\t{} of {}\t{}",
                    b.name,
                    b.policy.replication,
                    b.volumes.len(),
                    kinds.join(",")
                );
            }
            Ok(())
        }
    }
}

/// Runs `hydra fsck` (`repair` false) or `hydra repair`.
pub fn check(cx: &Context, args: CheckArgs, repair: bool) -> Result<()> {
    let store = if repair {
        cx.open_write()?
    } else {
        cx.open_read()?
    };
    let name = args.name.map(RefName::new).transpose()?;
    let report: FsckReport = store.bucket().fsck(name.as_ref(), repair)?;
    if cx.json {
        output::json(&report)?;
    } else {
        for bad in &report.bad {
            println!(
                "{} {} on volume {}{}",
                bad.problem,
                bad.cid,
                bad.volume,
                match (repair, bad.repairable) {
                    (true, true) => ", repaired",
                    (_, false) => ", no good copy anywhere",
                    (false, true) => ", repairable (hydra repair)",
                }
            );
        }
        println!(
            "checked {} blocks ({}) from {} roots: {} bad copies, {} repaired",
            report.blocks,
            output::bytes(report.bytes),
            report.roots,
            report.bad.len(),
            report.repaired
        );
    }
    let unfixed = if repair {
        report.unrepairable()
    } else {
        report.bad.len()
    };
    if unfixed > 0 {
        // Exit 3 like every other integrity failure.
        return Err(hydra_dag::DagError::Integrity {
            cid: report.bad[0].cid,
        }
        .into());
    }
    Ok(())
}

/// Runs `hydra sync SRC DST [REF]`.
pub fn sync(cx: &Context, args: SyncArgs) -> Result<()> {
    // `--bucket` names the source's bucket; the destination's default
    // bucket receives the refs.
    let src_cx = Context {
        store_path: args.src.clone(),
        bucket: cx.bucket.clone(),
        ..cx.clone_with_path()
    };
    let dst_cx = Context {
        store_path: args.dst.clone(),
        ..cx.clone_with_path()
    };
    let src = src_cx.open(OpenMode::ReadOnly, &StoreOptions::default())?;
    let dst: Store = dst_cx.open_write()?;
    let names: Vec<RefName> = args
        .name
        .into_iter()
        .map(RefName::new)
        .collect::<Result<_, _>>()?;
    let report = hydra_dag::sync(
        src.bucket(),
        dst.bucket(),
        &names,
        &format!("sync from {}", args.src.display()),
    )?;
    if cx.json {
        return output::json(&report);
    }
    println!(
        "synced {} refs: {} blocks needed, {} copied ({}), {} changelog entries with their signatures",
        report.refs,
        report.blocks,
        report.copied,
        output::bytes(report.copied_bytes),
        report.entries
    );
    Ok(())
}
