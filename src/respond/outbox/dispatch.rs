//! The outbox's dispatch loop ([`dispatch`]): reads the commands topic, sends each command not yet settled
//! through the [`Dispatcher`], writes its `outcome` (and dead letter, when it failed for good), watches delivered
//! revocations for their confirmation in the vendor's log, and commits each partition up to its oldest command
//! still needed.
//!
//! In: the commands topic, the endings normalized from vendor logs. Out: HTTP requests, `outcome` and
//! `confirmation` records, dead letters, unconfirmed alerts, [`Progress`]. State: the commands of the last
//! `remember_secs` and, per partition, the offsets it still needs; the revocations awaiting confirmation.

use super::*;

/// Per-partition bookkeeping of the dispatch loop.
#[derive(Default)]
pub(super) struct Part {
    /// The next offset to read.
    pub(super) next: i64,
    /// Offsets of commands in flight.
    pub(super) pending: BTreeSet<i64>,
    /// (offset, wall-clock ms) of the records still remembered, oldest first.
    pub(super) remembered: VecDeque<(i64, i64)>,
    /// Until the loop has read this offset, the partition is recovering (commands are collected, not sent).
    pub(super) recover_to: Option<i64>,
    /// Commands collected while recovering.
    pub(super) collected: Vec<Command>,
    /// While recovering: delivered commands of confirmed targets whose confirmation record is not (yet) seen.
    pub(super) to_confirm: HashMap<String, Unsettled>,
    pub(super) committed: i64,
}

impl Part {
    /// The offset that may be committed: nothing before it is still needed.
    fn commit_offset(&self) -> i64 {
        let mut o = self.next;
        if let Some(p) = self.pending.first() {
            o = o.min(*p);
        }
        if let Some((r, _)) = self.remembered.front() {
            o = o.min(*r);
        }
        o
    }
}

/// What the dispatch loop knows of one command id.
struct Known {
    /// Its outcome is recorded.
    finished: bool,
    /// A command record with this id was seen (a second one is a duplicate).
    commanded: bool,
    /// Wall-clock ms it was last seen; finished commands are forgotten `remember_secs` after.
    at: i64,
}

struct Finished {
    partition: i32,
    offset: i64,
    command_id: String,
    /// Whether the outcome record is on the topic (else the command is redone at the next start).
    recorded: bool,
    /// A delivered revocation whose target is confirmed from the vendor's log.
    pending: Option<Pending>,
}

/// A command read from the commands topic, to send.
pub(super) struct Command {
    pub(super) offset: i64,
    pub(super) command_id: String,
    pub(super) target: String,
    pub(super) created_at: WallTime,
    pub(super) decision: Decision,
}

/// While recovering: a command of a confirmed target whose confirmation record is not (yet) seen.
pub(super) struct Unsettled {
    pub(super) decision: Decision,
    pub(super) target: String,
    /// When it was delivered, once its `delivered` outcome is seen.
    pub(super) delivered_at: Option<WallTime>,
}

/// Consume the commands topic and carry the commands out, until `shutdown`. `progress` is updated as commands
/// settle. This drives a [`Loop`]: it reads the topic, task results, vendor endings and a 200 ms tick, and hands
/// each to the loop's `on_…` method.
pub async fn dispatch(
    k: KafkaConfig,
    dispatcher: Dispatcher,
    mut shutdown: watch::Receiver<bool>,
    progress: watch::Sender<Progress>,
    mut ended_rx: mpsc::UnboundedReceiver<Ended>,
    evidence: Option<crate::evidence::CommandSink>,
) -> Result<(), OutboxError> {
    let cfg = dispatcher.config().outbox.clone();
    let topic = cfg.topic.clone();
    let consumer: StreamConsumer = crate::bus::consumer(
        &k,
        &format!("{}.respond", k.group_id),
        &[("fetch.wait.max.ms", "10")],
    )?;
    let producer = crate::bus::producer(&k)?;
    let timeout = Duration::from_secs(10);

    // Where each partition starts: its committed offset, else its beginning; recover up to its current end.
    let md = consumer.fetch_metadata(Some(&topic), timeout)?;
    let ids: Vec<i32> = md
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if ids.is_empty() {
        return Err(OutboxError::NoTopic(topic));
    }
    let mut ask = TopicPartitionList::new();
    for p in &ids {
        ask.add_partition(&topic, *p);
    }
    let committed = consumer.committed_offsets(ask, timeout)?;
    let mut parts: HashMap<i32, Part> = HashMap::new();
    let mut assign = TopicPartitionList::new();
    for p in &ids {
        let (low, high) = consumer.fetch_watermarks(&topic, *p, timeout)?;
        let start = match committed.find_partition(&topic, *p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) if o >= low => o,
            _ => low,
        };
        assign.add_partition_offset(&topic, *p, Offset::Offset(start))?;
        parts.insert(
            *p,
            Part {
                next: start,
                recover_to: (high > start).then_some(high),
                committed: start,
                ..Default::default()
            },
        );
    }
    consumer.assign(&assign)?;
    tracing::info!(topic = %topic, partitions = ids.len(), recovering = parts.values().filter(|p| p.recover_to.is_some()).count(), "outbox dispatch started");

    let (fin_tx, mut fin_rx) = mpsc::unbounded_channel::<Finished>();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut l = Loop {
        ctx: Arc::new(TaskCtx {
            dispatcher: dispatcher.clone(),
            producer: producer.clone(),
            topic: topic.clone(),
            dead_letter_topic: k.dead_letter_topic.clone(),
            decisions_topic: k.decisions_topic.clone(),
            evidence,
        }),
        dispatcher,
        topic: topic.clone(),
        parts,
        known: HashMap::new(),
        prog: Progress::default(),
        tasks: JoinSet::new(),
        fin_tx,
        confirmer: Confirmer::default(),
        remember_ms: cfg.remember_secs as i64 * 1000,
    };

    let mut stop_at: Option<HashMap<i32, i64>> = None;
    let drain = tokio::time::sleep(Duration::MAX);
    tokio::pin!(drain);
    loop {
        if let Some(ends) = &stop_at {
            if drain.deadline() > tokio::time::Instant::now() + Duration::from_secs(cfg.drain_secs)
            {
                drain
                    .as_mut()
                    .reset(tokio::time::Instant::now() + Duration::from_secs(cfg.drain_secs));
            }
            if l.reached(ends) {
                break;
            }
        }
        tokio::select! {
            m = consumer.recv() => {
                match m {
                    Ok(m) => l.on_record(m.partition(), m.offset(), m.payload().unwrap_or(&[])),
                    Err(e) => {
                        tracing::warn!(error = %e, "commands topic consume error");
                        continue;
                    }
                }
                progress.send_replace(l.prog);
            }
            Some(f) = fin_rx.recv() => {
                l.on_finished(f);
                progress.send_replace(l.prog);
            }
            Some(e) = ended_rx.recv() => {
                l.on_ended(e);
                progress.send_replace(l.prog);
            }
            _ = tick.tick() => {
                let tpl = l.on_tick()?;
                progress.send_replace(l.prog);
                if tpl.count() > 0 {
                    if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
                        tracing::warn!(error = %e, "commands topic commit failed; will retry");
                    }
                }
            }
            r = shutdown.changed(), if stop_at.is_none() => {
                if r.is_err() || *shutdown.borrow() {
                    // finish what is already written (this instance's own last commands), within drain_secs
                    let mut ends = HashMap::new();
                    for p in l.parts.keys() {
                        let (_, high) = consumer.fetch_watermarks(&topic, *p, timeout)?;
                        ends.insert(*p, high);
                    }
                    stop_at = Some(ends);
                }
            }
            _ = &mut drain, if stop_at.is_some() => break,
            Some(_) = l.tasks.join_next(), if !l.tasks.is_empty() => {}
        }
    }

    // Shutdown: wait (within drain_secs) for commands in flight; whatever is left is resumed at the next start.
    while l.prog.in_flight > 0 {
        tokio::select! {
            Some(f) = fin_rx.recv() => {
                l.finish(f);
            }
            _ = &mut drain => {
                tracing::warn!(in_flight = l.prog.in_flight, "shutdown: commands still in flight are resumed at the next start");
                break;
            }
        }
    }
    progress.send_replace(l.prog);
    let tpl = l.on_shutdown()?;
    if tpl.count() > 0 {
        consumer.commit(&tpl, CommitMode::Sync)?;
    }
    Ok(())
}

/// The dispatch loop's state, and what it does with each thing that reaches it: a record of the commands topic
/// ([`Loop::on_record`]), a command's task finishing ([`Loop::on_finished`]), an ending in a vendor's log
/// ([`Loop::on_ended`]), the tick ([`Loop::on_tick`]) and the end ([`Loop::on_shutdown`]).
struct Loop {
    dispatcher: Dispatcher,
    ctx: Arc<TaskCtx>,
    topic: String,
    parts: HashMap<i32, Part>,
    known: HashMap<String, Known>,
    prog: Progress,
    tasks: JoinSet<()>,
    fin_tx: mpsc::UnboundedSender<Finished>,
    confirmer: Confirmer,
    /// How long a finished command is remembered, ms of wall clock.
    remember_ms: i64,
}

impl Loop {
    /// Whether every partition has been read to the offsets in `ends` and none is still recovering.
    fn reached(&self, ends: &HashMap<i32, i64>) -> bool {
        ends.iter().all(|(p, end)| {
            self.parts
                .get(p)
                .is_none_or(|x| x.next >= *end && x.recover_to.is_none())
        })
    }

    /// Start (or skip as a duplicate) one command of `partition`.
    fn start(&mut self, partition: i32, resuming: bool, cmd: Command) {
        let now = self.dispatcher.now().0;
        let k = self.known.entry(cmd.command_id.clone()).or_insert(Known {
            finished: false,
            commanded: false,
            at: now,
        });
        k.at = now;
        if k.commanded {
            self.prog.duplicates += 1;
            self.prog.settled += 1;
            tracing::debug!(command = %crate::text::escape_control(&cmd.command_id), "command already seen; not sent again");
            return;
        }
        k.commanded = true;
        if k.finished {
            self.prog.settled += 1; // its outcome is on the topic: done before this start
            return;
        }
        if resuming {
            self.prog.resumed += 1;
        }
        if let Some(part) = self.parts.get_mut(&partition) {
            part.pending.insert(cmd.offset);
        }
        self.prog.in_flight += 1;
        let ctx = self.ctx.clone();
        let fin = self.fin_tx.clone();
        self.tasks.spawn(async move {
            let (recorded, pending) = ctx
                .run(
                    &cmd.target,
                    &cmd.decision,
                    cmd.created_at,
                    partition,
                    cmd.offset,
                )
                .await;
            let _ = fin.send(Finished {
                partition,
                offset: cmd.offset,
                command_id: cmd.command_id,
                recorded,
                pending,
            });
        });
    }

    /// A record of the commands topic: a command is started (or collected while its partition recovers), an
    /// outcome or confirmation updates what is known; once a recovering partition is read to its end, what it
    /// collected is started and its delivered revocations are watched again.
    fn on_record(&mut self, partition: i32, offset: i64, payload: &[u8]) {
        let now = self.dispatcher.now().0;
        let Some(part) = self.parts.get_mut(&partition) else {
            return;
        };
        part.next = offset + 1;
        match serde_json::from_slice::<Record>(payload) {
            Ok(Record::Command {
                command_id,
                target,
                created_at,
                decision,
            }) => {
                let decision = *decision;
                part.remembered.push_back((offset, created_at.0.min(now)));
                if part.recover_to.is_some() && self.dispatcher.confirmation_of(&target).is_some() {
                    part.to_confirm.insert(
                        command_id.clone(),
                        Unsettled {
                            decision: decision.clone(),
                            target: target.clone(),
                            delivered_at: None,
                        },
                    );
                }
                let cmd = Command {
                    offset,
                    command_id,
                    target,
                    created_at,
                    decision,
                };
                if part.recover_to.is_some() {
                    part.collected.push(cmd);
                } else {
                    self.start(partition, false, cmd);
                }
            }
            Ok(Record::Outcome(o)) => {
                part.remembered
                    .push_back((offset, o.finished_at.0.min(now)));
                if o.status == OutcomeStatus::Delivered {
                    if let Some(c) = part.to_confirm.get_mut(&o.command_id) {
                        c.delivered_at = Some(o.finished_at);
                    }
                } else {
                    part.to_confirm.remove(&o.command_id);
                }
                self.known
                    .entry(o.command_id)
                    .and_modify(|k| {
                        k.finished = true;
                        k.at = now;
                    })
                    .or_insert(Known {
                        finished: true,
                        commanded: false,
                        at: now,
                    });
            }
            Ok(Record::Confirmation(c)) => {
                part.to_confirm.remove(&c.command_id);
            }
            Err(e) => {
                tracing::warn!(partition, offset, error = %crate::text::escape_control(&e.to_string()), "unreadable record on the commands topic; skipped");
            }
        }
        self.recovered(partition);
    }

    /// Once a recovering partition is read to the end it had at start: start what it collected, and watch again
    /// the revocations a previous run delivered that still await their vendor's confirmation.
    fn recovered(&mut self, partition: i32) {
        let Some(part) = self.parts.get_mut(&partition) else {
            return;
        };
        if part.recover_to.is_none_or(|end| part.next < end) {
            return;
        }
        part.recover_to = None;
        let collected = std::mem::take(&mut part.collected);
        let to_confirm = std::mem::take(&mut part.to_confirm);
        let before = self.prog.resumed;
        for cmd in collected {
            self.start(partition, true, cmd);
        }
        if self.prog.resumed > before {
            tracing::warn!(
                partition,
                commands = self.prog.resumed - before,
                "resumed commands a previous run left without an outcome"
            );
        }
        for (id, u) in to_confirm {
            let (Some(at), Some((vendor, within))) =
                (u.delivered_at, self.dispatcher.confirmation_of(&u.target))
            else {
                continue;
            };
            self.prog.awaiting_confirmation += 1;
            self.prog.confirmations_resumed += 1;
            if let Some(c) = self.confirmer.expect(Pending::new(
                &id,
                &u.target,
                &u.decision,
                vendor,
                within,
                at,
            )) {
                settle_confirmation(&self.ctx, &mut self.tasks, &mut self.prog, c, None);
            }
        }
    }

    /// A command's task finished: its partition may commit past it, and a delivered revocation of a confirmed
    /// target is watched.
    fn on_finished(&mut self, f: Finished) {
        if let Some(p) = self.finish(f) {
            self.prog.awaiting_confirmation += 1;
            if let Some(c) = self.confirmer.expect(p) {
                settle_confirmation(&self.ctx, &mut self.tasks, &mut self.prog, c, None);
            }
        }
    }

    /// An ending in a vendor's log: the revocations it confirms are settled.
    fn on_ended(&mut self, e: Ended) {
        for c in self.confirmer.observe(e) {
            settle_confirmation(&self.ctx, &mut self.tasks, &mut self.prog, c, None);
        }
    }

    /// The tick: revocations past their confirmation window raise an alert; finished commands older than
    /// `remember_secs` are forgotten; returns the offsets each partition may now commit.
    fn on_tick(&mut self) -> Result<TopicPartitionList, KafkaError> {
        let now = self.dispatcher.now();
        for p in self.confirmer.expire(now) {
            tracing::error!(command = %crate::text::escape_control(&p.command_id), target = %crate::text::escape_control(&p.target), within_secs = p.within_secs, "revocation not confirmed by the vendor's log in time");
            let c = Confirmation::unconfirmed(&p);
            let alert = confirm::unconfirmed_alert(&p, now);
            settle_confirmation(&self.ctx, &mut self.tasks, &mut self.prog, c, Some(alert));
        }
        let horizon = now.0 - self.remember_ms;
        self.known.retain(|_, k| !k.finished || k.at >= horizon);
        let mut tpl = TopicPartitionList::new();
        for (p, part) in self.parts.iter_mut() {
            while part.remembered.front().is_some_and(|(_, t)| *t < horizon) {
                part.remembered.pop_front();
            }
            let o = part.commit_offset();
            if o > part.committed {
                tpl.add_partition_offset(&self.topic, *p, Offset::Offset(o))?;
                part.committed = o;
            }
        }
        Ok(tpl)
    }

    /// The end: tasks still running are stopped (their commands are resumed at the next start); returns the
    /// offsets each partition may commit.
    fn on_shutdown(&mut self) -> Result<TopicPartitionList, KafkaError> {
        self.tasks.abort_all();
        let mut tpl = TopicPartitionList::new();
        for (p, part) in self.parts.iter() {
            let o = part.commit_offset();
            if o > part.committed {
                tpl.add_partition_offset(&self.topic, *p, Offset::Offset(o))?;
            }
        }
        Ok(tpl)
    }

    /// Account for a finished task; returns the revocation to watch, if any.
    fn finish(&mut self, f: Finished) -> Option<Pending> {
        if f.recorded {
            if let Some(part) = self.parts.get_mut(&f.partition) {
                part.pending.remove(&f.offset);
            }
            let now = self.dispatcher.now().0;
            if let Some(k) = self.known.get_mut(&f.command_id) {
                k.finished = true;
                k.at = now;
            }
        }
        self.prog.in_flight = self.prog.in_flight.saturating_sub(1);
        self.prog.settled += 1;
        f.pending
    }
}

/// What a command's task needs.
struct TaskCtx {
    dispatcher: Dispatcher,
    producer: FutureProducer,
    topic: String,
    dead_letter_topic: String,
    decisions_topic: String,
    /// The evidence store's `commands` table (outcomes and confirmations), when one is configured.
    evidence: Option<crate::evidence::CommandSink>,
}

/// Record a confirmation (and, for an unconfirmed revocation, its alert decision) without holding up the loop.
fn settle_confirmation(
    ctx: &Arc<TaskCtx>,
    tasks: &mut JoinSet<()>,
    prog: &mut Progress,
    c: Confirmation,
    alert: Option<Decision>,
) {
    prog.awaiting_confirmation = prog.awaiting_confirmation.saturating_sub(1);
    match c.status {
        confirm::ConfirmStatus::Confirmed => prog.confirmed += 1,
        confirm::ConfirmStatus::Unconfirmed => prog.unconfirmed += 1,
    }
    if let Some(e) = &ctx.evidence {
        e.write(vec![confirmation_row(&c)]);
    }
    let ctx = ctx.clone();
    tasks.spawn(async move {
        if let Some(a) = alert {
            match serde_json::to_vec(&a) {
                Ok(body) => {
                    if let Err(e) = produce(&ctx.producer, &ctx.decisions_topic, &a.decision_id, &body, None).await {
                        tracing::error!(decision = %a.decision_id, error = %e, "cannot record an unconfirmed-revocation alert");
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot serialize an alert"),
            }
        }
        let key = c.command_id.clone();
        match serde_json::to_vec(&Record::Confirmation(c)) {
            Ok(body) => {
                if let Err(e) = produce(&ctx.producer, &ctx.topic, &key, &body, None).await {
                    tracing::error!(command = %key, error = %e, "cannot record a confirmation");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot serialize a confirmation"),
        }
    });
}

impl TaskCtx {
    /// Deliver, then record the outcome (and a dead letter when it failed). Returns whether the outcome is on
    /// the topic.
    async fn run(
        &self,
        target: &str,
        d: &Decision,
        created_at: WallTime,
        partition: i32,
        offset: i64,
    ) -> (bool, Option<Pending>) {
        let delivery = self.dispatcher.deliver(target, d, created_at).await;
        if let Some(e) = &self.evidence {
            e.write(vec![outcome_row(&delivery)]);
        }
        let outcome = Outcome::of(&delivery);
        let pending = match (outcome.status, self.dispatcher.confirmation_of(target)) {
            (OutcomeStatus::Delivered, Some((vendor, within))) => {
                Some(Pending::of(&delivery, d, vendor, within))
            }
            _ => None,
        };
        let rec = Record::Outcome(outcome.clone());
        let Ok(body) = serde_json::to_vec(&rec) else {
            return (false, pending);
        };
        if delivery.over_budget == Some(true) {
            let notice = crate::respond::budget_notice(&delivery, d);
            match serde_json::to_vec(&notice) {
                Ok(b) => {
                    if let Err(e) = produce(
                        &self.producer,
                        &self.decisions_topic,
                        &notice.decision_id,
                        &b,
                        None,
                    )
                    .await
                    {
                        tracing::error!(error = %e, "cannot record a budget notice");
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot serialize a budget notice"),
            }
        }
        if matches!(
            outcome.status,
            OutcomeStatus::Failed | OutcomeStatus::GivenUp
        ) {
            let (code, reason) = match outcome.status {
                OutcomeStatus::GivenUp => ("revocation_given_up", outcome.error.as_deref()),
                _ => ("revocation_failed", outcome.error.as_deref()),
            };
            let source = format!("{}/{partition}@{offset}", self.topic);
            let headers = crate::bus::dead_letter_headers(code, reason.unwrap_or(""), &source);
            if let Err(e) = produce(
                &self.producer,
                &self.dead_letter_topic,
                &outcome.command_id,
                &body,
                Some(headers),
            )
            .await
            {
                tracing::error!(command = %outcome.command_id, error = %e, "cannot dead-letter a failed command");
            }
        }
        for attempt in 1..=5u32 {
            match produce(
                &self.producer,
                &self.topic,
                &outcome.command_id,
                &body,
                None,
            )
            .await
            {
                Ok(()) => return (true, pending),
                Err(e) => {
                    tracing::warn!(command = %outcome.command_id, attempt, error = %e, "cannot record a command's outcome");
                    tokio::time::sleep(Duration::from_millis(500 * attempt as u64)).await;
                }
            }
        }
        tracing::error!(command = %outcome.command_id, "outcome not recorded; the command is resumed at the next start");
        (false, pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_commits_only_past_what_it_still_needs() {
        let mut p = Part {
            next: 10,
            ..Default::default()
        };
        assert_eq!(p.commit_offset(), 10);
        p.pending.insert(4);
        p.pending.insert(7);
        assert_eq!(p.commit_offset(), 4);
        p.remembered.push_back((2, 0));
        assert_eq!(p.commit_offset(), 2);
        p.remembered.clear();
        p.pending.remove(&4);
        assert_eq!(p.commit_offset(), 7);
    }
}
