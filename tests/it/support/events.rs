//! Events for the tests: the demo day's raw vendor events.
//!
//! In: nothing. Out: the lines of `fixtures/scenarios/demo_day/events.jsonl`. State: none.

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
