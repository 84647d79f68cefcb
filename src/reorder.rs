//! Reorder: an opt-in hold that releases events in event-time order, so decisions do not depend on the order the
//! sources delivered them in.
//!
//! In: admitted, deduplicated, not yet correlated events ([`crate::pipeline`]), with the processing clock (ingest
//! time in `run`, the stream's own timeline in a replay). Out: the same events, each once the processing clock has
//! passed its event time by `normalize.reorder_secs`, in event-time order (ties in an order that depends on what
//! the events say, not on where they were read). State: the held events as JSON (saved with the pipeline's state,
//! since their input offsets are already behind the saved ones), at most `normalize.reorder_max_bytes` of them:
//! beyond, the earliest event no source vouches for is released early (else the earliest of all), and counted.
//!
//! Why: Quench processes late events where they belong in event time without waiting ([`crate::watermark`],
//! [`crate::decide`]), so its strongest actions do not depend on arrival order; but a weaker action decided before
//! the late evidence came, and an alert on an OAuth grant whose colleagues' earlier grants had not arrived yet,
//! do. Holding every event for as long as the slowest source lags removes that: when every source delivers within
//! `reorder_secs` of an event's time, every event that happened before it has been read when it is released, and
//! correlate, detect and decide see the events in event-time order, whatever the order of the input. The price is
//! latency: every decision comes `reorder_secs` after its evidence (hours, for sources that lag hours). So it is
//! off by default; it is for replays and backtests whose decisions must not depend on delivery order, and for
//! deployments that accept the delay. An event that arrives more than `reorder_secs` late is released at once and
//! processed late, as without the hold.
//!
//! Event times are attacker-influenced, but an admitted event is never more than `normalize.max_future_skew_secs`
//! ahead of the processing clock, so no forged time holds an event longer than `reorder_secs` plus that skew, and
//! the bytes bound caps what a flood of events can make Quench hold. A flood of lines nobody vouches for (anyone
//! can send a gateway request) fills the hold with claims, and claims are what a full hold gives up first: they
//! cannot push the vouched records of the IdPs and SaaS audit logs out of their order.
//!
//! The hold counts from delivery: in `run`, from the latest Kafka timestamp of the records read (never later than
//! the wall clock, never going back, and never more than the hold behind it; see
//! [`crate::pipeline::Pipeline::delivered_at`]), and by the wall clock once the input is idle, so a consumer
//! reading a backlog after a restart (up to the hold behind) holds events as long as one that keeps up; in a
//! replay, in the stream's processing time. It must cover each
//! source's lag from an event to its record on the topic.

use crate::event::{SessionEvent, Ts};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::hash::BuildHasher;

/// Default for `normalize.reorder_max_bytes`: 256 MiB of held events.
pub const DEFAULT_MAX_BYTES: usize = 256 << 20;

/// Where a held event sorts: by event time, then by what it says (so two events of the same millisecond come out
/// in the same order from any input order), then by arrival.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Place {
    t: Ts,
    tie: u64,
    seq: u64,
}

/// The held events of one pipeline.
#[derive(Debug)]
pub struct Reorder {
    hold_ms: i64,
    max_bytes: usize,
    bytes: usize,
    seq: u64,
    /// Events a source vouches for (a principal or a session key), and the others: a full hold gives up the
    /// others first.
    vouched: BTreeMap<Place, Box<RawValue>>,
    claimed: BTreeMap<Place, Box<RawValue>>,
    /// Events released before their time because the hold was full.
    pub overflow: u64,
}

/// What [`Reorder::save`] writes: each held event's time, tie, whether vouched, and the event, in release order.
#[derive(Deserialize, Default)]
pub struct SavedReorder(Vec<(Ts, u64, bool, Box<RawValue>)>);

/// The same, borrowed from the hold (a save copies nothing before it is written).
#[derive(Serialize)]
pub struct HeldRef<'r>(Vec<(Ts, u64, bool, &'r RawValue)>);

impl Reorder {
    /// `hold_secs` 0 turns the hold off.
    pub fn new(hold_secs: u64, max_bytes: usize) -> Self {
        Reorder {
            hold_ms: (hold_secs as i64).saturating_mul(1000),
            max_bytes,
            bytes: 0,
            seq: 0,
            vouched: BTreeMap::new(),
            claimed: BTreeMap::new(),
            overflow: 0,
        }
    }

    /// The hold, in milliseconds.
    pub fn hold_ms(&self) -> i64 {
        self.hold_ms
    }

    /// Whether events are held at all.
    pub fn on(&self) -> bool {
        self.hold_ms > 0
    }

    /// Events held now.
    pub fn len(&self) -> usize {
        self.vouched.len() + self.claimed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vouched.is_empty() && self.claimed.is_empty()
    }

    /// The time of the earliest event held, if any.
    pub fn earliest(&self) -> Option<Ts> {
        self.first(false).map(|(p, _)| p.t)
    }

    /// The earliest held event's place and whether it is a claim; with `claims_first`, the earliest claim when
    /// there is one.
    fn first(&self, claims_first: bool) -> Option<(Place, bool)> {
        let v = self.vouched.first_key_value().map(|(p, _)| (*p, false));
        let c = self.claimed.first_key_value().map(|(p, _)| (*p, true));
        match (v, c) {
            (_, Some(c)) if claims_first => Some(c),
            (Some(v), Some(c)) => Some(if c.0 < v.0 { c } else { v }),
            (v, c) => v.or(c),
        }
    }

    /// Bytes of events held now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Hold `ev` until the clock passes its time by the hold.
    pub fn hold(&mut self, ev: &SessionEvent<'_>) -> Result<(), serde_json::Error> {
        let json = serde_json::value::to_raw_value(ev)?;
        let tie = tie(json.get());
        let vouched = ev.principal.vouched_by.is_some() || !ev.session.vouched.is_empty();
        self.insert(ev.event_time, tie, vouched, json);
        Ok(())
    }

    fn insert(&mut self, t: Ts, tie: u64, vouched: bool, json: Box<RawValue>) {
        self.seq += 1;
        self.bytes += json.get().len();
        let place = Place {
            t,
            tie,
            seq: self.seq,
        };
        if vouched {
            self.vouched.insert(place, json);
        } else {
            self.claimed.insert(place, json);
        }
    }

    /// The next event to release at processing time `clock`, with the time its hold ended (its time plus the
    /// hold; for an event released early, the clock): the earliest held one, once `clock` is more than the hold
    /// past its time; or, while the hold is over its bytes, the earliest claim (else the earliest event) at once.
    pub fn next_due(&mut self, clock: Ts) -> Option<(Box<RawValue>, Ts)> {
        let (first, _) = self.first(false)?;
        let due = first.t.0 < clock.0.saturating_sub(self.hold_ms);
        if due {
            return self.pop();
        }
        if self.bytes <= self.max_bytes {
            return None;
        }
        self.overflow += 1;
        let (place, claim) = self.first(true)?;
        let json = self.take(place, claim)?;
        Some((json, clock))
    }

    /// The earliest held event, due or not (the end of a replay), with the time its hold would have ended.
    pub fn pop(&mut self) -> Option<(Box<RawValue>, Ts)> {
        let (place, claim) = self.first(false)?;
        let json = self.take(place, claim)?;
        Some((json, Ts(place.t.0.saturating_add(self.hold_ms))))
    }

    fn take(&mut self, place: Place, claim: bool) -> Option<Box<RawValue>> {
        let json = if claim {
            self.claimed.remove(&place)
        } else {
            self.vouched.remove(&place)
        }?;
        self.bytes -= json.get().len();
        Some(json)
    }

    /// The held events, to save with the pipeline's state (borrowed: nothing is copied).
    pub fn save(&self) -> HeldRef<'_> {
        let mut all: Vec<(Place, bool, &RawValue)> = self
            .vouched
            .iter()
            .map(|(p, j)| (*p, true, &**j))
            .chain(self.claimed.iter().map(|(p, j)| (*p, false, &**j)))
            .collect();
        all.sort_by_key(|(p, _, _)| *p);
        HeldRef(
            all.into_iter()
                .map(|(p, vouched, j)| (p.t, p.tie, vouched, j))
                .collect(),
        )
    }

    /// Take back what [`Reorder::save`] wrote (after anything held now, at equal places).
    pub fn resume(&mut self, saved: SavedReorder) {
        for (t, tie, vouched, json) in saved.0 {
            self.insert(t, tie, vouched, json);
        }
    }
}

/// The event's place among events of the same millisecond: a digest of what it says, without what depends on where
/// and when it was read (its id, which Quench makes from its place when the vendor gives none, its ingest time and
/// its provenance). Those are the fields [`SessionEvent`] writes before its `source`, so the digest is of the JSON
/// from there on. The first `,"source":` of the JSON is that key: inside a string, a quote is escaped.
fn tie(json: &str) -> u64 {
    let said =
        memchr::memmem::find(json.as_bytes(), b",\"source\":").map_or(json, |at| &json[at..]);
    // fixed: the order must be the same in every process (and across a restart)
    foldhash::fast::FixedState::with_seed(0x0072_656f_7264_6572).hash_one(said)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::testutil;
    use crate::event::{Category, Family};

    const MIN: i64 = 60_000;

    /// The processing clock `min` minutes after the events' day began.
    fn at(min: i64) -> Ts {
        Ts(ev(0, "").event_time.0 + min * MIN)
    }

    fn ev(min: i64, id: &str) -> SessionEvent<'static> {
        testutil::at(min * 60, id, Family::Idp, Category::Login)
    }

    fn released(r: &mut Reorder, clock: Ts) -> Vec<String> {
        std::iter::from_fn(|| r.next_due(clock))
            .map(|(j, _)| {
                let e: SessionEvent<'_> = serde_json::from_str(j.get()).unwrap();
                e.event_id.to_string()
            })
            .collect()
    }

    #[test]
    fn events_come_out_in_event_time_order_once_the_hold_has_passed() {
        let mut r = Reorder::new(3600, DEFAULT_MAX_BYTES);
        // a late source's record (10:00) arrives after a fast source's (10:30)
        r.hold(&ev(600 + 30, "fast")).unwrap();
        r.hold(&ev(600, "late")).unwrap();
        assert!(released(&mut r, at(660 - 1)).is_empty());
        assert_eq!(released(&mut r, at(660 + 1)), ["late"]);
        assert_eq!(released(&mut r, at(660 + 31)), ["fast"]);
        assert!(r.is_empty());
        assert_eq!(r.bytes(), 0);
    }

    #[test]
    fn events_of_the_same_millisecond_come_out_in_the_same_order_whatever_order_they_came_in() {
        let mut a = Reorder::new(60, DEFAULT_MAX_BYTES);
        let mut b = Reorder::new(60, DEFAULT_MAX_BYTES);
        let mut x = ev(10, "x");
        x.principal.id = Some("alice".into());
        let mut y = ev(10, "y");
        y.principal.id = Some("bob".into());
        a.hold(&x).unwrap();
        a.hold(&y).unwrap();
        b.hold(&y).unwrap();
        b.hold(&x).unwrap();
        let end = at(100);
        assert_eq!(released(&mut a, end), released(&mut b, end));
    }

    #[test]
    fn the_tie_leaves_out_the_id_ingest_time_and_provenance_and_nothing_else() {
        let a = ev(10, "events.jsonl:17#0");
        let mut b = ev(10, "events.jsonl:4242#0");
        b.ingest_time = Ts(a.ingest_time.0 + 5_000);
        b.provenance = crate::event::Provenance::File {
            path: "events.jsonl".into(),
            line: 4242,
        };
        let json = |e: &SessionEvent<'_>| serde_json::to_string(e).unwrap();
        assert!(json(&b).contains(r#","source":"#), "{}", json(&b));
        assert_eq!(tie(&json(&a)), tie(&json(&b)));
        // an id that spells the key inside its string changes nothing either
        let mut c = ev(10, r#"x","source":{"vendor":"forged"}"#);
        c.ingest_time = b.ingest_time;
        assert_eq!(tie(&json(&a)), tie(&json(&c)));
        let mut d = ev(10, "events.jsonl:17#0");
        d.principal.id = Some("bob".into());
        assert_ne!(tie(&json(&a)), tie(&json(&d)), "what the event says counts");
    }

    #[test]
    fn a_full_hold_releases_its_oldest_early_and_counts_it() {
        let one = serde_json::to_string(&ev(0, "e0")).unwrap().len();
        let mut r = Reorder::new(3600, one * 2);
        for m in 0..3 {
            r.hold(&ev(m, &format!("e{m}"))).unwrap();
        }
        assert_eq!(released(&mut r, at(3)), ["e0"]);
        assert_eq!(r.overflow, 1);
        assert_eq!(r.len(), 2);
    }

    /// Found by an outside review: a flood of forged, unvouched lines filled the hold and pushed the IdP's
    /// vouched records out of it before their time, in whatever order they had arrived.
    #[test]
    fn a_flood_of_claims_cannot_push_vouched_records_out_of_their_order() {
        let vouched = |m: i64, id: &str| {
            let mut e = ev(m, id);
            e.principal.vouched_by = Some(crate::event::Vouch {
                vendor: "okta".into(),
                family: Family::Idp,
            });
            e
        };
        let one = serde_json::to_string(&vouched(0, "v0")).unwrap().len();
        let mut r = Reorder::new(3600, one * 4);
        r.hold(&vouched(10, "v10")).unwrap();
        r.hold(&vouched(5, "v5")).unwrap();
        for m in 0..20 {
            r.hold(&ev(m, &format!("forged{m}"))).unwrap();
        }
        let early = released(&mut r, at(20));
        assert!(
            early.iter().all(|id| id.starts_with("forged")),
            "only claims give way: {early:?}"
        );
        assert!(r.overflow > 0);
        assert_eq!(
            released(&mut r, at(200))
                .iter()
                .filter(|id| id.starts_with('v'))
                .collect::<Vec<_>>(),
            ["v5", "v10"]
        );
    }

    #[test]
    fn held_events_survive_a_save_and_resume() {
        let mut r = Reorder::new(60, DEFAULT_MAX_BYTES);
        r.hold(&ev(5, "b")).unwrap();
        r.hold(&ev(1, "a")).unwrap();
        let saved: SavedReorder =
            serde_json::from_str(&serde_json::to_string(&r.save()).unwrap()).unwrap();
        assert_eq!(r.len(), 2, "a save takes nothing out");
        let mut back = Reorder::new(60, DEFAULT_MAX_BYTES);
        back.resume(saved);
        assert_eq!(released(&mut back, at(100)), ["a", "b"]);
    }
}
