//! `quench backtest`: judge a detector or decide change on stored traffic before it ships.
//!
//! In: the evidence store, a time range, the configuration in force (the baseline) and a candidate (another
//! detectors directory and/or configuration). Out: a [`Backtest`]: both configurations replay the same stored
//! events (correlated events, in the order the pipeline processed them), and the report lists the decisions
//! that are new, removed and changed under the candidate, by subject, with counts by detector and principal kind.
//! It also says how many of the decisions stored for that range the baseline replay makes again, which tells how
//! far the replay can be trusted (state learned before the range is not in it). State: the two pipelines, for
//! the length of the command.

use super::session::{decisions, store_err};
use super::AppError;
use crate::config::Config;
use crate::decide::{Action, Decision};
use crate::event::{PrincipalKind, Ts};
use crate::evidence::read;
use crate::evidence::tables::{self, Cols, TableKind};
use crate::pipeline::Pipeline;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// One subject's strongest decision under one configuration.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Outcome {
    pub action: Action,
    pub score: f64,
    pub detectors: Vec<String>,
    pub principal_kind: PrincipalKind,
    pub first_at: Ts,
    pub decision_id: String,
}

/// A difference between baseline and candidate.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Change {
    /// `job:…`, `principal:…`, `token:…` or `session:…`.
    pub subject: String,
    pub baseline: Option<Outcome>,
    pub candidate: Option<Outcome>,
}

/// What the backtest found.
#[derive(Debug, Default, Serialize)]
pub struct Backtest {
    pub events: u64,
    pub since: Option<Ts>,
    pub until: Option<Ts>,
    /// Subjects with a decision under each configuration.
    pub baseline_subjects: usize,
    pub candidate_subjects: usize,
    /// Stored decisions in the range (subject and strongest action), and how many the baseline replay made again.
    pub stored_subjects: usize,
    pub stored_reproduced: usize,
    pub new: Vec<Change>,
    pub removed: Vec<Change>,
    pub changed: Vec<Change>,
    /// Counts of new/removed/changed by detector (a new decision's detectors, a removed one's, and for a change
    /// those of either side) and by principal kind.
    pub by_detector: BTreeMap<String, [u64; 3]>,
    pub by_kind: BTreeMap<String, [u64; 3]>,
    pub seconds: f64,
}

fn subject(d: &Decision) -> Option<String> {
    if let Some(j) = &d.job_id {
        Some(format!("job:{j}"))
    } else if let Some(p) = &d.principal {
        Some(format!("principal:{p}"))
    } else if let Some(t) = &d.token_id {
        Some(format!("token:{t}"))
    } else {
        d.session_id.as_ref().map(|s| format!("session:{s}"))
    }
}

/// The strongest acted-on decision per subject (shadow decisions and budget notices are left out: they never
/// act).
fn strongest(ds: &[Decision]) -> BTreeMap<String, Outcome> {
    let mut out: BTreeMap<String, Outcome> = BTreeMap::new();
    for d in ds {
        if d.shadow || d.kind != crate::decide::DecisionKind::Detection {
            continue;
        }
        let Some(s) = subject(d) else { continue };
        let o = Outcome {
            action: d.action,
            score: d.score,
            detectors: d.findings.iter().map(|f| f.detector.clone()).collect(),
            principal_kind: d.principal_kind,
            first_at: d.event_time,
            decision_id: d.decision_id.clone(),
        };
        match out.get_mut(&s) {
            Some(cur) if cur.action >= o.action => {}
            Some(cur) => {
                let first = cur.first_at;
                *cur = o;
                cur.first_at = first;
            }
            None => {
                out.insert(s, o);
            }
        }
    }
    out
}

/// Replay the stored events of `[since, until)` through a pipeline built from `cfg`.
fn replay(
    dir: &Path,
    cfg: &Config,
    since: Option<Ts>,
    until: Option<Ts>,
) -> Result<(Vec<Decision>, u64), AppError> {
    let mut p = Pipeline::new(cfg)?;
    // the stored events in processing order: by ingest time (stable within a file)
    let mut batches = Vec::new();
    for f in read::files(dir, TableKind::Events, since, until).map_err(store_err)? {
        batches.extend(read::batches_of(&f).map_err(store_err)?);
    }
    let mut order: Vec<(Ts, usize, usize)> = Vec::new();
    for (bi, b) in batches.iter().enumerate() {
        let c = Cols::new(b);
        for i in 0..b.num_rows() {
            let t = c.ts("event_time", i).unwrap_or_default();
            if since.is_some_and(|s| t < s) || until.is_some_and(|u| t >= u) {
                continue;
            }
            order.push((c.ts("ingest_time", i).unwrap_or_default(), bi, i));
        }
    }
    order.sort();
    let mut out = Vec::new();
    let mut clock = Ts(i64::MIN);
    let mut n = 0;
    for (_, bi, i) in order {
        let c = Cols::new(&batches[bi]);
        let Some(ev) = tables::event_of(&c, i) else {
            continue;
        };
        // decide's clock: the stream's own time, which only moves forward
        clock = clock.max(ev.event_time);
        n += 1;
        p.after_normalize(ev, clock, &mut out);
    }
    Ok((out, n))
}

/// Run the backtest.
pub fn backtest(
    dir: &Path,
    baseline: &Config,
    candidate: &Config,
    since: Option<Ts>,
    until: Option<Ts>,
) -> Result<Backtest, AppError> {
    let started = std::time::Instant::now();
    let (base, events) = replay(dir, baseline, since, until)?;
    let (cand, _) = replay(dir, candidate, since, until)?;
    let stored: Vec<Decision> = decisions(dir, since, until)?
        .into_iter()
        .filter(|d| {
            since.is_none_or(|s| d.event_time >= s) && until.is_none_or(|u| d.event_time < u)
        })
        .collect();
    let (b, c, s) = (strongest(&base), strongest(&cand), strongest(&stored));
    let mut r = Backtest {
        events,
        since,
        until,
        baseline_subjects: b.len(),
        candidate_subjects: c.len(),
        stored_subjects: s.len(),
        stored_reproduced: s
            .iter()
            .filter(|(k, o)| b.get(*k).is_some_and(|x| x.action == o.action))
            .count(),
        ..Backtest::default()
    };
    let count = |o: &Outcome, slot: usize, r: &mut Backtest| {
        for d in &o.detectors {
            r.by_detector.entry(d.clone()).or_default()[slot] += 1;
        }
        let kind = serde_json::to_value(o.principal_kind)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        r.by_kind.entry(kind).or_default()[slot] += 1;
    };
    for (k, o) in &c {
        match b.get(k) {
            None => {
                count(o, 0, &mut r);
                r.new.push(Change {
                    subject: k.clone(),
                    baseline: None,
                    candidate: Some(o.clone()),
                });
            }
            Some(x) if x.action != o.action => {
                // a change is counted for every detector on either side (the one added, the one gone, both)
                let mut both = o.clone();
                for d in &x.detectors {
                    if !both.detectors.contains(d) {
                        both.detectors.push(d.clone());
                    }
                }
                count(&both, 2, &mut r);
                r.changed.push(Change {
                    subject: k.clone(),
                    baseline: Some(x.clone()),
                    candidate: Some(o.clone()),
                });
            }
            Some(_) => {}
        }
    }
    for (k, o) in &b {
        if !c.contains_key(k) {
            count(o, 1, &mut r);
            r.removed.push(Change {
                subject: k.clone(),
                baseline: Some(o.clone()),
                candidate: None,
            });
        }
    }
    r.seconds = started.elapsed().as_secs_f64();
    Ok(r)
}

/// The report for a person.
pub fn render(r: &Backtest) -> String {
    use std::fmt::Write as _;
    let t = |t: Option<Ts>| t.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into());
    let mut s = format!(
        "backtest over {} stored events ({} .. {}) in {:.1} s\n",
        r.events,
        t(r.since),
        t(r.until),
        r.seconds
    );
    let _ = writeln!(
        s,
        "subjects with a decision: baseline {}, candidate {}; the baseline replay makes {} of the {} stored ones again",
        r.baseline_subjects, r.candidate_subjects, r.stored_reproduced, r.stored_subjects
    );
    let _ = writeln!(
        s,
        "new {}, removed {}, changed {}",
        r.new.len(),
        r.removed.len(),
        r.changed.len()
    );
    if !r.by_detector.is_empty() {
        let _ = writeln!(
            s,
            "\n{:<20} {:>5} {:>8} {:>8}",
            "detector", "new", "removed", "changed"
        );
        for (d, [n, rm, ch]) in &r.by_detector {
            let _ = writeln!(s, "{d:<20} {n:>5} {rm:>8} {ch:>8}");
        }
        let _ = writeln!(
            s,
            "\n{:<20} {:>5} {:>8} {:>8}",
            "principal kind", "new", "removed", "changed"
        );
        for (d, [n, rm, ch]) in &r.by_kind {
            let _ = writeln!(s, "{d:<20} {n:>5} {rm:>8} {ch:>8}");
        }
    }
    let act = |o: &Option<Outcome>| {
        o.as_ref()
            .map(|o| {
                format!(
                    "{} ({:.2}; {})",
                    o.action.as_str(),
                    o.score,
                    o.detectors.join("+")
                )
            })
            .unwrap_or_else(|| "-".into())
    };
    for (name, list) in [
        ("new", &r.new),
        ("removed", &r.removed),
        ("changed", &r.changed),
    ] {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n{name}:");
        for c in list.iter().take(50) {
            let _ = writeln!(
                s,
                "  {:<50} {} -> {}",
                crate::text::escape_control(&c.subject),
                act(&c.baseline),
                act(&c.candidate)
            );
        }
        if list.len() > 50 {
            let _ = writeln!(s, "  … {} more (--json lists all)", list.len() - 50);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::replay;

    fn fixture(name: &str) -> String {
        format!(
            "{}/fixtures/scenarios/{name}/events.jsonl",
            env!("CARGO_MANIFEST_DIR")
        )
    }

    fn temp(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("quench-{tag}-{:x}", fastrand::u64(..)));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// Replay `file` into a new store; returns the store and the decisions.
    async fn stored(file: &str, cfg: &Config) -> (std::path::PathBuf, Vec<Decision>) {
        let dir = temp("bt-store");
        let mut cfg = cfg.clone();
        cfg.evidence.dir = Some(dir.clone());
        let r = replay(&cfg, &[file.to_string()], false, &mut std::io::sink())
            .await
            .unwrap();
        (dir, r.decisions)
    }

    #[tokio::test]
    async fn an_unchanged_configuration_backtests_to_no_difference_and_remakes_the_stored_decisions(
    ) {
        let (dir, decided) = stored(&fixture("demo_day"), &Config::default()).await;
        assert!(decided.len() >= 4, "{decided:?}");
        let r = backtest(&dir, &Config::default(), &Config::default(), None, None).unwrap();
        assert!(r.events > 100, "{}", r.events);
        assert!(
            r.new.is_empty() && r.removed.is_empty() && r.changed.is_empty(),
            "{}",
            render(&r)
        );
        assert_eq!(r.stored_subjects, strongest(&decided).len());
        assert_eq!(r.stored_reproduced, r.stored_subjects, "{}", render(&r));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_raised_travel_speed_limit_backtests_to_what_a_replay_under_it_decides() {
        let file = fixture("okta_travel");
        let (dir, decided) = stored(&file, &Config::default()).await;
        // the candidate: impossible_travel only above 100,000 km/h, i.e. never
        let det = temp("bt-detectors");
        std::fs::create_dir_all(&det).unwrap();
        let text = include_str!("../../detectors/impossible_travel.toml");
        assert!(text.contains("max_speed_kmh = 900.0"));
        std::fs::write(
            det.join("impossible_travel.toml"),
            text.replace("max_speed_kmh = 900.0", "max_speed_kmh = 100000.0"),
        )
        .unwrap();
        let mut cand = Config::default();
        cand.detect.dir = Some(det.clone());
        let r = backtest(&dir, &Config::default(), &cand, None, None).unwrap();
        let text = render(&r);

        // expected: what replaying the raw events under each configuration decides, subject by subject
        let direct = replay(&cand, &[file], false, &mut std::io::sink())
            .await
            .unwrap();
        let (before, after) = (strongest(&decided), strongest(&direct.decisions));
        let removed: Vec<&String> = before.keys().filter(|k| !after.contains_key(*k)).collect();
        let changed: Vec<&String> = before
            .iter()
            .filter(|(k, o)| after.get(*k).is_some_and(|a| a.action != o.action))
            .map(|(k, _)| k)
            .collect();
        let new: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
        assert!(
            !removed.is_empty() || !changed.is_empty(),
            "the change made no difference: {text}"
        );
        assert_eq!(
            r.removed.iter().map(|c| &c.subject).collect::<Vec<_>>(),
            removed,
            "{text}"
        );
        assert_eq!(
            r.changed.iter().map(|c| &c.subject).collect::<Vec<_>>(),
            changed,
            "{text}"
        );
        assert_eq!(
            r.new.iter().map(|c| &c.subject).collect::<Vec<_>>(),
            new,
            "{text}"
        );
        // henry's Lagos login was a travel finding: under the candidate it no longer decides the same
        assert!(
            r.removed
                .iter()
                .chain(&r.changed)
                .any(|c| c.subject == "principal:henry@example.com"),
            "{text}"
        );
        // and every difference is one the travel detector had a part in
        for c in r.removed.iter().chain(&r.changed) {
            let b = c.baseline.as_ref().unwrap();
            assert!(
                b.detectors.iter().any(|d| d == "impossible_travel"),
                "{text}"
            );
        }
        assert!(
            r.by_detector
                .get("impossible_travel")
                .is_some_and(|n| n[1] + n[2] > 0),
            "{text}"
        );
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&det);
    }
}
