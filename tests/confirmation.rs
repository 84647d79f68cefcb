//! Revocations are confirmed from the vendor's own log: the Okta session clear for alice is confirmed when Okta's
//! `user.session.clear` for her arrives on the input topic, with the time it took; a Graph revocation no Entra
//! audit record ever confirms raises an alert once `confirm_within_secs` has passed.
//!
//! Through librdkafka's mock cluster, with `quench::app::run_kafka` (what `quench run` runs) and a local HTTP
//! server that accepts the revocation requests.

#![allow(clippy::unwrap_used)]

mod common;

use quench::app;
use quench::config::{Config, KafkaConfig};
use quench::decide::{Action, Decision};
use quench::ingest::kafka::RunOptions;
use quench::pipeline::Pipeline;
use quench::respond::confirm::{ConfirmStatus, Confirmation};
use quench::respond::{build_targets, outbox, Dispatcher, RespondConfig};

fn confirmations(bootstrap: &str) -> Vec<Confirmation> {
    common::payloads(bootstrap, "quench.commands")
        .iter()
        .filter_map(
            |b| match serde_json::from_slice::<outbox::Record>(b).unwrap() {
                outbox::Record::Confirmation(c) => Some(c),
                _ => None,
            },
        )
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_is_confirmed_from_the_vendors_log_or_raises_an_alert() {
    let (_cluster, bootstrap, k) = common::demo_cluster("quench-confirm").await;
    let addr = common::accept_all("204 No Content").await;
    std::env::set_var("QUENCH_TEST_CONFIRM_OKTA", "00confirmtesttoken0123");
    std::env::set_var(
        "QUENCH_TEST_CONFIRM_GRAPH",
        "eyJ0eXAiOiJKV1QifQ.confirm.test",
    );
    let respond: RespondConfig = toml::from_str(&format!(
        "enforce = true\n[[targets]]\ntype = \"okta\"\nbase_url = \"http://{addr}\"\napi_token_env = \"QUENCH_TEST_CONFIRM_OKTA\"\nactions = [\"terminate_session\"]\nconfirm_within_secs = 120\n\
         [[targets]]\ntype = \"graph\"\nbase_url = \"http://{addr}/v1.0\"\naccess_token_env = \"QUENCH_TEST_CONFIRM_GRAPH\"\nactions = [\"terminate_session\"]\nconfirm_within_secs = 1\n"
    ))
    .unwrap();
    let (run, stop_tx) = start(&k, &respond);

    // alice's session is terminated at both targets: wait for both outcomes
    common::wait_until("both revocations were delivered", || {
        common::payloads(&bootstrap, "quench.commands")
            .iter()
            .filter(|b| b.starts_with(br#"{"kind":"outcome""#))
            .count()
            == 2
    })
    .await;
    // Graph's one second passes with no Entra audit record: an alert, and an unconfirmed record
    common::wait_until("the Graph revocation is reported unconfirmed", || {
        !confirmations(&bootstrap).is_empty()
    })
    .await;
    let c = confirmations(&bootstrap);
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(
        (c[0].target.as_str(), c[0].status),
        ("graph", ConfirmStatus::Unconfirmed)
    );
    let alerts: Vec<Decision> = common::payloads(&bootstrap, "quench.decisions")
        .iter()
        .map(|b| serde_json::from_slice(b).unwrap())
        .filter(|d: &Decision| d.decision_id.ends_with("-unconfirmed"))
        .collect();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].action, Action::Alert);
    assert_eq!(alerts[0].principal.as_deref(), Some("alice@example.com"));
    assert!(
        alerts[0].findings[0].reason.contains("graph"),
        "{:?}",
        alerts[0]
    );

    // Okta's System Log then shows the session clear the API call caused (actor: the API token's owner)
    let now = chrono::DateTime::from_timestamp_millis(quench::event::Ts::now().0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ");
    let clear = format!(
        r#"{{"uuid":"clear-alice-1","published":"{now}","eventType":"user.session.clear","actor":{{"id":"00uquenchsvc","type":"User","alternateId":"quench-svc@example.com","displayName":"Quench"}},"client":{{"ipAddress":"10.0.0.5"}},"outcome":{{"result":"SUCCESS"}},"target":[{{"id":"00ualice","type":"User","alternateId":"alice@example.com","displayName":"Alice"}}]}}"#
    );
    app::produce_lines(&k, app::DEMO_TOPIC, &[clear])
        .await
        .unwrap();
    common::wait_until("the Okta revocation is confirmed", || {
        confirmations(&bootstrap).len() == 2
    })
    .await;
    let c = confirmations(&bootstrap);
    let okta = c.iter().find(|c| c.target == "okta").unwrap();
    assert_eq!(okta.status, ConfirmStatus::Confirmed);
    assert_eq!(okta.event_id.as_deref(), Some("clear-alice-1"));
    assert_eq!(okta.event_action.as_deref(), Some("user.session.clear"));
    let secs = okta.seconds_to_confirm.unwrap();
    assert!((-60.0..60.0).contains(&secs), "{secs}");

    // A clean stop. (Stopping after the periodic commit had already committed every offset used to fail with
    // librdkafka's NoOffset, so `quench run` exited with an error on SIGTERM.)
    stop_tx.send(true).unwrap();
    let report = run.await.unwrap().unwrap();

    // Every record on the commands topic, and every decision in them, matches the published schemas.
    let load = |name: &str| {
        let text =
            std::fs::read_to_string(format!("{}/schemas/{name}", env!("CARGO_MANIFEST_DIR")))
                .unwrap();
        jsonschema::validator_for(&serde_json::from_str::<serde_json::Value>(&text).unwrap())
            .unwrap()
    };
    let (commands_schema, decision_schema) =
        (load("command.schema.json"), load("decision.schema.json"));
    let records = common::payloads(&bootstrap, "quench.commands");
    assert!(records.len() >= 6, "{}", records.len());
    for r in &records {
        let v: serde_json::Value = serde_json::from_slice(r).unwrap();
        let errors: Vec<String> = commands_schema
            .iter_errors(&v)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}\n{v}");
        if let Some(d) = v.get("decision") {
            assert!(decision_schema.is_valid(d), "{d}");
        }
    }
    for d in common::payloads(&bootstrap, "quench.decisions") {
        let v: serde_json::Value = serde_json::from_slice(&d).unwrap();
        assert!(decision_schema.is_valid(&v), "{v}");
    }
    assert_eq!((report.outbox.confirmed, report.outbox.unconfirmed), (1, 1));
    assert_eq!(report.outbox.awaiting_confirmation, 0);
}

/// Start `run_kafka` (what `quench run` runs) in a task; returns it and its stop switch.
fn start(
    k: &KafkaConfig,
    respond: &RespondConfig,
) -> (
    tokio::task::JoinHandle<Result<app::KafkaReport, app::AppError>>,
    tokio::sync::watch::Sender<bool>,
) {
    let cfg = Config {
        kafka: Some(k.clone()),
        respond: respond.clone(),
        ..Default::default()
    };
    let dispatcher =
        Dispatcher::new(respond.clone(), build_targets(respond).unwrap(), None).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let k = k.clone();
    let run = tokio::spawn(async move {
        let mut pipeline = Pipeline::new(&cfg).unwrap();
        app::run_kafka(
            &k,
            &mut pipeline,
            &dispatcher,
            RunOptions {
                stop_at_end: false,
                ..Default::default()
            },
            stop_rx,
            |_| {},
        )
        .await
    });
    (run, stop_tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_awaiting_confirmation_is_watched_again_after_a_restart() {
    let (_cluster, bootstrap, k) = common::demo_cluster("quench-confirm-restart").await;
    let addr = common::accept_all("204 No Content").await;
    std::env::set_var("QUENCH_TEST_CONFIRM_OKTA2", "00confirmtesttoken4567");
    let respond: RespondConfig = toml::from_str(&format!(
        "enforce = true\n[[targets]]\ntype = \"okta\"\nbase_url = \"http://{addr}\"\napi_token_env = \"QUENCH_TEST_CONFIRM_OKTA2\"\nactions = [\"terminate_session\"]\nconfirm_within_secs = 600\n"
    ))
    .unwrap();

    // run 1 delivers alice's session clear and stops before Okta's log confirms it
    let (run, stop) = start(&k, &respond);
    common::wait_until("the revocation was delivered", || {
        common::payloads(&bootstrap, "quench.commands")
            .iter()
            .any(|b| b.starts_with(br#"{"kind":"outcome""#))
    })
    .await;
    stop.send(true).unwrap();
    let first = run.await.unwrap().unwrap();
    assert_eq!(
        (first.outbox.awaiting_confirmation, first.outbox.confirmed),
        (1, 0)
    );

    // run 2 finds the delivered, unconfirmed revocation on the commands topic and watches for it again
    let (run, stop) = start(&k, &respond);
    let now = chrono::DateTime::from_timestamp_millis(quench::event::Ts::now().0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ");
    let clear = format!(
        r#"{{"uuid":"clear-alice-2","published":"{now}","eventType":"user.session.clear","actor":{{"id":"00uquenchsvc","type":"User","alternateId":"quench-svc@example.com"}},"client":{{"ipAddress":"10.0.0.5"}},"outcome":{{"result":"SUCCESS"}},"target":[{{"id":"00ualice","type":"User","alternateId":"alice@example.com"}}]}}"#
    );
    app::produce_lines(&k, app::DEMO_TOPIC, &[clear])
        .await
        .unwrap();
    common::wait_until("the revocation is confirmed", || {
        !confirmations(&bootstrap).is_empty()
    })
    .await;
    let c = confirmations(&bootstrap);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].status, ConfirmStatus::Confirmed);
    assert_eq!(c[0].event_id.as_deref(), Some("clear-alice-2"));
    stop.send(true).unwrap();
    let second = run.await.unwrap().unwrap();
    assert_eq!(second.outbox.confirmations_resumed, 1);
    assert_eq!(
        (second.outbox.confirmed, second.outbox.awaiting_confirmation),
        (1, 0)
    );
    // and nothing was sent twice: still one outcome on the topic
    let outcomes = common::payloads(&bootstrap, "quench.commands")
        .iter()
        .filter(|b| b.starts_with(br#"{"kind":"outcome""#))
        .count();
    assert_eq!(outcomes, 1);
}
