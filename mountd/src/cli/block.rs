//! `hydra block put|get|stat|rm`.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::{Subcommand, ValueEnum};
use hydra_dag::{Cid, Codec, DagError, Ipld, MAX_BLOCK_SIZE};

use super::{Context, output};

/// Subcommands of `hydra block`.
#[derive(Debug, Subcommand)]
pub enum BlockCommand {
    /// Store a file (or stdin, `-`) as one block; prints its CID last.
    Put {
        /// The file, or `-` for stdin.
        file: PathBuf,
        /// How the bytes are to be decoded.
        #[arg(long, value_enum, default_value_t = CodecArg::Raw)]
        codec: CodecArg,
    },
    /// Write a block's bytes to stdout (verified against its CID).
    Get {
        /// The block.
        cid: Cid,
    },
    /// Show a block's codec, size and links.
    Stat {
        /// The block.
        cid: Cid,
    },
    /// Remove a block from the store.
    Rm {
        /// The block.
        cid: Cid,
    },
}

/// Codecs accepted by `block put`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum CodecArg {
    /// Uninterpreted bytes.
    Raw,
    /// DAG-CBOR (checked before storing).
    DagCbor,
}

/// Runs a `hydra block` subcommand.
pub fn run(cx: &Context, cmd: BlockCommand) -> Result<()> {
    match cmd {
        BlockCommand::Put { file, codec } => put(cx, &file, codec),
        BlockCommand::Get { cid } => {
            let store = cx.open_read()?;
            let data = store.bucket().require(&cid)?;
            let mut out = std::io::stdout().lock();
            out.write_all(&data)?;
            out.flush()?;
            Ok(())
        }
        BlockCommand::Stat { cid } => stat(cx, cid),
        BlockCommand::Rm { cid } => {
            let store = cx.open_write()?;
            if store.bucket().delete_many(&[cid])? == 0 {
                return Err(DagError::NotFound { cid }.into());
            }
            if cx.json {
                return output::json(&serde_json::json!({ "removed": cid }));
            }
            println!("removed {cid}");
            Ok(())
        }
    }
}

fn read_input(file: &PathBuf) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    let limit = MAX_BLOCK_SIZE as u64 + 1;
    if file.as_os_str() == "-" {
        std::io::stdin().lock().take(limit).read_to_end(&mut data)?;
    } else {
        let f =
            std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
        f.take(limit)
            .read_to_end(&mut data)
            .with_context(|| format!("cannot read {}", file.display()))?;
    }
    if data.len() > MAX_BLOCK_SIZE {
        bail!(
            "input is larger than the {MAX_BLOCK_SIZE}-byte block limit; store files with `hydra blob put`"
        );
    }
    Ok(data)
}

fn put(cx: &Context, file: &PathBuf, codec: CodecArg) -> Result<()> {
    let data = read_input(file)?;
    let codec = match codec {
        CodecArg::Raw => Codec::RAW,
        CodecArg::DagCbor => {
            Ipld::decode(&data).context("input is not valid DAG-CBOR")?;
            Codec::DAG_CBOR
        }
    };
    let store = cx.open_write()?;
    let size = data.len();
    let cid = store.bucket().put(codec, data)?;
    if cx.json {
        return output::json(&serde_json::json!({ "cid": cid, "size": size }));
    }
    println!("{cid}");
    Ok(())
}

fn stat(cx: &Context, cid: Cid) -> Result<()> {
    let store = cx.open_read()?;
    let data = store.bucket().require(&cid)?;
    let links = if cid.codec() == Codec::DAG_CBOR {
        hydra_dag::cbor::links(&data)?
    } else {
        Vec::new()
    };
    if cx.json {
        return output::json(&serde_json::json!({
            "cid": cid,
            "codec": cid.codec().name(),
            "size": data.len(),
            "links": links,
        }));
    }
    println!("cid:   {cid}");
    println!("codec: {}", cid.codec().name());
    println!("size:  {} bytes", data.len());
    println!("links: {}", links.len());
    for link in links {
        println!("  {link}");
    }
    Ok(())
}
