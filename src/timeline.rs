//! Timeline: the processing clock that forged event times cannot move.
//!
//! In: each message's newest event time, its format, and its ingest time. Out: whether the message may be
//! processed now ([`Verdict`]), and the clock that state sweeps and the revocation budget run on. State: in
//! [`Mode::Stream`], the newest accepted event time and a few recent claims per format (bounded: at most
//! [`CLAIMS_PER_FORMAT`] per format, formats are few).
//!
//! Every field of a log is attacker-influenced, its timestamp included. One event dated 2100 used to sweep every
//! keyed state and lock the revocation budget. So an event's time is accepted only up to `max_future_skew` ahead
//! of a reference the event cannot choose:
//! - [`Mode::Ingest`] (`quench run`): the wall-clock time the record was consumed. A record further ahead is
//!   dead-lettered.
//! - [`Mode::Stream`] (`quench replay`, `eval`): the stream's own timeline, the newest event time accepted so far
//!   from a message whose source vouches for an identity in it (anonymous lines never set the time; before the
//!   first vouched message they wait).
//!   Streams have quiet gaps (a night), so a message further ahead is not refused at once: it is *held* and its time
//!   recorded as a claim. The timeline jumps when another source corroborates it (a message of another format within
//!   `max_future_skew` of the claim); in a stream of one format, a second message agreeing with the claim is
//!   enough. Held messages are processed once the timeline reaches them. At the end of the input, those no later
//!   than the wall clock (plus the skew) are processed last, in event-time order, where they can no longer disturb
//!   what came before; the rest (dated after the moment of the replay itself) are dead-lettered.
//!
//! Events older than `max_age` behind the newest accepted event time are counted and kept out of keyed state: they
//! can neither revive forgotten keys nor be compared with today's baselines. (The newest accepted event time, not
//! the ingest time, so that a recorded day replayed through Kafka is still processed.)

use crate::event::Ts;

/// Recent claims remembered per format.
pub const CLAIMS_PER_FORMAT: usize = 8;

/// How the reference time is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Wall-clock ingest time (production).
    Ingest,
    /// The stream's own corroborated timeline (replays of recorded logs).
    Stream,
}

/// What to do with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Process it.
    Accept,
    /// Its time is ahead of the reference by more than the skew. In `Ingest` mode that is final; in `Stream` mode
    /// the caller may hold the message and retry it when [`Timeline::now`] has caught up.
    Ahead { reference: Ts },
}

/// The processing clock.
#[derive(Debug, Clone)]
pub struct Timeline {
    mode: Mode,
    skew_ms: i64,
    max_age_ms: i64,
    /// The newest accepted event time (never more than the skew ahead of the reference).
    newest: Option<Ts>,
    /// Ingest mode: the latest ingest time.
    ingest: Ts,
    /// Stream mode: recent times claimed by messages that were ahead, per format.
    claims: Vec<(&'static str, Vec<Ts>)>,
    /// Formats seen in the stream.
    formats: Vec<&'static str>,
}

impl Timeline {
    pub fn new(mode: Mode, max_future_skew_secs: u64, max_age_secs: u64) -> Self {
        Timeline {
            mode,
            skew_ms: (max_future_skew_secs as i64).saturating_mul(1000),
            max_age_ms: (max_age_secs as i64).saturating_mul(1000),
            newest: None,
            ingest: Ts(i64::MIN),
            claims: Vec::new(),
            formats: Vec::new(),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The processing clock: the latest ingest time, or the stream's newest accepted event time.
    pub fn now(&self) -> Ts {
        match self.mode {
            Mode::Ingest => self.ingest,
            Mode::Stream => self.newest.unwrap_or(Ts(i64::MIN)),
        }
    }

    /// The clock's readings (newest accepted event time, latest ingest time), for a restart to resume from.
    pub fn save(&self) -> (Option<Ts>, Ts) {
        (self.newest, self.ingest)
    }

    /// Resume from saved readings; the clock never goes back.
    pub fn resume(&mut self, (newest, ingest): (Option<Ts>, Ts)) {
        self.newest = self.newest.max(newest);
        self.ingest = self.ingest.max(ingest);
    }

    /// Whether a vouched message has set the clock.
    pub fn has_clock(&self) -> bool {
        self.newest.is_some()
    }

    /// Whether an event at `t` is older than the state horizon (behind the newest accepted event time).
    pub fn too_old(&self, t: Ts) -> bool {
        self.newest
            .is_some_and(|n| t.0 < n.0.saturating_sub(self.max_age_ms))
    }

    /// Judge a message whose newest event is at `newest`, of `format`, consumed at `ingest`. `vouched`: whether its
    /// source vouches for any identity in it. Only vouched messages move the clock or corroborate a jump: anonymous
    /// traffic (an NGINX line, a span without an agent) can be processed, never set the time.
    pub fn check(
        &mut self,
        format: &'static str,
        newest: Ts,
        ingest: Ts,
        vouched: bool,
    ) -> Verdict {
        match self.mode {
            Mode::Ingest => {
                self.ingest = self.ingest.max(ingest);
                if newest.0 > ingest.0.saturating_add(self.skew_ms) {
                    Verdict::Ahead { reference: ingest }
                } else {
                    if vouched {
                        self.newest = Some(self.newest.map_or(newest, |n| n.max(newest)));
                    }
                    Verdict::Accept
                }
            }
            Mode::Stream => {
                if vouched && !self.formats.contains(&format) {
                    self.formats.push(format);
                }
                // Nothing recorded can be dated after the replay itself: not even the first line may set the clock
                // there.
                if newest.0 > ingest.0.saturating_add(self.skew_ms) {
                    return Verdict::Ahead { reference: ingest };
                }
                let Some(t) = self.newest else {
                    if !vouched {
                        // no clock yet: an unvouched line waits for the first vouched one
                        return Verdict::Ahead { reference: ingest };
                    }
                    self.newest = Some(newest);
                    return Verdict::Accept;
                };
                if newest.0 <= t.0.saturating_add(self.skew_ms) {
                    if vouched {
                        self.newest = Some(t.max(newest));
                    }
                    return Verdict::Accept;
                }
                if vouched && self.corroborated(format, newest) {
                    self.newest = Some(t.max(newest));
                    return Verdict::Accept;
                }
                if vouched {
                    self.claim(format, newest);
                }
                Verdict::Ahead { reference: t }
            }
        }
    }

    /// Move the stream's clock to `t` without corroboration (the end of a replay: nothing comes after).
    pub fn admit(&mut self, t: Ts) {
        self.newest = Some(self.newest.map_or(t, |n| n.max(t)));
    }

    fn corroborated(&self, format: &'static str, t: Ts) -> bool {
        let alone = self.formats.len() == 1;
        self.claims.iter().any(|(f, times)| {
            (*f != format || alone) && times.iter().any(|c| (c.0 - t.0).abs() <= self.skew_ms)
        })
    }

    fn claim(&mut self, format: &'static str, t: Ts) {
        let i = match self.claims.iter().position(|(f, _)| *f == format) {
            Some(i) => i,
            None => {
                self.claims.push((format, Vec::new()));
                self.claims.len() - 1
            }
        };
        let times = &mut self.claims[i].1;
        if times.len() >= CLAIMS_PER_FORMAT {
            times.remove(0);
        }
        times.push(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    /// The wall clock of a replay long after the recorded events.
    const WALL: Ts = Ts(1_795_000_000_000);

    #[test]
    fn ingest_mode_refuses_events_ahead_of_the_wall_clock() {
        let mut t = Timeline::new(Mode::Ingest, 300, 86_400);
        assert_eq!(t.check("okta", Ts(4 * MIN), Ts(0), true), Verdict::Accept);
        assert_eq!(
            t.check("okta", Ts(6 * MIN), Ts(0), true),
            Verdict::Ahead { reference: Ts(0) }
        );
        assert_eq!(t.now(), Ts(0));
    }

    #[test]
    fn one_event_dated_2100_does_not_move_a_replayed_streams_clock() {
        let mut t = Timeline::new(Mode::Stream, 300, 86_400);
        assert_eq!(t.check("okta", Ts(0), WALL, true), Verdict::Accept);
        assert_eq!(t.check("kong", Ts(MIN), WALL, true), Verdict::Accept);
        let y2100 = Ts(4_102_444_800_000);
        assert!(matches!(
            t.check("kong", y2100, WALL, true),
            Verdict::Ahead { .. }
        ));
        assert_eq!(t.now(), Ts(MIN));
        // the same source again does not corroborate itself in a stream of several sources
        assert!(matches!(
            t.check("kong", y2100, WALL, true),
            Verdict::Ahead { .. }
        ));
        assert_eq!(t.check("okta", Ts(2 * MIN), WALL, true), Verdict::Accept);
        assert_eq!(t.now(), Ts(2 * MIN));
    }

    #[test]
    fn a_quiet_night_is_crossed_when_a_second_source_agrees() {
        let mut t = Timeline::new(Mode::Stream, 300, 86_400);
        t.check("okta", Ts(0), WALL, true);
        t.check("kong", Ts(MIN), WALL, true);
        let morning = 10 * 60 * MIN;
        assert!(matches!(
            t.check("okta", Ts(morning), WALL, true),
            Verdict::Ahead { .. }
        ));
        assert_eq!(
            t.check("kong", Ts(morning + MIN), WALL, true),
            Verdict::Accept
        );
        assert_eq!(t.now(), Ts(morning + MIN));
        // the held Okta message now fits
        assert_eq!(t.check("okta", Ts(morning), WALL, true), Verdict::Accept);
    }

    #[test]
    fn a_single_source_stream_crosses_a_gap_on_its_second_message() {
        let mut t = Timeline::new(Mode::Stream, 300, 86_400);
        t.check("okta", Ts(0), WALL, true);
        let later = 3 * 60 * MIN;
        assert!(matches!(
            t.check("okta", Ts(later), WALL, true),
            Verdict::Ahead { .. }
        ));
        assert_eq!(
            t.check("okta", Ts(later + MIN), WALL, true),
            Verdict::Accept
        );
    }

    #[test]
    fn a_first_line_dated_2099_does_not_set_a_replayed_streams_clock() {
        let mut t = Timeline::new(Mode::Stream, 300, 86_400);
        let wall = WALL;
        let y2099 = Ts(4_070_908_800_000);
        assert!(matches!(
            t.check("nginx", y2099, wall, true),
            Verdict::Ahead { .. }
        ));
        assert_eq!(t.check("okta", Ts(0), wall, true), Verdict::Accept);
        assert_eq!(t.now(), Ts(0));
        assert!(!t.too_old(Ts(MIN)));
    }

    #[test]
    fn anonymous_lines_dated_weeks_ahead_neither_start_nor_move_the_clock() {
        let mut t = Timeline::new(Mode::Stream, 300, 86_400);
        let ahead = Ts(18 * 24 * 60 * MIN);
        // before any vouched line: waits
        assert!(matches!(
            t.check("nginx", ahead, WALL, false),
            Verdict::Ahead { .. }
        ));
        assert_eq!(t.check("okta", Ts(0), WALL, true), Verdict::Accept);
        // two unvouched sources agreeing do not move it either
        assert!(matches!(
            t.check("nginx", ahead, WALL, false),
            Verdict::Ahead { .. }
        ));
        assert!(matches!(
            t.check("otel_genai", ahead, WALL, false),
            Verdict::Ahead { .. }
        ));
        assert_eq!(t.now(), Ts(0));
        // nor does walking forward in steps within the skew: the first step is taken, the clock stays, and the
        // next step is already too far ahead of it
        assert_eq!(t.check("nginx", Ts(4 * MIN), WALL, false), Verdict::Accept);
        assert!(matches!(
            t.check("nginx", Ts(8 * MIN), WALL, false),
            Verdict::Ahead { .. }
        ));
        assert_eq!(t.now(), Ts(0));
        assert!(!t.too_old(Ts(MIN)));
    }

    #[test]
    fn events_older_than_the_horizon_are_too_old() {
        let mut t = Timeline::new(Mode::Stream, 300, 3600);
        t.check("okta", Ts(100 * MIN), WALL, true);
        assert!(t.too_old(Ts(30 * MIN)));
        assert!(!t.too_old(Ts(50 * MIN)));
    }
}
