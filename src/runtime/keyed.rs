//! The keyed topology: several instances of Quench share the work of one deployment, and each principal's events
//! still meet in one pipeline.
//!
//! Input topics are partitioned by whatever the log shipper chose, so two instances reading them directly would
//! each see part of every person. With `[kafka.keyed]` every instance runs two stages:
//! 1. **Route** (consumer group `kafka.group_id`, on the input topics): normalize, judge event times against the
//!    ingest time, attribute each event through the links its sources vouch for ([`crate::correlate`]; links are
//!    shared between instances on `kafka.keyed.links_topic`), and produce the correlated event to
//!    `kafka.keyed.topic` keyed by its correlation subject ([`crate::correlate::Correlator::subject`]). The input
//!    offset is stored once the routed events are acknowledged. With `[state] dir`, this stage's links and clock
//!    are saved with its input offsets, as the single-instance loop saves its state ([`super::consume`]).
//! 2. **Detect** (consumer group `{kafka.group_id}.keyed`, on the keyed topic): one pipeline per assigned
//!    partition (dedup, detect and decide, [`crate::pipeline::Pipeline::process_routed`]), run on
//!    `kafka.keyed.threads` threads ([`super::workers`]; a partition stays on one), producing decisions, OCSF
//!    findings, dead letters and outbox commands as the single-instance loop does. Every
//!    `kafka.keyed.snapshot_interval_secs`, as soon as the input goes idle, and at shutdown, each partition that
//!    processed records saves its state and next offset to `kafka.keyed.snapshots_topic` ([`super::snapshot`]),
//!    and only then are the keyed topic's offsets committed.
//!
//! Rebalances: the first record of a partition this instance does not hold restores the partition's newest
//! snapshot; a committed offset past it (the snapshot was lost) is sought back to the snapshot's offset once, and
//! records the snapshot already holds are skipped. A partition a rebalance revokes (the consumer's rebalance
//! callback notes it) is dropped before the next record is processed, without a save, and the results of its
//! records still on a worker are neither emitted nor stored (each take-over has its own epoch): its new owner
//! resumes from the last snapshot and processes the records after it again (with the eager protocol every
//! rebalance revokes every partition, so each is restored again). Detection depends only on the records and on the first stage's
//! clock carried in them, so the records processed again give the same decisions with the same ids, and the
//! outbox sends no command twice. (A record routed again by a restarted route stage after it learned a new link
//! can go to another partition, where dedup does not see its first copy.)
//!
//! In: records on the input topics. Out: records on the keyed, links, snapshots, decisions, OCSF, dead-letter and
//! commands topics. Trust: the three internal topics are believed (the clock carried in a keyed record is bounded
//! by the wall clock, nothing else is checked): only Quench may produce to them (Kafka ACLs). State: the route
//! stage's pipeline (links, clock); per partition of the keyed topic this instance holds, the offset of the
//! next record to send to its worker, whose pipeline holds the partition's state. The global revocation budget
//! is kept by each partition's decide, so it holds per partition of the keyed topic (see the README for the
//! arithmetic); the per-target budgets are kept by the one dispatching instance and hold for the fleet.

use super::consume::{self, consumed, RunError, RunOptions, RunReport};
use super::snapshot;
use super::workers::{self, Done, Pool};
use super::{Dispatch, KafkaReport};
use crate::bus::{KafkaConfig, KeyedConfig};
use crate::config::Config;
use crate::decide::Decision;
use crate::pipeline::{Pipeline, Stats};
use crate::respond::outbox::Writer;
use crate::respond::Dispatcher;
use hdrhistogram::Histogram;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::FutureProducer;
use rdkafka::producer::Producer;
use rdkafka::Offset;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What the route stage did and what the detect stage saved (the detect stage's counts are the
/// [`KafkaReport`]'s).
pub struct KeyedReport {
    /// The route stage: input records, dead letters, events routed.
    pub route: RunReport,
    /// Bytes of the snapshots written, and how many.
    pub snapshot_bytes: u64,
    pub snapshots: u64,
    /// Partitions restored from a snapshot.
    pub restored: u64,
}

/// What the detect loop knows of a partition it holds (its pipeline is on a worker, [`super::workers`]).
struct Held {
    /// The offset of the next record not sent to the worker (-1: none yet): records below it are in the state.
    next: i64,
    /// Whether this partition was sought back to its snapshot's offset (once per restore: librdkafka drops the
    /// records fetched before a seek, and a broker's offsets may have gaps).
    sought: bool,
    /// Whether a record was sent to the worker since the restore.
    sent: bool,
    /// Which take-over of the partition this is: results of records sent before a revocation (processed by the
    /// dropped pipeline, perhaps on another worker) carry an older one and are neither emitted nor stored.
    epoch: u64,
}

/// The keyed topic's partition count (1 if the broker does not know the topic yet).
fn keyed_partitions(k: &KafkaConfig, topic: &str) -> Result<u32, RunError> {
    let producer = crate::bus::producer(k)?;
    let md = producer
        .client()
        .fetch_metadata(Some(topic), std::time::Duration::from_secs(10))?;
    let n = md
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map_or(0, |t| t.partitions().len());
    if n == 0 {
        tracing::warn!(topic, "the keyed topic has no partitions yet: every partition's pipeline keeps the full key caps until the next start");
    }
    Ok(u32::try_from(n).unwrap_or(u32::MAX).max(1))
}

/// Run both stages until `shutdown` (or, with `stop_at_end`, the route stage to the end of the input, then the
/// detect stage to the end of the keyed topic, and until every command written has settled).
pub async fn run(
    k: &KafkaConfig,
    cfg: &Config,
    dispatcher: &Dispatcher,
    opts: RunOptions,
    shutdown: watch::Receiver<bool>,
    mut on_decision: impl FnMut(&Decision),
) -> Result<(KafkaReport, KeyedReport), RunError> {
    let keyed = k.keyed.clone().unwrap_or_default();
    let watch = dispatcher.watches_confirmations() && dispatcher.config().outbox.dispatch;
    let mut opts = opts;
    let stop_at_end = opts.stop_at_end;
    let stats = opts.stats.take();
    let (writer, mut dispatch) = Dispatch::start(k, dispatcher, watch, opts.outbox.take(), None)?;
    let mut router = Pipeline::new(cfg).map_err(|e| RunError::Build(e.to_string()))?;
    let route_opts = RunOptions {
        route_to: Some(keyed.clone()),
        ..opts
    };
    let detect_cfg = cfg.clone();
    // each partition's pipeline holds its share of the key caps, so an instance that holds many partitions holds
    // about what one pipeline would (the count as it is at start; partitions added later keep these shares)
    let partitions = keyed_partitions(k, &keyed.topic)?;
    let build: workers::Build = Arc::new(move || {
        let mut p = Pipeline::for_partition(&detect_cfg, partitions).map_err(|e| e.to_string())?;
        p.collect_ended(watch);
        Ok(p)
    });
    build().map_err(RunError::Build)?;
    let detect_opts = DetectOptions { stop_at_end, stats };
    let (route, detected) = if stop_at_end {
        let route = dispatch
            .beside(consume::run(
                k,
                &mut router,
                &writer,
                route_opts,
                shutdown.clone(),
                |_| {},
            ))
            .await?;
        let detected = dispatch
            .beside(detect(
                k,
                &keyed,
                build,
                &writer,
                detect_opts,
                shutdown,
                &mut on_decision,
            ))
            .await?;
        (route, detected)
    } else {
        dispatch
            .beside(async {
                tokio::try_join!(
                    consume::run(
                        k,
                        &mut router,
                        &writer,
                        route_opts,
                        shutdown.clone(),
                        |_| {}
                    ),
                    detect(
                        k,
                        &keyed,
                        build,
                        &writer,
                        detect_opts,
                        shutdown.clone(),
                        &mut on_decision
                    )
                )
            })
            .await?
    };
    let outbox = dispatch.finish(&writer, dispatcher, stop_at_end).await?;
    let (detect, keyed_report) = detected;
    Ok((
        KafkaReport {
            run: detect,
            outbox,
            commands_written: writer.written(),
        },
        KeyedReport {
            route,
            ..keyed_report
        },
    ))
}

struct DetectOptions {
    stop_at_end: bool,
    stats: Option<watch::Sender<Stats>>,
}

fn empty_report() -> Result<RunReport, RunError> {
    Ok(RunReport {
        records: 0,
        skipped: 0,
        dead_letters: 0,
        decisions: 0,
        routed: 0,
        latency_us: Histogram::new(3).map_err(|_| KafkaError::Canceled)?,
    })
}

/// Partitions of the keyed topic revoked by rebalances: noted by the consumer's rebalance callback (which runs
/// while the loop waits for a record) and taken by the loop before it processes the next record, so that a
/// partition given back by a later rebalance is restored from its snapshot, never continued from a state that
/// missed what another instance processed meanwhile.
#[derive(Default)]
struct Revocations {
    any: AtomicBool,
    partitions: Mutex<Vec<i32>>,
}

impl Revocations {
    /// The partitions revoked since the last look that this loop holds: forgotten here, to be dropped by their
    /// workers.
    fn take(&self, held: &mut HashMap<i32, Held>) -> Vec<i32> {
        if !self.any.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        let revoked = match self.partitions.lock() {
            Ok(mut v) => std::mem::take(&mut *v),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        revoked
            .into_iter()
            .filter(|p| {
                let had = held.remove(p).is_some();
                if had {
                    tracing::info!(partition = p, "partition revoked: left to its new owner");
                }
                had
            })
            .collect()
    }
}

/// Whether a result of partition `p`'s take-over `epoch` belongs to the take-over held now.
fn is_current(held: &HashMap<i32, Held>, p: i32, epoch: u64) -> bool {
    held.get(&p).is_some_and(|h| h.epoch == epoch)
}

/// The partitions of `topic` in a rebalance's list.
fn partitions_of(tpl: &rdkafka::TopicPartitionList, topic: &str) -> Vec<i32> {
    tpl.elements_for_topic(topic)
        .iter()
        .map(|e| e.partition())
        .collect()
}

/// The detect stage's consumer context: notes revocations, logs assignments.
struct Rebalances {
    topic: String,
    revoked: Arc<Revocations>,
}

impl rdkafka::ClientContext for Rebalances {}

impl rdkafka::consumer::ConsumerContext for Rebalances {
    fn pre_rebalance(
        &self,
        _: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &rdkafka::consumer::Rebalance<'_>,
    ) {
        if let rdkafka::consumer::Rebalance::Revoke(tpl) = rebalance {
            let revoked = partitions_of(tpl, &self.topic);
            tracing::info!(topic = %self.topic, partitions = ?revoked, "revoked");
            match self.revoked.partitions.lock() {
                Ok(mut v) => v.extend(revoked),
                Err(poisoned) => poisoned.into_inner().extend(revoked),
            }
            self.revoked.any.store(true, Ordering::Release);
        }
    }

    fn post_rebalance(
        &self,
        _: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &rdkafka::consumer::Rebalance<'_>,
    ) {
        if let rdkafka::consumer::Rebalance::Assign(tpl) = rebalance {
            let given = partitions_of(tpl, &self.topic);
            tracing::info!(topic = %self.topic, partitions = ?given, "assigned");
        }
    }
}

/// The detect stage: the loop reads the keyed topic and restores, saves and commits; the partitions' pipelines run
/// on `keyed.threads()` workers ([`super::workers`]).
async fn detect(
    k: &KafkaConfig,
    keyed: &KeyedConfig,
    build: workers::Build,
    outbox: &Writer,
    opts: DetectOptions,
    mut shutdown: watch::Receiver<bool>,
    on_decision: &mut impl FnMut(&Decision),
) -> Result<(RunReport, KeyedReport), RunError> {
    let topic = keyed.topic.as_str();
    let revocations = Arc::new(Revocations::default());
    let consumer: StreamConsumer<Rebalances> =
        crate::bus::consumer_config(k, &format!("{}.keyed", k.group_id), &[]).create_with_context(
            Rebalances {
                topic: topic.to_string(),
                revoked: revocations.clone(),
            },
        )?;
    consumer.subscribe(&[topic])?;
    let mut remaining: HashMap<i32, i64> = HashMap::new();
    if opts.stop_at_end {
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        for mt in md.topics() {
            for p in mt.partitions() {
                let (low, high) =
                    consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
                if high > low {
                    remaining.insert(p.id(), high);
                }
            }
        }
        if remaining.is_empty() {
            return Ok((
                empty_report()?,
                KeyedReport {
                    route: empty_report()?,
                    snapshot_bytes: 0,
                    snapshots: 0,
                    restored: 0,
                },
            ));
        }
    }
    let pool = Pool::start(keyed.threads(), build)?;
    let mut d = Detector {
        k,
        keyed,
        topic,
        producer: crate::bus::producer(k)?,
        snapshots: snapshot::Writer::new(k, &keyed.snapshots_topic)?,
        counts: vec![Stats::default(); pool.workers()],
        pool,
        consumer,
        revocations,
        outbox,
        held: HashMap::new(),
        report: empty_report()?,
        keyed_report: KeyedReport {
            route: empty_report()?,
            snapshot_bytes: 0,
            snapshots: 0,
            restored: 0,
        },
        stats: opts.stats,
        on_decision,
        remaining,
        stop_at_end: opts.stop_at_end,
        dirty: false,
        epochs: 0,
        saves: 0,
        counts_answered: 0,
    };
    let result = d.run(&mut shutdown).await;
    let (report, keyed_report) = (d.report, d.keyed_report);
    d.pool.close();
    result.map(|()| (report, keyed_report))
}

/// The detect stage's loop and what it knows.
struct Detector<'a, F: FnMut(&Decision)> {
    k: &'a KafkaConfig,
    keyed: &'a KeyedConfig,
    topic: &'a str,
    consumer: StreamConsumer<Rebalances>,
    revocations: Arc<Revocations>,
    producer: FutureProducer,
    outbox: &'a Writer,
    pool: Pool,
    held: HashMap<i32, Held>,
    snapshots: snapshot::Writer,
    report: RunReport,
    keyed_report: KeyedReport,
    /// Each worker's latest counts.
    counts: Vec<Stats>,
    stats: Option<watch::Sender<Stats>>,
    on_decision: &'a mut F,
    /// With `stop_at_end`: the end offset of each partition not yet read to its end.
    remaining: HashMap<i32, i64>,
    stop_at_end: bool,
    /// Records sent to workers since the last checkpoint.
    dirty: bool,
    /// Take-overs so far (see [`Held::epoch`]).
    epochs: u64,
    /// Answers to save requests, and to count requests.
    saves: usize,
    counts_answered: usize,
}

/// What woke the loop.
enum Wake {
    Done(Done),
    Record(Option<OwnedMessage>),
    Tick,
    Stop,
}

impl<F: FnMut(&Decision)> Detector<'_, F> {
    async fn run(&mut self, shutdown: &mut watch::Receiver<bool>) -> Result<(), RunError> {
        let mut last_snapshot = Instant::now();
        let mut last_record = Instant::now();
        let interval = Duration::from_secs(self.keyed.snapshot_interval_secs.max(1));
        let commit = Duration::from_millis(self.k.commit_interval_ms.max(1));
        let mut tick = tokio::time::interval(commit);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !(self.stop_at_end && self.remaining.is_empty()) {
            let wake = tokio::select! {
                biased;
                d = self.pool.next() => Wake::Done(d?),
                m = self.consumer.recv() => Wake::Record(consumed(m).map(|m| m.detach())),
                _ = tick.tick() => Wake::Tick,
                _ = shutdown.changed() => Wake::Stop,
            };
            match wake {
                Wake::Done(done) => self.done(done).await?,
                Wake::Record(None) => {}
                Wake::Record(Some(m)) => {
                    last_record = Instant::now();
                    self.record(m).await?;
                }
                Wake::Tick => {
                    self.revoke().await?;
                    let idle = last_record.elapsed() >= commit;
                    if self.dirty && (idle || last_snapshot.elapsed() >= interval) {
                        self.checkpoint(CommitMode::Async).await?;
                        last_snapshot = Instant::now();
                    }
                    if self.stats.is_some() {
                        self.pool.ask_all(false).await?;
                    }
                }
                Wake::Stop => break,
            }
        }
        self.revoke().await?;
        self.checkpoint(CommitMode::Sync).await?;
        // the final counts
        self.counts_answered = 0;
        self.pool.ask_all(false).await?;
        while self.counts_answered < self.pool.workers() {
            let done = self.pool.next().await?;
            self.done(done).await?;
        }
        Ok(())
    }

    /// Drop the partitions a rebalance took.
    async fn revoke(&mut self) -> Result<(), RunError> {
        for p in self.revocations.take(&mut self.held) {
            self.pool.drop_partition(p).await?;
        }
        Ok(())
    }

    /// A record read: restore its partition if new here, skip it if the state holds it, else send it to its
    /// worker.
    async fn record(&mut self, m: OwnedMessage) -> Result<(), RunError> {
        let received = Instant::now();
        // partitions a rebalance took (noted while this record was fetched): forgotten before anything else
        self.revoke().await?;
        let (p, offset) = (m.partition(), m.offset());
        if !self.held.contains_key(&p) {
            let next = self.restore(p).await?;
            if next < 0 && offset > 0 {
                tracing::warn!(
                    partition = p,
                    committed = offset,
                    "no snapshot of a partition already read up to here: its state starts cold"
                );
            }
            self.epochs += 1;
            self.held.insert(
                p,
                Held {
                    next,
                    sought: false,
                    sent: false,
                    epoch: self.epochs,
                },
            );
        }
        let Some(h) = self.held.get_mut(&p) else {
            return Ok(());
        };
        if h.next >= 0 && offset > h.next && !h.sought && !h.sent {
            h.sought = true;
            // the committed offset is past the snapshot (the newest snapshot was lost or not yet readable): go
            // back to where the state is, rather than leave a gap in it
            tracing::warn!(
                partition = p,
                snapshot = h.next,
                committed = offset,
                "committed offset past the snapshot: reading again from the snapshot's offset"
            );
            match self.consumer.seek(
                self.topic,
                p,
                Offset::Offset(h.next),
                Duration::from_secs(10),
            ) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::warn!(partition = p, error = %e, "seek failed: the records between are not in the state")
                }
            }
        }
        self.report.records += 1;
        if offset < h.next {
            // the restored state already holds it
            self.report.skipped += 1;
            return self.settled(p, offset);
        }
        h.next = offset + 1;
        h.sent = true;
        self.dirty = true;
        let epoch = h.epoch;
        if !self.pool.record(m, received, epoch).await? {
            tracing::warn!(
                partition = p,
                "record of a partition no worker holds: not processed"
            );
        }
        Ok(())
    }

    /// A worker's result.
    async fn done(&mut self, done: Done) -> Result<(), RunError> {
        match done {
            Done::Record {
                msg,
                received,
                epoch,
                outcome,
            } => {
                let current = is_current(&self.held, msg.partition(), epoch);
                let Some(mut o) = outcome.filter(|_| current) else {
                    // its partition was revoked after it was sent (and perhaps taken over again since): the
                    // partition's owner processes it again from the snapshot, so it is neither emitted nor stored
                    tracing::debug!(
                        partition = msg.partition(),
                        offset = msg.offset(),
                        "result of a revoked partition's record dropped"
                    );
                    return Ok(());
                };
                let rec = crate::ingest::kafka::Record::of(&msg);
                if let Some(e) = &o.refused {
                    super::produce::dead_letter(&self.producer, self.k, &rec, e, &mut self.report)
                        .await?;
                }
                for e in o.ended.drain(..) {
                    self.outbox.observe(e);
                }
                super::produce::emit(
                    &self.producer,
                    self.k,
                    Some(&rec),
                    &mut o.decisions,
                    received,
                    &mut self.report,
                    &mut *self.on_decision,
                    self.outbox,
                )
                .await?;
                self.settled(rec.partition, rec.offset)
            }
            Done::Saved(saved) => {
                self.saves += 1;
                for (p, next, state) in saved.map_err(RunError::Build)? {
                    let bytes = self.snapshots.write(p, next, &state).await?;
                    self.keyed_report.snapshot_bytes += bytes as u64;
                    self.keyed_report.snapshots += 1;
                }
                Ok(())
            }
            Done::Counted(worker, stats) => {
                self.counts_answered += 1;
                if let Some(c) = self.counts.get_mut(worker) {
                    *c = stats;
                }
                if let Some(tx) = &self.stats {
                    let mut s = Stats::default();
                    for c in &self.counts {
                        s.absorb(c);
                    }
                    tx.send_replace(s);
                }
                Ok(())
            }
            Done::Failed(why) => Err(RunError::Build(why)),
        }
    }

    /// A record is done with: store its offset, and note a partition read to its end.
    fn settled(&mut self, p: i32, offset: i64) -> Result<(), RunError> {
        crate::bus::store_offset(&self.consumer, self.topic, p, offset)?;
        if self.stop_at_end && self.remaining.get(&p).is_some_and(|end| offset + 1 >= *end) {
            self.remaining.remove(&p);
        }
        Ok(())
    }

    /// A pipeline for partition `p` on a worker, with its newest snapshot loaded if there is one; returns the
    /// snapshot's next offset (-1 without one).
    async fn restore(&mut self, p: i32) -> Result<i64, RunError> {
        let started = Instant::now();
        tracing::debug!(partition = p, "restoring");
        let (k2, topic) = (self.k.clone(), self.keyed.snapshots_topic.clone());
        let snap = tokio::task::spawn_blocking(move || snapshot::read(&k2, &topic, p))
            .await
            .map_err(|e| RunError::Build(format!("restoring partition {p}: {e}")))??;
        match snap {
            Some(s) => {
                self.keyed_report.restored += 1;
                self.snapshots.adopt(p, &s);
                tracing::info!(
                    partition = p,
                    next_offset = s.next_offset,
                    bytes = s.bytes,
                    ms = started.elapsed().as_millis() as u64,
                    "partition restored from its snapshot"
                );
                self.pool.adopt(p, Some(s.state), s.next_offset).await?;
                Ok(s.next_offset)
            }
            None => {
                tracing::info!(partition = p, "partition has no snapshot: starting cold");
                self.pool.adopt(p, None, -1).await?;
                Ok(-1)
            }
        }
    }

    /// Save every partition that processed records since its last snapshot (the workers answer after the records
    /// sent before, whose results are emitted meanwhile), then commit the stored offsets.
    async fn checkpoint(&mut self, mode: CommitMode) -> Result<(), RunError> {
        if !self.dirty && !matches!(mode, CommitMode::Sync) {
            return Ok(());
        }
        let before = self.keyed_report.snapshots;
        self.saves = 0;
        self.pool.ask_all(true).await?;
        while self.saves < self.pool.workers() {
            let done = self.pool.next().await?;
            self.done(done).await?;
        }
        self.dirty = false;
        if self.keyed_report.snapshots > before || matches!(mode, CommitMode::Sync) {
            match self.consumer.commit_consumer_state(mode) {
                Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => tracing::warn!(error = %e, "offset commit failed; will retry"),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_revoked_and_given_back_between_two_records_is_restored_not_continued() {
        let mut held = HashMap::new();
        for p in [0, 1] {
            held.insert(
                p,
                Held {
                    next: 500,
                    sought: false,
                    sent: true,
                    epoch: 1,
                },
            );
        }
        let r = Revocations::default();
        assert!(r.take(&mut held).is_empty());
        assert_eq!(held.len(), 2, "nothing revoked, nothing dropped");
        // the callback notes partitions 1 and 7 revoked (and, by the time the loop looks, 1 given back again)
        r.partitions.lock().unwrap().extend([1, 7]);
        r.any.store(true, Ordering::Release);
        assert_eq!(
            r.take(&mut held),
            vec![1],
            "the partition held is dropped by its worker; 7 was never held"
        );
        assert!(held.contains_key(&0));
        assert!(
            !held.contains_key(&1),
            "its in-memory state missed what another instance processed meanwhile: restore it"
        );
        // Found by review: a record of partition 1 sent to its worker before the revocation comes back after the
        // partition was taken over again (perhaps on another worker): its result belongs to the dropped state
        assert!(
            !is_current(&held, 1, 1),
            "revoked: nothing of it is emitted"
        );
        held.insert(
            1,
            Held {
                next: 480,
                sought: false,
                sent: false,
                epoch: 2,
            },
        );
        assert!(
            !is_current(&held, 1, 1),
            "the old take-over's result is stale"
        );
        assert!(is_current(&held, 1, 2));
        assert!(is_current(&held, 0, 1));
    }
}
