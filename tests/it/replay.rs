//! `quench replay` semantics over files: Okta System Log alone catches a replayed session and an
//! impossible-travel login, and leaves the plane traveller, the VPN switcher and the mobile hopper alone.

#![allow(clippy::unwrap_used)]

use quench::cli;
use quench::config::Config;
use quench::decide::Action;

fn replay(path: &str) -> cli::ReplayReport {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut out = Vec::new();
    let p = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    let r = rt
        .block_on(cli::replay(&Config::default(), &[p], false, &mut out))
        .unwrap();
    let lines: Vec<&str> = std::str::from_utf8(&out).unwrap().lines().collect();
    assert_eq!(
        lines.len(),
        r.decisions.len(),
        "one JSON line per decision on stdout"
    );
    r
}

#[test]
fn okta_only_replay_catches_the_replayed_session_and_the_travel_login_only() {
    let r = replay("fixtures/scenarios/okta_travel/events.jsonl");
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    let got: Vec<(Action, &str)> = r
        .decisions
        .iter()
        .map(|d| (d.action, d.principal.as_deref().unwrap()))
        .collect();
    assert!(
        got.contains(&(Action::TerminateSession, "alice@example.com")),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|(a, p)| *p == "henry@example.com" && *a >= Action::StepUp),
        "{got:?}"
    );
    for benign in [
        "frank@example.com",
        "erin@example.com",
        "dave@example.com",
        "bob@example.com",
        "carol@example.com",
    ] {
        assert!(!got.iter().any(|(_, p)| *p == benign), "{benign}: {got:?}");
    }
    let alice = r
        .decisions
        .iter()
        .find(|d| d.principal.as_deref() == Some("alice@example.com"))
        .unwrap();
    assert_eq!(alice.session_id.as_deref(), Some("102aliceS3ss"));
    assert!(alice
        .findings
        .iter()
        .any(|f| f.detector == "session_hijack" && f.reason.contains("AS7713")));
    assert!(alice.evidence.len() >= 2);
}

#[test]
fn replay_is_deterministic_apart_from_decided_at() {
    let strip = |r: cli::ReplayReport| {
        r.decisions
            .into_iter()
            .map(|mut d| {
                d.decided_at = quench::event::Ts(0);
                d
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        strip(replay("fixtures/scenarios/demo_day/events.jsonl")),
        strip(replay("fixtures/scenarios/demo_day/events.jsonl"))
    );
}

#[test]
fn bad_lines_are_reported_with_their_line_and_reason() {
    let r = replay("fixtures/scenarios/demo_day/events.jsonl");
    assert_eq!(r.failed.len(), 2);
    assert!(
        r.failed[0].contains("events.jsonl:") && r.failed[0].contains("not JSON"),
        "{}",
        r.failed[0]
    );
    assert!(r.failed[1].contains("unknown format"), "{}", r.failed[1]);
}

/// `quench replay -` reads standard input: the same decisions as the file, through the real binary.
#[test]
fn replay_reads_standard_input_like_a_file() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let path = format!(
        "{}/fixtures/scenarios/okta_travel/events.jsonl",
        env!("CARGO_MANIFEST_DIR")
    );
    let run = |args: &[&str], stdin: Option<&[u8]>| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_quench"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(b) = stdin {
            input.write_all(b).unwrap();
        }
        drop(input);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let mut lines: Vec<(String, String)> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (v["action"].to_string(), v["principal"].to_string())
            })
            .collect();
        lines.sort();
        lines
    };
    let from_file = run(&["replay", &path], None);
    assert!(from_file.len() >= 2, "{from_file:?}");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(run(&["replay", "-"], Some(&bytes)), from_file);
}

/// `detect.disabled` leaves a detector out: the replayed session is then not found by session_hijack.
#[test]
fn a_disabled_detector_finds_nothing() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let p = format!(
        "{}/fixtures/scenarios/okta_travel/events.jsonl",
        env!("CARGO_MANIFEST_DIR")
    );
    let detectors = |cfg: &Config| {
        let r = rt
            .block_on(cli::replay(
                cfg,
                std::slice::from_ref(&p),
                false,
                &mut std::io::sink(),
            ))
            .unwrap();
        r.decisions
            .iter()
            .flat_map(|d| d.findings.iter().map(|f| f.detector.clone()))
            .collect::<Vec<_>>()
    };
    assert!(detectors(&Config::default())
        .iter()
        .any(|d| d == "session_hijack"));
    let off = Config::from_str("[detect]\ndisabled = [\"session_hijack\"]\n", "t.toml").unwrap();
    let found = detectors(&off);
    assert!(!found.is_empty(), "the other detectors still run");
    assert!(found.iter().all(|d| d != "session_hijack"), "{found:?}");
}

/// The demo day through the pipeline as Kafka would deliver it (each line at its own offset), with the records
/// of `redelivered` delivered a second time at the same offsets (a consumer that died before committing) and every
/// Okta record of `hook_again` delivered again later at a new offset (Okta's at-least-once event hooks). Returns the
/// decisions' ids and actions, the detectors' findings and the duplicates counted.
fn demo_day_delivered(
    redelivered: std::ops::Range<usize>,
    hook_again: std::ops::Range<usize>,
    cfg: &Config,
) -> (Vec<(String, Action)>, u64, u64) {
    use quench::event::{Provenance, Ts};
    let lines = std::fs::read_to_string(format!(
        "{}/fixtures/scenarios/demo_day/events.jsonl",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let lines: Vec<&str> = lines.lines().collect();
    let mut order: Vec<(usize, i64)> = (0..lines.len()).map(|i| (i, i as i64)).collect();
    // the redelivery comes right after the batch it repeats
    let at = order
        .iter()
        .position(|(i, _)| *i == redelivered.end)
        .unwrap_or(order.len());
    let again: Vec<(usize, i64)> = redelivered.map(|i| (i, i as i64)).collect();
    order.splice(at..at, again);
    // the hook's second delivery comes at the end of the stream, at offsets of its own
    let mut next = lines.len() as i64;
    for i in hook_again {
        if lines[i].contains("\"eventType\"") {
            order.push((i, next));
            next += 1;
        }
    }
    let ingest = Ts::parse("2026-11-02T23:00:00Z").unwrap();
    let mut p = quench::pipeline::Pipeline::new(cfg).unwrap();
    let mut out = Vec::new();
    for (i, offset) in order {
        let prov = Provenance::Kafka {
            topic: "quench.input".into(),
            partition: 0,
            offset,
        };
        let _ = p.process(lines[i].as_bytes(), None, prov, ingest, &mut out);
    }
    let got = out
        .iter()
        .map(|d| (d.decision_id.clone(), d.action))
        .collect();
    (got, p.stats.findings, p.stats.duplicates)
}

/// A redelivered batch changes no decision: the same records again at the same offsets, and Okta's hook records
/// again at new offsets, give exactly the decisions and the findings of one delivery, and are counted as
/// duplicates. With deduplication off (`dedup_window_secs = 0`) the same input reaches the detectors twice and
/// they find more (decide's own per-subject dedup happens to keep the demo's decisions the same), so the check can
/// fail.
#[test]
fn a_redelivered_batch_and_okta_hooks_delivered_twice_change_no_decision() {
    let cfg = Config::default();
    let (once, findings, none) = demo_day_delivered(0..0, 0..0, &cfg);
    assert_eq!(none, 0);
    assert!(once.len() >= 4 && findings > 0, "{once:?}");
    let (twice, findings_twice, dups) = demo_day_delivered(1500..4000, 0..4593, &cfg);
    assert_eq!(twice, once);
    assert_eq!(findings_twice, findings);
    assert!(dups > 2500, "{dups}");

    let off = Config::from_str("[normalize]\ndedup_window_secs = 0\n", "q.toml").unwrap();
    let (_, findings_off, dups_off) = demo_day_delivered(1500..4000, 0..4593, &off);
    assert_eq!(dups_off, 0);
    assert!(findings_off > findings, "{findings_off} > {findings}");
}

/// Every line of `lines` through `p` as Kafka delivers it, at offsets from `first`; the decisions and findings.
fn feed(p: &mut quench::pipeline::Pipeline, lines: &[&str], first: usize) -> Vec<(String, Action)> {
    use quench::event::{Provenance, Ts};
    let ingest = Ts::parse("2026-11-02T23:00:00Z").unwrap();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let prov = Provenance::Kafka {
            topic: "quench.input".into(),
            partition: 0,
            offset: (first + i) as i64,
        };
        let _ = p.process(l.as_bytes(), None, prov, ingest, &mut out);
    }
    out.iter()
        .map(|d| (d.decision_id.clone(), d.action))
        .collect()
}

/// A restart that loads the saved state decides exactly what an engine that never stopped decides: the demo day
/// split at every eighth of it, the first part through one pipeline, its state saved and loaded into a new one,
/// the rest through that. Saving the loaded state again gives the same bytes (the recency order of every map
/// survives). A restart without the state (cold) decides differently at some split, so the check can fail.
#[test]
fn a_restart_from_saved_state_decides_what_an_engine_that_never_stopped_decides() {
    let text = std::fs::read_to_string(format!(
        "{}/fixtures/scenarios/demo_day/events.jsonl",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let cfg = Config::default();
    let mut whole = quench::pipeline::Pipeline::new(&cfg).unwrap();
    let all = feed(&mut whole, &lines, 0);
    assert!(all.len() >= 4, "{all:?}");
    let mut cold_differs = false;
    for split in (1..8).map(|k| lines.len() * k / 8) {
        let mut before = quench::pipeline::Pipeline::new(&cfg).unwrap();
        let mut got = feed(&mut before, &lines[..split], 0);
        let saved = before.save_state().unwrap();
        drop(before);
        let mut after = quench::pipeline::Pipeline::new(&cfg).unwrap();
        after.load_state(&saved).unwrap();
        assert_eq!(
            after.save_state().unwrap().get(),
            saved.get(),
            "split at {split}: the loaded state saves differently"
        );
        got.extend(feed(&mut after, &lines[split..], split));
        assert_eq!(got, all, "split at {split}");

        let mut cold = quench::pipeline::Pipeline::new(&cfg).unwrap();
        let mut cold_got = feed(
            &mut quench::pipeline::Pipeline::new(&cfg).unwrap(),
            &lines[..split],
            0,
        );
        cold_got.extend(feed(&mut cold, &lines[split..], split));
        cold_differs |= cold_got != all;
    }
    assert!(
        cold_differs,
        "a cold restart decided the same at every split"
    );
}
