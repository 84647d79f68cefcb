//! Every trap and every attack of `quench simulate` on its own, through the `quench eval` code path, with the
//! simulated organisation's own configuration (`quench.toml` beside the traffic).
//!
//! A trap test simulates ordinary life plus that one trap (the traffic that fooled earlier versions: dual stack,
//! security proxies, one Entra session across browser and desktop apps, on-call bursts, unannounced agent
//! reconfigurations …), checks the trap really occurred, and asserts that nobody is revoked and that false alerts
//! stay within issue 11's bar (5 per 1,000 principal-days). An attack test simulates that kind twice (each of its
//! variants once) and asserts both are caught, within 60 s of the arrival of the first malicious event except
//! where the test says why not.

#![allow(clippy::unwrap_used)]

use quench::cli::eval::{eval, traffic_config, Report};
use quench::lab::simulate::{simulate, SimConfig, SimSummary, ATTACKS, TRAPS};

async fn run(only: &str) -> (SimSummary, Report) {
    let dir = std::env::temp_dir().join(format!("quench-simulated-{only}-{}", std::process::id()));
    let s = simulate(
        &SimConfig {
            people: 80,
            agents: 20,
            days: 8,
            seed: 11,
            only: Some(only.into()),
            event_time_order: false,
        },
        &dir,
    )
    .unwrap();
    let cfg = traffic_config(&dir).unwrap();
    let r = eval(&cfg, &dir, 60.0).await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    (s, r)
}

async fn trap(name: &str) {
    let (s, r) = run(name).await;
    assert!(
        s.traps.get(name).copied().unwrap_or(0) >= 1,
        "the trap {name} never occurred: {:?}",
        s.traps
    );
    assert_eq!(s.attacks, 0);
    assert_eq!(
        r.false_revocations, 0,
        "{name}: revoked {:?}",
        r.false_revoked_principals
    );
    assert!(
        r.false_alerts_per_1000_principal_days <= 5.0,
        "{name}: {} false alerts ({:.2} per 1,000 principal-days)",
        r.false_alerts,
        r.false_alerts_per_1000_principal_days
    );
}

async fn attack(kind: &str, in_time: usize) {
    let (s, r) = run(kind).await;
    assert_eq!(s.attacks, 2, "{kind}: one attack per variant");
    let k = &r.per_kind[kind];
    assert_eq!(k.attacks_caught, 2, "{kind}: {k:?}");
    assert!(k.caught_in_time >= in_time, "{kind}: {k:?}");
    assert_eq!(
        r.false_revocations, 0,
        "{kind}: revoked {:?}",
        r.false_revoked_principals
    );
}

macro_rules! traps {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                trap(stringify!($name)).await;
            }
        )*
        /// This file tests every trap the simulator has.
        #[test]
        fn every_trap_has_a_test() {
            let tested = [$(stringify!($name)),*];
            assert_eq!(tested.as_slice(), TRAPS);
        }
    };
}

traps!(
    dual_stack,
    security_proxy,
    private_relay,
    carrier_hub,
    tethering,
    inflight_wifi,
    office_nat,
    corporate_vpn,
    travel,
    desktop_apps,
    browser_update,
    new_hire,
    oauth_rollout,
    on_call_burst,
    quarter_end,
    service_burst,
    vendor_risk_noise,
    agent_reconfig_announced,
    agent_reconfig_late,
    agent_reconfig_unannounced,
    agent_rare_writer,
);

macro_rules! attacks {
    ($($(#[$doc:meta])* $name:ident: $in_time:expr),* $(,)?) => {
        $(
            $(#[$doc])*
            #[tokio::test]
            async fn $name() {
                attack(stringify!($name), $in_time).await;
            }
        )*
        /// This file tests every attack kind the simulator has.
        #[test]
        fn every_attack_kind_has_a_test() {
            let tested = [$(stringify!($name)),*];
            assert_eq!(tested.as_slice(), ATTACKS);
        }
    };
}

attacks!(
    cookie_replay: 2,
    aitm_replay: 2,
    impossible_travel: 2,
    refresh_token_reuse: 2,
    entra_token_replay: 2,
    m365_mailbox_access: 2,
    bulk_export: 2,
    /// Scraping from the token's usual host with its usual client is seen only as a sustained rise, minutes after
    /// it starts (an alert); from outside it is caught at once.
    token_scraping: 1,
    agent_domain_pivot: 2,
    agent_exfiltration: 2,
    agent_new_mcp: 2,
);
