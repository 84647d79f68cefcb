//! The `findings`, `decisions` and `commands` tables' rows: Arrow builders filled on the pipeline's thread (and,
//! for commands, by the respond stage).
//!
//! In: [`Finding`]s, [`Decision`]s and [`CommandRow`]s. Out: their [`RecordBatch`]es. State: the builders' rows
//! since the last take.

use super::*;

/// Builders of the `findings` table.
pub struct FindingRows {
    time: TimestampMillisecondBuilder,
    detector: StringBuilder,
    score: Float64Builder,
    reason: StringBuilder,
    evidence: ListBuilder<StringBuilder>,
    s: [StringBuilder; 6],
    backed: BooleanBuilder,
    rows: usize,
}

impl Default for FindingRows {
    fn default() -> Self {
        FindingRows {
            time: utc(),
            detector: StringBuilder::new(),
            score: Float64Builder::new(),
            reason: StringBuilder::new(),
            evidence: ListBuilder::new(StringBuilder::new()),
            s: Default::default(),
            backed: BooleanBuilder::new(),
            rows: 0,
        }
    }
}

impl FindingRows {
    pub fn len(&self) -> usize {
        self.rows
    }
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }
    pub fn push(&mut self, f: &Finding) {
        let sub = &f.subject;
        self.time.append_value(clamp(f.event_time));
        self.detector.append_value(f.detector);
        self.score.append_value(f.score);
        self.reason
            .append_value(crate::state::bounded_to(&f.reason, MAX_VALUE_BYTES));
        strs(&mut self.evidence, f.evidence.iter().map(String::as_str));
        for (b, v) in self.s.iter_mut().zip([
            Some(family_str(f.family)),
            sub.principal.as_deref(),
            Some(kind_str(sub.principal_kind)),
            sub.token_id.as_deref(),
            sub.session_id.as_deref(),
            sub.job_id.as_deref(),
        ]) {
            opt(b, v);
        }
        self.backed.append_value(sub.backed);
        self.rows += 1;
    }
    pub fn take(&mut self) -> Result<RecordBatch, ArrowError> {
        let [fam, principal, kind, token, session, job] = &mut self.s;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish()),
            Arc::new(self.detector.finish()),
            Arc::new(self.score.finish()),
            Arc::new(self.reason.finish()),
            Arc::new(self.evidence.finish()),
            Arc::new(fam.finish()),
            Arc::new(principal.finish()),
            Arc::new(kind.finish()),
            Arc::new(token.finish()),
            Arc::new(session.finish()),
            Arc::new(job.finish()),
            Arc::new(self.backed.finish()),
        ];
        self.rows = 0;
        RecordBatch::try_new(TableKind::Findings.schema(), cols)
    }
}

/// Builders of the `decisions` table.
pub struct DecisionRows {
    id: StringBuilder,
    times: [TimestampMillisecondBuilder; 2],
    s: [StringBuilder; 7],
    score: Float64Builder,
    detectors: ListBuilder<StringBuilder>,
    evidence: ListBuilder<StringBuilder>,
    guardrail: StringBuilder,
    shadow: BooleanBuilder,
    record: StringBuilder,
    rows: usize,
}

impl Default for DecisionRows {
    fn default() -> Self {
        DecisionRows {
            id: StringBuilder::new(),
            times: [utc(), utc()],
            s: Default::default(),
            score: Float64Builder::new(),
            detectors: ListBuilder::new(StringBuilder::new()),
            evidence: ListBuilder::new(StringBuilder::new()),
            guardrail: StringBuilder::new(),
            shadow: BooleanBuilder::new(),
            record: StringBuilder::new(),
            rows: 0,
        }
    }
}

impl DecisionRows {
    pub fn len(&self) -> usize {
        self.rows
    }
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }
    pub fn push(&mut self, d: &Decision) -> Result<(), serde_json::Error> {
        let record = serde_json::to_string(d)?;
        opt(&mut self.id, Some(&d.decision_id));
        self.times[0].append_value(clamp(d.event_time));
        self.times[1].append_value(clamp(d.decided_at));
        for (b, v) in self.s.iter_mut().zip([
            Some(d.action.as_str()),
            d.principal.as_deref(),
            d.principal_id.as_deref(),
            Some(kind_str(d.principal_kind)),
            d.token_id.as_deref(),
            d.session_id.as_deref(),
            d.job_id.as_deref(),
        ]) {
            opt(b, v);
        }
        self.score.append_value(d.score);
        strs(
            &mut self.detectors,
            d.findings.iter().map(|f| f.detector.as_str()),
        );
        strs(&mut self.evidence, d.evidence.iter().map(String::as_str));
        opt(&mut self.guardrail, d.guardrail.as_deref());
        self.shadow.append_value(d.shadow);
        self.record.append_value(record);
        self.rows += 1;
        Ok(())
    }
    pub fn take(&mut self) -> Result<RecordBatch, ArrowError> {
        let [action, principal, pid, kind, token, session, job] = &mut self.s;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            Arc::new(self.times[0].finish()),
            Arc::new(self.times[1].finish()),
            Arc::new(action.finish()),
            Arc::new(principal.finish()),
            Arc::new(pid.finish()),
            Arc::new(kind.finish()),
            Arc::new(token.finish()),
            Arc::new(session.finish()),
            Arc::new(job.finish()),
            Arc::new(self.score.finish()),
            Arc::new(self.detectors.finish()),
            Arc::new(self.evidence.finish()),
            Arc::new(self.guardrail.finish()),
            Arc::new(self.shadow.finish()),
            Arc::new(self.record.finish()),
        ];
        self.rows = 0;
        RecordBatch::try_new(TableKind::Decisions.schema(), cols)
    }
}

/// One row of the `commands` table.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CommandRow {
    pub at: Ts,
    pub kind: &'static str,
    pub command_id: String,
    pub decision_id: String,
    pub target: String,
    pub action: Option<String>,
    pub principal: Option<String>,
    pub status: String,
    pub http_status: Option<u32>,
    pub attempts: Option<u32>,
    pub error: Option<String>,
    pub delivered_at: Option<Ts>,
    pub confirmed_at: Option<Ts>,
    pub seconds_to_confirm: Option<f64>,
    pub confirming_event_id: Option<String>,
}

/// The `commands` rows as one batch.
pub fn command_batch(rows: &[CommandRow]) -> Result<RecordBatch, ArrowError> {
    let mut at = utc();
    let mut s: [StringBuilder; 8] = Default::default();
    let mut nums = [UInt32Builder::new(), UInt32Builder::new()];
    let mut times = [utc(), utc()];
    let mut secs = Float64Builder::new();
    let mut confirming = StringBuilder::new();
    for r in rows {
        at.append_value(clamp(r.at));
        for (b, v) in s.iter_mut().zip([
            Some(r.kind),
            Some(r.command_id.as_str()),
            Some(r.decision_id.as_str()),
            Some(r.target.as_str()),
            r.action.as_deref(),
            r.principal.as_deref(),
            Some(r.status.as_str()),
            r.error.as_deref(),
        ]) {
            opt(b, v);
        }
        nums[0].append_option(r.http_status);
        nums[1].append_option(r.attempts);
        times[0].append_option(r.delivered_at.map(clamp));
        times[1].append_option(r.confirmed_at.map(clamp));
        secs.append_option(r.seconds_to_confirm);
        opt(&mut confirming, r.confirming_event_id.as_deref());
    }
    let [kind, command_id, decision_id, target, action, principal, status, error] = &mut s;
    let cols: Vec<ArrayRef> = vec![
        Arc::new(at.finish()),
        Arc::new(kind.finish()),
        Arc::new(command_id.finish()),
        Arc::new(decision_id.finish()),
        Arc::new(target.finish()),
        Arc::new(action.finish()),
        Arc::new(principal.finish()),
        Arc::new(status.finish()),
        Arc::new(nums[0].finish()),
        Arc::new(nums[1].finish()),
        Arc::new(error.finish()),
        Arc::new(times[0].finish()),
        Arc::new(times[1].finish()),
        Arc::new(secs.finish()),
        Arc::new(confirming.finish()),
    ];
    RecordBatch::try_new(TableKind::Commands.schema(), cols)
}
