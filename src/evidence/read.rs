//! Reading the evidence store back: the Parquet files of a table, optionally only the hours in a time range.
//!
//! In: the store's directory and a table. Out: its [`RecordBatch`]es, hour by hour in time order, from the
//! directory and, when it names one, from object storage ([`super::remote`]). State: none. Pending files (not yet
//! published) and interrupted compactions' leftovers are never read.

use super::remote::{self, Remote};
use super::tables::TableKind;
use super::{hour_dirs, io, EvidenceError};
use crate::event::Ts;
use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One published file: in the directory (its table, or `_upload/` waiting for object storage), or in object
/// storage under its name relative to the store's root.
pub enum Stored {
    Local(PathBuf),
    Remote(Arc<Remote>, String),
}

/// Every batch of one stored file.
pub fn batches_of(f: &Stored) -> Result<Vec<RecordBatch>, EvidenceError> {
    match f {
        Stored::Local(p) => local_batches(p),
        Stored::Remote(r, rel) => r.batches(rel),
    }
}

/// Every batch of one Parquet file on the local disk.
pub fn local_batches(path: &Path) -> Result<Vec<RecordBatch>, EvidenceError> {
    let f = std::fs::File::open(path).map_err(io(path))?;
    parquet_batches(f, path)
}

/// Every batch of one Parquet file's bytes; `path` names it in errors.
pub(crate) fn parquet_batches<R: parquet::file::reader::ChunkReader + 'static>(
    f: R,
    path: &Path,
) -> Result<Vec<RecordBatch>, EvidenceError> {
    let perr = |source| EvidenceError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(perr)?
        .with_batch_size(8192)
        .build()
        .map_err(perr)?;
    let mut out = Vec::new();
    for b in reader {
        out.push(b?);
    }
    Ok(out)
}

/// The published files of `table` whose hour overlaps `[since, until)`, oldest hour first: those in the
/// directory, those waiting under `_upload/`, and, when the directory names object storage, those kept there. A
/// file in two places (uploaded, and its local copy not yet deleted) is listed once, as the local one.
pub fn files(
    dir: &Path,
    table: TableKind,
    since: Option<Ts>,
    until: Option<Ts>,
) -> Result<Vec<Stored>, EvidenceError> {
    let wanted = |h: Ts| {
        let ends = Ts(h.0 + 3_600_000);
        !(since.is_some_and(|s| ends <= s) || until.is_some_and(|u| h >= u))
    };
    let mut out: BTreeMap<(Ts, String), Stored> = BTreeMap::new();
    for root in [
        dir.join(table.name()),
        dir.join(remote::UPLOAD).join(table.name()),
    ] {
        for (h, d) in hour_dirs(&root) {
            if !wanted(h) {
                continue;
            }
            for e in std::fs::read_dir(&d).map_err(io(&d))?.flatten() {
                let p = e.path();
                if p.extension().is_none_or(|x| x != "parquet") {
                    continue;
                }
                if let Some(name) = e.file_name().to_str() {
                    out.insert((h, name.to_string()), Stored::Local(p));
                }
            }
        }
    }
    if let Some(url) = remote::marked(dir)? {
        let r = Arc::new(Remote::open(&url)?);
        for (h, hour) in r.hours(table)? {
            if !wanted(h) {
                continue;
            }
            for rel in r.files(table, &hour)? {
                let name = rel.rsplit('/').next().unwrap_or_default().to_string();
                out.entry((h, name))
                    .or_insert_with(|| Stored::Remote(r.clone(), rel));
            }
        }
    }
    Ok(out.into_values().collect())
}

/// Every batch of `table` in the hours from `since` on.
pub fn table(
    dir: &Path,
    table: TableKind,
    since: Option<Ts>,
) -> Result<Vec<RecordBatch>, EvidenceError> {
    let mut out = Vec::new();
    for f in files(dir, table, since, None)? {
        out.extend(batches_of(&f)?);
    }
    Ok(out)
}
