//! `hydra import tar|dir` and `hydra export tar`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use hydra_fs::{ArchiveReport, export_tar, import_dir, import_tar};

use super::fs::open_fs;
use super::{Context, output};

fn report(cx: &Context, verb: &str, r: &ArchiveReport, root: Option<hydra_dag::Cid>) -> Result<()> {
    for w in &r.warnings {
        eprintln!("hydra: warning: {w}");
    }
    if cx.json {
        return output::json(&serde_json::json!({ "report": r, "root": root }));
    }
    println!(
        "{verb} {} entries ({} files, {})",
        r.entries,
        r.files,
        output::bytes(r.bytes)
    );
    if let Some(root) = root {
        println!("{root}");
    }
    Ok(())
}

/// `hydra import tar FILE|- --fs NAME [--at PATH]`.
pub fn import_tar_cmd(cx: &Context, file: &Path, fs_name: &str, at: &str) -> Result<()> {
    let (input, len): (Box<dyn Read>, Option<u64>) = if file.as_os_str() == "-" {
        (Box::new(std::io::stdin().lock()), None)
    } else {
        let f =
            std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
        let len = f.metadata().ok().map(|m| m.len());
        (Box::new(f), len)
    };
    let store = cx.open_write()?;
    let fs = open_fs(&store, fs_name, false)?;
    let mut progress = output::Progress::new(input, len);
    let r = import_tar(&fs, &mut progress, at.as_bytes())?;
    progress.finish();
    fs.commit(&format!("import tar {}", file.display()))?;
    report(cx, "imported", &r, fs.base())
}

/// `hydra import dir PATH --fs NAME [--at PATH]`.
pub fn import_dir_cmd(cx: &Context, dir: &Path, fs_name: &str, at: &str) -> Result<()> {
    let store = cx.open_write()?;
    let fs = open_fs(&store, fs_name, false)?;
    let r = import_dir(&fs, dir, at.as_bytes())?;
    fs.commit(&format!("import dir {}", dir.display()))?;
    report(cx, "imported", &r, fs.base())
}

/// `hydra export tar --fs NAME [PATH] [-o FILE|-]`.
pub fn export_tar_cmd(cx: &Context, fs_name: &str, path: &str, out: &PathBuf) -> Result<()> {
    let store = cx.open_read()?;
    let fs = open_fs(&store, fs_name, true)?;
    if out.as_os_str() == "-" {
        let stdout = std::io::stdout().lock();
        export_tar(&fs, path.as_bytes(), stdout)?;
        return Ok(());
    }
    let tmp = out.with_extension("tar.partial");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
    let result = export_tar(&fs, path.as_bytes(), &mut writer)
        .map_err(anyhow::Error::from)
        .and_then(|r| {
            writer.flush()?;
            writer.get_ref().sync_all()?;
            Ok(r)
        });
    match result {
        Ok(r) => {
            std::fs::rename(&tmp, out)
                .with_context(|| format!("cannot write {}", out.display()))?;
            report(cx, "exported", &r, None)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}
