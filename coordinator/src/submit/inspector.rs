//! A spare Blender for inspecting `.blend` files, started before a submission needs it.
//!
//! Opening a small `.blend` takes Blender a few milliseconds; starting Blender takes most of a
//! second, and every submission waited for it. [`BlendInspector`] keeps one Blender started
//! ahead (`--factory-startup --disable-autoexec`, no file), blocked on its stdin. A submission
//! hands it the path of its file; the spare opens it without running the file's scripts, prints
//! the same report as the one-off inspection and ends. The next spare starts once a core of
//! this PC has been idle for a few seconds: starting Blender costs most of a second of CPU,
//! which the renders of the job just submitted (on a PC that is coordinator and render PC at
//! once) should not pay. Each spare inspects exactly one file, so nothing of one submission
//! stays in a process another one uses. A spare that cannot report (it died, or Blender could
//! not open the file) sends the file down the one-off path, which words what went wrong for
//! the submitter.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

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

/// How often the PC's idle time is read while a spare waits to be started.
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// Idle cores (of each [`IDLE_CHECK`]) that let the next spare start.
const IDLE_TO_START: f64 = 0.75;
/// For how many checks in a row: longer than a renderer's start on one core (loading the
/// scene), after which its frames may fill every core.
const IDLE_CHECKS: u32 = 3;

/// How `.blend` files are inspected: with a spare Blender kept ready, or by starting Blender
/// for each file. Clones share the spare.
#[derive(Clone, Default)]
pub struct BlendInspector {
    spare: Option<Arc<Shared>>,
}

struct Shared {
    slot: Mutex<Option<Spare>>,
    /// When the spare that took over an inspection is replaced.
    replace: Replace,
    /// Whether a task waits for an idle core to start the next spare.
    waiting: AtomicBool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replace {
    /// Once a core of the PC is idle.
    WhenIdle,
    /// At once (tests).
    #[cfg_attr(not(test), allow(dead_code))]
    AtOnce,
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
    /// Keeps a spare Blender: one starts at [`BlendInspector::keep_ready`], and after each
    /// inspection once a core of this PC is idle.
    pub fn with_spare() -> BlendInspector {
        BlendInspector::keeping(Replace::WhenIdle)
    }

    /// Keeps a spare Blender, replaced at once after each inspection.
    #[cfg(test)]
    pub(super) fn replaced_at_once() -> BlendInspector {
        BlendInspector::keeping(Replace::AtOnce)
    }

    fn keeping(replace: Replace) -> BlendInspector {
        BlendInspector {
            spare: Some(Arc::new(Shared {
                slot: Mutex::new(None),
                replace,
                waiting: AtomicBool::new(false),
            })),
        }
    }

    /// Starts Blender for each file (no process waits between submissions).
    pub fn one_off() -> BlendInspector {
        BlendInspector::default()
    }

    /// Starts a spare running `blender` now unless one is ready; does nothing without spares.
    /// Needs a Tokio runtime.
    pub fn keep_ready(&self, blender: &Path) {
        let Some(shared) = &self.spare else { return };
        let mut slot = lock(&shared.slot);
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
        let shared = self.spare.as_ref()?;
        lock(&shared.slot).as_ref().and_then(|s| s.child.id())
    }

    /// Starts the next spare as `shared.replace` says.
    fn replace(&self, blender: &Path) {
        let Some(shared) = &self.spare else { return };
        if shared.replace == Replace::AtOnce {
            return self.keep_ready(blender);
        }
        if shared.waiting.swap(true, Ordering::SeqCst) {
            return;
        }
        let shared = Arc::downgrade(shared);
        let blender = blender.to_owned();
        tokio::spawn(async move {
            wait_for_an_idle_core(&shared).await;
            if let Some(shared) = shared.upgrade() {
                shared.waiting.store(false, Ordering::SeqCst);
                BlendInspector {
                    spare: Some(shared),
                }
                .keep_ready(&blender);
            }
        });
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
        let Some(shared) = &self.spare else {
            return Ok(None);
        };
        let spare = lock(&shared.slot).take().filter(|s| s.blender == blender);
        self.replace(blender);
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

/// Returns once a core of this PC was idle over the last [`IDLE_CHECKS`] × [`IDLE_CHECK`], at
/// once when that cannot be read, or when the inspector is gone.
async fn wait_for_an_idle_core(inspector: &Weak<Shared>) {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks_per_sec = if ticks > 0 { ticks as f64 } else { 100.0 };
    let mut last = (Instant::now(), idle_ticks_now());
    let mut idle_checks = 0;
    loop {
        tokio::time::sleep(IDLE_CHECK).await;
        if inspector.strong_count() == 0 {
            return;
        }
        let now = (Instant::now(), idle_ticks_now());
        let (Some(before), Some(after)) = (last.1, now.1) else {
            return;
        };
        let secs = now.0.duration_since(last.0).as_secs_f64();
        match idle_cores(after.saturating_sub(before), secs, ticks_per_sec) >= IDLE_TO_START {
            true => idle_checks += 1,
            false => idle_checks = 0,
        }
        if idle_checks >= IDLE_CHECKS {
            return;
        }
        last = now;
    }
}

/// Cores idle over `secs`, from the idle ticks counted meanwhile.
fn idle_cores(ticks: u64, secs: f64, ticks_per_sec: f64) -> f64 {
    if secs <= 0.0 {
        return 0.0;
    }
    ticks as f64 / ticks_per_sec / secs
}

/// The idle and I/O wait ticks of all cores so far (`None` when `/proc/stat` cannot be read).
fn idle_ticks_now() -> Option<u64> {
    idle_ticks(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// The idle and I/O wait ticks of all cores, from the `cpu` line of `/proc/stat`.
fn idle_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = (line.split_whitespace().skip(1))
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait …
    Some(fields.get(3)? + fields.get(4)?)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_cores_come_from_the_cpu_line_of_proc_stat() {
        let stat = "cpu  100 5 50 1000 20 0 3 0 0 0\ncpu0 50 2 25 500 10 0 1 0 0 0\n";
        assert_eq!(idle_ticks(stat), Some(1020));
        assert_eq!(idle_ticks("cpu0 1 2 3 4 5\n"), None);
        assert_eq!(idle_ticks("cpu  1 2 x 4 5\n"), None);
        assert!(idle_ticks_now().is_some(), "this PC's /proc/stat reads");
        // 150 ticks at 100 a second over one second: a core and a half.
        assert_eq!(idle_cores(150, 1.0, 100.0), 1.5);
        assert!(idle_cores(50, 1.0, 100.0) < IDLE_TO_START);
        assert_eq!(idle_cores(150, 0.0, 100.0), 0.0);
    }
}
