//! The pipeline in the keyed topology ([`crate::runtime::keyed`]): the first stage routes each normalized,
//! attributed event to its subject's partition with the links it learned, and the second stage processes the
//! records it reads back, judged against the clock the first stage carried in them.
//!
//! In: raw messages (first stage); routed records (second stage); shared link records. Out: [`Routed`] records;
//! decisions. State: none beyond the [`Pipeline`]'s.

use super::*;

impl Pipeline {
    /// The first stage of the keyed topology ([`crate::runtime::keyed`]): normalize one message, judge its times
    /// and attribute each event through the vouched links, as [`Pipeline::process`] does, then hand each event to
    /// `out` with its routing key, and the links learned, instead of detecting (duplicates are dropped by the second
    /// stage, whose state a partition's next owner restores). Returns how many events it held.
    pub fn route(
        &mut self,
        raw: &[u8],
        pinned: Option<&str>,
        provenance: Provenance<'_>,
        ingest_time: Ts,
        out: &mut Vec<Routed>,
    ) -> Result<usize, NormalizeError> {
        self.take(raw, pinned, provenance, ingest_time, Sink::Route(out))
    }

    /// The second stage of the keyed topology: one routed event (what [`Pipeline::route`] wrote), deduplicated,
    /// detected and decided here. It was correlated by the first stage; its clock is the first stage's, so
    /// processing the same record again (after a rebalance or a restart) decides the same.
    pub fn process_routed(
        &mut self,
        body: &[u8],
        out: &mut Vec<Decision>,
    ) -> Result<(), NormalizeError> {
        self.stats.messages += 1;
        let r: RoutedEvent<'_> = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => {
                *self.stats.rejected.entry("not_routed_event").or_default() += 1;
                return Err(NormalizeError::Invalid {
                    format: "keyed",
                    reason: format!("not an event routed by Quench: {e}"),
                });
            }
        };
        let ev = r.event;
        if r.announce {
            return self.announced(ev, r.clock);
        }
        let format = self
            .normalize
            .format_name(ev.source.format.as_str())
            .unwrap_or("keyed");
        *self.stats.per_format.entry(format).or_default() += 1;
        self.stats.events += 1;
        let vouched = ev.principal.vouched_by.is_some() || !ev.session.vouched.is_empty();
        // The first stage accepted it against its clock, carried in the record so that processing it again decides
        // the same; a clock (or an event time) ahead of this instance's wall clock is refused all the same, so a
        // record written to the keyed topic by anyone but Quench cannot move the partition's clock to 2100.
        let wall = WallTime::now().as_ts();
        let reference = Ts(r.clock.0.min(wall.0));
        if let Verdict::Ahead { reference } =
            self.timeline
                .check(format, ev.event_time, reference, vouched)
        {
            return Err(self.keyed_from_the_future(ev.event_time, reference));
        }
        let clock = self.timeline.now();
        if !self.dedup.first(&ev, clock) {
            self.stats.duplicates += 1;
            return Ok(());
        }
        if self.collect_ended {
            self.ended.extend(ev.ended());
        }
        if self.timeline.too_old(ev.event_time) {
            self.stats.too_old += 1;
            return Ok(());
        }
        // the keyed partition's events come from every input: each format stands for its source
        self.observe_time(Source::of(format), ev.event_time, clock);
        if let Some(e) = &mut self.evidence {
            e.event(&ev);
        }
        self.after_correlate(ev, clock, out);
        self.advance_watermark(clock);
        Ok(())
    }

    /// A keyed record dated ahead of the first stage's clock (bounded by the wall clock): counted and refused.
    pub(super) fn keyed_from_the_future(
        &mut self,
        event_time: Ts,
        reference: Ts,
    ) -> NormalizeError {
        *self.stats.rejected.entry("from_the_future").or_default() += 1;
        NormalizeError::FromTheFuture {
            event_time: event_time.to_rfc3339(),
            reference: reference.to_rfc3339(),
            reference_kind: "the ingest time",
            skew_secs: self.skew_secs,
        }
    }

    /// A configuration announcement's copy (see [`Routed::announce`]): learned by the detectors that keep what an
    /// admin announces for an agent ([`crate::detect::Detector::announce`]), judged nowhere (its original, in its
    /// subject's partition, is).
    pub(super) fn announced(
        &mut self,
        ev: SessionEvent<'_>,
        clock: Ts,
    ) -> Result<(), NormalizeError> {
        let reference = clock.min(WallTime::now().as_ts());
        if ev.event_time.0 > reference.0.saturating_add(self.skew_secs as i64 * 1000) {
            return Err(self.keyed_from_the_future(ev.event_time, reference));
        }
        if !self.timeline.too_old(ev.event_time) {
            self.detect.announce(&ev);
        }
        Ok(())
    }

    /// The keyed topology's first stage: record the links correlation learns, to share them
    /// ([`Pipeline::route`] hands them out with the events).
    pub fn share_links(&mut self) {
        self.correlate.record_changes();
    }

    /// Take a link another instance's first stage learned (a record of the links topic).
    pub fn apply_link(&mut self, record: &[u8]) -> Result<(), serde_json::Error> {
        let c = crate::correlate::LinkChange::decode(record)?;
        self.correlate.apply(&c);
        Ok(())
    }
}

/// A record the keyed topology's first stage produces.
pub struct Routed {
    /// For an event: the correlation subject, the principal's key (e-mail, else id, as detectors key people),
    /// else the session, token or job the event names, else its id. For a link: its map and key.
    pub key: String,
    /// A [`RoutedEvent`] or a [`crate::correlate::LinkChange`] as JSON.
    pub body: Vec<u8>,
    /// A link learned (for the links topic), not an event (for the keyed topic).
    pub link: bool,
    /// A copy of a configuration announcement (an `admin_change` naming a job) for every partition of the keyed
    /// topic, each of whose pipelines learns from it without judging it; the event itself is routed too, by its
    /// subject.
    pub announce: bool,
}

/// The record on the keyed topic, as read back.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct RoutedEvent<'a> {
    /// The first stage's processing clock when it admitted the event.
    pub(super) clock: Ts,
    #[serde(borrow)]
    pub(super) event: SessionEvent<'a>,
    /// A copy to learn from only (see [`Routed::announce`]).
    #[serde(default)]
    pub(super) announce: bool,
}

/// The same record as written: the event borrowed, not copied.
#[derive(serde::Serialize)]
struct RoutedEventRef<'e, 'a> {
    clock: Ts,
    event: &'e SessionEvent<'a>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    announce: bool,
}

impl Routed {
    /// The correlated `ev`, routed by `subject` ([`crate::correlate::Correlator::subject`]); with `announce`,
    /// the copy of an announcement for every partition.
    pub(super) fn event(
        subject: String,
        ev: &SessionEvent<'_>,
        clock: Ts,
        announce: bool,
    ) -> Routed {
        // a SessionEvent always serializes (its fields are strings, numbers and enums)
        let body = serde_json::to_vec(&RoutedEventRef {
            clock,
            event: ev,
            announce,
        })
        .unwrap_or_default();
        Routed {
            key: subject,
            body,
            link: false,
            announce,
        }
    }

    pub(super) fn link(c: &crate::correlate::LinkChange) -> Routed {
        Routed {
            key: c.topic_key(),
            body: c.encode(),
            link: true,
            announce: false,
        }
    }
}
