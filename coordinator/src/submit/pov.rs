//! POV-Ray scenes: checking a `.pov` is text and turning its `.ini` into render settings.

use std::path::Path;

use idlefarm_protocol::submit_fields::FRAMES;
use idlefarm_protocol::{ImageFormat, PovraySettings, RenderSettings, Renderer};
use tokio::io::AsyncReadExt;

use super::fields::Overrides;
use super::povray_ini::{PovIni, parse_ini_section};
use crate::error::ApiError;

/// Largest `.ini` accepted: real ones are a few hundred bytes, and the text travels with
/// every lease of the job.
const MAX_INI_BYTES: u64 = 64 << 10;

/// Frame rate of the video when the submitter gives none (POV-Ray files do not say).
const DEFAULT_FPS: f64 = 24.0;

/// Refuses a scene file with NUL bytes: POV-Ray scenes are text.
pub(super) async fn check_text(path: &Path, display: &str) -> Result<(), ApiError> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        if buf[..n].contains(&0) {
            return Err(ApiError::bad_request(format!(
                "{display} does not look like a POV-Ray scene (it is binary)"
            )));
        }
    }
}

/// Reads and parses an ini file with its chosen `section`, if any; errors are 400s that name
/// the file and the line.
pub(super) async fn read_ini(
    path: &Path,
    display: &str,
    section: Option<&str>,
) -> Result<PovIni, ApiError> {
    let len = tokio::fs::metadata(path).await?.len();
    if len > MAX_INI_BYTES {
        return Err(ApiError::bad_request(format!(
            "{display} is too large for a POV-Ray .ini file ({len} bytes)"
        )));
    }
    let bytes = tokio::fs::read(path).await?;
    if bytes.contains(&0) {
        return Err(ApiError::bad_request(format!(
            "{display} does not look like a POV-Ray .ini file (it is binary)"
        )));
    }
    parse_ini_section(&String::from_utf8_lossy(&bytes), section)
        .map_err(|e| ApiError::bad_request(format!("{display}: {e}")))
}

/// Render settings for a POV-Ray scene from its ini (named `ini_name` in messages), if any,
/// and the submitter's overrides.
pub(super) fn settings(
    main_file: String,
    ini: Option<(&PovIni, &str)>,
    overrides: &Overrides,
) -> Result<RenderSettings, ApiError> {
    if let Some(range) = overrides.frames
        && range.step.is_some_and(|step| step != 1)
    {
        return Err(ApiError::bad_request(
            "POV-Ray jobs cannot skip frames; remove the :STEP from the frames field",
        )
        .on_field(FRAMES));
    }
    let defaults = PovIni::default();
    let values = ini.map(|(ini, _)| ini).unwrap_or(&defaults);
    // (animation range the clock runs over, frames to render)
    let ((initial_frame, final_frame), (frame_start, frame_end)) = match (ini, overrides.frames) {
        (Some((ini, name)), Some(range)) => {
            if !range.within(ini.initial_frame, ini.final_frame) {
                return Err(ApiError::unprocessable(format!(
                    "frame range {}-{} is outside the animation's {}-{} (Initial_Frame to Final_Frame in {name})",
                    range.start, range.end, ini.initial_frame, ini.final_frame
                ))
                .on_field(FRAMES));
            }
            (
                (ini.initial_frame, ini.final_frame),
                (range.start, range.end),
            )
        }
        (Some((ini, _)), None) => ((ini.initial_frame, ini.final_frame), ini.frames()),
        // Without an ini the given range is the whole animation.
        (None, Some(range)) => ((range.start, range.end), (range.start, range.end)),
        (None, None) => ((1, 1), (1, 1)),
    };
    Ok(RenderSettings {
        renderer: Renderer::Povray,
        main_file,
        scene: None,
        frame_start,
        frame_end,
        frame_step: 1,
        fps: overrides.fps.unwrap_or(DEFAULT_FPS),
        resolution_x: values.width,
        resolution_y: values.height,
        percentage: 100,
        engine: None,
        format: overrides.format.unwrap_or(ImageFormat::Png),
        povray: Some(PovraySettings {
            initial_frame,
            final_frame,
            initial_clock: values.initial_clock,
            final_clock: values.final_clock,
            antialias: values.antialias,
            antialias_threshold: values.antialias_threshold,
            antialias_depth: values.antialias_depth,
            cyclic: values.cyclic,
            ini: ini.map(|(ini, _)| ini.source.clone()),
            ini_section: ini.and_then(|(ini, _)| ini.section.clone()),
        }),
        sequence: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::submit::frames::FrameRange;
    use crate::submit::povray_ini::parse_ini;

    fn with_frames(text: &str) -> Overrides {
        Overrides {
            frames: Some(FrameRange::parse(text).unwrap()),
            ..Overrides::default()
        }
    }

    #[test]
    fn without_an_ini_uses_povray_defaults() {
        let s = settings("ball.pov".into(), None, &Overrides::default()).unwrap();
        assert_eq!((s.frame_start, s.frame_end, s.frame_step), (1, 1, 1));
        assert_eq!(
            (s.resolution_x, s.resolution_y, s.percentage),
            (320, 240, 100)
        );
        assert_eq!(
            (s.fps, s.format, s.renderer),
            (24.0, ImageFormat::Png, Renderer::Povray)
        );
        let pov = s.povray.unwrap();
        assert_eq!((pov.initial_frame, pov.final_frame), (1, 1));
        assert_eq!((pov.initial_clock, pov.final_clock), (0.0, 1.0));
        assert!(!pov.antialias);
    }

    #[test]
    fn without_an_ini_the_given_frames_are_the_animation() {
        let s = settings("ball.pov".into(), None, &with_frames("1-48")).unwrap();
        assert_eq!((s.frame_start, s.frame_end), (1, 48));
        let pov = s.povray.unwrap();
        assert_eq!((pov.initial_frame, pov.final_frame), (1, 48));
    }

    #[test]
    fn the_ini_sets_the_animation_and_frames_must_lie_within_it() {
        let ini = parse_ini("+W64 +H36 +KFI1 +KFF24 +A0.3").unwrap();
        let s = settings(
            "ball.pov".into(),
            Some((&ini, "ball.ini")),
            &with_frames("5-10"),
        )
        .unwrap();
        assert_eq!((s.frame_start, s.frame_end), (5, 10));
        assert_eq!((s.resolution_x, s.resolution_y), (64, 36));
        let pov = s.povray.unwrap();
        assert_eq!((pov.initial_frame, pov.final_frame), (1, 24));
        assert_eq!(pov.antialias_threshold, Some(0.3));

        let err = settings(
            "ball.pov".into(),
            Some((&ini, "ball.ini")),
            &with_frames("1-400"),
        )
        .unwrap_err();
        assert_eq!(err.status, 422);
        assert!(
            err.message
                .starts_with("frame range 1-400 is outside the animation's 1-24")
        );
    }

    #[test]
    fn refuses_a_frame_step() {
        let err = settings("ball.pov".into(), None, &with_frames("1-10:2")).unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.message.starts_with("POV-Ray jobs cannot skip frames"));
        assert!(settings("ball.pov".into(), None, &with_frames("1-10:1")).is_ok());
    }
}
