//! Compaction: an hour's many Parquet files merged into one, crash-safely.
//!
//! In: an hour folder of one table. Out: one merged file in its place, and a journal while the inputs go. State:
//! none beyond the journal file, which [`recover_compactions`] finishes or undoes at the next open.

use super::writer::props;
use super::*;

/// A compaction's journal: the files merged into `output`.
#[derive(serde::Serialize, Deserialize)]
pub(super) struct Journal {
    pub(super) output: String,
    pub(super) inputs: Vec<String>,
}

/// Merge an hour folder's Parquet files into one. Returns whether it did.
///
/// The merged file is written as `.tmp`, then renamed `.ready`; then a journal naming the inputs is written, the
/// inputs are deleted, the `.ready` file becomes `.parquet` and the journal goes. [`recover_compactions`] finishes
/// any of this a crash interrupted: without a journal the inputs are whole and the merged file is dropped; with one
/// the merge is complete and the inputs go.
pub(super) fn compact(
    dir: &Path,
    t: TableKind,
    rows: usize,
    run: &str,
) -> Result<bool, EvidenceError> {
    let inputs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    if inputs.len() < 2 {
        return Ok(false);
    }
    let out_name = format!("compact-{run}-{:x}.parquet", fastrand::u32(..));
    let tmp = dir.join(format!("{out_name}.tmp"));
    let ready = dir.join(format!("{out_name}.ready"));
    {
        let f = File::create(&tmp).map_err(io(&tmp))?;
        let mut w = ArrowWriter::try_new(f, t.schema(), Some(props(rows))).map_err(|source| {
            EvidenceError::Parquet {
                path: tmp.clone(),
                source,
            }
        })?;
        for p in &inputs {
            for b in read::local_batches(p)? {
                w.write(&b).map_err(|source| EvidenceError::Parquet {
                    path: tmp.clone(),
                    source,
                })?;
            }
        }
        let f = w.into_inner().map_err(|source| EvidenceError::Parquet {
            path: tmp.clone(),
            source,
        })?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, &ready).map_err(io(&tmp))?;
    let journal = dir.join("compact.journal");
    let j = Journal {
        output: out_name.clone(),
        inputs: inputs
            .iter()
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(String::from))
            .collect(),
    };
    let jtmp = dir.join("compact.journal.tmp");
    std::fs::write(&jtmp, serde_json::to_vec(&j)?).map_err(io(&jtmp))?;
    File::open(&jtmp)
        .and_then(|f| f.sync_all())
        .map_err(io(&jtmp))?;
    std::fs::rename(&jtmp, &journal).map_err(io(&journal))?;
    finish_compaction(dir, &j)?;
    Ok(true)
}

fn finish_compaction(dir: &Path, j: &Journal) -> Result<(), EvidenceError> {
    for i in &j.inputs {
        if i.contains('/') || i.contains("..") {
            continue;
        }
        let p = dir.join(i);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&p)(e)),
        }
    }
    let ready = dir.join(format!("{}.ready", j.output));
    if ready.exists() {
        std::fs::rename(&ready, dir.join(&j.output)).map_err(io(&ready))?;
    }
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io(dir))?;
    let journal = dir.join("compact.journal");
    std::fs::remove_file(&journal).map_err(io(&journal))?;
    Ok(())
}

/// Finish or undo compactions a crash interrupted (see [`compact`]).
pub(super) fn recover_compactions(root: &Path) -> Result<(), EvidenceError> {
    for t in TableKind::ALL {
        let Ok(rd) = std::fs::read_dir(root.join(t.name())) else {
            continue;
        };
        for e in rd.flatten() {
            let dir = e.path();
            let journal = dir.join("compact.journal");
            if let Ok(bytes) = std::fs::read(&journal) {
                let j: Journal = serde_json::from_slice(&bytes)?;
                finish_compaction(&dir, &j)?;
            }
            for f in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let p = f.path();
                let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if n.ends_with(".tmp") || n.ends_with(".ready") {
                    std::fs::remove_file(&p).map_err(io(&p))?;
                }
            }
        }
    }
    Ok(())
}
