//! Every scenario in `fixtures/scenarios/` (a directory with `events.jsonl` and `labels.json`) runs through the
//! `quench eval` code path: every labelled attack gets one of its acceptable actions within 60 s of event time,
//! and no benign principal (nor a victim before its attack) is revoked. A new scenario is a new directory, with
//! no new code.

#![allow(clippy::unwrap_used)]

use quench::cli::eval::{eval, traffic_config};
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

/// Regression guard over the whole simulated organisation (a smaller run of the README's 1,000-person
/// evaluation, every trap and attack at once): every attack is caught, all in time but low-and-slow scraping from
/// the token's own host (a sustained rise takes minutes to see), nobody innocent is revoked, and false alerts
/// stay within issue 11's bar.
#[tokio::test]
async fn simulated_traffic_every_attack_caught_in_time_and_no_innocent_revoked() {
    use quench::lab::simulate::{simulate, SimConfig};
    let dir = std::env::temp_dir().join(format!("quench-sim-test-{}", std::process::id()));
    let s = simulate(
        &SimConfig {
            people: 300,
            agents: 30,
            days: 7,
            seed: 7,
            only: None,
            event_time_order: false,
        },
        &dir,
    )
    .unwrap();
    let labels: quench::cli::eval::Labels =
        serde_json::from_slice(&std::fs::read(dir.join("labels.json")).unwrap()).unwrap();
    // the simulated organisation's own configuration
    let cfg = traffic_config(&dir).unwrap();
    let r = eval(&cfg, &dir, 60.0).await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(s.attacks >= 11, "{} attacks", s.attacks);
    assert_eq!(r.per_kind.len(), 11, "{:?}", r.per_kind.keys());
    assert_eq!(r.attacks_caught, s.attacks, "{:#?}", r.per_kind);
    let slow = labels
        .attacks
        .iter()
        .filter(|a| a.variant.as_deref() == Some("same_host"))
        .count();
    assert!(r.caught_in_time + slow >= s.attacks, "{:#?}", r.per_kind);
    assert_eq!(r.false_revocations, 0, "{:?}", r.false_revoked_principals);
    assert!(
        r.false_alerts_per_1000_principal_days <= 5.0,
        "{} false alerts ({:.2} per 1,000 principal-days)",
        r.false_alerts,
        r.false_alerts_per_1000_principal_days
    );
}
