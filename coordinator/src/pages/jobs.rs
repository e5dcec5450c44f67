//! The jobs page: the person's jobs (every job for an admin) with state, progress, ETA, owner and
//! priority, filtered by state and owner through the URL (`/jobs?state=rendering&owner=ada`), so
//! a filtered view can be shared. The table is a live region that follows job events.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use idlefarm_protocol::{JobInfo, JobState};
use serde::Deserialize;

use super::chrome::{Chrome, Nav, PageCaller, PageResult, render};
use super::view::{JobRow, query_string};
use crate::error::ApiError;
use crate::server::Coordinator;

/// Route of the jobs page.
pub const JOBS_PAGE: &str = "/jobs";

/// The page's URL query: filters, and `part` for a live region's refresh.
#[derive(Debug, Default, Deserialize)]
pub struct JobsQuery {
    /// `active` (not finished), a [`JobState`] name, or empty for all.
    #[serde(default)]
    state: String,
    /// An owner's login name (admins only), or empty for all.
    #[serde(default)]
    owner: String,
    /// `table` to render only the table.
    #[serde(default)]
    part: String,
}

/// A state filter: what the select offers.
pub struct StateChoice {
    pub value: &'static str,
    pub label: &'static str,
}

const STATE_CHOICES: &[StateChoice] = &[
    StateChoice {
        value: "",
        label: "all states",
    },
    StateChoice {
        value: "active",
        label: "not finished",
    },
    StateChoice {
        value: "rendering",
        label: "rendering",
    },
    StateChoice {
        value: "paused",
        label: "paused",
    },
    StateChoice {
        value: "assembling",
        label: "assembling",
    },
    StateChoice {
        value: "done",
        label: "done",
    },
    StateChoice {
        value: "failed",
        label: "failed",
    },
    StateChoice {
        value: "cancelled",
        label: "cancelled",
    },
];

/// Which jobs a state filter keeps.
fn keeps(filter: &str, state: JobState) -> Result<bool, ApiError> {
    Ok(match filter {
        "" => true,
        "active" => !state.is_final(),
        name => {
            let wanted = JobState::parse(name).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "`{name}` is not a job state; use active, rendering, paused, assembling, done, failed or cancelled"
                ))
            })?;
            state == wanted
        }
    })
}

#[derive(Template)]
#[template(path = "jobs_table.html")]
struct JobsTable {
    rows: Vec<JobRow>,
    /// This page's URL with `part=table`.
    src: String,
    show_owner: bool,
    filtered: bool,
}

#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsPage {
    chrome: Chrome,
    table: JobsTable,
    states: &'static [StateChoice],
    state: String,
    owners: Vec<String>,
    owner: String,
}

/// `GET /jobs`.
pub async fn page(
    State(coord): State<Arc<Coordinator>>,
    PageCaller(caller): PageCaller,
    Query(q): Query<JobsQuery>,
) -> PageResult {
    let owner_filter = if caller.is_admin() {
        q.owner.trim()
    } else {
        ""
    };
    let mut jobs: Vec<JobInfo> = coord.job_infos(|owner| caller.may_see(owner)).await?;
    let mut kept = Vec::with_capacity(jobs.len());
    for job in jobs.drain(..) {
        let owner_ok = owner_filter.is_empty() || job.owner.as_deref() == Some(owner_filter);
        if owner_ok && keeps(&q.state, job.state)? {
            kept.push(job);
        }
    }
    // Newest first: the job just submitted is at the top.
    kept.sort_by_key(|j| std::cmp::Reverse(j.id));
    let src = format!(
        "{JOBS_PAGE}?{}",
        query_string(&[
            ("state", &q.state),
            ("owner", owner_filter),
            ("part", "table")
        ])
    );
    let table = JobsTable {
        rows: kept.iter().map(JobRow::of).collect(),
        src,
        show_owner: caller.is_admin(),
        filtered: !q.state.is_empty() || !owner_filter.is_empty(),
    };
    if q.part == "table" {
        return render(&table);
    }
    let owners = if caller.is_admin() {
        let mut names: Vec<String> = coord
            .store()
            .user_names()
            .await
            .map_err(ApiError::from)?
            .into_values()
            .collect();
        names.sort();
        names
    } else {
        Vec::new()
    };
    render(&JobsPage {
        chrome: Chrome::new(&caller, Nav::Jobs),
        table,
        states: STATE_CHOICES,
        state: q.state.clone(),
        owners,
        owner: owner_filter.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_filters() {
        assert!(keeps("", JobState::Done).unwrap());
        assert!(keeps("active", JobState::Paused).unwrap());
        assert!(!keeps("active", JobState::Cancelled).unwrap());
        assert!(keeps("failed", JobState::Failed).unwrap());
        assert!(!keeps("failed", JobState::Done).unwrap());
        let err = keeps("<b>", JobState::Done).unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST);
    }
}
