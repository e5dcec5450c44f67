//! Blender on the command line: the arguments for a lease's frames and the `Saved:` lines that
//! say a frame file is complete.
//!
//! Blender runs in background mode with factory settings and with Python embedded in the
//! submitted file disabled; the only Python that runs is our short expression that pins the
//! resolution (and Cycles to the CPU, since lab PCs have no configured GPU devices).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use idlefarm_protocol::{ImageFormat, RenderSettings};

/// The Python expression run after the file is loaded.
pub fn python_expr(settings: &RenderSettings) -> String {
    format!(
        "import bpy\n\
         s = bpy.context.scene\n\
         r = s.render\n\
         r.resolution_x = {}\n\
         r.resolution_y = {}\n\
         r.resolution_percentage = {}\n\
         if r.engine == 'CYCLES': s.cycles.device = 'CPU'\n",
        settings.resolution_x, settings.resolution_y, settings.percentage
    )
}

/// Blender's name for an output format (`-F`).
fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Png => "PNG",
        ImageFormat::Jpeg => "JPEG",
    }
}

/// The arguments that render `frames` (consecutive frames of the job, with its step) of
/// `main_file` into `out_dir/frame_#####.<ext>`.
pub fn args(
    settings: &RenderSettings,
    main_file: &Path,
    out_dir: &Path,
    frames: &[i64],
) -> Vec<OsString> {
    let first = frames.first().copied().unwrap_or(settings.frame_start);
    let last = frames.last().copied().unwrap_or(first);
    let mut args = setup_args(settings, main_file, out_dir);
    args.extend([
        "-s".into(),
        first.to_string().into(),
        "-e".into(),
        last.to_string().into(),
        "-j".into(),
        settings.frame_step.max(1).to_string().into(),
        "-a".into(),
    ]);
    args
}

/// The arguments of a warm Blender: the file loaded and set up exactly as [`args`] does, then
/// `driver` (our Python, never the file's) renders the frame ranges it reads on stdin.
pub fn warm_args(
    settings: &RenderSettings,
    main_file: &Path,
    out_dir: &Path,
    driver: &str,
) -> Vec<OsString> {
    let mut args = setup_args(settings, main_file, out_dir);
    args.extend(["--python-expr".into(), driver.into()]);
    args
}

/// Everything before the frame range: the file, the scene, our settings and the output.
fn setup_args(settings: &RenderSettings, main_file: &Path, out_dir: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "-b".into(),
        "--factory-startup".into(),
        "--disable-autoexec".into(),
        main_file.into(),
    ];
    if let Some(scene) = &settings.scene {
        args.push("-S".into());
        args.push(scene.into());
    }
    let mut output = out_dir.as_os_str().to_owned();
    output.push("/frame_#####");
    args.extend([
        "--python-expr".into(),
        python_expr(settings).into(),
        "-o".into(),
        output,
        "-F".into(),
        format_name(settings.format).into(),
        "-x".into(),
        "1".into(),
    ]);
    args
}

/// Appended to [`python_expr`] for a scene sequence: render only the scene's current frame.
/// Setting the start first keeps start <= end whichever way the range moves.
const CURRENT_FRAME_ONLY: &str = "s.frame_start = s.frame_current\n\
     s.frame_end = s.frame_current\n\
     s.frame_step = 1\n";

/// The arguments that render one file of a scene sequence: the current frame of its active
/// scene, into `out_dir/source_#####.<ext>` (numbered by that scene's frame, renamed after).
pub fn sequence_args(
    settings: &RenderSettings,
    scene_file: &Path,
    out_dir: &Path,
) -> Vec<OsString> {
    let mut output = out_dir.as_os_str().to_owned();
    output.push("/source_#####");
    vec![
        "-b".into(),
        "--factory-startup".into(),
        "--disable-autoexec".into(),
        scene_file.into(),
        "--python-expr".into(),
        format!("{}{CURRENT_FRAME_ONLY}", python_expr(settings)).into(),
        "-o".into(),
        output,
        "-F".into(),
        format_name(settings.format).into(),
        "-x".into(),
        "1".into(),
        "-a".into(),
    ]
}

/// The image a `Saved: '<dir>/<name>.png'` line reports, if it is in `out_dir` and has the
/// job's format (anything else is ignored: the name comes from the renderer's output).
pub fn saved_file(line: &str, out_dir: &Path, format: ImageFormat) -> Option<PathBuf> {
    let rest = line.trim().strip_prefix("Saved:")?.trim();
    let path = rest
        .strip_prefix('\'')
        .and_then(|p| p.strip_suffix('\''))
        .unwrap_or(rest);
    let path = Path::new(path);
    if path.parent()? != out_dir {
        return None;
    }
    let (_, ext) = path.file_name()?.to_str()?.rsplit_once('.')?;
    if ImageFormat::from_extension(ext)? != format {
        return None;
    }
    Some(path.to_path_buf())
}

/// The frame a `Saved: '<dir>/frame_00007.png'` line reports, if the file is in `out_dir` and
/// named as we asked.
pub fn saved_frame(line: &str, out_dir: &Path, format: ImageFormat) -> Option<i64> {
    let path = saved_file(line, out_dir, format)?;
    let name = path.file_name()?.to_str()?;
    let (stem, _) = name.rsplit_once('.')?;
    let digits = stem.strip_prefix("frame_")?;
    if digits.is_empty()
        || !digits
            .trim_start_matches('-')
            .bytes()
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use idlefarm_protocol::Renderer;

    fn settings() -> RenderSettings {
        RenderSettings {
            renderer: Renderer::Blender,
            main_file: "shot.blend".into(),
            scene: Some("Shot 2".into()),
            frame_start: 1,
            frame_end: 20,
            frame_step: 2,
            fps: 24.0,
            resolution_x: 1920,
            resolution_y: 1080,
            percentage: 50,
            engine: Some("CYCLES".into()),
            format: ImageFormat::Jpeg,
            povray: None,
            sequence: None,
        }
    }

    #[test]
    fn args_follow_blenders_required_order() {
        let s = settings();
        let args = args(
            &s,
            Path::new("/cache/abc/shot.blend"),
            Path::new("/leases/7"),
            &[5, 7, 9],
        );
        let args: Vec<String> = args.into_iter().map(|a| a.into_string().unwrap()).collect();
        let expected = [
            "-b",
            "--factory-startup",
            "--disable-autoexec",
            "/cache/abc/shot.blend",
            "-S",
            "Shot 2",
            "--python-expr",
            &python_expr(&s),
            "-o",
            "/leases/7/frame_#####",
            "-F",
            "JPEG",
            "-x",
            "1",
            "-s",
            "5",
            "-e",
            "9",
            "-j",
            "2",
            "-a",
        ];
        assert_eq!(args, expected);
    }

    #[test]
    fn a_warm_blender_is_set_up_as_a_one_off_one_and_runs_our_driver_last() {
        let s = settings();
        let (file, out) = (Path::new("/c/shot.blend"), Path::new("/l/.warm-1"));
        let one_off: Vec<OsString> = args(&s, file, out, &[5, 7]);
        let warm = warm_args(&s, file, out, "print('driver')");
        // Everything but `-s 5 -e 7 -j 2 -a`, then the driver.
        assert_eq!(warm[..warm.len() - 2], one_off[..one_off.len() - 7]);
        assert_eq!(warm[warm.len() - 2..], ["--python-expr", "print('driver')"]);
        assert!(warm.contains(&OsString::from("--disable-autoexec")));
    }

    #[test]
    fn a_sequence_file_renders_its_own_current_frame() {
        let mut s = settings();
        s.scene = None;
        s.sequence = Some(vec!["a.blend".into(), "b.blend".into()]);
        let args: Vec<String> = sequence_args(&s, Path::new("/c/b.blend"), Path::new("/l/7"))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(
            &args[..5],
            [
                "-b",
                "--factory-startup",
                "--disable-autoexec",
                "/c/b.blend",
                "--python-expr"
            ]
        );
        assert!(args[5].starts_with(&python_expr(&s)));
        assert!(args[5].ends_with(
            "s.frame_start = s.frame_current\ns.frame_end = s.frame_current\ns.frame_step = 1\n"
        ));
        assert_eq!(
            &args[6..],
            ["-o", "/l/7/source_#####", "-F", "JPEG", "-x", "1", "-a"]
        );
        assert_eq!(
            saved_file(
                "Saved: '/l/7/source_00042.jpg'",
                Path::new("/l/7"),
                ImageFormat::Jpeg
            ),
            Some(PathBuf::from("/l/7/source_00042.jpg"))
        );
        assert_eq!(
            saved_file(
                "Saved: '/l/7/source_00042.png'",
                Path::new("/l/7"),
                ImageFormat::Jpeg
            ),
            None
        );
    }

    #[test]
    fn python_expr_sets_resolution_and_cycles_device() {
        let expr = python_expr(&settings());
        assert!(expr.contains("r.resolution_x = 1920\n"));
        assert!(expr.contains("r.resolution_y = 1080\n"));
        assert!(expr.contains("r.resolution_percentage = 50\n"));
        assert!(expr.contains("s.cycles.device = 'CPU'"));
    }

    #[test]
    fn saved_lines_map_to_frame_numbers() {
        let out = Path::new("/leases/7");
        let png = ImageFormat::Png;
        assert_eq!(
            saved_frame("Saved: '/leases/7/frame_00007.png'", out, png),
            Some(7)
        );
        assert_eq!(
            saved_frame("Saved: '/leases/7/frame_123456.png'", out, png),
            Some(123456)
        );
        assert_eq!(
            saved_frame("Saved: '/leases/7/frame_00003.jpg'", out, ImageFormat::Jpeg),
            Some(3)
        );
        assert_eq!(
            saved_frame("Saved: '/leases/7/frame_00007.jpg'", out, png),
            None
        );
        assert_eq!(
            saved_frame("Saved: '/elsewhere/frame_00007.png'", out, png),
            None
        );
        assert_eq!(
            saved_frame("Saved: '/leases/7/other_00007.png'", out, png),
            None
        );
        assert_eq!(saved_frame("Fra:7 Mem:9.40M | Saved", out, png), None);
        assert_eq!(
            saved_frame(" Time: 00:00.15 (Saving: 00:00.10)", out, png),
            None
        );
    }
}
