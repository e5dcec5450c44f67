//! The farm page (`/farm`): every PC with its state, the thumbnail of what it renders, its
//! 24-hour and 7-day timelines, frames and yields; for admins, the actions on each PC and the
//! enrolment tokens. Every action is a form to the agents' and tokens' JSON API.
//!
//! Live parts (`?part=`): `pc` with `&agent=ID` (one PC's state, timelines and action buttons,
//! after its presence, frames or settings change), `pcs` (the whole list, when a PC the page
//! does not show yet appears; see `web/static/farm.js`) and `tokens` (the token list, after
//! the token forms). The rename and tags fields are outside every live part, so nothing a
//! person types is replaced under them.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use idlefarm_protocol::accounts::{
    ENROLMENT_TOKENS_PATH, EnrolmentTokenInfo, enrolment_token_path,
};
use idlefarm_protocol::routes::{self, API_PREFIX};
use serde::Deserialize;

use super::chrome::{Chrome, Nav, PageCaller, PageResult, render};
use super::pc::Pc;
use super::timeline::{self, Period};
use super::view::iso_time;
use crate::error::ApiError;
use crate::server::now_ms;
use crate::server::{Caller, Coordinator};

/// Route of the farm page.
pub const FARM_PAGE: &str = "/farm";

/// The page's query: which live part to render (other parameters are ignored).
#[derive(Debug, Deserialize)]
pub struct FarmQuery {
    part: Option<String>,
    agent: Option<i64>,
}

#[derive(Template)]
#[template(path = "farm.html")]
struct FarmPage {
    chrome: Chrome,
    pcs: Vec<Pc>,
    admin: bool,
    legend: Vec<(&'static str, &'static str)>,
    tokens: Vec<Token>,
    requests: Vec<Request>,
    tokens_url: String,
    coordinator_url: String,
    /// The HTTPS certificate's fingerprint, for `--fingerprint` (none over plain HTTP).
    fingerprint: Option<String>,
}

#[derive(Template)]
#[template(path = "farm_pcs.html")]
struct PcsPart {
    pcs: Vec<Pc>,
    admin: bool,
}

#[derive(Template)]
#[template(path = "farm_pc.html")]
struct PcPart {
    pc: Pc,
    admin: bool,
}

/// What stands in for a PC that was forgotten while a page showed it.
#[derive(Template)]
#[template(path = "farm_pc_gone.html")]
struct PcGonePart {
    agent: i64,
}

#[derive(Template)]
#[template(path = "farm_tokens.html")]
struct TokensPart {
    tokens: Vec<Token>,
}

#[derive(Template)]
#[template(path = "farm_requests.html")]
struct RequestsPart {
    requests: Vec<Request>,
}

/// A PC's request to join, as the admin sees it.
pub struct Request {
    /// Its number.
    pub id: i64,
    /// The name the PC gave.
    pub name: String,
    /// Its renderers, e.g. `povray 3.7.0.10`.
    pub renderers: String,
    /// When it asked, ISO 8601.
    pub asked: String,
    /// `waiting` or `approved`.
    pub state: String,
    /// Where its Approve form posts.
    pub approve: String,
    /// Where its Turn down form sends DELETE.
    pub reject: String,
}

async fn requests(coord: &Coordinator) -> Result<Vec<Request>, ApiError> {
    let since = now_ms() / 1000 - crate::server::ENROLMENT_REQUEST_TTL_SECS;
    let open = coord.store.open_requests(since).await?;
    Ok(open
        .into_iter()
        .map(|r| {
            let id = r.id.to_string();
            Request {
                id: r.id,
                name: r.name,
                renderers: (r.renderers.iter())
                    .map(|x| format!("{} {}", x.renderer.as_str(), x.version))
                    .collect::<Vec<_>>()
                    .join(", "),
                asked: iso_time(r.created_at),
                state: r.state,
                approve: routes::ENROLMENT_REQUEST_APPROVE.replace("{id}", &id),
                reject: routes::ENROLMENT_REQUEST.replace("{id}", &id),
            }
        })
        .collect())
}

/// An enrolment token as the list shows it: never the whole secret again.
pub struct Token {
    /// Id.
    pub id: i64,
    /// Its first characters, to tell tokens apart.
    pub prefix: String,
    /// When it was made, ISO 8601.
    pub created: String,
    /// When it stops (stopped) enrolling, ISO 8601.
    pub expires: Option<String>,
    /// `live`, `expired` or `revoked`.
    pub state: &'static str,
    /// `DELETE` revokes it.
    pub revoke: String,
}

impl Token {
    fn new(info: &EnrolmentTokenInfo, now_secs: i64) -> Token {
        let state = if info.revoked_at.is_some() {
            "revoked"
        } else if info.is_live(now_secs) {
            "live"
        } else {
            "expired"
        };
        Token {
            id: info.id,
            prefix: info.token.chars().take(6).collect(),
            created: iso_time(info.created_at),
            expires: info.expires_at.map(iso_time),
            state,
            revoke: format!("{API_PREFIX}{}", enrolment_token_path(info.id)),
        }
    }
}

/// `GET /farm`, `GET /farm?part=pcs|pc&agent=ID|tokens`.
pub async fn page(
    State(coord): State<Arc<Coordinator>>,
    PageCaller(caller): PageCaller,
    headers: HeaderMap,
    query: Result<Query<FarmQuery>, QueryRejection>,
) -> PageResult {
    let Query(q) = query.map_err(|e| {
        ApiError::bad_request(format!(
            "malformed query: {}; use ?part=pcs, ?part=pc&agent=ID or ?part=tokens",
            e.body_text()
        ))
    })?;
    let admin = caller.is_admin();
    match (q.part.as_deref(), q.agent) {
        (None, None) => {
            let (tokens, requests) = match admin {
                true => (tokens(&coord).await?, requests(&coord).await?),
                false => (Vec::new(), Vec::new()),
            };
            render(&FarmPage {
                chrome: Chrome::new(&caller, Nav::Farm),
                pcs: pcs(&coord, &caller, None).await?,
                admin,
                legend: timeline::legend(),
                tokens,
                requests,
                tokens_url: format!("{API_PREFIX}{ENROLMENT_TOKENS_PATH}"),
                coordinator_url: coordinator_url(&headers, coord.config.tls_fingerprint.is_some()),
                fingerprint: coord.config.tls_fingerprint.clone(),
            })
        }
        (Some("pcs"), None) => render(&PcsPart {
            pcs: pcs(&coord, &caller, None).await?,
            admin,
        }),
        (Some("pc"), Some(agent)) => match pcs(&coord, &caller, Some(agent)).await?.pop() {
            Some(pc) => render(&PcPart { pc, admin }),
            None => render(&PcGonePart { agent }),
        },
        (Some("tokens"), None) => {
            caller.require_admin_to("see enrolment tokens")?;
            render(&TokensPart {
                tokens: tokens(&coord).await?,
            })
        }
        (Some("requests"), None) => {
            caller.require_admin_to("see requests to join")?;
            render(&RequestsPart {
                requests: requests(&coord).await?,
            })
        }
        _ => Err(ApiError::bad_request(
            "unknown part; use ?part=pcs, ?part=pc&agent=ID, ?part=tokens or ?part=requests",
        )
        .into()),
    }
}

/// The PCs (or just `only`) with their timelines, thumbnails of the jobs `caller` may see.
async fn pcs(coord: &Coordinator, caller: &Caller, only: Option<i64>) -> Result<Vec<Pc>, ApiError> {
    let jobs: HashMap<i64, String> = coord
        .job_infos(|owner| caller.may_see(owner))
        .await?
        .into_iter()
        .map(|j| (j.id, j.name))
        .collect();
    let now = now_ms();
    let since = now - Period::Week.length_ms();
    let mut pcs = Vec::new();
    for info in coord.agent_infos().await? {
        if only.is_some_and(|id| id != info.id) {
            continue;
        }
        let history = coord.store.presence_history(info.id, since).await?;
        pcs.push(Pc::new(info, &jobs, now / 1000).with_timelines(&history, now));
    }
    Ok(pcs)
}

async fn tokens(coord: &Coordinator) -> Result<Vec<Token>, ApiError> {
    let now = now_ms() / 1000;
    let mut list: Vec<Token> = coord
        .store
        .enrolment_tokens()
        .await?
        .iter()
        .map(|t| Token::new(t, now))
        .collect();
    // Live tokens first, newest first: those are the ones an admin acts on.
    list.sort_by_key(|t| (t.state != "live", -t.id));
    Ok(list)
}

/// The coordinator's URL as the browser reached it (over HTTPS when `tls`), for the agent's
/// command line.
fn coordinator_url(headers: &HeaderMap, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()));
    match host {
        Some(host) => format!("{scheme}://{host}"),
        None => format!("{scheme}://COORDINATOR:8080"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_command_names_the_host_the_browser_used() {
        let mut headers = HeaderMap::new();
        assert_eq!(coordinator_url(&headers, false), "http://COORDINATOR:8080");
        headers.insert(header::HOST, "farm.lab:8080".parse().unwrap());
        assert_eq!(coordinator_url(&headers, false), "http://farm.lab:8080");
        assert_eq!(coordinator_url(&headers, true), "https://farm.lab:8080");
        headers.insert(header::HOST, "a b".parse().unwrap());
        assert_eq!(coordinator_url(&headers, false), "http://COORDINATOR:8080");
    }

    #[test]
    fn tokens_never_show_their_whole_secret_again() {
        let info = EnrolmentTokenInfo {
            id: 3,
            token: "abcdefghijkl".into(),
            created_at: 0,
            expires_at: Some(100),
            revoked_at: None,
        };
        let t = Token::new(&info, 50);
        assert_eq!((t.prefix.as_str(), t.state), ("abcdef", "live"));
        assert_eq!(t.revoke, "/api/v1/enrolment-tokens/3");
        assert_eq!(Token::new(&info, 100).state, "expired");
        let revoked = EnrolmentTokenInfo {
            revoked_at: Some(10),
            ..info
        };
        assert_eq!(Token::new(&revoked, 50).state, "revoked");
    }
}
