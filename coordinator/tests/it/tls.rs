//! HTTPS with a self-signed certificate: an agent (the real binary) enrols over HTTPS, pins the
//! coordinator's certificate and renders a job with real POV-Ray; the CLI's client logs in and
//! pins it too. The same agent and client, facing the coordinator again with another
//! certificate, refuse it before sending anything, with a message that says so.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use idlefarm_coordinator::client::{Client, SubmitOptions};
use idlefarm_coordinator::server::{self, Coordinator, ServerConfig, tls};
use idlefarm_protocol::JobState;
use idlefarm_tls::Pin;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;

use crate::common::{agent_binary, shared_tempdir, wait_for_job};
use crate::scenes::{pov_ini, pov_scene};

/// A coordinator serving `data` over HTTPS with `identity` on `addr`; stops when `stop` is set.
async fn serve(
    data: &Path,
    identity: tls::TlsIdentity,
    addr: &str,
    stop: watch::Receiver<bool>,
) -> (
    Arc<Coordinator>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let config = ServerConfig {
        tls_fingerprint: Some(identity.fingerprint.to_string()),
        ..ServerConfig::new(data.to_path_buf())
    };
    let coord = Coordinator::open(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let serving = coord.clone();
    let handle = tokio::spawn(async move {
        let mut stop = stop;
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        server::run_tls(listener, &identity, serving, shutdown).await
    });
    (coord, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_enrols_over_https_pins_the_certificate_and_refuses_another() {
    let dir = shared_tempdir();
    let data = dir.path().join("data");
    let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
    let first = tls::self_signed(&data, names.clone()).unwrap();
    let fingerprint = first.fingerprint;
    let (stop, rx) = watch::channel(false);
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let url = format!("https://{addr}");
    let (coord, server) = serve(&data, first, &addr, rx).await;
    let token = coord.enrolment_token().await.unwrap().0;
    let (admin, password) = idlefarm_coordinator::accounts::first_run_admin(coord.store())
        .await
        .unwrap()
        .unwrap();

    // The CLI's client trusts the certificate it sees first, as `idlefarm login` does.
    let pin = Pin::new(None);
    let client = Client::pinned(&url, &pin)
        .unwrap()
        .login(&admin, &password, "tests")
        .await
        .expect("logs in over HTTPS");
    assert_eq!(pin.presented(), Some(fingerprint));
    // `idlefarm login` saves it; later commands accept only it.
    pin.pin(fingerprint);

    // The agent enrols over HTTPS without being told the fingerprint, and pins it.
    let work_dir = dir.path().join("agent");
    let mut agent = tokio::process::Command::new(agent_binary())
        .args(["--coordinator", &url, "--token", &token, "--name", "tls-pc"])
        .args(["--policy", "always", "--min-free", "0%"])
        .arg("--work-dir")
        .arg(&work_dir)
        .arg("--status-socket")
        .arg(dir.path().join("agent.sock"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("idlefarm-agent starts");
    let mut log = BufReader::new(agent.stdout.take().unwrap()).lines();

    let scene_dir = dir.path().join("scene");
    std::fs::create_dir_all(&scene_dir).unwrap();
    std::fs::write(scene_dir.join("s.pov"), pov_scene(None)).unwrap();
    std::fs::write(scene_dir.join("s.ini"), pov_ini(1, 4, 48, 36)).unwrap();
    let opts = SubmitOptions {
        ini: Some(scene_dir.join("s.ini")),
        chunk: Some("2".into()),
        ..SubmitOptions::default()
    };
    let job = client
        .submit(&scene_dir.join("s.pov"), &opts)
        .await
        .unwrap();
    let job = wait_for_job(&client, job.id, Duration::from_secs(240)).await;
    assert_eq!(job.state, JobState::Done, "{job:?}");
    assert_eq!(job.frames.done, 4);
    let saved = std::fs::read_to_string(work_dir.join("credentials.json")).unwrap();
    assert!(saved.contains(&fingerprint.to_string()), "pinned: {saved}");

    // The coordinator comes back on the same address and data with another certificate.
    let _ = stop.send(true);
    server.await.unwrap().unwrap();
    let other = tls::self_signed(&dir.path().join("elsewhere"), names).unwrap();
    let impostor = other.fingerprint;
    assert_ne!(impostor, fingerprint);
    let (stop, rx) = watch::channel(false);
    let (_coord, server) = serve(&data, other, &addr, rx).await;

    let refused = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = log.next_line().await.unwrap() {
            if line.contains("is pinned") {
                return line;
            }
        }
        panic!("the agent stopped without refusing the certificate");
    })
    .await
    .expect("the agent refuses the new certificate within 2 minutes");
    assert!(
        refused.contains(&impostor.to_string()) && refused.contains(&fingerprint.to_string()),
        "{refused}"
    );
    let agents = client.agents().await;
    assert!(agents.is_err(), "the pinned CLI client refuses it too");
    assert_eq!(pin.presented(), Some(impostor));

    agent.kill().await.unwrap();
    let _ = stop.send(true);
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_agent_given_a_malformed_fingerprint_is_refused_at_start() {
    let out = tokio::process::Command::new(agent_binary())
        .args(["--coordinator", "https://127.0.0.1:1", "--token", "t"])
        .args(["--fingerprint", "AB:CD:EF"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--fingerprint") && err.contains("not a SHA-256"),
        "{err}"
    );
}
