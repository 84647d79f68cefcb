//! Tansu, a Kafka-compatible broker published as a cargo package, run in its own process for the tests and
//! benchmarks that need a broker outside this process (instances killed and restarted, rebalances between
//! processes, throughput). `.ci/run` installs it when it is missing (`cargo install --locked tansu --features
//! dynostore`).
//!
//! In: nothing. Out: a running broker on a free local port with in-memory storage, stopped when dropped. State:
//! the broker's child process.

use rdkafka::consumer::{BaseConsumer, Consumer};
use std::time::{Duration, Instant};

/// A Tansu broker process, killed when dropped.
pub struct Tansu {
    child: std::process::Child,
    /// `127.0.0.1:PORT`.
    pub bootstrap: String,
}

impl Tansu {
    /// Start a broker and wait (up to 30 s) until it answers a metadata request. Fails when `tansu` is not on the
    /// PATH or does not come up.
    pub fn start() -> std::io::Result<Tansu> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = std::process::Command::new("tansu")
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let t = Tansu {
            child,
            bootstrap: format!("127.0.0.1:{port}"),
        };
        let probe: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &t.bootstrap)
            .create()
            .map_err(std::io::Error::other)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while probe.fetch_metadata(None, Duration::from_secs(1)).is_err() {
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!(
                    "tansu did not answer on {} within 30 s",
                    t.bootstrap
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(t)
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
