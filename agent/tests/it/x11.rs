//! X11 input idle time against a real Xvfb, with xdotool as the person at the keyboard, and
//! finding a session's Xauthority file through its processes.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use idlefarm_agent::presence::x11::{X11Idle, find_xauthority};

use crate::x_support::{Xvfb, has_xauth, random_cookie};

/// A child process killed on drop, so a failing assertion leaves nothing behind.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A process of the current user that looks like part of a session on `display`.
fn session_process(display: &str, xauthority: &Path) -> Reaped {
    let child = Command::new("sleep")
        .arg("30")
        .env("DISPLAY", display)
        .env("XAUTHORITY", xauthority)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    Reaped(child)
}

fn current_uid() -> u32 {
    // SAFETY: getuid cannot fail and touches no memory.
    unsafe { libc::getuid() }
}

#[test]
fn x11_idle_grows_without_input_and_resets_on_mouse_and_key() {
    let xvfb = Xvfb::start();
    let idle = X11Idle::connect(&xvfb.display, xvfb.auth.as_deref()).unwrap();
    assert_eq!(idle.display(), xvfb.display);

    // Nobody touches anything: the idle time grows at least as fast as the clock.
    let before = idle.idle().unwrap();
    sleep(Duration::from_millis(300));
    let after = idle.idle().unwrap();
    assert!(
        after >= before + Duration::from_millis(290),
        "idle went from {before:?} to {after:?} over 300 ms without input"
    );

    // Each input resets it: afterwards it is no longer than the time since the input began.
    let started = Instant::now();
    xvfb.touch_mouse();
    let after_mouse = idle.idle().unwrap();
    assert!(
        after_mouse <= started.elapsed() && after_mouse < Duration::from_millis(100),
        "idle is {after_mouse:?} right after moving the mouse"
    );

    sleep(Duration::from_millis(300));
    assert!(idle.idle().unwrap() >= Duration::from_millis(290));
    let started = Instant::now();
    xvfb.press_key();
    let after_key = idle.idle().unwrap();
    assert!(
        after_key <= started.elapsed() && after_key < Duration::from_millis(100),
        "idle is {after_key:?} right after a key press"
    );

    // A second move to the other position counts as input too.
    sleep(Duration::from_millis(200));
    let started = Instant::now();
    xvfb.touch_mouse();
    xvfb.touch_mouse();
    assert!(idle.idle().unwrap() <= started.elapsed());
}

/// Sends `signal` to the Xvfb.
fn signal(xvfb: &Xvfb, signal: libc::c_int) {
    // SAFETY: kill only reads its arguments.
    assert_eq!(unsafe { libc::kill(xvfb.pid() as libc::pid_t, signal) }, 0);
}

#[test]
fn x11_a_hung_server_is_an_error_not_a_stuck_thread() {
    let xvfb = Xvfb::start();
    let idle = X11Idle::connect(&xvfb.display, xvfb.auth.as_deref()).unwrap();
    signal(&xvfb, libc::SIGSTOP);
    let err = idle.idle().unwrap_err();
    assert!(err.contains(&xvfb.display), "{err}");
    let err = X11Idle::connect(&xvfb.display, xvfb.auth.as_deref()).unwrap_err();
    assert!(err.contains(&xvfb.display), "{err}");
    signal(&xvfb, libc::SIGCONT);

    // The old connection stays unusable; a new one works.
    assert!(idle.idle().is_err());
    let idle = X11Idle::connect(&xvfb.display, xvfb.auth.as_deref()).unwrap();
    idle.idle().unwrap();
}

#[test]
fn x11_connect_to_a_display_without_server_names_it() {
    let number = (89..200)
        .find(|n| {
            !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
        })
        .unwrap();
    let display = format!(":{number}");
    let err = X11Idle::connect(&display, None).unwrap_err();
    assert!(err.contains(&display), "{err}");
}

#[test]
fn x11_connect_refuses_a_wrong_or_missing_cookie() {
    let xvfb = Xvfb::start();
    let Some(auth) = &xvfb.auth else {
        eprintln!("skipped: xauth is not installed, so Xvfb runs without a cookie");
        return;
    };
    assert!(X11Idle::connect(&xvfb.display, Some(auth)).is_ok());

    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong");
    xvfb.write_auth_file(&wrong, &random_cookie());
    let err = X11Idle::connect(&xvfb.display, Some(&wrong)).unwrap_err();
    assert!(err.contains(&xvfb.display), "{err}");
    assert!(err.contains("stale"), "{err}");

    let err = X11Idle::connect(&xvfb.display, None).unwrap_err();
    assert!(err.contains("no Xauthority file"), "{err}");

    let missing = dir.path().join("missing");
    let err = X11Idle::connect(&xvfb.display, Some(&missing)).unwrap_err();
    assert!(err.contains("cannot read Xauthority file"), "{err}");
}

#[test]
fn x11_find_xauthority_through_a_session_process() {
    let xvfb = Xvfb::start();
    assert_eq!(find_xauthority(&xvfb.display, current_uid()), None);
    let Some(auth) = &xvfb.auth else {
        eprintln!("skipped: xauth is not installed, so Xvfb has no Xauthority file");
        return;
    };
    assert!(has_xauth());

    // The session's processes say ":N.0"; the agent asks for ":N".
    let _session = session_process(&format!("{}.0", xvfb.display), auth);
    // Right after spawn the new program's environment may not be in /proc yet (the kernel
    // lets the parent go on before it finishes setting up the exec'd image): wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let found = loop {
        let found = find_xauthority(&xvfb.display, current_uid());
        if found.is_some() || Instant::now() > deadline {
            break found;
        }
        sleep(Duration::from_millis(20));
    };
    assert_eq!(found.as_deref(), Some(auth.as_path()));
    assert_eq!(find_xauthority(&xvfb.display, current_uid() + 12345), None);

    // What it found opens the display.
    let idle = X11Idle::connect(&xvfb.display, found.as_deref()).unwrap();
    idle.idle().unwrap();
}
