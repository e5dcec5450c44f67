//! Zip projects: a scene together with the textures, includes and ini files it needs.
//!
//! The archive is checked entry by entry ([`idlefarm_archive::list`]), then extracted into the
//! scratch folder (which also measures its real unpacked size), and the main scene file is
//! chosen: the `main` field, else the only candidate, else the submitter is asked to say. With
//! the `sequence` field every scene file becomes one frame instead ([`super::sequence`]).

use std::path::{Path, PathBuf};

use axum::http::StatusCode;
use idlefarm_archive::{ArchiveError, Limits};
use idlefarm_protocol::RenderSettings;
use idlefarm_protocol::submit_fields::{MAIN, SEQUENCE};

use super::blend::Inspection;
use super::fields::Overrides;
use super::povray_ini::PovIni;
use super::{Tools, blend, pov, sequence};
use crate::error::ApiError;

/// Names listed in a message before "and N more".
const LISTED_NAMES: usize = 10;

/// Checks, extracts and inspects a zip project. `uploaded_ini` is an `.ini` uploaded beside
/// the zip, which takes precedence over the zip's own. Blender's report on the main `.blend`
/// comes back too (none for POV-Ray or a sequence).
pub(super) async fn prepare(
    zip: &Path,
    display: &str,
    uploaded_ini: Option<(&PovIni, &str)>,
    scratch: &Path,
    tools: &Tools,
    overrides: &Overrides,
) -> Result<(RenderSettings, Vec<String>, Option<Inspection>), ApiError> {
    let limits = Limits {
        max_total_bytes: tools.max_unpacked_bytes,
        ..Limits::default()
    };
    let entries = {
        let zip = zip.to_path_buf();
        tokio::task::spawn_blocking(move || idlefarm_archive::list(&zip, &limits))
            .await
            .map_err(ApiError::internal)?
            .map_err(|e| archive_error(display, e))?
    };
    let files: Vec<&str> = entries
        .iter()
        .filter(|e| !e.is_dir)
        .map(|e| e.path.as_str())
        .collect();
    let blends = with_extension(&files, "blend");
    let povs = with_extension(&files, "pov");
    if overrides.sequence && overrides.main.is_some() {
        return Err(ApiError::bad_request(
            "give either `main` (one scene's animation) or `sequence` (one scene file per frame), not both",
        )
        .on_field(SEQUENCE));
    }

    if !blends.is_empty() && overrides.sequence {
        let files = sequence::in_natural_order(&blends);
        let mut warnings = Vec::new();
        if uploaded_ini.is_some() {
            warnings.push("the .ini file was ignored: it only applies to POV-Ray scenes".into());
        }
        if overrides.scene.is_some() {
            warnings.push(
                "the scene field was ignored: a sequence renders each file's active scene".into(),
            );
        }
        let project = extract(zip, display, scratch, limits).await?;
        for file in &files {
            blend::check_magic(&project.join(file), file).await?;
        }
        // The first file sets the size, engine, fps and format every frame is rendered with.
        let first = files.first().cloned().unwrap_or_default();
        let inspection = blend::inspect(tools, &project.join(&first), &first, scratch).await?;
        let plain = Overrides {
            frames: None,
            scene: None,
            ..overrides.clone()
        };
        let (settings, more) =
            blend::settings(&inspection, &first, first.clone(), &plain, Some(&project))?;
        warnings.extend(more);
        return Ok((
            sequence::blender(settings, files, overrides)?,
            warnings,
            None,
        ));
    }
    if !blends.is_empty() {
        // Chosen before extracting, so an ambiguous project is refused at once.
        let main = choose_main(&blends, overrides.main.as_deref(), display, "blend")?;
        let mut warnings = Vec::new();
        if uploaded_ini.is_some() {
            warnings.push("the .ini file was ignored: it only applies to POV-Ray scenes".into());
        }
        let project = extract(zip, display, scratch, limits).await?;
        let main_path = project.join(&main);
        blend::check_magic(&main_path, &main).await?;
        let inspection = blend::inspect(tools, &main_path, &main, scratch).await?;
        let (settings, more) =
            blend::settings(&inspection, &main, main.clone(), overrides, Some(&project))?;
        warnings.extend(more);
        return Ok((settings, warnings, Some(inspection)));
    }
    if povs.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{display} holds no .blend or .pov file; put the scene file in the zip"
        )));
    }

    let project = extract(zip, display, scratch, limits).await?;
    let inis = with_extension(&files, "ini");
    let section = overrides.ini_section.as_deref();
    let mut warnings = Vec::new();
    if overrides.sequence {
        let files = sequence::in_natural_order(&povs);
        for file in &files {
            pov::check_text(&project.join(file), file).await?;
        }
        let ini = match (uploaded_ini, inis.as_slice()) {
            (Some((ini, name)), _) => Some((ini.clone(), name.to_string())),
            (None, [only]) => Some((
                pov::read_ini(&project.join(only), only, section).await?,
                only.to_string(),
            )),
            (None, []) => None,
            (None, _) => {
                warnings.push(format!(
                    "{display} holds several .ini files; POV-Ray's defaults were used (upload the one that applies as `ini`)"
                ));
                None
            }
        };
        let ini = ini.as_ref().map(|(ini, name)| (ini, name.as_str()));
        let (settings, more) = sequence::povray(files, ini, overrides)?;
        warnings.extend(more);
        return Ok((settings, warnings, None));
    }
    // An ini that is the only one in the zip may name the main file.
    let only_ini = match (&uploaded_ini, inis.as_slice()) {
        (None, [only]) => Some((
            pov::read_ini(&project.join(only), only, section).await?,
            *only,
        )),
        _ => None,
    };
    let main = match (
        &overrides.main,
        uploaded_ini.or(only_ini.as_ref().map(|(i, p)| (i, *p))),
    ) {
        (None, Some((ini, ini_name))) if ini.input_file_name.is_some() => {
            let named = ini.input_file_name.as_deref().unwrap_or_default();
            let ini_dir = only_ini.as_ref().map(|(_, path)| parent(path));
            resolve_input_file(named, ini_dir, &povs).ok_or_else(|| {
                ApiError::unprocessable(format!(
                    "{ini_name} names Input_File_Name={named}, which is not a .pov file in {display} (it has: {})",
                    name_list(&povs)
                ))
            })?
        }
        (main, _) => choose_main(&povs, main.as_deref(), display, "pov")?,
    };
    pov::check_text(&project.join(&main), &main).await?;

    let ini = match (uploaded_ini, only_ini) {
        (Some((ini, name)), _) => Some((ini.clone(), name.to_string())),
        (None, Some((ini, path))) => Some((ini, path.to_string())),
        (None, None) => match ini_beside(&inis, &main) {
            Some(path) => Some((
                pov::read_ini(&project.join(path), path, section).await?,
                path.to_string(),
            )),
            None => {
                if !inis.is_empty() {
                    warnings.push(format!(
                        "{display} holds several .ini files and none is named like {main}; POV-Ray's defaults were used"
                    ));
                }
                None
            }
        },
    };
    let settings = pov::settings(
        main,
        ini.as_ref().map(|(ini, name)| (ini, name.as_str())),
        overrides,
    )?;
    Ok((settings, warnings, None))
}

/// Extracts the checked zip into `scratch/project`.
async fn extract(
    zip: &Path,
    display: &str,
    scratch: &Path,
    limits: Limits,
) -> Result<PathBuf, ApiError> {
    let project = scratch.join("project");
    tokio::fs::create_dir(&project).await?;
    let (zip, dest) = (zip.to_path_buf(), project.clone());
    tokio::task::spawn_blocking(move || idlefarm_archive::extract(&zip, &dest, &limits))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| archive_error(display, e))?;
    Ok(project)
}

/// A refused archive is the submitter's to fix (400, or 413 when it unpacks too large); a
/// failure to write the scratch folder is ours: logged with its paths, answered without them.
fn archive_error(display: &str, err: ArchiveError) -> ApiError {
    match err {
        ArchiveError::TooLarge { .. } | ArchiveError::Bomb { .. } => {
            ApiError::too_large(format!("{display}: {err}"))
        }
        ArchiveError::Io { .. } | ArchiveError::Blocked { .. } => {
            let detail = format!("extracting {display}: {err}");
            tracing::error!("{detail}");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "internal error: the coordinator could not extract {display}; its log says why"
                ),
            )
        }
        _ => ApiError::bad_request(format!("{display}: {err}")),
    }
}

/// The main scene file among `candidates` (paths with extension `ext`).
fn choose_main(
    candidates: &[&str],
    main: Option<&str>,
    display: &str,
    ext: &str,
) -> Result<String, ApiError> {
    match (main, candidates) {
        (Some(main), _) if candidates.contains(&main) => Ok(main.to_string()),
        (Some(main), _) => Err(ApiError::unprocessable(format!(
            "main file \"{main}\" is not a .{ext} file in {display} (it has: {})",
            name_list(candidates)
        ))
        .on_field(MAIN)),
        (None, [only]) => Ok(only.to_string()),
        (None, _) => Err(ApiError::unprocessable(format!(
            "the zip holds several .{ext} files ({}); choose one scene to render its animation with `main` (--main PATH), or render them as a sequence, one file per frame in name order, with `sequence` (--sequence)",
            name_list(candidates)
        ))
        .on_field(MAIN)),
    }
}

/// Finds the scene an ini's `Input_File_Name` names: relative to the ini's folder first, then
/// to the project's root; POV-Ray adds `.pov` when the name has no extension.
fn resolve_input_file(named: &str, ini_dir: Option<&str>, povs: &[&str]) -> Option<String> {
    let mut names = vec![named.to_string()];
    let file = named.rsplit(['/', '\\']).next().unwrap_or(named);
    if !file.contains('.') {
        names.push(format!("{named}.pov"));
    }
    let dirs = ini_dir.filter(|d| !d.is_empty()).into_iter().chain([""]);
    for dir in dirs {
        for name in &names {
            if let Some(path) = join_relative(dir, name)
                && povs.contains(&path.as_str())
            {
                return Some(path);
            }
        }
    }
    None
}

/// `dir` + `name` as a normalized zip path; `None` if it climbs out of the project.
fn join_relative(dir: &str, name: &str) -> Option<String> {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in name.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            _ => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

/// The ini that goes with `main` when a zip holds several: same base name, preferably in the
/// same folder.
fn ini_beside<'a>(inis: &[&'a str], main: &str) -> Option<&'a str> {
    let same_stem: Vec<&str> = inis
        .iter()
        .copied()
        .filter(|ini| stem(ini) == stem(main))
        .collect();
    same_stem
        .iter()
        .copied()
        .find(|ini| parent(ini) == parent(main))
        .or(match same_stem.as_slice() {
            [only] => Some(*only),
            _ => None,
        })
}

fn with_extension<'a>(files: &[&'a str], ext: &str) -> Vec<&'a str> {
    files
        .iter()
        .copied()
        .filter(|f| {
            f.rsplit_once('.')
                .is_some_and(|(_, e)| e.eq_ignore_ascii_case(ext))
        })
        .collect()
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("")
}

fn stem(path: &str) -> &str {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.rsplit_once('.').map(|(stem, _)| stem).unwrap_or(file)
}

/// `a.blend, b/c.blend` (at most [`LISTED_NAMES`], then "and N more").
fn name_list(names: &[&str]) -> String {
    let mut list = names
        .iter()
        .take(LISTED_NAMES)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > LISTED_NAMES {
        list.push_str(&format!(" and {} more", names.len() - LISTED_NAMES));
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chooses_the_only_candidate_or_asks() {
        assert_eq!(
            choose_main(&["a.blend"], None, "p.zip", "blend").unwrap(),
            "a.blend"
        );
        let err = choose_main(&["a.blend", "b/c.blend"], None, "p.zip", "blend").unwrap_err();
        assert_eq!(err.status, 422);
        assert_eq!(
            err.message,
            "the zip holds several .blend files (a.blend, b/c.blend); choose one scene to render its animation with `main` (--main PATH), or render them as a sequence, one file per frame in name order, with `sequence` (--sequence)"
        );
        assert_eq!(
            choose_main(
                &["a.blend", "b/c.blend"],
                Some("b/c.blend"),
                "p.zip",
                "blend"
            )
            .unwrap(),
            "b/c.blend"
        );
        let err = choose_main(&["a.blend"], Some("x.blend"), "p.zip", "blend").unwrap_err();
        assert_eq!(
            err.message,
            "main file \"x.blend\" is not a .blend file in p.zip (it has: a.blend)"
        );
    }

    #[test]
    fn blend_backups_are_not_candidates() {
        let files = ["a.blend", "a.blend1", "b.BLEND", "tex/wood.png"];
        assert_eq!(with_extension(&files, "blend"), ["a.blend", "b.BLEND"]);
    }

    #[test]
    fn resolves_input_file_names_like_povray() {
        let povs = ["scenes/ball.pov", "top.pov"];
        assert_eq!(
            resolve_input_file("ball.pov", Some("scenes"), &povs).as_deref(),
            Some("scenes/ball.pov")
        );
        assert_eq!(
            resolve_input_file("ball", Some("scenes"), &povs).as_deref(),
            Some("scenes/ball.pov")
        );
        assert_eq!(
            resolve_input_file("scenes/ball.pov", None, &povs).as_deref(),
            Some("scenes/ball.pov")
        );
        assert_eq!(
            resolve_input_file("../top.pov", Some("scenes"), &povs).as_deref(),
            Some("top.pov")
        );
        assert_eq!(
            resolve_input_file("../../top.pov", Some("scenes"), &povs),
            None
        );
        assert_eq!(resolve_input_file("other.pov", None, &povs), None);
    }

    #[test]
    fn picks_the_ini_named_like_the_scene() {
        let inis = ["a/ball.ini", "b/ball.ini", "cube.ini"];
        assert_eq!(ini_beside(&inis, "b/ball.pov"), Some("b/ball.ini"));
        assert_eq!(ini_beside(&inis, "c/cube.pov"), Some("cube.ini"));
        assert_eq!(ini_beside(&inis, "c/ball.pov"), None);
        assert_eq!(ini_beside(&inis, "torus.pov"), None);
    }

    #[test]
    fn extraction_faults_do_not_show_the_coordinators_paths() {
        let err = archive_error(
            "p.zip",
            ArchiveError::Io {
                path: "/srv/idlefarm/tmp/submit-1/project/x".into(),
                source: std::io::Error::other("File name too long"),
            },
        );
        assert_eq!(err.status, 500);
        assert!(!err.message.contains("/srv"), "{}", err.message);
        assert!(err.message.contains("p.zip"), "{}", err.message);
        let err = archive_error(
            "p.zip",
            ArchiveError::NameTooLong {
                entry: "aaa".into(),
                reason: "too long".into(),
            },
        );
        assert_eq!(err.status, 400);
    }

    #[test]
    fn long_name_lists_are_cut() {
        let names: Vec<String> = (0..12).map(|i| format!("s{i}.pov")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        assert!(name_list(&names).ends_with("s9.pov and 2 more"));
    }
}
