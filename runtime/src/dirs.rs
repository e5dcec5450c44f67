//! Default directories, computed in one place so the agent's work dir, its status socket and
//! `idlefarm up`'s local agent agree.

use std::ffi::OsString;
use std::path::PathBuf;

/// The agent's work dir when it runs as root (a system service). Renders run as `nobody` then,
/// which cannot enter root's home, so the files live where that account can reach them.
pub const SYSTEM_AGENT_WORK_DIR: &str = "/var/lib/idlefarm-agent";

/// The agent's default work dir: [`SYSTEM_AGENT_WORK_DIR`] as root, else
/// `$XDG_STATE_HOME/idlefarm-agent`, else `~/.local/state/idlefarm-agent`, else
/// `idlefarm-agent` in the current directory.
pub fn default_agent_work_dir() -> PathBuf {
    agent_work_dir(crate::is_root(), |name| std::env::var_os(name))
}

/// [`default_agent_work_dir`] with the environment passed in, so tests need not change the
/// process's own.
fn agent_work_dir(root: bool, var: impl Fn(&str) -> Option<OsString>) -> PathBuf {
    if root {
        return PathBuf::from(SYSTEM_AGENT_WORK_DIR);
    }
    // An empty variable counts as unset, as the XDG base directory spec says.
    let var = |name| var(name).filter(|v| !v.is_empty());
    match (var("XDG_STATE_HOME"), var("HOME")) {
        (Some(state), _) => PathBuf::from(state).join("idlefarm-agent"),
        (None, Some(home)) => PathBuf::from(home).join(".local/state/idlefarm-agent"),
        (None, None) => PathBuf::from("idlefarm-agent"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn follows_xdg_then_home_and_root_gets_the_system_dir() {
        let both = [("XDG_STATE_HOME", "/s"), ("HOME", "/h")];
        assert_eq!(
            agent_work_dir(false, env(&both)),
            PathBuf::from("/s/idlefarm-agent")
        );
        assert_eq!(
            agent_work_dir(true, env(&both)),
            PathBuf::from(SYSTEM_AGENT_WORK_DIR)
        );
        let empty_xdg = [("XDG_STATE_HOME", ""), ("HOME", "/h")];
        assert_eq!(
            agent_work_dir(false, env(&empty_xdg)),
            PathBuf::from("/h/.local/state/idlefarm-agent")
        );
        assert_eq!(
            agent_work_dir(false, env(&[("HOME", "")])),
            PathBuf::from("idlefarm-agent")
        );
    }
}
