//! `[metrics] listen` serves the engine's counters in the Prometheus text format, including the loud ones: the
//! global revocation budget running out (Quench going alert-only) and what the outbox did.

#![allow(clippy::unwrap_used)]

use crate::support as common;

use quench::cli;
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
    let (mut opts, bound) =
        quench::runtime::serve_metrics("127.0.0.1:0".parse().unwrap(), &dispatcher)
            .await
            .unwrap();
    opts.stop_at_end = true;
    let mut pipeline = Pipeline::new(&cfg).unwrap();
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let report = quench::runtime::run_kafka(&k, &mut pipeline, &dispatcher, opts, stop_rx, |_| {})
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

/// Counts used to be published only at start and exit: a live `quench run` showed 0 records until it stopped. And
/// offsets were committed only when a record arrived, so an idle topic's tail stayed uncommitted. Both are read
/// here while the run is still going.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_committed_offsets_are_current_while_the_run_is_still_going() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let (_cluster, bootstrap, k) = common::demo_cluster("quench-metrics-live").await;
    let cfg = Config {
        kafka: Some(k.clone()),
        ..Default::default()
    };
    let respond = RespondConfig::default();
    let dispatcher =
        Dispatcher::new(respond.clone(), build_targets(&respond).unwrap(), None).unwrap();
    let (opts, bound) = quench::runtime::serve_metrics("127.0.0.1:0".parse().unwrap(), &dispatcher)
        .await
        .unwrap();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(async move {
        let mut pipeline = Pipeline::new(&cfg).unwrap();
        quench::runtime::run_kafka(&k, &mut pipeline, &dispatcher, opts, stop_rx, |_| {}).await
    });
    let total = common::demo_events().len() as u64;
    let url = format!("http://{bound}/metrics");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
        if value(&text, "quench_records_total") == total {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "records_total never reached {total} while running:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!run.is_finished(), "the run is still going");
    // the topic is now idle: its committed offset reaches the end without another record arriving
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "quench-metrics-live")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition(cli::DEMO_TOPIC, 0);
    let (_, high) = c
        .fetch_watermarks(cli::DEMO_TOPIC, 0, std::time::Duration::from_secs(10))
        .unwrap();
    common::wait_until("the idle topic's offsets are committed to its end", || {
        let got = c
            .committed_offsets(tpl.clone(), std::time::Duration::from_secs(10))
            .unwrap();
        got.find_partition(cli::DEMO_TOPIC, 0)
            .is_some_and(|p| p.offset() == rdkafka::Offset::Offset(high))
    })
    .await;
    assert!(!run.is_finished(), "the run is still going");
    stop.send(true).unwrap();
    run.await.unwrap().unwrap();
}
