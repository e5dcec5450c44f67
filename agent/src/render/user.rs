//! The unprivileged account renderers run as: looked up once, checked (never root, able to
//! reach the agent's folders), and given the folders a renderer writes to.

use std::ffi::CString;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::passwd::{Key, lookup};

/// The unprivileged account renderers run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderUser {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

/// Why a render user cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// No such account.
    #[error("render user `{0}` does not exist")]
    Unknown(String),
    /// The account is root (uid 0), which renderers must never run as.
    #[error("render user `{0}` is root; renderers never run as root")]
    Root(String),
    /// The user database could not be read.
    #[error("cannot look up render user `{name}`: {source}")]
    Lookup {
        /// The name looked up.
        name: String,
        /// What failed.
        source: io::Error,
    },
    /// A directory on the way to the agent's files is closed to the render user.
    #[error(
        "render user `{user}` cannot enter {dir}: run `chmod o+x {dir}` or choose another --render-user"
    )]
    NoTraverse {
        /// The render user's name.
        user: String,
        /// The directory it cannot enter.
        dir: PathBuf,
    },
}

impl RenderUser {
    /// Looks an account up by name (with `getpwnam_r`, safe to call from any thread).
    pub fn resolve(name: &str) -> Result<RenderUser, UserError> {
        let c_name = CString::new(name).map_err(|_| UserError::Unknown(name.to_owned()))?;
        let account = lookup(Key::Name(&c_name))
            .map_err(|source| UserError::Lookup {
                name: name.to_owned(),
                source,
            })?
            .ok_or_else(|| UserError::Unknown(name.to_owned()))?;
        if account.uid == 0 {
            return Err(UserError::Root(name.to_owned()));
        }
        Ok(RenderUser {
            name: account.name,
            uid: account.uid,
            gid: account.gid,
        })
    }

    /// Checks that this user can traverse every directory from `/` down to `dir`.
    pub fn check_can_reach(&self, dir: &Path) -> Result<(), UserError> {
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        for ancestor in dir.ancestors() {
            let Ok(meta) = std::fs::metadata(ancestor) else {
                continue;
            };
            if !self.may_enter(meta.uid(), meta.gid(), meta.mode()) {
                return Err(UserError::NoTraverse {
                    user: self.name.clone(),
                    dir: ancestor.to_path_buf(),
                });
            }
        }
        Ok(())
    }

    fn may_enter(&self, owner: u32, group: u32, mode: u32) -> bool {
        if owner == self.uid {
            mode & 0o100 != 0
        } else if group == self.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        }
    }

    /// Gives `path` to this user (the renderer writes its frames and settings there).
    pub fn chown(&self, path: &Path) -> io::Result<()> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_nobody_and_refuses_root() {
        let nobody = RenderUser::resolve("nobody").unwrap();
        assert_eq!(nobody.name, "nobody");
        assert_ne!(nobody.uid, 0);
        assert!(matches!(
            RenderUser::resolve("root"),
            Err(UserError::Root(_))
        ));
        assert!(matches!(
            RenderUser::resolve("no-such-user-idlefarm"),
            Err(UserError::Unknown(_))
        ));
    }

    #[test]
    fn traversal_check_names_the_closed_directory() {
        let user = RenderUser::resolve("nobody").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("a/b");
        std::fs::create_dir_all(&inner).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let err = user.check_can_reach(&inner).unwrap_err().to_string();
        assert!(
            err.contains(&format!("chmod o+x {}", dir.path().display())),
            "{err}"
        );
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        // The temp dir's ancestors (/tmp) are open to everyone.
        user.check_can_reach(&inner).unwrap();
    }
}
