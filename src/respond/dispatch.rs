//! The dispatcher: hands a decision to every target that takes it, and delivers each (decision, target) command
//! until it succeeds, fails for good, runs out of attempts or passes its deadline, honouring `Retry-After`, the
//! target's rate limit and its budget, on an injected wall clock ([`crate::clock`]).
//!
//! In: decisions (and, from the outbox, single commands). Out: HTTP requests through the targets, one [`Delivery`]
//! report per command, counters. State: the deliveries in flight (tracked so shutdown can wait for them); no
//! state per event.

use super::*;

/// The result of one (decision, target) dispatch.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub decision_id: String,
    /// The idempotency key: decision id and target name.
    pub command_id: String,
    pub action: Action,
    pub principal: Option<String>,
    pub target: String,
    pub attempts: u32,
    /// Ok(HTTP status) or the last error (credentials redacted).
    pub result: Result<u16, String>,
    /// Whether a retry could still help when it failed (it failed for lack of time or attempts).
    pub retryable: bool,
    pub dry_run: bool,
    /// Wall clock when the delivery ended (the target's answer, or the refusal).
    pub finished_at: WallTime,
    /// Not sent: the target's revocation budget was spent. `Some(true)` on the first refusal of an episode (the
    /// one that announces it).
    pub over_budget: Option<bool>,
}

/// Counters of the respond stage.
#[derive(Default, Debug)]
pub struct RespondStats {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub retries: AtomicU64,
    pub dry_run: AtomicU64,
    pub over_budget: AtomicU64,
}

/// The idempotency key of a (decision, target) command.
pub fn command_id(decision_id: &str, target: &str) -> String {
    format!("{decision_id}.{target}")
}

/// Hands decisions to targets without blocking the caller.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    targets: Vec<Target>,
    http: reqwest::Client,
    cfg: RespondConfig,
    stats: RespondStats,
    reports: Option<mpsc::UnboundedSender<Delivery>>,
    tracker: in_flight::Tracker,
    /// The wall clock of deadlines, budgets and retry waits.
    clock: Arc<dyn crate::clock::Clock>,
}

/// A count of the deliveries in flight, which shutdown ([`Dispatcher::drain`]) waits to reach zero.
mod in_flight {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::sync::Notify;

    #[derive(Default, Clone)]
    pub struct Tracker(Arc<(AtomicUsize, Notify)>);
    pub struct Guard(Arc<(AtomicUsize, Notify)>);
    impl Tracker {
        pub fn enter(&self) -> Guard {
            self.0 .0.fetch_add(1, Ordering::SeqCst);
            Guard(self.0.clone())
        }
        pub async fn idle(&self) {
            loop {
                let n = self.0 .1.notified();
                if self.0 .0.load(Ordering::SeqCst) == 0 {
                    return;
                }
                n.await;
            }
        }
    }
    impl Drop for Guard {
        fn drop(&mut self) {
            if self.0 .0.fetch_sub(1, Ordering::SeqCst) == 1 {
                self.0 .1.notify_waiters();
            }
        }
    }
}

impl Dispatcher {
    /// `reports` receives one [`Delivery`] per (decision, target) when given. Runs on the system clock.
    pub fn new(
        cfg: RespondConfig,
        targets: Vec<Target>,
        reports: Option<mpsc::UnboundedSender<Delivery>>,
    ) -> Result<Self, RespondError> {
        Dispatcher::with_clock(cfg, targets, reports, Arc::new(crate::clock::SystemClock))
    }

    /// [`Dispatcher::new`] on the given wall clock (tests move a [`crate::clock::ManualClock`] themselves).
    pub fn with_clock(
        cfg: RespondConfig,
        targets: Vec<Target>,
        reports: Option<mpsc::UnboundedSender<Delivery>>,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> Result<Self, RespondError> {
        let mut b = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.timeout_ms))
            .user_agent(concat!("quench/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &cfg.ca_bundle {
            for c in load_ca_bundle(path)? {
                b = b.add_root_certificate(c);
            }
        }
        let http = b
            .build()
            .map_err(|e| RespondError::Transport(e.to_string()))?;
        Ok(Dispatcher {
            inner: Arc::new(Inner {
                targets,
                http,
                cfg,
                stats: RespondStats::default(),
                reports,
                tracker: Default::default(),
                clock,
            }),
        })
    }

    /// The current time on this dispatcher's wall clock.
    pub fn now(&self) -> WallTime {
        self.inner.clock.now()
    }

    pub fn stats(&self) -> &RespondStats {
        &self.inner.stats
    }

    pub fn config(&self) -> &RespondConfig {
        &self.inner.cfg
    }

    /// True when no target is configured: decisions are logged, not sent.
    pub fn dry_run(&self) -> bool {
        self.inner.targets.is_empty()
    }

    /// The names of the targets that act on `d` (none for shadow decisions).
    pub fn targets_for<'a>(&'a self, d: &'a Decision) -> impl Iterator<Item = &'a str> + 'a {
        self.inner
            .targets
            .iter()
            .filter(move |t| !d.shadow && t.takes(d))
            .map(|t| t.name.as_str())
    }

    /// Whether any target's revocations are confirmed from the vendor's log.
    pub fn watches_confirmations(&self) -> bool {
        self.inner
            .targets
            .iter()
            .any(|t| t.confirm_within_secs.is_some())
    }

    /// The vendor log and the time within which target `name`'s revocations must be confirmed, if watched.
    pub fn confirmation_of(&self, name: &str) -> Option<(&'static str, u64)> {
        let t = self.inner.targets.iter().find(|t| t.name == name)?;
        Some((t.confirmed_by?.as_str(), t.confirm_within_secs?))
    }

    /// Log (and report) a decision a dry run would have acted on.
    fn dry(&self, d: &Decision) {
        if d.action >= Action::StepUp && !d.shadow {
            self.inner.stats.dry_run.fetch_add(1, Ordering::Relaxed);
            tracing::info!(decision = %d.decision_id, action = d.action.as_str(), principal = ?d.principal, "dry run: no target configured, nothing sent");
            self.report(Delivery {
                decision_id: d.decision_id.clone(),
                command_id: command_id(&d.decision_id, "dry-run"),
                action: d.action,
                principal: d.principal.clone(),
                target: "dry-run".into(),
                attempts: 0,
                result: Ok(0),
                retryable: false,
                dry_run: true,
                over_budget: None,
                finished_at: self.now(),
            });
        }
    }

    /// Start dispatching `d` to every target that handles it, directly (no outbox: `replay --dispatch`).
    /// Returns at once (needs a Tokio runtime).
    pub fn dispatch(&self, d: Arc<Decision>) {
        if self.dry_run() {
            return self.dry(&d);
        }
        let names: Vec<String> = self.targets_for(&d).map(String::from).collect();
        let started = self.now();
        for name in names {
            let me = self.clone();
            let d = d.clone();
            let guard = self.inner.tracker.enter();
            tokio::spawn(async move {
                let _guard = guard;
                me.deliver(&name, &d, started).await;
            });
        }
    }

    /// Deliver `d` to the target `name` until it succeeds, fails for good, runs out of attempts or passes
    /// `started + give_up_after_secs` (wall clock: `started` is when the command was first handed over). Honours
    /// `Retry-After` and the target's rate limit.
    pub async fn deliver(&self, name: &str, d: &Decision, started: WallTime) -> Delivery {
        let inner = &self.inner;
        let key = command_id(&d.decision_id, name);
        let Some(t) = inner.targets.iter().find(|t| t.name == name) else {
            inner.stats.failed.fetch_add(1, Ordering::Relaxed);
            return self.report(Delivery {
                decision_id: d.decision_id.clone(),
                command_id: key,
                action: d.action,
                principal: d.principal.clone(),
                target: name.into(),
                attempts: 0,
                result: Err(format!("target {name:?} is not configured (any more)")),
                retryable: false,
                dry_run: false,
                over_budget: None,
                finished_at: self.now(),
            });
        };
        if let Some(b) = &t.budget {
            if let Err(first) = b.take(self.now().0) {
                inner.stats.over_budget.fetch_add(1, Ordering::Relaxed);
                tracing::error!(decision = %d.decision_id, target = %t.name, action = d.action.as_str(), "target revocation budget exhausted: not sent, alert only");
                return self.report(Delivery {
                    decision_id: d.decision_id.clone(),
                    command_id: key,
                    action: d.action,
                    principal: d.principal.clone(),
                    target: t.name.clone(),
                    attempts: 0,
                    result: Err(format!(
                        "not sent: the revocation budget of target {:?} is spent ({} per {} s); alert only",
                        t.name,
                        b.max,
                        b.window_ms / 1000
                    )),
                    retryable: false,
                    dry_run: false,
                    over_budget: Some(first),
                    finished_at: self.now(),
                });
            }
        }
        let deadline_ms = started.0 + inner.cfg.give_up_after_secs as i64 * 1000;
        let max_backoff = Duration::from_millis(inner.cfg.max_backoff_ms);
        let mut delay = Duration::from_millis(inner.cfg.backoff_ms);
        let mut attempts = 0;
        let (result, retryable) = loop {
            if self.now().0 >= deadline_ms {
                let e = format!(
                    "given up: not delivered within give_up_after_secs = {}",
                    inner.cfg.give_up_after_secs
                );
                tracing::error!(decision = %d.decision_id, target = %t.name, attempts, "revocation given up");
                inner.stats.failed.fetch_add(1, Ordering::Relaxed);
                break (Err(e), true);
            }
            if let Some(l) = &t.limit {
                l.acquire().await;
            }
            attempts += 1;
            match t.responder.send(&inner.http, d, &key).await {
                Ok(status) => {
                    inner.stats.sent.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(decision = %d.decision_id, target = %t.name, action = d.action.as_str(), status, attempts, "revocation sent");
                    break (Ok(status), false);
                }
                Err(e) if e.retryable() && attempts < inner.cfg.max_attempts => {
                    inner.stats.retries.fetch_add(1, Ordering::Relaxed);
                    // the server's Retry-After wins; otherwise exponential backoff with jitter
                    let wait = match &e {
                        RespondError::Status {
                            retry_after: Some(r),
                            ..
                        } => r.wait(self.now()),
                        _ => delay.mul_f64(1.0 + fastrand::f64() * 0.5).min(max_backoff),
                    };
                    let left = Duration::from_millis((deadline_ms - self.now().0).max(0) as u64);
                    let e = error_text(&e, &t.responder.secrets());
                    tracing::warn!(decision = %d.decision_id, target = %t.name, attempts, wait_ms = wait.as_millis() as u64, error = %e, "revocation failed, retrying");
                    inner.clock.sleep(wait.min(left)).await;
                    delay = (delay * 2).min(max_backoff);
                }
                Err(e) => {
                    inner.stats.failed.fetch_add(1, Ordering::Relaxed);
                    let retryable = e.retryable();
                    let e = error_text(&e, &t.responder.secrets());
                    tracing::error!(decision = %d.decision_id, target = %t.name, attempts, retryable, error = %e, "revocation failed");
                    break (Err(e), retryable);
                }
            }
        };
        self.report(Delivery {
            decision_id: d.decision_id.clone(),
            command_id: key,
            action: d.action,
            principal: d.principal.clone(),
            target: t.name.clone(),
            attempts,
            result,
            retryable,
            dry_run: false,
            over_budget: None,
            finished_at: self.now(),
        })
    }

    fn report(&self, r: Delivery) -> Delivery {
        if let Some(tx) = &self.inner.reports {
            let _ = tx.send(r.clone());
        }
        r
    }

    /// Wait until every dispatch started so far has finished.
    pub async fn drain(&self) {
        self.inner.tracker.idle().await;
    }
}

/// The notice that a target's spent revocation budget refused `d` ([`crate::decide::notice::target_budget`]), made
/// when the refusal was.
pub fn budget_notice(delivery: &Delivery, d: &Decision) -> Decision {
    let why = delivery
        .result
        .as_ref()
        .err()
        .map(String::as_str)
        .unwrap_or("");
    crate::decide::notice::target_budget(d, &delivery.target, why, delivery.finished_at.as_ts())
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::event::Ts;

    /// Found by a mutation run: a target's budget notice is decided now, is never a shadow record, carries no trust
    /// of its own, and keeps the refused decision's event time and subject.
    #[test]
    fn a_budget_notice_is_a_fresh_alert_about_the_refused_decision() {
        let d = Decision {
            decision_id: "a".repeat(32),
            event_time: Ts(5_000),
            action: Action::TerminateSession,
            principal: Some("alice@example.com".into()),
            principal_kind: crate::event::PrincipalKind::Human,
            session_id: Some("s-1".into()),
            score: 0.9,
            evidence: vec!["e1".into()],
            shadow: true,
            trust: crate::decide::Trust::vouched_by("okta", crate::event::Family::Idp, "e1"),
            ..Default::default()
        };
        let delivery = Delivery {
            decision_id: d.decision_id.clone(),
            command_id: "c".into(),
            action: d.action,
            principal: d.principal.clone(),
            target: "okta".into(),
            attempts: 0,
            result: Err(
                "not sent: the revocation budget of target \"okta\" is spent (1 per 3600 s)".into(),
            ),
            retryable: false,
            dry_run: false,
            over_budget: Some(true),
            finished_at: WallTime::now(),
        };
        let n = budget_notice(&delivery, &d);
        assert_eq!(n.decision_id, format!("{}-okta-budget", "a".repeat(24)));
        assert_eq!(n.action, Action::Alert);
        assert!(n.decided_at.0 > 0);
        assert_eq!(
            (n.event_time, n.session_id.as_deref()),
            (Ts(5_000), Some("s-1"))
        );
        assert!(!n.shadow);
        assert_eq!(n.trust, crate::decide::Trust::default());
        assert!(n.guardrail.unwrap().contains("1 per 3600 s"));
    }
}
