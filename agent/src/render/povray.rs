//! POV-Ray 3.7 on the command line: the arguments for a lease's frames, the per-render
//! `povray.conf` that confines the scene's file I/O, and recognising finished frame files.
//!
//! A job with the submitter's `.ini` renders with that ini as POV-Ray's first argument, so
//! every option in it counts exactly as in a direct `povray scene.ini`; after it come only
//! what the farm controls (input and output paths, the lease's frames, no display, library
//! path, threads), which POV-Ray applies over the ini's values. Older jobs without the ini
//! text are rendered from the settings parsed out of it.
//!
//! POV-Ray names animation frames `frame<N>.png`, N zero-padded to the number of digits of the
//! animation's final frame (`+KFF120` gives `frame005.png`). While it renders frame N it keeps a
//! `frame<N>.pov-state` file beside them and writes `frame<N>.png` only when the frame is done,
//! so frame N is complete once a file of a later frame appears or POV-Ray exits successfully.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use idlefarm_protocol::{ImageFormat, PovraySettings, RenderSettings};

/// Where POV-Ray 3.7 keeps its include files and sample inis.
const POVRAY_SHARE: &str = "/usr/share/povray-3.7";

/// The name the submitter's ini gets in the lease's work folder.
const JOB_INI: &str = "idlefarm-job.ini";

/// The animation settings of a job, or plain defaults over the job's range when it has none.
fn animation(settings: &RenderSettings) -> PovraySettings {
    settings.povray.clone().unwrap_or(PovraySettings {
        initial_frame: settings.frame_start,
        final_frame: settings.frame_end,
        initial_clock: 0.0,
        final_clock: 1.0,
        antialias: false,
        antialias_threshold: None,
        antialias_depth: None,
        cyclic: false,
        ini: None,
        ini_section: None,
    })
}

/// Writes the submitter's ini, if the job has one, into `out_dir` for POV-Ray to read.
pub fn write_ini(settings: &RenderSettings, out_dir: &Path) -> io::Result<()> {
    match settings.povray.as_ref().and_then(|p| p.ini.as_ref()) {
        Some(text) => std::fs::write(out_dir.join(JOB_INI), text),
        None => Ok(()),
    }
}

/// The arguments that render `frames` (consecutive frames) of `main_file` into `out_dir`.
pub fn args(
    settings: &RenderSettings,
    main_file: &Path,
    out_dir: &Path,
    frames: &[i64],
) -> Vec<OsString> {
    let anim = animation(settings);
    let first = frames.first().copied().unwrap_or(settings.frame_start);
    let last = frames.last().copied().unwrap_or(first);
    let subset: [OsString; 2] = [format!("+SF{first}").into(), format!("+EF{last}").into()];
    if anim.ini.is_some() {
        // The ini holds the animation; only the lease's frames are the farm's.
        return with_ini(settings, &anim, main_file, out_dir, subset);
    }
    let animation = [
        format!("+KFI{}", anim.initial_frame).into(),
        format!("+KFF{}", anim.final_frame).into(),
        format!("+KI{}", anim.initial_clock).into(),
        format!("+KF{}", anim.final_clock).into(),
    ]
    .into_iter()
    .chain(subset);
    with_quality(settings, &anim, main_file, out_dir, animation)
}

/// The arguments that render one file of a scene sequence as a still image, with the job's
/// size and quality and no animation keys (its `clock` stays 0), into `out_dir/frame.<ext>`.
pub fn still_args(settings: &RenderSettings, scene_file: &Path, out_dir: &Path) -> Vec<OsString> {
    let anim = animation(settings);
    if anim.ini.is_some() {
        // One frame at clock 0 whatever animation the ini sets up, so the output is a still.
        let still = ["+KFI1", "+KFF1", "+KI0", "+KF0", "+SF1", "+EF1"].map(OsString::from);
        return with_ini(settings, &anim, scene_file, out_dir, still);
    }
    with_quality(settings, &anim, scene_file, out_dir, [])
}

/// The job's ini, then the farm's input, output, size and `frames` switches over it.
fn with_ini(
    settings: &RenderSettings,
    anim: &PovraySettings,
    main_file: &Path,
    out_dir: &Path,
    frames: impl IntoIterator<Item = OsString>,
) -> Vec<OsString> {
    let mut ini = out_dir.join(JOB_INI).into_os_string();
    if let Some(section) = &anim.ini_section {
        ini.push(format!("[{section}]"));
    }
    let mut args = vec![ini];
    args.extend(input_output(settings, main_file, out_dir));
    args.extend(frames);
    // -P: a `Pause_When_Done` in the ini would otherwise wait for a key nobody presses.
    args.extend(["-D".into(), "-P".into(), "-V".into()]);
    args.extend(library_and_threads(main_file));
    args
}

/// Input and output files, output type and size: the same for every way of rendering.
fn input_output(settings: &RenderSettings, main_file: &Path, out_dir: &Path) -> Vec<OsString> {
    let (width, height) = settings.frame_size();
    let (file_type, ext) = match settings.format {
        ImageFormat::Png => ("+FN", "png"),
        ImageFormat::Jpeg => ("+FJ", "jpg"),
    };
    let mut input = OsString::from("+I");
    input.push(main_file);
    let mut output = OsString::from("+O");
    output.push(out_dir);
    output.push(format!("/frame.{ext}"));
    vec![
        input,
        output,
        file_type.into(),
        format!("+W{width}").into(),
        format!("+H{height}").into(),
    ]
}

/// The scene's folder as a library path, and one render thread so the PC stays responsive.
fn library_and_threads(main_file: &Path) -> [OsString; 2] {
    let mut library = OsString::from("+L");
    library.push(main_file.parent().unwrap_or(Path::new(".")));
    [library, "+WT1".into()]
}

/// Input, output, size and antialiasing around `animation`'s switches.
fn with_quality(
    settings: &RenderSettings,
    anim: &PovraySettings,
    main_file: &Path,
    out_dir: &Path,
    animation: impl IntoIterator<Item = OsString>,
) -> Vec<OsString> {
    let mut args = input_output(settings, main_file, out_dir);
    args.extend(animation);
    args.extend(["-D".into(), "-V".into()]);
    if anim.antialias {
        args.push(match anim.antialias_threshold {
            Some(threshold) => format!("+A{threshold}").into(),
            None => "+A".into(),
        });
        if let Some(depth) = anim.antialias_depth {
            args.push(format!("+R{depth}").into());
        }
    } else {
        args.push("-A".into());
    }
    args.extend(library_and_threads(main_file));
    args
}

/// Writes `<out_dir>/.povray/3.7/povray.conf` (POV-Ray reads it from `$HOME`, which is
/// `out_dir`): reads only from the scene's files and POV-Ray's own, writes only to `out_dir`,
/// no shell-outs. Returns the directories created, for handing them to the render user.
///
/// POV-Ray 3.7.0's parser of the `[File I/O Security]` setting has a bug that leaves file I/O
/// unrestricted whatever this section says; the permitted paths and the shell-out ban are still
/// read, and running as an unprivileged user is what actually protects the PC.
pub fn write_conf(out_dir: &Path, scene_root: &Path) -> io::Result<Vec<PathBuf>> {
    let conf_dir = out_dir.join(".povray");
    let version_dir = conf_dir.join("3.7");
    std::fs::create_dir_all(&version_dir)?;
    let conf = format!(
        "[File I/O Security]\n\
         restricted\n\
         [Shellout Security]\n\
         forbidden\n\
         [Permitted Paths]\n\
         read*={}\n\
         read*={POVRAY_SHARE}\n\
         read+write*={}\n",
        scene_root.display(),
        out_dir.display()
    );
    std::fs::write(version_dir.join("povray.conf"), conf)?;
    Ok(vec![conf_dir, version_dir])
}

/// The frame number of a POV-Ray output or state file: `frame005.png` → 5,
/// `frame3.pov-state` → 3. Our renamed files (`frame_00005.png`) do not match.
pub fn file_frame(name: &str) -> Option<(i64, &str)> {
    let rest = name.strip_prefix("frame")?;
    let digits_end = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
        .map(|(i, _)| i)?;
    let (digits, ext) = rest.split_at(digits_end);
    let ext = ext.strip_prefix('.')?;
    Some((digits.parse().ok()?, ext))
}

/// The frames whose image files POV-Ray has finished in `out_dir`: every image except the
/// highest-numbered file, unless `exited_ok`. Images are returned with their current paths.
pub fn finished_frames(
    out_dir: &Path,
    format: ImageFormat,
    exited_ok: bool,
) -> io::Result<Vec<(i64, PathBuf)>> {
    let mut images = Vec::new();
    let mut newest = i64::MIN;
    for entry in std::fs::read_dir(out_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some((frame, ext)) = name.to_str().and_then(file_frame) else {
            continue;
        };
        newest = newest.max(frame);
        if ImageFormat::from_extension(ext) == Some(format) {
            images.push((frame, entry.path()));
        }
    }
    images.retain(|&(frame, _)| exited_ok || frame < newest);
    images.sort();
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;
    use idlefarm_protocol::Renderer;

    fn settings() -> RenderSettings {
        RenderSettings {
            renderer: Renderer::Povray,
            main_file: "scene/ball.pov".into(),
            scene: None,
            frame_start: 1,
            frame_end: 120,
            frame_step: 1,
            fps: 24.0,
            resolution_x: 320,
            resolution_y: 240,
            percentage: 100,
            engine: None,
            format: ImageFormat::Png,
            povray: Some(PovraySettings {
                initial_frame: 1,
                final_frame: 120,
                initial_clock: 0.0,
                final_clock: 2.5,
                antialias: true,
                antialias_threshold: Some(0.3),
                antialias_depth: Some(3),
                cyclic: false,
                ini: None,
                ini_section: None,
            }),
            sequence: None,
        }
    }

    #[test]
    fn args_carry_the_animation_and_quality_settings() {
        let args: Vec<String> = args(
            &settings(),
            Path::new("/cache/h/scene/ball.pov"),
            Path::new("/leases/3"),
            &[5, 6, 7],
        )
        .into_iter()
        .map(|a| a.into_string().unwrap())
        .collect();
        assert_eq!(
            args,
            [
                "+I/cache/h/scene/ball.pov",
                "+O/leases/3/frame.png",
                "+FN",
                "+W320",
                "+H240",
                "+KFI1",
                "+KFF120",
                "+KI0",
                "+KF2.5",
                "+SF5",
                "+EF7",
                "-D",
                "-V",
                "+A0.3",
                "+R3",
                "+L/cache/h/scene",
                "+WT1",
            ]
        );
    }

    #[test]
    fn a_sequence_file_is_a_still_without_animation_keys() {
        let mut s = settings();
        s.sequence = Some(vec!["f1.pov".into(), "f2.pov".into()]);
        let args: Vec<String> = still_args(&s, Path::new("/c/h/f2.pov"), Path::new("/l/3"))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(
            args,
            [
                "+I/c/h/f2.pov",
                "+O/l/3/frame.png",
                "+FN",
                "+W320",
                "+H240",
                "-D",
                "-V",
                "+A0.3",
                "+R3",
                "+L/c/h",
                "+WT1",
            ]
        );
    }

    #[test]
    fn jpeg_and_no_antialias() {
        let mut s = settings();
        s.format = ImageFormat::Jpeg;
        s.povray.as_mut().unwrap().antialias = false;
        let args: Vec<String> = args(&s, Path::new("/c/a.pov"), Path::new("/o"), &[1])
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert!(args.contains(&"+O/o/frame.jpg".to_owned()));
        assert!(args.contains(&"+FJ".to_owned()));
        assert!(args.contains(&"-A".to_owned()));
        assert!(!args.iter().any(|a| a.starts_with("+R")));
    }

    #[test]
    fn a_job_with_its_ini_renders_with_it_and_only_the_farms_switches() {
        let mut s = settings();
        let pov = s.povray.as_mut().unwrap();
        pov.ini = Some("+kf0.1666 +kff20 +kc declare=fp=0\n".into());
        pov.ini_section = Some("Small".into());
        let strings = |args: Vec<OsString>| -> Vec<String> {
            args.into_iter().map(|a| a.into_string().unwrap()).collect()
        };
        let animated = strings(args(
            &s,
            Path::new("/c/h/a.pov"),
            Path::new("/l/3"),
            &[5, 6],
        ));
        assert_eq!(
            animated,
            [
                "/l/3/idlefarm-job.ini[Small]",
                "+I/c/h/a.pov",
                "+O/l/3/frame.png",
                "+FN",
                "+W320",
                "+H240",
                "+SF5",
                "+EF6",
                "-D",
                "-P",
                "-V",
                "+L/c/h",
                "+WT1",
            ]
        );
        let still = strings(still_args(&s, Path::new("/c/h/f2.pov"), Path::new("/l/3")));
        assert_eq!(still[0], "/l/3/idlefarm-job.ini[Small]");
        assert_eq!(
            still[6..12],
            ["+KFI1", "+KFF1", "+KI0", "+KF0", "+SF1", "+EF1"]
        );

        let dir = tempfile::tempdir().unwrap();
        write_ini(&s, dir.path()).unwrap();
        let written = std::fs::read_to_string(dir.path().join(JOB_INI)).unwrap();
        assert_eq!(written, "+kf0.1666 +kff20 +kc declare=fp=0\n");
        let old = settings();
        let other = tempfile::tempdir().unwrap();
        write_ini(&old, other.path()).unwrap();
        assert!(
            !other.path().join(JOB_INI).exists(),
            "an older job has no ini"
        );
    }

    #[test]
    fn file_names_map_to_frames() {
        assert_eq!(file_frame("frame005.png"), Some((5, "png")));
        assert_eq!(file_frame("frame1.png"), Some((1, "png")));
        assert_eq!(file_frame("frame0100.jpg"), Some((100, "jpg")));
        assert_eq!(file_frame("frame3.pov-state"), Some((3, "pov-state")));
        assert_eq!(file_frame("frame_00005.png"), None);
        assert_eq!(file_frame("frame.png"), None);
        assert_eq!(file_frame("other5.png"), None);
    }

    #[test]
    fn a_frame_is_finished_when_a_later_file_exists() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "frame08.png",
            "frame09.png",
            "frame10.pov-state",
            "frame_00007.png",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let frames = |ok| {
            finished_frames(dir.path(), ImageFormat::Png, ok)
                .unwrap()
                .into_iter()
                .map(|(f, _)| f)
                .collect::<Vec<_>>()
        };
        assert_eq!(frames(false), vec![8, 9]);
        std::fs::remove_file(dir.path().join("frame10.pov-state")).unwrap();
        assert_eq!(frames(false), vec![8]);
        assert_eq!(frames(true), vec![8, 9]);
    }
}
