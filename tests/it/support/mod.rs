//! Helpers shared by the integration tests: reading a topic of the mock cluster, waiting for an outcome, the
//! demo's events and Kafka settings, and a decision to send.

#![allow(clippy::unwrap_used, dead_code)]

use quench::app;
use quench::config::{KafkaConfig, TopicConfig};
use quench::decide::{Action, Decision};
use quench::event::{PrincipalKind, Ts};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// A record's payload and its headers.
pub type Record = (Vec<u8>, Vec<(String, String)>);

/// Every record now on `topic` (all partitions, each in order).
pub fn read_topic(bootstrap: &str, topic: &str) -> Vec<Record> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "test-reader")
        .create()
        .unwrap();
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    let mut want = 0;
    for p in md.topics()[0].partitions() {
        let (lo, hi) = c
            .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
            .unwrap();
        want += hi - lo;
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while (out.len() as i64) < want && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|x| {
                            (
                                x.key.to_string(),
                                String::from_utf8_lossy(x.value.unwrap_or(&[])).to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push((m.payload().unwrap_or(&[]).to_vec(), headers));
        }
    }
    assert_eq!(out.len() as i64, want, "could not read all of {topic}");
    out
}

/// The payloads of `topic`.
pub fn payloads(bootstrap: &str, topic: &str) -> Vec<Vec<u8>> {
    read_topic(bootstrap, topic)
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}

/// Poll `cond` every 50 ms until it holds; fail naming `what` after 90 s.
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The demo scenario's raw events, one per line.
pub fn demo_events() -> Vec<String> {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/scenarios/demo_day/events.jsonl"),
    )
    .unwrap()
    .lines()
    .filter(|l| !l.trim().is_empty())
    .map(String::from)
    .collect()
}

/// Kafka settings for the demo topics on `bootstrap`, consumer group `group`, committing every 100 ms, with a
/// short session timeout so that a restarted run takes over the group quickly.
pub fn kafka(bootstrap: &str, group: &str) -> KafkaConfig {
    KafkaConfig {
        brokers: bootstrap.into(),
        group_id: group.into(),
        topics: vec![TopicConfig {
            name: app::DEMO_TOPIC.into(),
            format: "auto".into(),
        }],
        decisions_topic: "quench.decisions".into(),
        ocsf_topic: None,
        dead_letter_topic: "quench.deadletter".into(),
        commit_interval_ms: 100,
        properties: [
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "500"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect(),
    }
}

/// A token revocation for an agent, decided now.
pub fn agent_revocation(id: &str) -> Decision {
    Decision {
        kind: Default::default(),
        decision_id: id.repeat(32 / id.len().max(1)),
        decided_at: Ts::now(),
        event_time: Ts::now(),
        action: Action::RevokeToken,
        principal: Some("agent-7".into()),
        principal_id: None,
        principal_kind: PrincipalKind::Agent,
        token_id: Some("tok-7".into()),
        session_id: None,
        job_id: None,
        score: 0.8,
        findings: vec![],
        evidence: vec![],
        guardrail: None,
        shadow: false,
        trust: vouched(None),
    }
}

/// A local HTTP server that reads each request and answers with `status` (e.g. `"204 No Content"`).
pub async fn accept_all(status: &'static str) -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            if app::stub::read_request(&mut s).await.is_some() {
                let reply =
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = s.write_all(reply.as_bytes()).await;
            }
        }
    });
    addr
}

/// librdkafka's mock cluster with the demo's topics, the demo's events already on the input topic, and Kafka
/// settings for consumer group `group`. Keep the cluster alive for the test's length.
pub async fn demo_cluster(
    group: &str,
) -> (
    rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    String,
    KafkaConfig,
) {
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    for t in app::DEMO_TOPICS {
        cluster.create_topic(t, 1, 1).unwrap();
    }
    let k = kafka(&bootstrap, group);
    app::produce_lines(&k, app::DEMO_TOPIC, &demo_events())
        .await
        .unwrap();
    (cluster, bootstrap, k)
}

/// The trust a decision from the principal's own vendor's log carries (the vendor told by the id's shape), with
/// the e-mail verified by the IdP.
pub fn vouched(principal_id: Option<&str>) -> quench::decide::Trust {
    let vendor = match principal_id {
        Some(i) if i.starts_with("00u") => "okta",
        Some(i) if i.starts_with('W') || i.starts_with('U') => "slack",
        Some(i) if i.starts_with("005") => "salesforce",
        Some(_) => "github",
        None => "okta",
    };
    quench::decide::Trust {
        principal_vendor: Some(vendor.into()),
        email_verified_by: Some("okta".into()),
        token_vendor: Some(vendor.into()),
        session_vendor: Some("okta".into()),
        evidence: vec!["e1".into()],
    }
}

/// A test that cannot run because something it needs is missing (`../shared`, the spec tool, npm): a failure, so
/// that CI cannot pass without it, unless the developer opts out with `QUENCH_ALLOW_SKIP=1`.
pub fn skip(why: &str) {
    if std::env::var_os("QUENCH_ALLOW_SKIP").is_some_and(|v| v == "1") {
        eprintln!("skipped (QUENCH_ALLOW_SKIP=1): {why}");
    } else {
        panic!(
            "{why}; this test cannot run without it (set QUENCH_ALLOW_SKIP=1 to skip it locally)"
        );
    }
}

/// A fresh P-256 private key in PKCS#8 PEM (what a CAEP target signs with).
pub fn ec_private_key_pem() -> String {
    let key = openssl::ec::EcKey::generate(
        &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
    )
    .unwrap();
    let pem = openssl::pkey::PKey::from_ec_key(key)
        .unwrap()
        .private_key_to_pem_pkcs8()
        .unwrap();
    String::from_utf8(pem).unwrap()
}

/// The targets of the shipped `quench.example.toml` (one of every target type), built with test credentials.
pub fn example_targets() -> Vec<quench::respond::Target> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/quench.example.toml");
    let cfg = quench::config::Config::load(std::path::Path::new(path)).unwrap();
    for var in [
        "OKTA_API_TOKEN",
        "GRAPH_CLIENT_SECRET",
        "QUENCH_WEBHOOK_SECRET",
        "GOOGLE_ADMIN_ACCESS_TOKEN",
        "SALESFORCE_ACCESS_TOKEN",
        "SLACK_ADMIN_TOKEN",
        "GITHUB_TOKEN",
    ] {
        std::env::set_var(var, "example-credential-0123456789");
    }
    std::env::set_var("QUENCH_CAEP_SIGNING_KEY", ec_private_key_pem());
    quench::respond::build_targets(&cfg.respond).unwrap()
}

/// Run `run_kafka` (what `quench run` runs) over what is on the input topics with the targets of `respond`, until
/// every command it wrote has an outcome (`stop_at_end`).
pub async fn run_to_end(
    k: &KafkaConfig,
    respond: &quench::respond::RespondConfig,
) -> quench::runtime::KafkaReport {
    let cfg = quench::config::Config {
        kafka: Some(k.clone()),
        respond: respond.clone(),
        ..Default::default()
    };
    let dispatcher = quench::respond::Dispatcher::new(
        respond.clone(),
        quench::respond::build_targets(respond).unwrap(),
        None,
    )
    .unwrap();
    let mut pipeline = quench::pipeline::Pipeline::new(&cfg).unwrap();
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    quench::runtime::run_kafka(
        k,
        &mut pipeline,
        &dispatcher,
        quench::runtime::RunOptions {
            stop_at_end: true,
            ..Default::default()
        },
        stop_rx,
        |_| {},
    )
    .await
    .unwrap()
}

/// Stop a `quench` child process gracefully (SIGTERM), check that it exited successfully, and return its stderr.
pub fn terminate(child: std::process::Child) -> String {
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}
