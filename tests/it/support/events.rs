//! Events for the tests: the demo day's raw vendor events.
//!
//! In: nothing, or a pipeline. Out: the lines of `fixtures/scenarios/demo_day/events.jsonl`, and the decisions one
//! pipeline makes over lines as Kafka delivers them. State: none.

#![allow(clippy::unwrap_used, dead_code, unused_imports)]

use super::*;

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

/// The decisions (id, action) a pipeline makes over `lines` as Kafka delivers them from one partition of the demo
/// topic (offsets from `first`), read all at once: one engine that never stops.
pub fn feed(
    p: &mut quench::pipeline::Pipeline,
    lines: &[String],
    first: usize,
) -> Vec<(String, Action)> {
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let prov = quench::event::Provenance::Kafka {
            topic: cli::DEMO_TOPIC.into(),
            partition: 0,
            offset: (first + i) as i64,
        };
        let _ = p.process(
            l.as_bytes(),
            None,
            prov,
            quench::clock::WallTime::now().as_ts(),
            &mut out,
        );
    }
    out.iter()
        .map(|d| (d.decision_id.clone(), d.action))
        .collect()
}
