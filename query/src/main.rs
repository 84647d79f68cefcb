//! `quench-query`: SQL over Quench's evidence store, with DataFusion.
//!
//! In: the store's directory (`[evidence] dir`) and one SQL statement. Out: the result as a table, JSON Lines, CSV
//! or a Parquet file. State: none; the store is only read. The tables are `events`, `findings`, `decisions` and
//! `commands`, each with the extra column `hour` (`'2026-11-29T18'`, the hour folder), which prunes files when a
//! query filters on it. Hours the engine moved to object storage are read there, with the rest (see
//! `quench::evidence::remote`). `quench query` runs this binary; it is its own crate so that DataFusion stays out of the
//! engine's and the demo's build.

mod unmoved;

use arrow::record_batch::RecordBatch;
use clap::{Parser, ValueEnum};
use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use quench::evidence::remote;
use quench::evidence::tables::TableKind;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "quench query",
    about = "SQL over the evidence store (tables events, findings, decisions, commands)"
)]
struct Args {
    /// The SQL statement.
    sql: String,
    /// The evidence store's directory (`[evidence] dir`).
    #[arg(long, default_value = "quench-evidence")]
    store: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Write here instead of stdout (required for parquet).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Jsonl,
    Csv,
    Parquet,
}

#[derive(Debug, thiserror::Error)]
enum QueryError {
    #[error("{0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("{0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("{0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("{0}")]
    Store(#[from] quench::evidence::EvidenceError),
    #[error("{path:?}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--format parquet writes a file: give --out FILE")]
    ParquetNeedsOut,
    #[error("{0:?} is not an evidence store (no events, findings, decisions or commands folder); set --store to `[evidence] dir`")]
    NoStore(PathBuf),
}

/// The parquet listing of one table's folder(s) on one object store, with its `hour` partition column.
fn listing(t: TableKind, urls: Vec<ListingTableUrl>) -> Result<Arc<ListingTable>, QueryError> {
    let opts = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![("hour".to_string(), DataType::Utf8)]);
    let cfg = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(opts)
        .with_schema(t.schema());
    Ok(Arc::new(ListingTable::try_new(cfg)?))
}

fn dir_url(path: &Path) -> Result<ListingTableUrl, QueryError> {
    let abs = path.canonicalize().map_err(|source| QueryError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(ListingTableUrl::parse(format!("{}/", abs.display()))?)
}

/// The name the store's object storage client is registered under in DataFusion.
const REMOTE_URL: &str = "quench-remote://store/";

fn remote_err(url: &str, e: impl std::fmt::Display) -> quench::evidence::EvidenceError {
    quench::evidence::EvidenceError::Remote {
        url: url.to_string(),
        why: e.to_string(),
    }
}

/// Register the four tables of the store at `dir` (a missing table is an empty one with its schema). A table
/// reads its folder, the files waiting under `_upload/` for object storage, and, when the directory names object
/// storage (`object_store.json`), the hours kept there: one listing per place, joined by `UNION ALL`.
async fn context(dir: &Path) -> Result<SessionContext, QueryError> {
    let ctx = SessionContext::new();
    let remote = remote::marked(dir)?;
    let has_table = |t: &TableKind| {
        dir.join(t.name()).is_dir() || dir.join(remote::UPLOAD).join(t.name()).is_dir()
    };
    if remote.is_none() && !TableKind::ALL.iter().any(has_table) {
        return Err(QueryError::NoStore(dir.to_path_buf()));
    }
    // the client is registered under a name of its own, and listed by the objects' path (the prefix after the
    // bucket or container), so that every scheme's URL means the same objects to DataFusion as to the engine
    let mut remote_root = None;
    if let Some(m) = &remote {
        let (store, prefix) = remote::client(&m.url)?;
        if let Some(c) = remote::owner(store.as_ref(), &prefix)
            .await
            .map_err(|e| QueryError::Store(remote_err(&m.url, e)))?
        {
            if c != m.id {
                return Err(QueryError::Store(remote::not_owner(&m.url, &c, &m.id)));
            }
        }
        // a file put there but still here too (a crash between the put and the local delete) is read here only
        let mut here = std::collections::HashSet::new();
        for t in TableKind::ALL {
            let waiting = dir.join(remote::UPLOAD).join(t.name());
            for hour in std::fs::read_dir(&waiting).into_iter().flatten().flatten() {
                for f in std::fs::read_dir(hour.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    let (Some(h), Some(n)) = (
                        hour.file_name().to_str().map(String::from),
                        f.file_name().to_str().map(String::from),
                    ) else {
                        continue;
                    };
                    here.insert(prefix.clone().join(t.name()).join(h).join(n));
                }
            }
        }
        let base = ListingTableUrl::parse(REMOTE_URL)?;
        ctx.register_object_store(
            base.object_store().as_ref(),
            Arc::new(unmoved::Unmoved::new(store, here)),
        );
        remote_root = Some(if prefix.as_ref().is_empty() {
            REMOTE_URL.to_string()
        } else {
            format!("{REMOTE_URL}{}/", prefix.as_ref())
        });
    }
    for t in TableKind::ALL {
        let mut parts: Vec<Arc<ListingTable>> = Vec::new();
        let local: Vec<ListingTableUrl> =
            [dir.join(t.name()), dir.join(remote::UPLOAD).join(t.name())]
                .iter()
                .filter(|p| p.is_dir())
                .map(|p| dir_url(p))
                .collect::<Result<_, _>>()?;
        if !local.is_empty() {
            parts.push(listing(t, local)?);
        }
        if let Some(root) = &remote_root {
            let u = ListingTableUrl::parse(format!("{root}{}/", t.name()))?;
            parts.push(listing(t, vec![u])?);
        }
        match parts.len() {
            0 => {
                let mut fields: Vec<_> = t.schema().fields().iter().cloned().collect();
                fields.push(Arc::new(arrow::datatypes::Field::new(
                    "hour",
                    DataType::Utf8,
                    false,
                )));
                let schema = Arc::new(arrow::datatypes::Schema::new(fields));
                ctx.register_table(t.name(), Arc::new(MemTable::try_new(schema, vec![vec![]])?))?;
            }
            1 => {
                if let Some(p) = parts.pop() {
                    ctx.register_table(t.name(), p)?;
                }
            }
            _ => {
                let mut selects = Vec::new();
                for (i, p) in parts.into_iter().enumerate() {
                    let name = format!("{}__{i}", t.name());
                    ctx.register_table(name.as_str(), p)?;
                    selects.push(format!("SELECT * FROM {name}"));
                }
                ctx.sql(&format!(
                    "CREATE VIEW {} AS {}",
                    t.name(),
                    selects.join(" UNION ALL ")
                ))
                .await?;
            }
        }
    }
    Ok(ctx)
}

/// Run one statement against the store.
async fn query(dir: &Path, sql: &str) -> Result<Vec<RecordBatch>, QueryError> {
    let ctx = context(dir).await?;
    Ok(ctx.sql(sql).await?.collect().await?)
}

/// The batches with every text-like column (strings, lists, structs) as text passed through `f`. Stored values
/// come from logs that outsiders write: a table must not carry their control characters to the terminal, and a
/// CSV cell must not start a spreadsheet formula.
fn text_cells(
    batches: &[RecordBatch],
    f: impl Fn(&str) -> String,
) -> Result<Vec<RecordBatch>, QueryError> {
    use arrow::array::{Array, ArrayRef, StringArray};
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(b.num_columns());
        let mut fields = Vec::with_capacity(b.num_columns());
        for (field, c) in b.schema().fields().iter().zip(b.columns()) {
            let texty = matches!(
                c.data_type(),
                DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Utf8View
                    | DataType::List(_)
                    | DataType::LargeList(_)
                    | DataType::ListView(_)
                    | DataType::FixedSizeList(_, _)
                    | DataType::Struct(_)
                    | DataType::Map(_, _)
            );
            if !texty {
                cols.push(c.clone());
                fields.push(field.as_ref().clone());
                continue;
            }
            // every value as the table would show it (lists as `[a, b]`), then through `f`
            let shown = arrow::util::display::ArrayFormatter::try_new(
                c.as_ref(),
                &arrow::util::display::FormatOptions::default(),
            )?;
            let mapped: StringArray = (0..c.len())
                .map(|i| (!c.is_null(i)).then(|| f(&shown.value(i).to_string())))
                .collect();
            fields.push(arrow::datatypes::Field::new(
                field.name(),
                DataType::Utf8,
                true,
            ));
            cols.push(Arc::new(mapped));
        }
        out.push(RecordBatch::try_new(
            Arc::new(arrow::datatypes::Schema::new(fields)),
            cols,
        )?);
    }
    Ok(out)
}

/// A CSV cell that a spreadsheet would read as a formula starts with a `'` instead.
fn no_formula(v: &str) -> String {
    match v.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{v}"),
        _ => v.to_string(),
    }
}

fn write(batches: &[RecordBatch], format: Format, out: &mut dyn Write) -> Result<(), QueryError> {
    match format {
        Format::Table => {
            let safe = text_cells(batches, |v| quench::text::escape_control(v).into_owned())?;
            let t = arrow::util::pretty::pretty_format_batches(&safe)?;
            let _ = writeln!(out, "{t}");
        }
        Format::Jsonl => {
            let mut w = arrow::json::LineDelimitedWriter::new(out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
        }
        Format::Csv => {
            // text cells checked for formulas; lists and structs written as the table shows them
            let safe = text_cells(batches, no_formula)?;
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            for b in &safe {
                w.write(b)?;
            }
        }
        Format::Parquet => return Err(QueryError::ParquetNeedsOut),
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quench query: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<(), QueryError> {
    let started = std::time::Instant::now();
    let batches = query(&args.store, &args.sql).await?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    match (&args.out, args.format) {
        (Some(p), Format::Parquet) => {
            let f = std::fs::File::create(p).map_err(|source| QueryError::Io {
                path: p.clone(),
                source,
            })?;
            let schema = match batches.first() {
                Some(b) => b.schema(),
                None => Arc::new(arrow::datatypes::Schema::empty()),
            };
            let mut w = parquet::arrow::ArrowWriter::try_new(f, schema, None)?;
            for b in &batches {
                w.write(b)?;
            }
            w.close()?;
        }
        (Some(p), f) => {
            let mut file = std::fs::File::create(p).map_err(|source| QueryError::Io {
                path: p.clone(),
                source,
            })?;
            write(&batches, f, &mut file)?;
        }
        (None, f) => write(&batches, f, &mut std::io::stdout().lock())?,
    }
    eprintln!("{rows} rows in {:.3} s", started.elapsed().as_secs_f64());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use quench::event::{Category, Family, SessionEvent, SourceInfo, Text, Ts};
    use quench::evidence::{Evidence, EvidenceConfig};

    /// The answer to `sql` as the printed table.
    async fn table_text(dir: &Path, sql: &str) -> String {
        let b = query(dir, sql).await.unwrap();
        arrow::util::pretty::pretty_format_batches(&b)
            .unwrap()
            .to_string()
    }

    /// The result of `sql` on the store at `dir`, as CSV.
    async fn csv_of(dir: &Path, sql: &str) -> String {
        let b = query(dir, sql).await.unwrap();
        let mut out = Vec::new();
        write(&b, Format::Csv, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn ev(id: &str, who: &str, t: i64) -> SessionEvent<'static> {
        let mut e = SessionEvent::new(
            SourceInfo {
                family: Family::Idp,
                vendor: "okta".into(),
                format: "okta_system_log".into(),
            },
            Text::Owned(id.into()),
            Ts(t),
            Category::Login,
        );
        e.principal.email = Some(Text::Owned(who.into()));
        e
    }

    #[tokio::test]
    async fn sql_counts_events_per_principal_across_hours_and_prunes_by_hour() {
        let dir = std::env::temp_dir().join(format!("quench-q-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut e = Evidence::open(&EvidenceConfig::default(), &dir).unwrap();
        let t0 = 1_767_225_600_000; // 2026-01-01T00:00Z
        for (i, (who, t)) in [("a@x", t0), ("a@x", t0 + 3_600_000), ("b@x", t0 + 10)]
            .iter()
            .enumerate()
        {
            e.event(&ev(&format!("e{i}"), who, *t));
        }
        e.close(None).unwrap();
        let text = table_text(&dir, "SELECT principal, count(*) AS n, max(event_time) AS last FROM events GROUP BY principal ORDER BY principal").await;
        assert!(
            text.contains("| a@x       | 2 | 2026-01-01T01:00:00Z"),
            "{text}"
        );
        assert!(text.contains("| b@x       | 1 |"), "{text}");
        let text = table_text(
            &dir,
            "SELECT count(*) AS n FROM events WHERE hour = '2026-01-01T01'",
        )
        .await;
        assert!(text.contains("| 1 |"), "{text}");
        // a table nothing was written to is empty, not an error
        let text = table_text(&dir, "SELECT count(*) AS n FROM commands").await;
        assert!(text.contains("| 0 |"), "{text}");
        let mut out = Vec::new();
        write(
            &query(&dir, "SELECT event_id FROM events ORDER BY event_id")
                .await
                .unwrap(),
            Format::Jsonl,
            &mut out,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"event_id\":\"e0\"}\n{\"event_id\":\"e1\"}\n{\"event_id\":\"e2\"}\n"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Found by an outside review: a user agent with terminal controls printed raw in the table (a forged row,
    /// a cleared screen), and one starting with `=` became a formula in CSV.
    #[tokio::test]
    async fn stored_control_characters_and_formulas_do_not_reach_the_terminal_or_the_spreadsheet() {
        let dir = std::env::temp_dir().join(format!("quench-q-esc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut e = Evidence::open(&EvidenceConfig::default(), &dir).unwrap();
        let mut a = ev("e1", "a@x", 1_767_225_600_000);
        a.network.user_agent = Some(Text::Owned(
            "\u{1b}]0;owned\u{7}\u{1b}[2J\n| ok | all clear |".into(),
        ));
        e.event(&a);
        let mut b = ev("e2", "b@x", 1_767_225_600_001);
        b.network.user_agent = Some(Text::Owned(
            "=HYPERLINK(\"http://evil.example/\",\"x\")".into(),
        ));
        e.event(&b);
        e.close(None).unwrap();
        let rows = query(
            &dir,
            "SELECT event_id, user_agent, domains FROM events ORDER BY event_id",
        )
        .await
        .unwrap();
        let mut table = Vec::new();
        write(&rows, Format::Table, &mut table).unwrap();
        let table = String::from_utf8(table).unwrap();
        assert!(
            !table.contains('\u{1b}') && !table.contains('\u{7}'),
            "{table:?}"
        );
        assert!(!table.contains("\n| ok | all clear |"), "{table}");
        let mut csv = Vec::new();
        write(&rows, Format::Csv, &mut csv).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        assert!(csv.contains("e2,\"'=HYPERLINK"), "{csv}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_directory_that_is_no_store_is_named() {
        let e = query(Path::new("/nonexistent-store"), "SELECT 1")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not an evidence store"), "{e}");
    }

    /// A store at `base/store` whose compacted hours went to `file://base/remote`, holding one event per
    /// `(id, principal, hours after 2026-01-01T00:00Z)`, flushed with the clock at 05:00 that day.
    fn store_with_remote(base: &Path, events: &[(&str, &str, i64)]) -> (PathBuf, PathBuf) {
        let _ = std::fs::remove_dir_all(base);
        let (dir, remote) = (base.join("store"), base.join("remote"));
        let cfg = EvidenceConfig {
            compact_after_hours: 1,
            object_store: Some(format!("file://{}", remote.display())),
            ..EvidenceConfig::default()
        };
        let t0 = 1_767_225_600_000; // 2026-01-01T00:00Z
        let mut e = Evidence::open(&cfg, &dir).unwrap();
        for (id, who, h) in events {
            e.event(&ev(id, who, t0 + h * 3_600_000));
        }
        e.flush(Some(quench::event::Ts(t0 + 5 * 3_600_000)))
            .unwrap();
        e.close(None).unwrap();
        (dir, remote)
    }

    /// Hours in three places (the table's folder, `_upload/` waiting for object storage, object storage itself)
    /// are one table to SQL, and the hour still prunes.
    #[tokio::test]
    async fn sql_reads_the_hours_moved_to_object_storage_with_the_local_ones() {
        let base = std::env::temp_dir().join(format!("quench-q-remote-{}", std::process::id()));
        let (dir, remote) = store_with_remote(
            &base,
            &[("e0", "a@x", 0), ("e1", "a@x", 1), ("e2", "b@x", 5)],
        );
        assert!(remote.join("events/hour=2026-01-01T00").is_dir());
        assert!(dir.join("events/hour=2026-01-01T05").is_dir());
        // one moved file waits locally, as after a failed upload
        let waiting = dir.join("_upload/events/hour=2026-01-01T01");
        std::fs::create_dir_all(&waiting).unwrap();
        let up = remote.join("events/hour=2026-01-01T01");
        for f in std::fs::read_dir(&up).unwrap().flatten() {
            std::fs::rename(f.path(), waiting.join(f.file_name())).unwrap();
        }
        assert_eq!(
            csv_of(&dir, "SELECT event_id, hour FROM events ORDER BY event_id").await,
            "event_id,hour\ne0,2026-01-01T00\ne1,2026-01-01T01\ne2,2026-01-01T05\n"
        );
        let text = table_text(
            &dir,
            "SELECT count(*) AS n FROM events WHERE hour = '2026-01-01T00'",
        )
        .await;
        assert!(text.contains("| 1 |"), "{text}");
        let _ = std::fs::remove_dir_all(&base);
    }

    /// Found by an outside review: a file put into object storage whose local copy was not yet deleted (a crash
    /// between the two, or a failed delete) was counted twice by SQL, for as long as it stayed in both places.
    #[tokio::test]
    async fn a_file_both_uploaded_and_still_local_is_read_once() {
        let base = std::env::temp_dir().join(format!("quench-q-twice-{}", std::process::id()));
        let (dir, remote) = store_with_remote(&base, &[("e0", "a@x", 0), ("e1", "a@x", 1)]);
        // the hour of e1 is in object storage and, as if its local delete never happened, still waiting here
        let up = remote.join("events/hour=2026-01-01T01");
        let waiting = dir.join("_upload/events/hour=2026-01-01T01");
        std::fs::create_dir_all(&waiting).unwrap();
        let mut copied = 0;
        for f in std::fs::read_dir(&up).unwrap().flatten() {
            std::fs::copy(f.path(), waiting.join(f.file_name())).unwrap();
            copied += 1;
        }
        assert_eq!(copied, 1);
        assert_eq!(
            csv_of(&dir, "SELECT event_id, hour FROM events ORDER BY event_id").await,
            "event_id,hour\ne0,2026-01-01T00\ne1,2026-01-01T01\n"
        );
        let _ = std::fs::remove_dir_all(&base);
    }
}
