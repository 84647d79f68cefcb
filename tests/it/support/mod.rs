//! Helpers shared by the integration tests, by concern: [`kafka`] (the mock cluster, topics, a whole run),
//! [`http`] (servers), [`decisions`] (the one decision builder, trust, targets), [`events`] (the demo day); here,
//! waiting for an outcome, skipping, and stopping a child process.

#![allow(clippy::unwrap_used, dead_code)]

use quench::cli;
use quench::config::{KafkaConfig, TopicConfig};
use quench::decide::{Action, Decision};
use quench::event::PrincipalKind;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

pub mod decisions;
pub mod events;
pub mod http;
pub mod kafka;
pub mod moto;
pub mod tansu;
pub use decisions::*;
pub use events::*;
pub use http::*;
pub use kafka::*;

/// Poll `cond` every 50 ms until it holds; fail naming `what` after 90 s.
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A test that cannot run because something it needs is missing (`../shared`, the spec tool, npm): a failure, so
/// that CI cannot pass without it, unless the developer opts out with `QUENCH_ALLOW_SKIP=1`.
pub fn skip(why: &str) {
    if std::env::var_os("QUENCH_ALLOW_SKIP").is_some_and(|v| v == "1") {
        eprintln!("skipped (QUENCH_ALLOW_SKIP=1): {why}");
    } else {
        panic!(
            "{why}; this test cannot run without it (set QUENCH_ALLOW_SKIP=1 to skip it locally)"
        );
    }
}

/// Stop a `quench` child process gracefully (SIGTERM), check that it exited successfully, and return its stderr.
pub fn terminate(child: std::process::Child) -> String {
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

/// Start `quench run --config config` as a child process, its stderr piped (logs at info).
pub fn spawn_quench(config: &std::path::Path) -> std::process::Child {
    spawn_quench_to(config, std::process::Stdio::piped())
}

/// Start `quench run --config config` as a child process, its stderr (logs at info) going to `stderr`.
pub fn spawn_quench_to(
    config: &std::path::Path,
    stderr: impl Into<std::process::Stdio>,
) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_quench"))
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "quench=info")
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// An empty directory for one test, `{name}-{pid}` under the system's temporary directory.
pub fn fresh_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
