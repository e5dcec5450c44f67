//! Zero-configuration discovery, in two network namespaces this test makes (joined by a veth
//! pair, multicast on): `idlefarm serve` runs in one and announces itself over mDNS; an
//! `idlefarm-agent` with neither `--coordinator` nor `--token` runs in the other, finds it,
//! asks to join, is approved with the CLI (`idlefarm agent approve`), says what it found in
//! `status`, and renders a job submitted with the CLI. Nothing is sent on the
//! machine's real interfaces: both processes live in the namespaces, which have no other link.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{agent_binary, shared_tempdir};
use crate::scenes::{pov_ini, pov_scene};

/// Two namespaces and the veth pair between them; removed when dropped.
struct Lab {
    coordinator_ns: String,
    agent_ns: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Lab {
    fn new() -> Lab {
        let id = std::process::id();
        let lab = Lab {
            coordinator_ns: format!("idlefarm-c{id}"),
            agent_ns: format!("idlefarm-a{id}"),
        };
        let (vc, va) = (format!("ifc{id}"), format!("ifa{id}"));
        ip(&["netns", "add", &lab.coordinator_ns]);
        ip(&["netns", "add", &lab.agent_ns]);
        ip(&["link", "add", &vc, "type", "veth", "peer", "name", &va]);
        for (ns, dev, addr) in [
            (&lab.coordinator_ns, &vc, "10.77.0.1/24"),
            (&lab.agent_ns, &va, "10.77.0.2/24"),
        ] {
            ip(&["link", "set", dev, "netns", ns]);
            ip(&["-n", ns, "addr", "add", addr, "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up", "multicast", "on"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "route", "add", "224.0.0.0/4", "dev", dev]);
        }
        lab
    }

    /// `program args` inside namespace `ns`.
    fn command(&self, ns: &str, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        c
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth pair, and with it the other end.
        for ns in [&self.coordinator_ns, &self.agent_ns] {
            let _ = Command::new("ip").args(["netns", "delete", ns]).status();
        }
    }
}

/// Kills a child process when dropped.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn idlefarm() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_idlefarm"))
}

#[test]
fn an_agent_with_no_url_or_token_finds_the_coordinator_is_approved_and_renders() {
    if !is_root() {
        // Network namespaces need root; CI runs as root.
        eprintln!("skipped: making network namespaces needs root");
        return;
    }
    let lab = Lab::new();
    let dir = shared_tempdir();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let serve_log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let _server = Running(
        lab.command(&lab.coordinator_ns, &idlefarm())
            .args(["serve", "--listen", "0.0.0.0:7870"])
            .arg("--data")
            .arg(dir.path().join("data"))
            .env("HOME", &home)
            .stdout(serve_log)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let log_path = dir.path().join("serve.log");
    let banner = wait_for(Duration::from_secs(30), "the coordinator's banner", || {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        text.contains("on the LAN:").then_some(text)
    });
    assert!(banner.contains("announced as"), "{banner}");
    let field = |label: &str, index: usize| {
        (banner.lines())
            .find(|l| l.contains(label))
            .and_then(|l| l.split_whitespace().nth(index))
            .unwrap_or_else(|| panic!("no {label} in {banner}"))
            .to_owned()
    };
    let password = field("admin login:", 4);

    // The admin's CLI, beside the coordinator.
    let cli = |args: &[&str], stdin: Option<&str>| {
        let mut c = lab.command(&lab.coordinator_ns, &idlefarm());
        c.args(args)
            .env("HOME", &home)
            .env("IDLEFARM_SERVER", "http://127.0.0.1:7870")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        if let Some(text) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "idlefarm {}: {text}", args.join(" "));
        text
    };
    cli(
        &["login", "--user", "admin", "--password-stdin"],
        Some(&format!("{password}\n")),
    );
    let work_dir = dir.path().join("agent");
    let socket = dir.path().join("agent.sock");
    let agent_log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
    let _agent = Running(
        lab.command(&lab.agent_ns, &agent_binary())
            .args(["--name", "found-pc"])
            .args(["--policy", "always", "--min-free", "0%"])
            .arg("--work-dir")
            .arg(&work_dir)
            .arg("--status-socket")
            .arg(&socket)
            .env("RUST_LOG", "info")
            .stdout(agent_log)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let agent_log = dir.path().join("agent.log");
    // With neither a URL nor a token, it finds the coordinator and asks to join; the admin
    // approves the request.
    let listed = wait_for(Duration::from_secs(60), "the PC asks to join", || {
        let text = cli(&["agent", "requests"], None);
        text.contains("found-pc").then_some(text)
    });
    let request = listed
        .lines()
        .find(|l| l.contains("found-pc"))
        .and_then(|l| l.split_whitespace().next())
        .map(|n| n.trim_start_matches('#').to_owned())
        .unwrap();
    let approved = cli(&["agent", "approve", &request], None);
    assert!(approved.contains("approved"), "{approved}");
    let status = wait_for(Duration::from_secs(60), "the agent enrols", || {
        let log = std::fs::read_to_string(&agent_log).unwrap_or_default();
        if !log.contains("enrolled with the coordinator") {
            return None;
        }
        let out = Command::new(agent_binary())
            .arg("status")
            .arg("--status-socket")
            .arg(&socket)
            .output()
            .unwrap();
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    });
    assert!(
        status.contains("coordinator: http://10.77.0.1:7870 (found on the LAN: idlefarm on"),
        "{status}"
    );

    let scene = dir.path().join("s.pov");
    std::fs::write(&scene, pov_scene(None)).unwrap();
    let ini = dir.path().join("s.ini");
    std::fs::write(&ini, pov_ini(1, 3, 48, 36)).unwrap();
    let done = cli(
        &[
            "submit",
            scene.to_str().unwrap(),
            "--ini",
            ini.to_str().unwrap(),
            "--wait",
        ],
        None,
    );
    assert!(done.contains("done: 3 frames"), "{done}");
    let agents = cli(&["agent", "list"], None);
    assert!(agents.contains("found-pc"), "{agents}");
}

/// Polls `probe` every 200 ms until it gives a value, or panics after `limit`.
fn wait_for<T>(limit: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(start.elapsed() < limit, "{what}: not after {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
