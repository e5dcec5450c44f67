//! End-to-end tests of the coordinator with real agents, renderers, ffmpeg and SQLite.
//! One test binary (modules below) so it links once.

mod accounts;
mod auth;
mod backups;
mod bad_input;
mod common;
mod control;
mod discovery;
mod farm;
mod hostile_agent;
mod hostile_submit;
mod lab_sim;
mod long_poll;
mod metrics;
mod openapi;
mod parallel;
mod povray_examples;
mod presence;
mod scenes;
mod sequence;
mod tls;
mod up;
mod uploads;
mod web;
