//! Everything that crosses the wire between the idlefarm coordinator, its agents and its CLI.
//!
//! Both sides serialize and deserialize these types with serde (JSON); nothing here does I/O.
//! Paths are relative to the coordinator's base URL and written once, in [`routes`].

pub mod routes;

pub mod accounts;

use serde::{Deserialize, Serialize};

pub use routes::API_PREFIX;

pub mod events;

pub mod uploads;
pub use uploads::{SceneSummary, UploadInspection, UploadKind};

/// Version of the HTTP API described by this crate. Bumped on incompatible changes.
pub const API_VERSION: u32 = 1;

/// The DNS-SD service type a coordinator announces itself as on the LAN (mDNS).
pub const SERVICE_TYPE: &str = "_idlefarm._tcp.local.";

/// TXT keys of the announcement: `scheme` (`http` or `https`), `fp` (the HTTPS certificate's
/// fingerprint), `api` (the [`API_VERSION`]).
pub mod announce_keys {
    /// `http` or `https`.
    pub const SCHEME: &str = "scheme";
    /// The HTTPS certificate's SHA-256 fingerprint.
    pub const FINGERPRINT: &str = "fp";
    /// The API version.
    pub const API: &str = "api";
}

/// Header an agent puts its credentials in: `Authorization: Bearer <agent_id>.<secret>`.
pub const AUTHORIZATION: &str = "authorization";

/// Header on a frame upload naming a known fatal line the renderer printed before the frame was
/// saved, although it went on (the coordinator then has the frame rendered on another PC too).
pub const RENDERER_ERROR_HEADER: &str = "x-idlefarm-renderer-error";

/// Most bytes of [`RENDERER_ERROR_HEADER`]'s value the coordinator accepts.
pub const MAX_RENDERER_ERROR: usize = 512;

/// The renderer a job needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Renderer {
    /// Blender, driven on the command line in background mode.
    Blender,
    /// POV-Ray 3.7.
    Povray,
}

impl Renderer {
    /// The name used in the API, the database and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Renderer::Blender => "blender",
            Renderer::Povray => "povray",
        }
    }
}

/// Image format of rendered frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// Lossless PNG (the default).
    Png,
    /// JPEG.
    Jpeg,
}

impl ImageFormat {
    /// File extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            ImageFormat::Png => "png",
            ImageFormat::Jpeg => "jpg",
        }
    }

    /// The format a file extension names, if any.
    pub fn from_extension(ext: &str) -> Option<Self> {
        match ext.to_ascii_lowercase().as_str() {
            "png" => Some(ImageFormat::Png),
            "jpg" | "jpeg" => Some(ImageFormat::Jpeg),
            _ => None,
        }
    }
}

/// Everything an agent needs to render a job's frames, fixed when the job is submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RenderSettings {
    /// Which renderer.
    pub renderer: Renderer,
    /// Path of the main scene file inside the job's input (the file itself, or a path inside the zip).
    pub main_file: String,
    /// Blender scene name (Blender only).
    pub scene: Option<String>,
    /// First frame of the job (inclusive).
    pub frame_start: i64,
    /// Last frame of the job (inclusive).
    pub frame_end: i64,
    /// Frame step (Blender only; POV-Ray always uses 1).
    pub frame_step: i64,
    /// Frames per second of the assembled video.
    pub fps: f64,
    /// Output width in pixels before `percentage` is applied.
    pub resolution_x: u32,
    /// Output height in pixels before `percentage` is applied.
    pub resolution_y: u32,
    /// Resolution scale in percent (Blender's `resolution_percentage`; 100 for POV-Ray).
    pub percentage: u32,
    /// Blender render engine as Blender names it (`CYCLES`, `BLENDER_EEVEE`, ...).
    pub engine: Option<String>,
    /// Output image format.
    pub format: ImageFormat,
    /// POV-Ray animation settings (POV-Ray only).
    pub povray: Option<PovraySettings>,
    /// A scene sequence: the scene files inside the zip, in natural name order; frame N (from
    /// 1) is file N rendered once, at its own clock or current frame. `None` for one scene.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<Vec<String>>,
}

impl RenderSettings {
    /// The size in pixels every frame must have: resolution scaled by the percentage.
    pub fn frame_size(&self) -> (u32, u32) {
        let scale = |v: u32| ((u64::from(v) * u64::from(self.percentage)) / 100).max(1) as u32;
        (scale(self.resolution_x), scale(self.resolution_y))
    }

    /// Every frame number of the job, in order. Empty when the range is backwards or too wide
    /// to count in an `i64` (submission refuses such jobs; hostile numbers never panic here).
    pub fn frames(&self) -> Vec<i64> {
        let countable = self
            .frame_end
            .checked_sub(self.frame_start)
            .is_some_and(|span| span >= 0);
        if !countable {
            return Vec::new();
        }
        let step = usize::try_from(self.frame_step.max(1)).unwrap_or(usize::MAX);
        (self.frame_start..=self.frame_end).step_by(step).collect()
    }

    /// The scene file frame `frame` of a sequence job is rendered from; `None` for other jobs.
    pub fn source_of(&self, frame: i64) -> Option<&str> {
        let index = usize::try_from(frame.checked_sub(1)?).ok()?;
        self.sequence.as_ref()?.get(index).map(String::as_str)
    }
}

/// POV-Ray's animation and quality settings, from the job's `.ini` and the submitter's overrides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PovraySettings {
    /// `Initial_Frame` / `+KFI`: first frame of the whole animation (clock is computed over this range).
    pub initial_frame: i64,
    /// `Final_Frame` / `+KFF`.
    pub final_frame: i64,
    /// `Initial_Clock` / `+KI`.
    pub initial_clock: f64,
    /// `Final_Clock` / `+KF`.
    pub final_clock: f64,
    /// `Antialias` / `+A`.
    pub antialias: bool,
    /// `Antialias_Threshold` / `+A0.3`.
    pub antialias_threshold: Option<f64>,
    /// `Antialias_Depth` / `+R3`.
    pub antialias_depth: Option<u32>,
    /// `Cyclic_Animation` / `+KC`: the clock of the last frame stops short of `final_clock`.
    #[serde(default)]
    pub cyclic: bool,
    /// The submitter's `.ini` as submitted. The agent hands it to POV-Ray and adds only what
    /// the farm controls; `None` for jobs from before inis were passed on, which the agent
    /// renders from the fields above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ini: Option<String>,
    /// The `[Section]` of `ini` POV-Ray reads besides its options before the first label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ini_section: Option<String>,
}

/// Enrolment: an agent trades an enrolment token for its own id and secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterRequest {
    /// The enrolment token printed by `idlefarm token`.
    pub token: String,
    /// Human-readable name (usually the hostname).
    pub name: String,
    /// Renderer versions found on the PC, e.g. `("blender", "3.4.1")`.
    pub renderers: Vec<RendererInfo>,
}

/// A PC without an enrolment token asks to join the farm; an admin decides.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrolmentRequest {
    /// Human-readable name (usually the hostname).
    pub name: String,
    /// Renderer versions found on the PC.
    pub renderers: Vec<RendererInfo>,
    /// A secret the PC made up (16–200 characters); only its holder can claim the approval.
    pub key: String,
}

/// A request's number, to claim its approval with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrolmentRequested {
    /// The request's id.
    pub id: i64,
}

/// The requesting PC asks whether it was let in.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrolmentClaim {
    /// The key sent with the request.
    pub key: String,
}

/// What an admin sees of a waiting request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrolmentRequestInfo {
    /// The request's id.
    pub id: i64,
    /// The name the PC gave.
    pub name: String,
    /// Its renderers.
    pub renderers: Vec<RendererInfo>,
    /// When it asked (Unix seconds).
    pub created_at: i64,
    /// `waiting` or `approved` (approved but not yet claimed by the PC).
    pub state: String,
}

/// A renderer installed on an agent's PC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RendererInfo {
    /// Which renderer.
    pub renderer: Renderer,
    /// Version string as the renderer prints it.
    pub version: String,
}

/// Answer to [`RegisterRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterResponse {
    /// The agent's id.
    pub agent_id: i64,
    /// The agent's secret; shown once, stored hashed by the coordinator.
    pub secret: String,
}

/// What an agent's PC is doing, from the presence seam's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum PresenceState {
    /// Available and waiting for work.
    Idle,
    /// Rendering a lease.
    Rendering,
    /// A person is using the PC.
    UserPresent,
    /// A render is stopped (SIGSTOP) because a person came back.
    Suspended,
    /// Outside the agent's configured schedule.
    OutsideSchedule,
    /// The agent is finishing its work and takes no more.
    Draining,
    /// The coordinator has not heard from the agent for longer than a lease lives (the PC is
    /// off, or its network is). Only the coordinator says this, in presence history and
    /// events; agents never send it, and a heartbeat or lease request that does is refused.
    Offline,
}

impl PresenceState {
    /// Whether the coordinator may lease work to an agent in this state.
    pub fn may_take_work(self) -> bool {
        matches!(self, PresenceState::Idle | PresenceState::Rendering)
    }

    /// Whether an agent may report this state (every state but [`PresenceState::Offline`]).
    pub fn is_reported_by_agents(self) -> bool {
        self != PresenceState::Offline
    }

    /// The wire name (`user-present`), also used in the database and as the pages' CSS state.
    pub fn as_str(self) -> &'static str {
        match self {
            PresenceState::Idle => "idle",
            PresenceState::Rendering => "rendering",
            PresenceState::UserPresent => "user-present",
            PresenceState::Suspended => "suspended",
            PresenceState::OutsideSchedule => "outside-schedule",
            PresenceState::Draining => "draining",
            PresenceState::Offline => "offline",
        }
    }
}

/// Periodic liveness message; renews the agent's leases.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeartbeatRequest {
    /// The agent's presence state.
    pub presence: PresenceState,
    /// Leases the agent is working on.
    pub leases: Vec<i64>,
}

/// Answer to [`HeartbeatRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeartbeatResponse {
    /// Leases from the request the agent must abandon (expired, job cancelled).
    pub revoked: Vec<i64>,
    /// Seconds until the renewed leases expire.
    pub lease_ttl_secs: u64,
}

/// An agent asks for work.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseRequest {
    /// The agent's presence state; the coordinator leases nothing unless it may take work.
    pub presence: PresenceState,
    /// How many chunks the agent may render at once (1 to [`MAX_SLOTS`]; default 1), so the
    /// end of a job is split for each of them.
    #[serde(default = "one_slot")]
    pub slots: u32,
}

/// Most chunks one agent may say it renders at once.
pub const MAX_SLOTS: u32 = 256;

fn one_slot() -> u32 {
    1
}

/// Answer to [`LeaseRequest`]: a chunk of work, or none.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseResponse {
    /// The lease, if there is work for this agent.
    pub lease: Option<Lease>,
    /// When there is no lease: how long to wait before asking again.
    pub retry_after_secs: u64,
}

/// A chunk of a job's frames handed to one agent until it expires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Lease {
    /// The lease's id.
    pub id: i64,
    /// The job it belongs to.
    pub job_id: i64,
    /// Frames to render: consecutive frames of the job (a contiguous run with the job's step).
    pub frames: Vec<i64>,
    /// blake3 of the job's input, hex; the agent downloads it from [`routes::agent_blob`].
    pub input_hash: String,
    /// What the input is: a single scene file or a zip project.
    pub input_kind: InputKind,
    /// File name of the input as submitted (used for single-file inputs).
    pub input_name: String,
    /// How to render.
    pub settings: RenderSettings,
    /// Seconds until the lease expires unless renewed by a heartbeat.
    pub ttl_secs: u64,
}

/// Shape of a job's stored input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum InputKind {
    /// One scene file (`.blend` or `.pov`).
    File,
    /// A zip project, to be extracted; `RenderSettings::main_file` is a path inside it.
    Zip,
}

/// The agent gives a lease up, or reports it failed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseEnd {
    /// Why the lease ends.
    pub outcome: LeaseOutcome,
    /// A message a person can act on (failures).
    pub message: Option<String>,
    /// The last lines the renderer printed (failures).
    pub log_tail: Option<String>,
}

/// How a lease ended, from the agent's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum LeaseOutcome {
    /// Every frame was rendered and uploaded.
    Complete,
    /// A person came back: unfinished frames go back to the queue; never a failure.
    Yield,
    /// The renderer failed.
    Failed,
    /// The agent cannot take the lease on, e.g. its input would break the PC's disk budget:
    /// the frames go back to the queue, the agent is not offered the job again for a while,
    /// and it never counts as a failure.
    Declined,
}

/// A job's state as the coordinator reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Frames are queued or rendering.
    Rendering,
    /// Stopped by a person: no new leases; resumes where it was.
    Paused,
    /// All frames are done; the video is being assembled.
    Assembling,
    /// Frames and video are ready.
    Done,
    /// Some frames failed too often, or assembly failed (the frames are kept).
    Failed,
    /// Cancelled by a person.
    Cancelled,
}

impl JobState {
    /// Whether the job will change no more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Done | JobState::Failed | JobState::Cancelled
        )
    }

    /// The name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Rendering => "rendering",
            JobState::Paused => "paused",
            JobState::Assembling => "assembling",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Parses [`JobState::as_str`]'s names.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "rendering" => JobState::Rendering,
            "paused" => JobState::Paused,
            "assembling" => JobState::Assembling,
            "done" => JobState::Done,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            _ => return None,
        })
    }
}

/// Counts of a job's frames by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FrameCounts {
    /// Waiting for an agent.
    pub queued: u64,
    /// Leased to an agent.
    pub rendering: u64,
    /// Received, checked and stored.
    pub done: u64,
    /// Failed too many times.
    pub failed: u64,
}

impl FrameCounts {
    /// All frames of the job.
    pub fn total(&self) -> u64 {
        self.queued + self.rendering + self.done + self.failed
    }
}

/// A job as listed by `GET /api/v1/jobs` and `GET /api/v1/jobs/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobInfo {
    /// The job's id.
    pub id: i64,
    /// Display name (the submitted file name unless given).
    pub name: String,
    /// Current state.
    pub state: JobState,
    /// Why the job failed, when it did.
    pub error: Option<String>,
    /// Things the submitter should know (missing textures, overridden output format, ...).
    pub warnings: Vec<String>,
    /// How the frames are rendered.
    pub settings: RenderSettings,
    /// Frames by state.
    pub frames: FrameCounts,
    /// Whether the MP4 exists.
    pub has_video: bool,
    /// Submission time, seconds since the Unix epoch.
    pub created_at: i64,
    /// Fixed chunk size, or `None` for automatic sizing.
    pub chunk_size: Option<u32>,
    /// Id of the user who submitted it (`None` for jobs from before accounts existed).
    #[serde(default)]
    pub owner_id: Option<i64>,
    /// Name of the user who submitted it.
    #[serde(default)]
    pub owner: Option<String>,
    /// Higher runs first; equal priorities share the farm between users.
    #[serde(default)]
    pub priority: i64,
    /// Tags an agent must have to render this job.
    #[serde(default)]
    pub required_tags: Vec<String>,
    /// When its first frame started rendering, Unix seconds.
    #[serde(default)]
    pub started_at: Option<i64>,
    /// When it became done, failed or cancelled, Unix seconds.
    #[serde(default)]
    pub finished_at: Option<i64>,
    /// Estimated seconds until every frame is rendered, from the frame times measured so far and
    /// the PCs available now; `None` before the first frame or when no PC can work on it.
    #[serde(default)]
    pub eta_secs: Option<u64>,
    /// The frame stored most recently.
    #[serde(default)]
    pub latest_frame: Option<i64>,
}

/// Answer to a job submission.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubmitResponse {
    /// The new job.
    pub job: JobInfo,
}

/// One frame of a job.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FrameInfo {
    /// Frame number.
    pub frame: i64,
    /// `queued`, `rendering`, `done` or `failed`.
    pub state: String,
    /// Agent that rendered it, once done.
    pub agent_id: Option<i64>,
    /// Image file name when done (`frame_00001.png`).
    pub file: Option<String>,
    /// How many leases holding this frame failed (yields and expiries do not count).
    pub failures: u32,
    /// How many leases took this frame (every attempt, whatever its end).
    #[serde(default)]
    pub attempts: u32,
    /// How long the frame took to render, once done.
    #[serde(default)]
    pub render_ms: Option<i64>,
    /// Agents on which it failed, in order.
    #[serde(default)]
    pub failed_on: Vec<i64>,
    /// The scene file it is rendered from, for a scene sequence (a path inside the zip).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Its frame check: why it waits for another PC's render, or how its check ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
}

/// A failed lease of a job: who, when, which frames and what the renderer said.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FailureInfo {
    /// Unix seconds.
    pub at: i64,
    /// The agent it failed on.
    pub agent_id: i64,
    /// The lease.
    pub lease_id: i64,
    /// The lease's frames.
    pub frames: Vec<i64>,
    /// What went wrong.
    pub message: String,
    /// The renderer's last lines.
    pub log_tail: Option<String>,
}

/// Whether an admin lets an agent take work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum AgentMode {
    /// Takes work whenever its PC is available.
    #[default]
    Active,
    /// Finishes the chunk in hand and takes no more.
    Draining,
    /// Takes no work; its lease, if any, is revoked.
    Disabled,
}

impl AgentMode {
    /// The name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentMode::Active => "active",
            AgentMode::Draining => "draining",
            AgentMode::Disabled => "disabled",
        }
    }

    /// Parses [`AgentMode::as_str`]'s names.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "active" => AgentMode::Active,
            "draining" => AgentMode::Draining,
            "disabled" => AgentMode::Disabled,
            _ => return None,
        })
    }
}

/// An agent as listed by `GET /api/v1/agents`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentInfo {
    /// The agent's id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Last reported presence.
    pub presence: PresenceState,
    /// Seconds since the last request from it; `None` if never seen.
    pub last_seen_secs_ago: Option<i64>,
    /// Frames it has delivered.
    pub frames_done: i64,
    /// Leases it reported as failed (yields never count).
    pub failures: i64,
    /// Renderers it has.
    pub renderers: Vec<RendererInfo>,
    /// Leases it gave back because a person came back.
    #[serde(default)]
    pub yields: i64,
    /// Whether the admin lets it work.
    #[serde(default)]
    pub mode: AgentMode,
    /// Tags jobs can require (`room-2`, `gpu`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Until when it is quarantined after failing on several jobs, Unix seconds.
    #[serde(default)]
    pub quarantined_until: Option<i64>,
    /// Jobs it may not take because its renders of them kept failing.
    #[serde(default)]
    pub blocklisted_jobs: Vec<i64>,
    /// Why it gets no work right now, for a person; `None` when it works or would get work.
    #[serde(default)]
    pub no_work_reason: Option<String>,
    /// The frame it stored most recently: (job, frame).
    #[serde(default)]
    pub latest_frame: Option<(i64, i64)>,
    /// The lease it declined most recently and why (`job 3: …`), while that still keeps it
    /// off the job; a decline is never a failure.
    #[serde(default)]
    pub declined: Option<String>,
}

/// `POST /api/v1/jobs/{id}/priority`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PriorityRequest {
    /// The new priority; higher runs first.
    pub priority: i64,
}

/// `POST /api/v1/jobs/{id}/retry`: failed frames, or chosen frames to render again.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    /// Frames to render again, e.g. `7,12-15`; `None` retries every failed frame.
    #[serde(default)]
    pub frames: Option<String>,
}

/// `PATCH /api/v1/agents/{id}`: rename or re-tag an agent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AgentUpdate {
    /// New display name.
    #[serde(default)]
    pub name: Option<String>,
    /// The agent's new tags (replacing the old ones).
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

/// Whether `tag` is a valid agent/job tag: 1-32 of `a-z 0-9 - _ .`, starting with a letter or
/// digit.
pub fn valid_tag(tag: &str) -> bool {
    (1..=32).contains(&tag.len())
        && tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && tag
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.'))
}

/// Body of every error answer: `{ "error": "..." }`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
    /// The form field the error concerns (one of [`submit_fields`]...), when it concerns one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Multipart form field names of `POST /api/v1/jobs`.
pub mod submit_fields {
    /// The scene: `.blend`, `.pov` or `.zip` (required, exactly one).
    pub const FILE: &str = "file";
    /// A POV-Ray `.ini` beside a `.pov` (optional).
    pub const INI: &str = "ini";
    /// Frame range override, `START-END` or `START-END:STEP` or a single frame.
    pub const FRAMES: &str = "frames";
    /// Fixed chunk size in frames; absent or `auto` for automatic sizing.
    pub const CHUNK: &str = "chunk";
    /// Blender scene name override.
    pub const SCENE: &str = "scene";
    /// Main scene file inside a zip project when it holds several.
    pub const MAIN: &str = "main";
    /// `1`/`true`: render the zip's scene files as a sequence, one file per frame.
    pub const SEQUENCE: &str = "sequence";
    /// The `[Section]` of the POV-Ray `.ini` to read, as in `povray scene.ini[Section]`.
    pub const INI_SECTION: &str = "ini_section";
    /// Job name.
    pub const NAME: &str = "name";
    /// Frames-per-second override.
    pub const FPS: &str = "fps";
    /// Output format override: `png` or `jpeg`.
    pub const FORMAT: &str = "format";
    /// Priority (an integer; higher runs first; default 0).
    pub const PRIORITY: &str = "priority";
    /// Tags an agent must have, comma-separated (`room-2,gpu`).
    pub const TAGS: &str = "tags";
    /// The id of a staged upload (`POST /api/v1/uploads`) to submit instead of `file`/`ini`;
    /// submitting consumes it.
    pub const UPLOAD: &str = "upload";
}

/// The file name a frame is stored and fetched under: `frame_00001.png`.
pub fn frame_file_name(frame: i64, format: ImageFormat) -> String {
    format!("frame_{frame:05}.{}", format.extension())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_size_applies_percentage_and_never_reaches_zero() {
        let mut s = RenderSettings {
            renderer: Renderer::Blender,
            main_file: "a.blend".into(),
            scene: None,
            frame_start: 1,
            frame_end: 10,
            frame_step: 3,
            fps: 24.0,
            resolution_x: 1920,
            resolution_y: 1080,
            percentage: 50,
            engine: None,
            format: ImageFormat::Png,
            povray: None,
            sequence: None,
        };
        assert_eq!(s.frame_size(), (960, 540));
        assert_eq!(s.frames(), vec![1, 4, 7, 10]);
        s.percentage = 0;
        assert_eq!(s.frame_size(), (1, 1));
        s.frame_step = i64::MAX;
        assert_eq!(s.frames(), vec![1]);
        (s.frame_start, s.frame_end) = (i64::MIN, 0);
        assert_eq!(s.frames(), Vec::<i64>::new(), "too wide to count: no panic");
        (s.frame_start, s.frame_end) = (5, 4);
        assert_eq!(s.frames(), Vec::<i64>::new());
    }

    #[test]
    fn sequence_frames_map_to_their_files_and_old_settings_still_load() {
        let json = r#"{"renderer":"povray","main_file":"a.pov","scene":null,"frame_start":1,
            "frame_end":2,"frame_step":1,"fps":24.0,"resolution_x":8,"resolution_y":8,
            "percentage":100,"engine":null,"format":"png","povray":null}"#;
        let mut s: RenderSettings = serde_json::from_str(json).unwrap();
        assert_eq!(s.sequence, None);
        assert_eq!(s.source_of(1), None);
        s.sequence = Some(vec!["f1.pov".into(), "f2.pov".into()]);
        assert_eq!(s.source_of(2), Some("f2.pov"));
        assert_eq!(s.source_of(0), None);
        assert_eq!(s.source_of(3), None);
        assert_eq!(s.source_of(i64::MIN), None);
    }

    #[test]
    fn povray_settings_from_before_inis_were_passed_on_still_load() {
        let json = r#"{"initial_frame":1,"final_frame":20,"initial_clock":0.0,
            "final_clock":1.0,"antialias":true,"antialias_threshold":0.3,"antialias_depth":3}"#;
        let old: PovraySettings = serde_json::from_str(json).unwrap();
        assert_eq!((old.cyclic, old.ini, old.ini_section), (false, None, None));
        let new = PovraySettings {
            ini: Some("+KFF20 +KC".into()),
            ini_section: Some("Small".into()),
            cyclic: true,
            ..old
        };
        let back: PovraySettings =
            serde_json::from_str(&serde_json::to_string(&new).unwrap()).unwrap();
        assert_eq!(back, new);
    }

    #[test]
    fn presence_states_use_kebab_case_on_the_wire() {
        let json = serde_json::to_string(&PresenceState::UserPresent).unwrap();
        assert_eq!(json, "\"user-present\"");
        assert!(!PresenceState::Suspended.may_take_work());
        assert!(!PresenceState::Offline.may_take_work());
        assert!(!PresenceState::Offline.is_reported_by_agents());
        assert!(PresenceState::Draining.is_reported_by_agents());
        for state in [
            PresenceState::Idle,
            PresenceState::Rendering,
            PresenceState::UserPresent,
            PresenceState::Suspended,
            PresenceState::OutsideSchedule,
            PresenceState::Draining,
            PresenceState::Offline,
        ] {
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json.trim_matches('"'), state.as_str());
        }
    }

    #[test]
    fn frame_names_are_zero_padded() {
        assert_eq!(frame_file_name(7, ImageFormat::Png), "frame_00007.png");
    }
}
