//! The demo scenario through librdkafka's in-process mock cluster (real Kafka protocol): the decisions topic,
//! the requests the stand-in IdP received, the dead-letter topic with reasons, and the committed offsets.

#![allow(clippy::unwrap_used)]

use crate::support as common;

use quench::cli;
use quench::decide::{Action, Decision};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::{Offset, TopicPartitionList};
use std::path::Path;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_scenario_through_kafka_revokes_the_attackers_and_nobody_else() {
    let cluster = MockCluster::new(1).unwrap();
    for t in cli::DEMO_TOPICS {
        cluster.create_topic(t, 1, 1).unwrap();
    }
    let bootstrap = cluster.bootstrap_servers();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    let report = cli::demo(
        &bootstrap,
        &root.join("fixtures/scenarios/demo_day"),
        &mut out,
    )
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out);
    for v in &report.verdicts {
        assert!(v.ok, "{}\n{text}", v.text);
    }

    // every record consumed, two dead-lettered
    let lines = std::fs::read_to_string(root.join("fixtures/scenarios/demo_day/events.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count() as u64;
    assert_eq!(report.records, lines);
    assert_eq!(report.dead_letters, 2);

    // the decisions topic holds exactly the decisions made, as valid records
    let on_topic: Vec<Decision> = common::read_topic(&bootstrap, "quench.decisions")
        .iter()
        .map(|(p, _)| serde_json::from_slice(p).unwrap())
        .collect();
    assert_eq!(on_topic, report.decisions);
    let actions: Vec<(Action, Option<&str>)> = on_topic
        .iter()
        .map(|d| (d.action, d.principal.as_deref()))
        .collect();
    assert!(
        actions.contains(&(Action::TerminateSession, Some("alice@example.com"))),
        "{actions:?}"
    );
    assert!(
        actions.contains(&(Action::RevokeToken, Some("agent-crm-sync"))),
        "{actions:?}"
    );
    assert!(
        actions.contains(&(Action::RevokeToken, Some("reporting-svc"))),
        "{actions:?}"
    );
    for benign in [
        "bob@example.com",
        "carol@example.com",
        "dave@example.com",
        "erin@example.com",
        "frank@example.com",
        "etl-svc",
        "agent-notes-summarizer",
    ] {
        assert!(
            !on_topic
                .iter()
                .any(|d| d.principal.as_deref() == Some(benign)),
            "{benign} got a decision"
        );
    }

    // the stand-in IdP got one Okta session clear for alice and two signed webhook calls
    let okta: Vec<_> = report
        .received
        .iter()
        .filter(|r| r.method == "DELETE")
        .collect();
    assert_eq!(okta.len(), 1);
    assert_eq!(
        okta[0].target,
        "/api/v1/users/00ualice/sessions?oauthTokens=true"
    );
    assert_eq!(okta[0].status, 204);
    let hooks: Vec<_> = report
        .received
        .iter()
        .filter(|r| r.method == "POST" && r.target == "/hooks/quench")
        .collect();
    assert_eq!(hooks.len(), 2);
    assert!(hooks.iter().all(|h| h.status == 202), "signatures verify");
    let tokens: Vec<Decision> = hooks
        .iter()
        .map(|h| serde_json::from_slice(&h.body).unwrap())
        .collect();
    let mut revoked: Vec<&str> = tokens
        .iter()
        .filter_map(|d| d.token_id.as_deref())
        .collect();
    revoked.sort();
    assert_eq!(revoked, vec!["tok-crm-sync-9c1e", "tok-reporting-7f3a"]);
    assert!(hooks.iter().all(|h| h.header("idempotency-key").is_some()));

    // dead letters keep the original payload and say why
    let dlq = common::read_topic(&bootstrap, "quench.deadletter");
    assert_eq!(dlq.len(), 2);
    assert_eq!(dlq[0].0, b"this line is not JSON");
    let h0: std::collections::HashMap<_, _> = dlq[0].1.iter().cloned().collect();
    assert_eq!(h0["quench.error"], "not_json");
    assert!(h0["quench.source"].starts_with("audit-events/0@"));
    let h1: std::collections::HashMap<_, _> = dlq[1].1.iter().cloned().collect();
    assert_eq!(h1["quench.error"], "unknown_format");
    assert!(
        h1["quench.reason"].contains("no normalizer recognises"),
        "{}",
        h1["quench.reason"]
    );

    // offsets were committed through the last record
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", &report.kafka.group_id)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(cli::DEMO_TOPIC, 0);
    let committed = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    let off = committed
        .find_partition(cli::DEMO_TOPIC, 0)
        .unwrap()
        .offset();
    assert_eq!(off, Offset::Offset(lines as i64));
}
