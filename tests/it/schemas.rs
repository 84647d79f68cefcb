//! Every event the normalizers emit from the fixtures, and every decision of the demo scenario, validates
//! against the published JSON Schemas.

#![allow(clippy::unwrap_used)]

use quench::cli;
use quench::config::Config;
use serde_json::Value;

fn schema(name: &str) -> jsonschema::Validator {
    let text =
        std::fs::read_to_string(format!("{}/schemas/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    jsonschema::validator_for(&serde_json::from_str::<Value>(&text).unwrap()).unwrap()
}

fn check(v: &jsonschema::Validator, line: &str) {
    let value: Value = serde_json::from_str(line).unwrap();
    let errors: Vec<String> = v
        .iter_errors(&value)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:?}\n{line}");
}

#[test]
fn normalized_fixture_events_match_the_session_event_schema() {
    let v = schema("session-event.schema.json");
    let dir = format!("{}/fixtures", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> = std::fs::read_dir(format!("{dir}/formats"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    files.push(format!("{dir}/scenarios/demo_day/events.jsonl"));
    let mut out = Vec::new();
    let mut err = Vec::new();
    let r = cli::normalize(&Config::default(), &files, &mut out, &mut err).unwrap();
    assert_eq!(
        r.failed,
        2,
        "only the two deliberately bad demo lines fail: {}",
        String::from_utf8_lossy(&err)
    );
    let text = String::from_utf8(out).unwrap();
    let mut n = 0;
    for line in text.lines() {
        check(&v, line);
        n += 1;
    }
    assert!(n > 4000);
    for f in ["okta", "google_workspace", "kong", "otel_genai", "native"] {
        assert!(
            r.per_format.get(f).copied().unwrap_or(0) > 0,
            "{f} produced nothing"
        );
    }
}

#[test]
fn demo_decisions_match_the_decision_schema() {
    let v = schema("decision.schema.json");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut out = Vec::new();
    let path = format!(
        "{}/fixtures/scenarios/demo_day/events.jsonl",
        env!("CARGO_MANIFEST_DIR")
    );
    let r = rt
        .block_on(cli::replay(&Config::default(), &[path], false, &mut out))
        .unwrap();
    assert!(r.decisions.len() >= 4);
    for line in String::from_utf8(out).unwrap().lines() {
        check(&v, line);
    }
}
