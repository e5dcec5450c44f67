//! `idlefarm-agent status` finds the agent it belongs to, and two agents on one host do not
//! share a status socket: real agent binaries, each with its own work dir, config or socket.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::support::{eventually, open_tempdir};

const AGENT: &str = env!("CARGO_BIN_EXE_idlefarm-agent");
/// Nothing listens there: the agents keep retrying, which is all these tests need.
const NO_COORDINATOR: &str = "http://127.0.0.1:1";

/// Starts an agent binary with `args`; logind is unreachable, so it never renders.
fn start_agent(args: &[&str], dir: &Path) -> Child {
    Command::new(AGENT)
        .args(["--coordinator", NO_COORDINATOR, "--token", "t"])
        .args(["--system-bus", "unix:path=/nonexistent/idlefarm-test-bus"])
        .args(args)
        .env_remove("IDLEFARM_AGENT_CONFIG")
        .env("XDG_RUNTIME_DIR", dir)
        .env("XDG_STATE_HOME", dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Runs `idlefarm-agent status` with `args`.
async fn status(args: &[&str], dir: &Path) -> Output {
    Command::new(AGENT)
        .arg("status")
        .args(args)
        .env_remove("IDLEFARM_AGENT_CONFIG")
        .env("XDG_RUNTIME_DIR", dir)
        .env("XDG_STATE_HOME", dir)
        .output()
        .await
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The policy an agent reports, read from `status` output.
fn policy_line(out: &Output) -> Option<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.trim_start().starts_with("policy "))
        .map(|l| l.split_whitespace().last().unwrap_or("").to_owned())
}

async fn wait_for_socket(path: &Path) {
    assert!(
        eventually(Duration::from_secs(30), || path.exists()).await,
        "{} never appeared",
        path.display()
    );
}

#[tokio::test]
async fn status_finds_each_of_two_agents_by_work_dir_config_or_socket() {
    let dir = open_tempdir();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    let custom = dir.path().join("run/custom.sock");
    let config = dir.path().join("b.toml");
    std::fs::write(
        &config,
        format!(
            "work_dir = \"{}\"\npolicy = \"idle\"\nstatus_socket = \"{}\"\n",
            b.display(),
            custom.display()
        ),
    )
    .unwrap();
    let (a_str, config_str) = (a.to_str().unwrap(), config.to_str().unwrap());
    let _agent_a = start_agent(&["--work-dir", a_str, "--policy", "no-user"], dir.path());
    let _agent_b = start_agent(&["--config", config_str], dir.path());
    // Each agent's socket is its own: A's beside its work, B's where its config says.
    wait_for_socket(&a.join("status.sock")).await;
    wait_for_socket(&custom).await;

    let by_work_dir = status(&["--work-dir", a_str], dir.path()).await;
    assert!(by_work_dir.status.success(), "{}", text(&by_work_dir));
    assert_eq!(policy_line(&by_work_dir).as_deref(), Some("no-user"));
    let by_config = status(&["--config", config_str], dir.path()).await;
    assert!(by_config.status.success(), "{}", text(&by_config));
    assert_eq!(policy_line(&by_config).as_deref(), Some("idle"));
    let by_socket = status(&["--status-socket", custom.to_str().unwrap()], dir.path()).await;
    assert_eq!(policy_line(&by_socket).as_deref(), Some("idle"));
    // The flag wins over the config file, as it does for the agent itself.
    let a_socket = a.join("status.sock");
    let both = status(
        &[
            "--config",
            config_str,
            "--status-socket",
            a_socket.to_str().unwrap(),
        ],
        dir.path(),
    )
    .await;
    assert_eq!(policy_line(&both).as_deref(), Some("no-user"));
}

#[tokio::test]
async fn a_second_agent_on_the_same_work_dir_fails_with_a_clear_message() {
    let dir = open_tempdir();
    let work = dir.path().join("w");
    let work_str = work.to_str().unwrap();
    let _first = start_agent(&["--work-dir", work_str], dir.path());
    wait_for_socket(&work.join("status.sock")).await;
    let second = start_agent(&["--work-dir", work_str], dir.path());
    let out = tokio::time::timeout(Duration::from_secs(30), second.wait_with_output())
        .await
        .expect("the second agent kept running")
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out);
    assert!(
        err.contains("another idlefarm-agent is running")
            && err.contains(&work.join("status.sock").display().to_string())
            && err.contains("--work-dir"),
        "{err}"
    );
    // The first agent still answers.
    let first = status(&["--work-dir", work_str], dir.path()).await;
    assert!(first.status.success(), "{}", text(&first));
}

#[tokio::test]
async fn status_refuses_malformed_flags_and_config_and_says_where_it_looked() {
    let dir = open_tempdir();
    let missing_value = status(&["--status-socket"], dir.path()).await;
    assert!(!missing_value.status.success());
    assert!(
        text(&missing_value).contains("--status-socket"),
        "{}",
        text(&missing_value)
    );
    let missing_work_dir = status(&["--work-dir"], dir.path()).await;
    assert!(
        text(&missing_work_dir).contains("--work-dir"),
        "{}",
        text(&missing_work_dir)
    );
    let unknown = status(&["--status-sock", "x"], dir.path()).await;
    assert!(!unknown.status.success());
    assert!(
        text(&unknown).contains("--status-sock"),
        "{}",
        text(&unknown)
    );

    let nowhere = dir.path().join("nowhere.toml");
    let out = status(&["--config", nowhere.to_str().unwrap()], dir.path()).await;
    assert!(!out.status.success());
    assert!(text(&out).contains("nowhere.toml"), "{}", text(&out));

    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, "status_sockett = \"/tmp/x.sock\"\n").unwrap();
    let out = status(&["--config", typo.to_str().unwrap()], dir.path()).await;
    assert!(!out.status.success());
    assert!(text(&out).contains("status_sockett"), "{}", text(&out));

    let wrong_type = dir.path().join("wrong.toml");
    std::fs::write(&wrong_type, "status_socket = 5\n").unwrap();
    let out = status(&["--config", wrong_type.to_str().unwrap()], dir.path()).await;
    assert!(!out.status.success());
    assert!(text(&out).contains("status_socket"), "{}", text(&out));

    // No agent: the message names the socket it tried, derived from the work dir.
    let empty = dir.path().join("empty");
    let out = status(&["--work-dir", empty.to_str().unwrap()], dir.path()).await;
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains(&empty.join("status.sock").display().to_string())
            && said.contains("no agent answers"),
        "{said}"
    );
}

#[tokio::test]
async fn status_metrics_prints_the_running_agents_metrics() {
    let dir = open_tempdir();
    let work = dir.path().join("m");
    let work_str = work.to_str().unwrap();
    let _agent = start_agent(&["--work-dir", work_str], dir.path());
    wait_for_socket(&work.join("status.sock")).await;
    let out = status(&["--work-dir", work_str, "--metrics"], dir.path()).await;
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    for line in [
        "# TYPE idlefarm_agent_yield_latency_seconds histogram",
        "idlefarm_agent_leases_total{outcome=\"complete\"} 0",
        "# EOF",
    ] {
        assert!(printed.contains(line), "{line} missing from:\n{printed}");
    }

    // A bool flag takes no value; with no agent, the socket tried is named.
    let valued = status(&["--work-dir", work_str, "--metrics=yes"], dir.path()).await;
    assert!(!valued.status.success());
    assert!(text(&valued).contains("--metrics"), "{}", text(&valued));
    let empty = dir.path().join("empty");
    let out = status(
        &["--work-dir", empty.to_str().unwrap(), "--metrics"],
        dir.path(),
    )
    .await;
    assert!(!out.status.success());
    assert!(
        text(&out).contains(&empty.join("status.sock").display().to_string()),
        "{}",
        text(&out)
    );
}
