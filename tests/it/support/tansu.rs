//! Tansu, a Kafka-compatible broker in its own process, for the tests that need a broker outside this process
//! (instances killed with SIGKILL, rebalances between processes). `.ci/run` installs it when it is missing
//! (`cargo install --locked tansu --features dynostore`).
//!
//! In: nothing. Out: a running broker on a free local port with in-memory storage, stopped when dropped, and topics
//! created through the Kafka admin API. State: the broker's child process.

#![allow(clippy::unwrap_used, dead_code)]

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use std::time::{Duration, Instant};

/// A Tansu broker process.
pub struct Tansu {
    child: std::process::Child,
    pub bootstrap: String,
}

impl Tansu {
    /// Start a broker, or `None` (after [`super::skip`]) when `tansu` is not installed.
    pub fn start() -> Option<Tansu> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = match std::process::Command::new("tansu")
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                super::skip(&format!(
                    "tansu is not installed ({e}): cargo install --locked tansu --features dynostore"
                ));
                return None;
            }
        };
        let t = Tansu {
            child,
            bootstrap: format!("127.0.0.1:{port}"),
        };
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &t.bootstrap)
            .create()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while c.fetch_metadata(None, Duration::from_secs(1)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not start on {}",
                t.bootstrap
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(t)
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Create `topics` (name, partitions, compacted) on the broker at `bootstrap`.
pub async fn create_topics(bootstrap: &str, topics: &[(&str, i32, bool)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(name, partitions, compact)| {
            let t = NewTopic::new(name, *partitions, TopicReplication::Fixed(1));
            if *compact {
                t.set("cleanup.policy", "compact")
            } else {
                t
            }
        })
        .collect();
    for r in admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .unwrap()
    {
        r.unwrap();
    }
}
