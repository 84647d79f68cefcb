//! Quench: a streaming session-risk engine.
pub mod event;
pub mod normalize;
