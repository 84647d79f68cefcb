//! Reading the evidence store back: the Parquet files of a table, optionally only the hours in a time range.
//!
//! In: the store's directory and a table. Out: its [`RecordBatch`]es, hour by hour in time order. State: none.
//! Pending files (not yet published) and interrupted compactions' leftovers are never read.

use super::tables::TableKind;
use super::{hour_of_dir, io, EvidenceError};
use crate::event::Ts;
use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::path::{Path, PathBuf};

/// Every batch of one Parquet file.
pub fn batches_of(path: &Path) -> Result<Vec<RecordBatch>, EvidenceError> {
    let f = std::fs::File::open(path).map_err(io(path))?;
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

/// The published files of `table` whose hour overlaps `[since, until)`, oldest hour first.
pub fn files(
    dir: &Path,
    table: TableKind,
    since: Option<Ts>,
    until: Option<Ts>,
) -> Result<Vec<PathBuf>, EvidenceError> {
    let root = dir.join(table.name());
    let rd = match std::fs::read_dir(&root) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&root)(e)),
    };
    let mut hours: Vec<(Ts, PathBuf)> = Vec::new();
    for e in rd {
        let e = e.map_err(io(&root))?;
        if let Some(h) = e.file_name().to_str().and_then(hour_of_dir) {
            let ends = Ts(h.0 + 3_600_000);
            if since.is_some_and(|s| ends <= s) || until.is_some_and(|u| h >= u) {
                continue;
            }
            hours.push((h, e.path()));
        }
    }
    hours.sort();
    let mut out = Vec::new();
    for (_, d) in hours {
        let mut fs: Vec<PathBuf> = std::fs::read_dir(&d)
            .map_err(io(&d))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
            .collect();
        fs.sort();
        out.extend(fs);
    }
    Ok(out)
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
