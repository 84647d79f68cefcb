//! Partition workers: the keyed topology's detect stage processes the partitions it holds on several threads.
//!
//! In: [`Work`] from the detect loop ([`super::keyed`]): partitions to take over (with their snapshot's state) or
//! to drop, records, and requests to save or count. Out: [`Done`], in the order each worker received its work:
//! each record's decisions, refusal and ended sessions; the states of the partitions that changed since their last
//! save; counts. State: one [`Pipeline`] per partition the worker holds, with the offset of the next record it has
//! not processed and whether it changed since its last save; the counts of partitions it dropped.
//!
//! A partition lives on one worker, so its records are processed in order and nothing is shared or locked: the
//! loop gives a partition it takes over to the worker holding the fewest. The loop sends work through a bounded
//! channel per worker (so a slow worker slows the consumer, not memory) and reads every worker's results from one
//! unbounded channel, which holds at most one result per record a worker was sent (so it cannot deadlock against
//! the bounded one). A save request is a barrier: a worker answers it after every record sent before it.

use super::consume::RunError;
use crate::decide::Decision;
use crate::event::Ended;
use crate::normalize::NormalizeError;
use crate::pipeline::{Pipeline, Stats};
use rdkafka::message::{Message, OwnedMessage};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// Records queued per worker before the loop waits.
pub const QUEUE: usize = 1024;

/// Builds the pipeline of a partition (without state).
pub type Build = Arc<dyn Fn() -> Result<Pipeline, String> + Send + Sync>;

/// Work for one worker.
pub enum Work {
    /// Hold `partition` from now on, with the state of its snapshot (whose next offset is `next`), or cold.
    Adopt {
        partition: i32,
        state: Option<Box<RawValue>>,
        next: i64,
    },
    /// Process a record of a partition the worker holds; `epoch` is the loop's count of the partition's
    /// take-overs when it was sent, handed back with the result.
    Record {
        msg: OwnedMessage,
        received: Instant,
        epoch: u64,
    },
    /// Forget `partition` (a rebalance took it).
    Drop(i32),
    /// Answer with the state of every partition that processed records since its last save.
    Save,
    /// Answer with the counts of the partitions held and dropped.
    Count,
}

/// What a worker did.
pub enum Done {
    /// A record: `outcome` is `None` when the worker does not hold its partition (it was dropped after the record
    /// was sent): the record was not processed.
    Record {
        msg: OwnedMessage,
        received: Instant,
        epoch: u64,
        outcome: Option<Outcome>,
    },
    /// The states of the partitions that changed since their last save: (partition, next offset, state).
    Saved(Result<Vec<(i32, i64, Box<RawValue>)>, String>),
    /// Worker `.0`'s counts.
    Counted(usize, Stats),
    /// A partition's snapshot could not be loaded, or a worker stopped on a panic.
    Failed(String),
}

/// A processed record.
pub struct Outcome {
    pub decisions: Vec<Decision>,
    /// Why the pipeline refused the record (it goes to the dead-letter topic).
    pub refused: Option<NormalizeError>,
    /// Sessions and tokens the record says ended (for the outbox's confirmations).
    pub ended: Vec<Ended>,
}

/// One partition held by a worker.
struct Part {
    pipeline: Pipeline,
    /// The offset of the next record not processed (-1: none yet).
    next: i64,
    /// Records processed since the last save.
    dirty: bool,
}

/// The workers and which partition each holds.
pub struct Pool {
    senders: Vec<mpsc::Sender<Work>>,
    /// Partitions held, per worker.
    load: Vec<usize>,
    owner: HashMap<i32, usize>,
    done: mpsc::UnboundedReceiver<Done>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Pool {
    /// Start `n` workers (at least one).
    pub fn start(n: usize, build: Build) -> Result<Pool, RunError> {
        let (done_tx, done) = mpsc::unbounded_channel();
        let mut pool = Pool {
            senders: Vec::new(),
            load: Vec::new(),
            owner: HashMap::new(),
            done,
            threads: Vec::new(),
        };
        for i in 0..n.max(1) {
            let (tx, rx) = mpsc::channel(QUEUE);
            let (build, done_tx) = (build.clone(), done_tx.clone());
            let handle = std::thread::Builder::new()
                .name(format!("quench-detect-{i}"))
                .spawn(move || work(i, &*build, rx, done_tx))
                .map_err(|e| RunError::Build(format!("starting detect thread {i}: {e}")))?;
            pool.senders.push(tx);
            pool.load.push(0);
            pool.threads.push(handle);
        }
        Ok(pool)
    }

    /// The number of workers.
    pub fn workers(&self) -> usize {
        self.senders.len()
    }

    async fn send(&self, worker: usize, w: Work) -> Result<(), RunError> {
        self.senders[worker]
            .send(w)
            .await
            .map_err(|_| RunError::Build(format!("detect thread {worker} stopped")))
    }

    /// Give `partition` to the worker holding the fewest.
    pub async fn adopt(
        &mut self,
        partition: i32,
        state: Option<Box<RawValue>>,
        next: i64,
    ) -> Result<(), RunError> {
        if let Some(w) = self.owner.remove(&partition) {
            self.load[w] -= 1;
            self.send(w, Work::Drop(partition)).await?;
        }
        let w = (0..self.load.len())
            .min_by_key(|&i| self.load[i])
            .unwrap_or(0);
        self.load[w] += 1;
        self.owner.insert(partition, w);
        self.send(
            w,
            Work::Adopt {
                partition,
                state,
                next,
            },
        )
        .await
    }

    /// Send a record to the worker holding its partition; `false` if none does.
    pub async fn record(
        &self,
        msg: OwnedMessage,
        received: Instant,
        epoch: u64,
    ) -> Result<bool, RunError> {
        let Some(&w) = self.owner.get(&msg.partition()) else {
            return Ok(false);
        };
        self.send(
            w,
            Work::Record {
                msg,
                received,
                epoch,
            },
        )
        .await?;
        Ok(true)
    }

    /// Forget `partition`.
    pub async fn drop_partition(&mut self, partition: i32) -> Result<(), RunError> {
        if let Some(w) = self.owner.remove(&partition) {
            self.load[w] -= 1;
            self.send(w, Work::Drop(partition)).await?;
        }
        Ok(())
    }

    /// Send `Save` or `Count` to every worker (each answers once).
    pub async fn ask_all(&self, save: bool) -> Result<(), RunError> {
        for w in 0..self.senders.len() {
            self.send(w, if save { Work::Save } else { Work::Count })
                .await?;
        }
        Ok(())
    }

    /// The next result of any worker.
    pub async fn next(&mut self) -> Result<Done, RunError> {
        self.done
            .recv()
            .await
            .ok_or_else(|| RunError::Build("every detect thread stopped".into()))
    }

    /// Stop the workers once they have done the work sent, and wait for them.
    pub fn close(self) {
        drop(self.senders);
        for t in self.threads {
            if t.join().is_err() {
                tracing::error!("a detect thread panicked");
            }
        }
    }
}

/// One worker: its partitions' pipelines, until the loop drops its sender.
fn work(
    index: usize,
    build: &(dyn Fn() -> Result<Pipeline, String> + Send + Sync),
    mut rx: mpsc::Receiver<Work>,
    done: mpsc::UnboundedSender<Done>,
) {
    // a panic must stop the stage, not leave the loop waiting for this worker's answer
    let _guard = PanicNotice {
        index,
        done: done.clone(),
    };
    let mut parts: HashMap<i32, Part> = HashMap::new();
    let mut dropped = Stats::default();
    while let Some(w) = rx.blocking_recv() {
        let out = match w {
            Work::Adopt {
                partition,
                state,
                next,
            } => match adopt(build, partition, state.as_deref(), next) {
                Ok(part) => {
                    if let Some(old) = parts.insert(partition, part) {
                        dropped.absorb(&old.pipeline.stats);
                    }
                    continue;
                }
                Err(why) => Done::Failed(why),
            },
            Work::Record {
                msg,
                received,
                epoch,
            } => {
                let outcome = parts.get_mut(&msg.partition()).map(|part| {
                    let mut decisions = Vec::new();
                    let refused = part
                        .pipeline
                        .process_routed(msg.payload().unwrap_or(&[]), &mut decisions)
                        .err();
                    part.next = msg.offset() + 1;
                    part.dirty = true;
                    Outcome {
                        decisions,
                        refused,
                        ended: part.pipeline.take_ended().collect(),
                    }
                });
                Done::Record {
                    msg,
                    received,
                    epoch,
                    outcome,
                }
            }
            Work::Drop(p) => {
                if let Some(part) = parts.remove(&p) {
                    dropped.absorb(&part.pipeline.stats);
                }
                continue;
            }
            Work::Save => {
                let mut saved = Vec::new();
                let mut failed = None;
                for (p, part) in parts.iter_mut().filter(|(_, part)| part.dirty) {
                    match part.pipeline.save_state() {
                        Ok(state) => {
                            saved.push((*p, part.next, state));
                            part.dirty = false;
                        }
                        Err(e) => {
                            failed = Some(format!("saving partition {p}: {e}"));
                            break;
                        }
                    }
                }
                Done::Saved(match failed {
                    None => Ok(saved),
                    Some(why) => Err(why),
                })
            }
            Work::Count => {
                let mut s = dropped.clone();
                for part in parts.values() {
                    s.absorb(&part.pipeline.stats);
                }
                Done::Counted(index, s)
            }
        };
        if done.send(out).is_err() {
            return; // the loop is gone
        }
    }
}

/// Tells the loop that a worker stopped on a panic (dropped while unwinding).
struct PanicNotice {
    index: usize,
    done: mpsc::UnboundedSender<Done>,
}

impl Drop for PanicNotice {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.done.send(Done::Failed(format!(
                "detect thread {} stopped on a panic",
                self.index
            )));
        }
    }
}

/// The pipeline of a partition taken over, with its snapshot's state loaded.
fn adopt(
    build: &(dyn Fn() -> Result<Pipeline, String> + Send + Sync),
    partition: i32,
    state: Option<&RawValue>,
    next: i64,
) -> Result<Part, String> {
    let mut pipeline = build()?;
    if let Some(s) = state {
        pipeline
            .load_state(s)
            .map_err(|why| format!("the snapshot of partition {partition}: {why}"))?;
    }
    Ok(Part {
        pipeline,
        next,
        dirty: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn pool(n: usize) -> Pool {
        let cfg = Config::default();
        Pool::start(
            n,
            Arc::new(move || Pipeline::for_detect(&cfg).map_err(|e| e.to_string())),
        )
        .unwrap()
    }

    fn msg(partition: i32, offset: i64) -> OwnedMessage {
        OwnedMessage::new(
            Some(b"{}".to_vec()),
            None,
            "quench.keyed".into(),
            rdkafka::Timestamp::NotAvailable,
            partition,
            offset,
            None,
        )
    }

    #[tokio::test]
    async fn partitions_are_spread_over_the_workers_and_dropped_ones_are_not_processed() {
        let mut pool = pool(2);
        for p in [0, 2, 4, 6] {
            pool.adopt(p, None, -1).await.unwrap();
        }
        assert_eq!(pool.load, vec![2, 2], "four partitions, two on each worker");
        pool.drop_partition(2).await.unwrap();
        assert!(!pool.owner.contains_key(&2));
        // a record of partition 2 sent before the drop reached its worker: not processed
        let w = pool.owner[&0];
        pool.send(
            w,
            Work::Record {
                msg: msg(2, 7),
                received: Instant::now(),
                epoch: 1,
            },
        )
        .await
        .unwrap();
        assert!(pool.record(msg(0, 3), Instant::now(), 1).await.unwrap());
        assert!(
            !pool.record(msg(2, 8), Instant::now(), 1).await.unwrap(),
            "no worker holds it"
        );
        let mut outcomes = HashMap::new();
        while outcomes.len() < 2 {
            if let Done::Record { msg, outcome, .. } = pool.next().await.unwrap() {
                outcomes.insert(msg.partition(), outcome.is_some());
            }
        }
        assert!(
            !outcomes[&2],
            "the dropped partition's record was not processed"
        );
        assert!(
            outcomes[&0],
            "the held partition's record was processed (refused as not a routed event)"
        );
        pool.close();
    }

    #[tokio::test]
    async fn a_save_answers_after_every_record_sent_before_it_with_the_next_offsets() {
        let mut pool = pool(2);
        pool.adopt(0, None, -1).await.unwrap();
        pool.adopt(1, None, -1).await.unwrap();
        for o in 0..50i32 {
            pool.record(msg(o % 2, o as i64), Instant::now(), 1)
                .await
                .unwrap();
        }
        pool.ask_all(true).await.unwrap();
        let (mut records, mut saved, mut answers) = (0, Vec::new(), 0);
        while answers < 2 {
            match pool.next().await.unwrap() {
                Done::Record { .. } => records += 1,
                Done::Saved(s) => {
                    answers += 1;
                    saved.extend(s.unwrap().into_iter().map(|(p, next, _)| (p, next)));
                }
                _ => {}
            }
        }
        assert_eq!(
            records, 50,
            "every record's result came before the save's answers"
        );
        saved.sort();
        assert_eq!(saved, vec![(0, 49), (1, 50)]);
        // nothing changed since: the next save has nothing to write
        pool.ask_all(true).await.unwrap();
        for _ in 0..2 {
            match pool.next().await.unwrap() {
                Done::Saved(s) => assert!(s.unwrap().is_empty()),
                _ => panic!("only the save's answers are due"),
            }
        }
        pool.close();
    }

    #[tokio::test]
    async fn a_snapshot_that_cannot_be_loaded_is_reported_not_ignored() {
        let mut pool = pool(1);
        let bad = RawValue::from_string("{\"clock\":1}".into()).unwrap();
        pool.adopt(3, Some(bad), 10).await.unwrap();
        match pool.next().await.unwrap() {
            Done::Failed(why) => assert!(why.contains("partition 3"), "{why}"),
            _ => panic!("a failure is due"),
        }
        pool.close();
    }

    #[tokio::test]
    async fn a_worker_that_panics_stops_the_stage_instead_of_leaving_it_waiting() {
        let mut pool = Pool::start(
            2,
            Arc::new(|| -> Result<Pipeline, String> { panic!("a bug while building") }),
        )
        .unwrap();
        pool.adopt(0, None, -1).await.unwrap();
        // the other worker keeps the results channel open; the loop hears of the panic all the same
        match pool.next().await.unwrap() {
            Done::Failed(why) => assert!(why.contains("panic"), "{why}"),
            _ => panic!("a failure is due"),
        }
    }
}
