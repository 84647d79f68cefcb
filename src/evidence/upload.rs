//! The uploader: a thread of its own that puts the files waiting under `DIR/_upload/` into object storage, deletes
//! each local copy once its put succeeded, and applies retention to the remote hours.
//!
//! In: nudges from the writer (files were handed over, or the clock moved), each with the pipeline's clock. Out:
//! objects under the prefix, local files deleted, expired remote hours deleted, counts in [`EvidenceStats`]. State:
//! the store's [`Remote`] client (with its own one-worker runtime), the newest clock given, the last clock hour
//! whose retention it applied, and whether it has claimed the prefix.

use super::remote::*;
use super::tables::TableKind;
use super::{io, safe_name, EvidenceError, EvidenceStats};
use crate::event::Ts;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;

/// The uploader's thread, owned by the store's writer.
pub struct Uploader {
    /// A nudge: files were handed over, or the clock moved (one waiting is enough: the pass it starts sees every
    /// file moved before it).
    tx: SyncSender<Option<Ts>>,
    /// Set by [`Uploader::stop`]: the time the last pass must end by.
    stop: Arc<std::sync::OnceLock<std::time::Instant>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Uploader {
    /// Start uploading the files under `DIR/_upload/` to `remote`, for the store `id`.
    pub fn start(
        remote: Remote,
        id: String,
        dir: &Path,
        retention_ms: i64,
        stats: Arc<EvidenceStats>,
    ) -> Result<Uploader, EvidenceError> {
        let (tx, rx) = sync_channel(1);
        let stop = Arc::new(std::sync::OnceLock::new());
        let mut u = Upload {
            remote,
            id,
            claimed: false,
            dir: dir.to_path_buf(),
            retention_ms,
            clock: None,
            retained_hour: None,
            stats,
            stop: stop.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("quench-evidence-upload".into())
            .spawn(move || u.serve(rx))
            .map_err(io(dir))?;
        Ok(Uploader {
            tx,
            stop,
            thread: Some(thread),
        })
    }

    /// Files were handed over (or the clock moved): a pass will run. Never waits.
    pub fn nudge(&self, clock: Option<Ts>) {
        let _ = self.tx.try_send(clock);
    }

    /// One last pass over what waits, for at most [`LAST_PASS`], then stop (waits for it). What is left waits
    /// in `_upload/` for the next start.
    pub fn stop(mut self) {
        let _ = self.stop.set(std::time::Instant::now() + LAST_PASS);
        let _ = self.tx.try_send(None);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Upload {
    remote: Remote,
    /// The store's id, and whether its claim on the prefix was made (before the first upload).
    id: String,
    claimed: bool,
    dir: PathBuf,
    retention_ms: i64,
    clock: Option<Ts>,
    /// The clock hour whose retention last ran (remote retention lists every table: once per hour is enough).
    retained_hour: Option<i64>,
    stats: Arc<EvidenceStats>,
    stop: Arc<std::sync::OnceLock<std::time::Instant>>,
}

impl Upload {
    fn serve(&mut self, rx: Receiver<Option<Ts>>) {
        let mut failed = false;
        loop {
            // after a failure, try again on the next nudge or after a while; otherwise wait for work
            let m = if failed {
                rx.recv_timeout(RETRY_AFTER)
            } else {
                rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
            };
            let gone = match m {
                Ok(clock) => {
                    self.clock = self.clock.max(clock);
                    false
                }
                Err(RecvTimeoutError::Timeout) => false,
                Err(RecvTimeoutError::Disconnected) => true,
            };
            let stopping = gone || self.stop.get().is_some();
            // a nudge that came while the last pass ran: its files are put too (within the deadline)
            if stopping {
                while let Ok(clock) = rx.try_recv() {
                    self.clock = self.clock.max(clock);
                }
            }
            failed = match self.pass() {
                Ok(()) => false,
                Err(e) => {
                    self.stats.upload_failures.fetch_add(1, Relaxed);
                    tracing::warn!(error = %e, "evidence store: upload to object storage failed; the files stay local and are tried again");
                    true
                }
            };
            if stopping {
                return;
            }
        }
    }

    fn past_deadline(&self) -> bool {
        self.stop
            .get()
            .is_some_and(|d| std::time::Instant::now() >= *d)
    }

    /// Put every waiting file, then apply retention. A file that fails does not hold up the others: the first
    /// error is returned at the end.
    fn pass(&mut self) -> Result<(), EvidenceError> {
        let root = self.dir.join(UPLOAD);
        let files = super::walk(&root)?;
        if !files.is_empty() && !self.claimed {
            self.remote.claim(&self.id)?;
            self.claimed = true;
        }
        let mut first: Option<EvidenceError> = None;
        for f in files {
            if self.past_deadline() {
                break;
            }
            let Some(rel) = f
                .strip_prefix(&root)
                .ok()
                .and_then(|r| r.to_str())
                .map(|r| r.replace(std::path::MAIN_SEPARATOR, "/"))
            else {
                continue;
            };
            if !safe_name(&rel) {
                continue;
            }
            let n = match self.remote.put_file(&rel, &f) {
                Ok(n) => n,
                // expired by the writer meanwhile
                Err(EvidenceError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    continue
                }
                Err(e) => {
                    first.get_or_insert(e);
                    continue;
                }
            };
            match std::fs::remove_file(&f) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    first.get_or_insert(io(&f)(e));
                }
            }
            self.stats.uploaded_files.fetch_add(1, Relaxed);
            self.stats.uploaded_bytes.fetch_add(n, Relaxed);
        }
        if let Err(e) = self.retain() {
            first.get_or_insert(e);
        }
        first.map_or(Ok(()), Err)
    }

    /// Delete remote hours past retention, once per hour of the clock.
    fn retain(&mut self) -> Result<(), EvidenceError> {
        let Some(clock) = self.clock else {
            return Ok(());
        };
        let hour = clock.0.div_euclid(3_600_000);
        if self.retention_ms <= 0 || self.retained_hour >= Some(hour) || self.past_deadline() {
            return Ok(());
        }
        // only in a prefix this store holds
        if !self.claimed {
            self.remote.claim(&self.id)?;
            self.claimed = true;
        }
        for t in TableKind::ALL {
            for (h, name) in self.remote.hours(t)? {
                if h.0 + 3_600_000 + self.retention_ms < clock.0 {
                    for rel in self.remote.files(t, &name)? {
                        self.remote.delete(&rel)?;
                    }
                    self.stats.expired_hours.fetch_add(1, Relaxed);
                }
            }
        }
        self.retained_hour = Some(hour);
        Ok(())
    }
}
