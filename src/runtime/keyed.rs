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
//!    partition (dedup, detect and decide, [`crate::pipeline::Pipeline::process_routed`]), producing decisions, OCSF
//!    findings, dead letters and outbox commands as the single-instance loop does. Every
//!    `kafka.keyed.snapshot_interval_secs`, as soon as the input goes idle, and at shutdown, each partition that
//!    processed records saves its state and next offset to `kafka.keyed.snapshots_topic` ([`super::snapshot`]),
//!    and only then are the keyed topic's offsets committed.
//!
//! Rebalances: the first record of a partition this instance does not hold restores the partition's newest
//! snapshot; a committed offset past it (the snapshot was lost) is sought back to the snapshot's offset once, and
//! records the snapshot already holds are skipped. A partition a rebalance revokes (the consumer's rebalance
//! callback notes it) is dropped before the next record is processed, without a save: its new owner resumes from
//! the last snapshot and processes the records after it again (with the eager protocol every rebalance revokes
//! every partition, so each is restored again). Detection depends only on the records and on the first stage's
//! clock carried in them, so the records processed again give the same decisions with the same ids, and the
//! outbox sends no command twice. (A record routed again by a restarted route stage after it learned a new link
//! can go to another partition, where dedup does not see its first copy.)
//!
//! In: records on the input topics. Out: records on the keyed, links, snapshots, decisions, OCSF, dead-letter and
//! commands topics. Trust: the three internal topics are believed (the clock carried in a keyed record is bounded
//! by the wall clock, nothing else is checked): only Quench may produce to them (Kafka ACLs). State: the route
//! stage's pipeline (links, clock) and one pipeline per partition of the
//! keyed topic this instance holds. The global revocation budget is kept by each partition's decide, so it holds
//! per partition of the keyed topic (see the README for the arithmetic); the per-target budgets are kept by the
//! one dispatching instance and hold for the fleet.

use super::consume::{self, consumed, RunError, RunOptions, RunReport};
use super::snapshot;
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

/// One partition of the keyed topic held by this instance.
struct Part {
    pipeline: Pipeline,
    /// The offset of the next record the pipeline has not seen (-1: none yet).
    next: i64,
    /// Whether this partition was sought back to its snapshot's offset (once per restore: librdkafka drops the
    /// records fetched before a seek, and a broker's offsets may have gaps).
    sought: bool,
    /// Records processed since the last snapshot.
    dirty: bool,
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
    let build = || -> Result<Pipeline, RunError> {
        let mut p = Pipeline::for_detect(cfg).map_err(|e| RunError::Build(e.to_string()))?;
        p.collect_ended(watch);
        Ok(p)
    };
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
                &build,
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
                        &build,
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
    /// Forget the revoked partitions' pipelines (their counts go to `retired`).
    fn take(&self, parts: &mut HashMap<i32, Part>, retired: &mut Stats) {
        if !self.any.swap(false, Ordering::AcqRel) {
            return;
        }
        let revoked = match self.partitions.lock() {
            Ok(mut v) => std::mem::take(&mut *v),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for p in revoked {
            if let Some(part) = parts.remove(&p) {
                tracing::info!(partition = p, "partition revoked: left to its new owner");
                retired.absorb(&part.pipeline.stats);
            }
        }
    }
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
            let revoked: Vec<i32> = tpl
                .elements_for_topic(&self.topic)
                .iter()
                .map(|e| e.partition())
                .collect();
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
            let given: Vec<i32> = tpl
                .elements_for_topic(&self.topic)
                .iter()
                .map(|e| e.partition())
                .collect();
            tracing::info!(topic = %self.topic, partitions = ?given, "assigned");
        }
    }
}

/// The detect stage.
async fn detect(
    k: &KafkaConfig,
    keyed: &KeyedConfig,
    build: &(dyn Fn() -> Result<Pipeline, RunError> + Sync),
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
    let producer = crate::bus::producer(k)?;
    let mut snapshots = snapshot::Writer::new(k, &keyed.snapshots_topic)?;
    let mut report = empty_report()?;
    let mut keyed_report = KeyedReport {
        route: empty_report()?,
        snapshot_bytes: 0,
        snapshots: 0,
        restored: 0,
    };
    let mut parts: HashMap<i32, Part> = HashMap::new();
    // the counts of partitions this instance no longer holds, so that published counts never go down
    let mut retired = Stats::default();
    let publish = |parts: &HashMap<i32, Part>, retired: &Stats| {
        if let Some(tx) = &opts.stats {
            let mut s = retired.clone();
            for p in parts.values() {
                s.absorb(&p.pipeline.stats);
            }
            tx.send_replace(s);
        }
    };
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
            return Ok((report, keyed_report));
        }
    }
    let mut decisions = Vec::new();
    let mut last_snapshot = Instant::now();
    let mut last_record = Instant::now();
    let interval = Duration::from_secs(keyed.snapshot_interval_secs.max(1));
    let mut tick = tokio::time::interval(Duration::from_millis(k.commit_interval_ms.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let msg = tokio::select! {
            m = consumer.recv() => m,
            _ = tick.tick() => {
                revocations.take(&mut parts, &mut retired);
                let idle = last_record.elapsed() >= Duration::from_millis(k.commit_interval_ms);
                if parts.values().any(|p| p.dirty) && (idle || last_snapshot.elapsed() >= interval) {
                    checkpoint(&mut parts, &mut snapshots, &consumer, &mut keyed_report, CommitMode::Async).await?;
                    last_snapshot = Instant::now();
                }
                publish(&parts, &retired);
                continue;
            }
            _ = shutdown.changed() => break,
        };
        let Some(m) = consumed(msg) else {
            continue;
        };
        let received = Instant::now();
        last_record = received;
        // partitions a rebalance took (noted while this record was fetched): forgotten before anything else
        revocations.take(&mut parts, &mut retired);
        let rec = crate::ingest::kafka::Record::of(&m);
        let p = rec.partition;
        if let std::collections::hash_map::Entry::Vacant(e) = parts.entry(p) {
            let part = restore(k, keyed, build, p, &mut snapshots, &mut keyed_report).await?;
            if part.next < 0 && rec.offset > 0 {
                tracing::warn!(
                    partition = p,
                    committed = rec.offset,
                    "no snapshot of a partition already read up to here: its state starts cold"
                );
            }
            e.insert(part);
        }
        let Some(part) = parts.get_mut(&p) else {
            continue;
        };
        if part.next >= 0
            && rec.offset > part.next
            && !part.sought
            && part.pipeline.stats.messages == 0
        {
            part.sought = true;
            // the committed offset is past the snapshot (the newest snapshot was lost or not yet readable): go
            // back to where the state is, rather than leave a gap in it
            tracing::warn!(
                partition = p,
                snapshot = part.next,
                committed = rec.offset,
                "committed offset past the snapshot: reading again from the snapshot's offset"
            );
            match consumer.seek(topic, p, Offset::Offset(part.next), Duration::from_secs(10)) {
                Ok(()) => continue,
                Err(e) => {
                    tracing::warn!(partition = p, error = %e, "seek failed: the records between are not in the state")
                }
            }
        }
        report.records += 1;
        if rec.offset < part.next {
            // the restored state already holds it
            report.skipped += 1;
        } else {
            decisions.clear();
            if let Err(e) = part.pipeline.process_routed(rec.payload, &mut decisions) {
                consume::dead_letter(&producer, k, &rec, &e, &mut report).await?;
            }
            for e in part.pipeline.take_ended() {
                outbox.observe(e);
            }
            consume::emit(
                &producer,
                k,
                &rec,
                &mut decisions,
                received,
                &mut report,
                on_decision,
                outbox,
            )
            .await?;
            part.next = rec.offset + 1;
            part.dirty = true;
        }
        crate::bus::store_offset(&consumer, topic, p, rec.offset)?;
        if opts.stop_at_end && remaining.get(&p).is_some_and(|end| rec.offset + 1 >= *end) {
            remaining.remove(&p);
            if remaining.is_empty() {
                break;
            }
        }
    }
    revocations.take(&mut parts, &mut retired);
    checkpoint(
        &mut parts,
        &mut snapshots,
        &consumer,
        &mut keyed_report,
        CommitMode::Sync,
    )
    .await?;
    publish(&parts, &retired);
    Ok((report, keyed_report))
}

/// A pipeline for partition `p`, with its newest snapshot loaded if there is one.
async fn restore(
    k: &KafkaConfig,
    keyed: &KeyedConfig,
    build: &(dyn Fn() -> Result<Pipeline, RunError> + Sync),
    p: i32,
    snapshots: &mut snapshot::Writer,
    report: &mut KeyedReport,
) -> Result<Part, RunError> {
    let mut pipeline = build()?;
    let started = Instant::now();
    tracing::debug!(partition = p, "restoring");
    let (k2, topic) = (k.clone(), keyed.snapshots_topic.clone());
    let snap = tokio::task::spawn_blocking(move || snapshot::read(&k2, &topic, p))
        .await
        .map_err(|e| RunError::Build(format!("restoring partition {p}: {e}")))??;
    let next = match snap {
        Some(s) => {
            pipeline
                .load_state(&s.state)
                .map_err(|why| RunError::Build(format!("the snapshot of partition {p}: {why}")))?;
            report.restored += 1;
            snapshots.adopt(p, &s);
            tracing::info!(
                partition = p,
                next_offset = s.next_offset,
                bytes = s.bytes,
                ms = started.elapsed().as_millis() as u64,
                "partition restored from its snapshot"
            );
            s.next_offset
        }
        None => {
            tracing::info!(partition = p, "partition has no snapshot: starting cold");
            -1
        }
    };
    Ok(Part {
        pipeline,
        next,
        sought: false,
        dirty: false,
    })
}

/// Save every partition that processed records since its last snapshot, then commit the stored offsets.
async fn checkpoint(
    parts: &mut HashMap<i32, Part>,
    snapshots: &mut snapshot::Writer,
    consumer: &StreamConsumer<Rebalances>,
    report: &mut KeyedReport,
    mode: CommitMode,
) -> Result<(), RunError> {
    let mut saved = false;
    for (p, part) in parts.iter_mut().filter(|(_, part)| part.dirty) {
        let state = part.pipeline.save_state()?;
        let bytes = snapshots.write(*p, part.next, &state).await?;
        report.snapshot_bytes += bytes as u64;
        report.snapshots += 1;
        part.dirty = false;
        saved = true;
    }
    if saved || matches!(mode, CommitMode::Sync) {
        match consumer.commit_consumer_state(mode) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => tracing::warn!(error = %e, "offset commit failed; will retry"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_revoked_and_given_back_between_two_records_is_restored_not_continued() {
        let cfg = Config::default();
        let mut parts = HashMap::new();
        for p in [0, 1] {
            let mut pipeline = Pipeline::for_detect(&cfg).unwrap();
            pipeline.stats.messages = 10;
            parts.insert(
                p,
                Part {
                    pipeline,
                    next: 500,
                    sought: false,
                    dirty: true,
                },
            );
        }
        let r = Revocations::default();
        let mut retired = Stats::default();
        r.take(&mut parts, &mut retired);
        assert_eq!(parts.len(), 2, "nothing revoked, nothing dropped");
        // the callback notes partition 1 revoked (and, by the time the loop looks, given back again)
        r.partitions.lock().unwrap().push(1);
        r.any.store(true, Ordering::Release);
        r.take(&mut parts, &mut retired);
        assert!(parts.contains_key(&0));
        assert!(
            !parts.contains_key(&1),
            "its in-memory state missed what another instance processed meanwhile: restore it"
        );
        assert_eq!(retired.messages, 10, "its counts are kept");
    }
}
