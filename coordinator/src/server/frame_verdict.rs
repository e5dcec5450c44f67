//! Judging a received, decoded frame and putting its file where the verdict says, before the
//! scheduler lock is taken: measured ([`compare::look`]), compared with its neighbours and,
//! when it is under check, with the renders held for it ([`compare::psnr`]). Blocking.

use std::path::{Path, PathBuf};

use idlefarm_protocol::{ImageFormat, frame_file_name};

use super::checks::{FrameContext, Outcome, candidate_file};
use crate::compare;
use crate::error::ApiError;
use crate::files::PendingFile;
use crate::schedule::check::{self, Candidate, Suspicion, Verdict};

/// Who delivered a frame and what it said about the render.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    /// The agent.
    pub agent: i64,
    /// Its lease.
    pub lease: i64,
    /// The frame number.
    pub frame: i64,
    /// The image format.
    pub format: ImageFormat,
    /// A fatal line the renderer printed, as the agent reported it.
    pub renderer_error: Option<String>,
}

/// Decides what becomes of `img` (the checked image in `pending`) and stores it accordingly in
/// `dir` (the job's frames folder): under the frame's own name when it is done, as a held
/// candidate otherwise; a kept earlier candidate is moved to the frame's own name instead.
/// Writes the thumbnail of whatever is kept.
pub(crate) fn decide(
    ctx: &FrameContext,
    delivery: &Delivery,
    mut pending: PendingFile,
    img: image::DynamicImage,
    dir: &Path,
    thumbnail: &Path,
) -> Result<Outcome, ApiError> {
    let Delivery {
        agent,
        lease,
        frame,
        format,
        ..
    } = *delivery;
    let bytes = pending.file().metadata()?.len();
    let look = compare::look(&img, bytes);
    let suspicion = check::suspicion(&look, &ctx.neighbours, delivery.renderer_error.as_deref());
    let dest = dir.join(frame_file_name(frame, format));
    let hold = |pending: PendingFile, reason: Suspicion, looked_wrong: bool| {
        let file = candidate_file(frame, agent, format);
        let path = dir.join(&file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        pending.commit(&path)?;
        Ok::<_, ApiError>(Outcome::Held {
            candidate: Candidate {
                agent,
                lease,
                file,
                look,
                looked_wrong,
            },
            reason,
        })
    };
    let Some(check) = &ctx.check else {
        return match (suspicion, ctx.sample) {
            (Some(why), _) => hold(pending, why, true),
            (None, true) => hold(pending, Suspicion::Sample, false),
            (None, false) => {
                keep_new(pending, &img, &dest, thumbnail, ctx.job, frame)?;
                Ok(Outcome::Done {
                    agent,
                    look,
                    note: None,
                    blame: Vec::new(),
                })
            }
        };
    };
    let psnr: Vec<f64> = (check.candidates.iter())
        .map(|c| match compare::open(&dir.join(&c.file), format) {
            Ok(held) => compare::psnr(&held, &img),
            Err(e) => {
                // Lost or unreadable: it agrees with nothing.
                tracing::warn!(frame, file = c.file, "cannot read a held render: {e}");
                0.0
            }
        })
        .collect();
    let looked_wrong = suspicion.is_some();
    let name = |id| ctx.name(id);
    match check::settle(frame, check, (agent, lease), looked_wrong, &psnr, &name) {
        Verdict::AcceptNew { blame, note } => {
            keep_new(pending, &img, &dest, thumbnail, ctx.job, frame)?;
            Ok(Outcome::Done {
                agent,
                look,
                note: Some(note),
                blame,
            })
        }
        Verdict::KeepCandidate { index, blame, note } => {
            let kept = &check.candidates[index];
            let from: PathBuf = dir.join(&kept.file);
            let held = compare::open(&from, format).map_err(|e| {
                ApiError::internal(format!("cannot read the held render of frame {frame}: {e}"))
            })?;
            std::fs::rename(&from, &dest)?;
            write_thumbnail(&held, thumbnail, ctx.job, frame)?;
            Ok(Outcome::Done {
                agent: kept.agent,
                look: kept.look,
                note: Some(note),
                blame,
            })
        }
        Verdict::AskAnother => hold(pending, check.reason.clone(), looked_wrong),
    }
}

/// Stores the new render as the frame and its thumbnail.
fn keep_new(
    pending: PendingFile,
    img: &image::DynamicImage,
    dest: &Path,
    thumbnail: &Path,
    job: i64,
    frame: i64,
) -> Result<(), ApiError> {
    pending.commit(dest)?;
    write_thumbnail(img, thumbnail, job, frame)
}

fn write_thumbnail(
    img: &image::DynamicImage,
    thumbnail: &Path,
    job: i64,
    frame: i64,
) -> Result<(), ApiError> {
    match crate::thumbnail::encode(img) {
        Ok(jpeg) => crate::files::write_atomic(thumbnail, &jpeg)?,
        Err(e) => tracing::warn!(job, frame, "no thumbnail: {e}"),
    }
    Ok(())
}
