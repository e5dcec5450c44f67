//! The web app in a real headless Chromium against a real coordinator (and agents) on
//! 127.0.0.1.

mod admin;
pub mod browser;
mod farm;
mod farm_admin;
mod jobs;
mod login;
mod submit;
