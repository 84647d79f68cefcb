//! The evidence store on S3 (moto's server, real S3 protocol and signing): a replay whose store moves its compacted
//! hours to a bucket answers every reader (`ocsf`, `session`) exactly as one that keeps everything on disk, while
//! its disk holds only the last hours.

#![allow(clippy::unwrap_used)]

use crate::support;
use std::path::Path;
use std::process::Command;

fn quench(args: &[&str], env: &[(&'static str, String)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_quench"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "quench {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A JSON trail without `ingest_time` (the wall clock when each replay read the line).
fn comparable(trail: &str) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.remove("ingest_time");
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v: serde_json::Value = serde_json::from_str(trail).unwrap();
    strip(&mut v);
    v
}

/// Every file under `dir`, recursively.
fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn hours(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|r| r.count()).unwrap_or(0)
}

#[test]
fn a_store_on_s3_answers_every_reader_as_the_local_one_with_only_the_last_hours_on_disk() {
    if !cfg!(feature = "object-store") {
        support::skip(
            "built without the object-store feature (`cargo test --workspace` turns it on)",
        );
        return;
    }
    let Some(moto) = support::moto::start() else {
        return;
    };
    moto.create_bucket("evidence");
    let env = moto.env();
    let dir = support::fresh_dir("quench-object-store");
    let sim = dir.join("sim");
    quench(
        &[
            "simulate",
            "--people",
            "40",
            "--agents",
            "4",
            "--days",
            "3",
            "--seed",
            "11",
            "--out",
            sim.to_str().unwrap(),
        ],
        &[],
    );
    let base = std::fs::read_to_string(sim.join("quench.toml")).unwrap();
    let on_s3 = dir.join("s3.toml");
    std::fs::write(
        &on_s3,
        format!("{base}\n[evidence]\nobject_store = \"s3://evidence/acme/quench\"\n"),
    )
    .unwrap();
    let (local, remote) = (dir.join("local"), dir.join("remote"));
    let events = sim.join("events.jsonl");
    let replay = |cfg: &Path, store: &Path, out: &Path| {
        quench(
            &[
                "replay",
                "--config",
                cfg.to_str().unwrap(),
                events.to_str().unwrap(),
                "--store",
                store.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            &env,
        );
    };
    replay(&sim.join("quench.toml"), &local, &dir.join("local.jsonl"));
    replay(&on_s3, &remote, &dir.join("remote.jsonl"));
    assert_eq!(
        std::fs::read_to_string(dir.join("local.jsonl")).unwrap(),
        std::fs::read_to_string(dir.join("remote.jsonl")).unwrap()
    );

    // the bucket holds the closed hours, one compacted file per table and hour; the disk the last few
    let keys = moto.keys("evidence", "acme/quench/events/");
    let local_hours = hours(&local.join("events"));
    assert!(local_hours > 60, "{local_hours}");
    assert!(keys.len() > 60, "{}", keys.len());
    assert!(
        keys.iter()
            .all(|k| k.starts_with("acme/quench/events/hour=") && k.ends_with(".parquet")),
        "{keys:?}"
    );
    assert!(
        hours(&remote.join("events")) <= 5,
        "{}",
        hours(&remote.join("events"))
    );
    let waiting: Vec<_> = walkdir(&remote.join("_upload"));
    assert!(waiting.is_empty(), "{waiting:?}");

    // every reader gets the same answer from both stores
    let ocsf = |store: &Path| quench(&["ocsf", "--store", store.to_str().unwrap()], &env);
    let (a, b) = (ocsf(&local), ocsf(&remote));
    assert!(a.lines().count() > 0, "no decision was stored");
    assert_eq!(a, b);
    let decisions = std::fs::read_to_string(dir.join("local.jsonl")).unwrap();
    let principal = decisions
        .lines()
        .find_map(|l| {
            let d: serde_json::Value = serde_json::from_str(l).unwrap();
            d["principal"].as_str().map(String::from)
        })
        .unwrap();
    let trail = |store: &Path| {
        quench(
            &[
                "session",
                "--principal",
                &principal,
                "--json",
                "--store",
                store.to_str().unwrap(),
            ],
            &env,
        )
    };
    let (a, b) = (trail(&local), trail(&remote));
    assert!(a.len() > 100, "{a}");
    assert_eq!(comparable(&a), comparable(&b));

    // without the bucket's credentials a reader says where it failed instead of answering with part of the store
    let out = Command::new(env!("CARGO_BIN_EXE_quench"))
        .args(["ocsf", "--store", remote.to_str().unwrap()])
        .env("AWS_ENDPOINT", "http://127.0.0.1:9")
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "y")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("s3://evidence/acme/quench"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
