//! The evidence store's writer thread: batches in, Parquet files out.
//!
//! In: [`Msg`]s from the pipeline's [`Evidence`] handle (event rows, finished batches, command rows, seal and
//! publish requests). Out: Parquet files under `DIR/_pending/`, moved into their tables by a publish; compacted,
//! expired and (with object storage) handed-over hours. State: one open Parquet writer per (table, hour) written
//! lately (at most [`MAX_OPEN_FILES`] per table, their row groups in progress about [`MAX_OPEN_BYTES`] in all),
//! the names sealed since the last checkpoint, the first write error since the last seal, and per table the newest
//! hour and how often it moved forward.

use super::compact::compact;
use super::*;

/// What the pipeline's handle sends the writer's thread.
pub(super) enum Msg {
    Batch(TableKind, RecordBatch),
    /// Rows of the events table to build into a batch and write (their emptied buffers go back to the pipeline).
    Events(Box<EventRows>),
    /// Command rows are waiting (see [`super::CommandSink`]): write them and move them into the table at once.
    Commands,
    /// Write these command rows and move them into the table at once.
    CommandRows(Vec<CommandRow>),
    /// Close every open file; answer with the pending files sealed since the last seal.
    Seal(SyncSender<Result<Vec<String>, String>>),
    /// Move these pending files into their tables, then compact and apply retention against this clock.
    Publish(Vec<String>, Option<Ts>, SyncSender<Result<(), String>>),
    /// After a restart: publish these pending files (and a cut-short publish), delete every other pending file;
    /// answer with how many moved.
    Recover(Vec<String>, SyncSender<Result<usize, String>>),
}

/// Files of one table open at once, at most. Rows for more hours than that (sources far behind, or log lines dated
/// at will) close the file written least recently: a small file and a sync per such hour, never memory or file
/// descriptors without end. Sources a day behind (Microsoft 365's audit content arrives up to 24 hours late) fit
/// beside the current hours.
pub(super) const MAX_OPEN_FILES: usize = 32;

/// Bytes the open files may hold in memory (their row groups in progress, all tables together): past it, the
/// largest row group in progress is written out early (a smaller row group, not a new file). Checked whenever
/// another eighth of it was written, so it may be passed by that and one batch's arrays; and a single row group
/// is written out by itself at a quarter of it.
pub(super) const MAX_OPEN_BYTES: usize = 32 << 20;

/// A file being written.
pub(super) struct OpenFile {
    w: ArrowWriter<File>,
    /// Its name relative to the table root.
    name: String,
    /// The table's epoch when rows were last written to it.
    used: u64,
    /// The writer's count of writes at the last write to it (the least recent closes first).
    last: u64,
}

pub(super) fn props(rows: usize) -> WriterProperties {
    let mut p = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(rows.max(1024)))
        .set_max_row_group_bytes(Some(MAX_OPEN_BYTES / 4));
    // values unique to nearly every row: a dictionary costs a hash per value and saves nothing
    for c in [
        "event_id",
        "provenance",
        "event_time",
        "ingest_time",
        "record",
        "decision_id",
    ] {
        p = p.set_column_dictionary_enabled(ColumnPath::from(c), false);
    }
    // min/max statistics cost a comparison per value of every column; keep them (per row group) only where a
    // query's filter can skip row groups by them: times and the subjects a trail is looked up by
    p = p.set_statistics_enabled(EnabledStatistics::None);
    for c in [
        "event_time",
        "ingest_time",
        "at",
        "principal",
        "session_id",
        "token_id",
        "job_id",
        "decision_id",
    ] {
        p = p.set_column_statistics_enabled(ColumnPath::from(c), EnabledStatistics::Chunk);
    }
    p.build()
}

/// The writer's thread.
pub(super) struct Writer {
    pub(super) dir: PathBuf,
    /// (table, hour start) → the file being written.
    pub(super) open: HashMap<(TableKind, i64), OpenFile>,
    pub(super) sealed: Vec<String>,
    pub(super) run: String,
    pub(super) seq: u64,
    pub(super) batch_rows: usize,
    pub(super) compact_after_ms: i64,
    pub(super) retention_ms: i64,
    /// With object storage: the thread that takes compacted hours there.
    pub(super) upload: Option<super::upload::Uploader>,
    pub(super) error: Option<String>,
    pub(super) stats: Arc<EvidenceStats>,
    /// Newest hour with rows per table.
    pub(super) newest: BTreeMap<TableKind, i64>,
    /// Per table, how many times its newest hour moved forward: a file not written in this epoch nor the one
    /// before is idle.
    pub(super) epoch: BTreeMap<TableKind, u64>,
    /// Bytes of arrays written since the open files' bytes were last bounded ([`MAX_OPEN_BYTES`]).
    pub(super) unbounded: usize,
    /// Writes to open files so far.
    pub(super) writes: u64,
    /// Where emptied event buffers go back to the pipeline.
    pub(super) spare: SyncSender<Box<EventRows>>,
    /// Chunks of events sent and not yet taken ([`super::Evidence`] keeps events as values while it is high).
    pub(super) in_flight: Arc<AtomicUsize>,
    /// Command rows the respond stage left; taken after every message.
    pub(super) waiting: Arc<Mutex<Vec<CommandRow>>>,
}

impl Writer {
    pub(super) fn serve(&mut self, rx: Receiver<Msg>) {
        while let Ok(m) = rx.recv() {
            match m {
                Msg::Batch(t, b) => self.write_batch(t, Ok(b)),
                Msg::Events(mut rows) => {
                    let kept = rows.messages.len() as u64;
                    let taken = rows.take_by_hour();
                    let unmade = std::mem::take(&mut rows.unmade);
                    if unmade > 0 {
                        self.stats.unmade.fetch_add(unmade, Ordering::Relaxed);
                    }
                    if taken.is_ok() && kept > 0 {
                        self.stats
                            .remade
                            .fetch_add(kept.saturating_sub(unmade), Ordering::Relaxed);
                    }
                    self.in_flight.fetch_sub(1, Ordering::Relaxed);
                    match taken {
                        Ok(parts) => {
                            for (hour, b) in parts {
                                if self.error.is_none() {
                                    if let Err(e) = self.write_part(TableKind::Events, hour, &b) {
                                        tracing::error!(error = %e, table = "events", "evidence store write failed");
                                        self.error = Some(e.to_string());
                                    }
                                }
                            }
                        }
                        Err(e) => self.write_batch(TableKind::Events, Err(e)),
                    }
                    rows.shrink_to(2 * EVENT_CHUNK_BYTES);
                    let _ = self.spare.try_send(rows);
                }
                // taken below
                Msg::Commands => {}
                Msg::CommandRows(rows) => {
                    if let Err(e) = self.commands(&rows) {
                        tracing::error!(error = %e, "evidence store: command rows not written");
                    }
                }
                Msg::Seal(reply) => {
                    let r = match self.error.take() {
                        Some(e) => Err(e),
                        None => self.seal_all().map_err(|e| e.to_string()),
                    };
                    let _ = reply.send(r.map(|()| std::mem::take(&mut self.sealed)));
                }
                Msg::Publish(names, clock, reply) => {
                    let r = self.publish(&names, clock).map_err(|e| e.to_string());
                    let _ = reply.send(r);
                }
                Msg::Recover(listed, reply) => {
                    let r = super::recover_pending(&self.dir, &listed).map_err(|e| e.to_string());
                    let _ = reply.send(r);
                }
            }
            self.take_commands();
        }
        self.take_commands();
        // the pipeline went away without sealing: what is open stays pending (a restart decides its fate)
        let _ = self.seal_all();
        if let Some(u) = self.upload.take() {
            u.stop();
        }
    }

    /// Write the command rows waiting, if any (a failure is logged: the next rows are tried again).
    fn take_commands(&mut self) {
        let rows =
            std::mem::take(&mut *self.waiting.lock().unwrap_or_else(PoisonError::into_inner));
        if !rows.is_empty() {
            if let Err(e) = self.commands(&rows) {
                tracing::error!(error = %e, "evidence store: command rows not written");
            }
        }
    }

    /// Write one batch; the first failure is kept for the next seal (and nothing more is written until then).
    fn write_batch(&mut self, t: TableKind, b: Result<RecordBatch, arrow_schema::ArrowError>) {
        if self.error.is_some() {
            return;
        }
        let r = b
            .map_err(|e| EvidenceError::Writer(e.to_string()))
            .and_then(|b| self.write(t, &b));
        if let Err(e) = r {
            tracing::error!(error = %e, table = t.name(), "evidence store write failed");
            self.error = Some(e.to_string());
        }
    }

    fn next_name(&mut self, t: TableKind, hour: i64) -> String {
        self.seq += 1;
        format!(
            "{}/{}/part-{}-{:06}.parquet",
            t.name(),
            hour_dir(Ts(hour)),
            self.run,
            self.seq
        )
    }

    fn write(&mut self, t: TableKind, b: &RecordBatch) -> Result<(), EvidenceError> {
        let times = tables::Cols::new(b);
        let col = t.time_column();
        // group the rows by hour (a batch spans one or two hours in order; late sources add a few more)
        let mut hours: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        for i in 0..b.num_rows() {
            let at = times.ts(col, i).unwrap_or_default();
            hours
                .entry(at.0.div_euclid(3_600_000) * 3_600_000)
                .or_default()
                .push(i as u32);
        }
        let single = hours.len() == 1;
        let mut parts = Vec::with_capacity(hours.len());
        for (hour, rows) in hours {
            let part = if single {
                b.clone()
            } else {
                let idx = arrow_array::UInt32Array::from(rows);
                let cols = b
                    .columns()
                    .iter()
                    .map(|c| arrow_select::take::take(c.as_ref(), &idx, None))
                    .collect::<Result<Vec<_>, _>>()?;
                RecordBatch::try_new(b.schema(), cols)?
            };
            parts.push((hour, part));
        }
        for (hour, part) in parts {
            self.write_part(t, hour, &part)?;
        }
        Ok(())
    }

    /// Append rows of one hour to that hour's open file (opening one if needed). When the table's newest hour moves
    /// forward, files more than three hours behind it that were not written since it last moved are closed: an
    /// hour that old gets few late rows. A source that is hours behind keeps writing its hour, so that file stays
    /// open (closing it at every write would cost a new file and a sync per chunk).
    fn write_part(
        &mut self,
        t: TableKind,
        hour: i64,
        part: &RecordBatch,
    ) -> Result<(), EvidenceError> {
        let newest = self.newest.entry(t).or_insert(hour);
        let epoch = self.epoch.entry(t).or_insert(0);
        let advanced = hour > *newest;
        if advanced {
            *newest = hour;
            *epoch += 1;
        }
        let (newest, epoch) = (*newest, *epoch);
        let key = (t, hour);
        if !self.open.contains_key(&key) {
            // room first: the file of this table written least recently goes, of those more than three hours behind
            // the newest if there are any (the current hours' files stay open)
            while self.open.keys().filter(|(tt, _)| *tt == t).count() >= MAX_OPEN_FILES {
                let lru = self
                    .open
                    .iter()
                    .filter(|((tt, _), _)| *tt == t)
                    .min_by_key(|((_, h), f)| (*h >= newest - 3 * 3_600_000, f.last))
                    .map(|(k, _)| *k);
                match lru {
                    Some(k) => self.seal_one(k)?,
                    None => break,
                }
            }
            let name = self.next_name(t, hour);
            let path = self.dir.join(PENDING).join(&name);
            if let Some(p) = path.parent() {
                std::fs::create_dir_all(p).map_err(io(p))?;
            }
            let f = File::create(&path).map_err(io(&path))?;
            let w = ArrowWriter::try_new(f, t.schema(), Some(props(self.batch_rows))).map_err(
                |source| EvidenceError::Parquet {
                    path: path.clone(),
                    source,
                },
            )?;
            self.open.insert(
                key,
                OpenFile {
                    w,
                    name,
                    used: epoch,
                    last: 0,
                },
            );
        }
        self.writes += 1;
        if let Some(f) = self.open.get_mut(&key) {
            f.used = epoch;
            f.last = self.writes;
            f.w.write(part).map_err(|source| EvidenceError::Parquet {
                path: PathBuf::from(f.name.as_str()),
                source,
            })?;
            self.stats
                .rows
                .fetch_add(part.num_rows() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        if advanced {
            let idle: Vec<(TableKind, i64)> = self
                .open
                .iter()
                .filter(|((tt, h), f)| {
                    *tt == t && *h < newest - 3 * 3_600_000 && f.used + 1 < epoch
                })
                .map(|(k, _)| *k)
                .collect();
            for k in idle {
                self.seal_one(k)?;
            }
        }
        // the open files' sizes are summed over every column of every file: once per eighth of the bound written
        self.unbounded += part.get_array_memory_size();
        if self.unbounded >= MAX_OPEN_BYTES / 8 {
            self.unbounded = 0;
            self.bound_open_bytes()?;
        }
        Ok(())
    }

    /// Write out the largest row groups in progress until the open files hold at most [`MAX_OPEN_BYTES`].
    fn bound_open_bytes(&mut self) -> Result<(), EvidenceError> {
        loop {
            let total: usize = self.open.values().map(|f| f.w.memory_size()).sum();
            if total <= MAX_OPEN_BYTES {
                return Ok(());
            }
            let Some(f) = self
                .open
                .values_mut()
                .filter(|f| f.w.in_progress_rows() > 0)
                .max_by_key(|f| f.w.memory_size())
            else {
                return Ok(());
            };
            f.w.flush().map_err(|source| EvidenceError::Parquet {
                path: PathBuf::from(f.name.as_str()),
                source,
            })?;
        }
    }

    fn seal_one(&mut self, key: (TableKind, i64)) -> Result<(), EvidenceError> {
        if let Some(OpenFile { w, name, .. }) = self.open.remove(&key) {
            let f = w.into_inner().map_err(|source| EvidenceError::Parquet {
                path: PathBuf::from(name.as_str()),
                source,
            })?;
            f.sync_all().map_err(io(Path::new(&name)))?;
            // the file's name too: a publish may move its whole folder, syncing only the folder above
            let folder = self.dir.join(PENDING).join(&name);
            if let Some(folder) = folder.parent() {
                File::open(folder)
                    .and_then(|f| f.sync_all())
                    .map_err(io(folder))?;
            }
            self.stats
                .files
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.sealed.push(name);
        }
        Ok(())
    }

    fn seal_all(&mut self) -> Result<(), EvidenceError> {
        let keys: Vec<_> = self.open.keys().copied().collect();
        for k in keys {
            self.seal_one(k)?;
        }
        Ok(())
    }

    fn commands(&mut self, rows: &[CommandRow]) -> Result<(), EvidenceError> {
        let b = tables::command_batch(rows)?;
        let t = TableKind::Commands;
        let before = self.sealed.len();
        self.write(t, &b)?;
        let keys: Vec<_> = self
            .open
            .keys()
            .filter(|(tt, _)| *tt == t)
            .copied()
            .collect();
        for k in keys {
            self.seal_one(k)?;
        }
        let names: Vec<String> = self.sealed.drain(before..).collect();
        self.publish(&names, None)
    }

    fn publish(&mut self, names: &[String], clock: Option<Ts>) -> Result<(), EvidenceError> {
        // all or nothing across a crash: the manifest names the files first, and the next open finishes the moves
        // (one file's move is one rename, all or nothing by itself)
        let manifest = self.dir.join(PENDING).join(MANIFEST);
        // a publish a crash cut short and no recovery has finished yet (command rows are published at once,
        // even before it): finished first, or this publish's manifest would take its place and its files be lost
        super::finish_cut_short_publish(&self.dir)?;
        let journaled = names.len() > 1;
        if journaled {
            let tmp = self.dir.join(PENDING).join(format!("{MANIFEST}.tmp"));
            std::fs::write(&tmp, serde_json::to_vec(names)?).map_err(io(&tmp))?;
            File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(io(&tmp))?;
            std::fs::rename(&tmp, &manifest).map_err(io(&manifest))?;
        }
        // the folders whose entries changed, to sync
        let mut dirs = std::collections::BTreeSet::new();
        let mut by_hour: BTreeMap<&Path, Vec<&str>> = BTreeMap::new();
        for name in names {
            let (hour, file) = match (Path::new(name).parent(), Path::new(name).file_name()) {
                (Some(h), Some(f)) => (h, f.to_str().unwrap_or_default()),
                _ => (Path::new(""), name.as_str()),
            };
            by_hour.entry(hour).or_default().push(file);
        }
        for (hour, files) in by_hour {
            let from = self.dir.join(PENDING).join(hour);
            let to = self.dir.join(hour);
            // an hour new to its table whose pending folder holds just these files moves as one folder: one
            // rename, and one sync of the table's folder for all such hours (a replay's close moves hundreds)
            // (the files' names in it were synced when they were sealed)
            let new = matches!(std::fs::symlink_metadata(&to), Err(e) if e.kind() == std::io::ErrorKind::NotFound);
            let table = to.parent().map(Path::to_path_buf);
            if new && !hour.as_os_str().is_empty() && holds_just(&from, &files) {
                if let Some(table) = table {
                    std::fs::create_dir_all(&table).map_err(io(&table))?;
                    dirs.insert(table);
                }
                std::fs::rename(&from, &to).map_err(io(&from))?;
                continue;
            }
            std::fs::create_dir_all(&to).map_err(io(&to))?;
            dirs.insert(to.clone());
            // a folder made here is an entry of the table's folder
            if let Some(table) = table.filter(|_| new) {
                dirs.insert(table);
            }
            for file in files {
                std::fs::rename(from.join(file), to.join(file)).map_err(io(&from.join(file)))?;
            }
            // the pending hour's folder goes once empty (it comes back with the hour's next file)
            let _ = std::fs::remove_dir(&from);
        }
        for d in dirs {
            File::open(&d).and_then(|f| f.sync_all()).map_err(io(&d))?;
        }
        if journaled {
            std::fs::remove_file(&manifest).map_err(io(&manifest))?;
        }
        if let Some(clock) = clock {
            self.maintain(clock)?;
        }
        Ok(())
    }

    /// Compact closed hours and delete expired ones; with object storage, hand compacted hours to the uploader.
    fn maintain(&mut self, clock: Ts) -> Result<(), EvidenceError> {
        for t in TableKind::ALL {
            for (h, path) in hour_dirs(&self.dir.join(t.name())) {
                if self.expired(h, clock) {
                    std::fs::remove_dir_all(&path).map_err(io(&path))?;
                    self.stats
                        .expired_hours
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                } else if h.0 + 3_600_000 + self.compact_after_ms <= clock.0
                    && !self.open.keys().any(|(tt, oh)| *tt == t && *oh == h.0)
                {
                    if compact(&path, t, self.batch_rows, &self.run)? {
                        self.stats
                            .compacted
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    if self.upload.is_some() {
                        self.hand_over(t, &path)?;
                    }
                }
            }
            // files waiting for an upload that has not come expire as well; the uploader deletes files only, so
            // the folders it emptied go here (the writer alone creates and removes them: no race with a move)
            for (h, path) in hour_dirs(&self.dir.join(remote::UPLOAD).join(t.name())) {
                if self.expired(h, clock) {
                    match std::fs::remove_dir_all(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io(&path)(e)),
                    }
                } else {
                    let _ = std::fs::remove_dir(&path);
                }
            }
        }
        if let Some(u) = &self.upload {
            u.nudge(Some(clock));
        }
        Ok(())
    }

    fn expired(&self, hour: Ts, clock: Ts) -> bool {
        self.retention_ms > 0 && hour.0 + 3_600_000 + self.retention_ms < clock.0
    }

    /// Move a compacted hour's files under `_upload/` for the uploader (each move is one rename, so a crash leaves
    /// every file whole in one place or the other, and readers read both).
    fn hand_over(&mut self, t: TableKind, hour: &Path) -> Result<(), EvidenceError> {
        let Some(name) = hour.file_name() else {
            return Ok(());
        };
        let to_dir = self.dir.join(remote::UPLOAD).join(t.name()).join(name);
        let mut moved = false;
        for e in std::fs::read_dir(hour).map_err(io(hour))?.flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "parquet") {
                continue;
            }
            if !moved {
                std::fs::create_dir_all(&to_dir).map_err(io(&to_dir))?;
            }
            std::fs::rename(&p, to_dir.join(e.file_name())).map_err(io(&p))?;
            moved = true;
        }
        if moved {
            File::open(&to_dir)
                .and_then(|f| f.sync_all())
                .map_err(io(&to_dir))?;
        }
        // the hour's folder goes once empty (its name comes back with any late row)
        let _ = std::fs::remove_dir(hour);
        Ok(())
    }
}

/// Whether folder `dir` holds exactly the files named (and nothing else).
fn holds_just(dir: &Path, files: &[&str]) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut found: Vec<String> = Vec::new();
    for e in entries {
        match e {
            Ok(e) => found.push(e.file_name().to_string_lossy().into_owned()),
            Err(_) => return false,
        }
    }
    found.sort_unstable();
    let mut want: Vec<&str> = files.to_vec();
    want.sort_unstable();
    want.dedup();
    found.len() == want.len() && found.iter().zip(&want).all(|(a, b)| a == b)
}
