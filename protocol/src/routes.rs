//! Every HTTP route of the coordinator, written once. Each route is a template constant in the
//! router's syntax (`{name}` for a path parameter), used by the coordinator's router, and a
//! function that fills it in, used by the agent, the CLI and the tests. The web page gets the same
//! paths from the coordinator, never from a copy.

use crate::ImageFormat;

/// Every API route starts with this prefix.
pub const API_PREFIX: &str = "/api/v1";

/// `POST`: an agent trades an enrolment token for its id and secret.
pub const AGENT_REGISTER: &str = "/api/v1/agents/register";
/// `POST`: an agent's heartbeat.
pub const AGENT_HEARTBEAT: &str = "/api/v1/agent/heartbeat";
/// `POST`: an agent asks for a lease (long-polled).
pub const AGENT_LEASE: &str = "/api/v1/agent/lease";
/// `GET`: a job's input by blake3 hash.
pub const AGENT_BLOB: &str = "/api/v1/agent/blobs/{hash}";
/// `PUT`: one rendered frame of a lease; the body is the image.
pub const AGENT_FRAME: &str = "/api/v1/agent/leases/{lease}/frames/{file}";
/// `POST`: the end of a lease.
pub const AGENT_LEASE_END: &str = "/api/v1/agent/leases/{lease}/end";

/// `GET`: jobs the caller may see; `POST`: submit a job (multipart form).
pub const JOBS: &str = "/api/v1/jobs";
/// `POST`: stage a scene file (multipart `file`, optional `ini`) and get its
/// [`crate::UploadInspection`].
pub const UPLOADS: &str = "/api/v1/uploads";
/// `GET`: a staged upload's [`crate::UploadInspection`] (its owner only).
pub const UPLOAD: &str = "/api/v1/uploads/{id}";
/// `GET`: one job; `DELETE`: delete a final job and its files.
pub const JOB: &str = "/api/v1/jobs/{id}";
/// `GET`: a job's frames.
pub const JOB_FRAMES: &str = "/api/v1/jobs/{id}/frames";
/// `GET`: one stored frame image (`{name}` is `frame_00001.png`).
pub const JOB_FRAME_FILE: &str = "/api/v1/jobs/{id}/frames/{name}";
/// `GET`: a small JPEG of a stored frame (`{name}` is the frame number).
pub const JOB_FRAME_THUMBNAIL: &str = "/api/v1/jobs/{id}/frames/{name}/thumbnail";
/// `GET`: a job's failed leases with the renderer's log tails.
pub const JOB_FAILURES: &str = "/api/v1/jobs/{id}/failures";
/// `POST`: cancel a job (leases revoked; finished frames stay).
pub const JOB_CANCEL: &str = "/api/v1/jobs/{id}/cancel";
/// `POST`: pause a job (running chunks go back to the queue).
pub const JOB_PAUSE: &str = "/api/v1/jobs/{id}/pause";
/// `POST`: resume a paused job.
pub const JOB_RESUME: &str = "/api/v1/jobs/{id}/resume";
/// `POST` [`crate::RetryRequest`]: retry failed frames or render chosen frames again.
pub const JOB_RETRY: &str = "/api/v1/jobs/{id}/retry";
/// `POST` [`crate::PriorityRequest`]: change a job's priority.
pub const JOB_PRIORITY: &str = "/api/v1/jobs/{id}/priority";
/// `GET`: the assembled video.
pub const JOB_VIDEO: &str = "/api/v1/jobs/{id}/video.mp4";
/// `GET`: a zip of every frame.
pub const JOB_FRAMES_ZIP: &str = "/api/v1/jobs/{id}/frames.zip";
/// `GET`: the live event stream (Server-Sent Events).
pub const EVENTS: &str = "/api/v1/events";
/// `GET`: an agent's presence history (`?since_ms=`).
pub const AGENT_HISTORY: &str = "/api/v1/agents/{id}/history";
/// `GET`: the farm's agents.
pub const AGENTS: &str = "/api/v1/agents";
/// `PATCH` [`crate::AgentUpdate`]: rename or re-tag an agent; `DELETE`: forget it.
pub const AGENT: &str = "/api/v1/agents/{id}";
/// `POST`: let an agent finish its chunk and take no more.
pub const AGENT_DRAIN: &str = "/api/v1/agents/{id}/drain";
/// `POST`: stop an agent taking work and revoke its lease.
pub const AGENT_DISABLE: &str = "/api/v1/agents/{id}/disable";
/// `POST`: let a drained or disabled agent work again.
pub const AGENT_ENABLE: &str = "/api/v1/agents/{id}/enable";
/// `POST`: end an agent's quarantine and blocklists early.
pub const AGENT_RELEASE: &str = "/api/v1/agents/{id}/release";

/// `POST` [`crate::EnrolmentRequest`] (no credentials): a PC without an enrolment token asks to
/// join; an admin approves or turns it down. `GET` (admins): the requests waiting.
pub const ENROLMENT_REQUESTS: &str = "/api/v1/agents/requests";
/// `POST` [`crate::EnrolmentClaim`]: the requesting PC asks whether it was approved; once it
/// was, the answer is its [`crate::RegisterResponse`] (given once).
pub const ENROLMENT_REQUEST_CLAIM: &str = "/api/v1/agents/requests/{id}/claim";
/// `POST` (admins): let the requesting PC join.
pub const ENROLMENT_REQUEST_APPROVE: &str = "/api/v1/agents/requests/{id}/approve";
/// `DELETE` (admins): turn the request down.
pub const ENROLMENT_REQUEST: &str = "/api/v1/agents/requests/{id}";

/// `GET`: this API described as OpenAPI 3 (JSON).
pub const OPENAPI: &str = "/api/v1/openapi.json";

/// `GET`: the coordinator's metrics in the Prometheus text format (admins only). Not under
/// the API prefix: it is for Prometheus, not for API clients.
pub const METRICS: &str = "/metrics";

/// Route of a staged upload.
pub fn upload(id: &str) -> String {
    format!("{API_PREFIX}/uploads/{id}")
}

/// Route of a job's input blob.
pub fn agent_blob(hash: &str) -> String {
    format!("{API_PREFIX}/agent/blobs/{hash}")
}

/// Route an agent uploads one frame to, with the format's file extension.
pub fn agent_frame(lease: i64, frame: i64, format: ImageFormat) -> String {
    format!(
        "{API_PREFIX}/agent/leases/{lease}/frames/{frame}.{}",
        format.extension()
    )
}

/// Route an agent ends a lease with.
pub fn agent_lease_end(lease: i64) -> String {
    format!("{API_PREFIX}/agent/leases/{lease}/end")
}

/// A route with one `{id}`-like parameter filled in.
pub fn with_id(template: &str, id: i64) -> String {
    match template.split_once('{') {
        Some((head, rest)) => {
            let tail = rest.split_once('}').map_or("", |(_, t)| t);
            format!("{head}{id}{tail}")
        }
        None => template.to_owned(),
    }
}

/// Route of a frame's thumbnail.
pub fn job_frame_thumbnail(id: i64, frame: i64) -> String {
    format!("{JOBS}/{id}/frames/{frame}/thumbnail")
}

/// Route of one job.
pub fn job(id: i64) -> String {
    format!("{JOBS}/{id}")
}

/// Route of a job's frame list.
pub fn job_frames(id: i64) -> String {
    format!("{JOBS}/{id}/frames")
}

/// Route of one stored frame image (`file` as in `FrameInfo::file`).
pub fn job_frame_file(id: i64, file: &str) -> String {
    format!("{JOBS}/{id}/frames/{file}")
}

/// Route of a job's video.
pub fn job_video(id: i64) -> String {
    format!("{JOBS}/{id}/video.mp4")
}

/// Route of a job's frames zip.
pub fn job_frames_zip(id: i64) -> String {
    format!("{JOBS}/{id}/frames.zip")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fills a template's `{params}` in order, the way a router would match them.
    fn fill(template: &str, values: &[&str]) -> String {
        let mut out = String::new();
        let mut rest = template;
        let mut values = values.iter();
        while let Some(open) = rest.find('{') {
            let close = rest[open..].find('}').expect("closed") + open;
            out.push_str(&rest[..open]);
            out.push_str(values.next().expect("a value per parameter"));
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        out
    }

    #[test]
    fn functions_fill_their_templates() {
        assert_eq!(agent_blob("ab"), fill(AGENT_BLOB, &["ab"]));
        assert_eq!(
            agent_frame(3, 12, ImageFormat::Jpeg),
            fill(AGENT_FRAME, &["3", "12.jpg"])
        );
        assert_eq!(
            agent_frame(3, 12, ImageFormat::Jpeg),
            "/api/v1/agent/leases/3/frames/12.jpg"
        );
        assert_eq!(agent_lease_end(4), fill(AGENT_LEASE_END, &["4"]));
        assert_eq!(job(7), fill(JOB, &["7"]));
        assert_eq!(job_frames(7), fill(JOB_FRAMES, &["7"]));
        assert_eq!(
            job_frame_file(7, "frame_00001.png"),
            fill(JOB_FRAME_FILE, &["7", "frame_00001.png"])
        );
        assert_eq!(job_video(7), fill(JOB_VIDEO, &["7"]));
        assert_eq!(job_frames_zip(7), fill(JOB_FRAMES_ZIP, &["7"]));
        assert_eq!(
            job_frame_thumbnail(7, 3),
            fill(JOB_FRAME_THUMBNAIL, &["7", "3"])
        );
        assert_eq!(with_id(JOB_CANCEL, 9), "/api/v1/jobs/9/cancel");
        assert_eq!(with_id(AGENT, 4), "/api/v1/agents/4");
        assert_eq!(with_id(AGENTS, 4), AGENTS);
    }

    #[test]
    fn every_route_is_under_the_prefix() {
        for r in [
            AGENT_REGISTER,
            AGENT_HEARTBEAT,
            AGENT_LEASE,
            AGENT_BLOB,
            AGENT_FRAME,
            AGENT_LEASE_END,
            JOBS,
            JOB,
            JOB_FRAMES,
            JOB_FRAME_FILE,
            JOB_VIDEO,
            JOB_FRAMES_ZIP,
            JOB_FRAME_THUMBNAIL,
            JOB_FAILURES,
            JOB_CANCEL,
            JOB_PAUSE,
            JOB_RESUME,
            JOB_RETRY,
            JOB_PRIORITY,
            AGENTS,
            AGENT,
            AGENT_DRAIN,
            AGENT_DISABLE,
            AGENT_ENABLE,
            AGENT_RELEASE,
            ENROLMENT_REQUESTS,
            ENROLMENT_REQUEST_CLAIM,
            ENROLMENT_REQUEST_APPROVE,
            ENROLMENT_REQUEST,
            OPENAPI,
        ] {
            assert!(r.starts_with(API_PREFIX), "{r}");
        }
    }
}
