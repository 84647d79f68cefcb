//! `quench session`: the audit trail of one session (or of one principal) from the evidence store, from login to
//! revocation and its confirmation.
//!
//! In: the store's directory, a session, token or job id or a principal, and a time range. Out: a [`Trail`]:
//! every stored event of the subject and every event a decision about it cites as evidence, the findings and
//! decisions about it, and the outcome and confirmation of each command those decisions caused; printed for a
//! person ([`render`]) or as JSON to attach to a ticket. State: none.

use super::AppError;
use crate::decide::Decision;
use crate::event::{PrincipalKind, SessionEvent, Ts};
use crate::evidence::read;
use crate::evidence::tables::{self, Cols, TableKind};
use crate::text::escape_control;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::path::Path;

/// Whose trail.
#[derive(Debug, Clone)]
pub enum Who {
    /// A session, root session, token or agent-job id.
    Session(String),
    /// A principal: e-mail or id (case-insensitive).
    Principal(String),
}

/// A finding as stored.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StoredFinding {
    pub event_time: Ts,
    pub detector: String,
    pub score: f64,
    pub reason: String,
    pub evidence: Vec<String>,
    pub principal: Option<String>,
    pub session_id: Option<String>,
    pub token_id: Option<String>,
    pub job_id: Option<String>,
}

/// The trail.
#[derive(Debug, Serialize)]
pub struct Trail {
    pub subject: String,
    /// Who the events say acted: principals, principal ids, tokens, sessions, devices, addresses, user agents.
    pub identities: BTreeMap<&'static str, BTreeSet<String>>,
    /// Event counts by category (`data_read`, `export` …).
    pub activity: BTreeMap<String, u64>,
    pub events: Vec<SessionEvent<'static>>,
    pub findings: Vec<StoredFinding>,
    pub decisions: Vec<Decision>,
    pub commands: Vec<tables::CommandRow>,
    /// Evidence ids a decision cites that the store does not hold (older than its retention, or never stored).
    pub missing_evidence: Vec<String>,
}

fn matches_event(c: &Cols<'_>, i: usize, who: &Who) -> bool {
    match who {
        Who::Session(id) => ["session_id", "root_session_id", "token_id", "job_id"]
            .iter()
            .any(|k| c.str(k, i) == Some(id.as_str())),
        // the principal's key is namespaced (`agent:…`, `claimed:…`); a raw id counts only for a person, so an
        // agent naming itself with someone's id does not join that person's trail
        Who::Principal(p) => {
            let same = |k: &str| c.str(k, i).is_some_and(|v| v.eq_ignore_ascii_case(p));
            same("principal")
                || (c.str("principal_kind", i) == Some("human")
                    && (same("principal_id") || same("principal_email")))
        }
    }
}

fn matches_decision(d: &Decision, who: &Who) -> bool {
    match who {
        Who::Session(id) => [&d.session_id, &d.token_id, &d.job_id]
            .iter()
            .any(|v| v.as_deref() == Some(id.as_str())),
        Who::Principal(p) => {
            let same = |v: &Option<String>| v.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(p));
            same(&d.principal)
                || (d.principal_kind == PrincipalKind::Human && same(&d.principal_id))
        }
    }
}

/// Whether a stored event is about the decision's subject. Evidence is looked up by event id, and some sources
/// let the client choose it (a span id): an event counts as a decision's evidence only if it is also about the
/// decision's principal, token, session or job.
pub fn belongs(ev: &SessionEvent<'_>, d: &Decision) -> bool {
    let same = |a: Option<&str>, b: &Option<String>| a.is_some() && a == b.as_deref();
    same(ev.principal.key(), &d.principal)
        || (ev.principal.kind == d.principal_kind
            && same(ev.principal.id.as_deref(), &d.principal_id))
        || same(ev.session.token_id.as_deref(), &d.token_id)
        || same(ev.session.session_id.as_deref(), &d.session_id)
        || same(ev.session.job_id.as_deref(), &d.job_id)
}

/// Every stored decision whose event time is in `[since, until)`, each id once (a replay run twice into one
/// store stores its decisions twice; they are the same decision).
pub fn decisions(
    dir: &Path,
    since: Option<Ts>,
    until: Option<Ts>,
) -> Result<Vec<Decision>, AppError> {
    let mut out = Vec::new();
    let mut ids = HashSet::new();
    for f in read::files(dir, TableKind::Decisions, since, until).map_err(store_err)? {
        for b in read::batches_of(&f).map_err(store_err)? {
            let c = Cols::new(&b);
            for d in (0..b.num_rows()).filter_map(|i| tables::decision_of(&c, i)) {
                let inside = since.is_none_or(|s| d.event_time >= s)
                    && until.is_none_or(|u| d.event_time < u);
                if inside && ids.insert(d.decision_id.clone()) {
                    out.push(d);
                }
            }
        }
    }
    out.sort_by(|a, b| (a.decided_at, &a.decision_id).cmp(&(b.decided_at, &b.decision_id)));
    Ok(out)
}

pub(crate) fn store_err(e: crate::evidence::EvidenceError) -> AppError {
    AppError::Scenario(e.to_string())
}

fn finding_of(c: &Cols<'_>, i: usize) -> Option<StoredFinding> {
    let s = |k: &str| c.str(k, i).map(String::from);
    Some(StoredFinding {
        event_time: c.ts("event_time", i)?,
        detector: s("detector")?,
        score: c.f64("score", i)?,
        reason: s("reason")?,
        evidence: c.list("evidence", i),
        principal: s("principal"),
        session_id: s("session_id"),
        token_id: s("token_id"),
        job_id: s("job_id"),
    })
}

/// Add the stored events of the hours in `[since, until)` that `wanted` picks (given the row and the event) and
/// `seen` does not yet hold; `maybe` looks at the row's columns first, so that only its rows are rebuilt as
/// events. A row is known by its id, time and principal: two different events may share an id (a client-chosen
/// one), and the same event stored twice is shown once.
fn scan_events(
    dir: &Path,
    since: Option<Ts>,
    until: Option<Ts>,
    seen: &mut HashSet<(String, Ts, Option<String>)>,
    events: &mut Vec<SessionEvent<'static>>,
    maybe: impl Fn(&Cols<'_>, usize) -> bool,
    wanted: impl Fn(&Cols<'_>, usize, &SessionEvent<'_>) -> bool,
) -> Result<(), AppError> {
    for f in read::files(dir, TableKind::Events, since, until).map_err(store_err)? {
        for b in read::batches_of(&f).map_err(store_err)? {
            let c = Cols::new(&b);
            for i in 0..b.num_rows() {
                if !maybe(&c, i) {
                    continue;
                }
                let Some(ev) = tables::event_of(&c, i) else {
                    continue;
                };
                if !wanted(&c, i, &ev) {
                    continue;
                }
                let key = (
                    ev.event_id.to_string(),
                    ev.event_time,
                    ev.principal.key().map(String::from),
                );
                if seen.insert(key) {
                    events.push(ev);
                }
            }
        }
    }
    Ok(())
}

/// Build the trail of `who` in `[since, until)`.
pub fn trail(
    dir: &Path,
    who: &Who,
    since: Option<Ts>,
    until: Option<Ts>,
) -> Result<Trail, AppError> {
    if !TableKind::ALL.iter().any(|t| dir.join(t.name()).is_dir()) {
        return Err(AppError::Scenario(format!(
            "{} is not an evidence store (set `[evidence] dir` or --store)",
            dir.display()
        )));
    }
    let decisions: Vec<Decision> = decisions(dir, since, until)?
        .into_iter()
        .filter(|d| matches_decision(d, who))
        .collect();
    let cited: HashSet<&str> = decisions
        .iter()
        .flat_map(|d| d.evidence.iter().map(String::as_str))
        .collect();
    // an event a decision cites, and about that decision's subject
    let evidence_of = |ev: &SessionEvent<'_>| {
        cited.contains(ev.event_id.as_str())
            && decisions
                .iter()
                .any(|d| d.evidence.iter().any(|e| e == ev.event_id.as_str()) && belongs(ev, d))
    };
    let mut events = Vec::new();
    let mut seen = HashSet::new();
    let cited_row =
        |c: &Cols<'_>, i: usize| c.str("event_id", i).is_some_and(|id| cited.contains(id));
    let maybe = |c: &Cols<'_>, i: usize| cited_row(c, i) || matches_event(c, i, who);
    scan_events(
        dir,
        since,
        until,
        &mut seen,
        &mut events,
        maybe,
        |c, i, ev| {
            let t = ev.event_time;
            let in_range = since.is_none_or(|s| t >= s) && until.is_none_or(|u| t < u);
            (in_range && matches_event(c, i, who)) || evidence_of(ev)
        },
    )?;
    let found = |events: &[SessionEvent<'_>], id: &str| {
        events
            .iter()
            .any(|e| e.event_id.as_str() == id && evidence_of(e))
    };
    // evidence from before the range (a baseline's first sighting): one more pass over the earlier hours
    if since.is_some() && cited.iter().any(|id| !found(&events, id)) {
        scan_events(
            dir,
            None,
            since,
            &mut seen,
            &mut events,
            cited_row,
            |_, _, ev| evidence_of(ev),
        )?;
    }
    // a person and an agent or service known by the same id (an agent may name itself with anything): the trail
    // is the person's; the other's is asked for by its job, token or session
    if let Who::Principal(_) = who {
        if events
            .iter()
            .any(|e| e.principal.kind == PrincipalKind::Human)
        {
            events.retain(|e| e.principal.kind == PrincipalKind::Human || evidence_of(e));
        }
    }
    events.sort_by_key(|e| e.event_time);
    let missing_evidence: Vec<String> = {
        let mut m: Vec<String> = cited
            .iter()
            .filter(|id| !found(&events, id))
            .map(|s| s.to_string())
            .collect();
        m.sort();
        m
    };
    let mut findings = Vec::new();
    for f in read::files(dir, TableKind::Findings, since, until).map_err(store_err)? {
        for b in read::batches_of(&f).map_err(store_err)? {
            let c = Cols::new(&b);
            for i in 0..b.num_rows() {
                let about = match who {
                    Who::Session(id) => ["session_id", "token_id", "job_id"]
                        .iter()
                        .any(|k| c.str(k, i) == Some(id.as_str())),
                    Who::Principal(p) => c
                        .str("principal", i)
                        .is_some_and(|v| v.eq_ignore_ascii_case(p)),
                };
                let t = c.ts("event_time", i).unwrap_or_default();
                let inside = since.is_none_or(|s| t >= s) && until.is_none_or(|u| t < u);
                if about && inside {
                    findings.extend(finding_of(&c, i));
                }
            }
        }
    }
    findings.sort_by_key(|f| f.event_time);
    let decided: HashSet<&str> = decisions.iter().map(|d| d.decision_id.as_str()).collect();
    let mut commands = Vec::new();
    for f in read::files(dir, TableKind::Commands, None, None).map_err(store_err)? {
        for b in read::batches_of(&f).map_err(store_err)? {
            let c = Cols::new(&b);
            for i in 0..b.num_rows() {
                if c.str("decision_id", i).is_some_and(|d| decided.contains(d)) {
                    commands.extend(tables::command_of(&c, i));
                }
            }
        }
    }
    commands.sort_by_key(|c| c.at);
    let mut identities: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    let mut activity: BTreeMap<String, u64> = BTreeMap::new();
    for e in &events {
        let mut add = |k: &'static str, v: Option<&str>| {
            if let Some(v) = v {
                identities.entry(k).or_default().insert(v.to_string());
            }
        };
        add("principal", e.principal.key());
        add("principal_id", e.principal.id.as_deref());
        add("token_id", e.session.token_id.as_deref());
        add("session_id", e.session.session_id.as_deref());
        add("device_id", e.network.device_id.as_deref());
        add("ip", e.network.ip.as_deref());
        add("user_agent", e.network.user_agent.as_deref());
        let cat = serde_json::to_value(e.category)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        *activity.entry(cat).or_default() += 1;
    }
    Ok(Trail {
        subject: match who {
            Who::Session(s) => format!("session {s}"),
            Who::Principal(p) => format!("principal {p}"),
        },
        identities,
        activity,
        events,
        findings,
        decisions,
        commands,
        missing_evidence,
    })
}

/// Write the stored decisions of `[since, until)` as OCSF Detection Findings (JSON Lines), each with the evidence
/// events the store holds. Returns how many.
pub fn ocsf(
    dir: &Path,
    since: Option<Ts>,
    until: Option<Ts>,
    out: &mut dyn std::io::Write,
) -> Result<usize, AppError> {
    let decided = decisions(dir, since, until)?;
    let cited: HashSet<&str> = decided
        .iter()
        .flat_map(|d| d.evidence.iter().map(String::as_str))
        .collect();
    let mut events = Vec::new();
    let mut seen = HashSet::new();
    let cited_row =
        |c: &Cols<'_>, i: usize| c.str("event_id", i).is_some_and(|id| cited.contains(id));
    scan_events(
        dir,
        None,
        until,
        &mut seen,
        &mut events,
        cited_row,
        |_, _, _| true,
    )?;
    let io = |source| AppError::Io {
        path: "(output)".into(),
        source,
    };
    for d in &decided {
        let own: Vec<SessionEvent<'static>> =
            events.iter().filter(|e| belongs(e, d)).cloned().collect();
        let f = crate::decide::ocsf::detection_finding(d, &own);
        serde_json::to_writer(&mut *out, &f).map_err(|e| io(e.into()))?;
        out.write_all(b"\n").map_err(io)?;
    }
    Ok(decided.len())
}

/// The trail for a person: who, what, then one time-ordered list of events, findings, decisions and commands.
pub fn render(t: &Trail) -> String {
    let mut s = format!("audit trail of {}\n", escape_control(&t.subject));
    for (k, vs) in &t.identities {
        let list: Vec<String> = vs
            .iter()
            .take(8)
            .map(|v| escape_control(v).into_owned())
            .collect();
        let more = if vs.len() > 8 {
            format!(" (+{} more)", vs.len() - 8)
        } else {
            String::new()
        };
        let _ = writeln!(s, "  {k:<13} {}{more}", list.join(", "));
    }
    let act: Vec<String> = t.activity.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let _ = writeln!(s, "  activity      {}", act.join(", "));
    let evidence: HashSet<&str> = t
        .decisions
        .iter()
        .flat_map(|d| d.evidence.iter().map(String::as_str))
        .collect();
    let mut lines: Vec<(Ts, u8, String)> = Vec::new();
    for e in &t.events {
        let mark = if evidence.contains(e.event_id.as_str()) {
            "*"
        } else {
            " "
        };
        lines.push((
            e.event_time,
            0,
            format!(
                "{mark} event     {}  [{}]",
                escape_control(&super::explain::describe(e)),
                escape_control(&e.event_id)
            ),
        ));
    }
    for f in &t.findings {
        lines.push((
            f.event_time,
            1,
            format!(
                "  finding   {} {:.2}: {}",
                f.detector,
                f.score,
                escape_control(&f.reason)
            ),
        ));
    }
    for d in &t.decisions {
        lines.push((
            d.event_time,
            2,
            format!(
                "! decision  {} (score {:.2}{}{}) decided at {}  [{}]",
                d.action.as_str(),
                d.score,
                d.guardrail
                    .as_deref()
                    .map(|g| format!("; guardrail: {}", escape_control(g)))
                    .unwrap_or_default(),
                if d.shadow { "; shadow" } else { "" },
                d.decided_at.to_rfc3339(),
                escape_control(&d.decision_id)
            ),
        ));
    }
    for c in &t.commands {
        let what = match c.kind {
            "confirmation" => format!(
                "confirmation {} {}{}",
                escape_control(&c.target),
                c.status,
                c.seconds_to_confirm
                    .map(|s| format!(" {s:.1} s after delivery"))
                    .unwrap_or_default()
            ),
            _ => format!(
                "command   {} {} → {}{}",
                c.action.as_deref().unwrap_or("-"),
                escape_control(&c.target),
                c.status,
                c.http_status
                    .map(|h| format!(" (HTTP {h})"))
                    .unwrap_or_default()
            ),
        };
        lines.push((c.at, 3, format!("> {what}")));
    }
    lines.sort_by_key(|a| (a.0, a.1));
    let _ = writeln!(
        s,
        "\n{} events, {} findings, {} decisions, {} command records (* = evidence of a decision):",
        t.events.len(),
        t.findings.len(),
        t.decisions.len(),
        t.commands.len()
    );
    for (at, _, text) in lines {
        let _ = writeln!(s, "{} {text}", at.to_rfc3339());
    }
    if !t.missing_evidence.is_empty() {
        let _ = writeln!(
            s,
            "\nevidence cited but not in the store: {}",
            escape_control(&t.missing_evidence.join(", "))
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::replay;
    use crate::config::Config;

    fn agent_event(id: &str, agent: &str, job: &str, tool: &str, t: i64) -> SessionEvent<'static> {
        use crate::event::{Category, Family, Keys, PrincipalKind, SourceInfo, Text};
        let mut e = SessionEvent::new(
            SourceInfo {
                family: Family::Agent,
                vendor: "otel".into(),
                format: "otel_genai".into(),
            },
            Text::Owned(id.into()),
            Ts(t),
            Category::ToolCall,
        );
        e.principal.id = Some(Text::Owned(agent.into()));
        e.principal.kind = PrincipalKind::Agent;
        e.session.job_id = Some(Text::Owned(job.into()));
        e.session.vouched = Keys::JOB;
        e.resource.object_id = Some(Text::Owned(tool.into()));
        e
    }

    /// Found by an outside review: a forged span reusing the span id of a real decision's evidence (the agent
    /// chooses span ids), from another agent and earlier, took the real event's place in the trail and in the
    /// OCSF finding, and the real one was neither shown nor named as missing.
    #[test]
    fn a_forged_event_reusing_an_evidence_id_neither_replaces_nor_hides_the_real_one() {
        let dir = std::env::temp_dir().join(format!("quench-forged-id-{:x}", fastrand::u64(..)));
        let mut e = crate::evidence::Evidence::open(&Default::default(), &dir).unwrap();
        let t = 1_767_225_600_000;
        e.event(&agent_event(
            "trace:span1",
            "agent-001",
            "run-1",
            "calendar_list_events",
            t - 3 * 3_600_000,
        ));
        e.event(&agent_event(
            "trace:span1",
            "agent-000",
            "run-0",
            "netsuite_get_invoice",
            t,
        ));
        let d: Decision = serde_json::from_value(serde_json::json!({
            "decision_id": "d-agent-000", "decided_at": "2026-01-01T00:00:01Z", "event_time": "2026-01-01T00:00:00Z",
            "action": "revoke_token", "principal": "agent-000", "principal_id": "agent-000", "principal_kind": "agent",
            "token_id": null, "session_id": null, "job_id": "run-0", "score": 0.8,
            "findings": [{"detector": "data_domain", "score": 0.8, "reason": "billing"}], "evidence": ["trace:span1"],
        }))
        .unwrap();
        e.decision(&d);
        e.close(None).unwrap();
        for who in [
            Who::Session("run-0".into()),
            Who::Principal("agent-000".into()),
        ] {
            let tr = trail(&dir, &who, None, None).unwrap();
            let text = render(&tr);
            assert!(tr.missing_evidence.is_empty(), "{text}");
            assert!(text.contains("netsuite_get_invoice"), "{text}");
            assert!(!text.contains("calendar_list_events"), "{text}");
        }
        let mut out = Vec::new();
        ocsf(&dir, None, None, &mut out).unwrap();
        let f: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            f["evidences"][0]["resources"][0]["name"], "netsuite_get_invoice",
            "{f:#}"
        );
        let (_, rows) = crate::cli::explain::explain_from_store(&dir, "d-agent", 3600).unwrap();
        assert_eq!(rows.iter().filter(|r| r.evidence).count(), 1, "{rows:?}");
        assert!(
            rows.iter()
                .all(|r| !r.text.contains("calendar_list_events")),
            "{rows:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Found by an outside review: a cited id no longer in the store was printed raw in the "not in the store"
    /// line (an escape sequence and a forged line in a span id), and `--since` kept a decision from earlier in the
    /// same hour.
    #[test]
    fn a_missing_evidence_id_is_escaped_and_since_is_exact() {
        let dir = std::env::temp_dir().join(format!("quench-missing-{:x}", fastrand::u64(..)));
        let mut e = crate::evidence::Evidence::open(&Default::default(), &dir).unwrap();
        let d: Decision = serde_json::from_value(serde_json::json!({
            "decision_id": "d-1", "decided_at": "2026-01-01T00:18:01Z", "event_time": "2026-01-01T00:18:00Z",
            "action": "alert", "principal": "agent-000", "principal_id": "agent-000", "principal_kind": "agent",
            "token_id": null, "session_id": null, "job_id": "run-0", "score": 0.4,
            "findings": [{"detector": "tool_drift", "score": 0.4, "reason": "new tool"}],
            "evidence": ["\u{1b}]0;owned\u{7}\nfake line: all clear"],
        }))
        .unwrap();
        e.decision(&d);
        e.close(None).unwrap();
        let t = trail(&dir, &Who::Session("run-0".into()), None, None).unwrap();
        assert_eq!(t.missing_evidence.len(), 1);
        let text = render(&t);
        assert!(
            !text.contains('\u{1b}') && !text.contains("\nfake line"),
            "{text:?}"
        );
        let later = Ts::parse("2026-01-01T00:30:00Z");
        let t = trail(&dir, &Who::Session("run-0".into()), later, None).unwrap();
        assert!(t.decisions.is_empty(), "{}", render(&t));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Found by an outside review: an agent naming itself with a person's id joined that person's trail.
    #[test]
    fn an_agent_named_with_a_persons_id_is_not_in_the_persons_trail() {
        let dir =
            std::env::temp_dir().join(format!("quench-agent-as-person-{:x}", fastrand::u64(..)));
        let mut e = crate::evidence::Evidence::open(&Default::default(), &dir).unwrap();
        let t = 1_767_225_600_000;
        e.event(&agent_event(
            "a1",
            "00u43",
            "run-9",
            "gdrive_download_all",
            t,
        ));
        let mut person = agent_event("p1", "00u43", "-", "okta", t + 1);
        person.principal.kind = crate::event::PrincipalKind::Human;
        person.principal.email = Some("user0043@example.com".into());
        person.session.job_id = None;
        person.resource.object_id = Some("Okta Dashboard".into());
        e.event(&person);
        e.close(None).unwrap();
        for p in ["00u43", "user0043@example.com"] {
            let tr = trail(&dir, &Who::Principal(p.into()), None, None).unwrap();
            let text = render(&tr);
            assert!(text.contains("Okta Dashboard"), "{text}");
            assert!(!text.contains("gdrive_download_all"), "{text}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Found by an outside review: one unvouched line dated "now", held to the end of a replay, moved the clock
    /// to the present and retention deleted the whole (older) store.
    #[tokio::test]
    async fn a_line_dated_now_cannot_make_a_replay_expire_the_store() {
        let demo = format!(
            "{}/fixtures/scenarios/demo_day/events.jsonl",
            env!("CARGO_MANIFEST_DIR")
        );
        let dir = std::env::temp_dir().join(format!("quench-retention-{:x}", fastrand::u64(..)));
        let forged = dir.with_extension("jsonl");
        let now = crate::clock::WallTime::now().0 - 60_000;
        std::fs::write(
            &forged,
            format!(
                "{{\"client_ip\":\"41.184.0.9\",\"request\":{{\"headers\":{{\"user-agent\":\"curl/8.0\"}},\"method\":\"GET\",\"size\":1,\"uri\":\"/\"}},\"response\":{{\"size\":1,\"status\":404}},\"started_at\":{now},\"upstream_uri\":\"/\"}}\n"
            ),
        )
        .unwrap();
        let mut cfg = Config::default();
        cfg.evidence.dir = Some(dir.clone());
        cfg.evidence.retention_days = 1;
        let files = [demo, forged.display().to_string()];
        let r = replay(&cfg, &files, false, &mut std::io::sink())
            .await
            .unwrap();
        let stored: usize = crate::evidence::read::table(&dir, TableKind::Events, None)
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert!(
            stored as u64 + 2 >= r.stats.events,
            "{stored} of {} events kept",
            r.stats.events
        );
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(&forged);
    }

    #[tokio::test]
    async fn every_event_a_stored_decision_cites_is_in_its_subjects_trail() {
        let file = format!(
            "{}/fixtures/scenarios/demo_day/events.jsonl",
            env!("CARGO_MANIFEST_DIR")
        );
        let dir = std::env::temp_dir().join(format!("quench-trail-{:x}", fastrand::u64(..)));
        let mut cfg = Config::default();
        cfg.evidence.dir = Some(dir.clone());
        let r = replay(&cfg, &[file], false, &mut std::io::sink())
            .await
            .unwrap();
        assert!(r.decisions.len() >= 4);
        for d in &r.decisions {
            let who = match (&d.session_id, &d.job_id, &d.token_id, &d.principal) {
                (Some(s), _, _, _) | (None, Some(s), _, _) | (None, None, Some(s), _) => {
                    Who::Session(s.clone())
                }
                (None, None, None, Some(p)) => Who::Principal(p.clone()),
                _ => continue,
            };
            let t = trail(&dir, &who, None, None).unwrap();
            let text = render(&t);
            assert!(
                t.decisions.iter().any(|x| x.decision_id == d.decision_id),
                "{text}"
            );
            assert!(t.missing_evidence.is_empty(), "{text}");
            for e in &d.evidence {
                assert!(
                    t.events.iter().any(|ev| ev.event_id.as_str() == e),
                    "{e} missing from\n{text}"
                );
                assert!(
                    text.contains(&format!("[{e}]")),
                    "{e} not printed in\n{text}"
                );
            }
            // the events come out in time order, and each line of the trail names its time
            assert!(t
                .events
                .windows(2)
                .all(|w| w[0].event_time <= w[1].event_time));
        }
        // a trail since a time after the decision still names the evidence from before it
        let d = &r.decisions[0];
        let p = d.principal.clone().unwrap();
        let late = Ts(d.event_time.0 + 1);
        let t = trail(&dir, &Who::Principal(p), Some(late), None).unwrap();
        assert!(t
            .events
            .iter()
            .all(|e| e.event_time >= late || d.evidence.iter().any(|x| x == e.event_id.as_str())));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
