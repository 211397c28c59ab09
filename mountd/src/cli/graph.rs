//! `hydra graph NAME add|del|match|path|import|export`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use hydra_kv::graph::{self, Graph, Pattern, Quad};

use super::{Context, output};

/// Arguments of `hydra graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The graph store's name (ref `graph/NAME`).
    name: String,
    #[command(subcommand)]
    command: GraphCommand,
}

/// Subcommands of `hydra graph NAME`. Terms are in N-Triples syntax:
/// `<iri>`, `_:blank`, `"literal"`, `"text"@en`, `"1"^^<datatype>`.
#[derive(Debug, Subcommand)]
enum GraphCommand {
    /// Add one quad (one commit).
    Add {
        /// Subject, predicate, object and optionally the graph name.
        #[arg(num_args = 3..=4, required = true)]
        terms: Vec<String>,
    },
    /// Remove one quad (one commit).
    Del {
        /// Subject, predicate, object and optionally the graph name.
        #[arg(num_args = 3..=4, required = true)]
        terms: Vec<String>,
    },
    /// Print the quads matching a pattern, as N-Quads (`?` matches anything).
    Match {
        /// Subject, predicate, object and graph name, or `?`.
        #[arg(num_args = 1..=4, required = true)]
        pattern: Vec<String>,
        /// At most this many quads.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Print a shortest chain of quads linking two nodes (edges in either direction).
    Path {
        /// Start node.
        from: String,
        /// End node.
        to: String,
        /// Longest chain looked for.
        #[arg(long, default_value_t = 6)]
        max_depth: usize,
    },
    /// Add every quad of an N-Quads file (or `-`) in one commit; nothing is
    /// stored if any line is bad.
    Import {
        /// The file.
        file: PathBuf,
    },
    /// Write every quad as N-Quads to stdout.
    Export,
    /// List the graph's commits, newest first.
    Log {
        /// At most this many entries.
        #[arg(short = 'n', long, default_value_t = 100)]
        limit: usize,
    },
    /// Print the quads added (`A`) and deleted (`D`) from A to B
    /// (changelog ids or root CIDs).
    Diff {
        /// The older snapshot.
        a: String,
        /// The newer snapshot.
        b: String,
    },
}

fn quad(terms: &[String]) -> Result<Quad> {
    let mut parsed = Vec::with_capacity(4);
    for t in terms {
        parsed.push(graph::parse_term(t).map_err(|e| anyhow::anyhow!("term {t:?}: {e}"))?);
    }
    let line = format!("{} .", parsed.join(" "));
    graph::parse_line(&line)
        .map_err(|e| anyhow::anyhow!("not a quad: {e}"))?
        .context("not a quad")
}

/// Runs `hydra graph`.
pub fn run(cx: &Context, args: GraphArgs) -> Result<()> {
    match args.command {
        GraphCommand::Add { terms } => change(cx, &args.name, &terms, true),
        GraphCommand::Del { terms } => change(cx, &args.name, &terms, false),
        GraphCommand::Match { pattern, limit } => {
            let mut p: Pattern = Default::default();
            for (i, t) in pattern.iter().enumerate() {
                if t != "?" {
                    p[i] =
                        Some(graph::parse_term(t).map_err(|e| anyhow::anyhow!("term {t:?}: {e}"))?);
                }
            }
            let store = cx.open_read()?;
            let tree = Graph::open(store.bucket().clone(), &args.name)?.tree()?;
            let found = graph::matches(&tree, &p, limit.unwrap_or(usize::MAX))?;
            print_quads(cx, &found)
        }
        GraphCommand::Path {
            from,
            to,
            max_depth,
        } => {
            let (from, to) = (
                graph::parse_term(&from).map_err(|e| anyhow::anyhow!("term {from:?}: {e}"))?,
                graph::parse_term(&to).map_err(|e| anyhow::anyhow!("term {to:?}: {e}"))?,
            );
            let store = cx.open_read()?;
            let tree = Graph::open(store.bucket().clone(), &args.name)?.tree()?;
            let Some(chain) = graph::path(&tree, &from, &to, max_depth)? else {
                bail!("no path from {from} to {to} within {max_depth} steps");
            };
            print_quads(cx, &chain)
        }
        GraphCommand::Import { file } => {
            let quads = read_nquads(&file)?;
            let store = cx.open_write()?;
            let g = Graph::open(store.bucket().clone(), &args.name)?;
            let changes: Vec<(Quad, bool)> = quads.into_iter().map(|q| (q, true)).collect();
            g.change(&changes, &format!("import {}", file.display()))?;
            if !cx.json {
                println!("imported {} quads into graph {}", changes.len(), args.name);
            }
            Ok(())
        }
        GraphCommand::Log { limit } => {
            let store = cx.open_read()?;
            let entries = Graph::open(store.bucket().clone(), &args.name)?.log(limit)?;
            output::log_entries(cx.json, &entries)
        }
        GraphCommand::Diff { a, b } => {
            let store = cx.open_read()?;
            let g = Graph::open(store.bucket().clone(), &args.name)?;
            let root = |spec: &str| super::fs::snapshot_of(store.bucket(), g.ref_name(), spec);
            let (ta, tb) = (g.at(Some(root(&a)?)), g.at(Some(root(&b)?)));
            let (added, removed) = graph::diff_quads(&ta, &tb)?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for q in &added {
                writeln!(out, "A\t{q}")?;
            }
            for q in &removed {
                writeln!(out, "D\t{q}")?;
            }
            out.flush()?;
            Ok(())
        }
        GraphCommand::Export => {
            let store = cx.open_read()?;
            let tree = Graph::open(store.bucket().clone(), &args.name)?.tree()?;
            let all = graph::matches(&tree, &Default::default(), usize::MAX)?;
            print_quads(cx, &all)
        }
    }
}

fn change(cx: &Context, name: &str, terms: &[String], add: bool) -> Result<()> {
    let q = quad(terms)?;
    let store = cx.open_write()?;
    let g = Graph::open(store.bucket().clone(), name)?;
    let tree = g.tree()?;
    let present = !graph::matches(
        &tree,
        &[
            Some(q.s.clone()),
            Some(q.p.clone()),
            Some(q.o.clone()),
            Some(q.g.clone()),
        ],
        1,
    )?
    .is_empty();
    if !add && !present {
        bail!("quad {q} is not in graph {name}");
    }
    let verb = if add { "add" } else { "del" };
    g.change(&[(q.clone(), add)], &format!("{verb} {q}"))?;
    Ok(())
}

fn print_quads(cx: &Context, quads: &[Quad]) -> Result<()> {
    if cx.json {
        let rows: Vec<_> = quads
            .iter()
            .map(|q| serde_json::json!({ "s": q.s, "p": q.p, "o": q.o, "g": q.g }))
            .collect();
        return output::json(&rows);
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for q in quads {
        writeln!(out, "{q}")?;
    }
    out.flush()?;
    Ok(())
}

/// Every quad of an N-Quads file; the first bad line is an error naming it.
fn read_nquads(file: &std::path::Path) -> Result<Vec<Quad>> {
    let mut out = Vec::new();
    for (i, line) in output::input_lines(file)?.enumerate() {
        let n = i + 1;
        let line = line.with_context(|| format!("line {n}: cannot read"))?;
        match graph::parse_line(&line) {
            Ok(Some(q)) => out.push(q),
            Ok(None) => {}
            Err(e) => bail!("line {n}: {e}"),
        }
    }
    Ok(out)
}
