//! The commands: `demo`, `replay`, `normalize`, `simulate`, `eval`, `explain`, `session`, `backtest` and `ocsf`
//! (`run` is [`crate::runtime`], which the demo also runs).
//!
//! In: files, stdin, an embedded Kafka cluster or the evidence store. Out: decision records, unified events,
//! simulated traffic, reports, audit trails, OCSF findings, summaries. State: none beyond the pipeline each
//! command builds.

pub mod backtest;
mod demo;
pub mod eval;
pub mod explain;
pub mod session;

pub use demo::{demo, produce_lines, DemoReport, Verdict, DEMO_TOPIC, DEMO_TOPICS};

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
        c.write_waiting(
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
