//! zhw: what every thread of a running Python server is doing, from outside.
//!
//! The pipeline, one module per step (docs/explanation/architecture.md):
//! [`target`] (what the user named → PIDs) → [`attach`] (PIDs →
//! [`model::Snapshot`]) → [`classify`] (roles and states) → [`report`] (the
//! facts) → [`policy`] (thresholds → status and exit code) → [`render`]
//! (text, JSON, HTML). [`inspect`] runs the first four for several targets
//! within a deadline; [`cli`] wires it to the command line.

pub mod attach;
pub mod classify;
pub mod cli;
pub mod demo;
pub mod inspect;
pub mod model;
pub mod policy;
pub mod privilege;
pub mod redact;
pub mod render;
pub mod report;
pub mod sanitize;
pub mod serve;
pub mod source;
pub mod state;
pub mod target;
pub mod threshold;
pub mod track;
