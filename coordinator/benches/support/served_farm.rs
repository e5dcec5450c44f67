//! What the benches that measure the real `idlefarm` binary share: a fresh data directory with
//! its first admin and an enrolment token, the binary serving it on a free port of 127.0.0.1
//! (its output discarded, killed when dropped), and a client logged in as the admin.

use std::time::{Duration, Instant};

use idlefarm_coordinator::client::Client;
use idlefarm_coordinator::server::{Coordinator, ServerConfig};

/// The binary serving a fresh data directory.
pub struct ServedFarm {
    /// Holds the data directory; files a bench writes may go beside it.
    pub dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// An enrolment token for agents.
    pub token: String,
    /// Logged in as the first admin.
    pub client: Client,
    /// The server process.
    pub server: tokio::process::Child,
    /// Its pid, to read its memory and CPU from /proc.
    pub pid: u32,
}

/// Prepares a data directory (under a temp dir named `prefix…`), then runs `command` (the
/// binary, perhaps behind `taskset`) with `serve` on it and waits until it answers.
pub async fn start(
    prefix: &str,
    mut command: tokio::process::Command,
) -> anyhow::Result<ServedFarm> {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir()?;
    let data = dir.path().join("data");
    // Set up the admin and the enrolment token, then hand the data directory to the binary.
    let (token, (admin, password)) = {
        let coord = Coordinator::open(ServerConfig::new(data.clone())).await?;
        let token = coord.enrolment_token().await?.0;
        let admin = idlefarm_coordinator::accounts::first_run_admin(coord.store())
            .await?
            .ok_or_else(|| anyhow::anyhow!("a fresh data directory has no users"))?;
        (token, admin)
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let server = command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(&data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = server
        .id()
        .ok_or_else(|| anyhow::anyhow!("no server pid"))?;
    let http = reqwest::Client::new();
    let start = Instant::now();
    while http.get(&url).send().await.is_err() {
        anyhow::ensure!(start.elapsed() < Duration::from_secs(30), "server not up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let client = Client::new(&url).login(&admin, &password, "bench").await?;
    Ok(ServedFarm {
        dir,
        url,
        token,
        client,
        server,
        pid,
    })
}
