//! `quench explain`: the event timeline behind a decision.
//!
//! In: a decision id (or a unique prefix, as the demo prints it) and the raw events that produced it, or the
//! evidence store that kept them ([`explain_from_store`], which needs no replay). Out: the
//! decision with each finding's reason, then every event of its subject (principal, token, session or job) from
//! `window` before the first evidence event up to the decision, evidence marked. State: none.

use super::{replay, AppError};
use crate::config::Config;
use crate::config::ConfigError;
use crate::decide::Decision;
use crate::event::{Provenance, SessionEvent, Ts};
use crate::ingest::file::Lines;
use crate::normalize::{Context, Normalize};
use crate::text::escape_control;
use std::fmt::Write as _;

/// One line of the timeline.
#[derive(Debug, Clone)]
pub struct Row {
    pub time: Ts,
    pub event_id: String,
    pub evidence: bool,
    pub text: String,
}

/// One line describing an event.
pub fn describe(ev: &SessionEvent<'_>) -> String {
    let mut s = format!(
        "{:<16} {:<14} {}",
        ev.source.format.as_str(),
        serde_json::to_value(ev.category)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        ev.action.as_deref().unwrap_or("-")
    );
    let n = &ev.network;
    if let Some(ip) = &n.ip {
        let _ = write!(s, "  ip {ip}");
    }
    if let Some(g) = &n.geo {
        let _ = write!(
            s,
            "  {}{}",
            g.city.as_deref().unwrap_or(""),
            g.country
                .as_deref()
                .map(|c| format!(", {c}"))
                .unwrap_or_default()
        );
    }
    if let Some(a) = n.asn {
        let _ = write!(s, "  AS{a}");
    }
    if n.is_proxy == Some(true) {
        s.push_str("  proxy");
    }
    if let Some(d) = &n.device_id {
        let _ = write!(s, "  device {d}");
    }
    if let Some(ua) = &n.user_agent {
        let short: String = ua.chars().take(40).collect();
        let _ = write!(s, "  ua {short}");
    }
    let r = &ev.resource;
    if let Some(o) = r.object_id.as_deref().or(r.app.as_deref()) {
        let _ = write!(s, "  on {o}");
    }
    if let Some(d) = &r.destination {
        let _ = write!(s, "  -> {d}");
    }
    s
}

/// The one decision whose id starts with `id`.
fn find(all: &[Decision], id: &str, among: &str) -> Result<Decision, AppError> {
    let found: Vec<&Decision> = all
        .iter()
        .filter(|d| d.decision_id.starts_with(id))
        .collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(AppError::Scenario(format!(
            "no decision {id} among the {} decisions of {among}",
            all.len()
        ))),
        many => Err(AppError::Scenario(format!(
            "{id} matches {} decisions; give more of the id",
            many.len()
        ))),
    }
}

/// Find the decision and build its timeline.
pub async fn explain(
    cfg: &Config,
    files: &[String],
    id: &str,
    window_secs: i64,
) -> Result<(Decision, Vec<Row>), AppError> {
    let r = replay(cfg, files, false, &mut std::io::sink()).await?;
    let d = find(&r.decisions, id, "the replay")?;
    let norm = Normalize::new(&cfg.normalize).map_err(ConfigError::from)?;
    let mut rows = Vec::new();
    for path in files {
        let mut lines = Lines::open(path).map_err(|source| AppError::Io {
            path: path.clone(),
            source,
        })?;
        let name = lines.name.clone();
        while let Some((n, raw)) = lines.next_line().map_err(|source| AppError::Io {
            path: path.clone(),
            source,
        })? {
            let ctx = Context::new(
                Provenance::File {
                    path: name.as_str().into(),
                    line: n,
                },
                Ts(0),
            );
            let mut inner = crate::normalize::Envelopes::default();
            let mut evs = Vec::new();
            if norm
                .normalize_enveloped(raw, None, &ctx, &mut evs, &mut inner)
                .is_err()
            {
                continue;
            }
            rows.extend(evs.iter().filter_map(|ev| row_of(&d, ev)));
        }
    }
    let rows = window(rows, &d, window_secs);
    Ok((d, rows))
}

/// Find the decision in the evidence store at `dir` and build its timeline from the stored (correlated) events:
/// nothing is replayed, and the events are as the pipeline saw them.
pub fn explain_from_store(
    dir: &std::path::Path,
    id: &str,
    window_secs: i64,
) -> Result<(Decision, Vec<Row>), AppError> {
    use crate::evidence::{read, tables};
    let all = super::session::decisions(dir, None, None)?;
    let d = find(&all, id, &format!("the store {}", dir.display()))?;
    let until = crate::event::Ts(d.event_time.0 + 3_600_000);
    let mut rows = Vec::new();
    let files = read::files(dir, tables::TableKind::Events, None, Some(until))
        .map_err(super::session::store_err)?;
    for f in files {
        for b in read::batches_of(&f).map_err(super::session::store_err)? {
            let c = tables::Cols::new(&b);
            for i in 0..b.num_rows() {
                let Some(ev) = tables::event_of(&c, i) else {
                    continue;
                };
                if let Some(r) = row_of(&d, &ev) {
                    rows.push(r);
                }
            }
        }
    }
    Ok((d.clone(), window(rows, &d, window_secs)))
}

/// The row of `ev` in `d`'s timeline, if it is evidence or about the same subject and not after the decision.
fn row_of(d: &Decision, ev: &SessionEvent<'_>) -> Option<Row> {
    // an event is about the decision's subject by its principal key, a person's id, its token, session or job;
    // it is evidence only if it is also cited (an id alone can be chosen by a client: a span id)
    let subject = super::session::belongs(ev, d);
    let evidence = subject && d.evidence.iter().any(|e| e == ev.event_id.as_str());
    (subject && ev.event_time <= d.event_time).then(|| Row {
        time: ev.event_time,
        event_id: ev.event_id.to_string(),
        evidence,
        text: describe(ev),
    })
}

/// Keep the evidence and the subject's events from `window_secs` before the first evidence, in time order.
fn window(mut rows: Vec<Row>, d: &Decision, window_secs: i64) -> Vec<Row> {
    let first = rows
        .iter()
        .filter(|r| r.evidence)
        .map(|r| r.time)
        .min()
        .unwrap_or(d.event_time);
    rows.retain(|r| r.evidence || r.time.0 >= first.0 - window_secs * 1000);
    rows.sort_by_key(|r| r.time);
    rows
}

/// The explanation as text.
pub fn render(d: &Decision, rows: &[Row]) -> String {
    // every field but the times and scores quotes the input: escape its control characters
    let field = |v: &Option<String>| escape_control(v.as_deref().unwrap_or("-")).into_owned();
    let mut s = format!(
        "decision {} at {}: {} (score {:.2})\n  principal {}  token {}  session {}  job {}\n",
        escape_control(&d.decision_id),
        d.event_time.to_rfc3339(),
        d.action.as_str(),
        d.score,
        field(&d.principal),
        field(&d.token_id),
        field(&d.session_id),
        field(&d.job_id),
    );
    for f in &d.findings {
        let _ = writeln!(
            s,
            "  {} ({:.2}): {}",
            f.detector,
            f.score,
            escape_control(&f.reason)
        );
    }
    let _ = writeln!(s, "\ntimeline ({} events; * = evidence):", rows.len());
    for r in rows {
        let _ = writeln!(
            s,
            "{} {} {}  [{}]",
            if r.evidence { "*" } else { " " },
            r.time.to_rfc3339(),
            escape_control(&r.text),
            escape_control(&r.event_id)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_replayed_session_timeline_shows_chicago_then_jakarta_with_the_evidence_marked() {
        let file = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/scenarios/okta_travel/events.jsonl"
        )
        .to_string();
        let r = replay(
            &Config::default(),
            std::slice::from_ref(&file),
            false,
            &mut std::io::sink(),
        )
        .await
        .unwrap();
        let alice = r
            .decisions
            .iter()
            .find(|d| d.principal.as_deref() == Some("alice@example.com"))
            .unwrap();
        let (d, rows) = explain(&Config::default(), &[file], &alice.decision_id[..8], 3600)
            .await
            .unwrap();
        assert_eq!(d.decision_id, alice.decision_id);
        let text = render(&d, &rows);
        assert!(rows.iter().filter(|r| r.evidence).count() >= 2, "{text}");
        assert!(
            rows.iter().any(|r| r.text.contains("Chicago"))
                && rows
                    .iter()
                    .any(|r| r.evidence && r.text.contains("Jakarta")),
            "{text}"
        );
        assert!(rows.windows(2).all(|w| w[0].time <= w[1].time));
        assert!(text.contains("session_hijack"), "{text}");
    }

    #[test]
    fn a_forged_principal_and_event_cannot_draw_on_the_terminal_or_add_lines() {
        let forged = "eve\x1b[2J\nfake.jsonl:1: forged".to_string();
        let d = Decision {
            decision_id: "0".repeat(32),
            action: crate::decide::Action::Alert,
            principal: Some(forged.clone()),
            principal_kind: crate::event::PrincipalKind::Human,
            session_id: Some(forged.clone()),
            score: 0.5,
            ..Default::default()
        };
        let rows = [Row {
            time: Ts(0),
            event_id: forged.clone(),
            evidence: true,
            text: forged,
        }];
        let text = render(&d, &rows);
        assert_eq!(text.lines().count(), 5, "{text}");
        assert!(!text.lines().any(|l| l.starts_with("fake.jsonl")), "{text}");
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert!(
            text.contains("eve\\u{1b}[2J\\nfake.jsonl:1: forged"),
            "{text}"
        );
    }
}
