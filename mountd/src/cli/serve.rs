//! `hydra serve`: a filesystem over 9P2000.L, without a FUSE mount.

use anyhow::Result;
use clap::Args;

use super::Context;
use super::mount::{IntervalArgs, open, open_store, report_started, spawn_daemon};
use crate::daemon;
use crate::ninep::{Cidr, DEFAULT_LISTEN, Listen};

/// Arguments of `hydra serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The filesystem (created empty if it does not exist).
    fs: String,
    /// Where to listen: tcp:HOST:PORT or unix:PATH (repeatable).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    listen: Vec<Listen>,
    /// TCP clients admitted (CIDR, repeatable; default: loopback only).
    #[arg(long, value_name = "CIDR")]
    allow: Vec<Cidr>,
    /// Refuse every change.
    #[arg(long)]
    read_only: bool,
    /// Connections served at once; more are closed on arrival.
    #[arg(long, value_name = "N", default_value_t = 128)]
    max_connections: usize,
    /// Stay in the foreground instead of starting a daemon.
    #[arg(long)]
    foreground: bool,
    #[command(flatten)]
    intervals: IntervalArgs,
}

/// Serves, in the background unless `--foreground`.
pub fn serve(cx: &Context, args: ServeArgs) -> Result<()> {
    if !args.foreground {
        let (child, log) = spawn_daemon(cx, &args.fs, args.read_only)?;
        let pid = child.id();
        let place: Vec<String> = args.listen.iter().map(ToString::to_string).collect();
        let store = cx.store_path.clone();
        return report_started(cx, child, &log, &args.fs, &place.join(" "), || {
            daemon::is_registered(&store, pid)
        });
    }
    let store = open_store(cx, args.read_only)?;
    let fs = open(
        &store,
        &args.fs,
        None,
        args.read_only,
        args.intervals.intervals()?,
    )?;
    let fronts = daemon::Fronts {
        mountpoint: None,
        allow_other: false,
        listen: args.listen,
        allow: args.allow,
        max_connections: Some(args.max_connections),
        gateway: None,
    };
    daemon::serve(fs, store.path(), &args.fs, fronts)
}
