//! The pipeline: normalize → correlate → detect → decide for one message at a time.
//!
//! In: raw message bytes with provenance and an optional pinned format. Out: [`Decision`]s (appended to a
//! caller's buffer) or the [`NormalizeError`] that sends the message to the dead-letter path. State: the
//! fingerprints of recent events (a duplicate is dropped before correlation, see [`crate::normalize::dedup`]), the
//! keyed state of correlate, every detector and decide, all owned here (one instance per partition set, no lock).
//! Respond is not called here: the caller records decisions first (Kafka, stdout) and then dispatches them.
//! Time: a [`Timeline`] judges each message's event times against a reference the events cannot choose (ingest
//! time, or in replay the stream's corroborated timeline) and is the clock the revocation budget counts in; the
//! [`Watermarks`] of the input's sources (each topic partition's records of one format) say when keyed state may
//! expire, and which events arrived late (processed all the same).

use crate::clock::WallTime;
use crate::config::{Config, ConfigError};
use crate::correlate::Correlator;
use crate::decide::{Action, Decide, Decision};
use crate::detect::{Detect, Finding};
use crate::event::{Ended, Provenance, SessionEvent, Ts};
use crate::normalize::dedup::{self, Dedup};
use crate::normalize::{Context, Normalize, NormalizeError};
use crate::timeline::{Mode, Timeline, Verdict};
use crate::watermark::{SavedWatermarks, Source, Watermarks};
use std::collections::BTreeMap;

mod keyed;
mod stored;

pub use keyed::Routed;
#[cfg(test)]
use keyed::RoutedEvent;

/// Counts kept by the pipeline.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub messages: u64,
    pub events: u64,
    pub per_format: BTreeMap<&'static str, u64>,
    pub rejected: BTreeMap<&'static str, u64>,
    pub findings: u64,
    pub decisions: BTreeMap<Action, u64>,
    /// Decisions a guardrail weakened (protected, privileged, over the revocation budget).
    pub guardrail_capped: u64,
    /// Notices that the global revocation budget ran out (Quench went alert-only).
    pub budget_notices: u64,
    /// Events older than the state horizon: counted, kept out of keyed state.
    pub too_old: u64,
    /// Messages held in replay because they were ahead of the stream's timeline (processed later or dead-lettered).
    pub held: u64,
    /// Correlation links a weaker or equal source tried to re-point.
    pub link_conflicts: u64,
    /// Events dropped as duplicates of one seen within `normalize.dedup_window_secs`.
    pub duplicates: u64,
    /// Events that arrived behind the watermark ([`crate::watermark`]): processed all the same.
    pub late: u64,
    /// Events released from the reorder hold before their time because it was full ([`crate::reorder`]).
    pub reorder_overflow: u64,
    /// Events in the reorder hold now.
    pub reorder_held: u64,
    /// The evidence store's counts (rows written, files put into object storage and their bytes, upload passes
    /// that failed), read from its writer when the stats are published ([`Pipeline::published_stats`]) and kept
    /// when it is closed.
    pub evidence_rows: u64,
    pub evidence_uploaded_files: u64,
    pub evidence_uploaded_bytes: u64,
    pub evidence_upload_failures: u64,
    /// Command rows the evidence store dropped because its writer was far behind.
    pub evidence_commands_dropped: u64,
    /// Events the evidence store's writer made differently from their messages, so did not store (never expected:
    /// normalizing is a function of the message).
    pub evidence_unmade: u64,
}

impl Stats {
    /// Add `other`'s counts to these (the keyed topology sums its partitions' pipelines).
    pub fn absorb(&mut self, other: &Stats) {
        self.messages += other.messages;
        self.events += other.events;
        for (k, v) in &other.per_format {
            *self.per_format.entry(k).or_default() += v;
        }
        for (k, v) in &other.rejected {
            *self.rejected.entry(k).or_default() += v;
        }
        self.findings += other.findings;
        for (k, v) in &other.decisions {
            *self.decisions.entry(*k).or_default() += v;
        }
        self.guardrail_capped += other.guardrail_capped;
        self.budget_notices += other.budget_notices;
        self.too_old += other.too_old;
        self.held += other.held;
        self.link_conflicts += other.link_conflicts;
        self.duplicates += other.duplicates;
        self.late += other.late;
        self.reorder_overflow += other.reorder_overflow;
        self.reorder_held += other.reorder_held;
        self.evidence_rows += other.evidence_rows;
        self.evidence_uploaded_files += other.evidence_uploaded_files;
        self.evidence_uploaded_bytes += other.evidence_uploaded_bytes;
        self.evidence_upload_failures += other.evidence_upload_failures;
        self.evidence_commands_dropped += other.evidence_commands_dropped;
        self.evidence_unmade += other.evidence_unmade;
    }
}

pub struct Pipeline {
    normalize: std::sync::Arc<Normalize>,
    correlate: Correlator,
    detect: Detect,
    decide: Decide,
    findings: Vec<Finding>,
    /// Session and token endings seen, kept only when `collect_ended` is on (for revocation confirmation).
    ended: Vec<Ended>,
    collect_ended: bool,
    timeline: Timeline,
    /// Per input source, how far event time has progressed; keyed state expires by the lowest.
    watermarks: Watermarks,
    dedup: Dedup,
    /// With `normalize.reorder_secs`: admitted events held, then correlated, detected and decided in event-time
    /// order ([`crate::reorder`]).
    reorder: crate::reorder::Reorder,
    /// With the hold on, keyed state expires by the released events' time less the allowed lateness (they come in
    /// event-time order), not by the sources' watermarks: the same released sequence then expires the same keys
    /// at the same place, whatever order the input came in.
    released_mark: Option<Ts>,
    /// The clock decide counted the last released event in (never goes back; see [`Pipeline::released`]).
    released_clock: Option<Ts>,
    /// The latest delivery time of a message read so far, when the caller knows them ([`Pipeline::delivered_at`]):
    /// the clock the reorder hold releases by while a backlog is read.
    delivered: Option<Ts>,
    lateness_ms: i64,
    skew_secs: u64,
    /// The evidence store, when one is attached ([`Pipeline::store_evidence`]).
    evidence: Option<crate::evidence::Evidence>,
    /// Pending evidence files the loaded snapshot named (see [`Pipeline::recover_evidence`]).
    evidence_listed: Vec<String>,
    pub stats: Stats,
}

impl Pipeline {
    pub fn new(cfg: &Config) -> Result<Self, ConfigError> {
        Pipeline::build(cfg, true)
    }

    /// `warn`: say when impossible_travel lacks a geo database (the pipelines that normalize).
    fn build(cfg: &Config, warn: bool) -> Result<Self, ConfigError> {
        let normalize = Normalize::new(&cfg.normalize)?;
        if let Some(hold @ 1..) = cfg.normalize.reorder_secs {
            let max_age = normalize.max_age_secs();
            let bytes = cfg
                .normalize
                .reorder_max_bytes
                .unwrap_or(crate::reorder::DEFAULT_MAX_BYTES);
            if hold > max_age {
                return Err(ConfigError::Invalid {
                    key: "normalize.reorder_secs".into(),
                    value: hold.to_string(),
                    why: format!(
                        "at most normalize.max_age_secs ({max_age}): events held longer would be too old for state"
                    ),
                });
            }
            if bytes < 1 << 20 {
                return Err(ConfigError::Invalid {
                    key: "normalize.reorder_max_bytes".into(),
                    value: bytes.to_string(),
                    why: "at least 1048576 (1 MiB) while normalize.reorder_secs is set".into(),
                });
            }
        }
        let skew_secs = cfg.normalize.max_future_skew_secs.unwrap_or(300);
        let max_age_secs = normalize.max_age_secs();
        if warn
            && !normalize.has_geo()
            && !cfg.detect.disabled.iter().any(|d| d == "impossible_travel")
        {
            tracing::warn!(
                "no geo database configured: impossible_travel uses only the locations sources report themselves \
                 (Okta, Entra ID, Salesforce); set normalize.enrich.geoip_city_db to place IP-only events"
            );
        }
        Ok(Pipeline {
            normalize: std::sync::Arc::new(normalize),
            correlate: Correlator::new(&cfg.correlate),
            detect: Detect::new(&cfg.detect)?,
            decide: Decide::new(cfg.decide.clone())?,
            findings: Vec::new(),
            ended: Vec::new(),
            collect_ended: false,
            timeline: Timeline::new(Mode::Ingest, skew_secs, max_age_secs),
            watermarks: Watermarks::new(
                cfg.normalize.allowed_lateness_secs.unwrap_or(600),
                cfg.normalize.watermark_idle_secs.unwrap_or(300),
                cfg.normalize.watermark_max_lag_secs.unwrap_or(21_600),
            ),
            dedup: Dedup::new(
                cfg.normalize
                    .dedup_window_secs
                    .unwrap_or(dedup::DEFAULT_WINDOW_SECS),
                cfg.normalize
                    .dedup_max_keys
                    .unwrap_or(dedup::DEFAULT_MAX_KEYS),
            ),
            reorder: crate::reorder::Reorder::new(
                cfg.normalize.reorder_secs.unwrap_or(0),
                cfg.normalize
                    .reorder_max_bytes
                    .unwrap_or(crate::reorder::DEFAULT_MAX_BYTES),
            ),
            released_mark: None,
            released_clock: None,
            delivered: None,
            lateness_ms: (cfg.normalize.allowed_lateness_secs.unwrap_or(600) as i64)
                .saturating_mul(1000),
            skew_secs,
            evidence: None,
            evidence_listed: Vec::new(),
            stats: Stats::default(),
        })
    }

    /// A pipeline for the keyed topology's second stage, which never normalizes: the same detectors, decide,
    /// dedup and time bounds as [`Pipeline::new`], without geo databases or mapping files loaded per partition.
    pub fn for_detect(cfg: &Config) -> Result<Self, ConfigError> {
        Pipeline::for_partition(cfg, 1)
    }

    /// [`Pipeline::for_detect`] for one of `partitions` keyed partitions: every key cap (each detector's
    /// `max_keys`, decide's `max_subjects`, dedup's `dedup_max_keys`) is the partition's share of it
    /// ([`crate::state::Bounds::share`]), so that an instance holding many partitions holds no more than about
    /// twice one pipeline's keys, not `partitions` times.
    pub fn for_partition(cfg: &Config, partitions: u32) -> Result<Self, ConfigError> {
        use crate::state::Bounds;
        let mut light = cfg.clone();
        light.normalize.enrich = Default::default();
        light.normalize.mappings_dir = None;
        light.normalize.formats = Default::default();
        light.detect.key_partitions = partitions;
        light.decide.max_subjects = Bounds::share(light.decide.max_subjects, partitions);
        light.normalize.dedup_max_keys = Some(Bounds::share(
            light
                .normalize
                .dedup_max_keys
                .unwrap_or(dedup::DEFAULT_MAX_KEYS),
            partitions,
        ));
        Pipeline::build(&light, false)
    }

    /// Judge event times against the stream's own timeline instead of the ingest time (`replay`, `eval`): messages
    /// ahead of it come back as [`NormalizeError::FromTheFuture`] with [`Pipeline::held_until`] telling when they
    /// may be retried.
    pub fn use_stream_time(&mut self) {
        self.timeline = Timeline::new(Mode::Stream, self.skew_secs, self.max_age_secs());
    }

    fn max_age_secs(&self) -> u64 {
        self.normalize.max_age_secs()
    }

    /// Whether a vouched message has set the clock yet.
    pub fn has_clock(&self) -> bool {
        self.timeline.has_clock()
    }

    /// The processing clock (see [`Timeline::now`]).
    pub fn clock(&self) -> Ts {
        self.timeline.now()
    }

    /// At the end of a replay: let a held message dated `t` be processed if it is not after the wall clock `now`
    /// (plus the skew). Returns whether it may.
    pub fn admit_at_end(&mut self, t: Ts, now: Ts) -> bool {
        if t.0 > now.0.saturating_add(self.skew_secs as i64 * 1000) {
            return false;
        }
        self.timeline.admit(t);
        true
    }

    /// Whether a message held at event time `t` now fits within the skew of the clock.
    pub fn fits(&self, t: Ts) -> bool {
        t.0 <= self
            .timeline
            .now()
            .0
            .saturating_add(self.skew_secs as i64 * 1000)
    }

    pub fn normalizer(&self) -> &Normalize {
        &self.normalize
    }

    /// Keep the session and token endings the input shows, for [`Pipeline::take_ended`] (off by default).
    pub fn collect_ended(&mut self, on: bool) {
        self.collect_ended = on;
    }

    /// The endings seen since the last call.
    pub fn take_ended(&mut self) -> std::vec::Drain<'_, Ended> {
        self.ended.drain(..)
    }

    /// Process one message; decisions are appended to `out`. Returns how many events it held.
    pub fn process(
        &mut self,
        raw: &[u8],
        pinned: Option<&str>,
        provenance: Provenance<'_>,
        ingest_time: Ts,
        out: &mut Vec<Decision>,
    ) -> Result<usize, NormalizeError> {
        self.take(raw, pinned, provenance, ingest_time, Sink::Decide(out))
    }

    /// Note that an event at `t` of `source` was admitted at processing time `clock` ([`crate::watermark`]).
    fn observe_time(&mut self, source: Source, t: Ts, clock: Ts) {
        if self.watermarks.observe(source, t, clock) {
            self.stats.late += 1;
        }
    }

    /// Recompute the watermark; when it moved, keyed state expires by it.
    fn advance_watermark(&mut self, clock: Ts) {
        if let Some(w) = self.watermarks.advance(clock) {
            if self.reorder.on() {
                // the released events expire state ([`Pipeline::release`])
                return;
            }
            self.correlate.expire(w);
            self.detect.expire(w);
            self.decide.expire(w);
        }
    }

    /// The watermark ([`crate::watermark`]), once any source has delivered.
    pub fn watermark(&self) -> Option<Ts> {
        self.watermarks.mark()
    }

    fn take(
        &mut self,
        raw: &[u8],
        pinned: Option<&str>,
        provenance: Provenance<'_>,
        ingest_time: Ts,
        mut sink: Sink<'_>,
    ) -> Result<usize, NormalizeError> {
        self.stats.messages += 1;
        let ctx = Context::new(provenance, ingest_time);
        // the record inside a log pipeline's envelope, when it had to be unescaped (the events borrow from it)
        let mut inner = crate::normalize::Envelopes::default();
        let mut events: Vec<SessionEvent<'_>> = Vec::new();
        let format =
            match self
                .normalize
                .normalize_enveloped(raw, pinned, &ctx, &mut events, &mut inner)
            {
                Ok(f) => f,
                Err(e) => {
                    *self.stats.rejected.entry(e.code()).or_default() += 1;
                    return Err(e);
                }
            };
        let newest = events
            .iter()
            .map(|e| e.event_time)
            .max()
            .unwrap_or(ingest_time);
        let vouched = events
            .iter()
            .any(|e| e.principal.vouched_by.is_some() || !e.session.vouched.is_empty());
        if let Verdict::Ahead { reference } =
            self.timeline.check(format, newest, ingest_time, vouched)
        {
            let stream = self.timeline.mode() == Mode::Stream;
            if stream {
                self.stats.held += 1;
            } else {
                *self.stats.rejected.entry("from_the_future").or_default() += 1;
            }
            return Err(NormalizeError::FromTheFuture {
                event_time: newest.to_rfc3339(),
                reference: reference.to_rfc3339(),
                reference_kind: if stream {
                    "the stream's timeline"
                } else {
                    "the ingest time"
                },
                skew_secs: self.skew_secs,
            });
        }
        let n = events.len();
        *self.stats.per_format.entry(format).or_default() += n as u64;
        self.stats.events += n as u64;
        let clock = self.timeline.now();
        let routing = matches!(sink, Sink::Route(_));
        // a topic partition's records of one format are one source; in a replay of files, a format is
        let source = match &ctx.provenance {
            Provenance::Kafka {
                topic, partition, ..
            } => Source::of((topic.as_str(), *partition, format)),
            _ => Source::of(format),
        };
        let message = crate::evidence::Message {
            raw,
            pinned,
            provenance: &ctx.provenance,
            ingest_time,
            seq: self.stats.messages,
            events: n,
        };
        for (index, ev) in events.into_iter().enumerate() {
            // the keyed topology drops duplicates in its second stage, whose state a partition's next owner restores
            if !routing && !self.dedup.first(&ev, clock) {
                self.stats.duplicates += 1;
                continue;
            }
            if self.collect_ended {
                self.ended.extend(ev.ended());
            }
            if self.timeline.too_old(ev.event_time) {
                self.stats.too_old += 1;
                continue;
            }
            self.observe_time(source, ev.event_time, clock);
            match &mut sink {
                Sink::Decide(_) if self.reorder.on() => {
                    // a SessionEvent always serializes (its fields are strings, numbers and enums)
                    if self.reorder.hold(&ev).is_err() {
                        *self.stats.rejected.entry("unholdable").or_default() += 1;
                    }
                }
                Sink::Decide(out) => {
                    let mut ev = ev;
                    let attribution = self.correlate.correlate(&mut ev);
                    if let Some(e) = &mut self.evidence {
                        e.event_of(&message, index, &attribution, &ev);
                    }
                    self.after_correlate(ev, clock, out);
                }
                Sink::Route(out) => {
                    // correlated here, where the links of every source are (the second stage does not correlate
                    // again: it holds only its partition's events)
                    let mut ev = ev;
                    // a configuration announcement for an agent's job: its copy goes to every partition, since
                    // the admin (the subject) and the agent can live in different ones. Only for a job its source
                    // names and vouches for: not a claimed one (it teaches no agent's state), nor one correlate
                    // attributes through a token (any audited action of a token an agent once used would be),
                    // and copies of forged lines would multiply by the partitions.
                    let announcement = ev.category == crate::event::Category::AdminChange
                        && ev.session.job_id.is_some()
                        && ev.vouches(crate::event::Keys::JOB);
                    self.correlate.correlate(&mut ev);
                    let key = self.correlate.subject(&ev);
                    if announcement {
                        out.push(Routed::event(key.clone(), &ev, clock, true));
                    }
                    out.push(Routed::event(key, &ev, clock, false));
                    out.extend(self.correlate.take_changes().iter().map(Routed::link));
                }
            }
        }
        self.stats.link_conflicts = self.correlate.conflicts();
        self.advance_watermark(clock);
        if let Sink::Decide(out) = sink {
            // the hold counts from delivery: while a backlog is read, the records' own delivery times, not the
            // clock of reading them (which after a restart would release what the backlog still holds before)
            // — but never more than the hold behind the clock, so records that claim old timestamps (or none)
            // while nothing else arrives cannot keep events held longer than twice the hold
            let floor = Ts(clock.0.saturating_sub(self.reorder.hold_ms()));
            let due = self.delivered.map_or(clock, |d| d.min(clock).max(floor));
            self.release(due, out);
        }
        Ok(n)
    }

    /// The next message was delivered to its topic at `at` (its Kafka timestamp, no later than the wall clock):
    /// the reorder hold releases what the latest delivery time read so far has passed by the hold, not what the
    /// processing clock has. A consumer reading a backlog (after a restart, or behind) then holds events as long
    /// as when it keeps up. The latest, never going back: a record claiming an old timestamp (whoever produces to
    /// the topic chooses it) delays nothing.
    pub fn delivered_at(&mut self, at: Option<Ts>) {
        self.delivered = self.delivered.max(at);
    }

    /// With the reorder hold ([`crate::reorder`]): process the held events the processing clock `clock` has passed
    /// by the hold, in event-time order, appending their decisions to `out`. `run` calls it while the input is idle
    /// too. Without the hold, nothing is held. Returns how many it processed.
    pub fn release(&mut self, clock: Ts, out: &mut Vec<Decision>) -> usize {
        let mut n = 0;
        while let Some((json, ended)) = self.reorder.next_due(clock) {
            self.released(&json, ended, out);
            n += 1;
        }
        self.stats.reorder_overflow = self.reorder.overflow;
        self.stats.reorder_held = self.reorder.len() as u64;
        n
    }

    /// Process every held event now, due or not (the end of a replay: nothing more will arrive).
    pub fn release_all(&mut self, out: &mut Vec<Decision>) {
        while let Some((json, ended)) = self.reorder.pop() {
            self.released(&json, ended, out);
        }
        self.stats.reorder_held = 0;
    }

    /// One held event, out of the hold at `ended` (its time plus the hold, or the clock if released early):
    /// correlated, detected and decided.
    ///
    /// Decide counts it (the revocation budget, `decided_at`) at `ended`, never before an event released earlier:
    /// a function of the released sequence, so the same sequence decides the same whenever the input let it out (a
    /// burst released at once after a restart, or at the end of a replay, is not squeezed into one budget window),
    /// and an event released late counts now, not in a past window.
    ///
    /// Keyed state expires by its time less the allowed lateness, in whole seconds (so expiry runs at most once per
    /// second of event time), but never past the earliest event still held (a claim released early for room must
    /// not expire what the held records will need) nor past the sources' watermark (which holds for an event later
    /// than the hold, as without the hold).
    fn released(&mut self, json: &serde_json::value::RawValue, ended: Ts, out: &mut Vec<Decision>) {
        // written by [`crate::reorder::Reorder::hold`] from a SessionEvent, or by a saved state of one
        let ev: SessionEvent<'_> = match serde_json::from_str(json.get()) {
            Ok(ev) => ev,
            Err(_) => {
                *self.stats.rejected.entry("unholdable").or_default() += 1;
                return;
            }
        };
        let t = ev.event_time;
        let clock = self.released_clock.map_or(ended, |c| c.max(ended));
        self.released_clock = Some(clock);
        self.after_normalize(ev, clock, out);
        let mut upto = t;
        if let Some(e) = self.reorder.earliest() {
            upto = upto.min(e);
        }
        if let Some(w) = self.watermarks.mark() {
            upto = upto.min(Ts(w.0.saturating_add(self.lateness_ms)));
        }
        let mark = Ts((upto.0.saturating_sub(self.lateness_ms)).div_euclid(1000) * 1000);
        if self.released_mark.is_none_or(|m| mark > m) {
            self.released_mark = Some(mark);
            self.correlate.expire(mark);
            self.detect.expire(mark);
            self.decide.expire(mark);
        }
    }

    /// Correlate, detect and decide one normalized event (also how `backtest` feeds stored events).
    pub fn after_normalize(
        &mut self,
        mut ev: SessionEvent<'_>,
        clock: Ts,
        out: &mut Vec<Decision>,
    ) {
        self.correlate.correlate(&mut ev);
        if let Some(e) = &mut self.evidence {
            e.event(&ev);
        }
        self.after_correlate(ev, clock, out);
    }

    /// Detect and decide one correlated event (already recorded in the evidence store).
    fn after_correlate(&mut self, ev: SessionEvent<'_>, clock: Ts, out: &mut Vec<Decision>) {
        self.detect.observe(&ev, &mut self.findings);
        for f in self.findings.drain(..) {
            self.stats.findings += 1;
            if let Some(e) = &mut self.evidence {
                e.finding(&f);
            }
            let before = out.len();
            self.decide.decide(f, clock, out);
            for d in &out[before..] {
                *self.stats.decisions.entry(d.action).or_default() += 1;
                if d.kind == crate::decide::DecisionKind::BudgetExhausted {
                    self.stats.budget_notices += 1;
                } else if d.guardrail.is_some() {
                    self.stats.guardrail_capped += 1;
                }
                if let Some(e) = &mut self.evidence {
                    e.decision(d);
                }
            }
        }
    }
}

/// Where [`Pipeline::take`] hands each admitted event.
enum Sink<'o> {
    /// Correlate, detect and decide here.
    Decide(&'o mut Vec<Decision>),
    /// Correlate, then hand the event to the keyed topic.
    Route(&'o mut Vec<Routed>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Category, Family, SourceInfo, Text};

    #[test]
    fn a_keyed_record_claiming_a_clock_in_2100_does_not_move_the_partitions_clock() {
        let mut p = Pipeline::for_detect(&Config::default()).unwrap();
        let src = SourceInfo {
            family: Family::Idp,
            vendor: "okta".into(),
            format: "okta".into(),
        };
        let year_2100 = Ts(4_102_444_800_000);
        let mut ev = SessionEvent::new(src, Text::from("forged"), year_2100, Category::Login);
        ev.principal.id = Some("00uceo".into());
        ev.vouch_all();
        let body = serde_json::to_vec(&RoutedEvent {
            clock: year_2100,
            event: ev,
            announce: false,
        })
        .unwrap();
        let mut out = Vec::new();
        let e = p.process_routed(&body, &mut out).unwrap_err();
        assert_eq!(e.code(), "from_the_future");
        assert!(
            !p.has_clock(),
            "the clock moved to {}",
            p.clock().to_rfc3339()
        );
        assert!(p.clock().0 < year_2100.0);
    }

    /// Keyed state expires by the watermark: a source delivering 90 min behind the others still finds the links
    /// its events' time would have found. Swept by the fastest source's event time (as before watermarks), alice's
    /// session link (a 1 h TTL here) was gone when her session's records from the slow source arrived, and they
    /// were attributed to nobody.
    #[test]
    fn a_late_sources_events_find_the_links_their_event_time_would_have_found() {
        const T0: i64 = 1_793_606_400_000;
        const MIN: i64 = 60_000;
        let line = |id: String, t: i64, who: Option<&str>, session: &str| {
            let who = who.map_or(String::new(), |w| {
                format!(r#""principal":{{"id":"{w}","email":"{w}","kind":"human"}},"#)
            });
            format!(
                r#"{{"event_id":"{id}","event_time":"{t}","ingest_time":"{t}","source":{{"family":"idp","vendor":"acme","format":"native"}},"category":"data_read","action":"read","outcome":"success",{who}"session":{{"session_id":"{session}"}}}}"#,
                t = Ts(t).to_rfc3339()
            )
        };
        let cfg = Config::from_str(
            "[normalize.formats.native]\nvendor = \"acme\"\nvouched = true\n[correlate]\nttl_secs = 3600\n",
            "q.toml",
        )
        .unwrap();
        let kafka = |topic: &'static str| Provenance::Kafka {
            topic: topic.into(),
            partition: 0,
            offset: 0,
        };
        let mut p = Pipeline::new(&cfg).unwrap();
        let mut out = Vec::new();
        let mut feed = |p: &mut Pipeline, topic, l: String, ingest: i64| {
            out.clear();
            p.route(l.as_bytes(), None, kafka(topic), Ts(ingest), &mut out)
                .unwrap();
            out.iter().find(|r| !r.link).map(|r| r.key.clone())
        };
        // the fast source signs alice in, then others every 4 min; the slow one delivers 90 min behind
        feed(
            &mut p,
            "idp",
            line("a0".into(), T0, Some("alice@example.com"), "S-alice"),
            T0,
        );
        for m in (4..=100).step_by(4) {
            let ingest = T0 + m * MIN;
            let who = format!("user{m}@example.com");
            feed(
                &mut p,
                "idp",
                line(format!("a{m}"), ingest, Some(&who), &format!("S{m}")),
                ingest,
            );
            feed(
                &mut p,
                "saas",
                line(
                    format!("b{m}"),
                    ingest - 90 * MIN,
                    Some("bob@example.com"),
                    "S-bob",
                ),
                ingest,
            );
        }
        // the slow source holds the watermark at its own progress (T0 + 10 min) less the allowed lateness
        assert_eq!(p.watermark(), Some(Ts(T0)));
        // alice's session, 10 min after her sign-in, from the slow source: no principal of its own
        let key = feed(
            &mut p,
            "saas",
            line("b-alice".into(), T0 + 10 * MIN, None, "S-alice"),
            T0 + 101 * MIN,
        );
        assert_eq!(key.as_deref(), Some("alice@example.com"));
        assert_eq!(
            p.stats.late, 0,
            "90 min behind, but in step with its own source"
        );
    }

    /// The reorder hold's tests: 2026-11-02T08:00:00Z.
    const T0: i64 = 1_793_606_400_000;

    /// A config with the reorder hold and a vouched native format.
    fn hold_config(hold_secs: u64) -> Config {
        let text = format!(
            "[normalize]\nreorder_secs = {hold_secs}\n[normalize.formats.native]\nvendor = \"acme\"\nvouched = true\n"
        );
        Config::from_str(&text, "q.toml").unwrap()
    }

    /// A native sign-in of `who` at `t` (with the session `S-{who}` when `session`).
    fn native_sign_in(id: &str, t: i64, who: &str, session: bool) -> String {
        let session = if session {
            format!(r#","session":{{"session_id":"S-{who}"}}"#)
        } else {
            String::new()
        };
        format!(
            r#"{{"event_id":"{id}","event_time":"{t}","ingest_time":"{t}","source":{{"family":"idp","vendor":"acme","format":"native"}},"category":"login","action":"signin","outcome":"success","principal":{{"id":"{who}","email":"{who}","kind":"human"}}{session}}}"#,
            t = Ts(t).to_rfc3339()
        )
    }

    fn idp() -> Provenance<'static> {
        Provenance::Kafka {
            topic: "idp".into(),
            partition: 0,
            offset: 0,
        }
    }

    /// The reorder hold's events are state: saved with it, processed by the pipeline that loads it once the clock
    /// has passed them by the hold, and not before.
    #[test]
    fn events_held_for_reordering_survive_a_restart_and_are_processed_when_due() {
        const MIN: i64 = 60_000;
        let cfg = hold_config(3600);
        let line = |id: &str, t: i64, who: &str| native_sign_in(id, t, who, true);
        let prov = idp;
        // who correlate says session `S-{who}` belongs to: known only once the sign-in was processed
        let owner = |p: &mut Pipeline, who: &str| {
            let mut probe =
                crate::detect::testutil::at(0, "probe", Family::Saas, Category::DataRead);
            probe.event_time = Ts(T0 + MIN);
            probe.session.session_id = Some(format!("S-{who}").into());
            probe.session.vouched = crate::event::Keys::SESSION;
            p.correlate.correlate(&mut probe);
            probe.principal.id.map(|t| t.to_string())
        };
        let mut out = Vec::new();
        let mut p = Pipeline::new(&cfg).unwrap();
        p.process(
            line("a", T0, "alice@example.com").as_bytes(),
            None,
            prov(),
            Ts(T0),
            &mut out,
        )
        .unwrap();
        assert_eq!(p.stats.reorder_held, 1);
        assert_eq!(
            owner(&mut p, "alice@example.com"),
            None,
            "held, not processed"
        );
        let saved = p.save_state().unwrap();
        let mut q = Pipeline::new(&cfg).unwrap();
        q.load_state(&saved).unwrap();
        assert_eq!(q.stats.reorder_held, 1);
        q.release(Ts(T0 + 59 * MIN), &mut out);
        assert_eq!(owner(&mut q, "alice@example.com"), None, "not yet due");
        let bob = line("b", T0 + 61 * MIN, "bob@example.com");
        q.process(bob.as_bytes(), None, prov(), Ts(T0 + 61 * MIN), &mut out)
            .unwrap();
        assert_eq!(
            owner(&mut q, "alice@example.com").as_deref(),
            Some("alice@example.com"),
            "due an hour after its time, processed by the pipeline that loaded it"
        );
        assert_eq!(q.stats.reorder_held, 1, "bob's sign-in waits its hour");
        q.release_all(&mut out);
        assert_eq!(
            owner(&mut q, "bob@example.com").as_deref(),
            Some("bob@example.com")
        );
        assert_eq!(q.stats.reorder_held, 0);
    }

    /// Found by an outside review: the hold counted from reading, so after an hour down, the first record of the
    /// backlog released every event held for more than the hold before the backlog's earlier records were read.
    #[test]
    fn reading_a_backlog_the_hold_counts_from_each_records_delivery() {
        const MIN: i64 = 60_000;
        let cfg = hold_config(3600);
        let line = |id: &str, t: i64| native_sign_in(id, t, &format!("{id}@example.com"), false);
        let prov = idp;
        let at = |p: &mut Pipeline, id: &str, t: i64, read: i64| {
            p.process(
                line(id, T0 + t * MIN).as_bytes(),
                None,
                prov(),
                Ts(T0 + read * MIN),
                &mut Vec::new(),
            )
            .unwrap();
            p.stats.reorder_held
        };
        let mut p = Pipeline::new(&cfg).unwrap();
        p.delivered_at(Some(Ts(T0)));
        at(&mut p, "a", 0, 0);
        // read two hours later, delivered half an hour after the first: the first is not due yet
        p.delivered_at(Some(Ts(T0 + 30 * MIN)));
        assert_eq!(
            at(&mut p, "b", 30, 120),
            2,
            "the backlog's own time holds them"
        );
        p.delivered_at(Some(Ts(T0 + 61 * MIN)));
        assert_eq!(
            at(&mut p, "c", 61, 121),
            2,
            "the first is out, an hour after its delivery"
        );
        // a record claiming an old timestamp (its producer chose it) holds nothing back, nor lets anything out
        p.delivered_at(Some(Ts(1)));
        assert_eq!(
            at(&mut p, "d", 62, 122),
            3,
            "the latest delivery time read still counts"
        );
        p.delivered_at(Some(Ts(T0 + 91 * MIN)));
        assert_eq!(at(&mut p, "e", 91, 123), 3, "b is out; c, d and e wait");
        // without delivery times (a replay of files) the processing clock counts
        let mut q = Pipeline::new(&cfg).unwrap();
        assert_eq!(at(&mut q, "a", 0, 0), 1);
        assert_eq!(at(&mut q, "b", 30, 80), 1, "the clock of reading let a out");
    }

    #[test]
    fn a_reorder_hold_past_the_state_horizon_or_without_room_is_refused_naming_the_key() {
        for (text, key, value) in [
            (
                "[normalize]\nreorder_secs = 90000\nmax_age_secs = 86400\n",
                "normalize.reorder_secs",
                "90000",
            ),
            (
                "[normalize]\nreorder_secs = 3600\nreorder_max_bytes = 0\n",
                "normalize.reorder_max_bytes",
                "0",
            ),
        ] {
            let cfg = Config::from_str(text, "q.toml").unwrap();
            let e = Pipeline::new(&cfg).err().unwrap().to_string();
            assert!(e.contains(key) && e.contains(value), "{e}");
        }
        let off = Config::from_str("[normalize]\nreorder_max_bytes = 0\n", "q.toml").unwrap();
        assert!(Pipeline::new(&off).is_ok(), "no hold, nothing to bound");
    }

    /// Found in the audit of the keyed topology: every partition's pipeline had the full key caps, so an instance
    /// that held all of 8 partitions could hold 8 times the keys of one pipeline.
    #[test]
    fn a_keyed_partitions_pipeline_holds_its_share_of_the_key_caps() {
        let dir = std::env::temp_dir().join(format!("quench-key-share-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("rate.toml"), "max_keys = 16384\n").unwrap();
        let mut cfg = Config::default();
        cfg.detect.dir = Some(dir.clone());
        let rate_keys = |partitions: u32| {
            let mut p = Pipeline::for_partition(&cfg, partitions).unwrap();
            let mut out = Vec::new();
            for i in 0..5_000 {
                let mut e = crate::detect::testutil::at(
                    i,
                    &format!("e{i}"),
                    Family::Gateway,
                    Category::DataRead,
                );
                e.session.token_id = Some(format!("tok-{i}").into());
                e.session.vouched = crate::event::Keys::TOKEN;
                p.after_normalize(e, Ts(0), &mut out);
            }
            let saved: serde_json::Value =
                serde_json::from_str(p.save_state().unwrap().get()).unwrap();
            fn entries(v: &serde_json::Value) -> usize {
                match v {
                    serde_json::Value::Object(m) => m
                        .iter()
                        .map(|(k, x)| match (k.as_str(), x) {
                            ("entries", serde_json::Value::Array(a)) => a.len(),
                            _ => entries(x),
                        })
                        .sum(),
                    serde_json::Value::Array(a) => a.iter().map(entries).sum(),
                    _ => 0,
                }
            }
            entries(&saved["detect"]["rate"])
        };
        assert_eq!(rate_keys(1), 5_000, "one pipeline: the full cap");
        let share = rate_keys(8);
        assert!(
            share > 0 && share <= 16_384 * 2 / 8,
            "one of 8 partitions holds twice its even share at most: {share}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_routed_event_reads_back_as_the_event_routed() {
        let src = SourceInfo {
            family: Family::Gateway,
            vendor: "kong".into(),
            format: "kong".into(),
        };
        let mut ev = SessionEvent::new(src, Text::from("e1"), Ts(1_000), Category::DataRead);
        ev.session.token_id = Some("T".into());
        ev.vouch_all();
        let r = Routed::event("T".into(), &ev, Ts(2_000), false);
        let back: RoutedEvent<'_> = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(back.event, ev);
        assert_eq!(back.clock, Ts(2_000));
        assert_eq!(r.key, "T");
    }

    /// Found by a review of the keyed topology: a configuration announcement (an `admin_change` naming an agent's
    /// job and its new destination) is routed by the admin who made it, while the job's state lives in the
    /// agent's partition. The agent's first upload to the announced destination was then flagged (0.7, a
    /// quarantine) in the keyed topology though one pipeline knew it. Every partition gets a copy to learn from.
    #[test]
    fn an_announcement_reaches_the_agents_partition_when_the_admin_lives_in_another() {
        const T0: i64 = 1_793_606_400_000;
        let iso = |ms: i64| Ts(ms).to_rfc3339();
        let span = |i: i64, dest: &str| {
            format!(
                r#"{{"traceId":"j{i}","spanId":"k{i}","name":"execute_tool upload","startTimeUnixNano":"{}000000","attributes":[{{"key":"gen_ai.operation.name","value":{{"stringValue":"execute_tool"}}}},{{"key":"gen_ai.agent.id","value":{{"stringValue":"agent-sync"}}}},{{"key":"gen_ai.conversation.id","value":{{"stringValue":"job-sync-1"}}}},{{"key":"quench.token.id","value":{{"stringValue":"tok-sync"}}}},{{"key":"gen_ai.tool.name","value":{{"stringValue":"upload_rows"}}}},{{"key":"quench.destination","value":{{"stringValue":"{dest}"}}}}]}}"#,
                T0 + i * 120_000
            )
        };
        let mut lines: Vec<String> = (0..20).map(|i| span(i, "s3://corp-sync-out")).collect();
        lines.push(format!(
            r#"{{"event_id":"cfg-1","event_time":"{t}","ingest_time":"{t}","source":{{"family":"agent","vendor":"agent-platform","format":"native"}},"category":"admin_change","action":"agent.config.update","outcome":"success","principal":{{"id":"platform-admin@example.com","kind":"human"}},"session":{{"job_id":"job-sync-1"}},"resource":{{"destination":"s3://new-partner"}}}}"#,
            t = iso(T0 + 21 * 120_000)
        ));
        lines.extend((22..25).map(|i| span(i, "s3://new-partner")));
        let cfg = Config::from_str(
            "[normalize.formats.native]\nvendor = \"agent-platform\"\nvouched = true\n",
            "q.toml",
        )
        .unwrap();
        let route = |p: &mut Pipeline, line: &str, out: &mut Vec<Routed>| {
            p.route(
                line.as_bytes(),
                None,
                Provenance::None,
                Ts(T0 + 86_400_000),
                out,
            )
            .unwrap();
        };
        let mut router = Pipeline::new(&cfg).unwrap();
        let mut routed = Vec::new();
        for l in &lines {
            route(&mut router, l, &mut routed);
        }
        routed.retain(|r| !r.link);
        assert!(
            routed
                .iter()
                .any(|r| !r.announce && r.key.contains("platform-admin")),
            "the announcement itself is routed by its admin"
        );
        // the admin's partition is 0, the agent's 1
        let decide = |copies: bool| {
            let mut parts = [
                Pipeline::for_detect(&cfg).unwrap(),
                Pipeline::for_detect(&cfg).unwrap(),
            ];
            let mut out = Vec::new();
            for r in &routed {
                if r.announce {
                    if copies {
                        for p in &mut parts {
                            p.process_routed(&r.body, &mut out).unwrap();
                        }
                    }
                    continue;
                }
                let p = usize::from(!r.key.contains("platform-admin"));
                parts[p].process_routed(&r.body, &mut out).unwrap();
            }
            out.iter()
                .any(|d| d.findings.iter().any(|f| f.detector == "destination_drift"))
        };
        assert!(
            decide(false),
            "without the copies the agent's partition never hears of it"
        );
        assert!(
            !decide(true),
            "with them the announced destination is known"
        );
        // the same announcement from a source not trusted for the job is a claim: no copies
        let mut router = Pipeline::new(&Config::default()).unwrap();
        let mut copies = Vec::new();
        route(&mut router, &lines[20], &mut copies);
        assert!(!copies.is_empty(), "routed");
        assert!(
            copies.iter().all(|r| !r.announce),
            "a forged line is not multiplied by the partitions"
        );
        // an audited change naming only a token the agent used: correlate attributes the job, but the source
        // announced nothing for it
        let mut router = Pipeline::new(&cfg).unwrap();
        let mut out = Vec::new();
        route(&mut router, &lines[0], &mut out);
        let by_token = lines[20].replace(
            r#""session":{"job_id":"job-sync-1"}"#,
            r#""session":{"token_id":"tok-sync"}"#,
        );
        assert_ne!(by_token, lines[20]);
        out.clear();
        route(&mut router, &by_token, &mut out);
        assert!(
            out.iter()
                .any(|r| String::from_utf8_lossy(&r.body).contains(r#""job_id":"job-sync-1""#)),
            "correlate attributed the job through the token"
        );
        assert!(
            out.iter().all(|r| !r.announce),
            "a job attributed through a token is not announced to every partition"
        );
    }
}
