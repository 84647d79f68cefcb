//! Ingest: raw messages in from Kafka or files.
//!
//! In: Kafka records ([`kafka`]) or JSON Lines files and stdin ([`file`]). Out: raw bytes with provenance and
//! the pinned format, handed to [`crate::pipeline::Pipeline`]; decisions and dead letters go back out to Kafka
//! from [`kafka`]. State: Kafka offsets (committed only after processing) and latency histograms.
pub mod file;
pub mod kafka;
