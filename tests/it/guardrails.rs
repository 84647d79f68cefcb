//! Guardrails under a forged flood: 100 Okta sessions "hijacked" within minutes (the shape an attacker who can
//! write to the log pipeline would forge to log everyone out). The revocation budget holds, a notice says so,
//! a protected break-glass admin is never revoked, and shadow-mode detectors act on nothing.

#![allow(clippy::unwrap_used, clippy::too_many_arguments)]

use quench::cli::replay;
use quench::config::Config;
use quench::decide::Action;
use std::io::Write;

fn okta(
    id: &str,
    t: i64,
    user: usize,
    ip: &str,
    city: &str,
    lat: f64,
    lon: f64,
    asn: u32,
    ua: &str,
    device: Option<&str>,
) -> String {
    let debug = device
        .map(|d| format!(r#"{{"dtHash":"{d}"}}"#))
        .unwrap_or_else(|| "{}".into());
    format!(
        r#"{{"uuid":"{id}","published":"{}","eventType":"user.authentication.sso","actor":{{"id":"00u{user}","type":"User","alternateId":"u{user:03}@example.com"}},"client":{{"ipAddress":"{ip}","userAgent":{{"rawUserAgent":"{ua}"}},"geographicalContext":{{"city":"{city}","country":"{city}","geolocation":{{"lat":{lat},"lon":{lon}}}}}}},"authenticationContext":{{"externalSessionId":"s{user}"}},"securityContext":{{"asNumber":{asn}}},"outcome":{{"result":"SUCCESS"}},"debugContext":{{"debugData":{debug}}}}}"#,
        quench::event::Ts(t).to_rfc3339()
    )
}

fn flood(tag: &str) -> std::path::PathBuf {
    let path =
        std::env::temp_dir().join(format!("quench-flood-{tag}-{}.jsonl", std::process::id()));
    let mut f = std::fs::File::create(&path).unwrap();
    let t0 = 1_793_606_400_000i64;
    for u in 0..100 {
        writeln!(
            f,
            "{}",
            okta(
                &format!("a{u}"),
                t0 + u as i64 * 1000,
                u,
                "73.1.1.1",
                "Chicago",
                41.88,
                -87.63,
                7922,
                "Chrome",
                Some("dev")
            )
        )
        .unwrap();
    }
    for u in 0..100 {
        writeln!(
            f,
            "{}",
            okta(
                &format!("b{u}"),
                t0 + 200_000 + u as i64 * 1000,
                u,
                "36.80.1.1",
                "Jakarta",
                -6.2,
                106.8,
                7713,
                "python-requests",
                None
            )
        )
        .unwrap();
    }
    path
}

async fn run(tag: &str, toml: &str) -> Vec<quench::decide::Decision> {
    let cfg = Config::from_str(toml, "test.toml").unwrap();
    let path = flood(tag);
    let r = replay(
        &cfg,
        &[path.display().to_string()],
        false,
        &mut std::io::sink(),
    )
    .await
    .unwrap();
    std::fs::remove_file(path).unwrap();
    r.decisions
}

#[tokio::test]
async fn a_forged_flood_is_held_by_the_budget_and_protected_principals_are_never_revoked() {
    let ds = run("budget", "[decide.guardrails]\nmax_revocations = 10\nbudget_window_secs = 3600\nprotected = [\"u000@example.com\"]\n").await;
    let revoked: Vec<_> = ds
        .iter()
        .filter(|d| d.action >= Action::RevokeToken)
        .collect();
    assert_eq!(revoked.len(), 10, "the budget caps revocations");
    let notices: Vec<_> = ds
        .iter()
        .filter(|d| d.findings.iter().any(|f| f.detector == "guardrail"))
        .collect();
    assert_eq!(notices.len(), 1);
    assert!(notices[0].findings[0].reason.contains("budget exhausted"));
    let degraded = ds
        .iter()
        .filter(|d| d.guardrail.as_deref().is_some_and(|g| g.contains("budget")))
        .count();
    assert!(degraded >= 89, "{degraded} degraded to alerts");
    let admin: Vec<_> = ds
        .iter()
        .filter(|d| d.principal.as_deref() == Some("u000@example.com"))
        .collect();
    assert!(
        !admin.is_empty() && admin.iter().all(|d| d.action == Action::Alert),
        "{admin:?}"
    );
}

#[tokio::test]
async fn shadow_mode_detectors_decide_and_record_but_never_act() {
    let ds = run(
        "shadow",
        "[decide.guardrails]\nshadow = [\"session_hijack\", \"impossible_travel\"]\n",
    )
    .await;
    assert!(ds.len() >= 100);
    assert!(
        ds.iter().all(|d| d.shadow),
        "every decision came from shadow detectors"
    );
}
