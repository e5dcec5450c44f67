//! The overview, the landing page: what the farm is doing right now.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;

use super::chrome::{Chrome, Nav, PageCaller, PageResult, render};
use crate::server::Coordinator;

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    chrome: Chrome,
}

/// `GET /`.
pub async fn page(
    State(_coord): State<Arc<Coordinator>>,
    PageCaller(caller): PageCaller,
) -> PageResult {
    render(&OverviewPage {
        chrome: Chrome::new(&caller, Nav::Overview),
    })
}
