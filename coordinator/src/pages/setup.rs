//! The first-run setup page (`/setup?key=KEY`): the one-time link `idlefarm serve` prints opens
//! it, and its form chooses the admin's password through the API (`POST /api/v1/setup`), which
//! uses the link up and logs the browser in. A wrong, used or expired key gets an error page that
//! says how to make a new link.

use std::sync::Arc;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use idlefarm_protocol::accounts::SETUP_PATH;
use idlefarm_protocol::routes::API_PREFIX;
use serde::Deserialize;

use super::chrome::{Chrome, PageResult, render};
use crate::accounts::{self, password};
use crate::error::ApiError;
use crate::server::Coordinator;

/// `?key=` of the setup page.
#[derive(Deserialize)]
pub struct SetupQuery {
    key: Option<String>,
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    chrome: Chrome,
    /// Whose password the form sets.
    user: String,
    key: String,
    setup_url: String,
    min_len: usize,
}

/// `GET /setup?key=KEY`: the form, when the key still works.
pub async fn page(
    State(coord): State<Arc<Coordinator>>,
    query: Result<Query<SetupQuery>, QueryRejection>,
) -> PageResult {
    let missing = || {
        ApiError::bad_request(
            "this page needs the key of a setup link: open the whole link that `idlefarm serve` \
             printed, or make a new one with `idlefarm user setup-link --data DIR`",
        )
    };
    let Query(query) = query.map_err(|_| missing())?;
    let key = query
        .key
        .filter(|k| !k.trim().is_empty())
        .ok_or_else(missing)?;
    let user = accounts::check_setup_key(&coord.store, &key)
        .await
        .map_err(ApiError::from)?;
    render(&SetupPage {
        chrome: Chrome::anonymous(),
        user: user.name,
        key,
        setup_url: format!("{API_PREFIX}{SETUP_PATH}"),
        min_len: password::MIN_LEN,
    })
}
