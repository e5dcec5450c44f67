//! The CLI's saved logins: `$XDG_CONFIG_HOME/idlefarm/credentials.toml` (else
//! `~/.config/idlefarm/credentials.toml`), a table per coordinator URL with the user and API
//! token. The file is mode 0600 in a 0700 directory, since the token is as good as a password.
//!
//! ```toml
//! [servers."http://127.0.0.1:7870"]
//! user = "admin"
//! token = "3.9f2c…"
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why the credentials file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// Neither `XDG_CONFIG_HOME` nor `HOME` is set.
    #[error("no config directory: set HOME or XDG_CONFIG_HOME")]
    NoConfigDir,
    /// Reading or writing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("{} is not a valid credentials file ({source}); delete it and log in again", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: toml::de::Error,
    },
    /// The logins could not be written as TOML.
    #[error("cannot write credentials: {0}")]
    Serialize(#[from] toml::ser::Error),
}

/// One saved login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedLogin {
    /// Who is logged in.
    pub user: String,
    /// Their API token, sent as `Authorization: Bearer <token>`.
    pub token: String,
    /// The pinned certificate of an HTTPS coordinator (`AB:CD:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// Every saved login, by coordinator URL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// Coordinator URL (no trailing slash) → login.
    #[serde(default)]
    pub servers: BTreeMap<String, SavedLogin>,
}

/// Where the credentials file lives for this user.
pub fn default_path() -> Result<PathBuf, CredentialsError> {
    let dir = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })
        .ok_or(CredentialsError::NoConfigDir)?;
    Ok(dir.join("idlefarm").join("credentials.toml"))
}

/// The key a URL is saved under: `http://host:port/` and `http://host:port` are one server.
pub fn server_key(url: &str) -> String {
    url.trim().trim_end_matches('/').to_owned()
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CredentialsError + '_ {
    move |source| CredentialsError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Credentials {
    /// Reads the file; no file means no logins.
    pub fn load(path: &Path) -> Result<Credentials, CredentialsError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Credentials::default()),
            Err(e) => return Err(io_err(path)(e)),
        };
        toml::from_str(&text).map_err(|source| CredentialsError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Writes the file atomically, mode 0600, its directory 0700.
    pub fn save(&self, path: &Path) -> Result<(), CredentialsError> {
        let text = toml::to_string(self)?;
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err(dir))?;
            // An existing directory may be wider open than a token deserves.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io_err(dir))?;
        }
        crate::files::write_atomic_with(path, |file| {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            file.write_all(text.as_bytes())
        })
        .map_err(io_err(path))
    }

    /// The login saved for a coordinator.
    pub fn get(&self, url: &str) -> Option<&SavedLogin> {
        self.servers.get(&server_key(url))
    }

    /// Saves a login for a coordinator, replacing any other.
    pub fn set(&mut self, url: &str, login: SavedLogin) {
        self.servers.insert(server_key(url), login);
    }

    /// Forgets the login for a coordinator; returns it.
    pub fn remove(&mut self, url: &str) -> Option<SavedLogin> {
        self.servers.remove(&server_key(url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_are_saved_per_server_in_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf/idlefarm/credentials.toml");
        assert_eq!(Credentials::load(&path).unwrap(), Credentials::default());
        let mut creds = Credentials::default();
        let login = SavedLogin {
            user: "ada".into(),
            token: "3.abc".into(),
            fingerprint: None,
        };
        creds.set("http://127.0.0.1:7870/", login.clone());
        creds.set(
            "http://farm:7870",
            SavedLogin {
                user: "bob".into(),
                token: "4.def".into(),
                fingerprint: None,
            },
        );
        creds.save(&path).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let mut back = Credentials::load(&path).unwrap();
        assert_eq!(back, creds);
        assert_eq!(back.get("http://127.0.0.1:7870"), Some(&login));
        assert_eq!(back.remove("http://127.0.0.1:7870 "), Some(login));
        assert!(back.get("http://127.0.0.1:7870").is_none());
        assert_eq!(back.servers.len(), 1);
    }

    #[test]
    fn a_damaged_file_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.toml");
        std::fs::write(&path, "servers = 3").unwrap();
        let err = Credentials::load(&path).unwrap_err().to_string();
        assert!(err.contains("log in again"), "{err}");
    }
}
