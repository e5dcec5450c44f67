//! Every documented operation of the API: what it is for, who may call it, what it takes and
//! what it answers. The schemas are the protocol types'; the paths are `routes`' constants.

use idlefarm_protocol::accounts as a;
use idlefarm_protocol::events::PresenceChange;
use idlefarm_protocol::uploads::UploadInspection;
use idlefarm_protocol::{self as p, routes, submit_fields};
use utoipa::openapi::schema::{ObjectBuilder, Type};

use super::{Answer, Auth, Body, Op, Schemas, op};
use crate::server::api::Verb;

/// Account paths are written relative to the API prefix.
fn acc(path: &str) -> String {
    format!("{}{path}", routes::API_PREFIX)
}

/// Fields of the job submission form.
const SUBMIT_FORM: &[(&str, &str)] = &[
    (
        submit_fields::FILE,
        "the scene: .blend, .pov or .zip (or give `upload`)",
    ),
    (submit_fields::INI, "a POV-Ray .ini beside a .pov"),
    (
        submit_fields::UPLOAD,
        "id of a staged upload to submit instead of `file`",
    ),
    (
        submit_fields::FRAMES,
        "frame range: START-END, START-END:STEP or one frame",
    ),
    (submit_fields::CHUNK, "frames per chunk, or `auto`"),
    (submit_fields::SCENE, "Blender scene name"),
    (submit_fields::MAIN, "main scene file inside a zip"),
    (
        submit_fields::SEQUENCE,
        "`true`: render the zip's scene files as a sequence",
    ),
    (
        submit_fields::INI_SECTION,
        "the [Section] of the .ini to read",
    ),
    (submit_fields::NAME, "job name"),
    (submit_fields::FPS, "frames per second of the video"),
    (submit_fields::FORMAT, "`png` or `jpeg`"),
    (submit_fields::PRIORITY, "an integer; higher runs first"),
    (
        submit_fields::TAGS,
        "tags an agent must have, comma-separated",
    ),
];

/// Fields of the staging form.
const STAGE_FORM: &[(&str, &str)] = &[
    (submit_fields::FILE, "the scene: .blend, .pov or .zip"),
    (submit_fields::INI, "a POV-Ray .ini beside a .pov"),
];

/// Every documented operation.
pub(super) fn operations(s: &mut Schemas) -> Vec<Op> {
    use Auth::{Agent, Person, Public};
    use Verb::{Delete, Get, Patch, Post, Put};
    vec![
        op(
            Post,
            routes::AGENT_REGISTER,
            "Enrol an agent with an enrolment token",
            Public,
        )
        .body(Body::json(s.of::<p::RegisterRequest>()))
        .answer(Answer::json(s.of::<p::RegisterResponse>())),
        op(
            Post,
            routes::ENROLMENT_REQUESTS,
            "Ask to join the farm without an enrolment token (an admin decides)",
            Public,
        )
        .body(Body::json(s.of::<p::EnrolmentRequest>()))
        .answer(Answer::json(s.of::<p::EnrolmentRequested>())),
        op(
            Get,
            routes::ENROLMENT_REQUESTS,
            "List the enrolment requests waiting (admins)",
            Person,
        )
        .answer(Answer::json(s.list::<p::EnrolmentRequestInfo>())),
        op(
            Post,
            routes::ENROLMENT_REQUEST_CLAIM,
            "Collect an approved request's credentials with its key (202 while waiting, 403 when turned down)",
            Public,
        )
        .body(Body::json(s.of::<p::EnrolmentClaim>()))
        .answer(Answer::json(s.of::<p::RegisterResponse>())),
        op(
            Post,
            routes::ENROLMENT_REQUEST_APPROVE,
            "Let a requesting PC join (admins)",
            Person,
        ),
        op(
            Delete,
            routes::ENROLMENT_REQUEST,
            "Turn an enrolment request down (admins)",
            Person,
        ),
        op(
            Post,
            routes::AGENT_HEARTBEAT,
            "Report presence and renew leases",
            Agent,
        )
        .body(Body::json(s.of::<p::HeartbeatRequest>()))
        .answer(Answer::json(s.of::<p::HeartbeatResponse>())),
        op(
            Post,
            routes::AGENT_LEASE,
            "Ask for work (long-polled)",
            Agent,
        )
        .body(Body::json(s.of::<p::LeaseRequest>()))
        .answer(Answer::json(s.of::<p::LeaseResponse>())),
        op(
            Get,
            routes::AGENT_BLOB,
            "Download a leased job's input",
            Agent,
        )
        .text(&["hash"])
        .answer(Answer::File(&["application/octet-stream"])),
        op(
            Put,
            routes::AGENT_FRAME,
            "Upload one rendered frame of a lease (header x-idlefarm-renderer-error: a fatal line the renderer printed, so the frame is also rendered on another PC)",
            Agent,
        )
        .text(&["file"])
        .body(Body::Bytes(&["image/png", "image/jpeg"])),
        op(
            Post,
            routes::AGENT_LEASE_END,
            "End a lease: complete, yield, failed or declined",
            Agent,
        )
        .body(Body::json(s.of::<p::LeaseEnd>())),
        op(Get, routes::AGENTS, "List the farm's agents", Person)
            .answer(Answer::json(s.list::<p::AgentInfo>())),
        op(
            Patch,
            routes::AGENT,
            "Rename or re-tag an agent (admins)",
            Person,
        )
        .body(Body::json(s.of::<p::AgentUpdate>())),
        op(Delete, routes::AGENT, "Forget an agent (admins)", Person),
        op(
            Post,
            routes::AGENT_DRAIN,
            "Let an agent finish its chunk and take no more (admins)",
            Person,
        ),
        op(
            Post,
            routes::AGENT_DISABLE,
            "Stop an agent taking work (admins)",
            Person,
        ),
        op(
            Post,
            routes::AGENT_ENABLE,
            "Let a drained or disabled agent work again (admins)",
            Person,
        ),
        op(
            Post,
            routes::AGENT_RELEASE,
            "End an agent's quarantine and blocklists (admins)",
            Person,
        ),
        op(
            Get,
            routes::AGENT_HISTORY,
            "An agent's presence history",
            Person,
        )
        .query(
            "since_ms",
            "Unix millis; default: 24 hours ago",
            Type::Integer,
        )
        .answer(Answer::json(s.list::<PresenceChange>())),
        op(
            Get,
            routes::JOBS,
            "List the jobs the caller may see",
            Person,
        )
        .answer(Answer::json(s.list::<p::JobInfo>())),
        op(Post, routes::JOBS, "Submit a job", Person)
            .body(Body::Form(SUBMIT_FORM))
            .answer(Answer::json(s.of::<p::SubmitResponse>()))
            .created(),
        op(
            Post,
            routes::UPLOADS,
            "Stage a scene file and see what it holds",
            Person,
        )
        .body(Body::Form(STAGE_FORM))
        .answer(Answer::json(s.of::<UploadInspection>()))
        .created(),
        op(
            Get,
            routes::UPLOAD,
            "A staged upload (its owner only)",
            Person,
        )
        .text(&["id"])
        .answer(Answer::json(s.of::<UploadInspection>())),
        op(Get, routes::JOB, "One job", Person).answer(Answer::json(s.of::<p::JobInfo>())),
        op(
            Delete,
            routes::JOB,
            "Delete a finished job and its files",
            Person,
        ),
        op(
            Get,
            routes::JOB_FAILURES,
            "A job's failed leases with log tails",
            Person,
        )
        .answer(Answer::json(s.list::<p::FailureInfo>())),
        op(Get, routes::JOB_FRAMES, "A job's frames", Person)
            .answer(Answer::json(s.list::<p::FrameInfo>())),
        op(
            Get,
            routes::JOB_FRAME_FILE,
            "One stored frame image (`frame_00001.png`)",
            Person,
        )
        .text(&["name"])
        .answer(Answer::File(&["image/png", "image/jpeg"])),
        op(
            Get,
            routes::JOB_FRAME_THUMBNAIL,
            "A small JPEG of a frame (`{name}` is its number)",
            Person,
        )
        .text(&["name"])
        .answer(Answer::File(&["image/jpeg"])),
        op(Get, routes::JOB_VIDEO, "The assembled video", Person)
            .answer(Answer::File(&["video/mp4"])),
        op(Get, routes::JOB_FRAMES_ZIP, "A zip of every frame", Person)
            .answer(Answer::File(&["application/zip"])),
        op(Post, routes::JOB_CANCEL, "Cancel a job", Person),
        op(Post, routes::JOB_PAUSE, "Pause a job", Person),
        op(Post, routes::JOB_RESUME, "Resume a paused job", Person),
        op(
            Post,
            routes::JOB_RETRY,
            "Retry failed frames or render chosen frames again",
            Person,
        )
        .body(Body::json(s.of::<p::RetryRequest>())),
        op(
            Post,
            routes::JOB_PRIORITY,
            "Change a job's priority",
            Person,
        )
        .body(Body::json(s.of::<p::PriorityRequest>())),
        op(
            Get,
            routes::EVENTS,
            "Live changes as Server-Sent Events (`Last-Event-ID` resumes)",
            Person,
        )
        .answer(Answer::events(s.of::<p::events::Event>())),
        op(Get, routes::OPENAPI, "This document", Public)
            .answer(Answer::json(ObjectBuilder::new().into())),
        op(
            Post,
            acc(a::SESSION_PATH),
            "Log in: sets the session cookie",
            Public,
        )
        .body(Body::json(s.of::<a::LoginRequest>()))
        .answer(Answer::json(s.of::<a::SessionInfo>())),
        op(
            Get,
            acc(a::SESSION_PATH),
            "Who is logged in, with the session's CSRF token",
            Person,
        )
        .answer(Answer::json(s.of::<a::SessionInfo>())),
        op(Delete, acc(a::SESSION_PATH), "Log out", Person),
        op(
            Post,
            acc(a::SETUP_PATH),
            "Choose a password with a setup link's key; logs in",
            Public,
        )
        .body(Body::json(s.of::<a::SetupRequest>()))
        .answer(Answer::json(s.of::<a::SessionInfo>())),
        op(
            Post,
            acc(a::TOKENS_PATH),
            "Trade a name and password for an API token",
            Public,
        )
        .body(Body::json(s.of::<a::TokenRequest>()))
        .answer(Answer::json(s.of::<a::TokenResponse>())),
        op(
            Delete,
            acc(a::CURRENT_TOKEN_PATH),
            "Revoke the API token of this request",
            Person,
        ),
        op(Get, acc(a::USERS_PATH), "List users (admins)", Person)
            .answer(Answer::json(s.list::<a::UserInfo>())),
        op(Post, acc(a::USERS_PATH), "Add a user (admins)", Person)
            .body(Body::json(s.of::<a::NewUser>()))
            .answer(Answer::json(s.of::<a::NewUserResponse>())),
        op(
            Patch,
            acc(a::USER_ROUTE),
            "Change a user's role (admins)",
            Person,
        )
        .text(&["name"])
        .body(Body::json(s.of::<a::RoleChange>()))
        .answer(Answer::json(s.of::<a::UserInfo>())),
        op(Delete, acc(a::USER_ROUTE), "Remove a user (admins)", Person).text(&["name"]),
        op(
            Put,
            acc(a::USER_PASSWORD_ROUTE),
            "Set a password (own, or any as an admin)",
            Person,
        )
        .text(&["name"])
        .body(Body::json(s.of::<a::PasswordChange>()))
        .answer(Answer::json(s.of::<a::PasswordResponse>())),
        op(
            Get,
            acc(a::ENROLMENT_TOKENS_PATH),
            "List enrolment tokens (admins)",
            Person,
        )
        .answer(Answer::json(s.list::<a::EnrolmentTokenInfo>())),
        op(
            Post,
            acc(a::ENROLMENT_TOKENS_PATH),
            "Create an enrolment token (admins)",
            Person,
        )
        .body(Body::json(s.of::<a::NewEnrolmentToken>()))
        .answer(Answer::json(s.of::<a::CreatedEnrolmentToken>())),
        op(
            Delete,
            acc(a::ENROLMENT_TOKEN_ROUTE),
            "Revoke an enrolment token (admins)",
            Person,
        ),
        op(
            Get,
            acc(a::AUDIT_PATH),
            "Read the audit log, newest first (admins)",
            Person,
        )
        .query("limit", "most entries to return", Type::Integer)
        .query(
            "before",
            "only entries with an id below this",
            Type::Integer,
        )
        .query("actor", "only this actor's entries", Type::String)
        .query(
            "action",
            "only this action or the actions under it",
            Type::String,
        )
        .answer(Answer::json(s.list::<a::AuditEntry>())),
    ]
}
