//! The submission form's text fields, checked before any file is looked at.

use idlefarm_protocol::ImageFormat;
use idlefarm_protocol::submit_fields::{CHUNK, FORMAT, FPS, FRAMES, INI_SECTION, SEQUENCE};

use super::SubmitFields;
use super::frames::FrameRange;
use crate::error::ApiError;

/// Largest fixed chunk size accepted.
const MAX_CHUNK: u32 = 100_000;

/// Lowest frame rate accepted: ffmpeg cannot assemble a video much slower than this.
const MIN_FPS: f64 = 0.01;

/// Highest frame rate accepted.
const MAX_FPS: f64 = 1000.0;

/// Longest stored input file name, in characters. Agents create files named after it inside
/// their cache, and POV-Ray 3.7 aborts ("stack smashing detected") on an input path longer than
/// about 200 characters, so the name leaves room for the agent's folders in front of it.
pub(super) const MAX_FILE_NAME_CHARS: usize = 64;

/// Longest upload name quoted in messages and used as a job name, in characters.
pub(super) const MAX_DISPLAY_CHARS: usize = 200;

/// Characters kept from the end of a shortened name, so its extension survives.
const KEPT_TAIL_CHARS: usize = 24;

/// The submitter's overrides of what the scene file says, parsed and checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Overrides {
    pub frames: Option<FrameRange>,
    pub chunk: Option<u32>,
    pub scene: Option<String>,
    pub main: Option<String>,
    pub fps: Option<f64>,
    pub format: Option<ImageFormat>,
    /// Render a zip's scene files as a sequence, one file per frame.
    pub sequence: bool,
    /// The `[Section]` of the POV-Ray ini to read.
    pub ini_section: Option<String>,
}

impl Overrides {
    /// Parses the fields; empty fields count as absent. Bad values are 400s.
    pub fn parse(fields: &SubmitFields) -> Result<Overrides, ApiError> {
        let frames = given(&fields.frames)
            .map(FrameRange::parse)
            .transpose()
            .map_err(|e| ApiError::bad_request(e).on_field(FRAMES))?;
        Ok(Overrides {
            frames,
            chunk: given(&fields.chunk)
                .map(parse_chunk)
                .transpose()
                .map_err(|e| e.on_field(CHUNK))?
                .flatten(),
            scene: given(&fields.scene).map(str::to_string),
            main: given(&fields.main).map(normalize_main),
            fps: given(&fields.fps)
                .map(parse_fps)
                .transpose()
                .map_err(|e| e.on_field(FPS))?,
            format: given(&fields.format)
                .map(parse_format)
                .transpose()
                .map_err(|e| e.on_field(FORMAT))?,
            sequence: given(&fields.sequence)
                .map(parse_switch)
                .transpose()
                .map_err(|e| e.on_field(SEQUENCE))?
                .unwrap_or(false),
            ini_section: given(&fields.ini_section)
                .map(parse_ini_section)
                .transpose()
                .map_err(|e| e.on_field(INI_SECTION))?,
        })
    }
}

/// A field's trimmed text, or `None` when it is absent or blank.
fn given(field: &Option<String>) -> Option<&str> {
    field.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn parse_chunk(text: &str) -> Result<Option<u32>, ApiError> {
    if text.eq_ignore_ascii_case("auto") {
        return Ok(None);
    }
    match text.parse::<u32>() {
        Ok(n @ 1..=MAX_CHUNK) => Ok(Some(n)),
        _ => Err(ApiError::bad_request(format!(
            "chunk \"{text}\" is not a chunk size; use a whole number of frames from 1 to {MAX_CHUNK}, or auto"
        ))),
    }
}

fn parse_fps(text: &str) -> Result<f64, ApiError> {
    match text.parse::<f64>() {
        Ok(fps) if fps_in_bounds(fps) => Ok(fps),
        _ => Err(ApiError::bad_request(format!(
            "fps \"{text}\" is not a frame rate idlefarm can make a video with; {FPS_BOUNDS}"
        ))),
    }
}

/// The accepted frame rates, for messages.
pub(super) const FPS_BOUNDS: &str = "use a number from 0.01 to 1000, e.g. 24 or 29.97";

/// Whether a frame rate, from the form or from a scene, is one a video can be assembled at.
pub(super) fn fps_in_bounds(fps: f64) -> bool {
    (MIN_FPS..=MAX_FPS).contains(&fps)
}

fn parse_format(text: &str) -> Result<ImageFormat, ApiError> {
    match text.to_ascii_lowercase().as_str() {
        "png" => Ok(ImageFormat::Png),
        "jpeg" | "jpg" => Ok(ImageFormat::Jpeg),
        _ => Err(ApiError::bad_request(format!(
            "format \"{text}\" is not supported; use png or jpeg"
        ))),
    }
}

/// A yes/no field such as `sequence`: `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`.
fn parse_switch(text: &str) -> Result<bool, ApiError> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "sequence \"{text}\" is not a yes or no; use 1 or true to render one scene file per frame"
        ))),
    }
}

/// Longest `ini_section` accepted, in characters.
const MAX_SECTION_CHARS: usize = 100;

/// The `ini_section` field: a label POV-Ray can be given as `file.ini[label]`.
fn parse_ini_section(text: &str) -> Result<String, ApiError> {
    let unusable = text.chars().count() > MAX_SECTION_CHARS
        || text.chars().any(|c| c.is_control() || c == '[' || c == ']');
    if unusable {
        return Err(ApiError::bad_request(format!(
            "ini_section \"{}\" is not a section name; give the label between [ and ] in the .ini, at most {MAX_SECTION_CHARS} characters",
            text.chars()
                .take(MAX_SECTION_CHARS)
                .collect::<String>()
                .escape_default()
        )));
    }
    Ok(text.to_string())
}

/// The `main` field as a zip path: `/`-separated, without a leading `./` or `/`.
fn normalize_main(text: &str) -> String {
    text.replace('\\', "/")
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// The last component of a file name as a browser sent it (some send a whole Windows path).
fn base_name(file_name: &str) -> &str {
    file_name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(file_name)
        .trim()
}

/// The upload's base name as shown to people: at most [`MAX_DISPLAY_CHARS`], control
/// characters replaced, a long middle cut out so the extension still shows.
pub(crate) fn display_name(file_name: &str) -> String {
    let clean: String = base_name(file_name)
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    shorten(&clean, MAX_DISPLAY_CHARS)
}

/// `text` itself when it has at most `max` characters, else its start and its last
/// [`KEPT_TAIL_CHARS`] characters joined by `…`, `max` characters in all.
fn shorten(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    let tail = KEPT_TAIL_CHARS.min(max / 2);
    let head = max.saturating_sub(tail + 1);
    let mut out: String = text.chars().take(head).collect();
    out.push('…');
    out.extend(text.chars().skip(count - tail));
    out
}

/// A file name safe to store and to hand to a renderer: the base name with only
/// `[A-Za-z0-9._-]` kept (others become `_`), never starting with `-` or `.`, and at most
/// [`MAX_FILE_NAME_CHARS`] long with its extension kept.
pub(super) fn sanitize_file_name(file_name: &str) -> String {
    let mut name: String = base_name(file_name)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with(['-', '.']) {
        name.replace_range(..1, "_");
    }
    if !name.chars().any(|c| c.is_ascii_alphanumeric()) {
        return "input".into();
    }
    if name.len() > MAX_FILE_NAME_CHARS {
        // Only ASCII is left, so bytes are characters; a short extension is kept.
        let ext = name
            .rsplit_once('.')
            .map(|(_, ext)| ext)
            .filter(|ext| ext.len() <= 16)
            .unwrap_or("");
        let keep = MAX_FILE_NAME_CHARS - ext.len() - usize::from(!ext.is_empty());
        name = match ext {
            "" => name[..MAX_FILE_NAME_CHARS].to_string(),
            ext => format!("{}.{ext}", &name[..keep]),
        };
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(f: impl FnOnce(&mut SubmitFields)) -> SubmitFields {
        let mut fields = SubmitFields::default();
        f(&mut fields);
        fields
    }

    #[test]
    fn blank_fields_are_absent() {
        let all_blank = SubmitFields {
            frames: Some(" ".into()),
            chunk: Some("".into()),
            scene: Some("\t".into()),
            main: Some("".into()),
            name: Some(" ".into()),
            fps: Some("".into()),
            format: Some(" ".into()),
            sequence: Some(" ".into()),
            ini_section: Some(" ".into()),
        };
        assert_eq!(Overrides::parse(&all_blank).unwrap(), Overrides::default());
    }

    #[test]
    fn ini_section_is_a_label_povray_can_be_given() {
        let section = |v: &str| {
            Overrides::parse(&fields(|f| f.ini_section = Some(v.into()))).map(|o| o.ini_section)
        };
        assert_eq!(section(" Small ").unwrap().as_deref(), Some("Small"));
        assert_eq!(
            section("640x480, AA").unwrap().as_deref(),
            Some("640x480, AA")
        );
        for bad in ["a]b", "[Small]", "tab\there", &"x".repeat(101)] {
            let err = section(bad).unwrap_err();
            assert_eq!(err.status, 400, "{bad}");
            assert!(
                err.message.contains("is not a section name"),
                "{}",
                err.message
            );
            assert_eq!(err.field, Some(INI_SECTION));
        }
    }

    #[test]
    fn chunk_is_auto_or_a_positive_whole_number() {
        let chunk =
            |v: &str| Overrides::parse(&fields(|f| f.chunk = Some(v.into()))).map(|o| o.chunk);
        assert_eq!(chunk("auto").unwrap(), None);
        assert_eq!(chunk("AUTO").unwrap(), None);
        assert_eq!(chunk(" 8 ").unwrap(), Some(8));
        assert_eq!(chunk("100000").unwrap(), Some(100_000));
        for bad in ["0", "-3", "1.5", "100001", "lots"] {
            let err = chunk(bad).unwrap_err();
            assert_eq!(err.status, 400, "{bad}");
            assert!(err.message.contains("or auto"), "{}", err.message);
        }
    }

    #[test]
    fn fps_is_a_number_from_a_hundredth_to_1000() {
        let fps = |v: &str| Overrides::parse(&fields(|f| f.fps = Some(v.into()))).map(|o| o.fps);
        assert_eq!(fps("29.97").unwrap(), Some(29.97));
        assert_eq!(fps("1000").unwrap(), Some(1000.0));
        assert_eq!(fps("0.01").unwrap(), Some(0.01));
        for bad in ["0", "-24", "1000.5", "inf", "NaN", "fast", "1e-7", "0.0099"] {
            let err = fps(bad).unwrap_err();
            assert_eq!(err.status, 400, "{bad}");
            assert!(err.message.contains("from 0.01 to 1000"), "{}", err.message);
        }
    }

    #[test]
    fn format_is_png_or_jpeg() {
        let format =
            |v: &str| Overrides::parse(&fields(|f| f.format = Some(v.into()))).map(|o| o.format);
        assert_eq!(format("PNG").unwrap(), Some(ImageFormat::Png));
        assert_eq!(format("jpg").unwrap(), Some(ImageFormat::Jpeg));
        assert_eq!(format("jpeg").unwrap(), Some(ImageFormat::Jpeg));
        let err = format("exr").unwrap_err();
        assert_eq!(
            err.message,
            "format \"exr\" is not supported; use png or jpeg"
        );
    }

    #[test]
    fn sequence_is_a_yes_or_no() {
        let sequence = |v: &str| {
            Overrides::parse(&fields(|f| f.sequence = Some(v.into()))).map(|o| o.sequence)
        };
        assert!(sequence("1").unwrap());
        assert!(sequence("TRUE").unwrap());
        assert!(!sequence("0").unwrap());
        assert!(!sequence("false").unwrap());
        assert!(!Overrides::parse(&SubmitFields::default()).unwrap().sequence);
        assert_eq!(sequence("maybe").unwrap_err().status, 400);
    }

    #[test]
    fn bad_frames_are_a_bad_request() {
        let err = Overrides::parse(&fields(|f| f.frames = Some("1 to 5".into()))).unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.message.contains("START-END"), "{}", err.message);
    }

    #[test]
    fn main_is_a_clean_zip_path() {
        let main = |v: &str| {
            Overrides::parse(&fields(|f| f.main = Some(v.into())))
                .unwrap()
                .main
        };
        assert_eq!(
            main("./scenes//shot.blend").as_deref(),
            Some("scenes/shot.blend")
        );
        assert_eq!(
            main("scenes\\shot.blend").as_deref(),
            Some("scenes/shot.blend")
        );
    }

    #[test]
    fn file_names_are_sanitized() {
        assert_eq!(
            sanitize_file_name("my scene (v2).blend"),
            "my_scene__v2_.blend"
        );
        assert_eq!(
            sanitize_file_name("C:\\Users\\ann\\shot.blend"),
            "shot.blend"
        );
        assert_eq!(sanitize_file_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_file_name("-rf.pov"), "_rf.pov");
        assert_eq!(sanitize_file_name(".hidden.zip"), "_hidden.zip");
        assert_eq!(sanitize_file_name("ÄÖÜ.blend"), "___.blend");
        assert_eq!(sanitize_file_name("€"), "input");
        assert_eq!(sanitize_file_name(".."), "input");
        assert_eq!(sanitize_file_name(""), "input");
    }

    #[test]
    fn long_file_names_are_cut_and_keep_their_extension() {
        let long = format!("{}.pov", "a".repeat(10_000));
        let name = sanitize_file_name(&long);
        assert_eq!(name.len(), MAX_FILE_NAME_CHARS);
        assert!(name.ends_with("aaa.pov"), "{name}");
        let no_ext = sanitize_file_name(&"b".repeat(500));
        assert_eq!(no_ext, "b".repeat(MAX_FILE_NAME_CHARS));
        let odd_ext = sanitize_file_name(&format!("a.{}", "c".repeat(300)));
        assert_eq!(odd_ext.len(), MAX_FILE_NAME_CHARS);

        let shown = display_name(&format!("{}é\n.pov", "a".repeat(10_000)));
        assert_eq!(shown.chars().count(), MAX_DISPLAY_CHARS);
        assert!(shown.ends_with("aé_.pov"), "{shown}");
        assert_eq!(display_name("dir/x\ty.blend"), "x_y.blend");
    }
}
