//! The consume loop of [`crate::runtime`]: a consumer group on the input topics, each record through the
//! pipeline, producers for decisions and dead letters, the outbox, and the offsets.
//!
//! In the keyed topology's first stage (`RunOptions::route_to`), each record's events go to the keyed topic and
//! the links learned to the links topic instead of being detected here (see [`super::keyed`]); the rest is the
//! same.
//!
//! In: records from the configured topics (format pinned per topic or `auto`). Out: decision records on the
//! decisions topic (key: decision id), unusable records on the dead-letter topic (original key and payload, the
//! reason in headers `quench.error`, `quench.reason`, `quench.source`, control characters escaped), and decisions handed to the dispatcher.
//! Offsets: a record's offset is stored only after its decisions or dead letter are acknowledged by the broker,
//! and stored offsets are committed every `commit_interval_ms` (by a timer, so also while the topics are idle) and on
//! shutdown (at-least-once; decision ids are deterministic so a redelivered duplicate is recognisable). With
//! durable state (`[state] dir`), the pipeline's state is saved every `state.interval_secs` and at shutdown, and
//! offsets are committed only right after a save; at start the saved state is loaded and the records it already
//! holds are skipped (see [`crate::durable`]). The pipeline's counts are published at every commit tick. State:
//! the latency histogram (ingest → decision), and with durable state the next offset of each partition read.

use crate::bus::KafkaConfig;
use crate::clock::WallTime;
use crate::decide::Decision;
use crate::ingest::kafka::Input;
use crate::pipeline::Pipeline;
use crate::respond::outbox::{OutboxError, Writer};
use hdrhistogram::Histogram;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::watch;

use super::produce::{dead_letter, emit};
use super::route::{next_link, partitions_of, InFlight, Links};

/// Errors that stop the Kafka loop.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("cannot serialize a decision: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("producing to {topic}: {source}")]
    Produce { topic: String, source: KafkaError },
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    State(#[from] crate::durable::StateError),
    #[error(transparent)]
    Evidence(#[from] crate::evidence::EvidenceError),
    #[error("metrics.listen {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("the outbox dispatch loop stopped: {0}")]
    DispatchStopped(String),
    #[error(transparent)]
    Snapshot(#[from] super::snapshot::SnapshotError),
    /// A pipeline of the keyed topology could not be built or restored.
    #[error("{0}")]
    Build(String),
}

/// What the loop did.
pub struct RunReport {
    pub records: u64,
    /// Records skipped because the state resumed from already held them.
    pub skipped: u64,
    pub dead_letters: u64,
    pub decisions: u64,
    /// Events routed to the keyed topic (the keyed topology's first stage).
    pub routed: u64,
    /// Microseconds from receiving a record to its decision being acknowledged.
    pub latency_us: Histogram<u64>,
}

/// Options of one run.
#[derive(Default)]
pub struct RunOptions {
    /// Stop once every assigned partition has reached its end (demo and tests). Default: run until shutdown.
    pub stop_at_end: bool,
    /// Receives a snapshot of the pipeline's counts at every offset commit and at the end (for metrics).
    pub stats: Option<tokio::sync::watch::Sender<crate::pipeline::Stats>>,
    /// Receives the outbox's progress as commands settle (for metrics). Default: kept internal.
    pub outbox: Option<tokio::sync::watch::Sender<crate::respond::outbox::Progress>>,
    /// Where learned state is saved, and how often (`[state]`). Default: none (a restart starts cold).
    pub state: Option<(crate::durable::Store, Duration)>,
    /// The first stage of the keyed topology: route each event to the keyed topic, keyed by its correlation
    /// subject ([`Pipeline::route`]), and share the links learned on the links topic, instead of detecting here.
    /// Default: none (detect here).
    pub route_to: Option<crate::bus::KeyedConfig>,
}

/// Save the pipeline's state with the offsets it covers (the saved ones of partitions this run has not read
/// yet, and this run's positions), then commit the stored offsets, which are those positions.
fn checkpoint(
    store: &crate::durable::Store,
    consumer: &StreamConsumer<Input>,
    pipeline: &mut Pipeline,
    offsets: &mut std::collections::BTreeMap<String, i64>,
    positions: &HashMap<(&str, i32), i64>,
    mode: CommitMode,
) -> Result<(), RunError> {
    for ((topic, partition), next) in positions {
        offsets.insert(crate::durable::key(topic, *partition), *next);
    }
    let started = Instant::now();
    // evidence: seal the open files, save their names with the state, then move them into the store
    if let Some(e) = pipeline.evidence() {
        e.seal()?;
    }
    let state = pipeline.save_state()?;
    store.write(offsets, &state)?;
    pipeline.publish_evidence()?;
    tracing::debug!(
        bytes = state.get().len(),
        ms = started.elapsed().as_millis() as u64,
        "state saved"
    );
    match consumer.commit_consumer_state(mode) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => tracing::warn!(error = %e, "offset commit failed; will retry"),
    }
    Ok(())
}

/// Commit the stored offsets (asynchronously) and publish the pipeline's counts.
fn commit_and_publish(
    consumer: &StreamConsumer<Input>,
    stats: Option<&watch::Sender<crate::pipeline::Stats>>,
    pipeline: &mut Pipeline,
) -> Result<(), RunError> {
    // the evidence of what is committed is in the store first (a crash after this stores some rows twice)
    pipeline.flush_evidence()?;
    match consumer.commit_consumer_state(CommitMode::Async) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => tracing::warn!(error = %e, "offset commit failed; will retry"),
    }
    if let Some(tx) = stats {
        tx.send_replace(pipeline.published_stats());
    }
    Ok(())
}

/// The message a consumer returned, or `None` after logging its error (the loops go on to the next record).
pub(crate) fn consumed<M>(r: Result<M, KafkaError>) -> Option<M> {
    match r {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::warn!(error = %e, "kafka consume error");
            None
        }
    }
}

/// Consume until shutdown (or the end of every partition with `stop_at_end`).
/// `on_decision` sees each decision after it is on the decisions topic and before its commands go to the outbox.
/// A record's offset is stored only after its decisions' commands are on the commands topic.
pub async fn run(
    k: &KafkaConfig,
    pipeline: &mut Pipeline,
    outbox: &Writer,
    opts: RunOptions,
    mut shutdown: watch::Receiver<bool>,
    mut on_decision: impl FnMut(&Decision),
) -> Result<RunReport, RunError> {
    // with durable state, offsets are committed only right after a save
    let consumer = crate::ingest::kafka::subscribe(k, opts.state.is_none())?;
    let producer = crate::bus::producer(k)?;
    let formats: HashMap<&str, &str> = k
        .topics
        .iter()
        .map(|t| (t.name.as_str(), t.format.as_str()))
        .collect();
    let mut report = RunReport {
        records: 0,
        skipped: 0,
        dead_letters: 0,
        decisions: 0,
        routed: 0,
        latency_us: Histogram::new(3).map_err(|_| KafkaError::Canceled)?,
    };
    let mut decisions = Vec::new();
    let mut routed = Vec::new();
    let mut inflight = InFlight::default();
    let mut last_commit = Instant::now();
    let mut last_record = Instant::now();
    // Durable state: resume from the snapshot, skip the records it already holds, save before each commit.
    let mut saved_offsets = std::collections::BTreeMap::new();
    let mut resume: HashMap<(&str, i32), i64> = HashMap::new();
    let mut positions: HashMap<(&str, i32), i64> = HashMap::new();
    if let Some((store, _)) = &opts.state {
        if let Some(snap) = store.read()? {
            pipeline
                .load_state(&snap.state)
                .map_err(|why| crate::durable::StateError::Load {
                    path: store.file(),
                    why,
                })?;
            for t in &k.topics {
                for (key, next) in &snap.offsets {
                    if let Some(p) = key
                        .strip_prefix(t.name.as_str())
                        .and_then(|r| r.strip_prefix('/'))
                        .and_then(|p| p.parse::<i32>().ok())
                    {
                        resume.insert((t.name.as_str(), p), *next);
                    }
                }
            }
            tracing::info!(file = %store.file().display(), saved_at = %snap.written_at.to_rfc3339(), partitions = snap.offsets.len(), "resumed the learned state of the previous run");
            saved_offsets = snap.offsets;
        }
    }
    // evidence sealed before a crash: published if the snapshot accounts for it, else dropped (processed again)
    let published = pipeline.recover_evidence()?;
    if published > 0 {
        tracing::info!(
            files = published,
            "published the evidence files the saved state accounts for"
        );
    }
    if let Some(tx) = &opts.stats {
        tx.send_replace(pipeline.published_stats());
    }
    // The keyed topology's first stage: start with the links every instance has shared, then keep taking them.
    let links = match &opts.route_to {
        Some(to) => {
            pipeline.share_links();
            let l = Links::open(k, &to.links_topic)?;
            let n = l.catch_up(pipeline).await?;
            tracing::info!(links = n, topic = %to.links_topic, "links read");
            Some(l)
        }
        None => None,
    };
    // The keyed topic's partitions: a configuration announcement goes to each of them (looked up again before an
    // announcement once a minute has passed, so that partitions added later get theirs).
    let mut keyed_partitions = match &opts.route_to {
        Some(to) => partitions_of(&consumer, &to.topic)?,
        None => 0,
    };
    let mut partitions_read = Instant::now();
    // With stop_at_end: the end offset of every input partition at start-up; stop once all are processed.
    let mut remaining: HashMap<(String, i32), i64> = HashMap::new();
    if opts.stop_at_end {
        for t in &k.topics {
            let md = consumer.fetch_metadata(Some(&t.name), Duration::from_secs(10))?;
            for mt in md.topics() {
                for p in mt.partitions() {
                    let (low, high) =
                        consumer.fetch_watermarks(&t.name, p.id(), Duration::from_secs(10))?;
                    if high > low {
                        remaining.insert((t.name.clone(), p.id()), high);
                    }
                }
            }
        }
        if remaining.is_empty() {
            return Ok(report);
        }
    }
    let mut stored_any = false;
    // Offsets stored since the last commit. A timer commits them and publishes the counts even while no record
    // arrives, so an idle topic's tail is committed and the metrics are current within one commit interval.
    let mut dirty = false;
    let mut tick = tokio::time::interval(Duration::from_millis(k.commit_interval_ms.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let msg = tokio::select! {
            m = consumer.recv() => m,
            _ = tick.tick() => {
                inflight.settle(&consumer, true).await?;
                // events the reorder hold releases while no record arrives: only once the input has gone idle
                // (read to its end), since while a backlog is read the records' delivery times are the clock
                let idle = last_record.elapsed() >= Duration::from_millis(k.commit_interval_ms);
                if opts.route_to.is_none() && pipeline.stats.reorder_held > 0 && idle {
                    decisions.clear();
                    if pipeline.release(WallTime::now().as_ts(), &mut decisions) > 0 {
                        let at = Instant::now();
                        emit(&producer, k, None, &mut decisions, at, &mut report, &mut on_decision, outbox).await?;
                        // the state changed: saved (and at shutdown too), else a restart would decide them again
                        dirty = true;
                        stored_any = true;
                    }
                }
                if let Some((store, every)) = &opts.state {
                    // every `interval_secs` while records flow, and at once when the input has gone idle, so an
                    // idle topic's tail is committed within one commit interval
                    let idle = last_record.elapsed() >= Duration::from_millis(k.commit_interval_ms);
                    if dirty && (idle || last_commit.elapsed() >= *every) {
                        checkpoint(store, &consumer, pipeline, &mut saved_offsets, &positions, CommitMode::Async)?;
                        dirty = false;
                        last_commit = Instant::now();
                    }
                    if let Some(tx) = &opts.stats {
                        tx.send_replace(pipeline.published_stats());
                    }
                } else if dirty {
                    commit_and_publish(&consumer, opts.stats.as_ref(), pipeline)?;
                    dirty = false;
                    last_commit = Instant::now();
                } else if let Some(tx) = &opts.stats {
                    tx.send_replace(pipeline.published_stats());
                }
                continue;
            }
            l = next_link(links.as_ref()) => {
                if let Err(e) = pipeline.apply_link(l.payload().unwrap_or(&[])) {
                    tracing::warn!(error = %e, "unreadable record on the links topic skipped");
                }
                continue;
            }
            _ = shutdown.changed() => break,
        };
        let Some(m) = consumed(msg) else {
            continue;
        };
        let received = Instant::now();
        last_record = received;
        report.records += 1;
        let rec = crate::ingest::kafka::Record::of(&m);
        let (topic, partition, offset, payload) =
            (rec.topic, rec.partition, rec.offset, rec.payload);
        let pinned = formats.get(topic).copied();
        let prov = rec.provenance();
        let Some((&tname, _)) = formats.get_key_value(topic) else {
            continue;
        };
        if opts.state.is_some() {
            positions.insert((tname, partition), offset + 1);
        }
        // a record the saved state already holds (processed before the last snapshot, not yet committed)
        let held = !resume.is_empty()
            && match resume.get(&(tname, partition)) {
                Some(&next) if offset < next => true,
                Some(_) => {
                    resume.remove(&(tname, partition));
                    false
                }
                None => false,
            };
        decisions.clear();
        let processed = if held {
            report.skipped += 1;
            Ok(0)
        } else if opts.route_to.is_some() {
            pipeline.route(payload, pinned, prov, WallTime::now().as_ts(), &mut routed)
        } else {
            let now = WallTime::now().as_ts();
            pipeline.delivered_at(rec.timestamp.map(|t| t.min(now)));
            pipeline.process(payload, pinned, prov, now, &mut decisions)
        };
        if let Some(to) = &opts.route_to {
            'routed: for r in routed.drain(..) {
                // an announcement's copy goes to each partition, anything else once, by its key
                let (topic, copies) = if r.link {
                    (&to.links_topic, 1)
                } else if r.announce {
                    if partitions_read.elapsed() >= Duration::from_secs(60) {
                        keyed_partitions = partitions_of(&consumer, &to.topic)?;
                        partitions_read = Instant::now();
                    }
                    (&to.topic, keyed_partitions)
                } else {
                    report.routed += 1;
                    (&to.topic, 1)
                };
                for copy in 0..copies {
                    let partition = r.announce.then_some(copy);
                    let Err(source) = inflight
                        .send(&producer, &consumer, topic, partition, &r)
                        .await?
                    else {
                        continue;
                    };
                    // a routed event or link the client refuses as such (too large): resending can never
                    // succeed, so the input record is dead-lettered instead of stopping every instance in turn
                    let e = crate::normalize::NormalizeError::Invalid {
                        format: "keyed",
                        reason: format!("a routed record for {topic} was refused: {source}"),
                    };
                    dead_letter(&producer, k, &rec, &e, &mut report).await?;
                    break 'routed;
                }
            }
        }
        if let Err(e) = processed {
            dead_letter(&producer, k, &rec, &e, &mut report).await?;
        }
        for e in pipeline.take_ended() {
            outbox.observe(e);
        }
        emit(
            &producer,
            k,
            Some(&rec),
            &mut decisions,
            received,
            &mut report,
            &mut on_decision,
            outbox,
        )
        .await?;
        if opts.route_to.is_some() {
            // stored once every event routed so far is acknowledged
            inflight.done(tname, partition, offset);
            inflight.settle(&consumer, false).await?;
        } else {
            crate::bus::store_offset(&consumer, topic, partition, offset)?;
        }
        stored_any = true;
        dirty = true;
        if opts.stop_at_end {
            let key = (topic.to_string(), partition);
            if remaining.get(&key).is_some_and(|end| offset + 1 >= *end) {
                remaining.remove(&key);
                if remaining.is_empty() {
                    break;
                }
            }
        }
        if opts.state.is_none()
            && last_commit.elapsed() >= Duration::from_millis(k.commit_interval_ms)
        {
            inflight.settle(&consumer, true).await?;
            commit_and_publish(&consumer, opts.stats.as_ref(), pipeline)?;
            dirty = false;
            last_commit = Instant::now();
        }
    }
    inflight.settle(&consumer, true).await?;
    if let Some(tx) = &opts.stats {
        tx.send_replace(pipeline.published_stats());
    }
    if let (Some((store, _)), true) = (&opts.state, stored_any) {
        checkpoint(
            store,
            &consumer,
            pipeline,
            &mut saved_offsets,
            &positions,
            CommitMode::Sync,
        )?;
    } else if stored_any {
        pipeline.flush_evidence()?;
        match consumer.commit_consumer_state(CommitMode::Sync) {
            // everything processed was already committed by the periodic commit
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(report)
}
