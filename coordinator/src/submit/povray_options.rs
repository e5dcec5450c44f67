//! The meaning of single POV-Ray ini options and switches: which ones the farm reads, which
//! ones it refuses, and whether a job's settings make sense together.
//!
//! Options the farm has no use for are accepted unread (POV-Ray gets them anyway); options
//! that name files are held to the job folder, because the agent runs the submitter's ini
//! as it is and POV-Ray would otherwise read or write wherever it names.

use super::frames::MAX_FRAME_NUMBER;
use super::povray_ini::PovIni;

/// Largest width or height accepted.
const MAX_DIMENSION: u32 = 16_384;

/// Where a `Library_Path` may point outside the job: POV-Ray's own include files.
const SYSTEM_LIBRARY: &str = "/usr/share/povray";

/// Keys that make POV-Ray run programs; a lab PC must never run a submitter's commands.
const SHELL_KEYS: [&str; 12] = [
    "pre_scene_command",
    "pre_scene_return",
    "post_scene_command",
    "post_scene_return",
    "pre_frame_command",
    "pre_frame_return",
    "post_frame_command",
    "post_frame_return",
    "user_abort_command",
    "user_abort_return",
    "fatal_error_command",
    "fatal_error_return",
];

/// Keys whose value is a file POV-Ray writes (or `true`/`false` for its default name).
const WRITTEN_FILE_KEYS: [&str; 8] = [
    "create_ini",
    "all_file",
    "debug_file",
    "fatal_file",
    "render_file",
    "statistic_file",
    "warning_file",
    "histogram_name",
];

/// Applies one `Key=Value` option.
pub(super) fn apply_key(ini: &mut PovIni, key: &str, value: &str) -> Result<(), String> {
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("\"{key}\" is not an option name"));
    }
    let lower = key.to_ascii_lowercase();
    if SHELL_KEYS.contains(&lower.as_str()) {
        return Err(format!(
            "{key} runs shell commands, which idlefarm does not allow; remove it"
        ));
    }
    // POV-Ray reads a number or switch up to the first space or comma.
    let word = value.split([' ', '\t', ',']).next().unwrap_or_default();
    match lower.as_str() {
        "initial_frame" => ini.initial_frame = frame(key, word)?,
        "final_frame" => ini.final_frame = frame(key, word)?,
        "subset_start_frame" => ini.subset_start_frame = Some(frame(key, word)?),
        "subset_end_frame" => ini.subset_end_frame = Some(frame(key, word)?),
        "initial_clock" => ini.initial_clock = clock(key, word)?,
        "final_clock" => ini.final_clock = clock(key, word)?,
        "cyclic_animation" => ini.cyclic = boolean(key, word)?,
        "width" => ini.width = dimension(key, word)?,
        "height" => ini.height = dimension(key, word)?,
        "antialias" => ini.antialias = boolean(key, word)?,
        "antialias_threshold" => ini.antialias_threshold = Some(threshold(key, word)?),
        "antialias_depth" => ini.antialias_depth = Some(depth(key, word)?),
        "input_file_name" => ini.input_file_name = Some(inside_job(key, value)?),
        "output_file_name" => ini.output_file_name = Some(inside_job(key, value)?),
        "include_ini" => {
            return Err(format!(
                "{key} reads another .ini file, which idlefarm does not follow; copy its options into this one"
            ));
        }
        "include_header" => {
            inside_job(key, value)?;
        }
        "library_path" => {
            for path in value.split(',').map(str::trim) {
                if !path.starts_with(SYSTEM_LIBRARY) {
                    inside_job(key, path)?;
                }
            }
        }
        k if WRITTEN_FILE_KEYS.contains(&k) && boolean(key, word).is_err() => {
            inside_job(key, value)?;
        }
        _ => {} // Declare, Display, Quality, Jitter, Sampling_Method, gamma, radiosity, ...
    }
    Ok(())
}

/// Applies one `+X…` / `-X…` switch; `quoted` is a quoted value written right after it.
/// Switches idlefarm has no use for are left to POV-Ray.
pub(super) fn apply_switch(
    ini: &mut PovIni,
    token: &str,
    quoted: Option<&str>,
) -> Result<(), String> {
    let on = token.starts_with('+');
    let body = &token[1..];
    if !body.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(format!(
            "\"{token}\" is not a switch; switches look like +W320 or -A"
        ));
    }
    let upper = body.to_ascii_uppercase();
    // Longer names first: +KFI before +KF, +KF before +K...
    let with_value = |prefix: &str| upper.starts_with(prefix).then(|| &body[prefix.len()..]);
    let name = |prefix: &str| format!("{}{prefix}", &token[..1]);
    // A file name may be quoted after the switch: +I"my scene.pov".
    let file = |v: &'_ str| quoted.map(str::to_string).unwrap_or_else(|| v.to_string());

    if let Some(v) = with_value("KFI") {
        ini.initial_frame = frame(&name("KFI"), v)?;
    } else if let Some(v) = with_value("KFF") {
        ini.final_frame = frame(&name("KFF"), v)?;
    } else if let Some(v) = with_value("KI") {
        ini.initial_clock = clock(&name("KI"), v)?;
    } else if let Some(v) = with_value("KC") {
        if !v.is_empty() {
            return Err(format!("{} takes no value, not \"{v}\"", name("KC")));
        }
        ini.cyclic = on;
    } else if let Some(v) = with_value("KF") {
        ini.final_clock = clock(&name("KF"), v)?;
    } else if let Some(v) = with_value("SF") {
        ini.subset_start_frame = Some(frame(&name("SF"), v)?);
    } else if let Some(v) = with_value("EF") {
        ini.subset_end_frame = Some(frame(&name("EF"), v)?);
    } else if let Some(v) = with_value("HI") {
        inside_job(&name("HI"), &file(v))?;
    } else if let Some(stream) = upper.get(..2).filter(|s| s.starts_with('G')) {
        // +GIfile writes an ini; +GAlog.txt and friends write POV-Ray's messages to a file.
        let path = file(body.get(2..).unwrap_or_default());
        if !path.is_empty() {
            inside_job(&name(stream), &path)?;
        }
    } else if let Some(v) = single_letter(&upper, body, 'W') {
        ini.width = dimension(&name("W"), v)?;
    } else if let Some(v) = single_letter(&upper, body, 'H') {
        ini.height = dimension(&name("H"), v)?;
    } else if let Some(v) = single_letter(&upper, body, 'R') {
        ini.antialias_depth = Some(depth(&name("R"), v)?);
    } else if let Some(v) = single_letter(&upper, body, 'A') {
        // `-A0.3` sets the threshold but leaves antialiasing off, as in POV-Ray.
        ini.antialias = on;
        if !v.is_empty() {
            ini.antialias_threshold = Some(threshold(&name("A"), v)?);
        }
    } else if let Some(v) = with_value("L") {
        let path = file(v);
        if !path.starts_with(SYSTEM_LIBRARY) {
            inside_job(&name("L"), &path)?;
        }
    } else if let Some(v) = with_value("I") {
        let path = file(v);
        if on && !path.is_empty() {
            ini.input_file_name = Some(inside_job(&name("I"), &path)?);
        }
    } else if let Some(v) = with_value("O") {
        let path = file(v);
        if on && !path.is_empty() {
            ini.output_file_name = Some(inside_job(&name("O"), &path)?);
        }
    }
    Ok(())
}

/// The value of a one-letter numeric switch like `+W320`, or `None` when the letters go on
/// (`+WT4` is the work-threads switch, not a width).
fn single_letter<'a>(upper: &str, body: &'a str, letter: char) -> Option<&'a str> {
    let rest = upper.strip_prefix(letter)?;
    if rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    Some(&body[1..])
}

/// A file name that stays inside the job folder: relative, without `..`, not in a home folder.
fn inside_job(key: &str, value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err(format!("{key} needs a file name"));
    }
    let normalized = value.replace('\\', "/");
    let escapes = normalized.starts_with('/')
        || normalized.starts_with('~')
        || normalized.as_bytes().get(1) == Some(&b':')
        || normalized.split('/').any(|part| part == "..");
    if escapes {
        return Err(format!(
            "{key} names \"{value}\", outside the job's folder; POV-Ray on the farm reads and writes only inside the job, so use a path relative to the scene"
        ));
    }
    Ok(value.to_string())
}

/// A frame number within the bounds the `frames` field has, so no frame count computed from
/// an ini can overflow.
fn frame(key: &str, value: &str) -> Result<i64, String> {
    let frame = value
        .parse::<i64>()
        .map_err(|_| format!("{key} must be a whole frame number, not \"{value}\""))?;
    if frame.unsigned_abs() > MAX_FRAME_NUMBER.unsigned_abs() {
        return Err(format!(
            "{key} {frame} is out of bounds; frames go from -{MAX_FRAME_NUMBER} to {MAX_FRAME_NUMBER}"
        ));
    }
    Ok(frame)
}

fn clock(key: &str, value: &str) -> Result<f64, String> {
    value
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("{key} must be a number, not \"{value}\""))
}

fn dimension(key: &str, value: &str) -> Result<u32, String> {
    let n = value
        .parse::<u32>()
        .map_err(|_| format!("{key} must be a whole number of pixels, not \"{value}\""))?;
    if n == 0 || n > MAX_DIMENSION {
        return Err(format!(
            "{key} must be between 1 and {MAX_DIMENSION} pixels, not {n}"
        ));
    }
    Ok(n)
}

fn boolean(key: &str, value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(format!("{key} must be on or off, not \"{value}\"")),
    }
}

fn threshold(key: &str, value: &str) -> Result<f64, String> {
    let v = clock(key, value)?;
    if v < 0.0 {
        return Err(format!("{key} must not be negative, not {value}"));
    }
    Ok(v)
}

fn depth(key: &str, value: &str) -> Result<u32, String> {
    match value.parse::<u32>() {
        Ok(n @ 1..=9) => Ok(n),
        _ => Err(format!(
            "{key} must be a whole number from 1 to 9, not \"{value}\""
        )),
    }
}

/// Checks that the settings make sense together.
pub(super) fn check(ini: &PovIni) -> Result<(), String> {
    if ini.final_frame < ini.initial_frame {
        return Err(format!(
            "Final_Frame {} is before Initial_Frame {}",
            ini.final_frame, ini.initial_frame
        ));
    }
    let (start, end) = ini.frames();
    if end < start {
        return Err(format!(
            "Subset_End_Frame {end} is before Subset_Start_Frame {start}"
        ));
    }
    if start < ini.initial_frame || end > ini.final_frame {
        return Err(format!(
            "the subset {start}-{end} (Subset_Start_Frame/Subset_End_Frame) is outside the animation's frames {}-{}",
            ini.initial_frame, ini.final_frame
        ));
    }
    Ok(())
}
