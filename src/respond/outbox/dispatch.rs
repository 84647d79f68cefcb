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
    pub(super) collected: Vec<(i64, String, String, Ts, Decision)>,
    /// While recovering: delivered commands of confirmed targets whose confirmation record is not (yet) seen,
    /// with their decision, target and delivery time (once the outcome is seen).
    pub(super) to_confirm: HashMap<String, (Decision, String, Option<Ts>)>,
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

/// Consume the commands topic and carry the commands out, until `shutdown`. `progress` is updated as commands
/// settle.
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

    let mut known: HashMap<String, Known> = HashMap::new();
    let mut prog = Progress::default();
    let mut tasks = JoinSet::new();
    let (fin_tx, mut fin_rx) = mpsc::unbounded_channel::<Finished>();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let remember_ms = cfg.remember_secs as i64 * 1000;
    let ctx = Arc::new(TaskCtx {
        dispatcher: dispatcher.clone(),
        producer: producer.clone(),
        topic: topic.clone(),
        dead_letter_topic: k.dead_letter_topic.clone(),
        decisions_topic: k.decisions_topic.clone(),
        evidence,
    });
    let mut confirmer = Confirmer::default();

    // Start (or skip as a duplicate) one command.
    let start = |tasks: &mut JoinSet<()>,
                 known: &mut HashMap<String, Known>,
                 prog: &mut Progress,
                 part: &mut Part,
                 partition: i32,
                 resuming: bool,
                 (offset, id, target, created_at, decision): (
        i64,
        String,
        String,
        Ts,
        Decision,
    )| {
        let now = dispatcher.now().0;
        let k = known.entry(id.clone()).or_insert(Known {
            finished: false,
            commanded: false,
            at: now,
        });
        k.at = now;
        if k.commanded {
            prog.duplicates += 1;
            prog.settled += 1;
            tracing::debug!(command = %crate::text::escape_control(&id), "command already seen; not sent again");
            return;
        }
        k.commanded = true;
        if k.finished {
            prog.settled += 1; // its outcome is on the topic: done before this start
            return;
        }
        if resuming {
            prog.resumed += 1;
        }
        part.pending.insert(offset);
        prog.in_flight += 1;
        let ctx = ctx.clone();
        let fin = fin_tx.clone();
        tasks.spawn(async move {
            let (recorded, pending) = ctx
                .run(&target, &decision, created_at, partition, offset)
                .await;
            let _ = fin.send(Finished {
                partition,
                offset,
                command_id: id,
                recorded,
                pending,
            });
        });
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
            if ends.iter().all(|(p, end)| {
                parts
                    .get(p)
                    .is_none_or(|x| x.next >= *end && x.recover_to.is_none())
            }) {
                break;
            }
        }
        tokio::select! {
            m = consumer.recv() => {
                let m = match m {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, "commands topic consume error");
                        continue;
                    }
                };
                let (partition, offset) = (m.partition(), m.offset());
                let Some(part) = parts.get_mut(&partition) else { continue };
                part.next = offset + 1;
                let now = dispatcher.now().0;
                match serde_json::from_slice::<Record>(m.payload().unwrap_or(&[])) {
                    Ok(Record::Command { command_id, target, created_at, decision }) => {
                        let decision = *decision;
                        part.remembered.push_back((offset, created_at.0.min(now)));
                        if part.recover_to.is_some() && dispatcher.confirmation_of(&target).is_some() {
                            part.to_confirm.insert(command_id.clone(), (decision.clone(), target.clone(), None));
                        }
                        let cmd = (offset, command_id, target, created_at, decision);
                        if part.recover_to.is_some() {
                            part.collected.push(cmd);
                        } else {
                            start(&mut tasks, &mut known, &mut prog, part, partition, false, cmd);
                        }
                    }
                    Ok(Record::Outcome(o)) => {
                        part.remembered.push_back((offset, o.finished_at.0.min(now)));
                        if o.status == OutcomeStatus::Delivered {
                            if let Some(c) = part.to_confirm.get_mut(&o.command_id) {
                                c.2 = Some(o.finished_at);
                            }
                        } else {
                            part.to_confirm.remove(&o.command_id);
                        }
                        known
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
                if part.recover_to.is_some_and(|end| part.next >= end) {
                    part.recover_to = None;
                    let collected = std::mem::take(&mut part.collected);
                    let before = prog.resumed;
                    for cmd in collected {
                        start(&mut tasks, &mut known, &mut prog, part, partition, true, cmd);
                    }
                    if prog.resumed > before {
                        tracing::warn!(partition, commands = prog.resumed - before, "resumed commands a previous run left without an outcome");
                    }
                    // revocations delivered by a previous run and still awaiting their vendor's confirmation
                    for (id, (d, target, at)) in std::mem::take(&mut part.to_confirm) {
                        let (Some(at), Some((vendor, within))) = (at, dispatcher.confirmation_of(&target)) else {
                            continue;
                        };
                        prog.awaiting_confirmation += 1;
                        prog.confirmations_resumed += 1;
                        if let Some(c) = confirmer.expect(Pending::new(&id, &target, &d, vendor, within, at)) {
                            settle_confirmation(&ctx, &mut tasks, &mut prog, c, None);
                        }
                    }
                }
                progress.send_replace(prog);
            }
            Some(f) = fin_rx.recv() => {
                if let Some(p) = finish(&mut parts, &mut known, &mut prog, f, dispatcher.now()) {
                    prog.awaiting_confirmation += 1;
                    if let Some(c) = confirmer.expect(p) {
                        settle_confirmation(&ctx, &mut tasks, &mut prog, c, None);
                    }
                }
                progress.send_replace(prog);
            }
            Some(e) = ended_rx.recv() => {
                for c in confirmer.observe(e) {
                    settle_confirmation(&ctx, &mut tasks, &mut prog, c, None);
                }
                progress.send_replace(prog);
            }
            _ = tick.tick() => {
                for p in confirmer.expire(dispatcher.now()) {
                    tracing::error!(command = %crate::text::escape_control(&p.command_id), target = %crate::text::escape_control(&p.target), within_secs = p.within_secs, "revocation not confirmed by the vendor's log in time");
                    let c = Confirmation::unconfirmed(&p);
                    settle_confirmation(&ctx, &mut tasks, &mut prog, c, Some(confirm::unconfirmed_alert(&p, dispatcher.now())));
                }
                progress.send_replace(prog);
                let horizon = dispatcher.now().0 - remember_ms;
                known.retain(|_, k| !k.finished || k.at >= horizon);
                let mut tpl = TopicPartitionList::new();
                for (p, part) in parts.iter_mut() {
                    while part.remembered.front().is_some_and(|(_, t)| *t < horizon) {
                        part.remembered.pop_front();
                    }
                    let o = part.commit_offset();
                    if o > part.committed {
                        tpl.add_partition_offset(&topic, *p, Offset::Offset(o))?;
                        part.committed = o;
                    }
                }
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
                    for p in parts.keys() {
                        let (_, high) = consumer.fetch_watermarks(&topic, *p, timeout)?;
                        ends.insert(*p, high);
                    }
                    stop_at = Some(ends);
                }
            }
            _ = &mut drain, if stop_at.is_some() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }

    // Shutdown: wait (within drain_secs) for commands in flight; whatever is left is resumed at the next start.
    while prog.in_flight > 0 {
        tokio::select! {
            Some(f) = fin_rx.recv() => {
                finish(&mut parts, &mut known, &mut prog, f, dispatcher.now());
            }
            _ = &mut drain => {
                tracing::warn!(in_flight = prog.in_flight, "shutdown: commands still in flight are resumed at the next start");
                break;
            }
        }
    }
    progress.send_replace(prog);
    tasks.abort_all();
    let mut tpl = TopicPartitionList::new();
    for (p, part) in parts.iter() {
        let o = part.commit_offset();
        if o > part.committed {
            tpl.add_partition_offset(&topic, *p, Offset::Offset(o))?;
        }
    }
    if tpl.count() > 0 {
        consumer.commit(&tpl, CommitMode::Sync)?;
    }
    Ok(())
}

fn finish(
    parts: &mut HashMap<i32, Part>,
    known: &mut HashMap<String, Known>,
    prog: &mut Progress,
    f: Finished,
    now: Ts,
) -> Option<Pending> {
    if f.recorded {
        if let Some(part) = parts.get_mut(&f.partition) {
            part.pending.remove(&f.offset);
        }
        if let Some(k) = known.get_mut(&f.command_id) {
            k.finished = true;
            k.at = now.0;
        }
    }
    prog.in_flight = prog.in_flight.saturating_sub(1);
    prog.settled += 1;
    f.pending
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
        created_at: Ts,
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
