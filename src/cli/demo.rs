//! `quench demo`: an embedded Kafka cluster (librdkafka's mock), the demo day produced to it, `run` over it, a
//! local revocation endpoint, and the outcome checked and printed.
//!
//! In: the demo day's lines (built in). Out: the demo's report and its printed summary. State: the cluster, the
//! endpoint and the run, for the length of the demo.

use super::*;

/// One line of the outcome check.
#[derive(Debug)]
pub struct Verdict {
    pub ok: bool,
    pub text: String,
}

/// What the demo did; the integration tests read it.
pub struct DemoReport {
    pub records: u64,
    pub dead_letters: u64,
    pub decisions: Vec<Decision>,
    pub deliveries: Vec<Delivery>,
    pub received: Vec<stub::Received>,
    pub verdicts: Vec<Verdict>,
    pub latency_us: hdrhistogram::Histogram<u64>,
    pub stats: crate::pipeline::Stats,
    pub kafka: KafkaConfig,
}

/// Produce each line as one record (keyed by its index), waiting for every acknowledgement.
pub async fn produce_lines(k: &KafkaConfig, topic: &str, lines: &[String]) -> Result<(), AppError> {
    let producer = crate::bus::producer(k)?;
    let mut pending = Vec::with_capacity(lines.len());
    for (i, l) in lines.iter().enumerate() {
        let key = i.to_string();
        loop {
            match producer.send_result(
                rdkafka::producer::FutureRecord::to(topic)
                    .key(&key)
                    .payload(l.as_bytes()),
            ) {
                Ok(f) => {
                    pending.push(f);
                    break;
                }
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    _,
                )) => {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                Err((e, _)) => {
                    return Err(RunError::Produce {
                        topic: topic.into(),
                        source: e,
                    }
                    .into())
                }
            }
        }
    }
    for f in pending {
        match f.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => {
                return Err(RunError::Produce {
                    topic: topic.into(),
                    source: e,
                }
                .into())
            }
            Err(_) => return Err(AppError::Scenario("producer dropped a delivery".into())),
        }
    }
    Ok(())
}

/// Topic the demo feeds.
pub const DEMO_TOPIC: &str = "audit-events";

/// Every topic the demo uses: input, decisions, dead letters, commands (the outbox).
pub const DEMO_TOPICS: [&str; 4] = [
    DEMO_TOPIC,
    "quench.decisions",
    "quench.deadletter",
    "quench.commands",
];

/// Run the demo against the Kafka cluster at `bootstrap`: feed `scenario` (raw events, one per line) into it,
/// run the real pipeline through Kafka with revocations going to a local stub, and check `expected`.
pub async fn demo(
    bootstrap: &str,
    scenario: &Path,
    out: &mut dyn Write,
) -> Result<DemoReport, AppError> {
    let events_path = scenario.join("events.jsonl");
    let sp = events_path.display().to_string();
    let ep = scenario.join("labels.json").display().to_string();
    let labels: eval::Labels =
        serde_json::from_str(&std::fs::read_to_string(&ep).map_err(io_err(&ep))?)
            .map_err(|e| AppError::Scenario(format!("{ep}: {e}")))?;
    let lines: Vec<String> = std::fs::read_to_string(&events_path)
        .map_err(io_err(&sp))?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect();

    // The stand-in IdP and the targets that call it. Secrets go through the environment, as in production.
    let okta_token = format!("demo-{:x}", WallTime::now().as_ts().0);
    let secret = format!("demo-webhook-secret-{:x}", WallTime::now().as_ts().0);
    std::env::set_var("QUENCH_DEMO_OKTA_TOKEN", &okta_token);
    std::env::set_var("QUENCH_DEMO_WEBHOOK_SECRET", &secret);
    let stub = stub::start(okta_token, secret)
        .await
        .map_err(io_err("stub"))?;
    let targets_toml = format!(
        "enforce = true\n[[targets]]\ntype = \"okta\"\nbase_url = \"http://{a}\"\napi_token_env = \"QUENCH_DEMO_OKTA_TOKEN\"\nactions = [\"terminate_session\"]\n\
         [[targets]]\ntype = \"webhook\"\nname = \"agent-gateway\"\nurl = \"http://{a}/hooks/quench\"\nsecret_env = \"QUENCH_DEMO_WEBHOOK_SECRET\"\nactions = [\"revoke_token\"]\n",
        a = stub.addr
    );
    let respond_cfg: RespondConfig =
        toml::from_str(&targets_toml).map_err(|e| AppError::Scenario(e.to_string()))?;
    let kafka_cfg = KafkaConfig {
        brokers: bootstrap.into(),
        group_id: "quench-demo".into(),
        topics: vec![TopicConfig {
            name: DEMO_TOPIC.into(),
            format: "auto".into(),
        }],
        decisions_topic: "quench.decisions".into(),
        ocsf_topic: None,
        dead_letter_topic: "quench.deadletter".into(),
        commit_interval_ms: 200,
        properties: Default::default(),
        keyed: None,
    };
    let cfg = Config {
        kafka: Some(kafka_cfg.clone()),
        respond: respond_cfg,
        ..Default::default()
    };

    // Feed the scenario through the real Kafka protocol.
    writeln!(
        out,
        "respond.enforce = true: the demo sends its revocations, to a local stand-in for Okta and an agent gateway at {}",
        stub.addr
    )?;
    writeln!(
        out,
        "Producing {} raw events from {sp} to topic {DEMO_TOPIC} …",
        lines.len()
    )?;
    produce_lines(&kafka_cfg, DEMO_TOPIC, &lines).await?;

    let mut pipeline = Pipeline::new(&cfg)?;
    let targets = respond::build_targets(&cfg.respond).map_err(ConfigError::from)?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let dispatcher = Dispatcher::new(cfg.respond.clone(), targets, Some(tx))?;
    let (_stop_tx, stop_rx) = watch::channel(false);
    writeln!(
        out,
        "Running the pipeline (Kafka → normalize → correlate → detect → decide → respond) …\n"
    )?;
    let mut printed = Vec::new();
    let full = runtime::run_kafka(
        &kafka_cfg,
        &mut pipeline,
        &dispatcher,
        RunOptions {
            stop_at_end: true,
            ..Default::default()
        },
        stop_rx,
        |d| {
            printed.push(d.clone());
        },
    )
    .await?;
    let (report, outbox) = (full.run, (full.commands_written, full.outbox));
    for d in &printed {
        writeln!(
            out,
            "DECISION {} {:<17} score {:.2}  principal={} token={} job={}",
            &d.decision_id[..8],
            d.action.as_str(),
            d.score,
            d.principal.as_deref().unwrap_or("-"),
            d.token_id.as_deref().unwrap_or("-"),
            d.job_id.as_deref().unwrap_or("-")
        )?;
        for f in &d.findings {
            writeln!(out, "    {:<18} {:.2}  {}", f.detector, f.score, f.reason)?;
        }
    }
    drop(dispatcher);
    let mut deliveries = Vec::new();
    while let Some(x) = rx.recv().await {
        deliveries.push(x);
    }
    writeln!(out)?;
    for x in &deliveries {
        let what = match &x.result {
            Ok(s) => format!("HTTP {s}"),
            Err(e) => format!("FAILED {e}"),
        };
        writeln!(
            out,
            "REVOCATION {} → {:<13} {} for {} ({} attempt(s))",
            x.action.as_str(),
            x.target,
            what,
            x.principal.as_deref().unwrap_or("-"),
            x.attempts
        )?;
    }
    let received = stub.received.lock().map(|v| v.clone()).unwrap_or_default();
    let score = eval::score(&labels, &printed, 60.0, pipeline.stats.events);
    let mut verdicts: Vec<Verdict> = Vec::new();
    for a in &labels.attacks {
        let caught = printed
            .iter()
            .find(|d| a.actions.contains(&d.action) && a.covers(d));
        verdicts.push(match caught {
            Some(d) => Verdict {
                ok: true,
                text: format!(
                    "caught   {} ({}): {} {:.0} s after the first malicious event",
                    a.id,
                    a.kind,
                    d.action.as_str(),
                    a.time_to_decision(d)
                ),
            },
            None => Verdict {
                ok: false,
                text: format!("MISSED   {} ({})", a.id, a.kind),
            },
        });
    }
    verdicts.push(Verdict {
        ok: score.false_revocations == 0,
        text: format!(
            "false revocations: {} of {} benign principals{}",
            score.false_revocations,
            score.benign_principals,
            if score.false_revoked_principals.is_empty() {
                String::new()
            } else {
                format!(" ({})", score.false_revoked_principals.join(", "))
            }
        ),
    });
    verdicts.push(Verdict {
        ok: report.records == lines.len() as u64,
        text: format!(
            "consumed {} of the {} records produced",
            report.records,
            lines.len()
        ),
    });
    writeln!(out, "\nSummary")?;
    writeln!(
        out,
        "  records consumed     {} ({} events; per format: {:?})",
        report.records, pipeline.stats.events, pipeline.stats.per_format
    )?;
    writeln!(
        out,
        "  dead-lettered        {} (reasons: {:?})",
        report.dead_letters, pipeline.stats.rejected
    )?;
    writeln!(out, "  findings             {}", pipeline.stats.findings)?;
    writeln!(
        out,
        "  decisions            {} {:?}",
        report.decisions, pipeline.stats.decisions
    )?;
    writeln!(
        out,
        "  revocations          {} sent, {} failed; the stand-in IdP received {} requests",
        deliveries.iter().filter(|d| d.result.is_ok()).count(),
        deliveries.iter().filter(|d| d.result.is_err()).count(),
        received.len()
    )?;
    let mut lat: Vec<f64> = deliveries
        .iter()
        .filter(|x| x.result.is_ok())
        .filter_map(|x| {
            let d = printed.iter().find(|d| d.decision_id == x.decision_id)?;
            // the demo runs `run`, whose processing clock is the ingest time: a wall-clock reading as well
            Some((x.finished_at.as_ts().0 - d.decided_at.0) as f64)
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    if let (Some(lo), Some(hi)) = (lat.first(), lat.last()) {
        writeln!(
            out,
            "  decision→revocation  {lo:.0}–{hi:.0} ms from the decision to the target's answer, through the outbox (wall clock)"
        )?;
    }
    writeln!(
        out,
        "  outbox               {} commands on quench.commands before sending, {} settled with an outcome record",
        outbox.0, outbox.1.settled
    )?;
    let h = &report.latency_us;
    writeln!(
        out,
        "  ingest→decision      p50 {} µs, p99 {} µs, max {} µs (wall clock, {} decisions)",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.max(),
        h.len()
    )?;
    writeln!(out, "\nExpected outcomes ({ep})")?;
    for v in &verdicts {
        writeln!(out, "  {} {}", if v.ok { "✓" } else { "✗" }, v.text)?;
    }
    Ok(DemoReport {
        records: report.records,
        dead_letters: report.dead_letters,
        decisions: printed,
        deliveries,
        received,
        verdicts,
        latency_us: report.latency_us,
        stats: pipeline.stats.clone(),
        kafka: kafka_cfg,
    })
}
