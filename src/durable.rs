//! Durable state: what the pipeline has learned, saved together with the input offsets it covers, so that a
//! restart (a deploy, a crash, `kill -9`) resumes exactly where its state was instead of starting cold.
//!
//! In: the pipeline's saved state ([`crate::pipeline::Pipeline::save_state`]: correlation links, every detector's
//! baselines, decide's scores, dedup and revocation budget, event fingerprints, the clock) and, per input
//! partition, the offset of the next record to process. Out: `state.json` in the configured directory, replaced
//! atomically (written to a temporary file, synced, renamed over the old one, directory synced), and at start-up
//! the same read back. State: none besides the file.
//!
//! `quench run` writes a snapshot every `state.interval_secs`, as soon as the input has been idle for one commit
//! interval, and at shutdown, and commits its Kafka offsets only
//! right after a snapshot, so the committed offsets never pass the saved state. After a crash the consumer group
//! restarts at the committed offsets, and records below the snapshot's offsets (already in the saved state) are
//! skipped rather than counted twice. Records processed after the last snapshot are processed again: their
//! decisions are deterministic, so a repeated decision has the same id, and the outbox sends no command twice.
//!
//! The file carries a format version. This Quench reads versions up to [`VERSION`]; a newer file is refused with
//! its version named, never half read. Detectors added since a snapshot start cold; saved state of a detector no
//! longer configured is left unused; the current config's bounds (TTLs, key caps) apply to what is loaded.

use crate::clock::WallTime;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The version of the state file this Quench writes and the newest it reads.
pub const VERSION: u32 = 1;

const FILE: &str = "state.json";

/// `[state]`: where learned state is kept across restarts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// Directory for `state.json`. Default: none (every restart starts cold, as before).
    pub dir: Option<PathBuf>,
    /// Seconds between snapshots; Kafka offsets are committed right after each. Default 10.
    pub interval_secs: u64,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            dir: None,
            interval_secs: 10,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state.dir = {path:?}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path:?}: not a Quench state file: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path:?} was written by a newer Quench (state version {version}; this one reads up to {VERSION}): upgrade, or move the file aside to start cold")]
    Newer { path: PathBuf, version: u32 },
    #[error("{path:?}: the saved state does not fit this Quench ({why}): move the file aside to start cold")]
    Load { path: PathBuf, why: String },
    #[error("cannot serialize the state: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// One snapshot as read back.
#[derive(Deserialize)]
pub struct Snapshot {
    pub version: u32,
    pub written_at: WallTime,
    /// `topic/partition` → offset of the next record to process.
    pub offsets: BTreeMap<String, i64>,
    pub state: Box<RawValue>,
}

impl Snapshot {
    /// The offset to resume `topic`'s `partition` at, if the snapshot covers it.
    pub fn offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.offsets.get(&key(topic, partition)).copied()
    }
}

/// The key of a partition in [`Snapshot::offsets`] (Kafka topic names cannot hold `/`).
pub fn key(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

/// The state directory.
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Open (and create) `dir`.
    pub fn open(dir: &Path) -> Result<Store, StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Store {
            dir: dir.to_path_buf(),
        })
    }

    /// The last snapshot, if any.
    pub fn read(&self) -> Result<Option<Snapshot>, StateError> {
        let path = self.file();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StateError::Io { path, source }),
        };
        // the version first, so that a newer layout is named as such rather than failing to parse
        #[derive(Deserialize)]
        struct Head {
            version: u32,
        }
        let head: Head = serde_json::from_slice(&bytes).map_err(|source| StateError::Json {
            path: path.clone(),
            source,
        })?;
        if head.version > VERSION {
            return Err(StateError::Newer {
                path,
                version: head.version,
            });
        }
        let snap =
            serde_json::from_slice(&bytes).map_err(|source| StateError::Json { path, source })?;
        Ok(Some(snap))
    }

    /// Replace the snapshot with `state` covering the input up to `offsets`.
    pub fn write(
        &self,
        offsets: &BTreeMap<String, i64>,
        state: &RawValue,
    ) -> Result<(), StateError> {
        #[derive(Serialize)]
        struct Out<'a> {
            version: u32,
            quench: &'static str,
            written_at: WallTime,
            offsets: &'a BTreeMap<String, i64>,
            state: &'a RawValue,
        }
        let path = self.file();
        let tmp = self.dir.join(format!("{FILE}.tmp"));
        let io = |source| StateError::Io {
            path: self.dir.clone(),
            source,
        };
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io)?);
        serde_json::to_writer(
            &mut f,
            &Out {
                version: VERSION,
                quench: env!("CARGO_PKG_VERSION"),
                written_at: WallTime::now(),
                offsets,
                state,
            },
        )?;
        f.flush().map_err(io)?;
        f.get_ref().sync_all().map_err(io)?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(io)?;
        // the rename itself must reach the disk
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(())
    }

    /// The path of the state file.
    pub fn file(&self) -> PathBuf {
        self.dir.join(FILE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("quench-durable-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_snapshot_reads_back_with_its_offsets() {
        let d = dir("roundtrip");
        let s = Store::open(&d).unwrap();
        assert!(s.read().unwrap().is_none());
        let mut offsets = BTreeMap::new();
        offsets.insert(key("audit-events", 2), 1234);
        let state = serde_json::value::to_raw_value(&serde_json::json!({"x": [1, 2]})).unwrap();
        s.write(&offsets, &state).unwrap();
        let snap = s.read().unwrap().unwrap();
        assert_eq!(snap.version, VERSION);
        assert_eq!(snap.offset("audit-events", 2), Some(1234));
        assert_eq!(snap.offset("audit-events", 1), None);
        assert_eq!(snap.state.get(), r#"{"x":[1,2]}"#);
        assert!(!d.join("state.json.tmp").exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_state_file_from_a_newer_quench_is_refused_with_its_version() {
        let d = dir("newer");
        let s = Store::open(&d).unwrap();
        std::fs::write(
            s.file(),
            r#"{"version":7,"layout":"something new","written_at":"2027-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        let e = s.read().err().unwrap().to_string();
        assert!(
            e.contains("version 7") && e.contains("reads up to 1"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_damaged_state_file_is_named_not_half_read() {
        let d = dir("damaged");
        let s = Store::open(&d).unwrap();
        std::fs::write(s.file(), r#"{"version":1,"offsets":{"#).unwrap();
        let e = s.read().err().unwrap().to_string();
        assert!(
            e.contains("state.json") && e.contains("not a Quench state file"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
