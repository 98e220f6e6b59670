//! The Faceswap++ daemon (`faceswapd`): the background service that the OFX plugin and the CLI
//! talk to, and the command line itself.
//!
//! `serve` runs the service: one instance per user (lock file), a local socket speaking
//! [`faceswap_protocol`], a persisted job queue, shared-memory frame processing. Every other
//! subcommand is a client that starts the service in the background when it is not running.

pub mod assets;
pub mod atomic;
pub mod checkpoint;
pub mod cli;
pub mod cli_output;
pub mod client;
pub mod config;
pub mod device;
pub mod doctor;
pub mod extract;
pub mod faceset;
pub mod geometry;
pub mod gpu_check;
pub mod import;
pub mod jobs;
pub mod lock;
pub mod logging;
pub mod masks;
pub mod media;
pub mod memory;
pub mod merge;
pub mod paths;
pub mod project;
pub mod runtime;
pub mod sampling;
pub mod server;
pub mod service;
pub mod stages;
pub mod toml_error;
pub mod tools;
pub mod track;
pub mod train;
pub mod warp;
