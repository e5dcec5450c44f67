//! Landlock confinement of renderers, with real POV-Ray: a scene that writes outside its lease
//! folder or reads the agent's secret fails, a normal scene renders, and TCP is closed.
//!
//! POV-Ray has file I/O restrictions of its own (the agent's `povray.conf`), so these scenes run
//! with them switched off (`[File I/O Security] none`) to show what Landlock alone stops; each
//! escape is first shown to work unconfined, so a passing test cannot be an accident of
//! permissions. The secret is world-readable on purpose: the worst case, where only Landlock
//! stands between a scene and the file. On a kernel without Landlock the tests say so and
//! check only that the agent degrades to unconfined renders.

use std::path::{Path, PathBuf};

use idlefarm_agent::render::RenderEnv;
use idlefarm_agent::render::confine::{self, abi_version};
use idlefarm_agent::render::process::spawn;
use tokio::process::Command;

use crate::support::*;

const SECRET: &str = "s3cret-enrolment-token";

/// An agent work dir: a secret, a cached input and a lease folder, all reachable by the render
/// user, and a scratch dir in /tmp anyone may write to.
struct Layout {
    _root: tempfile::TempDir,
    secret: PathBuf,
    input: PathBuf,
    out: PathBuf,
    scratch: PathBuf,
}

fn layout() -> Layout {
    let root = open_tempdir();
    let agent = mkdir(&root.path().join("agent"));
    let secret = agent.join("credentials.json");
    // POV-Ray's `#read` takes quoted strings.
    std::fs::write(&secret, format!("\"{SECRET}\"\n")).unwrap();
    let input = mkdir(&agent.join("cache/0123abcd"));
    let out = mkdir(&agent.join("leases/7"));
    let version_dir = mkdir(&out.join(".povray/3.7"));
    std::fs::write(
        version_dir.join("povray.conf"),
        "[File I/O Security]\nnone\n[Shellout Security]\nforbidden\n",
    )
    .unwrap();
    let scratch = mkdir(&root.path().join("scratch"));
    use std::os::unix::fs::PermissionsExt;
    for dir in [&out, &scratch] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    Layout {
        _root: root,
        secret,
        input,
        out,
        scratch,
    }
}

const SCENERY: &str = "camera { location <0, 0, -3> look_at 0 }\n\
     sphere { 0, 1 pigment { rgb <1, 0, 0> } }\n\
     light_source { <2, 2, -2> rgb 1 }\n";

/// Renders `scene` (written to the input) with POV-Ray, confined or not; returns whether it
/// exited successfully and its output.
async fn povray(l: &Layout, name: &str, scene: &str, confined: bool) -> (bool, String) {
    let env: RenderEnv = render_env();
    std::fs::write(
        l.input.join(name),
        format!("#version 3.7;\n{scene}{SCENERY}"),
    )
    .unwrap();
    let mut command = Command::new(&env.povray);
    command
        .arg(format!("+I{name}"))
        .arg(format!("+O{}", l.out.join(format!("{name}.png")).display()))
        .args(["+W16", "+H12", "-D", "+FN"])
        .current_dir(&l.input)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &l.out);
    run(command, &env, l, confined).await
}

async fn run(command: Command, env: &RenderEnv, l: &Layout, confined: bool) -> (bool, String) {
    let confinement = if confined {
        let c = confine::for_render(&env.povray, &l.input, &l.out).unwrap();
        Some(c.expect("this kernel has Landlock, so the render is confined"))
    } else {
        None
    };
    let (mut process, mut lines) = spawn(command, env.user.as_ref(), confinement.as_ref()).unwrap();
    let mut output = String::new();
    while let Some(line) = lines.recv().await {
        output.push_str(&line);
        output.push('\n');
    }
    let ok = process.wait().await.unwrap().success();
    (ok, output)
}

/// Landlock's ABI, or `None` after saying loudly that these tests cannot check confinement.
fn landlock() -> Option<i32> {
    let lsm = std::fs::read_to_string("/sys/kernel/security/lsm").ok();
    let abi = abi_version();
    eprintln!("Landlock ABI: {abi:?}; /sys/kernel/security/lsm: {lsm:?}");
    if abi.is_none() {
        eprintln!(
            "NOT CHECKED: this kernel has no Landlock, so confinement cannot be tested here; \
             checking only that renders degrade to unconfined"
        );
        let l = layout();
        let c = confine::for_render(Path::new("povray"), &l.input, &l.out).unwrap();
        assert!(c.is_none(), "without Landlock there is nothing to apply");
    }
    abi
}

#[tokio::test]
async fn a_scene_cannot_write_outside_its_lease_folder() {
    if landlock().is_none() {
        return;
    }
    let l = layout();
    let escaped = l.scratch.join("escaped.txt");
    let scene = format!(
        "#fopen F \"{}\" write\n#write (F, \"escaped\\n\")\n#fclose F\n",
        escaped.display()
    );
    let (ok, _) = povray(&l, "tmp.pov", &scene, false).await;
    assert!(ok && escaped.exists(), "unconfined, the escape works");
    std::fs::remove_file(&escaped).unwrap();

    let (ok, output) = povray(&l, "tmp.pov", &scene, true).await;
    assert!(!ok, "the confined render must fail:\n{output}");
    assert!(
        !escaped.exists(),
        "nothing was written outside the lease folder"
    );
    assert!(output.contains("Cannot open user file"), "{output}");

    // Appending to the agent's credentials is as closed as /tmp.
    let scene = format!(
        "#fopen F \"{}\" append\n#write (F, \"x\")\n#fclose F\n",
        l.secret.display()
    );
    let (ok, output) = povray(&l, "creds.pov", &scene, true).await;
    assert!(!ok, "{output}");
    assert_eq!(
        std::fs::read_to_string(&l.secret).unwrap(),
        format!("\"{SECRET}\"\n")
    );

    // Inside its own folder a scene may write.
    let inside = l.out.join("notes.txt");
    let scene = format!(
        "#fopen F \"{}\" write\n#write (F, \"ok\\n\")\n#fclose F\n",
        inside.display()
    );
    let (ok, output) = povray(&l, "inside.pov", &scene, true).await;
    assert!(ok, "{output}");
    assert_eq!(std::fs::read_to_string(inside).unwrap(), "ok\n");
}

#[tokio::test]
async fn a_scene_cannot_read_the_agents_secret_but_renders_normally() {
    if landlock().is_none() {
        return;
    }
    let l = layout();
    let scene = format!(
        "#fopen F \"{}\" read\n#read (F, S)\n#fclose F\n#debug concat(\"SECRET:\", S, \"\\n\")\n",
        l.secret.display()
    );
    let (ok, output) = povray(&l, "read.pov", &scene, false).await;
    assert!(
        ok && output.contains(SECRET),
        "unconfined, the read works:\n{output}"
    );

    let (ok, output) = povray(&l, "read.pov", &scene, true).await;
    assert!(!ok, "{output}");
    assert!(!output.contains(SECRET), "{output}");

    // A normal scene, confined: the frame is there and is a real PNG of the right size.
    let (ok, output) = povray(&l, "plain.pov", "", true).await;
    assert!(ok, "{output}");
    let png = std::fs::read(l.out.join("plain.pov.png")).unwrap();
    assert_eq!(png_size(&png), (16, 12));
}

#[tokio::test]
async fn a_confined_renderer_cannot_open_tcp_connections() {
    let Some(abi) = landlock() else {
        return;
    };
    if abi < 4 {
        eprintln!("NOT CHECKED: Landlock ABI {abi} has no TCP rules (needs 4, Linux 6.7)");
        return;
    }
    let l = layout();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let env = render_env();
    let connect = |confined| {
        let mut command = Command::new("python3");
        command.args([
            "-c",
            &format!(
                "import socket\ntry:\n socket.create_connection(('127.0.0.1', {port}))\n \
                 print('connected')\nexcept OSError as e:\n print('refused', e.errno)"
            ),
        ]);
        command.current_dir(&l.out);
        run(command, &env, &l, confined)
    };
    let (_, output) = connect(false).await;
    assert_eq!(output.trim(), "connected");
    let (_, output) = connect(true).await;
    assert_eq!(output.trim(), format!("refused {}", libc::EACCES));
}
