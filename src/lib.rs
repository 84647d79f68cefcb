//! Quench: a streaming session-risk engine.
//!
//! In: raw audit events from Kafka topics, JSON Lines files or stdin. Out: decision records (on a Kafka topic or
//! stdout), revocation commands to IdP and SaaS APIs, and, when configured, an evidence store of every event,
//! finding, decision and command outcome. State: the per-key state of correlate, every detector and decide, bounded
//! by event-time TTLs and key caps ([`state`]); with `[state] dir`, saved with the input offsets it covers
//! ([`durable`]).
//!
//! Raw audit events flow one way through stages, one module each:
//! [`ingest`] (Kafka, files) → [`normalize`] (one file per source format, into [`event::SessionEvent`]) →
//! [`correlate`] (links tokens, sessions, jobs and principals in bounded keyed state) → [`detect`] (one file per
//! detector, each emitting [`detect::Finding`]s) → [`decide`] (risk score with decay, policy bands, dedup,
//! guardrails; emits [`decide::Decision`]s) → [`respond`] (one file per revocation target, the outbox, and
//! confirmation from the vendor's own log). [`pipeline::Pipeline`] runs normalize to decide for one message;
//! [`ingest::kafka`] drives it from Kafka with at-least-once offsets; [`evidence`] keeps what it saw and did as
//! Parquet files. [`app`] holds the commands `demo`, `replay`, `normalize`, `simulate`, `eval`, `explain`,
//! `session`, `backtest` and `ocsf`, and the parts `run` shares with them (the Kafka loop with the outbox, the
//! metrics endpoint). Shared by the stages: [`config`], [`timeline`] (the processing clock), [`metrics`], [`bus`],
//! [`net`], [`pattern`], [`text`].
pub mod app;
pub mod bus;
pub mod config;
pub mod correlate;
pub mod decide;
pub mod detect;
pub mod durable;
pub mod event;
pub mod evidence;
pub mod ingest;
pub mod metrics;
pub mod net;
pub mod normalize;
pub mod pattern;
pub mod pipeline;
pub mod respond;
pub mod state;
pub mod text;
pub mod timeline;

#[cfg(test)]
mod house {
    use std::path::{Path, PathBuf};

    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                sources(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    /// Every source file of the engine and of `quench-query` opens with a module comment that says what flows in,
    /// what flows out and what state it keeps, so a newcomer reads a component's contract before its code.
    #[test]
    fn every_source_file_opens_with_what_flows_in_and_out_and_what_it_keeps() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        sources(&root.join("src"), &mut files);
        sources(&root.join("query/src"), &mut files);
        assert!(files.len() > 50, "{} files", files.len());
        let mut missing = Vec::new();
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            let opening: String = text
                .lines()
                .take_while(|l| l.starts_with("//!"))
                .collect::<Vec<_>>()
                .join("\n");
            let lacks: Vec<&str> = ["In:", "Out:", "State:"]
                .into_iter()
                .filter(|m| !opening.contains(m))
                .collect();
            if !lacks.is_empty() {
                missing.push(format!("{}: {lacks:?}", f.display()));
            }
        }
        assert!(missing.is_empty(), "{missing:#?}");
    }
}
