//! What coordinator benches share: a coordinator in-process on 127.0.0.1 with a fresh data
//! directory, its first admin logged in, and a small POV-Ray animation ready to submit (no
//! agent: submitted frames stay queued). The bench declares `mod scenes` beside this module.

use std::path::PathBuf;

use idlefarm_coordinator::client::{Client, SubmitOptions};
use idlefarm_coordinator::server::{self, Coordinator, ServerConfig};

/// A running bench coordinator.
#[allow(dead_code)] // Each bench reads what it needs.
pub struct BenchFarm {
    /// Holds the data directory and the scene; removed when the farm is dropped.
    _dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The first admin's name and password.
    pub admin: (String, String),
    /// Logged in as the admin.
    pub client: Client,
    /// The scene file and the options that submit it with its ini.
    pub scene: (PathBuf, SubmitOptions),
    stop: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl BenchFarm {
    /// Starts a coordinator; its scene has `frames` frames of 64×48.
    pub async fn start(frames: i64) -> anyhow::Result<BenchFarm> {
        let dir = tempfile::Builder::new()
            .prefix("idlefarm-bench-")
            .tempdir()?;
        let coord = Coordinator::open(ServerConfig::new(dir.path().join("data"))).await?;
        let (admin, password) = idlefarm_coordinator::accounts::first_run_admin(coord.store())
            .await?
            .ok_or_else(|| anyhow::anyhow!("a fresh data directory has no users"))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(server::run(listener, coord, async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
        let client = Client::new(&url).login(&admin, &password, "bench").await?;
        let pov = dir.path().join("ball.pov");
        let ini = dir.path().join("ball.ini");
        std::fs::write(&pov, crate::scenes::pov_scene(None))?;
        std::fs::write(&ini, crate::scenes::pov_ini(1, frames, 64, 48))?;
        let opts = SubmitOptions {
            ini: Some(ini),
            ..SubmitOptions::default()
        };
        Ok(BenchFarm {
            _dir: dir,
            url,
            admin: (admin, password),
            client,
            scene: (pov, opts),
            stop,
            server,
        })
    }

    /// Submits the scene; returns the job's id.
    pub async fn submit(&self) -> anyhow::Result<i64> {
        Ok(self.client.submit(&self.scene.0, &self.scene.1).await?.id)
    }

    /// Stops the coordinator.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.server.await?
    }
}
