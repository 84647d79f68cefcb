//! `[metrics] listen` serves the engine's counters in the Prometheus text format, including the loud ones: the
//! global revocation budget running out (Quench going alert-only) and what the outbox did.

#![allow(clippy::unwrap_used)]

mod common;

use quench::app;
use quench::config::Config;
use quench::decide::DecideConfig;
use quench::pipeline::Pipeline;
use quench::respond::{build_targets, Dispatcher, RespondConfig};

fn value(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_budget_running_out_and_what_was_sent() {
    let (_cluster, _bootstrap, k) = common::demo_cluster("quench-metrics").await;
    let addr = common::accept_all("202 Accepted").await;
    std::env::set_var("QUENCH_TEST_METRICS_SECRET", "metrics-secret-0123456789");
    let respond: RespondConfig = toml::from_str(&format!(
        "enforce = true\n[[targets]]\ntype = \"webhook\"\nurl = \"http://{addr}/hook\"\nsecret_env = \"QUENCH_TEST_METRICS_SECRET\"\n"
    ))
    .unwrap();
    // a budget of one revocation a day: the demo's other two become alerts, and the budget notice says so
    let decide: DecideConfig =
        toml::from_str("[guardrails]\nmax_revocations = 1\nbudget_window_secs = 86400\n").unwrap();
    let cfg = Config {
        kafka: Some(k.clone()),
        respond: respond.clone(),
        decide,
        ..Default::default()
    };
    let dispatcher =
        Dispatcher::new(respond.clone(), build_targets(&respond).unwrap(), None).unwrap();
    let (mut opts, bound) = app::serve_metrics("127.0.0.1:0".parse().unwrap(), &dispatcher)
        .await
        .unwrap();
    opts.stop_at_end = true;
    let mut pipeline = Pipeline::new(&cfg).unwrap();
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let report = app::run_kafka(&k, &mut pipeline, &dispatcher, opts, stop_rx, |_| {})
        .await
        .unwrap();
    assert_eq!(report.commands_written, 1);

    let text = reqwest::get(format!("http://{bound}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        value(&text, "quench_records_total"),
        common::demo_events().len() as u64
    );
    assert_eq!(value(&text, "quench_dead_letters_total"), 2);
    // the demo's day is within the state horizon and its links never conflict
    assert_eq!(value(&text, "quench_events_too_old_total"), 0);
    assert_eq!(value(&text, "quench_link_conflicts_total"), 0);
    assert_eq!(value(&text, "quench_revocation_budget_exhausted_total"), 1);
    assert_eq!(value(&text, "quench_guardrail_capped_total"), 2);
    assert_eq!(value(&text, "quench_revocations_total{result=\"sent\"}"), 1);
    assert_eq!(
        value(&text, "quench_revocations_total{result=\"failed\"}"),
        0
    );
    assert_eq!(
        value(&text, "quench_outbox_commands_total{state=\"settled\"}"),
        1
    );
    assert_eq!(
        value(&text, "quench_decisions_total{action=\"step_up\"}"),
        1
    );
    assert!(
        text.contains("# TYPE quench_outbox_in_flight gauge"),
        "{text}"
    );
    // anything else is not found
    let r = reqwest::get(format!("http://{bound}/")).await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
}
