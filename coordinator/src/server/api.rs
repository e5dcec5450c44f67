//! The API's route table: every method and path the coordinator answers under
//! [`API_PREFIX`](idlefarm_protocol::API_PREFIX), each with its handler, written once. The
//! router is built from it, and the OpenAPI coverage check reads it ([`api_routes`]), so the
//! document cannot silently miss a route the server answers.

use std::fmt;
use std::sync::Arc;

use axum::handler::Handler;
use axum::routing::{MethodFilter, MethodRouter, on};
use idlefarm_protocol::routes;

use super::{Coordinator, accounts, actions, agents, jobs, openapi, publish, requests, uploads};

/// An HTTP method the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verb {
    /// `GET` (axum answers `HEAD` with it).
    Get,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
}

impl Verb {
    /// Every verb, in the order documents list them.
    pub const ALL: [Verb; 5] = [Verb::Get, Verb::Post, Verb::Put, Verb::Patch, Verb::Delete];

    /// The method's name as on the wire (`GET`).
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Put => "PUT",
            Verb::Patch => "PATCH",
            Verb::Delete => "DELETE",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Put => MethodFilter::PUT,
            Verb::Patch => MethodFilter::PATCH,
            Verb::Delete => MethodFilter::DELETE,
        }
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One route of the API: what answers `verb` on `path` (a template, `{id}` for a parameter).
pub(crate) struct Endpoint {
    pub verb: Verb,
    pub path: String,
    pub handler: MethodRouter<Arc<Coordinator>>,
    /// Whether the body may be as large as the coordinator's upload limit (the others keep
    /// axum's small default).
    pub large_body: bool,
}

fn at<H, T>(verb: Verb, path: impl Into<String>, handler: H) -> Endpoint
where
    H: Handler<T, Arc<Coordinator>>,
    T: 'static,
{
    Endpoint {
        verb,
        path: path.into(),
        handler: on(verb.filter(), handler),
        large_body: false,
    }
}

/// The same endpoint, taking bodies up to the upload limit.
fn large(mut endpoint: Endpoint) -> Endpoint {
    endpoint.large_body = true;
    endpoint
}

/// An account route (relative to the API prefix in the protocol) under the prefix.
fn account<H, T>(verb: Verb, path: &str, handler: H) -> Endpoint
where
    H: Handler<T, Arc<Coordinator>>,
    T: 'static,
{
    at(verb, format!("{}{path}", routes::API_PREFIX), handler)
}

/// Every API route with its handler.
pub(crate) fn endpoints() -> Vec<Endpoint> {
    use Verb::{Delete, Get, Patch, Post, Put};
    use idlefarm_protocol::accounts as a;
    vec![
        at(Post, routes::AGENT_REGISTER, agents::register),
        at(Post, routes::ENROLMENT_REQUESTS, requests::create),
        at(Get, routes::ENROLMENT_REQUESTS, requests::list),
        at(Post, routes::ENROLMENT_REQUEST_CLAIM, requests::claim),
        at(Post, routes::ENROLMENT_REQUEST_APPROVE, requests::approve),
        at(Delete, routes::ENROLMENT_REQUEST, requests::reject),
        at(Post, routes::AGENT_HEARTBEAT, agents::heartbeat),
        at(Post, routes::AGENT_LEASE, agents::lease),
        at(Get, routes::AGENT_BLOB, agents::blob),
        // No body limit layer: the handler streams the body to disk under a limit derived from
        // the job's frame size, after checking the lease.
        at(Put, routes::AGENT_FRAME, agents::upload_frame),
        at(Post, routes::AGENT_LEASE_END, agents::end_lease),
        at(Get, routes::AGENTS, jobs::list_agents),
        at(Patch, routes::AGENT, actions::update),
        at(Delete, routes::AGENT, actions::forget),
        at(Post, routes::AGENT_DRAIN, actions::drain),
        at(Post, routes::AGENT_DISABLE, actions::disable),
        at(Post, routes::AGENT_ENABLE, actions::enable),
        at(Post, routes::AGENT_RELEASE, actions::release),
        at(Get, routes::AGENT_HISTORY, publish::history),
        at(Get, routes::JOBS, jobs::list_jobs),
        large(at(Post, routes::JOBS, jobs::submit)),
        large(at(Post, routes::UPLOADS, uploads::stage)),
        at(Get, routes::UPLOAD, uploads::show),
        at(Get, routes::JOB, jobs::get_job),
        at(Delete, routes::JOB, actions::delete),
        at(Get, routes::JOB_FAILURES, jobs::failures),
        at(Get, routes::JOB_FRAMES, jobs::list_frames),
        at(Get, routes::JOB_FRAME_FILE, jobs::frame_file),
        at(Get, routes::JOB_FRAME_THUMBNAIL, publish::thumbnail),
        at(Get, routes::JOB_VIDEO, jobs::video),
        at(Get, routes::JOB_FRAMES_ZIP, jobs::frames_zip),
        at(Post, routes::JOB_CANCEL, actions::cancel),
        at(Post, routes::JOB_PAUSE, actions::pause),
        at(Post, routes::JOB_RESUME, actions::resume),
        at(Post, routes::JOB_RETRY, actions::retry),
        at(Post, routes::JOB_PRIORITY, actions::priority),
        at(Get, routes::EVENTS, publish::events),
        at(Get, routes::OPENAPI, openapi::serve),
        account(Post, a::SESSION_PATH, accounts::login),
        account(Get, a::SESSION_PATH, accounts::session),
        account(Delete, a::SESSION_PATH, accounts::logout),
        account(Post, a::SETUP_PATH, accounts::setup),
        account(Post, a::TOKENS_PATH, accounts::create_token),
        account(
            Delete,
            a::CURRENT_TOKEN_PATH,
            accounts::revoke_current_token,
        ),
        account(Get, a::USERS_PATH, accounts::list_users),
        account(Post, a::USERS_PATH, accounts::add_user),
        account(Patch, a::USER_ROUTE, accounts::set_role),
        account(Delete, a::USER_ROUTE, accounts::remove_user),
        account(Put, a::USER_PASSWORD_ROUTE, accounts::set_password),
        account(
            Get,
            a::ENROLMENT_TOKENS_PATH,
            accounts::list_enrolment_tokens,
        ),
        account(
            Post,
            a::ENROLMENT_TOKENS_PATH,
            accounts::create_enrolment_token,
        ),
        account(
            Delete,
            a::ENROLMENT_TOKEN_ROUTE,
            accounts::revoke_enrolment_token,
        ),
        account(Get, a::AUDIT_PATH, accounts::audit_log),
    ]
}

/// Every (method, path template) the API answers, in the table's order: what the OpenAPI
/// document must describe.
pub fn api_routes() -> Vec<(Verb, String)> {
    endpoints().into_iter().map(|e| (e.verb, e.path)).collect()
}
