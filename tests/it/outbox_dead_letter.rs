//! Commands that cannot be carried out end in the open: a target that refuses (403) gets a `failed` outcome at
//! once, one that keeps answering 503 gets `given_up` after `give_up_after_secs`; both are dead-lettered with the
//! reason in headers, and neither is retried after that.
//!
//! Through librdkafka's mock cluster with `quench::runtime::run_kafka` (what `quench run` runs).

#![allow(clippy::unwrap_used)]

use crate::support as common;

use quench::respond::{outbox, RespondConfig};
use std::sync::{Arc, Mutex};

/// A target that refuses `/refuse` for good (403) and answers everything else 503 (retryable); records each
/// request's target.
async fn server() -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let addr = common::serve(move |r, _| {
        s2.lock().unwrap().push(r.target.clone());
        common::Reply::status(if r.target == "/refuse" {
            "403 Forbidden"
        } else {
            "503 Service Unavailable"
        })
    })
    .await
    .addr;
    (addr, seen)
}

/// The outcome records on the commands topic.
fn outcomes(bootstrap: &str) -> Vec<outbox::Outcome> {
    common::payloads(bootstrap, "quench.commands")
        .iter()
        .filter_map(
            |b| match serde_json::from_slice::<outbox::Record>(b).unwrap() {
                outbox::Record::Outcome(o) => Some(o),
                _ => None,
            },
        )
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_and_given_up_commands_are_dead_lettered_with_their_reason() {
    let (_cluster, bootstrap, k) = common::demo_cluster("quench-dead-letter").await;
    let (addr, seen) = server().await;
    std::env::set_var("QUENCH_TEST_DLQ_SECRET", "dead-letter-secret-0123456789");
    // the demo's session termination (alice) goes to both targets
    let respond: RespondConfig = toml::from_str(&format!(
        "enforce = true\nbackoff_ms = 50\nmax_backoff_ms = 200\nmax_attempts = 1000\ngive_up_after_secs = 2\n\
         [[targets]]\ntype = \"webhook\"\nname = \"refuse\"\nurl = \"http://{addr}/refuse\"\nsecret_env = \"QUENCH_TEST_DLQ_SECRET\"\nactions = [\"terminate_session\"]\n\
         [[targets]]\ntype = \"webhook\"\nname = \"busy\"\nurl = \"http://{addr}/busy\"\nsecret_env = \"QUENCH_TEST_DLQ_SECRET\"\nactions = [\"terminate_session\"]\n"
    ))
    .unwrap();
    let report = common::run_to_end(&k, &respond).await;
    assert_eq!(report.commands_written, 2);

    let outcomes = outcomes(&bootstrap);
    let of = |t: &str| outcomes.iter().find(|o| o.target == t).unwrap();
    assert_eq!(of("refuse").status, outbox::OutcomeStatus::Failed);
    assert_eq!(of("refuse").attempts, 1);
    assert_eq!(of("busy").status, outbox::OutcomeStatus::GivenUp);
    assert!(of("busy").attempts >= 3, "{:?}", of("busy"));
    assert!(of("busy")
        .error
        .as_deref()
        .unwrap()
        .contains("give_up_after_secs = 2"));

    // one dead letter each, the outcome as payload and the reason in headers
    let dlq: Vec<(outbox::Record, Vec<(String, String)>)> =
        common::read_topic(&bootstrap, "quench.deadletter")
            .into_iter()
            .filter(|(_, h)| {
                h.iter()
                    .any(|(k, v)| k == "quench.error" && v.starts_with("revocation_"))
            })
            .map(|(p, h)| (serde_json::from_slice(&p).unwrap(), h))
            .collect();
    assert_eq!(dlq.len(), 2, "{dlq:?}");
    let header = |h: &[(String, String)], k: &str| {
        h.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let mut codes: Vec<String> = dlq.iter().map(|(_, h)| header(h, "quench.error")).collect();
    codes.sort();
    assert_eq!(codes, ["revocation_failed", "revocation_given_up"]);
    for (rec, h) in &dlq {
        assert!(matches!(rec, outbox::Record::Outcome(_)));
        assert!(header(h, "quench.source").starts_with("quench.commands/0@"));
        assert!(!header(h, "quench.reason").is_empty());
    }
    // the refusal was sent once; nothing was sent after the outcomes
    let seen = seen.lock().unwrap();
    assert_eq!(seen.iter().filter(|t| *t == "/refuse").count(), 1);
    assert_eq!(
        seen.iter().filter(|t| *t == "/busy").count() as u32,
        of("busy").attempts
    );
}

/// A target's spent budget is announced by the dispatch loop itself: with a budget of one revocation, the demo's
/// four acting decisions send one request, record three `over_budget` outcomes, and put exactly one notice on the
/// decisions topic (an alert naming the target and its budget), not one per refused command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_targets_spent_budget_is_announced_once_on_the_decisions_topic() {
    let (_cluster, bootstrap, k) = common::demo_cluster("quench-target-budget").await;
    let addr = common::accept_all("202 Accepted").await;
    std::env::set_var(
        "QUENCH_TEST_BUDGET_SECRET",
        "target-budget-secret-0123456789",
    );
    let respond: RespondConfig = toml::from_str(&format!(
        "enforce = true\n[[targets]]\ntype = \"webhook\"\nname = \"soar\"\nurl = \"http://{addr}/hook\"\nsecret_env = \"QUENCH_TEST_BUDGET_SECRET\"\nactions = [\"step_up\", \"revoke_token\", \"terminate_session\"]\nmax_revocations = 1\nbudget_window_secs = 3600\n"
    ))
    .unwrap();
    let report = common::run_to_end(&k, &respond).await;
    assert_eq!(report.commands_written, 4);

    let outcomes = outcomes(&bootstrap);
    let count = |s: outbox::OutcomeStatus| outcomes.iter().filter(|o| o.status == s).count();
    assert_eq!(outcomes.len(), 4, "{outcomes:?}");
    assert_eq!(count(outbox::OutcomeStatus::Delivered), 1, "{outcomes:?}");
    assert_eq!(count(outbox::OutcomeStatus::OverBudget), 3, "{outcomes:?}");

    let decisions: Vec<quench::decide::Decision> = common::payloads(&bootstrap, "quench.decisions")
        .iter()
        .map(|b| serde_json::from_slice(b).unwrap())
        .collect();
    let notices: Vec<_> = decisions
        .iter()
        .filter(|d| d.decision_id.ends_with("-soar-budget"))
        .collect();
    assert_eq!(notices.len(), 1, "{decisions:#?}");
    assert_eq!(notices[0].action, quench::decide::Action::Alert);
    let g = notices[0].guardrail.as_deref().unwrap();
    assert!(g.contains("soar") && g.contains("1 per 3600 s"), "{g}");
    // it is about the first refused decision, and carries no trust of its own (it can back no revocation)
    let refused = decisions
        .iter()
        .find(|d| notices[0].decision_id.starts_with(&d.decision_id[..24]) && d.guardrail.is_none())
        .unwrap();
    assert_ne!(refused.action, quench::decide::Action::Alert);
    assert_eq!(notices[0].event_time, refused.event_time);
    assert_eq!(notices[0].trust, quench::decide::Trust::default());
    assert!(!notices[0].shadow);
}
