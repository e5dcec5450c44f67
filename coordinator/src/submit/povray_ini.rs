//! POV-Ray `.ini` files: read the way POV-Ray 3.7 reads them, for the few values a farm plans
//! a job with.
//!
//! The agent hands the submitter's ini to POV-Ray unchanged, so this module does not rebuild
//! it: it follows POV-Ray's own reading rules (case-insensitive keys, `Key=Value` with one
//! option per line, any number of `+X`/`-X` switches on a line and an option after them, `;`
//! and `#` comments, quoted values, `[Section]` labels that only count when chosen, bare scene
//! file names) and keeps the frames, subset, clock, cyclic mode and size. It refuses what a lab
//! PC must not run: shell-out commands, other inis pulled in, and paths out of the job folder.

use super::povray_options::{apply_key, apply_switch, check};

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
    /// `Cyclic_Animation` / `+KC` (default off).
    pub cyclic: bool,
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
    /// `Input_File_Name` / `+I` / a bare `scene.pov`: the scene file, as written.
    pub input_file_name: Option<String>,
    /// `Output_File_Name` / `+O`, as written (the agent chooses its own output names).
    pub output_file_name: Option<String>,
    /// `Subset_Start_Frame` / `+SF`.
    pub subset_start_frame: Option<i64>,
    /// `Subset_End_Frame` / `+EF`.
    pub subset_end_frame: Option<i64>,
    /// The `[Section]` read besides the options before the first label, if one was chosen.
    pub section: Option<String>,
    /// Every section label in the file, in order, so a submitter can be told what to choose.
    pub sections: Vec<String>,
    /// The file's text as submitted (without a byte order mark), which POV-Ray reads itself.
    pub source: String,
}

impl Default for PovIni {
    fn default() -> Self {
        PovIni {
            initial_frame: 1,
            final_frame: 1,
            initial_clock: 0.0,
            final_clock: 1.0,
            cyclic: false,
            width: 320,
            height: 240,
            antialias: false,
            antialias_threshold: None,
            antialias_depth: None,
            input_file_name: None,
            output_file_name: None,
            subset_start_frame: None,
            subset_end_frame: None,
            section: None,
            sections: Vec::new(),
            source: String::new(),
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

/// Parses an ini file as POV-Ray does without a chosen section. The error names the line.
pub fn parse_ini(text: &str) -> Result<PovIni, String> {
    parse_ini_section(text, None)
}

/// Parses an ini file as `povray file.ini[section]` reads it: the options before the first
/// label, then those of `section` (matched ignoring case). The error names the line.
pub fn parse_ini_section(text: &str, section: Option<&str>) -> Result<PovIni, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut ini = PovIni {
        section: section.map(str::to_string),
        source: text.to_string(),
        ..PovIni::default()
    };
    let mut reading = true;
    let mut found = section.is_none();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let mut rest = Line { text: line };
        loop {
            rest.skip_space();
            let Some(first) = rest.peek() else { break };
            let result = match first {
                '[' => {
                    let label = rest.section().map_err(|e| format!("line {number}: {e}"))?;
                    reading = section.is_some_and(|s| s.eq_ignore_ascii_case(&label));
                    found |= reading;
                    ini.sections.push(label);
                    continue;
                }
                _ if !reading => break,
                ';' | '#' => break,
                // Not POV-Ray's, but idlefarm has always read `//` lines as comments.
                '/' if rest.text.starts_with("//") => break,
                '+' | '-' => rest
                    .switch()
                    .and_then(|(token, value)| apply_switch(&mut ini, &token, value.as_deref())),
                _ => match rest.option() {
                    Ok(Some((key, value))) => {
                        // POV-Ray reads one option per line and skips what follows it.
                        let result = apply_key(&mut ini, &key, &value);
                        rest.text = "";
                        result
                    }
                    Ok(None) => rest.plain().and_then(|word| bare_word(&mut ini, &word)),
                    Err(e) => Err(e),
                },
            };
            result.map_err(|e| format!("line {number}: {e}"))?;
        }
    }
    if !found {
        let labels = ini.sections.join("], [");
        return Err(match labels.is_empty() {
            true => format!(
                "has no [{}] section (it has no sections at all); leave the section empty",
                section.unwrap_or_default()
            ),
            false => format!(
                "has no [{}] section; it has [{labels}]",
                section.unwrap_or_default()
            ),
        });
    }
    check(&ini)?;
    Ok(ini)
}

/// A word on its own: POV-Ray takes it as the scene file, or as another ini to read.
fn bare_word(ini: &mut PovIni, word: &str) -> Result<(), String> {
    let lower = word.to_ascii_lowercase();
    let name = lower.split('[').next().unwrap_or_default();
    if name.ends_with(".ini") {
        return Err(format!(
            "\"{word}\" reads another .ini file, which idlefarm does not follow; copy its options into this one"
        ));
    }
    if word.contains('=') || !word.contains('.') {
        return Err(format!(
            "\"{word}\" is not an option; write Key=Value, +Switches, [Section], a scene file name or a ; comment"
        ));
    }
    apply_key(ini, "Input_File_Name", word)
}

/// What is left of one line of the file, read the way POV-Ray's ini reader reads it.
struct Line<'a> {
    text: &'a str,
}

/// Characters that end an unquoted key, switch or word.
fn ends_token(c: char) -> bool {
    c.is_whitespace() || matches!(c, ',' | ';' | '#' | '"' | '\'' | '[' | ']' | '=')
}

impl<'a> Line<'a> {
    fn peek(&self) -> Option<char> {
        self.text.chars().next()
    }

    fn skip_space(&mut self) {
        self.text = self.text.trim_start_matches([' ', '\t', '\r']);
    }

    /// Takes text up to the first character `stop` matches.
    fn take_until(&mut self, stop: impl Fn(char) -> bool) -> &'a str {
        let end = self.text.find(stop).unwrap_or(self.text.len());
        let (taken, rest) = self.text.split_at(end);
        self.text = rest;
        taken
    }

    /// A quoted value after its opening quote, up to the matching quote.
    fn quoted(&mut self) -> Result<String, String> {
        let quote = self.peek().unwrap_or('"');
        self.text = &self.text[quote.len_utf8()..];
        let value = self.take_until(|c| c == quote);
        if self.text.is_empty() {
            return Err(format!("the value {quote}{value} has no closing {quote}"));
        }
        self.text = &self.text[quote.len_utf8()..];
        Ok(value.to_string())
    }

    /// `[Label]`, anywhere a token may start.
    fn section(&mut self) -> Result<String, String> {
        self.text = &self.text[1..];
        let label = self.take_until(|c| c == ']');
        if self.text.is_empty() {
            return Err(format!("section header \"[{label}\" has no closing ']'"));
        }
        self.text = &self.text[1..];
        Ok(label.to_string())
    }

    /// A `+X…`/`-X…` switch, with a quoted value right after it if there is one.
    fn switch(&mut self) -> Result<(String, Option<String>), String> {
        let sign = &self.text[..1];
        self.text = &self.text[1..];
        let body = self.take_until(ends_token);
        let value = match self.peek() {
            Some('"' | '\'') => Some(self.quoted()?),
            _ => None,
        };
        Ok((format!("{sign}{body}"), value))
    }

    /// `Key=Value`, or `None` (nothing taken) when the word is not followed by `=`.
    fn option(&mut self) -> Result<Option<(String, String)>, String> {
        let start = self.text;
        let key = self.take_until(ends_token);
        self.skip_space();
        if key.is_empty() || self.peek() != Some('=') {
            self.text = start;
            return Ok(None);
        }
        self.text = &self.text[1..];
        self.skip_space();
        let value = match self.peek() {
            Some('"' | '\'') => self.quoted()?,
            // Unquoted values run to a comment or the line's end, so paths may hold spaces.
            _ => self.take_until(|c| c == ';' || c == '#').trim().to_string(),
        };
        Ok(Some((key.to_string(), value)))
    }

    /// A bare word (a scene or ini file name), quoted or up to the next space.
    fn plain(&mut self) -> Result<String, String> {
        match self.peek() {
            Some('"' | '\'') => self.quoted(),
            _ => {
                let word = self.take_until(char::is_whitespace);
                Ok(word.to_string())
            }
        }
    }
}
