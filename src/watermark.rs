//! Watermarks: how far the event time of each input source has progressed, and the event time below which keyed
//! state may be forgotten.
//!
//! In: each admitted event's time, the input it came from (a [`Source`]: its Kafka topic, partition and format,
//! or in a replay of files its format, each format standing for the topic its source would have), and the
//! processing clock when it arrived ([`crate::timeline`]: ingest time in `run`, the stream's own time in a replay).
//! Out: the watermark, the lowest over the sources that are not idle of their newest event time minus
//! `normalize.allowed_lateness_secs`, never going back; and whether an event was late (older than the watermark
//! when it arrived). State: per source, its newest event time and the processing clock when it last delivered; at
//! most [`MAX_SOURCES`] sources (the one heard from least recently is forgotten first), found by an index; the
//! watermark.
//!
//! What it is for: keyed state expires by the watermark ([`crate::state::KeyedState::expire`]) rather than by the
//! newest event of whichever source is fastest, so a source that delivers 90 min behind the others (the M365 audit
//! log) still finds the state that its events' place in event time would have found. Late events are processed
//! like any other and can raise or escalate decisions ([`crate::decide`] scores findings by event time, wherever
//! they arrive); they are counted (`quench_late_events_total`), never dropped for being late.
//!
//! A source that has delivered nothing for `normalize.watermark_idle_secs` of processing time no longer holds the
//! watermark back (a topic that went quiet, a source switched off; a source that delivers in batches further apart
//! than that holds it only while a batch comes in), nor one whose newest event is more than
//! `normalize.watermark_max_lag_secs` behind the processing clock (a source that keeps sending old records, a
//! compromised agent among them, would otherwise keep every key past its TTL); the watermark starts
//! `watermark_idle_secs` after the first event, once every source delivering has said how far it is.
//!
//! Event times are attacker-influenced, but an admitted event is never more than `normalize.max_future_skew_secs` ahead of the processing clock, so no source's
//! newest time, and no watermark, can be pushed further ahead than that; and one source cannot push the watermark
//! past the others, which hold it at their own progress.

use crate::event::Ts;
use serde::{Deserialize, Serialize};
use std::hash::{BuildHasher, Hash};

/// Sources tracked at most (topic partitions times formats).
pub const MAX_SOURCES: usize = 4096;

/// An input source, as a digest of what names it (topic, partition and format; or format alone).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Source(u64);

impl Source {
    /// The source named by `parts` (for instance topic, partition and format).
    pub fn of(parts: impl Hash) -> Source {
        // a fixed hasher: a source keeps its identity across restarts (its state is saved)
        Source(foldhash::fast::FixedState::with_seed(0x5157_4d41_524b).hash_one(parts))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Part {
    source: Source,
    /// Newest event time seen from the source.
    newest: Ts,
    /// Processing clock when the source last delivered.
    heard: Ts,
}

/// The watermarks of a pipeline's inputs.
#[derive(Clone, Debug)]
pub struct Watermarks {
    parts: Vec<Part>,
    /// Where each source is in `parts` (kept in step with it), so an event finds its source in O(1).
    index: hashbrown::HashMap<Source, usize, foldhash::fast::FixedState>,
    lateness_ms: i64,
    idle_ms: i64,
    max_lag_ms: i64,
    /// The watermark so far (it never goes back).
    mark: Option<Ts>,
    /// Processing clock of the first event seen: the watermark starts `idle_ms` later, once every source that is
    /// delivering has had the time to say how far it is (else the first source seen would set it, and a slower
    /// one's records would all count as late).
    started: Option<Ts>,
}

/// What [`Watermarks::save`] writes.
#[derive(Serialize, Deserialize, Default)]
pub struct SavedWatermarks {
    parts: Vec<Part>,
    mark: Option<Ts>,
}

impl Watermarks {
    /// `max_lag_secs`: a source further behind the processing clock than this stops holding the watermark back.
    pub fn new(allowed_lateness_secs: u64, idle_secs: u64, max_lag_secs: u64) -> Self {
        Watermarks {
            parts: Vec::new(),
            index: Default::default(),
            lateness_ms: (allowed_lateness_secs as i64).saturating_mul(1000),
            idle_ms: (idle_secs as i64).saturating_mul(1000),
            max_lag_ms: (max_lag_secs as i64).saturating_mul(1000),
            mark: None,
            started: None,
        }
    }

    /// The watermark: event times below it are taken to have arrived from every source that is not idle.
    pub fn mark(&self) -> Option<Ts> {
        self.mark
    }

    /// An event at `t` from `source`, admitted when the processing clock read `clock`. Whether it was late (older
    /// than the watermark).
    pub fn observe(&mut self, source: Source, t: Ts, clock: Ts) -> bool {
        let late = self.mark.is_some_and(|m| t < m);
        self.started.get_or_insert(clock);
        match self.index.get(&source).and_then(|&i| self.parts.get_mut(i)) {
            Some(p) => {
                p.newest = p.newest.max(t);
                p.heard = p.heard.max(clock);
            }
            None => {
                if self.parts.len() >= MAX_SOURCES {
                    // a scan, but only when a new source arrives with the table full
                    if let Some(stalest) =
                        (0..self.parts.len()).min_by_key(|&i| self.parts[i].heard)
                    {
                        let gone = self.parts.swap_remove(stalest);
                        self.index.remove(&gone.source);
                        if let Some(moved) = self.parts.get(stalest) {
                            self.index.insert(moved.source, stalest);
                        }
                    }
                }
                self.index.insert(source, self.parts.len());
                self.parts.push(Part {
                    source,
                    newest: t,
                    heard: clock,
                });
            }
        }
        late
    }

    /// Recompute the watermark at processing time `clock`; returns it when it moved.
    pub fn advance(&mut self, clock: Ts) -> Option<Ts> {
        if self.mark.is_none()
            && self
                .started
                .is_none_or(|s| clock.0.saturating_sub(s.0) < self.idle_ms)
        {
            return None;
        }
        // delivering, and not so far behind that holding the watermark for it would keep all state past its TTL
        let busy = |p: &&Part| {
            clock.0.saturating_sub(p.heard.0) <= self.idle_ms
                && clock.0.saturating_sub(p.newest.0) <= self.max_lag_ms
        };
        let lowest = self
            .parts
            .iter()
            .filter(busy)
            .map(|p| p.newest)
            .min()
            // every source idle: nothing is on its way
            .or_else(|| self.parts.iter().map(|p| p.newest).max())?;
        let m = Ts(lowest.0.saturating_sub(self.lateness_ms));
        if self.mark.is_some_and(|old| old >= m) {
            return None;
        }
        self.mark = Some(m);
        self.mark
    }

    pub fn save(&self) -> SavedWatermarks {
        SavedWatermarks {
            parts: self.parts.clone(),
            mark: self.mark,
        }
    }

    /// Resume from what [`Watermarks::save`] wrote (the watermark never goes back).
    pub fn resume(&mut self, saved: SavedWatermarks) {
        for p in saved.parts.into_iter().take(MAX_SOURCES) {
            self.observe(p.source, p.newest, p.heard);
        }
        self.mark = self.mark.max(saved.mark);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn the_watermark_follows_the_slowest_source_that_is_not_idle() {
        let mut w = Watermarks::new(300, 600, 21_600);
        let (okta, m365) = (Source::of("okta"), Source::of("m365_audit"));
        w.observe(okta, Ts(100 * MIN), Ts(100 * MIN));
        assert_eq!(
            w.advance(Ts(100 * MIN)),
            None,
            "not before every source had the time to say how far it is"
        );
        w.observe(m365, Ts(10 * MIN), Ts(101 * MIN));
        w.observe(m365, Ts(11 * MIN), Ts(110 * MIN));
        assert_eq!(
            w.advance(Ts(110 * MIN)),
            Some(Ts(6 * MIN)),
            "M365's 11 min less the lateness"
        );
        // M365 delivers its next records, 90 min behind: they are not late
        assert!(!w.observe(m365, Ts(12 * MIN), Ts(110 * MIN)));
        assert_eq!(w.advance(Ts(110 * MIN)), Some(Ts(7 * MIN)));
        // a record from before the watermark is late, and is still only counted as such
        assert!(w.observe(m365, Ts(6 * MIN), Ts(103 * MIN)));
        // M365 goes quiet for more than the idle time: Okta alone holds the watermark
        w.observe(okta, Ts(121 * MIN), Ts(121 * MIN));
        assert_eq!(w.advance(Ts(121 * MIN)), Some(Ts(116 * MIN)));
        // when it delivers again, the watermark does not go back
        w.observe(m365, Ts(30 * MIN), Ts(122 * MIN));
        assert_eq!(w.advance(Ts(122 * MIN)), None);
        assert_eq!(w.mark(), Some(Ts(116 * MIN)));
    }

    #[test]
    fn one_source_cannot_push_the_watermark_past_the_others() {
        let mut w = Watermarks::new(0, 600, 21_600);
        w.observe(Source::of("okta"), Ts(100 * MIN), Ts(100 * MIN));
        w.observe(Source::of("nginx"), Ts(105 * MIN), Ts(100 * MIN));
        assert_eq!(w.advance(Ts(100 * MIN)), None);
        w.observe(Source::of("okta"), Ts(100 * MIN), Ts(110 * MIN));
        w.observe(Source::of("nginx"), Ts(200 * MIN), Ts(110 * MIN));
        assert_eq!(w.advance(Ts(110 * MIN)), Some(Ts(100 * MIN)));
    }

    /// Found by an outside review: a source (a compromised agent among them) that keeps sending records dated a
    /// day back held the watermark there, and no keyed state expired by its TTL.
    #[test]
    fn a_source_far_behind_the_clock_does_not_hold_the_watermark() {
        let mut w = Watermarks::new(0, 600, 6 * 3600);
        for m in 0..30 {
            let clock = Ts((24 * 60 + m) * MIN);
            w.observe(Source::of("okta"), clock, clock);
            w.observe(Source::of("agent"), Ts(m * MIN), clock);
            w.advance(clock);
        }
        assert_eq!(w.mark(), Some(Ts((24 * 60 + 29) * MIN)));
    }

    #[test]
    fn sources_are_bounded_and_the_stalest_is_forgotten() {
        let mut w = Watermarks::new(0, 600, 21_600);
        for i in 0..MAX_SOURCES as i64 + 10 {
            w.observe(Source::of(("topic", i)), Ts(i), Ts(i));
        }
        assert_eq!(w.parts.len(), MAX_SOURCES);
        assert!(w.parts.iter().all(|p| p.newest.0 >= 10));
        // the index follows the table through every swap
        assert_eq!(w.index.len(), MAX_SOURCES);
        assert!(w
            .parts
            .iter()
            .enumerate()
            .all(|(i, p)| w.index[&p.source] == i));
        let last = Source::of(("topic", MAX_SOURCES as i64 + 9));
        w.observe(last, Ts(1_000_000), Ts(1_000_000));
        assert_eq!(w.parts[w.index[&last]].newest, Ts(1_000_000));
        assert_eq!(w.parts.len(), MAX_SOURCES);
    }

    #[test]
    fn a_restart_resumes_the_watermark() {
        let mut w = Watermarks::new(0, 600, 21_600);
        w.observe(Source::of("okta"), Ts(100 * MIN), Ts(100 * MIN));
        w.advance(Ts(110 * MIN));
        let saved: SavedWatermarks =
            serde_json::from_str(&serde_json::to_string(&w.save()).unwrap()).unwrap();
        let mut r = Watermarks::new(0, 600, 21_600);
        r.resume(saved);
        assert_eq!(r.mark(), Some(Ts(100 * MIN)));
        assert!(r.observe(Source::of("okta"), Ts(99 * MIN), Ts(101 * MIN)));
    }
}
