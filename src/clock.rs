//! The wall clock of the parts that act in real time (respond's dispatch, retries, budgets, and the outbox's
//! confirmation windows), behind a trait so that tests run them on a clock they move themselves.
//!
//! In: requests for the time and for waits. Out: wall-clock [`Ts`] and futures that finish when a wait is over.
//! State: [`SystemClock`] none (it reads the system time and waits on Tokio's timer); [`ManualClock`] its current
//! time, moved forward only by its waits and by [`ManualClock::advance`], and the waits it was asked for.
//!
//! Event time (when a log says something happened) is not this clock's: it comes with the events, and the
//! pipeline's processing clock is [`crate::timeline`].

use crate::event::Ts;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A wall clock. `now` is the only required method besides `sleep`.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current wall-clock time.
    fn now(&self) -> Ts;

    /// A future that finishes once `d` has passed on this clock.
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
}

/// The system's clock and Tokio's timer: what `quench run` uses.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Ts {
        Ts::now()
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
    pub fn at(start: Ts) -> ManualClock {
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
    fn now(&self) -> Ts {
        Ts(self.now_ms.load(Ordering::SeqCst))
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
        let c = ManualClock::at(Ts(1_000));
        assert_eq!(c.now(), Ts(1_000));
        c.sleep(Duration::from_millis(250)).await;
        assert_eq!(c.now(), Ts(1_250));
        c.advance(Duration::from_secs(2));
        assert_eq!(c.now(), Ts(3_250));
        assert_eq!(c.waits(), vec![Duration::from_millis(250)]);
        // clones share the time
        let other = c.clone();
        other.advance(Duration::from_millis(1));
        assert_eq!(c.now(), Ts(3_251));
    }
}
