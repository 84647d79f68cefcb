//! Tansu for the tests ([`quench::lab::tansu`]): a broker in its own process, or a skip (a failure unless
//! `QUENCH_ALLOW_SKIP=1`) when it is not installed; topics created through the Kafka admin API.
//!
//! In: nothing. Out: a running broker, topics. State: the broker's process (stopped when dropped).

#![allow(clippy::unwrap_used, dead_code)]

pub use quench::lab::tansu::Tansu;

/// Start a broker, or `None` (after [`super::skip`]) when `tansu` is not installed.
pub fn start() -> Option<Tansu> {
    match Tansu::start() {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            super::skip(&format!(
                "tansu is not installed ({e}): cargo install --locked tansu --features dynostore"
            ));
            None
        }
        Err(e) => panic!("tansu: {e}"),
    }
}

/// Create `topics` (name, partitions, compacted) on the broker at `bootstrap`.
pub async fn create_topics(bootstrap: &str, topics: &[(&str, i32, bool)]) {
    quench::bus::create_topics(&super::kafka(bootstrap, "admin"), topics)
        .await
        .unwrap();
}
