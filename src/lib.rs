//! Quench: a streaming session-risk engine.
//!
//! Raw audit events flow one way through stages, one module each:
//! [`ingest`] (Kafka, files) → [`normalize`] (one file per source format, into [`event::SessionEvent`]) →
//! [`correlate`] (links tokens, sessions, jobs and principals in bounded keyed state) → [`detect`] (one file per
//! detector, each emitting [`detect::Finding`]s) → [`decide`] (risk score with decay, policy bands, dedup; emits
//! [`decide::Decision`]s) → [`respond`] (one file per revocation target). [`pipeline::Pipeline`] runs normalize
//! to decide for one message; [`ingest::kafka`] drives it from Kafka with at-least-once offsets; [`app`] holds
//! the `demo`, `replay` and `normalize` commands.
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
