//! `hydra init`.

use anyhow::Result;
use clap::Args;
use hydra_dag::{Store, StoreOptions};

use super::{Context, output};

/// Arguments of `hydra init`.
#[derive(Debug, Args)]
pub struct InitArgs {}

/// Creates the store, or reports that it exists.
pub fn run(cx: &Context, _args: InitArgs) -> Result<()> {
    let (store, created) = Store::init(&cx.store_path, &StoreOptions::default())?;
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
