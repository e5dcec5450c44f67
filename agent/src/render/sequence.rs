//! Scene sequences: a lease's frames rendered one scene file each (frame N of the job is file
//! N of `RenderSettings::sequence`), one renderer run per file.
//!
//! A file that fails does not stop the others: the rest of the chunk is still rendered and
//! uploaded, and the lease then reports the failure, so only the failing files' frames count
//! it. A yield or a cancel ends the chunk at once; the frames not rendered go back to the
//! queue and a later lease starts again at their files, since frames are the unit.

use std::path::PathBuf;

use tokio::sync::mpsc;

use super::{
    LOG_TAIL_LINES, RenderControl, RenderEnv, RenderJob, RenderOutcome, RenderedFrame, Run,
};
use crate::input_name::is_plain_relative;

/// Failed files named in a lease's failure message before "and N more".
const NAMED_FAILURES: usize = 3;

/// Renders each of `job`'s frames from its own scene file.
pub(super) async fn render(
    job: &RenderJob,
    env: &RenderEnv,
    frames: &mpsc::UnboundedSender<RenderedFrame>,
    control: &mut RenderControl,
) -> RenderOutcome {
    let mut failures: Vec<(String, String)> = Vec::new();
    for &frame in &job.frames {
        let scene_file = match scene_file(job, frame) {
            Ok(path) => path,
            Err(message) => {
                failures.push((message, String::new()));
                continue;
            }
        };
        let run = Run {
            main_file: &scene_file,
            frames: &[frame],
            still: true,
        };
        match super::run(job, &run, env, frames, control).await {
            RenderOutcome::Complete => {}
            RenderOutcome::Failed { message, log_tail } => {
                let source = job.settings.source_of(frame).unwrap_or_default();
                tracing::info!(frame, source, "a scene file of the sequence failed");
                failures.push((format!("{source}: {message}"), log_tail));
            }
            stopped @ (RenderOutcome::Yielded | RenderOutcome::Cancelled) => return stopped,
        }
    }
    match failures.first() {
        None => RenderOutcome::Complete,
        Some((_, log_tail)) => RenderOutcome::Failed {
            message: failure_message(&failures),
            log_tail: log_tail.clone(),
        },
    }
}

/// The file frame `frame` is rendered from, checked to lie inside the job's input.
fn scene_file(job: &RenderJob, frame: i64) -> Result<PathBuf, String> {
    let files = job.settings.sequence.as_ref().map_or(0, Vec::len);
    let source = job
        .settings
        .source_of(frame)
        .ok_or_else(|| format!("frame {frame} has no scene file (the sequence has {files})"))?;
    if !is_plain_relative(source) {
        return Err(format!(
            "frame {frame}: {source:?} is not a plain relative path inside the project"
        ));
    }
    let path = job.input_root.join(source);
    if !path.is_file() {
        return Err(format!("frame {frame}: {source} is not in the project"));
    }
    Ok(path)
}

/// `a.pov: povray exited with status 1 …`, or the first few of several such lines.
fn failure_message(failures: &[(String, String)]) -> String {
    let mut named: Vec<&str> = failures
        .iter()
        .take(NAMED_FAILURES)
        .map(|(message, _)| message.as_str())
        .collect();
    let more = failures.len().saturating_sub(NAMED_FAILURES);
    let more = format!("and {more} more");
    if failures.len() > NAMED_FAILURES {
        named.push(&more);
    }
    let text = named.join("; ");
    // Keep a runaway message to roughly a log tail's size.
    text.chars().take(LOG_TAIL_LINES * 200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_failures_are_named_briefly() {
        let one = [(
            "f5.pov: povray exited with status 1".to_owned(),
            String::new(),
        )];
        assert_eq!(failure_message(&one), "f5.pov: povray exited with status 1");
        let five: Vec<(String, String)> = (1..=5)
            .map(|i| (format!("f{i}.pov: failed"), String::new()))
            .collect();
        assert_eq!(
            failure_message(&five),
            "f1.pov: failed; f2.pov: failed; f3.pov: failed; and 2 more"
        );
    }
}
