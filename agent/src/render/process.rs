//! Spawning a renderer politely and controlling it as a whole process group.
//!
//! A renderer runs in its own process group (so SIGSTOP/SIGCONT/SIGTERM/SIGKILL reach every
//! process and thread it starts), at nice 19 with `SCHED_IDLE` and idle I/O priority, and, when
//! the agent runs as root, as an unprivileged user: the privilege drop happens in the forked child
//! before `exec`, with the user resolved beforehand because only async-signal-safe calls are
//! allowed there. Last before `exec` the child confines itself with the Landlock ruleset the
//! caller prepared ([`super::confine`]). Its stdout and stderr are read line by line and handed
//! to the caller.

use std::io;
use std::process::{ExitStatus, Stdio};

use super::confine::{self, Confinement};
use super::user::RenderUser;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// Longest line kept from a renderer's output; the rest of a longer line is dropped.
const MAX_LINE: usize = 4096;

const IOPRIO_WHO_PROCESS: libc::c_int = 1;
const IOPRIO_CLASS_IDLE: libc::c_int = 3;
const IOPRIO_CLASS_SHIFT: libc::c_int = 13;

/// A renderer process group started by [`spawn`].
#[derive(Debug)]
pub struct RendererProcess {
    child: Child,
    pgid: libc::pid_t,
    exited: bool,
}

/// Starts `command` in its own process group at the lowest CPU and I/O priority, as `user` when
/// given, confined by `confinement` when given. Returns the process and a channel of its output
/// lines (stdout and stderr interleaved), which closes when both streams end.
pub fn spawn(
    command: Command,
    user: Option<&RenderUser>,
    confinement: Option<&Confinement>,
) -> io::Result<(RendererProcess, mpsc::Receiver<String>)> {
    start(command, user, confinement, Stdio::null())
}

/// Like [`spawn`], with the renderer's stdin a pipe the caller writes to (a warm Blender reads
/// its frame ranges there).
pub fn spawn_with_input(
    command: Command,
    user: Option<&RenderUser>,
    confinement: Option<&Confinement>,
) -> io::Result<(RendererProcess, mpsc::Receiver<String>, ChildStdin)> {
    let (mut process, lines) = start(command, user, confinement, Stdio::piped())?;
    let stdin = process
        .child
        .stdin
        .take()
        .ok_or_else(|| io::Error::other("the renderer's stdin is not a pipe"))?;
    Ok((process, lines, stdin))
}

fn start(
    mut command: Command,
    user: Option<&RenderUser>,
    confinement: Option<&Confinement>,
    stdin: Stdio,
) -> io::Result<(RendererProcess, mpsc::Receiver<String>)> {
    let ids = user.map(|u| (u.uid as libc::uid_t, u.gid as libc::gid_t));
    // The descriptor stays open in the parent (borrowed from `confinement`) until `spawn`
    // returns, so the child always finds it.
    let ruleset = confinement.map_or(-1, Confinement::raw_fd);
    command
        .process_group(0)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure only makes async-signal-safe system calls and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            // Politeness is best effort: a container may forbid some of these calls, and the
            // render must still happen. Running as the wrong user is not best effort.
            libc::setpriority(libc::PRIO_PROCESS, 0, 19);
            let param = libc::sched_param { sched_priority: 0 };
            libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
            libc::syscall(
                libc::SYS_ioprio_set,
                IOPRIO_WHO_PROCESS,
                0,
                IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT,
            );
            if let Some((uid, gid)) = ids
                && (libc::setgroups(1, &gid) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0)
            {
                return Err(io::Error::last_os_error());
            }
            // If the agent dies (even by SIGKILL) its renderer must not render on unseen; set
            // after the uid change, which clears it.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            // Last: the scene must not escape its confinement, so a failure here fails the spawn.
            confine::restrict_self(ruleset)
        });
    }
    let mut child = command.spawn()?;
    let pgid = child.id().map(|id| id as libc::pid_t).unwrap_or(0);
    counts_as_running(pgid, true);
    let (tx, rx) = mpsc::channel(256);
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(forward_lines(stdout, tx.clone()));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(forward_lines(stderr, tx));
    }
    Ok((
        RendererProcess {
            child,
            pgid,
            exited: false,
        },
        rx,
    ))
}

/// Sends each line (split at `\n` or `\r`, so progress counters count as lines) to `tx`.
async fn forward_lines(stream: impl AsyncRead + Unpin, tx: mpsc::Sender<String>) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        let buf = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(buf) => buf,
        };
        let mut used = 0;
        for &byte in buf {
            used += 1;
            if byte == b'\n' || byte == b'\r' {
                if !line.is_empty() {
                    let text = String::from_utf8_lossy(&line).into_owned();
                    line.clear();
                    if tx.send(text).await.is_err() {
                        return;
                    }
                }
            } else if line.len() < MAX_LINE {
                line.push(byte);
            }
        }
        reader.consume(used);
    }
    if !line.is_empty() {
        let _ = tx.send(String::from_utf8_lossy(&line).into_owned()).await;
    }
}

impl RendererProcess {
    /// The process id of the renderer, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.pgid as u32
    }

    /// Sends `signal` to every process in the renderer's group.
    pub fn signal_group(&self, signal: libc::c_int) -> io::Result<()> {
        if self.pgid <= 0 {
            return Ok(());
        }
        // SAFETY: plain system call; a negative pid addresses the process group.
        if unsafe { libc::kill(-self.pgid, signal) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ESRCH) {
            Ok(())
        } else {
            Err(err)
        }
    }

    /// Freezes the whole group (SIGSTOP).
    pub fn suspend(&self) -> io::Result<()> {
        self.signal_group(libc::SIGSTOP)
    }

    /// Lets a frozen group run again (SIGCONT).
    pub fn resume(&self) -> io::Result<()> {
        self.signal_group(libc::SIGCONT)
    }

    /// Asks the group to end: SIGCONT (a stopped process cannot act on SIGTERM), then SIGTERM.
    pub fn terminate(&self) -> io::Result<()> {
        self.resume()?;
        self.signal_group(libc::SIGTERM)
    }

    /// Ends the group at once (SIGKILL).
    pub fn kill(&self) -> io::Result<()> {
        self.signal_group(libc::SIGKILL)
    }

    /// Counts this renderer among the running ones (see [`running_groups`]) or not: a warm
    /// Blender waiting for its next chunk renders nothing and is not counted.
    pub fn set_running(&self, running: bool) {
        counts_as_running(self.pgid, running);
    }

    /// Waits for the renderer itself to exit (cancel safe).
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        let status = self.child.wait().await?;
        self.exited = true;
        Ok(status)
    }
}

/// Process groups of the renderers this agent is running now.
static RUNNING_GROUPS: std::sync::Mutex<std::collections::BTreeSet<libc::pid_t>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

fn running_groups_mut() -> std::sync::MutexGuard<'static, std::collections::BTreeSet<libc::pid_t>> {
    RUNNING_GROUPS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Adds `pgid` to the running renderers, waking the presence monitor, or removes it.
fn counts_as_running(pgid: libc::pid_t, running: bool) {
    if !running {
        running_groups_mut().remove(&pgid);
        return;
    }
    running_groups_mut().insert(pgid);
    // Wake the presence monitor now: it must poll input fast from the renderer's first moment,
    // not from its next slow poll.
    RENDERER_STARTS.send_modify(|starts| *starts = starts.wrapping_add(1));
}

/// Process groups of the renderers running (or stopped) right now. Presence uses it to leave
/// the agent's own work out of "other CPU use" and to poll input quickly while a render runs.
pub fn running_groups() -> Vec<u32> {
    running_groups_mut().iter().map(|&g| g as u32).collect()
}

/// Counts renderer starts; watchers wake at each one.
static RENDERER_STARTS: std::sync::LazyLock<tokio::sync::watch::Sender<u64>> =
    std::sync::LazyLock::new(|| tokio::sync::watch::Sender::new(0));

/// Wakes whenever this agent spawns a renderer (the value counts starts). The presence monitor
/// waits on it so it switches to fast input polling the moment a renderer exists.
pub fn renderer_starts() -> tokio::sync::watch::Receiver<u64> {
    RENDERER_STARTS.subscribe()
}

impl Drop for RendererProcess {
    fn drop(&mut self) {
        running_groups_mut().remove(&self.pgid);
        // Whatever happened to the task supervising it, a renderer never outlives its lease;
        // leftover children of a renderer that exited are killed here too.
        let _ = self.kill();
        if !self.exited {
            let _ = self.child.start_kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn output_lines_arrive_split_at_newlines_and_carriage_returns() {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg("echo one; echo two >&2; printf 'a\\rb'");
        let (mut process, mut lines) = spawn(command, None, None).unwrap();
        let mut got = Vec::new();
        while let Some(line) = lines.recv().await {
            got.push(line);
        }
        assert!(process.wait().await.unwrap().success());
        got.sort();
        assert_eq!(got, vec!["a", "b", "one", "two"]);
    }

    #[tokio::test]
    async fn children_run_in_their_own_group_at_idle_priority() {
        let mut command = Command::new("sleep");
        command.arg("30");
        let (mut process, _lines) = spawn(command, None, None).unwrap();
        let pid = process.pid();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        // Index 0 is `state`, field 3 in proc(5).
        assert_eq!(fields[5 - 3], pid.to_string(), "process group");
        assert_eq!(fields[19 - 3], "19", "nice");
        assert_eq!(fields[41 - 3], libc::SCHED_IDLE.to_string(), "policy");
        process.terminate().unwrap();
        let status = process.wait().await.unwrap();
        assert!(!status.success());
    }
}
