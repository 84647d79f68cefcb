//! Late sources against event-time order: the same simulated traffic, once as it arrives (M365 30-90 min late,
//! Google minutes to hours, Entra 2-10 min) and once sorted by event time (`quench simulate --event-time-order`),
//! through the `replay` code path.
//!
//! What cannot be the same without waiting for the slowest source: a weaker action decided before the late
//! evidence arrived, and an alert on a grant whose colleagues' earlier grants had not arrived yet. What must be:
//! every attack caught and nobody else revoked, and the strongest action each subject reaches when that is more
//! than an alert. With the reorder hold (`normalize.reorder_secs`, which waits), every decision is the same.

#![allow(clippy::unwrap_used)]

use quench::cli::eval::{score, traffic_config};
use quench::decide::{Action, Decision};
use quench::lab::simulate::{simulate, SimConfig};
use std::collections::BTreeMap;

/// Decisions of the traffic simulated with `seed`, in arrival order or in event-time order, with
/// `normalize.reorder_secs = reorder_secs`; its score, and the input (to read the ids made from a line's place).
async fn replayed(
    seed: u64,
    event_time_order: bool,
    reorder_secs: u64,
) -> (Vec<Decision>, quench::cli::eval::Report, Input) {
    let dir = std::env::temp_dir().join(format!(
        "quench-disorder-{seed}-{event_time_order}-{reorder_secs}-{}",
        std::process::id()
    ));
    simulate(
        &SimConfig {
            people: 150,
            agents: 20,
            days: 4,
            seed,
            only: None,
            event_time_order,
        },
        &dir,
    )
    .unwrap();
    let mut cfg = traffic_config(&dir).unwrap();
    cfg.normalize.reorder_secs = Some(reorder_secs);
    let events = dir.join("events.jsonl").display().to_string();
    let r = quench::cli::replay(
        &cfg,
        std::slice::from_ref(&events),
        false,
        &mut std::io::sink(),
    )
    .await
    .unwrap();
    let labels =
        serde_json::from_str(&std::fs::read_to_string(dir.join("labels.json")).unwrap()).unwrap();
    let report = score(&labels, &r.decisions, 60.0, r.stats.events);
    let lines = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    std::fs::remove_dir_all(&dir).unwrap();
    (
        r.decisions,
        report,
        Input {
            path: events,
            lines,
        },
    )
}

/// A replayed file: its path as event ids spell it, and its lines.
struct Input {
    path: String,
    lines: Vec<String>,
}

/// The decisions as JSON, without what depends on where the input was read: the decision's id (a digest that
/// includes an event id), and event ids made from a line's place in the file (`{path}:{line}#{n}`, for records
/// without a vendor id), which are replaced by the line itself. (The processing time `decided_at` stays: with the
/// reorder hold it is when the event's hold ended, the same in both orders.)
/// With `!at_time`, without `decided_at` either.
fn as_decided(ds: &[Decision], input: &Input, at_time: bool) -> Vec<serde_json::Value> {
    fn place_free(v: &mut serde_json::Value, input: &Input) {
        match v {
            serde_json::Value::String(s) => {
                let line = s
                    .rsplit_once('#')
                    .and_then(|(at, n)| Some((at.rsplit_once(':')?, n)))
                    .and_then(|((path, line), n)| {
                        let l: usize = line.parse().ok()?;
                        let text = input.lines.get(l.checked_sub(1)?)?;
                        (path == input.path).then(|| format!("{text}#{n}"))
                    });
                if let Some(line) = line {
                    *s = line;
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| place_free(x, input)),
            serde_json::Value::Object(o) => o.values_mut().for_each(|x| place_free(x, input)),
            _ => {}
        }
    }
    ds.iter()
        .map(|d| {
            let mut v = serde_json::to_value(d).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("decision_id");
            if !at_time {
                o.remove("decided_at");
            }
            place_free(&mut v, input);
            v
        })
        .collect()
}

/// The strongest action of each subject (the job, else the principal, else the token, else the session).
fn strongest(ds: &[Decision]) -> BTreeMap<String, Action> {
    let mut m: BTreeMap<String, Action> = BTreeMap::new();
    for d in ds.iter().filter(|d| !d.shadow) {
        let Some(subject) = d
            .job_id
            .as_ref()
            .or(d.principal.as_ref())
            .or(d.token_id.as_ref())
            .or(d.session_id.as_ref())
        else {
            continue;
        };
        let a = m.entry(subject.clone()).or_insert(d.action);
        *a = (*a).max(d.action);
    }
    m
}

/// Comparing the two orders on `quench simulate --people 1000 --agents 100 --days 14` found that with seed 8 an
/// attacked mailbox ended in a session termination in event-time order and a token revocation in arrival order:
/// the session's own Exchange records arrived after the thief's
/// (`session_hijack::tests::a_mailbox_client_judged_before_the_sessions_late_exchange_records_is_judged_again_when_they_arrive`),
/// and decide scored a late finding against later ones at full weight
/// (`decide::tests::late_findings_reach_the_strongest_action_the_same_findings_reach_in_event_time_order`). This
/// checks the property on whole, smaller organisations (the full size takes minutes in a debug build).
#[tokio::test(flavor = "current_thread")]
async fn late_sources_reach_the_actions_event_time_order_reaches() {
    let mut differed = false;
    for seed in [3, 8] {
        let (arrived, arrived_score, arrived_input) = replayed(seed, false, 0).await;
        let (sorted, sorted_score, sorted_input) = replayed(seed, true, 0).await;
        // (the processing time aside: without the hold it differs by construction)
        differed |= as_decided(&arrived, &arrived_input, false)
            != as_decided(&sorted, &sorted_input, false);
        let missed = |r: &quench::cli::eval::Report| -> Vec<String> {
            r.per_kind.values().flat_map(|k| k.missed.clone()).collect()
        };
        assert_eq!(
            missed(&arrived_score),
            missed(&sorted_score),
            "seed {seed}: the same attacks caught in both orders"
        );
        // (four days are short: an agent attacked before its baseline is learned can be missed in both orders)
        assert!(
            arrived_score.attacks_caught >= 10,
            "seed {seed}: {:?} missed",
            missed(&arrived_score)
        );
        assert_eq!(arrived_score.false_revocations, 0, "seed {seed}");
        assert_eq!(sorted_score.false_revocations, 0, "seed {seed}");
        let (a, s) = (strongest(&arrived), strongest(&sorted));
        let acted: Vec<&String> = a
            .iter()
            .chain(s.iter())
            .filter(|(_, act)| **act > Action::Alert)
            .map(|(k, _)| k)
            .collect();
        assert!(
            acted.len() >= 10,
            "seed {seed}: the traffic has attacks acted on: {acted:?}"
        );
        for k in acted {
            assert_eq!(
                a.get(k),
                s.get(k),
                "seed {seed}: {k} in arrival order against event-time order"
            );
        }
        with_the_reorder_hold_arrival_order_decides_exactly_as_event_time_order(seed).await;
    }
    assert!(
        differed,
        "without the reorder hold, arrival order decides differently from event-time order on these seeds (else \
         the hold's exact equality below proves nothing)"
    );
}

/// Issue 12's disorder bar, exactly: with the reorder hold (`normalize.reorder_secs`) longer than every source's
/// delivery lag (the simulator's Google lags up to 3 h), the traffic in arrival order gives the same decisions,
/// field for field (ids made from a line's place aside), as the same traffic sorted by event time. (Part of the test above,
/// which checks that without the hold they differ, so that this can fail; one test, to simulate each organisation
/// once.)
async fn with_the_reorder_hold_arrival_order_decides_exactly_as_event_time_order(seed: u64) {
    let hold = 4 * 3600;
    let (arrived, arrived_score, arrived_input) = replayed(seed, false, hold).await;
    let (sorted, _, sorted_input) = replayed(seed, true, hold).await;
    assert!(
        arrived_score.attacks_caught >= 10 && arrived_score.false_revocations == 0,
        "seed {seed}: {arrived_score:?}"
    );
    let (a, s) = (
        as_decided(&arrived, &arrived_input, true),
        as_decided(&sorted, &sorted_input, true),
    );
    assert!(a.len() >= 10, "seed {seed}: {} decisions", a.len());
    let first_difference = a.iter().zip(&s).position(|(x, y)| x != y);
    assert!(
        a.len() == s.len() && first_difference.is_none(),
        "seed {seed}: {} decisions in arrival order, {} in event-time order; first difference: {:#?}",
        a.len(),
        s.len(),
        first_difference.map(|i| (&a[i], &s[i]))
    );
}
