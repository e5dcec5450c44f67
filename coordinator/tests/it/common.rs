//! Test harness: a coordinator on 127.0.0.1:0 in a temp dir, agents in-process or as processes.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use idlefarm_coordinator::client::Client;
use idlefarm_coordinator::server::{self, Coordinator, ServerConfig};
use idlefarm_protocol::{JobInfo, JobState};
use tokio::sync::watch;

/// A running coordinator and the agents started for it.
pub struct Farm {
    /// Logged in as the first admin (`admin`).
    pub client: Client,
    /// The first admin's password (`None` for a bare farm).
    pub admin_password: Option<String>,
    pub url: String,
    pub token: String,
    pub dir: tempfile::TempDir,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    agents: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A temp dir that the unprivileged render user (`nobody`) can traverse.
pub fn shared_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("idlefarm-test-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

impl Farm {
    /// Starts a coordinator with `configure` applied to its defaults, its first admin created
    /// and `client` logged in as them.
    pub async fn start(configure: impl FnOnce(&mut ServerConfig)) -> Farm {
        Self::start_with(configure, true).await
    }

    /// Starts a coordinator without any user; `client` is not logged in.
    pub async fn start_bare(configure: impl FnOnce(&mut ServerConfig)) -> Farm {
        Self::start_with(configure, false).await
    }

    async fn start_with(configure: impl FnOnce(&mut ServerConfig), with_admin: bool) -> Farm {
        let dir = shared_tempdir();
        let mut config = ServerConfig::new(dir.path().join("data"));
        configure(&mut config);
        let coord = Coordinator::open(config).await.expect("coordinator opens");
        let token = coord.enrolment_token().await.unwrap().0;
        let admin = match with_admin {
            true => idlefarm_coordinator::accounts::first_run_admin(coord.store())
                .await
                .unwrap(),
            false => None,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, rx) = watch::channel(false);
        let server = tokio::spawn(server::run(listener, coord, wait_true(rx)));
        let client = match &admin {
            Some((name, password)) => Client::new(&url)
                .login(name, password, "tests")
                .await
                .expect("the first admin logs in"),
            None => Client::new(&url),
        };
        Farm {
            client,
            admin_password: admin.map(|(_, password)| password),
            url,
            token,
            dir,
            stop,
            server,
            agents: Vec::new(),
        }
    }

    /// The coordinator's data directory.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts an in-process agent that is always available.
    pub fn add_agent(&mut self, name: &str) {
        self.add_agent_with(name, Arc::new(idlefarm_agent::AlwaysAvailable), |_| {});
    }

    /// Starts an in-process agent watching `presence`, with `configure` applied to its
    /// configuration (heartbeat every 500 ms and a 50 ms setback wait unless changed). Returns its work directory, which
    /// its renderers' command lines mention.
    pub fn add_agent_with(
        &mut self,
        name: &str,
        presence: Arc<dyn idlefarm_agent::Presence>,
        configure: impl FnOnce(&mut idlefarm_agent::AgentConfig),
    ) -> PathBuf {
        let work_dir = self.dir.path().join(format!("agent-{name}"));
        let mut config = idlefarm_agent::AgentConfig::new(
            self.url.clone(),
            self.token.clone(),
            work_dir.clone(),
        );
        config.name = name.to_owned();
        config.heartbeat_interval = Duration::from_millis(500);
        // Leases that end badly slow an agent down; tests of broken PCs need it quick.
        config.setback_wait = Duration::from_millis(50);
        // The test machine's disk may be fuller than the 10 % a lab PC keeps free; the disk
        // budget has tests of its own.
        config.disk_budget.min_free = idlefarm_agent::budget::MinFree::Bytes(0);
        configure(&mut config);
        let rx = self.stop.subscribe();
        self.agents.push(tokio::spawn(idlefarm_agent::run(
            config,
            presence,
            wait_true(rx),
        )));
        work_dir
    }

    /// Starts the `idlefarm-agent` binary as a separate process.
    pub fn spawn_agent_process(&self, name: &str) -> tokio::process::Child {
        tokio::process::Command::new(agent_binary())
            .args([
                "--coordinator",
                &self.url,
                "--token",
                &self.token,
                "--name",
                name,
            ])
            .args(["--policy", "always", "--min-free", "0%"])
            .arg("--work-dir")
            .arg(self.dir.path().join(format!("agent-{name}")))
            .arg("--status-socket")
            .arg(self.dir.path().join(format!("agent-{name}.sock")))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("idlefarm-agent starts (run `cargo build --workspace --bins` first)")
    }

    /// Stops agents and the coordinator, checking none of them failed.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for a in self.agents {
            a.await.unwrap().expect("agent ran cleanly");
        }
        self.server.await.unwrap().expect("server ran cleanly");
    }
}

impl Farm {
    /// Stops the coordinator (and any agents) and starts a fresh one on the same address and
    /// data directory, with default settings: what a page sees when the coordinator restarts.
    pub async fn restart_server(&mut self) {
        let _ = self.stop.send(true);
        for a in self.agents.drain(..) {
            let _ = a.await;
        }
        let old = std::mem::replace(&mut self.server, tokio::spawn(async { Ok(()) }));
        old.await.unwrap().expect("server ran cleanly");
        let coord = Coordinator::open(ServerConfig::new(self.data()))
            .await
            .expect("coordinator opens again");
        let addr = self.url.trim_start_matches("http://").to_owned();
        let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
        let (stop, rx) = watch::channel(false);
        self.stop = stop;
        self.server = tokio::spawn(server::run(listener, coord, wait_true(rx)));
    }
}

async fn wait_true(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// The `idlefarm-agent` binary built beside this package's `idlefarm`.
pub fn agent_binary() -> PathBuf {
    let me = PathBuf::from(env!("CARGO_BIN_EXE_idlefarm"));
    let agent = me.with_file_name("idlefarm-agent");
    assert!(
        agent.exists(),
        "{} is missing: run `cargo build --workspace --bins`",
        agent.display()
    );
    agent
}

/// Polls a job until it is final (or panics after `limit`).
pub async fn wait_for_job(client: &Client, id: i64, limit: Duration) -> JobInfo {
    let start = Instant::now();
    loop {
        let job = client.job(id).await.unwrap();
        if job.state.is_final() {
            return job;
        }
        assert!(
            start.elapsed() < limit,
            "job {id} not finished after {limit:?}: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Asserts a job is done with every frame present exactly once, each a decodable image of the
/// job's size, and an MP4 with one video frame per frame.
pub async fn assert_complete(farm: &Farm, job: &JobInfo) {
    assert_eq!(job.state, JobState::Done, "job failed: {:?}", job.error);
    let expected: Vec<i64> = job.settings.frames();
    assert_eq!(job.frames.done as usize, expected.len());
    let frames = farm.client.frames(job.id).await.unwrap();
    let numbers: Vec<i64> = frames.iter().map(|f| f.frame).collect();
    assert_eq!(numbers, expected);
    let dir = farm
        .data()
        .join("jobs")
        .join(job.id.to_string())
        .join("frames");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let want: Vec<String> = frames
        .iter()
        .map(|f| f.file.clone().expect("done frame has a file"))
        .collect();
    assert_eq!(files, want, "frames dir holds exactly one file per frame");
    let (w, h) = job.settings.frame_size();
    for f in &files {
        let img = image::open(dir.join(f)).expect("frame decodes");
        assert_eq!(
            (img.width(), img.height()),
            (w, h),
            "{f} has the job's size"
        );
    }
    let out = tempfile::tempdir().unwrap();
    let video = out.path().join("v.mp4");
    farm.client
        .download(&format!("/jobs/{}/video.mp4", job.id), &video)
        .await
        .unwrap();
    assert_eq!(ffprobe_frames(&video), expected.len() as u64);
}

/// Number of video frames in a file, counted by ffprobe.
pub fn ffprobe_frames(video: &Path) -> u64 {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=nb_read_frames,codec_name,pix_fmt",
            "-of",
            "json",
        ])
        .arg(video)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stream = &v["streams"][0];
    assert_eq!(stream["codec_name"], "h264");
    assert_eq!(stream["pix_fmt"], "yuv420p");
    stream["nb_read_frames"].as_str().unwrap().parse().unwrap()
}

/// Accounts: users and logged-in clients for tests, made directly in the coordinator's store.
impl Farm {
    /// A second handle on the coordinator's database (SQLite in WAL mode lets both write).
    pub async fn store(&self) -> idlefarm_coordinator::store::Store {
        idlefarm_coordinator::store::Store::open(&self.data())
            .await
            .expect("database opens")
    }

    /// Adds a user with a generated password; returns the password.
    pub async fn add_user(&self, name: &str, role: idlefarm_protocol::accounts::Role) -> String {
        let req = idlefarm_protocol::accounts::NewUser {
            name: name.to_owned(),
            role,
            password: None,
        };
        let added = idlefarm_coordinator::accounts::add_user(&self.store().await, "test", req)
            .await
            .expect("user added");
        added.password.expect("a generated password")
    }

    /// A client logged in with an API token as a new user called `name` with `role`.
    pub async fn client_as(&self, name: &str, role: idlefarm_protocol::accounts::Role) -> Client {
        let password = self.add_user(name, role).await;
        let made = self
            .client
            .create_api_token(name, &password, "tests")
            .await
            .expect("login works");
        Client::new(&self.url).with_token(Some(made.token))
    }
}
