//! A spare Blender for inspecting `.blend` files, started before a submission needs it.
//!
//! Opening a small `.blend` takes Blender a few milliseconds; starting Blender takes most of a
//! second, and every submission waited for it. [`BlendInspector`] keeps one Blender started
//! ahead (`--factory-startup --disable-autoexec`, no file), blocked on its stdin. A submission
//! hands it the path of its file; the spare opens it without running the file's scripts, prints
//! the same report as the one-off inspection and ends, and a new spare starts for the next
//! submission. Each spare inspects exactly one file, so nothing of one submission stays in a
//! process another one uses. A spare that cannot report (it died, or Blender could not open the
//! file) sends the file down the one-off path, which words what went wrong for the submitter.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// What a spare runs before the inspection script: wait for one request, open its file.
const SPARE_PRELUDE: &str = r#"
import json, os, sys
import bpy

_line = sys.stdin.readline()
if not _line:
    # The coordinator is gone or done with this spare.
    os._exit(0)
bpy.ops.wm.open_mainfile(filepath=json.loads(_line)["file"], load_ui=False, use_scripts=False)
"#;

/// How `.blend` files are inspected: with a spare Blender kept ready, or by starting Blender
/// for each file. Clones share the spare.
#[derive(Clone, Default)]
pub struct BlendInspector {
    spare: Option<Arc<Mutex<Option<Spare>>>>,
}

impl std::fmt::Debug for BlendInspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlendInspector")
            .field("keeps_spare", &self.spare.is_some())
            .finish()
    }
}

/// A Blender started for one inspection, waiting for its file.
struct Spare {
    /// The program it runs, to serve only inspections asking for that one.
    blender: PathBuf,
    /// Ended when dropped.
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    /// Its `$HOME` and working folder, removed when dropped.
    _home: tempfile::TempDir,
}

/// Why a spare gave no report.
#[derive(Debug, thiserror::Error)]
pub(super) enum SpareError {
    /// It did not answer in time; the file is not worth a second try.
    #[error("it took longer than {} s", .0.as_secs())]
    TimedOut(Duration),
}

impl BlendInspector {
    /// Keeps a spare Blender: one starts after the first inspection (or at
    /// [`BlendInspector::keep_ready`]) and again after each one.
    pub fn with_spare() -> BlendInspector {
        BlendInspector {
            spare: Some(Arc::new(Mutex::new(None))),
        }
    }

    /// Starts Blender for each file (no process waits between submissions).
    pub fn one_off() -> BlendInspector {
        BlendInspector::default()
    }

    /// Starts a spare running `blender` now unless one is ready; does nothing without spares.
    /// Needs a Tokio runtime.
    pub fn keep_ready(&self, blender: &Path) {
        let Some(slot) = &self.spare else { return };
        let mut slot = lock(slot);
        if slot.as_ref().is_some_and(|s| s.blender == blender) {
            return;
        }
        *slot = match Spare::start(blender) {
            Ok(spare) => Some(spare),
            Err(err) => {
                tracing::warn!(
                    "cannot start a spare Blender ({}) for inspections: {err}",
                    blender.display()
                );
                None
            }
        };
    }

    /// The process id of the spare waiting now, if any.
    pub fn spare_pid(&self) -> Option<u32> {
        let slot = self.spare.as_ref()?;
        lock(slot).as_ref().and_then(|s| s.child.id())
    }

    /// Has a spare running `blender` open `file` (absolute) and run the inspection script;
    /// returns its line starting with `prefix`, without the prefix. `Ok(None)`: no spare, or it
    /// ended without one (take the one-off path). Another spare starts meanwhile.
    pub(super) async fn report(
        &self,
        blender: &Path,
        file: &Path,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Option<String>, SpareError> {
        let Some(slot) = &self.spare else {
            return Ok(None);
        };
        let spare = lock(slot).take().filter(|s| s.blender == blender);
        self.keep_ready(blender);
        let Some(mut spare) = spare else {
            return Ok(None);
        };
        let asked = async {
            let request = serde_json::json!({ "file": file });
            spare
                .stdin
                .write_all(format!("{request}\n").as_bytes())
                .await?;
            spare.stdin.flush().await?;
            while let Some(line) = spare.lines.next_line().await? {
                if let Some(report) = line.strip_prefix(prefix) {
                    return Ok(Some(report.to_owned()));
                }
            }
            Ok::<_, std::io::Error>(None)
        };
        match tokio::time::timeout(timeout, asked).await {
            Ok(Ok(report)) => {
                if report.is_none() {
                    tracing::debug!(file = %file.display(), "the spare Blender gave no report");
                }
                // The spare ends when dropped.
                Ok(report)
            }
            Ok(Err(err)) => {
                tracing::debug!("cannot talk to the spare Blender: {err}");
                Ok(None)
            }
            Err(_) => Err(SpareError::TimedOut(timeout)),
        }
    }
}

impl Spare {
    fn start(blender: &Path) -> std::io::Result<Spare> {
        let home = tempfile::Builder::new()
            .prefix("idlefarm-inspect-")
            .tempdir()?;
        let script = home.path().join("idlefarm-inspect-spare.py");
        std::fs::write(
            &script,
            format!("{SPARE_PRELUDE}{}", super::blend::INSPECT_SCRIPT),
        )?;
        let mut child = Command::new(blender)
            .arg("-b")
            .arg("--factory-startup")
            .arg("--disable-autoexec")
            .arg("--python")
            .arg(&script)
            .arg("--python-exit-code")
            .arg("1")
            .env("HOME", home.path())
            .current_dir(home.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(std::io::Error::other(
                "Blender's stdin and stdout are not piped",
            ));
        };
        Ok(Spare {
            blender: blender.to_owned(),
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            _home: home,
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
