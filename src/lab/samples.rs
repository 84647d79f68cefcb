//! The shared-samples survey: every file of real, public sample events is normalized and counted, per format,
//! with how many events got each key field. `cargo run --example samples_table` prints it as the README table;
//! `tests/it/shared_samples.rs` holds it to its bar.
//!
//! In: a samples directory of JSON Lines files, and optionally a peer's expected facts for the same inputs
//! (`fixtures/peer/elastic_expected.jsonl`: Elastic's published pipeline-test outputs). Out: one [`Row`] per
//! file, with how many of the peer's facts Quench's events agree with. State: none.
//!
//! Messages go through [`Normalize::normalize_enveloped`], as `run` and `replay` read them, so a sample that a
//! shipper wrapped (a container-log line holding an Envoy text line) is read as delivered.

use crate::config::Config;
use crate::event::{Provenance, SessionEvent, Ts};
use crate::normalize::{Context, Normalize};
use std::path::Path;

/// Files that hold no log events: API request/response bodies and protocol schema examples.
pub const NOT_LOG_EVENTS: &[(&str, &str)] = &[
    (
        "mcp_spec_examples/",
        "MCP protocol schema examples (message bodies, not logged calls)",
    ),
    (
        "okta_openapi_examples/okta_session_token_ssf_examples",
        "Okta API request/response bodies",
    ),
];

/// Sample sources in formats Quench does not read (yet), with why.
pub const UNSUPPORTED: &[(&str, &str)] = &[
    ("rsigma:aws_cloudtrail", "AWS CloudTrail"),
    ("rsigma:aws_vpcflow", "VPC flow logs (not identity events)"),
    (
        "rsigma:azure_activitylogs",
        "Azure Activity Log (resource management)",
    ),
    (
        "rsigma:docker_events",
        "Docker events (not identity events)",
    ),
    ("rsigma:gcp_audit", "Google Cloud audit logs"),
    ("rsigma:k8s_audit", "Kubernetes audit logs"),
    ("rsigma:onelogin_events", "OneLogin events"),
    (
        "rsigma:osquery_result",
        "osquery results (not identity events)",
    ),
];

/// One sample file (or one rsigma fixture).
#[derive(Debug, Default, Clone)]
pub struct Row {
    pub source: String,
    /// Formats that read its events.
    pub formats: Vec<&'static str>,
    pub events: usize,
    pub normalized: usize,
    pub failures: Vec<String>,
    /// Why it is not counted, when it is not.
    pub excluded: Option<&'static str>,
    pub with_principal: usize,
    pub with_ip: usize,
    pub with_session: usize,
    pub with_token: usize,
    pub with_geo: usize,
    pub with_user_agent: usize,
    /// Facts the peer states about these events (time, principal, IP, session, user agent, outcome) …
    pub peer_facts: usize,
    /// … how many of them Quench's events state the same …
    pub peer_agreed: usize,
    /// … and the others, one line each.
    pub peer_disagreements: Vec<String>,
}

/// What a peer's parser says one sample event is (one line of `fixtures/peer/elastic_expected.jsonl`).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct PeerFacts {
    /// The sample file, relative to `elastic_integrations/`.
    pub sample: String,
    /// 0-based line index in it.
    pub line: usize,
    #[serde(default)]
    pub time: Option<String>,
    /// `user.email`, `user.name`, `user.id` as the peer set them.
    #[serde(default)]
    pub principal: Vec<String>,
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub session: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
    #[serde(default)]
    pub outcome: Option<String>,
}

/// The peer's facts, keyed by (sample path under the samples directory, 0-based line).
pub type Peer = std::collections::HashMap<(String, usize), PeerFacts>;

/// Read `elastic_expected.jsonl` (a missing file is an empty peer).
pub fn load_peer(path: &Path) -> std::io::Result<Peer> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Peer::new()),
        Err(e) => return Err(e),
    };
    let mut peer = Peer::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let f: PeerFacts = serde_json::from_str(line)
            .map_err(|e| std::io::Error::other(format!("{}:{}: {e}", path.display(), i + 1)))?;
        peer.insert((format!("elastic_integrations/{}", f.sample), f.line), f);
    }
    Ok(peer)
}

/// Compare one event with the peer's facts about it: (facts stated, facts agreed, what differed).
fn agree(ev: &SessionEvent<'_>, p: &PeerFacts) -> (usize, usize, Vec<String>) {
    let mut stated = 0;
    let mut agreed = 0;
    let mut differ = Vec::new();
    let mut check = |field: &str, same: bool, theirs: &str, ours: String| {
        stated += 1;
        if same {
            agreed += 1;
        } else {
            differ.push(format!("{field}: peer {theirs:?}, Quench {ours}"));
        }
    };
    if let Some(t) = &p.time {
        let same = Ts::parse(t).is_some_and(|t| t == ev.event_time);
        check("time", same, t, ev.event_time.to_rfc3339());
    }
    if !p.principal.is_empty() {
        let ours: Vec<&str> = [
            ev.principal.id.as_deref(),
            ev.principal.email.as_deref(),
            ev.principal.display_name.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect();
        // the same identity: any name the peer gives is one of ours, or an e-mail's local part (Okta's user.name)
        let same = p.principal.iter().any(|theirs| {
            ours.iter().any(|o| {
                o.eq_ignore_ascii_case(theirs)
                    || o.split_once('@')
                        .is_some_and(|(l, _)| l.eq_ignore_ascii_case(theirs))
            })
        });
        check(
            "principal",
            same,
            &p.principal.join(" | "),
            format!("{ours:?}"),
        );
    }
    let ip_same =
        |a: &str, b: &str| match (a.parse::<std::net::IpAddr>(), b.parse::<std::net::IpAddr>()) {
            (Ok(x), Ok(y)) => x == y,
            _ => a == b,
        };
    if let Some(ip) = &p.ip {
        let ours = ev.network.ip.as_deref();
        check(
            "ip",
            ours.is_some_and(|o| ip_same(o, ip)),
            ip,
            format!("{ours:?}"),
        );
    }
    if let Some(s) = &p.session {
        let ours = ev.session.session_id.as_deref();
        check("session", ours == Some(s.as_str()), s, format!("{ours:?}"));
    }
    if let Some(ua) = &p.user_agent {
        let ours = ev.network.user_agent.as_deref();
        check(
            "user agent",
            ours == Some(ua.as_str()),
            ua,
            format!("{ours:?}"),
        );
    }
    if let Some(o) = &p.outcome {
        let ours = match ev.outcome {
            crate::event::Outcome::Success => "success",
            crate::event::Outcome::Failure => "failure",
            _ => "unknown",
        };
        check("outcome", ours == o, o, ours.to_string());
    }
    (stated, agreed, differ)
}

impl Row {
    fn count(&mut self, evs: &[SessionEvent<'_>]) {
        for e in evs {
            self.with_principal += usize::from(e.principal.key().is_some());
            self.with_ip += usize::from(e.network.ip.is_some());
            self.with_session += usize::from(e.session.session_id.is_some());
            self.with_token += usize::from(e.session.token_id.is_some());
            self.with_geo += usize::from(e.network.geo.is_some());
            self.with_user_agent += usize::from(e.network.user_agent.is_some());
        }
    }
}

fn excluded(name: &str) -> Option<&'static str> {
    NOT_LOG_EVENTS
        .iter()
        .chain(UNSUPPORTED)
        .find(|(p, _)| name.contains(p))
        .map(|(_, why)| *why)
}

/// Survey every `*.jsonl` under `dir` (sorted). rsigma fixtures are unwrapped to their `event`.
pub fn survey(dir: &Path) -> std::io::Result<Vec<Row>> {
    survey_against(dir, &Peer::new())
}

/// [`survey`], comparing each event the peer has facts about with them.
pub fn survey_against(dir: &Path, peer: &Peer) -> std::io::Result<Vec<Row>> {
    let norm = match Normalize::new(&Config::default().normalize) {
        Ok(n) => n,
        Err(e) => return Err(std::io::Error::other(e.to_string())),
    };
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "jsonl") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut rows: Vec<Row> = Vec::new();
    for f in files {
        let name = f.strip_prefix(dir).unwrap_or(&f).display().to_string();
        let text = std::fs::read_to_string(&f)?;
        let rsigma = name.starts_with("rsigma_fixtures/");
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let (source, raw) = if rsigma {
                #[derive(serde::Deserialize)]
                struct Fixture<'a> {
                    fixture: String,
                    #[serde(borrow)]
                    event: &'a serde_json::value::RawValue,
                }
                match serde_json::from_str::<Fixture>(line) {
                    Ok(fx) => (format!("rsigma:{}", fx.fixture), fx.event.get()),
                    Err(_) => (name.clone(), line),
                }
            } else {
                (name.clone(), line)
            };
            if rows.last().is_none_or(|r| r.source != source) {
                rows.push(Row {
                    source: source.clone(),
                    excluded: excluded(&source),
                    ..Default::default()
                });
            }
            let Some(row) = rows.last_mut() else { continue };
            row.events += 1;
            let ctx = Context::new(
                Provenance::File {
                    path: name.as_str().into(),
                    line: i as u64 + 1,
                },
                Ts(0),
            );
            let mut evs = Vec::new();
            let mut inner = crate::normalize::Envelopes::default();
            match norm.normalize_enveloped(raw.as_bytes(), None, &ctx, &mut evs, &mut inner) {
                Ok(fmt) => {
                    row.normalized += 1;
                    if !row.formats.contains(&fmt) {
                        row.formats.push(fmt);
                    }
                    row.count(&evs);
                    if let (Some(p), Some(ev)) = (peer.get(&(name.clone(), i)), evs.first()) {
                        let (stated, agreed, differ) = agree(ev, p);
                        row.peer_facts += stated;
                        row.peer_agreed += agreed;
                        row.peer_disagreements
                            .extend(differ.into_iter().map(|d| format!("line {}: {d}", i + 1)));
                    }
                }
                Err(e) => row.failures.push(format!("line {}: {e}", i + 1)),
            }
        }
    }
    Ok(rows)
}

/// Totals over the rows that count (log events in supported formats): (events, normalized).
pub fn totals(rows: &[Row]) -> (usize, usize) {
    rows.iter()
        .filter(|r| r.excluded.is_none())
        .fold((0, 0), |(e, n), r| (e + r.events, n + r.normalized))
}

/// The survey as a Markdown table.
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::from(
        "| sample | format | events | normalized | principal | ip | session | token | geo | user agent | agrees with Elastic |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows.iter().filter(|r| r.excluded.is_none()) {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.source,
            r.formats.join(", "),
            r.events,
            r.normalized,
            r.with_principal,
            r.with_ip,
            r.with_session,
            r.with_token,
            r.with_geo,
            r.with_user_agent,
            if r.peer_facts == 0 {
                "".to_string()
            } else {
                format!("{}/{}", r.peer_agreed, r.peer_facts)
            }
        ));
    }
    let (e, n) = totals(rows);
    let (facts, agreed) = rows
        .iter()
        .fold((0, 0), |(f, a), r| (f + r.peer_facts, a + r.peer_agreed));
    s.push_str(&format!(
        "| **all supported** | | **{e}** | **{n}** ({:.1} %) | | | | | | | **{agreed}/{facts}** ({:.1} %) |\n\nNot counted:\n\n",
        100.0 * n as f64 / e.max(1) as f64,
        100.0 * agreed as f64 / facts.max(1) as f64
    ));
    for r in rows.iter().filter(|r| r.excluded.is_some()) {
        s.push_str(&format!(
            "- {} ({} events): {}\n",
            r.source,
            r.events,
            r.excluded.unwrap_or_default()
        ));
    }
    s
}
