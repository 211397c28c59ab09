//! `hydra sql NAME [QUERY]`: SQLite over the store; `hydra sql NAME log`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context as _, Result, bail};
use clap::{Args, ValueEnum};
use hydra_sql::rusqlite::types::Value;
use hydra_sql::{Database, ResultSet};

use super::{Context, fs::snapshot_of, output};

/// Arguments of `hydra sql`.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The database's name (ref `sql/NAME`).
    name: String,
    /// Statements to run (`log`: the database's commits). Without it: an
    /// interactive shell on a terminal, else the script on stdin.
    query: Option<String>,
    /// How to print rows [default: table on a terminal, else csv].
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Open this past version read-only (changelog id or root CID).
    #[arg(long, value_name = "SNAP")]
    at: Option<String>,
}

/// How rows are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Aligned columns under a header line.
    Table,
    /// Comma-separated values, no header.
    Csv,
    /// A JSON array of objects per result.
    Json,
}

/// Runs `hydra sql`.
pub fn run(cx: &Context, args: SqlArgs) -> Result<()> {
    if args.query.as_deref() == Some("log") {
        let store = cx.open_read()?;
        let entries = hydra_sql::log(store.bucket(), &args.name, usize::MAX)?;
        return output::log_entries(cx.json, &entries);
    }
    let format = args.format.unwrap_or(if cx.json {
        Format::Json
    } else if std::io::stdout().is_terminal() {
        Format::Table
    } else {
        Format::Csv
    });
    let (store, db) = match &args.at {
        Some(spec) => {
            let store = cx.open_read()?;
            let root = snapshot_of(store.bucket(), &hydra_sql::ref_name(&args.name)?, spec)?;
            let db = Database::open_at(store.bucket(), Some(root))?;
            (store, db)
        }
        None => {
            let store = cx.open_write()?;
            let db = Database::open(store.bucket(), &args.name)?;
            (store, db)
        }
    };
    let result = match args.query {
        Some(query) => execute(&db, &query, format),
        None if std::io::stdin().is_terminal() => shell(cx, &db, &args.name, format),
        None => {
            let mut script = String::new();
            for line in std::io::stdin().lock().lines() {
                script.push_str(&line.context("cannot read stdin")?);
                script.push('\n');
            }
            execute(&db, &script, format)
        }
    };
    drop(db);
    drop(store);
    result
}

/// Runs a script, printing each result; one commit for the whole script.
fn execute(db: &Database, sql: &str, format: Format) -> Result<()> {
    let message: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    let message: String = message.chars().take(200).collect();
    db.set_message(&message);
    let mut out = std::io::stdout().lock();
    let mut failed = None;
    let result = db.run_script(sql, &mut |r| {
        if failed.is_none() {
            failed = print(&mut out, &r, format).err();
        }
    });
    if let Err(e) = result {
        match db.take_storage_error() {
            Some(detail) => bail!("{e} ({detail})"),
            None => return Err(e.into()),
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    out.flush()?;
    Ok(())
}

/// The interactive shell: statements end at a semicolon (SQLite's rule),
/// history is kept beside the store.
fn shell(cx: &Context, db: &Database, name: &str, format: Format) -> Result<()> {
    use rustyline::error::ReadlineError;
    let mut editor = rustyline::DefaultEditor::new().context("cannot start the shell")?;
    let history = cx.store_path.join("sql_history");
    let _ = editor.load_history(&history);
    eprintln!("hydra sql {name}: end statements with ';', .quit to leave");
    let mut buf = String::new();
    loop {
        let prompt = if buf.is_empty() {
            format!("{name}> ")
        } else {
            "   ...> ".to_string()
        };
        match editor.readline(&prompt) {
            Ok(line) => {
                if buf.is_empty() && matches!(line.trim(), ".quit" | ".exit") {
                    break;
                }
                buf.push_str(&line);
                buf.push('\n');
                if hydra_sql::is_complete(&buf) {
                    let _ = editor.add_history_entry(buf.trim_end());
                    if let Err(e) = execute(db, &buf, format) {
                        eprintln!("error: {e:#}");
                    }
                    buf.clear();
                }
            }
            Err(ReadlineError::Interrupted) => buf.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e).context("cannot read a line"),
        }
    }
    let _ = editor.save_history(&history);
    Ok(())
}

fn plain(v: &Value, null: &str) -> String {
    match v {
        Value::Null => null.to_string(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Text(s) => s.clone(),
        Value::Blob(b) => {
            let hex: String = b.iter().map(|x| format!("{x:02X}")).collect();
            format!("X'{hex}'")
        }
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn json_value(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Integer(i) => (*i).into(),
        Value::Real(f) => serde_json::Number::from_f64(*f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        Value::Text(s) => s.clone().into(),
        Value::Blob(_) => plain(v, "").into(),
    }
}

fn print(out: &mut impl Write, r: &ResultSet, format: Format) -> Result<()> {
    match format {
        Format::Csv => {
            for row in &r.rows {
                let fields: Vec<String> = row.iter().map(|v| csv_field(&plain(v, ""))).collect();
                writeln!(out, "{}", fields.join(","))?;
            }
        }
        Format::Json => {
            let rows: Vec<serde_json::Value> = r
                .rows
                .iter()
                .map(|row| {
                    let object = r
                        .columns
                        .iter()
                        .zip(row)
                        .map(|(c, v)| (c.clone(), json_value(v)))
                        .collect::<serde_json::Map<_, _>>();
                    serde_json::Value::Object(object)
                })
                .collect();
            writeln!(out, "{}", serde_json::to_string(&rows)?)?;
        }
        Format::Table => {
            let cells: Vec<Vec<String>> = r
                .rows
                .iter()
                .map(|row| row.iter().map(|v| plain(v, "NULL")).collect())
                .collect();
            let mut widths: Vec<usize> = r.columns.iter().map(|c| c.chars().count()).collect();
            for row in &cells {
                for (w, c) in widths.iter_mut().zip(row) {
                    *w = (*w).max(c.chars().count());
                }
            }
            let line = |cells: &[String]| {
                cells
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_string()
            };
            writeln!(out, "{}", line(&r.columns))?;
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            writeln!(out, "{}", line(&rule))?;
            for row in &cells {
                writeln!(out, "{}", line(row))?;
            }
        }
    }
    Ok(())
}
