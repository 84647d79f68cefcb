//! The lab: what Quench is tested and shown with, apart from the engine. The traffic simulator (a simulated
//! organisation's people and agents, benign traps and labelled attacks, in every vendor's log format) and its labels,
//! the survey
//! of the shared real samples, the local stand-in for the revocation APIs that the demo and tests send to, and a
//! Kafka-compatible broker in its own process (Tansu) for the tests and benchmarks that need one.
//!
//! In: a simulation's settings, sample files, HTTP requests. Out: raw vendor events with labels, survey tables,
//! recorded requests. State: none beyond each run's.

pub mod labels;
pub mod samples;
pub mod simulate;
pub mod stub;
pub mod tansu;
