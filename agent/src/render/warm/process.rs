//! One warm Blender: started with the job's file loaded and set up exactly as a one-off render
//! would be, then driven by our script ([`DRIVER`]) that renders the frame ranges written to its
//! stdin and marks the end of each with a line of ours.
//!
//! It writes into a folder of its own beside the leases' (Landlock fixes what a process may
//! write when it starts, and each lease has a new folder); frames are moved into the lease's
//! folder as they are saved. Dropping it ends its process group and removes that folder.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::AsyncWriteExt;
use tokio::process::ChildStdin;
use tokio::sync::mpsc;

use super::WarmKey;
use crate::render::process::{self, RendererProcess};
use crate::render::{RenderEnv, RenderJob, blender, confine};

/// Our driver script, run by Blender after the file is loaded (the file's own Python never
/// runs: `--disable-autoexec`).
const DRIVER: &str = include_str!("driver.py");

/// Numbers the warm Blenders' folders within this agent.
static STARTED: AtomicU64 = AtomicU64::new(0);

/// A line of the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Said {
    /// The file is loaded; requests are read from now on.
    Ready,
    /// Request `id` is rendered.
    Done(u64),
    /// Request `id` failed, for this reason.
    Failed(u64, String),
}

/// A Blender process kept across chunks of one job.
pub(super) struct WarmBlender {
    /// What it renders.
    pub(super) key: WarmKey,
    /// The process group.
    pub(super) process: RendererProcess,
    /// Its output lines.
    pub(super) lines: mpsc::Receiver<String>,
    /// Its own output folder, also its `$HOME`.
    pub(super) dir: PathBuf,
    /// Whether the driver said it is ready: a Blender that ends before that has not loaded
    /// the file or run our script, which is the cold path's to report.
    pub(super) ready: bool,
    stdin: ChildStdin,
    /// The start of the driver's lines, random per process.
    mark: String,
    /// Requests sent so far.
    sent: u64,
}

impl WarmBlender {
    /// Starts Blender on `job`'s file, confined to the job's input and a new folder of its own
    /// next to `job.out_dir`.
    pub(super) fn start(
        job: &RenderJob,
        env: &RenderEnv,
        key: WarmKey,
    ) -> std::io::Result<WarmBlender> {
        let parent = job.out_dir.parent().unwrap_or(&job.out_dir);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let dir = parent.join(format!(".warm-blender-{}-{n}", std::process::id()));
        std::fs::create_dir(&dir)?;
        // From here on, dropping `folder` removes it again if the start fails.
        let folder = FolderGuard(Some(dir.clone()));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        if let Some(user) = &env.user {
            user.chown(&dir)?;
        }
        let mark = random_mark()?;
        let driver = format!("MARK = {mark:?}\n{DRIVER}");
        let args = blender::warm_args(&job.settings, &job.main_file, &dir, &driver);
        let mut command = crate::render::renderer_command(&env.blender, job, &job.main_file, &dir);
        command.args(args);
        let confinement = confine::for_render(&env.blender, &job.input_root, &dir)?;
        let (process, lines, stdin) =
            process::spawn_with_input(command, env.user.as_ref(), confinement.as_ref())?;
        let mut folder = folder;
        folder.0 = None;
        Ok(WarmBlender {
            key,
            process,
            lines,
            dir,
            ready: false,
            stdin,
            mark,
            sent: 0,
        })
    }

    /// Asks for `frames` (consecutive frames of the job, `step` apart, the job ending at `end`);
    /// returns the request's id.
    pub(super) async fn request(
        &mut self,
        frames: &[i64],
        step: i64,
        end: i64,
    ) -> std::io::Result<u64> {
        let (Some(&first), Some(&last)) = (frames.first(), frames.last()) else {
            return Err(std::io::Error::other("no frames to render"));
        };
        self.sent += 1;
        let request = serde_json::json!({
            "id": self.sent,
            "first": first,
            "last": last,
            "step": step.max(1),
            "end": end.max(last),
        });
        let line = format!("{request}\n");
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.flush().await?;
        Ok(self.sent)
    }

    /// The start of the driver's lines.
    pub(super) fn mark(&self) -> &str {
        &self.mark
    }
}

impl Drop for WarmBlender {
    fn drop(&mut self) {
        // Ended before its folder goes, so it cannot write there meanwhile; dropping the
        // process afterwards also takes it off the running renderers.
        let _ = self.process.kill();
        if let Err(err) = std::fs::remove_dir_all(&self.dir)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("cannot remove {}: {err}", self.dir.display());
        }
    }
}

/// Removes a folder when dropped, unless disarmed.
struct FolderGuard(Option<PathBuf>);

impl Drop for FolderGuard {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// 128 random bits, in hex.
fn random_mark() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(format!("idlefarm-{}", hex::encode(bytes)))
}

/// Parses a driver line that starts with `mark`.
pub(super) fn parse_said(mark: &str, line: &str) -> Option<Said> {
    let rest = line.trim_end().strip_prefix(mark)?.strip_prefix(' ')?;
    if rest == "ready" {
        return Some(Said::Ready);
    }
    if let Some(id) = rest.strip_prefix("done ") {
        return id.parse().ok().map(Said::Done);
    }
    let failed = rest.strip_prefix("failed ")?;
    let (id, reason) = failed.split_once(' ').unwrap_or((failed, ""));
    Some(Said::Failed(id.parse().ok()?, reason.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lines_with_the_mark_are_the_drivers() {
        let mark = "idlefarm-00ff";
        assert_eq!(parse_said(mark, "idlefarm-00ff ready"), Some(Said::Ready));
        assert_eq!(
            parse_said(mark, "idlefarm-00ff done 7\n"),
            Some(Said::Done(7))
        );
        assert_eq!(
            parse_said(mark, "idlefarm-00ff failed 3 No camera found in scene"),
            Some(Said::Failed(3, "No camera found in scene".into()))
        );
        assert_eq!(
            parse_said(mark, "idlefarm-00ff failed 3"),
            Some(Said::Failed(3, String::new()))
        );
        assert_eq!(parse_said(mark, "idlefarm-0000 done 7"), None);
        assert_eq!(parse_said(mark, "Saved: 'idlefarm-00ff done 7'"), None);
        assert_eq!(parse_said(mark, "idlefarm-00ff done seven"), None);
        assert_eq!(parse_said(mark, "idlefarm-00ffdone 7"), None);
    }

    #[test]
    fn marks_differ() {
        let a = random_mark().unwrap();
        assert_eq!(a.len(), "idlefarm-".len() + 32);
        assert_ne!(a, random_mark().unwrap());
    }
}
