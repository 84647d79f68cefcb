//! The wall clock of the parts that act in real time (respond's dispatch, retries, budgets, and the outbox's
//! confirmation windows), behind a trait so that tests run them on a clock they move themselves.
//!
//! In: requests for the time and for waits. Out: [`WallTime`]s and futures that finish when a wait is over.
//! State: [`SystemClock`] none (it reads the system time and waits on Tokio's timer); [`ManualClock`] its current
//! time, moved forward only by its waits and by [`ManualClock::advance`], and the waits it was asked for.
//!
//! Event time (when a log says something happened, [`Ts`]) is not this clock's: it comes with the events, and the
//! pipeline's processing clock is [`crate::timeline`]. The two are different types; a wall-clock time becomes a
//! [`Ts`] only through [`WallTime::as_ts`], where the wall clock bounds event time or stands in for it (the
//! ingest time a log cannot choose, the time of a notice Quench makes about itself).

use crate::event::Ts;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A time on the wall clock, in milliseconds since the Unix epoch (UTC): when Quench itself did something (sent a
/// command, gave up on one, saved its state), never when a log says something happened. Written as RFC 3339, as
/// [`Ts`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct WallTime(pub i64);

impl WallTime {
    /// The system's wall clock now (what [`SystemClock`] reads; code that can be tested takes a [`Clock`]).
    pub fn now() -> WallTime {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        WallTime(d.as_millis().min(i64::MAX as u128) as i64)
    }

    /// This moment on the event timeline: where the wall clock bounds event times (an ingest time, a reference no
    /// log can move past) or dates what Quench says about itself.
    pub fn as_ts(self) -> Ts {
        Ts(self.0)
    }

    /// RFC 3339 with milliseconds and `Z`.
    pub fn to_rfc3339(self) -> String {
        self.as_ts().to_rfc3339()
    }
}

impl Serialize for WallTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_ts().serialize(s)
    }
}

impl<'de> Deserialize<'de> for WallTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ts::deserialize(d).map(|t| WallTime(t.0))
    }
}

/// A wall clock. `now` is the only required method besides `sleep`.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current wall-clock time.
    fn now(&self) -> WallTime;

    /// A future that finishes once `d` has passed on this clock.
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
}

/// The system's clock and Tokio's timer: what `quench run` uses.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> WallTime {
        WallTime::now()
    }

    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// A clock that stands still until it is moved: a wait moves it forward by the time waited and finishes at once,
/// and [`ManualClock::advance`] moves it by hand. Tests read back the waits they caused ([`ManualClock::waits`]).
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now_ms: Arc<AtomicI64>,
    waits: Arc<Mutex<Vec<Duration>>>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn at(start: WallTime) -> ManualClock {
        let c = ManualClock::default();
        c.now_ms.store(start.0, Ordering::SeqCst);
        c
    }

    /// Move the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.now_ms
            .fetch_add(d.as_millis().min(i64::MAX as u128) as i64, Ordering::SeqCst);
    }

    /// Every wait asked of this clock so far, in order.
    pub fn waits(&self) -> Vec<Duration> {
        self.waits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> WallTime {
        WallTime(self.now_ms.load(Ordering::SeqCst))
    }

    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.waits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(d);
        self.advance(d);
        // still yield once, so a loop of zero-length waits cannot starve the runtime
        Box::pin(tokio::task::yield_now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_moves_only_by_its_waits_and_by_hand() {
        let c = ManualClock::at(WallTime(1_000));
        assert_eq!(c.now(), WallTime(1_000));
        c.sleep(Duration::from_millis(250)).await;
        assert_eq!(c.now(), WallTime(1_250));
        c.advance(Duration::from_secs(2));
        assert_eq!(c.now(), WallTime(3_250));
        assert_eq!(c.waits(), vec![Duration::from_millis(250)]);
        // clones share the time
        let other = c.clone();
        other.advance(Duration::from_millis(1));
        assert_eq!(c.now(), WallTime(3_251));
    }
}
