//! Issue 11's reproducers for a hostile agent: frames of someone else's lease, oversized,
//! oversized-on-decode or padded frame uploads, inputs of jobs it was never given, and endless
//! failure messages. Each checks the answer's status, a message a person can act on, and that
//! nothing was stored.

use idlefarm_coordinator::client::SubmitOptions;
use idlefarm_protocol::{
    ImageFormat, JobInfo, Lease, LeaseEnd, LeaseOutcome, LeaseRequest, LeaseResponse,
    PresenceState, RegisterRequest, RegisterResponse, Renderer, RendererInfo, routes,
};

use crate::common::{Farm, shared_tempdir};

/// The frame size of every job here.
const W: u32 = 64;
const H: u32 = 48;

/// An agent driven by hand over HTTP, as an attacker would.
struct FakeAgent {
    http: reqwest::Client,
    base: String,
    auth: String,
}

/// A status and the `error` of the JSON answer (empty when there is none).
#[derive(Debug)]
struct Answer {
    status: u16,
    error: String,
}

impl Answer {
    async fn of(res: reqwest::Response) -> Answer {
        let status = res.status().as_u16();
        let body: serde_json::Value = res.json().await.unwrap_or_default();
        let error = body["error"].as_str().unwrap_or_default().to_owned();
        Answer { status, error }
    }
}

impl FakeAgent {
    /// Enrols an agent offering `renderers`.
    async fn enrol(farm: &Farm, name: &str, renderers: &[Renderer]) -> FakeAgent {
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
            .post(farm.client.url("/agents/register"))
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

    async fn lease(&self) -> Lease {
        let res: LeaseResponse = self
            .http
            .post(format!("{}{}", self.base, routes::AGENT_LEASE))
            .header("authorization", &self.auth)
            .json(&LeaseRequest {
                presence: PresenceState::Idle,
            })
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        res.lease.expect("work is queued")
    }

    async fn put_frame(&self, lease: i64, frame: i64, bytes: Vec<u8>) -> Answer {
        let url = format!(
            "{}{}",
            self.base,
            routes::agent_frame(lease, frame, ImageFormat::Png)
        );
        let res = self
            .http
            .put(url)
            .header("authorization", &self.auth)
            .body(bytes)
            .send()
            .await
            .unwrap();
        Answer::of(res).await
    }

    async fn end(&self, lease: i64, end: &LeaseEnd) -> Answer {
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
                },
                bytes,
            )
        } else {
            (Answer::of(res).await, Vec::new())
        }
    }
}

/// Submits a POV-Ray job of frames `1..=frames` at W×H in chunks of `chunk`.
async fn submit_pov(farm: &Farm, frames: i64, chunk: u32) -> JobInfo {
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
    assert_eq!((la.frames.clone(), lb.frames.clone()), (vec![1, 2], vec![3, 4]));

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
