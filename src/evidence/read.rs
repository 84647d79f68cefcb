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

/// Where a store's files are: its directory, and the object storage it names.
struct Places {
    dir: PathBuf,
    remote: Option<Remote>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    /// `DIR/<table>/hour=…/`
    Table,
    /// `DIR/_upload/<table>/hour=…/`, waiting for object storage
    Waiting,
    Remote,
}

/// One published file, by its name relative to the store's root (`table/hour=…/name.parquet`) and where it was
/// listed. A store being written moves files on (table → `_upload/` → object storage): reading one that has
/// moved since it was listed reads it where it went.
pub struct Stored {
    rel: String,
    place: Place,
    places: Arc<Places>,
}

impl Stored {
    pub fn name(&self) -> &str {
        &self.rel
    }
}

fn not_found(e: &EvidenceError) -> bool {
    matches!(e, EvidenceError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

/// Every batch of one stored file.
pub fn batches_of(f: &Stored) -> Result<Vec<RecordBatch>, EvidenceError> {
    let local = |p: Place| match p {
        Place::Table => f.places.dir.join(&f.rel),
        _ => f.places.dir.join(remote::UPLOAD).join(&f.rel),
    };
    let mut first = None;
    for p in [Place::Table, Place::Waiting, Place::Remote] {
        if p < f.place {
            continue;
        }
        let r = match p {
            Place::Remote => match &f.places.remote {
                Some(r) => r.batches(&f.rel),
                None => break,
            },
            _ => local_batches(&local(p)),
        };
        match r {
            Err(e) if not_found(&e) => {
                first.get_or_insert(e);
            }
            r => return r,
        }
    }
    Err(first.unwrap_or_else(|| io(&local(f.place))(std::io::ErrorKind::NotFound.into())))
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
/// directory, those waiting under `_upload/`, and, when the directory names object storage (and that storage's
/// prefix is this store's), those kept there. The places are listed in the order files move through them, so a
/// file moving meanwhile is listed at least once; a file in two places is listed once.
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
    let remote = match remote::marked(dir)? {
        Some(m) => {
            let r = Remote::open(&m.url)?;
            r.check_owner(&m.id)?;
            Some(r)
        }
        None => None,
    };
    let places = Arc::new(Places {
        dir: dir.to_path_buf(),
        remote,
    });
    let at = |rel: String, place: Place| Stored {
        rel,
        place,
        places: places.clone(),
    };
    let mut out: BTreeMap<(Ts, String), Stored> = BTreeMap::new();
    for (root, place) in [
        (dir.join(table.name()), Place::Table),
        (dir.join(remote::UPLOAD).join(table.name()), Place::Waiting),
    ] {
        for (h, d) in hour_dirs(&root) {
            if !wanted(h) {
                continue;
            }
            let rd = match std::fs::read_dir(&d) {
                Ok(rd) => rd,
                // moved on since the folder was listed: its files are read where they went
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&d)(e)),
            };
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_none_or(|x| x != "parquet") {
                    continue;
                }
                let fname = e.file_name();
                let (Some(hour), Some(name)) =
                    (d.file_name().and_then(|n| n.to_str()), fname.to_str())
                else {
                    continue;
                };
                let rel = format!("{}/{hour}/{name}", table.name());
                out.entry((h, name.to_string()))
                    .or_insert_with(|| at(rel, place));
            }
        }
    }
    if let Some(r) = &places.remote {
        for (h, hour) in r.hours(table)? {
            if !wanted(h) {
                continue;
            }
            for rel in r.files(table, &hour)? {
                let name = rel.rsplit('/').next().unwrap_or_default().to_string();
                out.entry((h, name))
                    .or_insert_with(|| at(rel, Place::Remote));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Category, Family, SourceInfo, Text};
    use crate::evidence::{Evidence, EvidenceConfig};

    /// Found by an outside review: a reader listed a file in its table, the writer then moved it on (to
    /// `_upload/`, for object storage), and reading it failed instead of reading it where it went.
    #[test]
    fn a_file_that_moves_on_after_it_was_listed_is_read_where_it_went() {
        let dir = std::env::temp_dir().join(format!("quench-read-{:x}", fastrand::u64(..)));
        let mut e = Evidence::open(&EvidenceConfig::default(), &dir).unwrap();
        let ev = crate::event::SessionEvent::new(
            SourceInfo {
                family: Family::Idp,
                vendor: "okta".into(),
                format: "okta_system_log".into(),
            },
            Text::Owned("e1".into()),
            Ts(1_767_225_600_000),
            Category::Login,
        );
        e.event(&ev);
        e.close(None).unwrap();
        let listed = files(&dir, TableKind::Events, None, None).unwrap();
        assert_eq!(listed.len(), 1);
        let rel = listed[0].name().to_string();
        let to = dir.join(remote::UPLOAD).join(&rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::rename(dir.join(&rel), &to).unwrap();
        let rows: usize = batches_of(&listed[0])
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert_eq!(rows, 1);
        // and, listed again, it is found in its new place
        assert_eq!(files(&dir, TableKind::Events, None, None).unwrap().len(), 1);
        std::fs::remove_file(&to).unwrap();
        assert!(batches_of(&listed[0]).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
