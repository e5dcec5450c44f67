//! Names from a lease (the input's file name, the main scene file, the files of a scene
//! sequence), checked before they become paths in the input cache: plain relative paths whose
//! parts the file system can hold. They come from whoever submitted the job, so error messages
//! quote them shortened.

use std::path::{Component, Path, PathBuf};

/// Longest file or folder name (bytes) Linux file systems accept (`NAME_MAX`).
pub const NAME_MAX: usize = 255;
/// How much of a name from the job an error message quotes.
const QUOTED_NAME_CHARS: usize = 80;

/// Why a name from the lease cannot become a path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not a plain relative path inside the job's input.
    #[error("{what} {} is not a plain relative path inside the job's input", quote(.name))]
    NotPlain {
        /// Which name.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A part of the name is longer than file systems allow.
    #[error(
        "{what} {} has a name of {longest} bytes; file names may have at most {}: rename it and submit again",
        quote(.name),
        NAME_MAX
    )]
    TooLong {
        /// Which name.
        what: &'static str,
        /// The name.
        name: String,
        /// Bytes of its longest part.
        longest: usize,
    },
}

/// Checks `name` (a single file name unless `nested`) and returns it as a relative path.
pub fn checked_name(what: &'static str, name: &str, nested: bool) -> Result<PathBuf, NameError> {
    if !is_plain_relative(name) || (!nested && name.contains('/')) {
        return Err(NameError::NotPlain {
            what,
            name: name.to_owned(),
        });
    }
    let longest = name.split('/').map(str::len).max().unwrap_or(0);
    if longest > NAME_MAX {
        return Err(NameError::TooLong {
            what,
            name: name.to_owned(),
            longest,
        });
    }
    Ok(PathBuf::from(name))
}

/// A relative path of plain components (no root, `..`, `.`-only or empty names).
pub fn is_plain_relative(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('\0')
        && !name.contains('\\')
        && Path::new(name)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// A name from the job as error messages quote it: at most [`QUOTED_NAME_CHARS`] characters,
/// so a hostile 10,000-character name does not become a 10,000-character report.
pub fn quote(name: &str) -> String {
    let mut chars = name.chars();
    let head: String = chars.by_ref().take(QUOTED_NAME_CHARS).collect();
    if chars.next().is_some() {
        format!("{head:?}… ({} bytes)", name.len())
    } else {
        format!("{head:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_names_become_paths() {
        assert!(is_plain_relative("scene.pov"));
        assert!(is_plain_relative("project/scenes/a.blend"));
        assert!(!is_plain_relative(""));
        assert!(!is_plain_relative("/etc/passwd"));
        assert!(!is_plain_relative("../x.pov"));
        assert!(!is_plain_relative("a/../../x.pov"));
        assert!(!is_plain_relative("a\\b.pov"));
        assert!(!is_plain_relative("."));
    }

    #[test]
    fn names_longer_than_file_systems_allow_are_refused_and_quoted_short() {
        let long = format!("{}.pov", "a".repeat(10_000));
        let err = checked_name("input name", &long, false).unwrap_err();
        assert!(
            matches!(
                err,
                NameError::TooLong {
                    longest: 10_004,
                    ..
                }
            ),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.len() < 300, "{message}");
        assert!(
            message.contains("10004 bytes") && message.contains("at most 255"),
            "{message}"
        );
        let part = "b".repeat(NAME_MAX);
        assert!(checked_name("main file", &format!("{part}/{part}"), true).is_ok());
        assert!(checked_name("main file", &format!("x/{part}c"), true).is_err());
        assert!(checked_name("input name", "dir/scene.pov", false).is_err());
        assert_eq!(quote("scene.pov"), "\"scene.pov\"");
    }
}
