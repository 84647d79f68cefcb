//! Learned state survives `kill -9`: `quench run` with `[state] dir` reads the first part of the demo day, is
//! killed with SIGKILL once its state covers that part, and a new process reads the rest. The decisions on the
//! topic are exactly those of one engine that read the whole day without stopping (each once), and they differ
//! from those of an engine restarted cold at the same place, so the saved baselines are what made the difference.
//!
//! With `[evidence] dir`, the store then holds every event and decision exactly once.
//!
//! The save interval is an hour, so every save the test waits for comes from the input going idle: the state and the
//! committed offsets reach the end of an idle topic within one commit interval.
//!
//! Through librdkafka's mock cluster in this process (real protocol, reachable by the child processes).

#![allow(clippy::unwrap_used)]

use crate::support as common;

use quench::cli;
use quench::config::Config;
use quench::decide::{Action, Decision};
use quench::pipeline::Pipeline;
use rdkafka::mocking::MockCluster;
use std::collections::BTreeSet;

/// The values of one column of a stored table, sorted (duplicates kept).
fn stored_ids(store: &std::path::Path, table: &str, column: &str) -> Vec<String> {
    use quench::evidence::{read, tables};
    let t = *tables::TableKind::ALL
        .iter()
        .find(|t| t.name() == table)
        .unwrap();
    let mut out = Vec::new();
    for b in read::table(store, t, None).unwrap() {
        let c = tables::Cols::new(&b);
        out.extend((0..b.num_rows()).map(|i| c.str(column, i).unwrap().to_string()));
    }
    out.sort();
    out
}

/// The offset of the next record the saved state covers, if it has been written.
fn saved_offset(dir: &std::path::Path) -> Option<i64> {
    let text = std::fs::read_to_string(dir.join("state.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["offsets"][format!("{}/0", cli::DEMO_TOPIC)].as_i64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learned_state_survives_kill_9_and_the_restart_decides_as_if_it_never_stopped() {
    let lines = common::demo_events();
    let cfg = Config::default();
    let whole = common::feed(&mut Pipeline::new(&cfg).unwrap(), &lines, 0);
    assert!(whole.len() >= 4, "{whole:?}");
    // where to stop: the first eighth of the day after which a cold restart decides differently
    let split = (1..8)
        .map(|k| lines.len() * k / 8)
        .find(|&s| {
            let mut cold = common::feed(&mut Pipeline::new(&cfg).unwrap(), &lines[..s], 0);
            cold.extend(common::feed(
                &mut Pipeline::new(&cfg).unwrap(),
                &lines[s..],
                s,
            ));
            cold != whole
        })
        .expect("a cold restart decides the same wherever it happens: this test could not fail");

    let cluster = MockCluster::new(1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    for t in cli::DEMO_TOPICS {
        cluster.create_topic(t, 1, 1).unwrap();
    }
    let k = common::kafka(&bootstrap, "quench-state");
    let dir = common::fresh_dir("quench-state-restart");
    let config = dir.join("quench.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = \"{bootstrap}\"\ngroup_id = \"quench-state\"\ntopics = [{{ name = \"{}\", format = \"auto\" }}]\ncommit_interval_ms = 100\n\
             # the killed run's group membership expires after this, then the restarted run takes over\n\
             properties = {{ \"session.timeout.ms\" = \"6000\", \"heartbeat.interval.ms\" = \"500\" }}\n\
             # saves come only from the input going idle: an hour's interval never passes in this test\n\
             [state]\ndir = \"{}\"\ninterval_secs = 3600\n\
             [evidence]\ndir = \"{}\"\n",
            cli::DEMO_TOPIC,
            dir.join("state").display(),
            dir.join("evidence").display()
        ),
    )
    .unwrap();

    // Run 1 reads the first part; once its saved state covers all of it, kill -9 (no shutdown code runs).
    cli::produce_lines(&k, cli::DEMO_TOPIC, &lines[..split])
        .await
        .unwrap();
    let mut first = common::spawn_quench(&config);
    common::wait_until("run 1 has saved state covering the first part", || {
        saved_offset(&dir.join("state")) == Some(split as i64)
    })
    .await;
    first.kill().unwrap();
    first.wait().unwrap();

    // Run 2 resumes from the saved state and reads the rest.
    cli::produce_lines(&k, cli::DEMO_TOPIC, &lines[split..])
        .await
        .unwrap();
    let second = common::spawn_quench(&config);
    common::wait_until("run 2 has saved state covering the whole day", || {
        saved_offset(&dir.join("state")) == Some(lines.len() as i64)
    })
    .await;
    let stderr = common::terminate(second);
    assert!(
        stderr.contains("resumed the learned state of the previous run"),
        "{stderr}"
    );

    let decided: Vec<(String, Action)> = common::payloads(&bootstrap, "quench.decisions")
        .iter()
        .map(|b| serde_json::from_slice::<Decision>(b).unwrap())
        .map(|d| (d.decision_id, d.action))
        .collect();
    let ids: BTreeSet<&String> = decided.iter().map(|(id, _)| id).collect();
    assert_eq!(
        ids.len(),
        decided.len(),
        "a decision was made twice: {decided:?}"
    );
    assert_eq!(
        decided.iter().cloned().collect::<BTreeSet<_>>(),
        whole.iter().cloned().collect::<BTreeSet<_>>(),
        "{stderr}"
    );

    // The evidence store holds every event and decision of the day exactly once, as one engine that never
    // stopped stores them: the files sealed before the kill are published or dropped by what the state accounts for.
    let once = dir.join("evidence-once");
    let mut p = Pipeline::new(&cfg).unwrap();
    p.store_evidence(quench::evidence::Evidence::open(&cfg.evidence, &once).unwrap());
    common::feed(&mut p, &lines, 0);
    p.take_evidence().unwrap().close(None).unwrap();
    for (table, column) in [("events", "event_id"), ("decisions", "decision_id")] {
        let killed = stored_ids(&dir.join("evidence"), table, column);
        let expected = stored_ids(&once, table, column);
        assert!(
            expected.len() >= lines.len() / 2 || table == "decisions",
            "{}",
            expected.len()
        );
        assert_eq!(killed, expected, "{table}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
