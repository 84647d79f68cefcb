//! Quench: a streaming session-risk engine.
pub mod correlate;
pub mod detect;
pub mod event;
pub mod normalize;
pub mod state;
pub mod decide;
pub mod respond;
