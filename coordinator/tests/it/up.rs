//! `idlefarm up` as a person runs it: the real binary starting its `idlefarm-agent` child, and
//! what happens when that binary is missing or `up` is told to stop.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use idlefarm_coordinator::client::Client;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

use crate::common::{agent_binary, shared_tempdir};

#[tokio::test]
async fn up_without_an_agent_binary_says_how_to_build_one() {
    let dir = shared_tempdir();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let idlefarm = bin.join("idlefarm");
    // A hard link keeps `current_exe()` in the temp dir, where no agent lies beside it (a
    // symlink would resolve to the build dir, which has one).
    if std::fs::hard_link(env!("CARGO_BIN_EXE_idlefarm"), &idlefarm).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_idlefarm"), &idlefarm).unwrap();
    }
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let run = Command::new(&idlefarm)
        .args(["up", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .env("PATH", &empty)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("up gives up at once")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "idlefarm-agent not found beside {}",
            idlefarm.display()
        )) && stderr.contains("cargo build --release --bins"),
        "{stderr}"
    );
    assert!(
        !stdout.contains("local agent:"),
        "no agent was started: {stdout}"
    );
}

#[tokio::test]
async fn up_runs_an_agent_child_that_registers_and_stops_with_up() {
    agent_binary();
    let dir = shared_tempdir();
    let data = dir.path().join("data");
    let mut up = Command::new(env!("CARGO_BIN_EXE_idlefarm"))
        .args(["up", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env("RUST_LOG", "info")
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .env_remove("IDLEFARM_DATA")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let up_pid = up.id().unwrap();
    // Both processes write to these pipes: the agent's child inherits them.
    let output = Arc::new(Mutex::new(String::new()));
    let (lines_tx, mut lines) = mpsc::unbounded_channel();
    let stdout_done = tokio::spawn(collect(
        up.stdout.take().unwrap(),
        output.clone(),
        Some(lines_tx),
    ));
    tokio::spawn(collect(up.stderr.take().unwrap(), output.clone(), None));
    let log = || output.lock().unwrap().clone();

    // The banner: the dashboard line, then the local agent's.
    let (url, agent_line) = tokio::time::timeout(Duration::from_secs(60), async {
        let mut url = None;
        while let Some(line) = lines.recv().await {
            let line = line.trim();
            if let Some(dashboard) = line.strip_prefix("dashboard:") {
                url = Some(dashboard.trim().trim_end_matches('/').to_owned());
            } else if let Some(agent) = line.strip_prefix("local agent:") {
                return (
                    url.expect("the dashboard line comes first"),
                    agent.to_owned(),
                );
            }
        }
        panic!("up ended before its banner did")
    })
    .await
    .unwrap_or_else(|_| panic!("no banner within 60 s:\n{}", log()));
    assert!(
        agent_line.contains(&format!("work dir {}", data.join("agent").display())),
        "the local agent works in the data dir: {agent_line}"
    );

    // `up` logged the local CLI in, in the config dir it was given.
    let saved = idlefarm_coordinator::accounts::credentials::Credentials::load(
        &dir.path().join("config/idlefarm/credentials.toml"),
    )
    .unwrap();
    let token = saved
        .get(&url)
        .expect("up saved a login for its URL")
        .token
        .clone();
    assert!(
        log().contains("admin login:"),
        "the first admin is shown: {}",
        log()
    );
    let client = Client::new(&url).with_token(Some(token));
    // Registration waits for the agent to detect its renderers.
    let start = Instant::now();
    let agents = loop {
        let agents = client.agents().await.unwrap();
        if !agents.is_empty() {
            break agents;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no agent registered within 120 s:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(agents.len(), 1, "{agents:?}");
    assert_eq!(
        agents[0].name,
        format!("{}-local", idlefarm_runtime::hostname())
    );
    let children = children_named(up_pid, "idlefarm-agent");
    assert_eq!(children.len(), 1, "one agent child of up:\n{}", log());
    let agent_pid = children[0];
    assert!(data.join("agent/status.sock").exists(), "{}", log());

    // SAFETY: plain system call on our own, not yet reaped child.
    assert_eq!(
        unsafe { libc::kill(up_pid as libc::pid_t, libc::SIGTERM) },
        0
    );
    let status = tokio::time::timeout(Duration::from_secs(60), up.wait())
        .await
        .unwrap_or_else(|_| panic!("up did not stop within 60 s:\n{}", log()))
        .unwrap();
    assert!(status.success(), "up stopped cleanly: {status}\n{}", log());
    assert!(log().contains("shutting down…"), "{}", log());
    assert!(
        !is_running(agent_pid, "idlefarm-agent"),
        "the agent child outlived up:\n{}",
        log()
    );
    // Every writer of the pipe is gone, the agent included.
    tokio::time::timeout(Duration::from_secs(10), stdout_done)
        .await
        .unwrap_or_else(|_| panic!("something of up's still holds its stdout:\n{}", log()))
        .unwrap();
}

/// Appends every line of `stream` to `output`, and sends it to `lines` when given.
async fn collect(
    stream: impl AsyncRead + Unpin,
    output: Arc<Mutex<String>>,
    lines: Option<mpsc::UnboundedSender<String>>,
) {
    let mut reader = BufReader::new(stream).lines();
    while let Ok(Some(line)) = reader.next_line().await {
        {
            let mut output = output.lock().unwrap();
            output.push_str(&line);
            output.push('\n');
        }
        if let Some(lines) = &lines {
            let _ = lines.send(line);
        }
    }
}

/// Pids of the live processes named `name` whose parent is `parent`.
fn children_named(parent: u32, name: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            stat(pid).is_some_and(|(comm, state, ppid)| {
                comm == name && state != "Z" && ppid == parent.to_string()
            })
        })
        .collect()
}

/// Whether `pid` is a live (not zombie) process named `name`.
fn is_running(pid: u32, name: &str) -> bool {
    stat(pid).is_some_and(|(comm, state, _)| comm == name && state != "Z")
}

/// Name, state and parent pid of `pid`, from `/proc/PID/stat`.
fn stat(pid: u32) -> Option<(String, String, String)> {
    let stat =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")).ok()?;
    // The name is in parentheses and may itself hold spaces or parentheses.
    let (head, rest) = stat.rsplit_once(')')?;
    let (_, comm) = head.split_once('(')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.to_owned();
    let ppid = fields.next()?.to_owned();
    Some((comm.to_owned(), state, ppid))
}
