//! Renderers: pure functions from a Report (and its Evaluation) to bytes.
//! They never sample, never decide statuses, and write only to their writer.

pub mod html;
pub mod json;
pub mod text;
