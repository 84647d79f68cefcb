//! Every scenario in `fixtures/scenarios/` (a directory with `events.jsonl` and `labels.json`) runs through the
//! `quench eval` code path: every labelled attack gets one of its acceptable actions within 60 s of event time,
//! and no benign principal (nor a victim before its attack) is revoked. A new scenario is a new directory, with
//! no new code.

#![allow(clippy::unwrap_used)]

use quench::app::eval::eval;
use quench::config::Config;

#[tokio::test]
async fn every_scenario_catches_its_attacks_in_time_and_revokes_no_innocent() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/scenarios");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("labels.json").exists())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 2, "no scenarios found in {}", root.display());
    let mut failures = Vec::new();
    for dir in &dirs {
        let r = eval(&Config::default(), dir, 60.0).await.unwrap();
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        if r.caught_in_time != r.attacks {
            let missed: Vec<_> = r
                .per_kind
                .iter()
                .filter(|(_, k)| k.caught_in_time < k.attacks)
                .map(|(n, k)| format!("{n}: {k:?}"))
                .collect();
            failures.push(format!(
                "{name}: caught {} of {} in time: {missed:?}",
                r.caught_in_time, r.attacks
            ));
        }
        if r.false_revocations != 0 {
            failures.push(format!(
                "{name}: false revocations of {:?}",
                r.false_revoked_principals
            ));
        }
        assert!(
            r.attacks > 0 && r.benign_principals > 0,
            "{name}: labels name no attack or no benign principal"
        );
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Regression guard over simulated traffic (a smaller run of the README's 1,000-person evaluation): every attack
/// kind is caught within 60 s and no innocent is revoked.
#[tokio::test]
async fn simulated_traffic_every_attack_caught_in_time_and_no_innocent_revoked() {
    use quench::app::simulate::{simulate, SimConfig};
    let dir = std::env::temp_dir().join(format!("quench-sim-test-{}", std::process::id()));
    let s = simulate(
        &SimConfig {
            people: 300,
            agents: 20,
            days: 7,
            seed: 7,
            only: None,
        },
        &dir,
    )
    .unwrap();
    // the simulated organisation's own configuration: its agent platform's configuration audit is trusted
    let cfg = Config::from_str(
        &std::fs::read_to_string(dir.join("quench.toml")).unwrap(),
        "quench.toml",
    )
    .unwrap();
    let r = eval(&cfg, &dir, 60.0).await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(s.attacks >= 7, "{} attacks", s.attacks);
    // every kind the simulator writes (eval's per-kind table comes from its labels), each caught in time
    assert!(r.per_kind.len() >= 7, "{:?}", r.per_kind.keys());
    for (kind, k) in &r.per_kind {
        assert!(
            k.attacks >= 1 && k.caught_in_time == k.attacks,
            "{kind}: {k:?}"
        );
    }
    assert_eq!(r.caught_in_time, s.attacks, "{:#?}", r.per_kind);
    assert_eq!(r.false_revocations, 0, "{:?}", r.false_revoked_principals);
    // issue 11's bar for false alerts: at most 5 per 1,000 benign principal-days
    assert!(
        r.false_alerts_per_1000_principal_days <= 5.0,
        "{} false alerts ({:.2} per 1,000 principal-days)",
        r.false_alerts,
        r.false_alerts_per_1000_principal_days
    );
}
