//! The `quench` command line: `demo`, `run`, `replay`, `simulate`, `eval`, `explain`, `session`, `backtest`,
//! `ocsf`, `query`, `jwks`, `normalize`.
//!
//! In: the arguments; a configuration file (`--config`: required by `run` and `jwks`, elsewhere optional, the
//! built-in defaults without one); and, per command, Kafka topics (`run`; `demo` on an in-process cluster), raw
//! events from files or stdin (`replay`, `normalize`, `explain`), labelled traffic (`eval`), or the evidence store
//! (`session`, `backtest`, `ocsf`, `explain --store`, `query`). Out: decision records (on Kafka, stdout or
//! `--out`) and revocations (`run`, `replay --dispatch`, `demo` against a local stand-in), the evidence store
//! (`run` and `replay`, when one is configured), unified events (`normalize`), labelled traffic files
//! (`simulate`), reports, trails, OCSF findings and the JWK Set on stdout, and summaries and errors on stderr.
//! State: none of its own; each command builds the pipeline or reads the store it needs (`run` saves the
//! pipeline's state to `[state] dir` when configured). `query` runs the separate `quench-query` binary.
//! Its allocator is mimalloc ([`GLOBAL`]).

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use quench::config::{Config, LogFormat};
use quench::pipeline::Pipeline;
use quench::respond::{self, Dispatcher};
use quench::runtime::{self, RunOptions};
use quench::{cli, lab};
use std::io::Write;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "quench",
    version,
    about = "Streaming session-risk engine: audit events in, risk decisions and revocations out"
)]
struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the whole pipeline on an embedded Kafka cluster with a realistic attack scenario; no setup needed.
    Demo {
        /// Scenario directory: `events.jsonl` (raw events, one per line) and `labels.json` (who must and must not
        /// be acted on).
        #[arg(long, default_value = "fixtures/scenarios/demo_day")]
        scenario: PathBuf,
    },
    /// Production mode: consume Kafka, produce decisions, call revocation APIs.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Process JSON Lines of raw events in order; decision records as JSON Lines on stdout.
    Replay {
        /// Files to read; `-` for stdin.
        #[arg(required = true)]
        files: Vec<String>,
        #[arg(long)]
        config: Option<PathBuf>,
        /// Write decisions here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Call the configured revocation targets (default: none is called).
        #[arg(long)]
        dispatch: bool,
        /// Keep the evidence (events, findings, decisions, commands) in this store (overrides `[evidence] dir`).
        #[arg(long)]
        store: Option<PathBuf>,
    },
    /// Write labelled, realistic traffic: DIR/events.jsonl (raw vendor events) and DIR/labels.json.
    Simulate {
        #[arg(long, default_value_t = 1000)]
        people: usize,
        #[arg(long, default_value_t = 100)]
        agents: usize,
        #[arg(long, default_value_t = 14)]
        days: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Simulate one trap or attack kind alone (with ordinary life around it); `--only list` lists them.
        #[arg(long)]
        only: Option<String>,
        /// Write the lines in event-time order instead of arrival order (every source's delivery lag removed).
        #[arg(long)]
        event_time_order: bool,
        #[arg(long)]
        out: PathBuf,
    },
    /// Score the pipeline on labelled traffic: DIR/events.jsonl through the replay code path, against DIR/labels.json.
    Eval {
        dir: PathBuf,
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
        /// Seconds from the arrival of the first malicious event (from its event time when the labels do not say when
        /// it arrived) within which a catch counts as in time.
        #[arg(long, default_value_t = 60.0)]
        deadline: f64,
    },
    /// Show the event timeline behind a decision: from the evidence store (--store), or by replaying FILEs.
    Explain {
        /// The decision id, or a unique prefix of it.
        decision: String,
        #[arg(required_unless_present = "store")]
        files: Vec<String>,
        /// Read the decision and its events from this evidence store instead of replaying files.
        #[arg(long, conflicts_with = "files")]
        store: Option<PathBuf>,
        #[arg(long)]
        config: Option<PathBuf>,
        /// Seconds of the subject's events to show before the first evidence event.
        #[arg(long, default_value_t = 3600)]
        window: i64,
    },
    /// The audit trail of one session (or token or agent job), or of one principal, from the evidence store.
    Session {
        /// A session, root session, token or job id.
        #[arg(required_unless_present = "principal")]
        id: Option<String>,
        /// A principal's e-mail or id instead of a session.
        #[arg(long, conflicts_with = "id")]
        principal: Option<String>,
        #[command(flatten)]
        range: StoreRange,
        /// Print JSON (to attach to a ticket) instead of the text trail.
        #[arg(long)]
        json: bool,
    },
    /// Replay stored events through a candidate detector/decide configuration and print how its decisions differ.
    Backtest {
        #[command(flatten)]
        range: StoreRange,
        /// The candidate's detector files (overriding the built-in `detectors/*.toml`).
        #[arg(long)]
        detectors: Option<PathBuf>,
        /// The candidate's configuration (default: the baseline's).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The configuration in force when the events were stored (default: the built-in one).
        #[arg(long)]
        baseline: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Write stored decisions as OCSF 1.8.0 Detection Findings (class 2004), one JSON object per line, with the
    /// evidence events the store holds.
    Ocsf {
        #[command(flatten)]
        range: StoreRange,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// SQL over the evidence store (tables events, findings, decisions, commands); runs `quench-query`.
    Query {
        /// `"SQL" [--store DIR] [--format table|jsonl|csv|parquet] [--out FILE]`
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
    /// Print the JWK Set receivers verify Quench's signed events with (the public keys of the `caep` targets).
    Jwks {
        #[arg(long)]
        config: PathBuf,
    },
    /// Turn raw events into unified session events (JSON Lines on stdout); failures on stderr.
    Normalize {
        #[arg(required = true)]
        files: Vec<String>,
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print per-format counts on stderr.
        #[arg(long)]
        stats: bool,
    },
}

/// Where a command writes: the file given, else stdout (buffered either way).
fn output(out: Option<&PathBuf>) -> anyhow::Result<Box<dyn Write>> {
    Ok(match out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    })
}

/// The evidence store and the time range a command reads.
#[derive(clap::Args)]
struct StoreRange {
    /// From this time (RFC 3339, or `7d` / `36h` before now).
    #[arg(long)]
    since: Option<String>,
    /// Up to this time (same forms).
    #[arg(long)]
    until: Option<String>,
    /// The evidence store (`[evidence] dir`).
    #[arg(long, default_value = "quench-evidence")]
    store: PathBuf,
}

impl StoreRange {
    fn times(&self) -> anyhow::Result<(Option<quench::event::Ts>, Option<quench::event::Ts>)> {
        Ok((when(self.since.as_deref())?, when(self.until.as_deref())?))
    }
}

fn load(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    Ok(match path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    })
}

/// `--since` / `--until`: RFC 3339, or a span before now such as `7d`, `36h`, `90m`.
fn when(s: Option<&str>) -> anyhow::Result<Option<quench::event::Ts>> {
    let Some(s) = s else { return Ok(None) };
    if let Some(t) = quench::event::Ts::parse(s) {
        return Ok(Some(t));
    }
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let ms = match unit {
        "d" => 86_400_000,
        "h" => 3_600_000,
        "m" => 60_000,
        _ => 0,
    };
    let back = n
        .parse::<i64>()
        .ok()
        .filter(|n| ms > 0 && *n >= 0)
        .and_then(|n| n.checked_mul(ms));
    match back {
        Some(b) => Ok(Some(quench::event::Ts(
            quench::clock::WallTime::now().as_ts().0.saturating_sub(b),
        ))),
        None => bail!("{s:?}: allowed: an RFC 3339 time or a span before now such as 7d, 36h, 90m"),
    }
}

/// Run `quench-query` (beside this binary, else on PATH) with `args`.
fn query(args: &[String]) -> anyhow::Result<()> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("quench-query")))
        .filter(|p| p.exists());
    let prog = beside.unwrap_or_else(|| PathBuf::from("quench-query"));
    match std::process::Command::new(&prog).args(args).status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => std::process::exit(s.code().unwrap_or(1)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "quench query needs the quench-query binary (DataFusion, kept out of the engine's build): \
             cargo build --release -p quench-query, then run it from target/release or put it on PATH"
        ),
        Err(e) => Err(e).with_context(|| format!("running {}", prog.display())),
    }
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match cli.cmd {
        Cmd::Demo { scenario } => {
            init_logs(cli.log_json);
            let cluster = rdkafka::mocking::MockCluster::new(1)
                .context("starting the in-process Kafka cluster")?;
            for t in cli::DEMO_TOPICS {
                cluster.create_topic(t, 1, 1)?;
            }
            let bootstrap = cluster.bootstrap_servers();
            println!("Quench demo: in-process Kafka cluster at {bootstrap} (librdkafka mock broker, real Kafka protocol)");
            let mut out = std::io::stdout();
            let report = rt.block_on(cli::demo(&bootstrap, &scenario, &mut out))?;
            out.flush()?;
            if report.verdicts.iter().any(|v| !v.ok) {
                bail!("the demo's expected outcomes were not met (see above)");
            }
        }
        Cmd::Run { config } => {
            let cfg = Config::load(&config)?;
            init_logs(cli.log_json || cfg.log.format == LogFormat::Json);
            let mut pipeline = Pipeline::new(&cfg)?;
            let k = cfg.validate_kafka(pipeline.normalizer())?.clone();
            if let Some(dir) = &cfg.evidence.dir {
                cfg.evidence.validate()?;
                // pending files are resolved by the run once it has read the saved state
                pipeline.store_evidence(quench::evidence::Evidence::open(&cfg.evidence, dir)?);
            }
            let targets = respond::build_targets(&cfg.respond)?;
            rt.block_on(async {
                let dispatcher = Dispatcher::new(cfg.respond.clone(), targets, None)?;
                if dispatcher.dry_run() {
                    tracing::warn!("no revocation target configured: dry run, decisions are recorded but nothing is revoked");
                }
                let stop_rx = runtime::stop_on_signal();
                tracing::info!(brokers = %k.brokers, topics = k.topics.len(), "consuming");
                let mut opts = match cfg.metrics.addr()? {
                    Some(addr) => runtime::serve_metrics(addr, &dispatcher).await?.0,
                    None => RunOptions::default(),
                };
                if let Some(dir) = &cfg.state.dir {
                    let every = std::time::Duration::from_secs(cfg.state.interval_secs.max(1));
                    opts.state = Some((quench::durable::Store::open(dir)?, every));
                }
                let r = if k.keyed.is_some() {
                    let (r, keyed) = runtime::keyed::run(&k, &cfg, &dispatcher, opts, stop_rx, |_| {}).await?;
                    eprintln!(
                        "quench: keyed topology: {} input records routed as {} events ({} dead-lettered); {} snapshots ({} bytes) written, {} partitions restored",
                        keyed.route.records, keyed.route.routed, keyed.route.dead_letters, keyed.snapshots, keyed.snapshot_bytes, keyed.restored
                    );
                    r
                } else {
                    runtime::run_kafka(&k, &mut pipeline, &dispatcher, opts, stop_rx, |_| {}).await?
                };
                pipeline.close_evidence()?;
                let report = &r.run;
                let h = &report.latency_us;
                eprintln!(
                    "quench: {} records, {} dead-lettered, {} decisions; ingest→decision p50 {} µs p99 {} µs",
                    report.records, report.dead_letters, report.decisions, h.value_at_quantile(0.5), h.value_at_quantile(0.99)
                );
                let o = &r.outbox;
                eprintln!(
                    "quench: outbox: {} commands written, {} settled, {} resumed from a previous run, {} duplicates not sent again, {} left in flight",
                    r.commands_written, o.settled, o.resumed, o.duplicates, o.in_flight
                );
                eprintln!(
                    "quench: confirmations: {} confirmed by the vendor's log, {} unconfirmed (alerted), {} still awaited",
                    o.confirmed, o.unconfirmed, o.awaiting_confirmation
                );
                anyhow::Ok(())
            })?;
        }
        Cmd::Replay {
            files,
            config,
            out,
            dispatch,
            store,
        } => {
            init_logs(cli.log_json);
            let mut cfg = load(config.as_ref())?;
            if store.is_some() {
                cfg.evidence.dir = store;
            }
            let mut sink = output(out.as_ref())?;
            let t0 = std::time::Instant::now();
            let r = rt.block_on(cli::replay(&cfg, &files, dispatch, &mut sink))?;
            sink.flush()?;
            let secs = t0.elapsed().as_secs_f64();
            for f in &r.failed {
                eprintln!("rejected {f}");
            }
            eprintln!(
                "replay: {} lines, {} events ({:?}), {} rejected, {} findings, {} decisions {:?} in {:.3} s ({:.0} lines/s)",
                r.lines, r.stats.events, r.stats.per_format, r.failed.len(), r.stats.findings, r.decisions.len(), r.stats.decisions, secs, r.lines as f64 / secs.max(1e-9)
            );
            eprintln!(
                "replay: {} lines held ahead of the stream's timeline, {} events older than the state horizon, {} events behind the watermark (processed), {} duplicate events dropped, {} correlation links a weaker source tried to re-point",
                r.stats.held, r.stats.too_old, r.stats.late, r.stats.duplicates, r.stats.link_conflicts
            );
            if let Some(dir) = &cfg.evidence.dir {
                eprintln!(
                    "replay: evidence store {}: {} rows written (events, findings, decisions and command outcomes)",
                    dir.display(),
                    r.stats.evidence_rows
                );
            }
            if r.stats.reorder_overflow > 0 {
                eprintln!(
                    "replay: {} events released from the reorder hold before their time (normalize.reorder_max_bytes reached)",
                    r.stats.reorder_overflow
                );
            }
            for d in &r.deliveries {
                eprintln!(
                    "revocation {} → {}: {:?} after {} attempt(s)",
                    d.action.as_str(),
                    d.target,
                    d.result,
                    d.attempts
                );
            }
        }
        Cmd::Simulate {
            people,
            agents,
            days,
            seed,
            only,
            event_time_order,
            out,
        } => {
            if only.as_deref() == Some("list") {
                println!("traps: {}", lab::simulate::TRAPS.join(" "));
                println!("attacks: {}", lab::simulate::ATTACKS.join(" "));
                return Ok(());
            }
            let t0 = std::time::Instant::now();
            let s = lab::simulate::simulate(
                &lab::simulate::SimConfig {
                    people,
                    agents,
                    days,
                    seed,
                    only,
                    event_time_order,
                },
                &out,
            )
            .with_context(|| format!("writing {}", out.display()))?;
            eprintln!(
                "simulate: {} events, {} attacks, {} benign principals in {} ({:.1} s)",
                s.events,
                s.attacks,
                s.benign,
                out.display(),
                t0.elapsed().as_secs_f64()
            );
        }
        Cmd::Eval {
            dir,
            config,
            json,
            deadline,
        } => {
            init_logs(cli.log_json);
            // the traffic's own operator configuration (written by `quench simulate`), unless one is given
            let beside = dir.join("quench.toml");
            let config = config.or_else(|| beside.exists().then_some(beside));
            let cfg = load(config.as_ref())?;
            let t0 = std::time::Instant::now();
            let r = rt.block_on(cli::eval::eval(&cfg, &dir, deadline))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", cli::eval::table(&r));
            }
            eprintln!(
                "eval: {} events in {:.1} s",
                r.events,
                t0.elapsed().as_secs_f64()
            );
        }
        Cmd::Explain {
            decision,
            files,
            store,
            config,
            window,
        } => {
            init_logs(cli.log_json);
            let cfg = load(config.as_ref())?;
            let (d, rows) = match store {
                Some(dir) => cli::explain::explain_from_store(&dir, &decision, window)?,
                None => rt.block_on(cli::explain::explain(&cfg, &files, &decision, window))?,
            };
            print!("{}", cli::explain::render(&d, &rows));
        }
        Cmd::Session {
            id,
            principal,
            range,
            json,
        } => {
            init_logs(cli.log_json);
            let who = match (id, principal) {
                (_, Some(p)) => cli::session::Who::Principal(p),
                (Some(id), None) => cli::session::Who::Session(id),
                (None, None) => bail!("give a session id or --principal"),
            };
            let (since, until) = range.times()?;
            let t = cli::session::trail(&range.store, &who, since, until)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&t)?);
            } else {
                print!("{}", cli::session::render(&t));
            }
        }
        Cmd::Backtest {
            range,
            detectors,
            config,
            baseline,
            json,
        } => {
            init_logs(cli.log_json);
            let base = load(baseline.as_ref())?;
            let mut cand = match &config {
                Some(p) => Config::load(p)?,
                None => load(baseline.as_ref())?,
            };
            if detectors.is_some() {
                cand.detect.dir = detectors;
            }
            let (since, until) = range.times()?;
            let r = cli::backtest::backtest(&range.store, &base, &cand, since, until)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", cli::backtest::render(&r));
            }
        }
        Cmd::Query { args } => query(&args)?,
        Cmd::Ocsf { range, out } => {
            init_logs(cli.log_json);
            let mut sink = output(out.as_ref())?;
            let (since, until) = range.times()?;
            let n = cli::session::ocsf(&range.store, since, until, &mut sink)?;
            sink.flush()?;
            eprintln!("ocsf: {n} detection findings");
        }
        Cmd::Jwks { config } => {
            init_logs(cli.log_json);
            let cfg = Config::load(&config)?;
            let targets = respond::build_targets(&cfg.respond)?;
            let set = respond::jwks(&targets);
            if set["keys"].as_array().is_none_or(|k| k.is_empty()) {
                bail!(
                    "no target in {} signs what it sends (type = \"caep\")",
                    config.display()
                );
            }
            println!("{}", serde_json::to_string_pretty(&set)?);
        }
        Cmd::Normalize {
            files,
            config,
            stats,
        } => {
            init_logs(cli.log_json);
            let cfg = load(config.as_ref())?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut err = std::io::stderr();
            let r = cli::normalize(&cfg, &files, &mut out, &mut err)?;
            out.flush()?;
            if stats {
                eprintln!("format\tevents");
                for (f, n) in &r.per_format {
                    eprintln!("{f}\t{n}");
                }
                eprintln!(
                    "lines {}, events {}, failed {}",
                    r.lines, r.events, r.failed
                );
            }
            if r.failed > 0 {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}

/// mimalloc instead of glibc's allocator: the pipeline's thread allocates and frees per event, and with the evidence
/// store a second thread does the same beside it. Measured on a 2-day replay (the README's evidence section), the
/// pipeline's thread ran 12 % faster with it, with or without the store; peak memory the same without the store
/// (43 MB) and some 17 MB more with it (93 against 76 MB). Transparent huge pages are off for it (`no_thp`): with
/// them its arenas stayed resident in 2 MiB pages, 65 MB against 43 MB without the store.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
