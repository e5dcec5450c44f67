//! POV-Ray `.ini` files: the animation and quality settings a `.pov` job starts from.
//!
//! Understands `Key=Value` lines and `+W64 +H36 +KFI1 …` switch lines, keeps what a render
//! farm needs (frames, clock, size, antialiasing, the main file's name) and ignores the other
//! well-formed options, except the shell-out commands, which are refused outright.

/// The settings of an ini file, with POV-Ray's defaults for what it leaves out.
#[derive(Debug, Clone, PartialEq)]
pub struct PovIni {
    /// `Initial_Frame` / `+KFI` (default 1).
    pub initial_frame: i64,
    /// `Final_Frame` / `+KFF` (default 1).
    pub final_frame: i64,
    /// `Initial_Clock` / `+KI` (default 0.0).
    pub initial_clock: f64,
    /// `Final_Clock` / `+KF` (default 1.0).
    pub final_clock: f64,
    /// `Width` / `+W` (default 320).
    pub width: u32,
    /// `Height` / `+H` (default 240).
    pub height: u32,
    /// `Antialias` / `+A` / `-A` (default off).
    pub antialias: bool,
    /// `Antialias_Threshold` / `+A0.3`.
    pub antialias_threshold: Option<f64>,
    /// `Antialias_Depth` / `+R3`.
    pub antialias_depth: Option<u32>,
    /// `Input_File_Name` / `+I`: the scene file, as written.
    pub input_file_name: Option<String>,
    /// `Output_File_Name` / `+O`, as written (the agent chooses its own output names).
    pub output_file_name: Option<String>,
    /// `Subset_Start_Frame` / `+SF`.
    pub subset_start_frame: Option<i64>,
    /// `Subset_End_Frame` / `+EF`.
    pub subset_end_frame: Option<i64>,
}

impl Default for PovIni {
    fn default() -> Self {
        PovIni {
            initial_frame: 1,
            final_frame: 1,
            initial_clock: 0.0,
            final_clock: 1.0,
            width: 320,
            height: 240,
            antialias: false,
            antialias_threshold: None,
            antialias_depth: None,
            input_file_name: None,
            output_file_name: None,
            subset_start_frame: None,
            subset_end_frame: None,
        }
    }
}

impl PovIni {
    /// The frames to render by default: the subset when one is set, else the whole animation.
    pub fn frames(&self) -> (i64, i64) {
        (
            self.subset_start_frame.unwrap_or(self.initial_frame),
            self.subset_end_frame.unwrap_or(self.final_frame),
        )
    }
}

use super::frames::MAX_FRAME_NUMBER;

/// Largest width or height accepted.
const MAX_DIMENSION: u32 = 16_384;

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

/// Parses an ini file. The error names the line and what is wrong with it.
pub fn parse_ini(text: &str) -> Result<PovIni, String> {
    let mut ini = PovIni::default();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let at_line = |e: String| format!("line {number}: {e}");
        let line = strip_comment(raw).trim();
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        if line.starts_with('[') {
            if line.ends_with(']') {
                continue; // sections are read as if their options were global
            }
            return Err(at_line(format!(
                "section header \"{line}\" has no closing ']'"
            )));
        }
        if line.starts_with('+') || line.starts_with('-') {
            for token in line.split_whitespace() {
                apply_switch(&mut ini, token).map_err(at_line)?;
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(at_line(format!(
                "\"{line}\" is not an option; write Key=Value, +Switches, [Section] or a ; comment"
            )));
        };
        apply_key(&mut ini, key.trim(), unquote(value.trim())).map_err(at_line)?;
    }
    check(&ini)?;
    Ok(ini)
}

/// Cuts a `;` comment off, unless the `;` is inside double quotes.
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

fn apply_key(ini: &mut PovIni, key: &str, value: &str) -> Result<(), String> {
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("\"{key}\" is not an option name"));
    }
    let lower = key.to_ascii_lowercase();
    if SHELL_KEYS.contains(&lower.as_str()) {
        return Err(format!(
            "{key} runs shell commands, which idlefarm does not allow; remove it"
        ));
    }
    match lower.as_str() {
        "initial_frame" => ini.initial_frame = frame(key, value)?,
        "final_frame" => ini.final_frame = frame(key, value)?,
        "subset_start_frame" => ini.subset_start_frame = Some(frame(key, value)?),
        "subset_end_frame" => ini.subset_end_frame = Some(frame(key, value)?),
        "initial_clock" => ini.initial_clock = clock(key, value)?,
        "final_clock" => ini.final_clock = clock(key, value)?,
        "width" => ini.width = dimension(key, value)?,
        "height" => ini.height = dimension(key, value)?,
        "antialias" => ini.antialias = boolean(key, value)?,
        "antialias_threshold" => ini.antialias_threshold = Some(threshold(key, value)?),
        "antialias_depth" => ini.antialias_depth = Some(depth(key, value)?),
        "input_file_name" => ini.input_file_name = Some(file_name(key, value)?),
        "output_file_name" => ini.output_file_name = Some(file_name(key, value)?),
        _ => {} // Display, Verbose, Output_File_Type, Library_Path, Quality, ...
    }
    Ok(())
}

/// Applies one `+X…` / `-X…` switch. Switches idlefarm has no use for are ignored.
fn apply_switch(ini: &mut PovIni, token: &str) -> Result<(), String> {
    let on = token.starts_with('+');
    let Some(body) = token.strip_prefix(['+', '-']) else {
        return Err(format!(
            "\"{token}\" is not a switch; switches look like +W320 (no space before the value)"
        ));
    };
    if !body.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(format!(
            "\"{token}\" is not a switch; switches look like +W320 or -A"
        ));
    }
    let upper = body.to_ascii_uppercase();
    // Longer names first: +KFI before +KF, +KF before +K...
    let with_value = |prefix: &str| upper.starts_with(prefix).then(|| &body[prefix.len()..]);
    let name = |prefix: &str| format!("{}{prefix}", &token[..1]);

    if let Some(v) = with_value("KFI") {
        ini.initial_frame = frame(&name("KFI"), v)?;
    } else if let Some(v) = with_value("KFF") {
        ini.final_frame = frame(&name("KFF"), v)?;
    } else if let Some(v) = with_value("KI") {
        ini.initial_clock = clock(&name("KI"), v)?;
    } else if let Some(v) = with_value("KF") {
        ini.final_clock = clock(&name("KF"), v)?;
    } else if let Some(v) = with_value("SF") {
        ini.subset_start_frame = Some(frame(&name("SF"), v)?);
    } else if let Some(v) = with_value("EF") {
        ini.subset_end_frame = Some(frame(&name("EF"), v)?);
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
    } else if let Some(v) = with_value("I") {
        if on && !v.is_empty() {
            ini.input_file_name = Some(file_name(&name("I"), unquote(v))?);
        }
    } else if let Some(v) = with_value("O")
        && on
        && !v.is_empty()
    {
        ini.output_file_name = Some(file_name(&name("O"), unquote(v))?);
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

fn file_name(key: &str, value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err(format!("{key} needs a file name"));
    }
    Ok(value.to_string())
}

/// Checks that the settings make sense together.
fn check(ini: &PovIni) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_gives_povray_defaults() {
        let ini = parse_ini("").unwrap();
        assert_eq!(ini, PovIni::default());
        assert_eq!((ini.width, ini.height), (320, 240));
        assert_eq!(ini.frames(), (1, 1));
        assert_eq!((ini.initial_clock, ini.final_clock), (0.0, 1.0));
        assert!(!ini.antialias);
    }

    #[test]
    fn reads_key_value_lines_case_insensitively() {
        let ini = parse_ini(
            "; an animation\n\
             [Animation]\n\
             initial_frame = 1\n\
             FINAL_FRAME=24 ; last one\n\
             Initial_Clock=0\n\
             Final_Clock = 2.5\n\
             Width=64\n\
             Height=36\n\
             Antialias=On\n\
             Antialias_Threshold=0.3\n\
             Antialias_Depth=3\n\
             Input_File_Name=\"scenes/ball.pov\"\n\
             Output_File_Name=out/ball\n\
             Display=Off\n\
             Output_File_Type=N\n\
             Library_Path=/usr/share/povray-3.7/include\n",
        )
        .unwrap();
        assert_eq!((ini.initial_frame, ini.final_frame), (1, 24));
        assert_eq!((ini.initial_clock, ini.final_clock), (0.0, 2.5));
        assert_eq!((ini.width, ini.height), (64, 36));
        assert!(ini.antialias);
        assert_eq!(ini.antialias_threshold, Some(0.3));
        assert_eq!(ini.antialias_depth, Some(3));
        assert_eq!(ini.input_file_name.as_deref(), Some("scenes/ball.pov"));
        assert_eq!(ini.output_file_name.as_deref(), Some("out/ball"));
    }

    #[test]
    fn reads_switch_lines() {
        let ini = parse_ini("+W64 +H36 +KFI1 +KFF24 +KI0 +KF1\n+A0.3 +R3 +Iball.pov -D +WT4 +Q9\n")
            .unwrap();
        assert_eq!((ini.width, ini.height), (64, 36));
        assert_eq!((ini.initial_frame, ini.final_frame), (1, 24));
        assert_eq!((ini.initial_clock, ini.final_clock), (0.0, 1.0));
        assert!(ini.antialias);
        assert_eq!(ini.antialias_threshold, Some(0.3));
        assert_eq!(ini.antialias_depth, Some(3));
        assert_eq!(ini.input_file_name.as_deref(), Some("ball.pov"));
    }

    #[test]
    fn minus_a_turns_antialiasing_off() {
        assert!(!parse_ini("Antialias=on\n-A\n").unwrap().antialias);
        let ini = parse_ini("+A\n-A0.2\n").unwrap();
        assert!(!ini.antialias);
        assert_eq!(ini.antialias_threshold, Some(0.2));
        for value in ["off", "false", "no", "0"] {
            assert!(!parse_ini(&format!("Antialias={value}")).unwrap().antialias);
        }
        for value in ["ON", "true", "Yes", "1"] {
            assert!(parse_ini(&format!("Antialias={value}")).unwrap().antialias);
        }
    }

    #[test]
    fn subset_frames_become_the_default_range() {
        let ini =
            parse_ini("Initial_Frame=1\nFinal_Frame=100\nSubset_Start_Frame=10\n+EF20").unwrap();
        assert_eq!(ini.frames(), (10, 20));
        let only_start = parse_ini("+KFI1 +KFF100 +SF90").unwrap();
        assert_eq!(only_start.frames(), (90, 100));
    }

    #[test]
    fn refuses_shell_commands() {
        for key in [
            "Pre_Scene_Command",
            "post_frame_command",
            "User_Abort_Command",
            "Fatal_Error_Return",
        ] {
            let err = parse_ini(&format!("Width=64\n{key}=rm -rf ~\n")).unwrap_err();
            assert!(err.starts_with("line 2:"), "{err}");
            assert!(
                err.contains("runs shell commands, which idlefarm does not allow"),
                "{err}"
            );
        }
    }

    #[test]
    fn names_the_line_of_a_bad_value() {
        let err = parse_ini("Width=64\nHeight=tall\n").unwrap_err();
        assert_eq!(
            err,
            "line 2: Height must be a whole number of pixels, not \"tall\""
        );
        let err = parse_ini("\n\nInitial_Frame=one").unwrap_err();
        assert!(
            err.starts_with("line 3: Initial_Frame must be a whole frame number"),
            "{err}"
        );
        assert!(
            parse_ini("Final_Clock=soon")
                .unwrap_err()
                .contains("must be a number")
        );
        assert!(parse_ini("Final_Clock=nan").is_err());
        assert!(
            parse_ini("Antialias=maybe")
                .unwrap_err()
                .contains("on or off")
        );
        assert!(
            parse_ini("Antialias_Depth=12")
                .unwrap_err()
                .contains("1 to 9")
        );
        assert!(
            parse_ini("+KFIx")
                .unwrap_err()
                .contains("+KFI must be a whole frame number")
        );
    }

    #[test]
    fn frame_numbers_stay_within_the_frames_fields_bounds() {
        let err = parse_ini("Initial_Frame=-9223372036854775808\nFinal_Frame=0").unwrap_err();
        assert_eq!(
            err,
            "line 1: Initial_Frame -9223372036854775808 is out of bounds; frames go from -1048574 to 1048574"
        );
        for text in [
            "+KFF1048575",
            "+KFI-1048575",
            "Subset_End_Frame=99999999999",
        ] {
            assert!(
                parse_ini(text).unwrap_err().contains("out of bounds"),
                "{text}"
            );
        }
        let edge = parse_ini("+KFI-1048574 +KFF1048574").unwrap();
        assert_eq!(edge.frames(), (-1_048_574, 1_048_574));
    }

    #[test]
    fn refuses_impossible_sizes() {
        assert!(
            parse_ini("Width=0")
                .unwrap_err()
                .contains("between 1 and 16384")
        );
        assert!(
            parse_ini("+H20000")
                .unwrap_err()
                .contains("between 1 and 16384")
        );
        assert!(
            parse_ini("+W")
                .unwrap_err()
                .contains("+W must be a whole number")
        );
        assert!(parse_ini("+W-5").is_err());
    }

    #[test]
    fn refuses_lines_that_are_not_options() {
        let err = parse_ini("Width=64\nrender this please\n").unwrap_err();
        assert!(
            err.starts_with("line 2: \"render this please\" is not an option"),
            "{err}"
        );
        assert!(parse_ini("[Broken").unwrap_err().contains("no closing ']'"));
        assert!(
            parse_ini("+W64 H36")
                .unwrap_err()
                .contains("\"H36\" is not a switch")
        );
        assert!(parse_ini("+5").unwrap_err().contains("not a switch"));
        assert!(
            parse_ini("My Key=1")
                .unwrap_err()
                .contains("not an option name")
        );
    }

    #[test]
    fn refuses_backwards_frames() {
        let err = parse_ini("Initial_Frame=10\nFinal_Frame=5").unwrap_err();
        assert_eq!(err, "Final_Frame 5 is before Initial_Frame 10");
        assert!(
            parse_ini("+KFI1 +KFF10 +SF8 +EF3")
                .unwrap_err()
                .contains("before Subset_Start_Frame")
        );
        assert!(
            parse_ini("+KFI1 +KFF10 +SF5 +EF30")
                .unwrap_err()
                .contains("outside")
        );
    }

    #[test]
    fn keeps_semicolons_inside_quotes_and_skips_a_byte_order_mark() {
        let ini =
            parse_ini("\u{feff}Output_File_Name=\"a;b\" ; comment\n// another comment\n").unwrap();
        assert_eq!(ini.output_file_name.as_deref(), Some("a;b"));
    }
}
