//! Every integration test, in one binary: one link of the engine, rdkafka and OpenSSL instead of one per file.
//!
//! In: the engine as a library, the `quench` binary, `fixtures/`, `schemas/` and `../shared`. Out: pass or fail per
//! scenario. State: none between tests; each module's tests use their own topics, ports, directories and
//! environment variable names, so they run side by side on the test harness's threads.

mod support;

mod caep;
mod confirmation;
mod control_characters;
mod delivery;
mod disorder;
mod evidence_messages;
mod forged_logs;
mod fuzz_normalize;
mod guardrails;
mod kafka_demo;
mod keyed;
mod metrics;
mod object_store;
mod outbox_dead_letter;
mod outbox_restart;
mod replay;
mod saas_targets;
mod scenarios;
mod schemas;
mod secrets;
mod shared_samples;
mod simulated;
mod spec_conformance;
mod state_restart;
mod tls;
