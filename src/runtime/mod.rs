//! The runtime: the topology of `quench run` and of the demo. It wires the stages to Kafka and to each other:
//! consume the input ([`crate::ingest::kafka`]) → process one record through normalize, correlate, detect and
//! decide ([`crate::pipeline::Pipeline`]) → produce decisions, OCSF findings and dead letters → write each
//! decision's commands to the outbox ([`crate::respond::outbox::Writer`]) → store and commit the input offset
//! (after a state save, with `[state] dir`); beside it, the outbox's dispatch loop sends the commands, and a
//! metrics endpoint serves the counts. Ingest only reads records and respond only sends; this is the one place that
//! knows the order.
//!
//! In: a validated [`KafkaConfig`], a built pipeline and dispatcher, a shutdown signal. Out: the records on the
//! decisions, OCSF, dead-letter and commands topics, revocations, and a [`KafkaReport`]. State: the loop's (see
//! [`consume`]) and the dispatch task's handle.

pub mod consume;
pub mod keyed;
mod produce;
mod route;
pub mod snapshot;
pub mod workers;

pub use consume::{RunError, RunOptions, RunReport};

use crate::bus::KafkaConfig;
use crate::decide::Decision;
use crate::pipeline::Pipeline;
use crate::respond::{outbox, Dispatcher};
use tokio::sync::{mpsc, watch};

/// A switch that turns on at SIGINT or SIGTERM: the loop then stops reading, drains what it holds and commits.
pub fn stop_on_signal() -> watch::Receiver<bool> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return;
        };
        tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
        tracing::info!("shutting down: draining and committing offsets");
        let _ = stop_tx.send(true);
    });
    stop_rx
}

/// Serve Prometheus metrics on `addr`: returns run options that feed it, and the address bound (port 0 picks
/// one).
pub async fn serve_metrics(
    addr: std::net::SocketAddr,
    dispatcher: &Dispatcher,
) -> Result<(RunOptions, std::net::SocketAddr), RunError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Listen { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| RunError::Listen { addr, source })?;
    let (stats_tx, stats) = watch::channel(crate::pipeline::Stats::default());
    let (outbox_tx, outbox) = watch::channel(outbox::Progress::default());
    tokio::spawn(crate::metrics::serve(
        listener,
        crate::metrics::Sources {
            stats,
            dispatcher: dispatcher.clone(),
            outbox,
        },
    ));
    tracing::info!(%bound, "serving metrics at /metrics");
    Ok((
        RunOptions {
            stop_at_end: false,
            stats: Some(stats_tx),
            outbox: Some(outbox_tx),
            ..Default::default()
        },
        bound,
    ))
}

/// What [`run_kafka`] did.
pub struct KafkaReport {
    pub run: RunReport,
    pub outbox: outbox::Progress,
    pub commands_written: u64,
}

/// The outbox's dispatch loop, run beside a consume loop: it sends the commands the loop writes, and stops the
/// run if it fails.
pub(crate) struct Dispatch {
    task: Option<tokio::task::JoinHandle<Result<(), outbox::OutboxError>>>,
    progress: watch::Receiver<outbox::Progress>,
    stop: watch::Sender<bool>,
}

fn stopped(r: Result<Result<(), outbox::OutboxError>, tokio::task::JoinError>) -> RunError {
    match r {
        Ok(Err(e)) => RunError::from(e),
        Ok(Ok(())) => RunError::DispatchStopped("it returned".into()),
        Err(e) => RunError::DispatchStopped(e.to_string()),
    }
}

impl Dispatch {
    /// The outbox writer for a consume loop, and its dispatch loop (unless `respond.outbox.dispatch = false`, or
    /// no target is configured). `watch`: the loop hands the writer the session endings it sees (for
    /// confirmations).
    pub(crate) fn start(
        k: &KafkaConfig,
        dispatcher: &Dispatcher,
        watch: bool,
        progress: Option<watch::Sender<outbox::Progress>>,
        commands: Option<crate::evidence::CommandSink>,
    ) -> Result<(outbox::Writer, Dispatch), RunError> {
        let (ended_tx, ended_rx) = mpsc::unbounded_channel();
        let writer = outbox::Writer::new(k, dispatcher.clone(), watch.then_some(ended_tx))?;
        let prog_tx = progress.unwrap_or_else(|| watch::channel(outbox::Progress::default()).0);
        let prog_rx = prog_tx.subscribe();
        let (stop, stop_rx) = watch::channel(false);
        let task = (dispatcher.config().outbox.dispatch && !dispatcher.dry_run()).then(|| {
            tokio::spawn(outbox::dispatch(
                k.clone(),
                dispatcher.clone(),
                stop_rx,
                prog_tx,
                ended_rx,
                commands,
            ))
        });
        Ok((
            writer,
            Dispatch {
                task,
                progress: prog_rx,
                stop,
            },
        ))
    }

    /// Run `consume`; an error of the dispatch loop ends it early.
    pub(crate) async fn beside<T>(
        &mut self,
        consume: impl std::future::Future<Output = Result<T, RunError>>,
    ) -> Result<T, RunError> {
        let task = &mut self.task;
        tokio::select! {
            r = consume => r,
            r = async { match task.as_mut() { Some(t) => t.await, None => std::future::pending().await } } => {
                Err(stopped(r))
            }
        }
    }

    /// Stop the dispatch loop (with `settle`, once every command `writer` wrote has settled) and wait for the
    /// dispatcher's last requests.
    pub(crate) async fn finish(
        mut self,
        writer: &outbox::Writer,
        dispatcher: &Dispatcher,
        settle: bool,
    ) -> Result<outbox::Progress, RunError> {
        if settle {
            if let Some(t) = self.task.as_mut() {
                let written = writer.written();
                tokio::select! {
                    r = self.progress.wait_for(|p| p.settled >= written) => {
                        r.map_err(|_| RunError::DispatchStopped("its progress channel closed".into()))?;
                    }
                    r = t => return Err(stopped(r)),
                }
            }
        }
        let _ = self.stop.send(true);
        if let Some(t) = self.task {
            match t.await {
                Ok(r) => r?,
                Err(e) => return Err(RunError::DispatchStopped(e.to_string())),
            }
        }
        dispatcher.drain().await;
        let progress = *self.progress.borrow();
        Ok(progress)
    }
}

/// The Kafka loop with the outbox: each decision's commands go to the commands topic before the input offset is
/// stored, and a dispatch loop (unless `respond.outbox.dispatch = false` or no target is configured) carries
/// them out. Returns after `shutdown`, or with `stop_at_end` once the input is consumed and every command written
/// has settled.
pub async fn run_kafka(
    k: &KafkaConfig,
    pipeline: &mut Pipeline,
    dispatcher: &Dispatcher,
    opts: RunOptions,
    shutdown: watch::Receiver<bool>,
    on_decision: impl FnMut(&Decision),
) -> Result<KafkaReport, RunError> {
    let stop_at_end = opts.stop_at_end;
    let watch = dispatcher.watches_confirmations() && dispatcher.config().outbox.dispatch;
    pipeline.collect_ended(watch);
    let mut opts = opts;
    let commands = pipeline.evidence().and_then(|e| e.commands());
    let (writer, mut dispatch) =
        Dispatch::start(k, dispatcher, watch, opts.outbox.take(), commands)?;
    let run = dispatch
        .beside(consume::run(
            k,
            pipeline,
            &writer,
            opts,
            shutdown,
            on_decision,
        ))
        .await?;
    let outbox = dispatch.finish(&writer, dispatcher, stop_at_end).await?;
    Ok(KafkaReport {
        run,
        outbox,
        commands_written: writer.written(),
    })
}
