//! `hydra export car` and `hydra import car`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Subcommand;
use hydra_dag::{Cid, RefName, RefNote, car};

use super::{Context, output};

/// Subcommands of `hydra export`.
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Write a filesystem (or a directory of it) as a tar archive.
    Tar {
        /// The filesystem.
        #[arg(long = "fs", value_name = "NAME")]
        fs_name: String,
        /// The directory to export (default: the root).
        #[arg(default_value = "/")]
        path: String,
        /// The output file, or `-` for stdout.
        #[arg(short, long, default_value = "-")]
        output: PathBuf,
    },
    /// Write the DAG under ROOT (a CID or a ref name) as a CAR v1 file.
    Car {
        /// A CID, or a ref whose root to export.
        root: String,
        /// The output file, or `-` for stdout.
        file: PathBuf,
    },
}

/// Subcommands of `hydra import`.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import a tar archive (plain, gzip, zstd, xz or bzip2) into a filesystem.
    Tar {
        /// The archive, or `-` for stdin.
        file: PathBuf,
        /// The filesystem (created if it does not exist).
        #[arg(long = "fs", value_name = "NAME")]
        fs_name: String,
        /// The directory to import into.
        #[arg(long, default_value = "/")]
        at: String,
    },
    /// Import a directory of this machine into a filesystem.
    Dir {
        /// The directory.
        dir: PathBuf,
        /// The filesystem (created if it does not exist).
        #[arg(long = "fs", value_name = "NAME")]
        fs_name: String,
        /// The directory to import into.
        #[arg(long, default_value = "/")]
        at: String,
    },
    /// Verify and store every block of a CAR v1 file; prints its roots.
    Car {
        /// The CAR file.
        file: PathBuf,
        /// Point this ref at the CAR's first root.
        #[arg(long = "ref", value_name = "NAME")]
        ref_name: Option<RefName>,
    },
}

/// Runs `hydra export …`.
pub fn export(cx: &Context, cmd: ExportCommand) -> Result<()> {
    let (root, file) = match cmd {
        ExportCommand::Car { root, file } => (root, file),
        ExportCommand::Tar {
            fs_name,
            path,
            output,
        } => {
            return super::archive::export_tar_cmd(cx, &fs_name, &path, &output);
        }
    };
    let store = cx.open_read()?;
    let root: Cid = match root.parse() {
        Ok(cid) => cid,
        Err(cid_err) => match RefName::new(root.as_str()) {
            Ok(name) => store
                .bucket()
                .get_ref(&name)?
                .with_context(|| format!("{root:?} is neither a CID nor an existing ref"))?,
            Err(_) => return Err(cid_err.into()),
        },
    };
    let summary = if file.as_os_str() == "-" {
        let out = std::io::stdout().lock();
        car::export_car(store.bucket(), &root, out)?
    } else {
        // Write beside the target and rename, so a failure leaves no half file.
        let tmp = file.with_extension("car.partial");
        let out = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let result = car::export_car(store.bucket(), &root, &out)
            .and_then(|s| out.sync_all().map(|()| s).map_err(Into::into));
        match result {
            Ok(s) => {
                std::fs::rename(&tmp, &file)
                    .with_context(|| format!("cannot write {}", file.display()))?;
                s
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e.into());
            }
        }
    };
    if file.as_os_str() == "-" {
        return Ok(());
    }
    if cx.json {
        return output::json(&summary);
    }
    println!(
        "exported {} blocks ({}) under {root} to {}",
        summary.blocks,
        output::bytes(summary.bytes),
        file.display()
    );
    Ok(())
}

/// Runs `hydra import …`.
pub fn import(cx: &Context, cmd: ImportCommand) -> Result<()> {
    let (file, ref_name) = match cmd {
        ImportCommand::Car { file, ref_name } => (file, ref_name),
        ImportCommand::Tar { file, fs_name, at } => {
            return super::archive::import_tar_cmd(cx, &file, &fs_name, &at);
        }
        ImportCommand::Dir { dir, fs_name, at } => {
            return super::archive::import_dir_cmd(cx, &dir, &fs_name, &at);
        }
    };
    if !file.is_file() {
        anyhow::bail!("{}: not a readable file", file.display());
    }
    let store = cx.open_write()?;
    let bucket = store.bucket();
    let session = bucket.session();
    let summary = car::import_car(&session, &file)?;
    if let Some(name) = &ref_name {
        let root = summary
            .roots
            .first()
            .with_context(|| format!("{} names no root to point {name} at", file.display()))?;
        let note = RefNote::by_current_user(format!("import car {}", file.display()));
        bucket.set_ref(name, Some(root), &note)?;
    }
    drop(session);
    if cx.json {
        return output::json(&summary);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "imported {} blocks ({}); roots:",
        summary.blocks,
        output::bytes(summary.bytes)
    )?;
    for root in &summary.roots {
        writeln!(out, "{root}")?;
    }
    Ok(())
}
