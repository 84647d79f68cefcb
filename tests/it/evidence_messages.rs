//! The evidence store keeps an event read from a message as that message and what correlation added, and its
//! writer's thread normalizes and correlates it again (`src/evidence/tables/messages.rs`). What it stores must be
//! exactly what the pipeline's thread correlated: here the same traffic is stored both ways, every value recorded
//! on the pipeline's thread and every event made again on the writer's, and the two stores hold the same rows.

#![allow(clippy::unwrap_used)]

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampMillisecondType, UInt32Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use quench::config::Config;
use quench::event::{Provenance, Ts};
use quench::evidence::{read, tables::TableKind, Evidence};
use quench::lab::simulate::{simulate, SimConfig};
use quench::pipeline::Pipeline;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// Every row of the events table, each as one line of its values (all columns), sorted.
fn rows(store: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for b in read::table(store, TableKind::Events, None).unwrap() {
        out.extend((0..b.num_rows()).map(|i| row(&b, i)));
    }
    out.sort();
    out
}

fn row(b: &RecordBatch, i: usize) -> String {
    let schema = b.schema();
    let mut line = String::new();
    for (f, c) in schema.fields().iter().zip(b.columns()) {
        let v = if c.is_null(i) {
            "∅".to_string()
        } else {
            match c.data_type() {
                DataType::Utf8 => format!("{:?}", c.as_string::<i32>().value(i)),
                DataType::Timestamp(..) => c
                    .as_primitive::<TimestampMillisecondType>()
                    .value(i)
                    .to_string(),
                DataType::UInt64 => c.as_primitive::<UInt64Type>().value(i).to_string(),
                DataType::UInt32 => c.as_primitive::<UInt32Type>().value(i).to_string(),
                DataType::Float64 => c.as_primitive::<Float64Type>().value(i).to_string(),
                DataType::Boolean => c.as_boolean().value(i).to_string(),
                DataType::List(_) => {
                    let l = c.as_list::<i32>().value(i);
                    let s = l.as_string::<i32>();
                    format!("{:?}", (0..s.len()).map(|k| s.value(k)).collect::<Vec<_>>())
                }
                t => panic!("{}: a column of type {t} this test does not read", f.name()),
            }
        };
        line.push_str(f.name());
        line.push('=');
        line.push_str(&v);
        line.push('\t');
    }
    line
}

/// A value of column `name` in a row written by [`row`].
fn value<'r>(row: &'r str, name: &str) -> &'r str {
    row.split('\t')
        .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
        .unwrap_or("∅")
}

/// Store `lines` through a pipeline: each event made again from its message on the writer's thread, or, when
/// `values`, every value recorded on the pipeline's thread. Returns the decisions' ids.
fn store(cfg: &Config, lines: &[String], dir: &Path, values: bool) -> Vec<String> {
    let mut p = Pipeline::new(cfg).unwrap();
    p.use_stream_time();
    let mut at = cfg.evidence.clone();
    at.remake_on_writer = !values;
    p.store_evidence(Evidence::open(&at, dir).unwrap());
    if !values {
        p.evidence().unwrap().always_keep_messages();
    }
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let prov = Provenance::File {
            path: "traffic.jsonl".into(),
            line: i as u64 + 1,
        };
        // the same ingest time for every line, so that both stores hold the same `ingest_time`
        let _ = p.process(l.as_bytes(), None, prov, Ts(1_900_000_000_000), &mut out);
    }
    p.release_all(&mut out);
    let e = p.take_evidence().unwrap();
    let stats = e.stats.clone();
    e.close(None).unwrap();
    // each way was the way asked for: most rows made again from their messages, or none
    let remade = stats.remade.load(Ordering::Relaxed);
    let rows = stats.rows.load(Ordering::Relaxed);
    if values {
        assert_eq!(remade, 0);
    } else {
        assert!(remade * 2 >= rows, "{remade} of {rows} rows made again");
    }
    out.into_iter().map(|d| d.decision_id).collect()
}

#[test]
fn events_made_again_from_their_messages_are_stored_as_the_values_the_pipeline_correlated() {
    let base: PathBuf =
        std::env::temp_dir().join(format!("quench-evidence-messages-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    // a simulated organisation with every attack and trap (agents' tokens attributed to their jobs, gateway calls
    // to agents' principals, forged and anonymous claims, envelopes), then every format's fixture
    let sim = base.join("sim");
    simulate(
        &SimConfig {
            people: 120,
            agents: 20,
            days: 2,
            seed: 5,
            only: None,
            event_time_order: false,
        },
        &sim,
    )
    .unwrap();
    let cfg = quench::cli::eval::traffic_config(&sim).unwrap();
    let mut lines: Vec<String> = std::fs::read_to_string(sim.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let formats = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/formats");
    let mut files: Vec<_> = std::fs::read_dir(&formats)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        lines.extend(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(String::from),
        );
    }

    let made = base.join("made-again");
    let copied = base.join("values");
    let decided = store(&cfg, &lines, &made, false);
    assert_eq!(decided, store(&cfg, &lines, &copied, true));
    let (made, copied) = (rows(&made), rows(&copied));
    assert!(made.len() > lines.len() / 2, "{} rows", made.len());
    assert_eq!(made.len(), copied.len());
    for (m, c) in made.iter().zip(&copied) {
        assert_eq!(m, c);
    }
    // what makes the two ways differ if correlation is not made again: attributed jobs and principals, and the
    // namespaces of unvouched and non-person identities
    let gateway_with_job = made
        .iter()
        .filter(|r| value(r, "family") == "\"gateway\"" && value(r, "job_id") != "∅")
        .count();
    let claimed = made
        .iter()
        .filter(|r| value(r, "principal").starts_with("\"claimed:"))
        .count();
    assert!(
        gateway_with_job > 0 && claimed > 0,
        "{gateway_with_job} {claimed}"
    );
    let _ = std::fs::remove_dir_all(&base);
}
