//! Every real, public sample event in `../shared/data/samples` that is a log event in a supported format
//! normalizes, and the key fields the raw events carry are filled. Runs when the samples are beside the checkout
//! (as in CI); fails otherwise, unless QUENCH_ALLOW_SKIP=1 opts out. The README table comes from the same survey
//! (`cargo run --example samples_table`).

#![allow(clippy::unwrap_used)]

use crate::support as common;

use quench::lab::samples::{survey, totals};
use std::path::Path;

#[test]
fn every_supported_shared_sample_normalizes_with_its_key_fields() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/samples");
    if !dir.is_dir() {
        return common::skip(&format!("{} is not beside this checkout", dir.display()));
    }
    let rows = survey(&dir).unwrap();
    let counted: Vec<_> = rows.iter().filter(|r| r.excluded.is_none()).collect();
    let failures: Vec<String> = counted
        .iter()
        .flat_map(|r| r.failures.iter().map(move |f| format!("{}: {f}", r.source)))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    let (events, normalized) = totals(&rows);
    assert!(events >= 140, "only {events} sample events counted");
    assert_eq!(normalized, events);

    // identity and SaaS-audit sources name the principal (gateway and span samples often carry none)
    let idp_saas = [
        "okta",
        "entra_signin",
        "entra_audit",
        "google_workspace",
        "m365_audit",
        "salesforce",
        "slack_audit",
        "github_audit",
    ];
    let identity: Vec<_> = counted
        .iter()
        .filter(|r| r.formats.iter().all(|f| idp_saas.contains(f)))
        .collect();
    let (with, all) = identity
        .iter()
        .fold((0, 0), |(w, a), r| (w + r.with_principal, a + r.events));
    assert!(
        with as f64 >= 0.97 * all as f64,
        "principal on {with} of {all} identity-source events"
    );
    // the Okta samples carry everything
    for r in counted
        .iter()
        .filter(|r| r.source.contains("okta_system_log_examples"))
    {
        assert_eq!(
            (r.with_ip, r.with_session, r.with_geo, r.with_user_agent),
            (r.events, r.events, r.events, r.events),
            "{r:?}"
        );
    }
    // Entra sign-ins carry geo and IP
    let entra = counted
        .iter()
        .find(|r| r.source.contains("signinlogs__test-signinlogs-raw"))
        .unwrap();
    assert_eq!(
        (entra.with_ip, entra.with_geo),
        (entra.events, entra.events),
        "{entra:?}"
    );
    // the GitHub sample's api.request event carries its hashed token (the other event, repo.create, has none)
    let gh = counted
        .iter()
        .find(|r| r.source.contains("audit__test-api-request-events"))
        .unwrap();
    assert_eq!((gh.events, gh.with_token), (2, 1), "{gh:?}");
}

/// Quench's events agree with Elastic's published pipeline-test outputs for the same inputs
/// (`fixtures/peer/elastic_expected.jsonl`, facts only) on time, principal, IP, session, user agent and outcome,
/// except where Quench differs on purpose (each listed with why). A new disagreement, or a listed one that went
/// away, fails.
#[test]
fn normalize_agrees_with_elastics_expected_outputs_field_by_field() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("../shared/data/samples");
    if !dir.is_dir() {
        return common::skip(&format!("{} is not beside this checkout", dir.display()));
    }
    let peer = quench::lab::samples::load_peer(&root.join("fixtures/peer/elastic_expected.jsonl"))
        .unwrap();
    assert!(peer.len() >= 80, "only {} peer facts", peer.len());
    let rows = quench::lab::samples::survey_against(&dir, &peer).unwrap();
    let facts: usize = rows.iter().map(|r| r.peer_facts).sum();
    assert!(facts >= 240, "only {facts} facts compared");
    let mut differ: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            r.peer_disagreements
                .iter()
                .map(move |d| format!("{}: {d}", r.source))
        })
        .collect();
    differ.sort();
    let on_purpose = [
        // HTTP 501 is a server error; Elastic's envoyproxy pipeline marks it success
        "elastic_integrations/envoyproxy/log__test-log.jsonl: line 6: outcome: peer \"success\", Quench failure",
        // Slack's anomaly entry is dated by `date_create`, when Slack wrote it; Elastic takes
        // `details.action_timestamp`, which in this sample lies after the entry was written
        "elastic_integrations/slack/audit__test-audit.jsonl: line 4: time: peer \"2023-01-13T17:40:21.862Z\", Quench 2023-01-13T17:38:51.000Z",
    ];
    assert_eq!(
        differ, on_purpose,
        "disagreements with Elastic's expected outputs changed"
    );
}
