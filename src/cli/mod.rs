//! The commands: `demo`, `replay`, `normalize`, `simulate`, `eval`, `explain`, `session`, `backtest` and `ocsf`
//! (`run` is [`crate::runtime`], which the demo also runs).
//!
//! In: files, stdin, an embedded Kafka cluster or the evidence store. Out: decision records, unified events,
//! simulated traffic, reports, audit trails, OCSF findings, summaries. State: none beyond the pipeline each
//! command builds.

pub mod backtest;
pub mod eval;
pub mod explain;
pub mod session;

use crate::clock::WallTime;
use crate::config::{Config, ConfigError, KafkaConfig, TopicConfig};
use crate::decide::Decision;
use crate::event::{Provenance, SessionEvent, Ts};
use crate::ingest::file::Lines;
use crate::lab::stub;
use crate::normalize::Context;
use crate::pipeline::Pipeline;
use crate::respond::{self, Delivery, Dispatcher, RespondConfig};
use crate::runtime::{self, RunError, RunOptions};

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// Errors of the commands.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Respond(#[from] respond::RespondError),
    #[error("output: {0}")]
    Output(#[from] std::io::Error),
    #[error("{0}")]
    Scenario(String),
}

fn io_err(path: &str) -> impl FnOnce(std::io::Error) -> AppError + '_ {
    move |source| AppError::Io {
        path: path.into(),
        source,
    }
}

/// A held line: file, line number, bytes, event time, and why it was held.
type HeldLine = (String, u64, Vec<u8>, Ts, String);

/// Replay lines held because they were dated ahead of the stream's timeline (bounded in lines and bytes).
#[derive(Default)]
struct Held {
    lines: std::collections::VecDeque<HeldLine>,
    bytes: usize,
}

impl Held {
    const MAX_LINES: usize = 10_000;
    const MAX_BYTES: usize = 64 << 20;

    fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Hold a line; when the hold is full, the oldest held line comes back out, to be processed now (its time
    /// admitted if not after the wall clock) rather than lost.
    fn push(
        &mut self,
        name: &str,
        n: u64,
        raw: &[u8],
        e: crate::normalize::NormalizeError,
    ) -> Option<HeldLine> {
        let t = match &e {
            crate::normalize::NormalizeError::FromTheFuture { event_time, .. } => {
                Ts::parse(event_time).unwrap_or(Ts(i64::MAX))
            }
            _ => Ts(i64::MAX),
        };
        self.bytes += raw.len();
        self.lines
            .push_back((name.to_string(), n, raw.to_vec(), t, e.to_string()));
        if self.lines.len() > Self::MAX_LINES || self.bytes > Self::MAX_BYTES {
            let line = self.lines.pop_front()?;
            self.bytes -= line.2.len();
            return Some(line);
        }
        None
    }

    /// The held lines that now fit within the skew of the pipeline's clock, oldest first.
    fn take_fitting(&mut self, p: &Pipeline) -> Vec<(String, u64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.lines.len() {
            if p.fits(self.lines[i].3) {
                if let Some((name, n, raw, _, _)) = self.lines.remove(i) {
                    self.bytes -= raw.len();
                    out.push((name, n, raw));
                }
            } else {
                i += 1;
            }
        }
        out
    }

    fn into_sorted(self) -> Vec<HeldLine> {
        let mut v: Vec<_> = self.lines.into_iter().collect();
        v.sort_by_key(|l| l.3);
        v
    }
}

/// Write the decisions as JSON lines, hand them to the dispatcher when there is one, and keep them in the report.
fn emit(
    decisions: &mut Vec<Decision>,
    out: &mut dyn Write,
    dispatcher: Option<&Dispatcher>,
    report: &mut ReplayReport,
) -> Result<(), AppError> {
    for d in decisions.drain(..) {
        serde_json::to_writer(&mut *out, &d).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
        if let Some(disp) = dispatcher {
            disp.dispatch(Arc::new(d.clone()));
        }
        report.decisions.push(d);
    }
    Ok(())
}

/// What `replay` did.
#[derive(Debug, Default)]
pub struct ReplayReport {
    pub lines: u64,
    /// One [`rejection`] line per input line that could not be processed.
    pub failed: Vec<String>,
    pub decisions: Vec<Decision>,
    pub deliveries: Vec<Delivery>,
    pub stats: crate::pipeline::Stats,
}

/// `quench replay`: process JSON Lines in order, write decision records as JSON Lines to `out`.
/// Revocation targets are called only when `dispatch` is set.
pub async fn replay(
    cfg: &Config,
    paths: &[String],
    dispatch: bool,
    out: &mut dyn Write,
) -> Result<ReplayReport, AppError> {
    let mut pipeline = Pipeline::new(cfg)?;
    if let Some(dir) = &cfg.evidence.dir {
        pipeline.store_evidence(open_evidence(cfg, dir)?);
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let dispatcher = if dispatch {
        let targets = respond::build_targets(&cfg.respond).map_err(ConfigError::from)?;
        Some(Dispatcher::new(cfg.respond.clone(), targets, Some(tx))?)
    } else {
        None
    };
    let mut report = ReplayReport::default();
    let mut decisions = Vec::new();
    pipeline.use_stream_time();
    // Messages dated ahead of the stream's timeline wait here until another source corroborates the time (see
    // `timeline`); what is still waiting at the end is dead-lettered with its reason.
    let mut held = Held::default();
    for path in paths {
        let mut lines = Lines::open(path).map_err(io_err(path))?;
        let name = lines.name.clone();
        while let Some((n, raw)) = lines.next_line().map_err(io_err(path))? {
            report.lines += 1;
            let prov = Provenance::File {
                path: name.as_str().into(),
                line: n,
            };
            match pipeline.process(raw, None, prov, WallTime::now().as_ts(), &mut decisions) {
                Ok(_) => {}
                Err(e @ crate::normalize::NormalizeError::FromTheFuture { .. }) => {
                    if let Some((hname, hn, hraw, t, why)) = held.push(&name, n, raw, e) {
                        // Over the hold's limit. While no vouched line has started the clock (a stream of
                        // anonymous lines only), the oldest is processed now; once a vouched source keeps the time,
                        // it is given up: else enough forged lines could push a forged time through.
                        let now = WallTime::now().as_ts();
                        if pipeline.has_clock() || !pipeline.admit_at_end(t, now) {
                            report.failed.push(rejection(
                                &hname,
                                hn,
                                &format!("{why}, and after the wall clock: dead-lettered"),
                            ));
                        } else {
                            let prov = Provenance::File {
                                path: hname.as_str().into(),
                                line: hn,
                            };
                            if let Err(e) = pipeline.process(&hraw, None, prov, now, &mut decisions)
                            {
                                report.failed.push(rejection(&hname, hn, &e));
                            }
                        }
                    }
                }
                Err(e) => report.failed.push(rejection(&name, n, &e)),
            }
            if !held.is_empty() {
                for (hname, hn, hraw) in held.take_fitting(&pipeline) {
                    let prov = Provenance::File {
                        path: hname.as_str().into(),
                        line: hn,
                    };
                    if let Err(e) =
                        pipeline.process(&hraw, None, prov, WallTime::now().as_ts(), &mut decisions)
                    {
                        report.failed.push(rejection(&hname, hn, &e));
                    }
                }
            }
            emit(&mut decisions, out, dispatcher.as_ref(), &mut report)?;
        }
    }
    // What is still held: processed last, in event-time order, unless it is dated after the replay itself.
    let now = WallTime::now().as_ts();
    for (hname, hn, hraw, t, e) in held.into_sorted() {
        if !pipeline.admit_at_end(t, now) {
            report.failed.push(rejection(
                &hname,
                hn,
                &format!("{e}, and after the wall clock: dead-lettered"),
            ));
            continue;
        }
        let prov = Provenance::File {
            path: hname.as_str().into(),
            line: hn,
        };
        if let Err(e) = pipeline.process(&hraw, None, prov, now, &mut decisions) {
            report.failed.push(rejection(&hname, hn, &e));
        }
        emit(&mut decisions, out, dispatcher.as_ref(), &mut report)?;
    }
    // the reorder hold's events: nothing more will come before them
    pipeline.release_all(&mut decisions);
    emit(&mut decisions, out, dispatcher.as_ref(), &mut report)?;
    if let Some(d) = dispatcher {
        d.drain().await;
        drop(d);
        while let Ok(x) = rx.try_recv() {
            report.deliveries.push(x);
        }
    }
    if let Some(c) = pipeline.evidence().and_then(|e| e.commands()) {
        c.write(
            report
                .deliveries
                .iter()
                .map(crate::respond::outbox::outcome_row)
                .collect(),
        );
    }
    pipeline.close_evidence().map_err(evidence_err)?;
    report.stats = pipeline.stats.clone();
    Ok(report)
}

fn evidence_err(e: crate::evidence::EvidenceError) -> AppError {
    AppError::Scenario(e.to_string())
}

/// Open the evidence store at `dir` for a replay (its pending files from an interrupted run dropped: their rows
/// come again). A replay never expires evidence: its clock is the replayed stream's, which an unvouched line held
/// to the end can move to the present; retention is `run`'s, by the wall clock.
pub fn open_evidence(cfg: &Config, dir: &Path) -> Result<crate::evidence::Evidence, AppError> {
    cfg.evidence
        .validate()
        .map_err(crate::config::ConfigError::from)?;
    let mut keep = cfg.evidence.clone();
    keep.retention_days = 0;
    let mut e = crate::evidence::Evidence::open(&keep, dir).map_err(evidence_err)?;
    e.recover(&[]).map_err(evidence_err)?;
    Ok(e)
}

/// The line that reports a rejected input line: `{file}:{line}: {reason}`. The reason quotes the input (serde
/// names an unknown variant as it was written), so control characters in it and in the file name are escaped
/// ([`crate::text::escape_control`]): a record cannot clear the terminal or forge a `file:line:` line of its own.
pub fn rejection(file: &str, line: u64, reason: &dyn std::fmt::Display) -> String {
    let reason = reason.to_string();
    format!(
        "{}:{line}: {}",
        crate::text::escape_control(file),
        crate::text::escape_control(&reason)
    )
}

/// What `normalize` did.
#[derive(Debug, Default)]
pub struct NormalizeReport {
    pub lines: u64,
    pub events: u64,
    pub failed: u64,
    pub per_format: std::collections::BTreeMap<&'static str, u64>,
}

/// `quench normalize`: unified events as JSON Lines to `out`; each failure to `err` with its line and reason.
pub fn normalize(
    cfg: &Config,
    paths: &[String],
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<NormalizeReport, AppError> {
    let norm = crate::normalize::Normalize::new(&cfg.normalize).map_err(ConfigError::from)?;
    let mut report = NormalizeReport::default();
    for path in paths {
        let mut lines = Lines::open(path).map_err(io_err(path))?;
        let name = lines.name.clone();
        while let Some((n, raw)) = lines.next_line().map_err(io_err(path))? {
            report.lines += 1;
            let prov = Provenance::File {
                path: name.as_str().into(),
                line: n,
            };
            let ctx = Context::new(prov, WallTime::now().as_ts());
            let mut inner = crate::normalize::Envelopes::default();
            let mut events: Vec<SessionEvent<'_>> = Vec::new();
            match norm.normalize_enveloped(raw, None, &ctx, &mut events, &mut inner) {
                Ok(f) => {
                    *report.per_format.entry(f).or_default() += events.len() as u64;
                    for ev in &events {
                        serde_json::to_writer(&mut *out, ev).map_err(std::io::Error::from)?;
                        out.write_all(b"\n")?;
                        report.events += 1;
                    }
                }
                Err(e) => {
                    report.failed += 1;
                    writeln!(err, "{}", rejection(&name, n, &e))?;
                }
            }
        }
    }
    Ok(report)
}

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
            Some((x.finished_at.0 - d.decided_at.0) as f64)
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
