//! What limits how often a target acts: its revocation budget (requests per window of wall clock, past which
//! commands are alert-only) and its rate limit (requests per second with bursts).
//!
//! In: a request about to go out. Out: a go, a wait, or a refusal. State: per target, the times of its recent
//! revocations (budget) and its theoretical arrival time (rate limit).

use super::*;

/// A target's revocation budget when its config sets none: this many requests per hour of wall clock.
pub const DEFAULT_TARGET_BUDGET: usize = 20;

/// A target's revocation budget: at most `max` requests per `window_ms` of wall clock; past it, commands are not
/// sent (alert only) until the window frees up.
pub struct Budget {
    pub(crate) max: usize,
    pub(crate) window_ms: i64,
    pub(crate) state: std::sync::Mutex<(std::collections::VecDeque<i64>, bool)>,
}

impl Budget {
    pub fn new(max: usize, window_secs: u64) -> Self {
        Budget {
            max,
            window_ms: window_secs as i64 * 1000,
            state: Default::default(),
        }
    }

    /// Take one revocation at `now_ms`: `Ok` when within budget, else `Err(first)` where `first` marks the first
    /// refusal since the budget was last available.
    pub fn take(&self, now_ms: i64) -> Result<(), bool> {
        let mut st = match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let (recent, exhausted) = &mut *st;
        while recent
            .front()
            .is_some_and(|t| *t <= now_ms - self.window_ms)
        {
            recent.pop_front();
        }
        if recent.len() < self.max {
            recent.push_back(now_ms);
            *exhausted = false;
            Ok(())
        } else {
            let first = !*exhausted;
            *exhausted = true;
            Err(first)
        }
    }
}

/// A per-target request rate limit (GCRA: `rate` per second on average, bursts of up to `burst`).
pub struct RateLimit {
    interval: Duration,
    tolerance: Duration,
    tat: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

impl RateLimit {
    pub fn new(rate: f64, burst: u32) -> Self {
        let interval = Duration::from_secs_f64(1.0 / rate);
        RateLimit {
            interval,
            tolerance: interval * burst.saturating_sub(1),
            tat: tokio::sync::Mutex::new(None),
        }
    }

    /// Wait for this request's slot.
    pub async fn acquire(&self) {
        let at = {
            let mut tat = self.tat.lock().await;
            let now = tokio::time::Instant::now();
            let t = tat.map_or(now, |t| t.max(now));
            *tat = Some(t + self.interval);
            t.checked_sub(self.tolerance).unwrap_or(now).max(now)
        };
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_rate_limit_spaces_requests_after_the_burst() {
        let l = RateLimit::new(2.0, 3);
        let t0 = tokio::time::Instant::now();
        let mut at = Vec::new();
        for _ in 0..6 {
            l.acquire().await;
            at.push((tokio::time::Instant::now() - t0).as_millis());
        }
        // three at once, then one every 500 ms
        assert_eq!(at, vec![0, 0, 0, 500, 1000, 1500]);
    }
}
