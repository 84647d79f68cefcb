//! The shared-samples survey: every file of real, public sample events is normalized and counted, per format,
//! with how many events got each key field. `cargo run --example samples_table` prints it as the README table;
//! `tests/shared_samples.rs` holds it to its bar.
//!
//! In: a samples directory of JSON Lines files. Out: one [`Row`] per file. State: none.

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
    (
        "envoyproxy/log__test-log.jsonl",
        "Envoy text access log wrapped in a container-log line (JSON access logs are supported)",
    ),
    (
        "goldensaml_Microsoft365DefenderEvents",
        "Microsoft Defender XDR CloudAppEvents table",
    ),
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
            match norm.normalize(raw.as_bytes(), None, &ctx, &mut evs) {
                Ok(fmt) => {
                    row.normalized += 1;
                    if !row.formats.contains(&fmt) {
                        row.formats.push(fmt);
                    }
                    row.count(&evs);
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
        "| sample | format | events | normalized | principal | ip | session | token | geo | user agent |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows.iter().filter(|r| r.excluded.is_none()) {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.source,
            r.formats.join(", "),
            r.events,
            r.normalized,
            r.with_principal,
            r.with_ip,
            r.with_session,
            r.with_token,
            r.with_geo,
            r.with_user_agent
        ));
    }
    let (e, n) = totals(rows);
    s.push_str(&format!(
        "| **all supported** | | **{e}** | **{n}** ({:.1} %) | | | | | | |\n\nNot counted:\n\n",
        100.0 * n as f64 / e.max(1) as f64
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
