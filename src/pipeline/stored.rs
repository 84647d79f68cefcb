//! What the pipeline keeps beyond one message: its counts as published, the evidence store it writes, and its
//! saved state (every stage's keyed state, the timeline, the watermarks, the reorder hold and the evidence store's
//! pending files), restored after a restart.
//!
//! In: the store to attach, a snapshot to restore. Out: counts, the store's checkpoints, a snapshot. State: none
//! beyond the [`Pipeline`]'s.

use super::*;

impl Pipeline {
    /// The counts to publish: [`Pipeline::stats`] with the evidence store's read from its writer.
    /// After [`Pipeline::close_evidence`], the closed store's final counts.
    pub fn published_stats(&self) -> Stats {
        let mut s = self.stats.clone();
        if let Some(e) = &self.evidence {
            read_evidence_stats(&mut s, &e.stats);
        }
        s
    }

    /// Keep every correlated event, finding and decision in this store from now on.
    pub fn store_evidence(&mut self, mut e: crate::evidence::Evidence) {
        e.normalize_with(Some(self.normalize.clone()));
        self.evidence = Some(e);
    }

    /// The attached evidence store.
    pub fn evidence(&mut self) -> Option<&mut crate::evidence::Evidence> {
        self.evidence.as_mut()
    }

    /// Detach the evidence store (to close it).
    pub fn take_evidence(&mut self) -> Option<crate::evidence::Evidence> {
        self.evidence.take()
    }

    /// The clock the evidence store's compaction and retention run on: none until a vouched message set it.
    pub(super) fn evidence_clock(&self) -> Option<Ts> {
        self.has_clock().then(|| self.clock())
    }

    /// Move the sealed evidence files into the store (then compact and expire against the pipeline's clock).
    pub fn publish_evidence(&mut self) -> Result<(), crate::evidence::EvidenceError> {
        let clock = self.evidence_clock();
        match &mut self.evidence {
            Some(e) => e.publish(clock),
            None => Ok(()),
        }
    }

    /// Seal and publish what the evidence store holds.
    pub fn flush_evidence(&mut self) -> Result<(), crate::evidence::EvidenceError> {
        let clock = self.evidence_clock();
        match &mut self.evidence {
            Some(e) => e.flush(clock),
            None => Ok(()),
        }
    }

    /// Detach the evidence store and close it (sealing and publishing what it holds).
    /// The writer has finished then, so its counts are final: they stay in the pipeline's own [`Stats`].
    pub fn close_evidence(&mut self) -> Result<(), crate::evidence::EvidenceError> {
        let clock = self.evidence_clock();
        match self.evidence.take() {
            Some(e) => {
                let stats = e.stats.clone();
                let r = e.close(clock);
                read_evidence_stats(&mut self.stats, &stats);
                r
            }
            None => Ok(()),
        }
    }

    /// After [`Pipeline::load_state`] (or without a snapshot): publish the evidence files the snapshot named as
    /// sealed and drop the other pending ones. Returns how many it published.
    pub fn recover_evidence(&mut self) -> Result<usize, crate::evidence::EvidenceError> {
        let listed = std::mem::take(&mut self.evidence_listed);
        match &mut self.evidence {
            Some(e) => e.recover(&listed),
            None => Ok(0),
        }
    }

    /// Everything the pipeline has learned, as JSON: correlation links, every detector's state, decide's scores,
    /// dedup and budget, event fingerprints, the clock and the watermarks. [`Pipeline::load_state`] takes it back (see
    /// [`crate::durable`] for the file it goes into).
    pub fn save_state(&self) -> Result<crate::detect::Saved, serde_json::Error> {
        #[derive(serde::Serialize)]
        struct State<'a> {
            clock: (Option<Ts>, Ts),
            watermarks: SavedWatermarks,
            dedup: crate::detect::Saved,
            correlate: crate::detect::Saved,
            detect: BTreeMap<&'a str, crate::detect::Saved>,
            decide: crate::detect::Saved,
            /// Events held for reordering (their input offsets are behind the saved ones).
            #[serde(skip_serializing_if = "Option::is_none")]
            reorder: Option<crate::reorder::HeldRef<'a>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            released_mark: Option<Ts>,
            #[serde(skip_serializing_if = "Option::is_none")]
            released_clock: Option<Ts>,
            /// Sealed evidence files this state accounts for (published after the save).
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            evidence_pending: &'a [String],
        }
        serde_json::value::to_raw_value(&State {
            evidence_pending: self.evidence.as_ref().map(|e| e.pending()).unwrap_or(&[]),
            clock: self.timeline.save(),
            watermarks: self.watermarks.save(),
            dedup: self.dedup.save()?,
            correlate: self.correlate.save()?,
            detect: self.detect.save()?,
            decide: self.decide.save()?,
            reorder: (!self.reorder.is_empty()).then(|| self.reorder.save()),
            released_mark: self.released_mark,
            released_clock: self.released_clock,
        })
    }

    /// Take back what [`Pipeline::save_state`] wrote; the current config's bounds apply.
    pub fn load_state(&mut self, saved: &serde_json::value::RawValue) -> Result<(), String> {
        #[derive(serde::Deserialize)]
        struct State {
            clock: (Option<Ts>, Ts),
            /// Saved before watermarks were kept: they start afresh.
            #[serde(default)]
            watermarks: SavedWatermarks,
            dedup: crate::detect::Saved,
            correlate: crate::detect::Saved,
            detect: BTreeMap<String, crate::detect::Saved>,
            decide: crate::detect::Saved,
            #[serde(default)]
            reorder: Option<crate::reorder::SavedReorder>,
            #[serde(default)]
            released_mark: Option<Ts>,
            #[serde(default)]
            released_clock: Option<Ts>,
            #[serde(default)]
            evidence_pending: Vec<String>,
        }
        let s: State = crate::detect::load(saved)?;
        self.evidence_listed = s.evidence_pending;
        self.timeline.resume(s.clock);
        self.watermarks.resume(s.watermarks);
        self.dedup
            .load(&s.dedup)
            .map_err(|e| format!("dedup: {e}"))?;
        self.correlate
            .load(&s.correlate)
            .map_err(|e| format!("correlate: {e}"))?;
        self.detect.load(&s.detect)?;
        self.decide
            .load(&s.decide)
            .map_err(|e| format!("decide: {e}"))?;
        if let Some(r) = s.reorder {
            // saved with the hold on and loaded with it off: the held events are processed at the next message
            self.reorder.resume(r);
        }
        self.released_mark = self.released_mark.max(s.released_mark);
        self.released_clock = self.released_clock.max(s.released_clock);
        self.stats.reorder_held = self.reorder.len() as u64;
        Ok(())
    }
}

/// The evidence store's counts, as its writer has them now, into `s`.
fn read_evidence_stats(s: &mut Stats, e: &crate::evidence::EvidenceStats) {
    let n = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    s.evidence_rows = n(&e.rows);
    s.evidence_uploaded_files = n(&e.uploaded_files);
    s.evidence_uploaded_bytes = n(&e.uploaded_bytes);
    s.evidence_upload_failures = n(&e.upload_failures);
    s.evidence_commands_dropped = n(&e.commands_dropped);
    s.evidence_unmade = n(&e.unmade);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::{read, tables::TableKind, Evidence};

    /// The broker benchmark took the store's counts before closing it, and a replay's report after: the rows still
    /// on the pipeline's side (less than a chunk) were missing from the one, and every count from the other.
    #[test]
    fn the_stores_counts_after_it_is_closed_include_every_row_it_wrote() {
        const T0: i64 = 1_793_606_400_000;
        let dir = std::env::temp_dir().join(format!("quench-stored-{:x}", fastrand::u64(..)));
        let cfg = Config::from_str(
            "[normalize.formats.native]\nvendor = \"acme\"\nvouched = true\n",
            "q.toml",
        )
        .unwrap();
        let mut p = Pipeline::new(&cfg).unwrap();
        p.use_stream_time();
        p.store_evidence(Evidence::open(&cfg.evidence, &dir).unwrap());
        let mut out = Vec::new();
        for i in 0..10_i64 {
            let t = Ts(T0 + i * 1_000).to_rfc3339();
            let l = format!(
                r#"{{"event_id":"e{i}","event_time":"{t}","ingest_time":"{t}","source":{{"family":"idp","vendor":"acme","format":"native"}},"category":"data_read","action":"read","outcome":"success","principal":{{"id":"alice","email":"alice@example.com","kind":"human"}},"session":{{"session_id":"s1"}}}}"#
            );
            let prov = crate::event::Provenance::File {
                path: "t.jsonl".into(),
                line: i as u64 + 1,
            };
            p.process(l.as_bytes(), None, prov, Ts(T0 + i * 1_000), &mut out)
                .unwrap();
        }
        p.release_all(&mut out);
        assert_eq!(p.stats.events, 10);
        // ten rows are less than a chunk: none has reached the writer yet
        assert_eq!(p.published_stats().evidence_rows, 0);
        p.close_evidence().unwrap();
        let s = p.published_stats();
        let rows = |t| -> u64 {
            read::table(&dir, t, None)
                .unwrap()
                .iter()
                .map(|b| b.num_rows() as u64)
                .sum()
        };
        let stored =
            rows(TableKind::Events) + rows(TableKind::Findings) + rows(TableKind::Decisions);
        assert_eq!(rows(TableKind::Events), 10);
        assert_eq!(s.evidence_rows, stored);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
