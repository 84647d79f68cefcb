//! Kill `quench run` (SIGKILL) while revocations are in flight, start it again, and check that every revocation
//! was carried out exactly once: none lost, none sent twice.
//!
//! The Kafka cluster is librdkafka's mock cluster in this process (real protocol, reachable by the child
//! processes). The revocation receiver is a local HTTP server that verifies each webhook's HMAC signature. Before
//! the kill it accepts the first request, refuses the second (403: a `failed` outcome no retry can fix) and holds
//! every later one open without answering, as a slow or stalled IdP would; after the restart it answers
//! everything. Neither the accepted nor the refused command may be sent again. The first run never commits its input offsets, so the
//! second run reprocesses the whole input and decides everything again: the outbox must recognise each command.

#![allow(clippy::unwrap_used)]

use crate::support as common;

use quench::cli;
use quench::decide::Decision;
use quench::respond::{build_targets, command_id, outbox, RespondConfig};
use rdkafka::mocking::MockCluster;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

const SECRET: &str = "outbox-restart-test-secret-0123456789";
const COMMANDS: &str = "quench.commands";

#[derive(Default)]
struct Receiver {
    /// (phase, idempotency key) of every request received, in order; phase 1 is before the kill.
    received: Vec<(u8, String)>,
    /// Idempotency keys answered 202 (the revocation took effect), with the phase.
    applied: Vec<(u8, String)>,
    /// Idempotency keys answered 403 (refused for good), with the phase.
    refused: Vec<(u8, String)>,
    /// Connections held open without an answer.
    held: Arc<Mutex<Vec<tokio::net::TcpStream>>>,
}

async fn receiver(answer_all: Arc<AtomicBool>) -> (std::net::SocketAddr, Arc<Mutex<Receiver>>) {
    let state = Arc::new(Mutex::new(Receiver::default()));
    let st = state.clone();
    let server = common::serve(move |r, _| {
        let ts: u64 = r
            .header("x-quench-timestamp")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        let sig = quench::respond::webhook_signature(SECRET.as_bytes(), ts, &r.body);
        assert_eq!(r.header("x-quench-signature"), Some(sig.as_str()));
        let key = r.header("idempotency-key").unwrap().to_string();
        let phase = if answer_all.load(Ordering::SeqCst) {
            2
        } else {
            1
        };
        let mut s = st.lock().unwrap();
        s.received.push((phase, key.clone()));
        if phase == 2 || s.applied.is_empty() {
            s.applied.push((phase, key));
            common::Reply::status("202 Accepted")
        } else if s.refused.is_empty() {
            s.refused.push((phase, key));
            common::Reply::status("403 Forbidden")
        } else {
            common::Reply::Hold
        }
    })
    .await;
    state.lock().unwrap().held = server.held.clone();
    (server.addr, state)
}

/// Every record of `topic` (all partitions), as JSON.
fn read_topic(bootstrap: &str, topic: &str) -> Vec<serde_json::Value> {
    common::payloads(bootstrap, topic)
        .iter()
        .map(|p| serde_json::from_slice(p).unwrap())
        .collect()
}

fn kinds<'a>(recs: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    recs.iter().filter(|r| r["kind"] == kind).collect()
}

fn spawn_quench(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_quench"))
        .args(["run", "--config"])
        .arg(config)
        .env("QUENCH_TEST_HOOK_SECRET", SECRET)
        .env("RUST_LOG", "quench=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_engine_mid_dispatch_loses_no_revocation_and_sends_none_twice() {
    let cluster = MockCluster::new(1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    for t in [cli::DEMO_TOPIC, "quench.decisions", "quench.deadletter"] {
        cluster.create_topic(t, 1, 1).unwrap();
    }
    cluster.create_topic(COMMANDS, 3, 1).unwrap();
    let lines = common::demo_events();
    let k = common::kafka(&bootstrap, "quench-restart");
    cli::produce_lines(&k, cli::DEMO_TOPIC, &lines)
        .await
        .unwrap();

    let answer_all = Arc::new(AtomicBool::new(false));
    let (addr, rx) = receiver(answer_all.clone()).await;
    // Two targets: every acting decision goes to the SOAR hook, token revocations also to the gateway.
    let targets = format!(
        "[[respond.targets]]\ntype = \"webhook\"\nname = \"soar\"\nurl = \"http://{addr}/soar\"\nsecret_env = \"QUENCH_TEST_HOOK_SECRET\"\nactions = [\"step_up\", \"revoke_token\", \"terminate_session\"]\n\
         [[respond.targets]]\ntype = \"webhook\"\nname = \"gateway\"\nurl = \"http://{addr}/gateway\"\nsecret_env = \"QUENCH_TEST_HOOK_SECRET\"\nactions = [\"revoke_token\"]\n"
    );
    let config = |commit_interval_ms: u64| {
        format!(
            "[kafka]\nbrokers = \"{bootstrap}\"\ngroup_id = \"quench-restart\"\ntopics = [{{ name = \"{}\", format = \"auto\" }}]\ncommit_interval_ms = {commit_interval_ms}\n\
             # the killed run's group membership expires after this, then the restarted run takes over\n\
             properties = {{ \"session.timeout.ms\" = \"6000\", \"heartbeat.interval.ms\" = \"500\" }}\n\
             [respond]\nenforce = true\ntimeout_ms = 120000\nbackoff_ms = 100\n[respond.outbox]\ndrain_secs = 30\n{targets}",
            cli::DEMO_TOPIC
        )
    };
    let dir = std::env::temp_dir().join(format!("quench-outbox-restart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The first run never commits its input offsets: the second one reprocesses all of it.
    let first_cfg = dir.join("first.toml");
    std::fs::write(&first_cfg, config(3_600_000)).unwrap();
    let second_cfg = dir.join("second.toml");
    std::fs::write(&second_cfg, config(100)).unwrap();

    // What must be revoked: the decisions the demo's events lead to, times the targets that act on them.
    std::env::set_var("QUENCH_TEST_HOOK_SECRET", SECRET);
    let respond: RespondConfig = toml::from_str::<toml::Table>(&config(100)).unwrap()["respond"]
        .clone()
        .try_into()
        .unwrap();
    let built = build_targets(&respond).unwrap();

    // Run 1: one revocation is accepted, one refused, the others hang; kill -9 once both outcomes are on the
    // commands topic.
    let mut first = spawn_quench(&first_cfg);
    let mut expected: BTreeSet<String> = BTreeSet::new();
    common::wait_until(
        "run 1 has decided everything, one command is done, one refused and the rest are in flight",
        || {
            let decisions: Vec<Decision> = read_topic(&bootstrap, "quench.decisions")
                .into_iter()
                .map(|v| serde_json::from_value(v).unwrap())
                .collect();
            expected = decisions
                .iter()
                .flat_map(|d| {
                    built
                        .iter()
                        .filter(|t| t.takes(d))
                        .map(|t| command_id(&d.decision_id, &t.name))
                })
                .collect();
            let commands = read_topic(&bootstrap, COMMANDS);
            let r = rx.lock().unwrap();
            decisions.len() == 4
                && kinds(&commands, "command").len() == expected.len()
                && kinds(&commands, "outcome").len() == 2
                && r.applied.len() == 1
                && r.refused.len() == 1
                && r.held.lock().unwrap().len() == expected.len() - 2
        },
    )
    .await;
    assert_eq!(
        expected.len(),
        6,
        "4 decisions: 1 step-up and 1 session termination to soar, 2 token revocations to both: {expected:?}"
    );
    first.kill().unwrap(); // SIGKILL: no shutdown code runs
    first.wait().unwrap();
    let done_before_kill = rx.lock().unwrap().applied[0].1.clone();
    let refused_before_kill = rx.lock().unwrap().refused[0].1.clone();

    // Run 2: the receiver now answers; the engine must resume the 4 open commands and nothing else.
    answer_all.store(true, Ordering::SeqCst);
    rx.lock().unwrap().held.lock().unwrap().clear();
    let second = spawn_quench(&second_cfg);
    common::wait_until(
        "run 2 has re-decided everything and every command has an outcome",
        || {
            let commands = read_topic(&bootstrap, COMMANDS);
            kinds(&commands, "command").len() == 2 * expected.len()
                && kinds(&commands, "outcome").len() >= expected.len()
        },
    )
    .await;
    // A graceful stop: the engine finishes what is on the commands topic (within drain_secs) and reports.
    let stderr = common::terminate(second);

    let r = rx.lock().unwrap();
    // None lost: every command but the refused one took effect. None twice: each took effect exactly once.
    let mut applied: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, key) in &r.applied {
        *applied.entry(key.as_str()).or_default() += 1;
    }
    let mut to_apply = expected.clone();
    assert!(to_apply.remove(&refused_before_kill));
    assert_eq!(
        applied
            .keys()
            .map(|k| k.to_string())
            .collect::<BTreeSet<_>>(),
        to_apply,
        "{stderr}"
    );
    assert!(applied.values().all(|n| *n == 1), "{applied:?}");
    // The commands settled before the kill (accepted or refused) were never sent again; the others were re-sent
    // with their original keys.
    let after: Vec<&String> = r
        .received
        .iter()
        .filter(|(phase, _)| *phase == 2)
        .map(|(_, k)| k)
        .collect();
    assert!(!after.contains(&&done_before_kill), "{after:?}");
    assert!(!after.contains(&&refused_before_kill), "{after:?}");
    assert_eq!(after.len(), expected.len() - 2, "{after:?}");
    let held_keys: BTreeSet<&String> = r
        .received
        .iter()
        .filter(|(phase, _)| *phase == 1)
        .map(|(_, k)| k)
        .filter(|k| **k != done_before_kill && **k != refused_before_kill)
        .collect();
    assert_eq!(held_keys, after.iter().copied().collect::<BTreeSet<_>>());

    // The commands topic tells the same story: one outcome per command, delivered but for the refused one.
    let commands = read_topic(&bootstrap, COMMANDS);
    let outcomes: Vec<outbox::Outcome> = kinds(&commands, "outcome")
        .into_iter()
        .map(|v| serde_json::from_value::<outbox::Record>(v.clone()).unwrap())
        .map(|rec| match rec {
            outbox::Record::Outcome(o) => o,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(outcomes.len(), expected.len());
    for o in &outcomes {
        if o.command_id == refused_before_kill {
            assert_eq!(o.status, outbox::OutcomeStatus::Failed, "{o:?}");
        } else {
            assert_eq!(
                (o.status, o.http_status),
                (outbox::OutcomeStatus::Delivered, Some(202)),
                "{o:?}"
            );
        }
    }
    assert_eq!(
        outcomes
            .iter()
            .map(|o| o.command_id.clone())
            .collect::<BTreeSet<_>>(),
        expected
    );
    // And the engine says what it did.
    assert!(
        stderr.contains(
            "4 resumed from a previous run, 6 duplicates not sent again, 0 left in flight"
        ),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
