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
//! [`runtime`] wires the stages to Kafka (consume, process, produce, outbox, commit, with at-least-once offsets);
//! [`evidence`] keeps what it saw and did as Parquet files. [`cli`] holds the commands `demo`, `replay`,
//! `normalize`, `simulate`, `eval`, `explain`, `session`, `backtest` and `ocsf`; [`lab`] the simulator, the
//! samples survey and the revocation stand-in they test and show with. Shared by the stages: [`config`], [`bus`]
//! (Kafka settings and clients, a leaf), [`clock`] (the wall clock of respond), [`state`], [`durable`],
//! [`timeline`] (the processing clock), [`geo`], [`metrics`], [`net`], [`pattern`], [`text`]. No stage imports a later one, and no module imports itself
//! through others (tests in this file).
pub mod bus;
pub mod cli;
pub mod clock;
pub mod config;
pub mod correlate;
pub mod decide;
pub mod detect;
pub mod durable;
pub mod event;
pub mod evidence;
pub mod geo;
pub mod ingest;
pub mod lab;
pub mod metrics;
pub mod net;
pub mod normalize;
pub mod pattern;
pub mod pipeline;
pub mod reorder;
pub mod respond;
pub mod runtime;
pub mod state;
pub mod text;
pub mod timeline;
pub mod watermark;

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

    /// The top-level modules each file of `src/<module>` refers to as `crate::<other>` in its code (comments and the
    /// trailing `#[cfg(test)]` module left out).
    fn module_graph() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        let top = |p: &Path| -> Option<String> {
            let first = p.strip_prefix(&src).ok()?.components().next()?;
            let name = first.as_os_str().to_str()?;
            let name = name.strip_suffix(".rs").unwrap_or(name);
            (name != "lib" && name != "main").then(|| name.to_string())
        };
        let modules: std::collections::BTreeSet<String> =
            files.iter().filter_map(|f| top(f)).collect();
        let mut graph: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
            modules
                .iter()
                .map(|m| (m.clone(), Default::default()))
                .collect();
        for f in &files {
            let Some(from) = top(f) else { continue };
            let text = std::fs::read_to_string(f).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            let code: String = code
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            let mut refer = |name: &str| {
                if name != from && modules.contains(name) {
                    graph.get_mut(&from).unwrap().insert(name.to_string());
                }
            };
            for (i, _) in code.match_indices("crate::") {
                let rest = &code[i + "crate::".len()..];
                if let Some(group) = rest.strip_prefix('{') {
                    // `use crate::{a, b::c, d::{e, f}}`: the first name of each path at the group's top level
                    let (mut depth, mut word, mut first) = (0, String::new(), true);
                    for ch in group.chars() {
                        match ch {
                            '{' => depth += 1,
                            '}' if depth == 0 => break,
                            '}' => depth -= 1,
                            ',' if depth == 0 => first = true,
                            c if (c.is_alphanumeric() || c == '_') && depth == 0 && first => {
                                word.push(c)
                            }
                            _ => {}
                        }
                        if !(ch.is_alphanumeric() || ch == '_' || word.is_empty()) {
                            refer(&word);
                            word.clear();
                            first = false;
                        }
                    }
                } else {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    refer(&name);
                }
            }
        }
        graph
    }

    /// No two top-level modules depend on each other, directly or through others: data flows one way and every
    /// module can be read after the ones it uses.
    #[test]
    fn no_module_depends_on_itself_through_others() {
        let graph = module_graph();
        assert!(graph.len() > 15, "{graph:?}");
        assert!(
            graph["runtime"].contains("pipeline"),
            "the scan reads no uses: {graph:?}"
        );
        // depth-first search for a back edge; report the loop it closes
        fn visit(
            m: &str,
            graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
            path: &mut Vec<String>,
            done: &mut std::collections::BTreeSet<String>,
        ) -> Option<Vec<String>> {
            if let Some(i) = path.iter().position(|p| p == m) {
                let mut cycle = path[i..].to_vec();
                cycle.push(m.to_string());
                return Some(cycle);
            }
            if done.contains(m) {
                return None;
            }
            path.push(m.to_string());
            for next in &graph[m] {
                if let Some(c) = visit(next, graph, path, done) {
                    return Some(c);
                }
            }
            path.pop();
            done.insert(m.to_string());
            None
        }
        let mut done = Default::default();
        for m in graph.keys() {
            let cycle = visit(m, &graph, &mut Vec::new(), &mut done);
            assert!(
                cycle.is_none(),
                "import cycle: {}",
                cycle.unwrap_or_default().join(" → ")
            );
        }
    }

    /// The stages import only earlier stages (and shared leaves): ingest never drives respond, normalize never asks
    /// a detector. The runtime and the commands are the only modules that wire stages together.
    #[test]
    fn no_stage_imports_a_later_stage() {
        let graph = module_graph();
        let order = [
            "ingest",
            "normalize",
            "correlate",
            "detect",
            "decide",
            "respond",
        ];
        for (i, stage) in order.iter().enumerate() {
            let later: Vec<&&str> = order[i + 1..]
                .iter()
                .filter(|l| graph[*stage].contains(**l))
                .collect();
            assert!(
                later.is_empty(),
                "{stage} imports the later stage(s) {later:?}"
            );
            assert!(
                !graph[*stage].contains("runtime") && !graph[*stage].contains("cli"),
                "{stage} imports the wiring: {:?}",
                graph[*stage]
            );
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
