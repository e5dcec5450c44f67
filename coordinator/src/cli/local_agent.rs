//! `idlefarm up`'s local agent: the `idlefarm-agent` binary run as a child process, so the
//! coordinator never links the agent's X11, D-Bus and notification code. The binary is found
//! beside the running `idlefarm` (where `cargo build` and the installer put both), else on
//! `PATH`. The child renders whenever asked (`--policy always`), writes to the same terminal,
//! keeps its status socket in its own work dir (so it never takes another agent's default
//! socket) and dies with its parent.

use std::ffi::OsStr;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// File name of the agent binary.
pub const AGENT_BINARY: &str = "idlefarm-agent";

/// How long a stopping agent may take before it is killed: its own shutdown needs up to 5 s to
/// end a render, 10 s to upload finished frames and 5 s to report the lease.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// Finds `idlefarm-agent` beside the running executable, then on `PATH`.
pub fn find_agent_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot tell where this idlefarm executable is")?;
    locate(&exe, std::env::var_os("PATH").as_deref())
}

/// [`find_agent_binary`] for the executable `exe` and the search path `path`.
fn locate(exe: &Path, path: Option<&OsStr>) -> anyhow::Result<PathBuf> {
    let exe_dir = exe.parent().unwrap_or(Path::new("/"));
    // Relative PATH entries would depend on the current directory: never run what happens to
    // lie there.
    let on_path = path
        .into_iter()
        .flat_map(std::env::split_paths)
        .filter(|dir| dir.is_absolute());
    match std::iter::once(exe_dir.to_owned())
        .chain(on_path)
        .map(|dir| dir.join(AGENT_BINARY))
        .find(|candidate| is_executable(candidate))
    {
        Some(found) => Ok(found),
        None => bail!(
            "{AGENT_BINARY} not found beside {} or on PATH; build it with \
             `cargo build --release --bins`",
            exe.display()
        ),
    }
}

/// Where the local agent keeps its files: `DATA/agent`, except as root when other accounts
/// cannot reach the data directory (the default one is in root's home): renders then run as
/// `nobody`, so the files go to [`idlefarm_runtime::SYSTEM_AGENT_WORK_DIR`].
pub fn work_dir(data: &Path) -> PathBuf {
    if idlefarm_runtime::is_root() && !others_can_reach(data) {
        PathBuf::from(idlefarm_runtime::SYSTEM_AGENT_WORK_DIR)
    } else {
        data.join("agent")
    }
}

/// Whether every directory from `/` down to `dir` lets any account through. Stricter than the
/// agent's own check for its render user, so the agent never refuses the directory chosen here.
fn others_can_reach(dir: &Path) -> bool {
    let Ok(dir) = dir.canonicalize() else {
        return false;
    };
    dir.ancestors()
        .all(|d| std::fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A running `idlefarm-agent` child.
#[derive(Debug)]
pub struct LocalAgent {
    child: Child,
}

impl LocalAgent {
    /// Starts `binary` as an always-available agent named `<hostname>-local` of the coordinator
    /// at `url`, keeping its files and status socket in `work_dir`.
    pub fn start(binary: &Path, url: &str, token: &str, work_dir: &Path) -> anyhow::Result<Self> {
        let mut command = Command::new(binary);
        command
            .arg("--coordinator")
            .arg(url)
            .arg("--work-dir")
            .arg(work_dir)
            .args(["--policy", "always"])
            // The coordinator's own PC already holds every input and frame: the local agent
            // keeps 1 GiB free rather than the 10 % a lab PC that belongs to others keeps.
            .args(["--min-free", "1G"])
            .arg("--name")
            .arg(format!("{}-local", idlefarm_runtime::hostname()))
            .arg("--status-socket")
            .arg(work_dir.join("status.sock"))
            // The agent reads `--token` from here too; unlike the command line, the environment
            // is not readable by other users of the PC.
            .env("IDLEFARM_TOKEN", token)
            // A config file meant for a real agent of this PC must not steer this one.
            .env_remove("IDLEFARM_AGENT_CONFIG")
            .stdin(Stdio::null())
            // Its own process group: Ctrl-C in the terminal reaches only `idlefarm up`, which
            // stops the agent first and the coordinator after it (the agent still reports its
            // lease).
            .process_group(0)
            .kill_on_drop(true);
        let parent = std::process::id();
        // SAFETY: the closure only makes async-signal-safe system calls and allocates nothing.
        unsafe {
            command.pre_exec(move || {
                // If `up` dies, even by SIGKILL, the agent must not render on for nobody. The
                // signal follows the spawning thread; `up` spawns from its main task, whose
                // thread lives as long as the process.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The parent may have died before the line above.
                if libc::getppid() as u32 != parent {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .with_context(|| format!("cannot start the local agent {}", binary.display()))?;
        Ok(LocalAgent { child })
    }

    /// Completes when the agent exits on its own. Cancel-safe.
    pub async fn exited(&mut self) -> io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Asks the agent to stop (SIGTERM, as systemd would) and waits for it; kills it when it
    /// takes longer than its own shutdown should.
    pub async fn stop(mut self) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        if let Some(pid) = self.child.id() {
            // SAFETY: plain system call; the child is not reaped yet, so `pid` is still ours.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        }
        match tokio::time::timeout(STOP_GRACE, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                tracing::warn!(
                    "the local agent did not stop within {}s; killing it",
                    STOP_GRACE.as_secs()
                );
                self.child.kill().await?;
                Ok(self.child.wait().await?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path, mode: u32) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn prefers_the_binary_beside_idlefarm_then_searches_path() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("bin/idlefarm");
        let on_path = dir.path().join("path/idlefarm-agent");
        touch(&on_path, 0o755);
        let path =
            std::env::join_paths([dir.path().join("empty"), dir.path().join("path")]).unwrap();
        assert_eq!(locate(&exe, Some(&path)).unwrap(), on_path);

        let beside = dir.path().join("bin/idlefarm-agent");
        touch(&beside, 0o755);
        assert_eq!(locate(&exe, Some(&path)).unwrap(), beside);
    }

    #[test]
    fn a_missing_binary_says_where_it_looked_and_how_to_build_it() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("bin/idlefarm");
        // Neither a file that is not executable nor a directory counts.
        touch(&dir.path().join("bin/idlefarm-agent"), 0o644);
        std::fs::create_dir_all(dir.path().join("path/idlefarm-agent")).unwrap();
        let path = dir.path().join("path").into_os_string();
        let err = locate(&exe, Some(&path)).unwrap_err().to_string();
        assert!(
            err.contains(&format!("beside {}", exe.display()))
                && err.contains("cargo build --release --bins"),
            "{err}"
        );
        assert!(locate(&exe, None).is_err());
    }

    #[test]
    fn a_data_dir_behind_a_closed_directory_is_out_of_others_reach() {
        let outer = tempfile::tempdir().unwrap();
        let data = outer.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(outer.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(!others_can_reach(&data));
        assert!(!others_can_reach(&outer.path().join("missing")));
        std::fs::set_permissions(outer.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        // Now only the directories above the temp dir decide.
        assert_eq!(
            others_can_reach(&data),
            others_can_reach(outer.path().parent().unwrap())
        );
    }
}
