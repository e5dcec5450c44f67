//! The Submit pages. `/submit` sends a scene file to `POST /api/v1/uploads` with a progress bar
//! (`web/static/upload.js`: XMLHttpRequest, since fetch reports no upload progress). The
//! coordinator stages and inspects it, and `/submit/{id}` shows what it found as a form
//! pre-filled with the job's defaults; confirming it submits the staged upload by id to
//! `POST /api/v1/jobs`, the CLI's route, and errors come back next to the field they concern.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use idlefarm_protocol::{
    ImageFormat, Renderer, SceneSummary, UploadInspection, UploadKind, routes, submit_fields,
};

use super::chrome::{Chrome, Nav, PageCaller, PageResult, render};
use super::view::iso_time;
use crate::server::Coordinator;

/// Route of the page that uploads a scene.
pub const SUBMIT_PAGE: &str = "/submit";
/// Route of the page that shows a staged upload, to adjust and submit it.
pub const STAGED_PAGE: &str = "/submit/{id}";

/// The submission's form field names, as the templates use them.
struct Fields {
    file: &'static str,
    ini: &'static str,
    upload: &'static str,
    name: &'static str,
    scene: &'static str,
    frames: &'static str,
    fps: &'static str,
    format: &'static str,
    chunk: &'static str,
    priority: &'static str,
    tags: &'static str,
    main: &'static str,
    sequence: &'static str,
    ini_section: &'static str,
}

const FIELDS: Fields = Fields {
    file: submit_fields::FILE,
    ini: submit_fields::INI,
    upload: submit_fields::UPLOAD,
    name: submit_fields::NAME,
    scene: submit_fields::SCENE,
    frames: submit_fields::FRAMES,
    fps: submit_fields::FPS,
    format: submit_fields::FORMAT,
    chunk: submit_fields::CHUNK,
    priority: submit_fields::PRIORITY,
    tags: submit_fields::TAGS,
    main: submit_fields::MAIN,
    sequence: submit_fields::SEQUENCE,
    ini_section: submit_fields::INI_SECTION,
};

#[derive(Template)]
#[template(path = "submit.html")]
struct SubmitPage {
    chrome: Chrome,
    f: Fields,
    uploads_url: &'static str,
    staged_prefix: String,
}

/// `GET /submit`.
pub async fn page(PageCaller(caller): PageCaller) -> PageResult {
    render(&SubmitPage {
        chrome: Chrome::new(&caller, Nav::Submit),
        f: FIELDS,
        uploads_url: routes::UPLOADS,
        staged_prefix: format!("{SUBMIT_PAGE}/"),
    })
}

/// One scene of the file, as an option of the scene choice.
struct SceneChoice {
    name: String,
    frames: String,
    fps: String,
    size: String,
    output: String,
    engine: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "submit_staged.html")]
struct StagedPage {
    chrome: Chrome,
    f: Fields,
    jobs_url: &'static str,
    found: UploadInspection,
    /// A choice only when the file has several scenes.
    scenes: Vec<SceneChoice>,
    frames: String,
    fps: String,
    size: String,
    output: String,
    engine: String,
    renderer: &'static str,
    file_size: String,
    is_zip: bool,
    is_png: bool,
    /// The output format the scene file names, when Blender reported one.
    scene_format: String,
    /// When the staged upload expires, as an ISO 8601 UTC time for `<time>`.
    expires: String,
}

#[derive(Template)]
#[template(path = "submit_gone.html")]
struct GonePage {
    chrome: Chrome,
    message: String,
    submit_page: &'static str,
}

/// `GET /submit/{id}`.
pub async fn staged(
    State(coord): State<Arc<Coordinator>>,
    PageCaller(caller): PageCaller,
    Path(id): Path<String>,
) -> PageResult {
    let chrome = Chrome::new(&caller, Nav::Submit);
    let found = match coord.staged_upload(&caller, &id).await {
        Ok(found) => found,
        Err(e) if e.status == StatusCode::NOT_FOUND => {
            let page = GonePage {
                chrome,
                message: e.message,
                submit_page: SUBMIT_PAGE,
            };
            let html = render(&page)?;
            return Ok((StatusCode::NOT_FOUND, html).into_response());
        }
        Err(e) => return Err(e.into()),
    };
    render(&staged_page(chrome, found))
}

fn staged_page(chrome: Chrome, found: UploadInspection) -> StagedPage {
    let s = &found.settings;
    let active = found
        .scenes
        .iter()
        .find(|scene| s.scene.as_deref() == Some(scene.name.as_str()));
    let scenes = if found.scenes.len() > 1 {
        found
            .scenes
            .iter()
            .map(|scene| scene_choice(scene, s.scene.as_deref()))
            .collect()
    } else {
        Vec::new()
    };
    let (width, height) = s.frame_size();
    StagedPage {
        chrome,
        f: FIELDS,
        jobs_url: routes::JOBS,
        scenes,
        frames: frames_text(s.frame_start, s.frame_end, s.frame_step),
        fps: fps_text(s.fps),
        size: size_text(s.resolution_x, s.resolution_y, s.percentage),
        output: format!("{width} × {height}"),
        engine: s.engine.clone().unwrap_or_else(|| "POV-Ray".into()),
        renderer: match s.renderer {
            Renderer::Blender => "Blender",
            Renderer::Povray => "POV-Ray",
        },
        file_size: bytes_text(found.size),
        is_zip: found.kind == UploadKind::Zip,
        is_png: s.format == ImageFormat::Png,
        scene_format: active.map(|a| a.file_format.clone()).unwrap_or_default(),
        expires: iso_time(found.expires_at),
        found,
    }
}

fn scene_choice(scene: &SceneSummary, chosen: Option<&str>) -> SceneChoice {
    let scale = |v: u32| (u64::from(v) * u64::from(scene.percentage) / 100).max(1);
    SceneChoice {
        output: format!(
            "{} × {}",
            scale(scene.resolution_x),
            scale(scene.resolution_y)
        ),
        name: scene.name.clone(),
        frames: frames_text(scene.frame_start, scene.frame_end, scene.frame_step.max(1)),
        fps: fps_text(scene.fps),
        size: size_text(scene.resolution_x, scene.resolution_y, scene.percentage),
        engine: scene.engine.clone(),
        selected: chosen == Some(scene.name.as_str()),
    }
}

/// A frame range as the `frames` field takes it: `1-250`, or `1-250:2` with a step.
fn frames_text(start: i64, end: i64, step: i64) -> String {
    if step > 1 {
        format!("{start}-{end}:{step}")
    } else {
        format!("{start}-{end}")
    }
}

/// A frame rate without needless decimals: `24`, `29.97`.
fn fps_text(fps: f64) -> String {
    let text = format!("{fps:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A resolution with its percentage: `1920 × 1080 at 50 %`.
fn size_text(x: u32, y: u32, percentage: u32) -> String {
    format!("{x} × {y} at {percentage} %")
}

/// A byte count for people: `512 B`, `1.5 MB`.
fn bytes_text(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use idlefarm_protocol::RenderSettings;

    use super::*;

    fn scene(name: &str, end: i64, percentage: u32) -> SceneSummary {
        SceneSummary {
            name: name.into(),
            frame_start: 1,
            frame_end: end,
            frame_step: 1,
            fps: 24.0,
            resolution_x: 1920,
            resolution_y: 1080,
            percentage,
            engine: "CYCLES".into(),
            file_format: "OPEN_EXR".into(),
        }
    }

    fn inspection(scenes: Vec<SceneSummary>) -> UploadInspection {
        UploadInspection {
            id: "ab".repeat(32),
            file_name: "<b>shot</b>.blend".into(),
            ini_name: None,
            size: 2_000_000,
            kind: UploadKind::Blend,
            renderer: Renderer::Blender,
            active_scene: Some("Main".into()),
            scenes,
            name: "<b>shot</b>.blend".into(),
            settings: RenderSettings {
                renderer: Renderer::Blender,
                main_file: "shot.blend".into(),
                scene: Some("Main".into()),
                frame_start: 1,
                frame_end: 250,
                frame_step: 2,
                fps: 24.0,
                resolution_x: 1920,
                resolution_y: 1080,
                percentage: 50,
                engine: Some("CYCLES".into()),
                format: ImageFormat::Png,
                povray: None,
                sequence: None,
            },
            warnings: vec!["missing external file: //<tex>.png".into()],
            expires_at: 1_795_305_600,
        }
    }

    #[test]
    fn several_scenes_are_a_choice_carrying_each_scenes_defaults() {
        let page = staged_page(
            Chrome::anonymous(),
            inspection(vec![
                scene("Main", 250, 50),
                scene("<script>x</script>", 10, 100),
            ]),
        );
        let html = page.render().unwrap();
        assert!(html.contains(r#"name="frames" value="1-250:2""#), "{html}");
        assert!(html.contains(r#"data-frames="1-10""#));
        assert!(html.contains(r#"data-output="960 × 540""#));
        assert!(html.contains("1920 × 1080 at 50 %"));
        assert!(html.contains(r#"<option value="Main""#));
        assert!(html.contains(" selected>Main</option>"));
        // Names from the file are text, never markup.
        assert!(!html.contains("<script>x") && !html.contains("<b>shot"));
        assert!(html.contains("&lt;b&gt;shot") || html.contains("&#60;b&#62;shot"));
        assert!(html.contains(r#"<p class="warning">missing external file: //&"#));
        assert!(!html.contains("<tex>"));
        assert!(html.contains(r#"datetime="2026-11-22T00:00:00Z""#));
        assert!(
            !html.contains(r#"name="main""#),
            "no zip fields for a .blend"
        );

        let one = staged_page(
            Chrome::anonymous(),
            inspection(vec![scene("Main", 250, 50)]),
        );
        assert!(!one.render().unwrap().contains("data-scene-choice"));
    }

    #[test]
    fn numbers_read_as_the_fields_take_them() {
        assert_eq!(frames_text(1, 250, 1), "1-250");
        assert_eq!(frames_text(1, 250, 3), "1-250:3");
        assert_eq!(fps_text(24.0), "24");
        assert_eq!(fps_text(30000.0 / 1001.0), "29.97");
        assert_eq!(fps_text(0.5), "0.5");
        assert_eq!(bytes_text(999), "999 B");
        assert_eq!(bytes_text(1_500_000), "1.5 MB");
        assert_eq!(bytes_text(300 << 20), "314.6 MB");
        assert_eq!(iso_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_time(951_782_400 + 3661), "2000-02-29T01:01:01Z");
        assert_eq!(iso_time(1_795_305_600), "2026-11-22T00:00:00Z");
    }
}
