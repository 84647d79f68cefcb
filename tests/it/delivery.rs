//! Delivery under pressure: a target that answers 429 with `Retry-After` is retried no sooner than it asked, and
//! one that keeps failing is given up after `give_up_after_secs`, with a report saying a retry could still help.
//! The dispatcher runs on a [`ManualClock`]: its waits move the clock instead of taking real time, and the test
//! server stamps each request with that clock, so the tests assert the times without sleeping.

#![allow(clippy::unwrap_used)]

use crate::support as common;

use quench::clock::{Clock, ManualClock, WallTime};
use quench::decide::Action;
use quench::event::Ts;
use quench::respond::{build_targets, outbox, Dispatcher, RespondConfig};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The clock every dispatcher of these tests runs on, shared with its test server.
fn clock() -> ManualClock {
    ManualClock::at(WallTime(Ts::parse("2026-11-02T08:00:00Z").unwrap().0))
}

/// Answers with the scripted statuses in turn (the last one repeats); records when each request came, on `clock`.
async fn scripted(
    script: Vec<&'static str>,
    clock: &ManualClock,
) -> (std::net::SocketAddr, Arc<Mutex<Vec<WallTime>>>) {
    let clock = clock.clone();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let addr = common::serve(move |_, n| {
        s2.lock().unwrap().push(clock.now());
        common::Reply::status(script[n.min(script.len() - 1)])
    })
    .await
    .addr;
    (addr, seen)
}

fn dispatcher(addr: std::net::SocketAddr, extra: &str, clock: &ManualClock) -> Dispatcher {
    std::env::set_var("QUENCH_TEST_DELIVERY_SECRET", "delivery-secret-0123456789");
    let toml = format!(
        "enforce = true\n{extra}\n[[targets]]\ntype = \"webhook\"\nurl = \"http://{addr}/hook\"\nsecret_env = \"QUENCH_TEST_DELIVERY_SECRET\"\n"
    );
    let cfg: RespondConfig = toml::from_str(&toml).unwrap();
    let targets = build_targets(&cfg).unwrap();
    Dispatcher::with_clock(cfg, targets, None, Arc::new(clock.clone())).unwrap()
}

/// A target answering `status` with `retry-after: 1`, then 202: retried once, no sooner than it asked (the
/// computed backoff alone would retry after 10 ms).
async fn retry_after_is_honoured(status: &'static str, id: &str) {
    let clock = clock();
    let (addr, seen) = scripted(vec![status, "202 Accepted"], &clock).await;
    let disp = dispatcher(addr, "backoff_ms = 10", &clock);
    let r = disp
        .deliver("webhook", &common::agent_revocation(id), clock.now())
        .await;
    assert_eq!(r.result, Ok(202));
    assert_eq!(r.attempts, 2);
    assert_eq!(r.command_id, format!("{}.webhook", id.repeat(32)));
    // one wait, of the second the server asked for; the retry came that much later
    assert_eq!(clock.waits(), vec![Duration::from_secs(1)]);
    let seen = seen.lock().unwrap();
    assert_eq!(seen[1].0 - seen[0].0, 1000, "{seen:?}");
    assert_eq!(r.finished_at, seen[1]);
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_no_sooner_than_asked() {
    retry_after_is_honoured("429 Too Many Requests\r\nretry-after: 1", "d").await;
}

#[tokio::test]
async fn a_503_with_retry_after_is_retried_no_sooner_than_asked() {
    retry_after_is_honoured("503 Service Unavailable\r\nretry-after: 1", "e").await;
}

#[tokio::test]
async fn a_target_that_keeps_failing_is_given_up_after_the_deadline() {
    let clock = clock();
    let (addr, seen) = scripted(vec!["503 Service Unavailable"], &clock).await;
    let disp = dispatcher(
        addr,
        "backoff_ms = 50\nmax_backoff_ms = 200\nmax_attempts = 1000\ngive_up_after_secs = 1",
        &clock,
    );
    let decided_at = clock.now();
    let r = disp
        .deliver("webhook", &common::agent_revocation("d"), decided_at)
        .await;
    // the last request went out before the deadline and the report came at it: no wait ran past it
    let seen = seen.lock().unwrap().clone();
    assert!(seen.last().unwrap().0 < decided_at.0 + 1000, "{seen:?}");
    assert_eq!(r.finished_at.0, decided_at.0 + 1000);
    assert!(
        clock
            .waits()
            .iter()
            .all(|w| *w <= Duration::from_millis(200)),
        "{:?}",
        clock.waits()
    );
    let e = r.result.clone().unwrap_err();
    assert!(
        e.contains("given up") && e.contains("give_up_after_secs = 1"),
        "{e}"
    );
    assert!(r.retryable);
    assert!(r.attempts >= 3 && r.attempts < 1000, "{}", r.attempts);
    assert_eq!(seen.len() as u32, r.attempts);
    // the outbox records it as given up (and dead-letters it)
    let o = outbox::Outcome::of(&r);
    assert_eq!(o.status, outbox::OutcomeStatus::GivenUp);
    assert_eq!(o.attempts, r.attempts);
}

#[tokio::test]
async fn a_refusal_no_retry_can_fix_is_not_retried() {
    let clock = clock();
    let (addr, seen) = scripted(vec!["403 Forbidden"], &clock).await;
    let disp = dispatcher(addr, "backoff_ms = 10", &clock);
    let r = disp
        .deliver("webhook", &common::agent_revocation("d"), clock.now())
        .await;
    assert!(clock.waits().is_empty());
    assert!(r.result.clone().unwrap_err().contains("403"));
    assert!(!r.retryable);
    assert_eq!(
        outbox::Outcome::of(&r).status,
        outbox::OutcomeStatus::Failed
    );
    assert_eq!(r.attempts, 1);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_targets_spent_budget_stops_sending_and_announces_it_once() {
    let clock = clock();
    let (addr, seen) = scripted(vec!["202 Accepted"], &clock).await;
    // a webhook with a budget of 2 per hour
    std::env::set_var("QUENCH_TEST_DELIVERY_SECRET", "delivery-secret-0123456789");
    let toml = format!(
        "enforce = true\n[[targets]]\ntype = \"webhook\"\nurl = \"http://{addr}/hook\"\nsecret_env = \"QUENCH_TEST_DELIVERY_SECRET\"\nmax_revocations = 2\nbudget_window_secs = 3600\n"
    );
    let cfg: RespondConfig = toml::from_str(&toml).unwrap();
    let disp = Dispatcher::with_clock(
        cfg.clone(),
        build_targets(&cfg).unwrap(),
        None,
        Arc::new(clock.clone()),
    )
    .unwrap();
    let mut results = Vec::new();
    for i in 0..4 {
        let mut d = common::agent_revocation("d");
        d.decision_id = format!("{i:032}");
        results.push(disp.deliver("webhook", &d, clock.now()).await);
        clock.advance(Duration::from_secs(60));
    }
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "only two requests may go out"
    );
    assert_eq!(results[0].result, Ok(202));
    assert_eq!(results[1].result, Ok(202));
    assert_eq!(
        results[2].over_budget,
        Some(true),
        "the first refusal announces it"
    );
    assert_eq!(results[3].over_budget, Some(false));
    assert!(results[2].result.clone().unwrap_err().contains("budget"));
    assert_eq!(
        outbox::Outcome::of(&results[2]).status,
        outbox::OutcomeStatus::OverBudget
    );
    let notice = quench::respond::budget_notice(&results[2], &{
        let mut d = common::agent_revocation("d");
        d.decision_id = format!("{:032}", 2);
        d
    });
    assert_eq!(notice.action, Action::Alert);
    assert!(notice.decision_id.ends_with("-webhook-budget"));
    assert!(notice.guardrail.unwrap().contains("2 per 3600 s"));
    // made when the refusal was, on the dispatcher's clock
    assert_eq!(notice.decided_at, results[2].finished_at.as_ts());
    assert_eq!(notice.kind, quench::decide::DecisionKind::TargetBudget);
}

#[tokio::test]
async fn a_target_that_keeps_failing_is_given_up_after_max_attempts() {
    let clock = clock();
    let (addr, seen) = scripted(vec!["503 Service Unavailable"], &clock).await;
    let disp = dispatcher(
        addr,
        "backoff_ms = 10\nmax_backoff_ms = 20\nmax_attempts = 3\ngive_up_after_secs = 600",
        &clock,
    );
    let r = disp
        .deliver("webhook", &common::agent_revocation("f"), clock.now())
        .await;
    // two waits between three attempts, each the backoff with up to half again of jitter, capped
    let waits = clock.waits();
    assert_eq!(waits.len(), 2, "{waits:?}");
    assert!(
        waits
            .iter()
            .all(|w| *w >= Duration::from_millis(10) && *w <= Duration::from_millis(20)),
        "{waits:?}"
    );
    assert!(
        r.result.clone().unwrap_err().contains("503"),
        "{:?}",
        r.result
    );
    assert_eq!(r.attempts, 3);
    assert_eq!(
        seen.lock().unwrap().len(),
        3,
        "exactly max_attempts requests"
    );
    assert_eq!(
        outbox::Outcome::of(&r).status,
        outbox::OutcomeStatus::GivenUp
    );
}
