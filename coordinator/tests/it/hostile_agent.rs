//! Issue 11's reproducers for a hostile agent: frames of someone else's lease, oversized,
//! oversized-on-decode or padded frame uploads, inputs of jobs it was never given, and endless
//! failure messages. Each checks the answer's status, a message a person can act on, and that
//! nothing was stored.

pub mod bomb;

use std::time::Duration;

use idlefarm_coordinator::client::SubmitOptions;
use idlefarm_protocol::{
    ImageFormat, JobInfo, Lease, LeaseEnd, LeaseOutcome, LeaseRequest, LeaseResponse,
    PresenceState, RegisterRequest, RegisterResponse, Renderer, RendererInfo, routes,
};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{Farm, shared_tempdir};

/// The frame size of every job here.
pub(crate) const W: u32 = 64;
pub(crate) const H: u32 = 48;

/// An agent driven by hand over HTTP, as an attacker would.
pub(crate) struct FakeAgent {
    http: reqwest::Client,
    base: String,
    auth: String,
}

/// A status and the `error` of the JSON answer (empty when there is none).
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub error: String,
    /// Whether the answer says the connection closes after it.
    pub closes: bool,
}

impl Answer {
    async fn of(res: reqwest::Response) -> Answer {
        let status = res.status().as_u16();
        let closes = (res.headers().get("connection")).is_some_and(|v| v == "close");
        let body: serde_json::Value = res.json().await.unwrap_or_default();
        let error = body["error"].as_str().unwrap_or_default().to_owned();
        Answer {
            status,
            error,
            closes,
        }
    }
}

impl FakeAgent {
    /// Enrols an agent offering `renderers`.
    pub(crate) async fn enrol(farm: &Farm, name: &str, renderers: &[Renderer]) -> FakeAgent {
        let http = reqwest::Client::new();
        let renderers = renderers
            .iter()
            .map(|&renderer| RendererInfo {
                renderer,
                version: "1".into(),
            })
            .collect();
        let req = RegisterRequest {
            token: farm.token.clone(),
            name: name.into(),
            renderers,
        };
        let creds: RegisterResponse = http
            .post(farm.client.url(idlefarm_protocol::routes::AGENT_REGISTER))
            .json(&req)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        FakeAgent {
            http,
            base: farm.url.clone(),
            auth: format!("Bearer {}.{}", creds.agent_id, creds.secret),
        }
    }

    pub(crate) async fn lease(&self) -> Lease {
        self.ask().await.expect("work is queued")
    }

    /// One lease request, long-polled: a lease, or none when the long poll ran out.
    pub(crate) async fn ask(&self) -> Option<Lease> {
        let res: LeaseResponse = self
            .http
            .post(format!("{}{}", self.base, routes::AGENT_LEASE))
            .header("authorization", &self.auth)
            .json(&LeaseRequest {
                presence: PresenceState::Idle,
                slots: 1,
            })
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        res.lease
    }

    pub(crate) async fn put_frame(&self, lease: i64, frame: i64, bytes: Vec<u8>) -> Answer {
        self.put_frame_with(lease, frame, bytes, None).await
    }

    /// Uploads a frame, reporting `renderer_error` (raw header bytes) when given.
    async fn put_frame_with(
        &self,
        lease: i64,
        frame: i64,
        bytes: Vec<u8>,
        renderer_error: Option<&[u8]>,
    ) -> Answer {
        let url = format!(
            "{}{}",
            self.base,
            routes::agent_frame(lease, frame, ImageFormat::Png)
        );
        let mut req = self.http.put(url).header("authorization", &self.auth);
        if let Some(raw) = renderer_error {
            let value = reqwest::header::HeaderValue::from_bytes(raw).unwrap();
            req = req.header(idlefarm_protocol::RENDERER_ERROR_HEADER, value);
        }
        let res = req.body(bytes).send().await.unwrap();
        Answer::of(res).await
    }

    pub(crate) async fn end(&self, lease: i64, end: &LeaseEnd) -> Answer {
        let url = format!("{}{}", self.base, routes::agent_lease_end(lease));
        let res = self
            .http
            .post(url)
            .header("authorization", &self.auth)
            .json(end)
            .send()
            .await
            .unwrap();
        Answer::of(res).await
    }

    /// Sends a heartbeat saying `presence` and holding `leases`; returns the revoked ones.
    pub(crate) async fn heartbeat(&self, presence: PresenceState, leases: &[i64]) -> Vec<i64> {
        let res: idlefarm_protocol::HeartbeatResponse = self
            .http
            .post(format!("{}{}", self.base, routes::AGENT_HEARTBEAT))
            .header("authorization", &self.auth)
            .json(&idlefarm_protocol::HeartbeatRequest {
                presence,
                leases: leases.to_vec(),
            })
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        res.revoked
    }

    /// Downloads a blob: the status and, on success, the bytes.
    async fn blob(&self, hash: &str) -> (Answer, Vec<u8>) {
        let url = format!("{}{}", self.base, routes::agent_blob(hash));
        let res = self
            .http
            .get(url)
            .header("authorization", &self.auth)
            .send()
            .await
            .unwrap();
        if res.status().is_success() {
            let status = res.status().as_u16();
            let bytes = res.bytes().await.unwrap().to_vec();
            (
                Answer {
                    status,
                    error: String::new(),
                    closes: false,
                },
                bytes,
            )
        } else {
            (Answer::of(res).await, Vec::new())
        }
    }
}

/// Sends a PUT's head declaring `content_length` and only `first` of its body, and reads the
/// answer (which must come without the rest of the body).
async fn put_head_only(
    base: &str,
    path: &str,
    auth: &str,
    content_length: u64,
    first: &[u8],
) -> Answer {
    let addr = base.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\nContent-Length: {content_length}\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(first).await.unwrap();
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            let n = tcp.read(&mut buf).await.unwrap_or(0);
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(str::to_owned)
                    })
                    .and_then(|v| v.trim().parse::<usize>().ok());
                if n == 0 || len.is_some_and(|len| body.len() >= len) {
                    return (head.to_owned(), body.to_owned());
                }
            }
            assert!(n > 0, "connection closed without an answer");
        }
    };
    let (head, body) = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("an answer before the body was sent");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let error = json["error"].as_str().unwrap_or_default().to_owned();
    let closes = (head.lines()).any(|l| l.eq_ignore_ascii_case("connection: close"));
    Answer {
        status,
        error,
        closes,
    }
}

/// Submits a POV-Ray job of frames `1..=frames` at W×H in chunks of `chunk`.
pub(crate) async fn submit_pov(farm: &Farm, frames: i64, chunk: u32) -> JobInfo {
    let dir = shared_tempdir();
    let pov = dir.path().join("s.pov");
    std::fs::write(&pov, crate::scenes::pov_scene(None)).unwrap();
    let ini = dir.path().join("s.ini");
    std::fs::write(&ini, crate::scenes::pov_ini(1, frames, W, H)).unwrap();
    let opts = SubmitOptions {
        ini: Some(ini),
        chunk: Some(chunk.to_string()),
        ..SubmitOptions::default()
    };
    farm.client.submit(&pov, &opts).await.unwrap()
}

/// A PNG of `w`×`h` whose pixels depend on `seed`.
fn png(w: u32, h: u32, seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([x as u8 ^ seed, y as u8, seed.wrapping_mul(7)])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// The files in a job's frames folder (temp files included), sorted.
fn stored_frames(farm: &Farm, job: i64) -> Vec<String> {
    let dir = farm.data().join(format!("jobs/{job}/frames"));
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// Item 6: holding frames 1-2, an agent uploads frame 3 of another agent's lease.
#[tokio::test]
async fn a_frame_is_accepted_only_from_the_lease_it_belongs_to() {
    let farm = Farm::start(|_| {}).await;
    let job = submit_pov(&farm, 4, 2).await;
    let a = FakeAgent::enrol(&farm, "a", &[Renderer::Povray]).await;
    let b = FakeAgent::enrol(&farm, "b", &[Renderer::Povray]).await;
    let la = a.lease().await;
    let lb = b.lease().await;
    assert_eq!(
        (la.frames.clone(), lb.frames.clone()),
        (vec![1, 2], vec![3, 4])
    );

    let stolen = a.put_frame(la.id, 3, png(W, H, 1)).await;
    assert_eq!(stolen.status, 409, "{stolen:?}");
    assert!(
        stolen.error.contains("frame 3 is not part of lease")
            && stolen.error.contains("frames 1-2"),
        "{stolen:?}"
    );
    assert!(stored_frames(&farm, job.id).is_empty());
    let info = farm.client.job(job.id).await.unwrap();
    assert_eq!(info.frames.done, 0, "nothing was credited");

    // The lease's own frames are welcome, also late, after the lease was given back.
    assert_eq!(a.put_frame(la.id, 1, png(W, H, 2)).await.status, 200);
    let yielded = LeaseEnd {
        outcome: LeaseOutcome::Yield,
        message: None,
        log_tail: None,
    };
    assert_eq!(a.end(la.id, &yielded).await.status, 200);
    assert_eq!(a.put_frame(la.id, 2, png(W, H, 3)).await.status, 200);
    assert_eq!(b.put_frame(lb.id, 3, png(W, H, 4)).await.status, 200);
    assert_eq!(
        stored_frames(&farm, job.id),
        ["frame_00001.png", "frame_00002.png", "frame_00003.png"]
    );
    farm.stop().await;
}

/// A renderer error the agent reports with a frame must be short printable text; a good one
/// holds the frame for another PC's render instead of counting it.
#[tokio::test]
async fn a_malformed_renderer_error_is_refused_and_a_good_one_holds_the_frame() {
    let farm = Farm::start(|_| {}).await;
    let job = submit_pov(&farm, 2, 2).await;
    let a = FakeAgent::enrol(&farm, "a", &[Renderer::Povray]).await;
    let lease = a.lease().await;
    let long = vec![b'x'; idlefarm_protocol::MAX_RENDERER_ERROR + 1];
    for (raw, says) in [
        (&long[..], "longer than"),
        (&b"Fatal error \xff\xfe"[..], "printable"),
    ] {
        let answer = a.put_frame_with(lease.id, 1, png(W, H, 1), Some(raw)).await;
        assert_eq!(answer.status, 400, "{answer:?}");
        assert!(answer.error.contains(says), "{answer:?}");
    }
    assert!(stored_frames(&farm, job.id).is_empty(), "nothing is stored");

    let line = b"Fatal error in renderer: Out of memory.";
    let held = (a.put_frame_with(lease.id, 1, png(W, H, 1), Some(line))).await;
    assert_eq!(held.status, 200, "{held:?}");
    let frames = farm.client.frames(job.id).await.unwrap();
    assert_eq!(frames[0].state, "queued", "{frames:?}");
    let check = frames[0].check.as_deref().unwrap_or_default();
    assert!(check.contains("Out of memory"), "{check}");
    assert_eq!(farm.client.job(job.id).await.unwrap().frames.done, 0);
    farm.stop().await;
}

/// Item 3: 100 MB announced to a lease that does not exist are refused before any is read.
#[tokio::test]
async fn a_frame_for_a_lease_not_held_is_refused_before_its_body_is_read() {
    let farm = Farm::start(|_| {}).await;
    let job = submit_pov(&farm, 2, 2).await;
    let a = FakeAgent::enrol(&farm, "a", &[Renderer::Povray]).await;
    let path = routes::agent_frame(999, 1, ImageFormat::Png);
    let answer = put_head_only(&farm.url, &path, &a.auth, 100 << 20, &[0; 65536]).await;
    assert_eq!(answer.status, 409, "{answer:?}");
    assert!(
        answer.error.contains("lease 999 is not held by this agent"),
        "{answer:?}"
    );
    // The rest of the body is never read, so the agent is told not to reuse the connection.
    assert!(answer.closes, "{answer:?}");
    assert!(stored_frames(&farm, job.id).is_empty());
    farm.stop().await;
}

/// Item 3: a frame body beyond what the job's frame size can need is refused with 413, whether
/// its length is announced (at once) or not (as soon as it passes the limit), and nothing stays.
#[tokio::test]
async fn a_frame_body_beyond_the_frame_size_limit_is_refused() {
    let farm = Farm::start(|_| {}).await;
    let job = submit_pov(&farm, 2, 2).await;
    let a = FakeAgent::enrol(&farm, "a", &[Renderer::Povray]).await;
    let lease = a.lease().await;
    let path = routes::agent_frame(lease.id, 1, ImageFormat::Png);

    let announced = put_head_only(&farm.url, &path, &a.auth, 300 << 20, &png(W, H, 1)).await;
    assert_eq!(announced.status, 413, "{announced:?}");
    assert!(
        announced.error.contains("frame 1 is larger than")
            && announced.error.contains("frame size"),
        "{announced:?}"
    );

    // An endless body without a length: the coordinator stops reading at the limit.
    let endless = futures::stream::repeat_with(|| Ok::<_, std::io::Error>(vec![0u8; 65536]));
    let put = a
        .http
        .put(format!("{}{path}", farm.url))
        .header("authorization", &a.auth)
        .body(reqwest::Body::wrap_stream(endless))
        .send();
    let res = tokio::time::timeout(Duration::from_secs(30), put)
        .await
        .expect("an answer while the body still flows")
        .unwrap();
    let streamed = Answer::of(res).await;
    assert_eq!(streamed.status, 413, "{streamed:?}");
    assert!(
        streamed.error.contains("frame 1 is larger than"),
        "{streamed:?}"
    );

    assert!(
        stored_frames(&farm, job.id).is_empty(),
        "no frame, no temp file"
    );
    assert_eq!(farm.client.job(job.id).await.unwrap().frames.done, 0);
    // The lease is still good for a frame of the right size.
    assert_eq!(a.put_frame(lease.id, 1, png(W, H, 2)).await.status, 200);
    farm.stop().await;
}

/// Item 2: a ~1 MB PNG declaring 13000x13000 (169 MB of pixels) is refused from its header,
/// before anything is decoded: a cut-off copy, which a decoder would only find broken after
/// allocating the image, gets the same answer.
#[tokio::test]
async fn a_frame_of_the_wrong_size_is_refused_from_its_header() {
    let farm = Farm::start(|_| {}).await;
    let job = submit_pov(&farm, 2, 2).await;
    let a = FakeAgent::enrol(&farm, "a", &[Renderer::Povray]).await;
    let lease = a.lease().await;
    let bomb = bomb::png_bomb(13000, 13000, true);
    assert!(bomb.len() < 2 << 20, "a small upload: {} bytes", bomb.len());
    let decoded = image::load_from_memory(&bomb[..bomb.len().min(4096)]);
    assert!(decoded.is_err(), "the bomb is no image without its pixels");
    for hostile in [bomb::png_bomb(13000, 13000, false), bomb] {
        let answer = a.put_frame(lease.id, 1, hostile).await;
        assert_eq!(answer.status, 400, "{answer:?}");
        assert!(
            answer
                .error
                .contains("frame 1 is 13000x13000 but the job renders 64x48"),
            "{answer:?}"
        );
    }
    assert!(stored_frames(&farm, job.id).is_empty());
    assert_eq!(farm.client.job(job.id).await.unwrap().frames.done, 0);
    farm.stop().await;
}

/// The bomb is a real image: a small one decodes to its declared size, all black.
#[test]
fn the_png_bomb_inflates_to_its_declared_size() {
    let img = image::load_from_memory(&bomb::png_bomb(700, 300, true)).unwrap();
    assert_eq!((img.width(), img.height()), (700, 300));
    assert!(img.to_luma8().pixels().all(|p| p.0 == [0]));
    assert!(image::load_from_memory(&bomb::png_bomb(700, 300, false)).is_err());
}

/// Item 7: a valid PNG followed by HTML is stored, and served, without the HTML.
#[tokio::test]
async fn bytes_after_a_frame_image_are_never_stored_nor_served() {
    let farm = Farm::start(|_| {}).await;
    let job = submit_pov(&farm, 2, 2).await;
    let a = FakeAgent::enrol(&farm, "a", &[Renderer::Povray]).await;
    let lease = a.lease().await;
    let frame = png(W, H, 5);
    let mut padded = frame.clone();
    padded.extend(b"<html><script>alert('hi')</script></html>".repeat(20_000));
    assert_eq!(a.put_frame(lease.id, 1, padded).await.status, 200);
    let stored = farm
        .data()
        .join(format!("jobs/{}/frames/frame_00001.png", job.id));
    assert_eq!(std::fs::read(stored).unwrap(), frame);
    let served = reqwest::Client::new()
        .get(
            farm.client
                .url(&routes::job_frame_file(job.id, "frame_00001.png")),
        )
        .bearer_auth(farm.client.token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.bytes().await.unwrap().to_vec(), frame);

    // An image that does not end is no image.
    let cut = frame[..frame.len() - 12].to_vec();
    let answer = a.put_frame(lease.id, 2, cut).await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(
        answer
            .error
            .contains("frame 2 is not a valid Png image: it ends before its IEND chunk"),
        "{answer:?}"
    );
    assert_eq!(stored_frames(&farm, job.id), ["frame_00001.png"]);
    farm.stop().await;
}

/// Item 8: a Blender-only agent without a lease cannot fetch a POV-Ray job's input by its
/// hash; the agent rendering it can, until a lease TTL after its lease ended.
#[tokio::test]
async fn an_agent_fetches_only_inputs_of_jobs_it_holds_a_lease_on() {
    let farm = Farm::start(|c| c.lease_ttl = Duration::from_secs(1)).await;
    submit_pov(&farm, 2, 2).await;
    let outsider = FakeAgent::enrol(&farm, "blender-only", &[Renderer::Blender]).await;
    let renderer = FakeAgent::enrol(&farm, "povray", &[Renderer::Povray]).await;
    let lease = renderer.lease().await;
    let hash = lease.input_hash.clone();

    let (refused, bytes) = outsider.blob(&hash).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(
        refused.error.contains("holds no lease on a job with input"),
        "{refused:?}"
    );
    assert!(bytes.is_empty());

    let (ok, bytes) = renderer.blob(&hash).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(blake3::hash(&bytes).to_hex().as_str(), hash);
    let yielded = LeaseEnd {
        outcome: LeaseOutcome::Yield,
        message: None,
        log_tail: None,
    };
    assert_eq!(renderer.end(lease.id, &yielded).await.status, 200);
    assert_eq!(
        renderer.blob(&hash).await.0.status,
        200,
        "just after the lease"
    );
    // Past the lease's expiry and one more TTL.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        renderer.blob(&hash).await.0.status,
        403,
        "long after the lease"
    );
    farm.stop().await;
}

/// Item 11: failures with a 1.5 MB message and a 400 KB log tail are stored cut (the message's
/// start, the log's end) and the job's error stays short.
#[tokio::test]
async fn failure_messages_and_log_tails_are_capped_where_they_enter() {
    let farm = Farm::start(|_| {}).await;
    let job = submit_pov(&farm, 1, 1).await;
    let a = FakeAgent::enrol(&farm, "a", &[Renderer::Povray]).await;
    let message = "é".repeat(750_000);
    let log: String = (0..40_000)
        .map(|i| format!("line {i}\n"))
        .collect::<String>()
        + "THE END";
    let failed = LeaseEnd {
        outcome: LeaseOutcome::Failed,
        message: Some(message),
        log_tail: Some(log),
    };
    for _ in 0..3 {
        let lease = a.lease().await;
        let answer = a.end(lease.id, &failed).await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    let failures = farm.client.failures(job.id).await.unwrap();
    assert_eq!(failures.len(), 3);
    for f in &failures {
        assert!(
            f.message.len() <= 1024,
            "message of {} bytes",
            f.message.len()
        );
        assert!(f.message.starts_with("éé") && f.message.ends_with(" […]"));
        let tail = f.log_tail.as_deref().unwrap();
        assert!(tail.len() <= 8192, "log tail of {} bytes", tail.len());
        assert!(tail.starts_with("[…] ") && tail.ends_with("line 39999\nTHE END"));
    }
    let info = farm.client.job(job.id).await.unwrap();
    assert_eq!(info.state, idlefarm_protocol::JobState::Failed);
    let error = info.error.unwrap();
    assert!(error.len() < 2048, "job error of {} bytes", error.len());
    farm.stop().await;
}
