//! Scene sequences: a zip whose scene files are the frames of one animation, one file per
//! frame (the "makemovie" workflow: a modeller or a script writes `frame1.pov` … `frame240.pov`).
//!
//! Frame N of the job is the N-th scene file in natural name order (`f2.pov` before
//! `f10.pov`), rendered once with the job's settings. For POV-Ray those come from the project's
//! `.ini` without its animation keys (each file is a still, its `clock` stays 0); for Blender
//! from the first file, each file rendering its active scene's current frame.

use std::cmp::Ordering;

use idlefarm_protocol::submit_fields::FRAMES;
use idlefarm_protocol::{PovraySettings, RenderSettings};

use super::fields::Overrides;
use super::pov;
use super::povray_ini::PovIni;
use crate::error::ApiError;

/// The scene files of a sequence in the order they become frames.
pub(super) fn in_natural_order(files: &[&str]) -> Vec<String> {
    let mut files: Vec<String> = files.iter().map(|f| f.to_string()).collect();
    files.sort_by(|a, b| natural_cmp(a, b));
    files
}

/// Compares names as a person reads them: runs of digits by their value (`f2` < `f10`),
/// the rest character by character; ties (`f01` and `f1`) fall back to plain order.
pub(super) fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    while let (Some(&cx), Some(&cy)) = (x.first(), y.first()) {
        let order = if cx.is_ascii_digit() && cy.is_ascii_digit() {
            let (dx, rx) = split_digits(x);
            let (dy, ry) = split_digits(y);
            (x, y) = (rx, ry);
            compare_numbers(dx, dy)
        } else {
            (x, y) = (&x[1..], &y[1..]);
            cx.cmp(&cy)
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    x.len().cmp(&y.len()).then_with(|| a.cmp(b))
}

fn split_digits(s: &[u8]) -> (&[u8], &[u8]) {
    let end = s
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(s.len());
    s.split_at(end)
}

/// Compares two digit runs by value, without parsing (they may be longer than any integer).
fn compare_numbers(a: &[u8], b: &[u8]) -> Ordering {
    let strip = |s: &[u8]| -> usize { s.iter().take_while(|&&c| c == b'0').count() };
    let (a, b) = (&a[strip(a)..], &b[strip(b)..]);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// The job's frames: all files, or the `frames` field's range inside `1..=files`.
fn frames(overrides: &Overrides, files: usize) -> Result<(i64, i64, i64), ApiError> {
    let last = files as i64;
    match overrides.frames {
        None => Ok((1, last, 1)),
        Some(range) if range.within(1, last) => {
            Ok((range.start, range.end, range.step.unwrap_or(1)))
        }
        Some(range) => Err(ApiError::unprocessable(format!(
            "frame range {}-{} is outside the sequence's 1-{last} (one frame per scene file)",
            range.start, range.end
        ))
        .on_field(FRAMES)),
    }
}

/// Render settings for a POV-Ray sequence of `files` (in order, at least one) with the
/// project's ini, if any, named `ini_name` in messages.
pub(super) fn povray(
    files: Vec<String>,
    ini: Option<(&PovIni, &str)>,
    overrides: &Overrides,
) -> Result<(RenderSettings, Vec<String>), ApiError> {
    let mut warnings = Vec::new();
    if let Some((ini, name)) = ini {
        if has_animation(ini) {
            warnings.push(format!(
                "the animation settings in {name} (frames, clock) were ignored: in a sequence each scene file is one frame"
            ));
        }
        if ini.input_file_name.is_some() {
            warnings.push(format!(
                "Input_File_Name in {name} was ignored: a sequence renders every .pov file in the zip"
            ));
        }
    }
    let (frame_start, frame_end, frame_step) = frames(overrides, files.len())?;
    let first = files.first().cloned().unwrap_or_default();
    let still = Overrides {
        frames: None,
        ..overrides.clone()
    };
    let mut settings = pov::settings(first, ini, &still)?;
    let quality = settings.povray.take().unwrap_or_else(|| still_povray(1));
    settings.povray = Some(PovraySettings {
        initial_frame: 1,
        final_frame: files.len() as i64,
        // Each file is rendered as a still: POV-Ray's clock stays at its default.
        initial_clock: 0.0,
        final_clock: 0.0,
        cyclic: false,
        ..quality
    });
    settings.frame_start = frame_start;
    settings.frame_end = frame_end;
    settings.frame_step = frame_step;
    settings.sequence = Some(files);
    Ok((settings, warnings))
}

/// Turns the settings read from a sequence's first `.blend` into the sequence's settings.
pub(super) fn blender(
    mut settings: RenderSettings,
    files: Vec<String>,
    overrides: &Overrides,
) -> Result<RenderSettings, ApiError> {
    let (frame_start, frame_end, frame_step) = frames(overrides, files.len())?;
    settings.frame_start = frame_start;
    settings.frame_end = frame_end;
    settings.frame_step = frame_step;
    // Every file renders its own active scene.
    settings.scene = None;
    settings.sequence = Some(files);
    Ok(settings)
}

fn still_povray(final_frame: i64) -> PovraySettings {
    PovraySettings {
        initial_frame: 1,
        final_frame,
        initial_clock: 0.0,
        final_clock: 0.0,
        antialias: false,
        antialias_threshold: None,
        antialias_depth: None,
        cyclic: false,
        ini: None,
        ini_section: None,
    }
}

/// Whether an ini sets up an animation (anything but POV-Ray's one-frame default).
fn has_animation(ini: &PovIni) -> bool {
    let defaults = PovIni::default();
    ini.initial_frame != defaults.initial_frame
        || ini.final_frame != defaults.final_frame
        || ini.initial_clock != defaults.initial_clock
        || ini.final_clock != defaults.final_clock
        || ini.subset_start_frame.is_some()
        || ini.subset_end_frame.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::submit::frames::FrameRange;
    use crate::submit::povray_ini::parse_ini;

    #[test]
    fn numbers_sort_by_value() {
        let files = [
            "frame10.pov",
            "frame2.pov",
            "frame1.pov",
            "frame12.pov",
            "frame11.pov",
            "frame3.pov",
        ];
        assert_eq!(
            in_natural_order(&files),
            [
                "frame1.pov",
                "frame2.pov",
                "frame3.pov",
                "frame10.pov",
                "frame11.pov",
                "frame12.pov"
            ]
        );
        assert_eq!(natural_cmp("f01.pov", "f1.pov"), Ordering::Less);
        assert_eq!(natural_cmp("f007.pov", "f10.pov"), Ordering::Less);
        assert_eq!(natural_cmp("a/f9.pov", "a/f10.pov"), Ordering::Less);
        assert_eq!(natural_cmp("f.pov", "f1.pov"), Ordering::Less);
        assert_eq!(natural_cmp("shot2_f10", "shot10_f1"), Ordering::Less);
        let huge = "f99999999999999999999999.pov";
        assert_eq!(
            natural_cmp(huge, "f100000000000000000000000.pov"),
            Ordering::Less
        );
        assert_eq!(natural_cmp("b.pov", "b.pov"), Ordering::Equal);
    }

    #[test]
    fn povray_sequence_keeps_the_ini_quality_and_drops_its_animation() {
        let ini = parse_ini("+W64 +H36 +KFI1 +KFF24 +KF2 +A0.3 +R2").unwrap();
        let files: Vec<String> = (1..=5).map(|i| format!("f{i}.pov")).collect();
        let (s, warnings) =
            povray(files.clone(), Some((&ini, "p.ini")), &Overrides::default()).unwrap();
        assert_eq!((s.frame_start, s.frame_end, s.frame_step), (1, 5, 1));
        assert_eq!((s.resolution_x, s.resolution_y), (64, 36));
        assert_eq!(s.main_file, "f1.pov");
        assert_eq!(s.sequence.as_deref(), Some(files.as_slice()));
        let pov = s.povray.unwrap();
        assert_eq!((pov.initial_frame, pov.final_frame), (1, 5));
        assert_eq!((pov.initial_clock, pov.final_clock), (0.0, 0.0));
        assert_eq!(
            (pov.antialias, pov.antialias_threshold, pov.antialias_depth),
            (true, Some(0.3), Some(2))
        );
        assert_eq!(
            warnings,
            [
                "the animation settings in p.ini (frames, clock) were ignored: in a sequence each scene file is one frame"
            ]
        );

        let plain = parse_ini("Width=8\nHeight=8\n").unwrap();
        let (_, warnings) = povray(files, Some((&plain, "p.ini")), &Overrides::default()).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn frames_lie_inside_the_sequence() {
        let files: Vec<String> = (1..=12).map(|i| format!("f{i}.pov")).collect();
        let with = |text: &str| Overrides {
            frames: Some(FrameRange::parse(text).unwrap()),
            ..Overrides::default()
        };
        let (s, _) = povray(files.clone(), None, &with("3-9:3")).unwrap();
        assert_eq!(s.frames(), [3, 6, 9]);
        let err = povray(files, None, &with("0-12")).unwrap_err();
        assert_eq!(err.status, 422);
        assert_eq!(
            err.message,
            "frame range 0-12 is outside the sequence's 1-12 (one frame per scene file)"
        );
    }
}
