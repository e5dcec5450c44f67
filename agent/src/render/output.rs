//! What a renderer produces while it runs: frame files, recognised as complete and handed
//! over once each, and the tail of its output for failure reports.

use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;

use idlefarm_protocol::{ImageFormat, Renderer};
use tokio::sync::mpsc;

use super::supervise::Watcher;
use super::{LOG_TAIL_LINES, RenderJob, RenderedFrame, Run, blender, povray};

/// Keeps track of which frames are complete and hands each over once.
pub(super) struct FrameTracker {
    renderer: Renderer,
    format: ImageFormat,
    out_dir: PathBuf,
    /// Where the renderer writes: `out_dir`, or a warm Blender's own folder (frames are moved
    /// from there into `out_dir`).
    render_dir: PathBuf,
    wanted: BTreeSet<i64>,
    /// A scene-sequence run: whatever image the renderer saves is this one frame.
    still: Option<i64>,
    sent: BTreeSet<i64>,
    frames: mpsc::UnboundedSender<RenderedFrame>,
    /// A known fatal line printed since the last frame was handed over.
    fatal: Option<String>,
    /// Whether any known fatal line was printed.
    fatal_seen: bool,
}

impl FrameTracker {
    pub(super) fn new(
        job: &RenderJob,
        run: &Run<'_>,
        frames: mpsc::UnboundedSender<RenderedFrame>,
    ) -> Self {
        FrameTracker {
            renderer: job.settings.renderer,
            format: job.settings.format,
            out_dir: job.out_dir.clone(),
            render_dir: job.out_dir.clone(),
            wanted: run.frames.iter().copied().collect(),
            still: run.still.then(|| run.frames.first().copied()).flatten(),
            sent: BTreeSet::new(),
            frames,
            fatal: None,
            fatal_seen: false,
        }
    }

    /// Tracks a Blender that writes its frames into `dir` rather than the lease's folder.
    pub(super) fn rendering_into(mut self, dir: PathBuf) -> Self {
        self.render_dir = dir;
        self
    }

    pub(super) fn on_line(&mut self, line: &str) {
        if self.fatal.is_none() {
            self.fatal = super::fatal::fatal_line(self.renderer, line);
            if let Some(fatal) = &self.fatal {
                self.fatal_seen = true;
                tracing::warn!("the renderer printed a fatal message: {fatal}");
            }
        }
        match (self.renderer, self.still) {
            (Renderer::Blender, Some(frame)) => {
                // The file is named for the scene's own frame number: give it the job's.
                if let Some(path) = blender::saved_file(line, &self.render_dir, self.format) {
                    self.rename_finished(frame, &path);
                }
            }
            (Renderer::Blender, None) => {
                let Some(frame) = blender::saved_frame(line, &self.render_dir, self.format) else {
                    return;
                };
                if self.render_dir == self.out_dir {
                    let name = idlefarm_protocol::frame_file_name(frame, self.format);
                    self.finished(frame, self.out_dir.join(name));
                } else if let Some(path) = blender::saved_file(line, &self.render_dir, self.format)
                {
                    self.rename_finished(frame, &path);
                }
            }
            // POV-Ray prints a line or two per frame: a good moment to look for files.
            (Renderer::Povray, _) => self.scan(false),
        }
    }

    /// Looks for frame files POV-Ray has finished and renames them to our naming.
    pub(super) fn scan(&mut self, exited_ok: bool) {
        if self.renderer != Renderer::Povray {
            return;
        }
        let found = match povray::finished_frames(&self.out_dir, self.format, exited_ok) {
            Ok(found) => found,
            Err(err) => {
                tracing::warn!("cannot list {}: {err}", self.out_dir.display());
                return;
            }
        };
        let mut found = found;
        // A one-frame "animation" is a still image to POV-Ray: it writes `frame.png`, unnumbered.
        let still = self
            .out_dir
            .join(format!("frame.{}", self.format.extension()));
        if exited_ok && self.wanted.len() == 1 && still.is_file() {
            found.extend(self.wanted.iter().map(|&frame| (frame, still.clone())));
        }
        for (frame, path) in found {
            self.rename_finished(frame, &path);
        }
    }

    /// Renames a complete image to our naming and hands it over.
    fn rename_finished(&mut self, frame: i64, path: &std::path::Path) {
        let ours = self
            .out_dir
            .join(idlefarm_protocol::frame_file_name(frame, self.format));
        match std::fs::rename(path, &ours) {
            Ok(()) => self.finished(frame, ours),
            Err(err) => tracing::warn!("cannot rename {}: {err}", path.display()),
        }
    }

    fn finished(&mut self, frame: i64, path: PathBuf) {
        if !self.wanted.contains(&frame) {
            tracing::warn!(frame, "renderer wrote a frame outside the lease; ignored");
            return;
        }
        if self.sent.insert(frame) {
            tracing::debug!(frame, "frame finished");
            let _ = self.frames.send(RenderedFrame {
                frame,
                path,
                renderer_error: self.fatal.take(),
            });
        }
    }

    /// Whether the renderer printed a known fatal line (its process is not to be trusted again).
    pub(super) fn saw_fatal(&self) -> bool {
        self.fatal_seen
    }

    pub(super) fn missing(&self) -> Vec<i64> {
        self.wanted.difference(&self.sent).copied().collect()
    }
}

/// What a one-off renderer's output goes to: its frames and its log tail.
pub(super) struct Output {
    /// Finished frames.
    pub(super) tracker: FrameTracker,
    /// The last lines.
    pub(super) tail: LogTail,
}

impl Watcher for Output {
    fn on_line(&mut self, line: &str) -> bool {
        self.tracker.on_line(line);
        self.tail.push(line.to_owned());
        false
    }

    fn poll(&mut self) {
        self.tracker.scan(false);
    }
}

/// The last [`LOG_TAIL_LINES`] lines a renderer printed.
#[derive(Default)]
pub(super) struct LogTail(VecDeque<String>);

impl LogTail {
    pub(super) fn push(&mut self, line: String) {
        if self.0.len() == LOG_TAIL_LINES {
            self.0.pop_front();
        }
        self.0.push_back(line);
    }

    pub(super) fn text(&self) -> String {
        self.0
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let mut tail = LogTail::default();
        for i in 0..100 {
            tail.push(format!("line {i}"));
        }
        let text = tail.text();
        assert_eq!(text.lines().count(), LOG_TAIL_LINES);
        assert!(text.starts_with("line 40\n"));
        assert!(text.ends_with("line 99"));
    }
}
