//! Ingest: raw messages in from Kafka or files.
//!
//! In: Kafka records ([`kafka`]) or JSON Lines files and stdin ([`file`]). Out: raw bytes with their provenance,
//! which [`crate::runtime`] (Kafka) and the commands (files) hand to [`crate::pipeline::Pipeline`]. State: none;
//! the runtime stores and commits offsets after processing.
pub mod file;
pub mod kafka;
