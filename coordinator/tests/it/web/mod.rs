//! The web app in a real headless Chromium against a real coordinator (and agents) on
//! 127.0.0.1.

pub mod browser;
mod farm;
mod farm_admin;
mod login;
