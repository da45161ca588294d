//! The `hangar` binary's library half: the configuration contract and the assembly of a node, so that
//! tests build a node exactly as `hangar serve` does and serve it in their own process.

pub mod admin;
pub mod client;
pub mod config;
pub mod log_output;
pub mod probe;
pub mod send_watch;
pub mod serve;
pub mod startup;
