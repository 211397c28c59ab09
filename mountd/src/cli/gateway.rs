//! `hydra gateway [--listen ADDR] [--read-only] [--token-file F]`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use hydra_dag::{OpenMode, StoreOptions};

use super::Context;
use crate::gateway::{Gateway, serve};

/// Arguments of `hydra gateway`.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Address to listen on (loopback unless told otherwise).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,
    /// Refuse every change.
    #[arg(long)]
    read_only: bool,
    /// A file holding the bearer token that writes need (without one, no
    /// writes are accepted).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
}

/// The bearer token kept in `path` (none without a file).
pub(super) fn read_token(path: Option<&std::path::Path>) -> Result<Option<String>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the token file {}", path.display()))?;
    let token = text.trim().to_string();
    if token.len() < 16 {
        bail!(
            "the token in {} is shorter than 16 characters",
            path.display()
        );
    }
    Ok(Some(token))
}

/// Serves the store over HTTP until interrupted.
pub fn run(cx: &Context, args: GatewayArgs) -> Result<()> {
    let token = read_token(args.token_file.as_deref())?;
    let store = if args.read_only {
        cx.open(OpenMode::ReadOnly, &StoreOptions::default())?
    } else {
        cx.open_write()?
    };
    let gateway = Gateway::new(store, args.read_only, token);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(gateway, args.listen))
}
