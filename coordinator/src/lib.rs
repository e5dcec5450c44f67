//! The idlefarm coordinator: takes render jobs, leases chunks of frames to agents, stores the
//! frames they upload and assembles the video. The `idlefarm` binary is a thin wrapper around it.

pub mod accounts;
pub mod announce;
pub mod assemble;
pub mod auth;
pub mod cli;
pub mod client;
pub mod compare;
pub mod error;
pub mod events;
pub mod files;
pub mod pages;
pub mod schedule;
pub mod server;
pub mod store;
pub mod submit;
pub mod thumbnail;
