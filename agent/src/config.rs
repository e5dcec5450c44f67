//! The agent's configuration file (TOML) and how it merges with command-line flags: a flag
//! wins over the file, the file wins over the defaults.
//!
//! ```toml
//! coordinator = "http://farm.lab:7870"
//! token = "3f1c…"
//! fingerprint = "AB:CD:…"     # an HTTPS coordinator's certificate (SHA-256) to pin
//! policy = "idle"            # no-user (default) | idle | always
//! idle_after = "5m"
//! settle = "30s"
//! max_suspend = "60s"
//! schedule = "Mon-Fri 19:00-07:00; Sat-Sun"
//! cpu_threshold = 30         # percent of the whole machine used by other programs
//! system_bus = "unix:path=/run/dbus/system_bus_socket"
//! max_cache = "10G"          # most disk the input cache may use
//! min_free = "10%"           # of the disk that stays free (or a size, e.g. "20G")
//! warm_blender = true        # keep one Blender per job across its chunks
//! max_parallel = 2           # most chunks at once (default: one per core; 1: one at a time)
//! render_memory = "8G"       # most memory all renderers together may use
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use idlefarm_runtime::{parse_duration, parse_size};
use serde::Deserialize;

use crate::budget::MinFree;
use crate::presence::policy::Policy;
use crate::presence::schedule::Schedule;

/// Everything the file may set; every key is optional. Unknown keys are an error, so a typo
/// does not silently leave a setting at its default.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Coordinator URL.
    pub coordinator: Option<String>,
    /// Enrolment token.
    pub token: Option<String>,
    /// An HTTPS coordinator's certificate fingerprint to pin.
    pub fingerprint: Option<String>,
    /// Work directory.
    pub work_dir: Option<PathBuf>,
    /// Name on the dashboard.
    pub name: Option<String>,
    /// Account renderers run as when the agent is root.
    pub render_user: Option<String>,
    /// Blender executable.
    pub blender: Option<PathBuf>,
    /// POV-Ray executable.
    pub povray: Option<PathBuf>,
    /// Presence policy.
    pub policy: Option<Policy>,
    /// Idle time before the `idle` policy renders, e.g. `5m`.
    pub idle_after: Option<String>,
    /// How long conditions must hold before work starts, e.g. `30s`.
    pub settle: Option<String>,
    /// Longest pause for a person before work is given back, e.g. `60s`.
    pub max_suspend: Option<String>,
    /// Weekly schedule, e.g. `Mon-Fri 19:00-07:00; Sat-Sun`.
    pub schedule: Option<String>,
    /// D-Bus address of the system bus (for logind).
    pub system_bus: Option<String>,
    /// Other programs' CPU share that counts as busy, percent.
    pub cpu_threshold: Option<f32>,
    /// Time between heartbeats.
    pub heartbeat_interval: Option<String>,
    /// Path of the local status socket the desktop companion connects to.
    pub status_socket: Option<PathBuf>,
    /// Most disk the input cache may use, e.g. `10G`.
    pub max_cache: Option<String>,
    /// What stays free on the disk, e.g. `10%` or `20G`.
    pub min_free: Option<String>,
    /// Keep one Blender per job across its chunks.
    pub warm_blender: Option<bool>,
    /// Most chunks rendering at once.
    pub max_parallel: Option<i64>,
    /// Most memory all renderers together may use, e.g. `8G`.
    pub render_memory: Option<String>,
}

impl FileConfig {
    /// Reads and checks a config file; errors name the file and the problem.
    pub fn load(path: &Path) -> Result<FileConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("config file {}: {e}", path.display()))
    }

    /// Parses and checks config text.
    pub fn parse(text: &str) -> Result<FileConfig, String> {
        let config: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        for (key, value) in [
            ("idle_after", &config.idle_after),
            ("settle", &config.settle),
            ("max_suspend", &config.max_suspend),
            ("heartbeat_interval", &config.heartbeat_interval),
        ] {
            if let Some(v) = value {
                parse_duration(v).map_err(|e| format!("{key}: {e}"))?;
            }
        }
        if let Some(f) = &config.fingerprint {
            f.parse::<idlefarm_tls::Fingerprint>()
                .map_err(|e| format!("fingerprint: {e}"))?;
        }
        if let Some(s) = &config.max_cache {
            parse_size(s).map_err(|e| format!("max_cache: {e}"))?;
        }
        if let Some(s) = &config.min_free {
            MinFree::parse(s).map_err(|e| format!("min_free: {e}"))?;
        }
        if let Some(n) = config.max_parallel {
            crate::parallel::parse_max_parallel(&n.to_string())
                .map_err(|e| format!("max_parallel: {e}"))?;
        }
        if let Some(s) = &config.render_memory {
            parse_size(s).map_err(|e| format!("render_memory: {e}"))?;
        }
        if let Some(s) = &config.schedule {
            Schedule::parse(s).map_err(|e| format!("schedule: {e}"))?;
        }
        if let Some(t) = config.cpu_threshold
            && !(t > 0.0 && t <= 100.0)
        {
            return Err(format!(
                "cpu_threshold: {t} is not a percentage between 0 and 100"
            ));
        }
        Ok(config)
    }

    /// A duration key, already checked by [`FileConfig::parse`].
    pub fn duration(value: &Option<String>) -> Option<Duration> {
        value.as_deref().and_then(|v| parse_duration(v).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses() {
        let c = FileConfig::parse(
            r#"
coordinator = "http://farm:7870"
token = "abc"
policy = "idle"
idle_after = "5m"
settle = "2s"
schedule = "Mon-Fri 19:00-07:00; Sat-Sun"
cpu_threshold = 40
"#,
        )
        .unwrap();
        assert_eq!(c.policy, Some(Policy::Idle));
        assert_eq!(
            FileConfig::duration(&c.idle_after),
            Some(Duration::from_secs(300))
        );
        assert_eq!(c.cpu_threshold, Some(40.0));
    }

    #[test]
    fn mistakes_are_named() {
        let err = FileConfig::parse("polcy = \"idle\"").unwrap_err();
        assert!(err.contains("polcy"), "{err}");
        let err = FileConfig::parse("policy = \"sometimes\"").unwrap_err();
        assert!(err.contains("sometimes"), "{err}");
        let err = FileConfig::parse("idle_after = \"soon\"").unwrap_err();
        assert!(err.contains("idle_after"), "{err}");
        let err = FileConfig::parse("schedule = \"Funday\"").unwrap_err();
        assert!(err.contains("Funday"), "{err}");
        let err = FileConfig::parse("cpu_threshold = 250").unwrap_err();
        assert!(err.contains("cpu_threshold"), "{err}");
        let err = FileConfig::parse("fingerprint = \"AB:CD\"").unwrap_err();
        assert!(
            err.contains("fingerprint") && err.contains("not a SHA-256"),
            "{err}"
        );
        let err = FileConfig::parse("max_cache = \"lots\"").unwrap_err();
        assert!(err.contains("max_cache") && err.contains("lots"), "{err}");
        let err = FileConfig::parse("max_cache = 10").unwrap_err();
        assert!(err.contains("max_cache"), "{err}");
        let err = FileConfig::parse("min_free = \"150%\"").unwrap_err();
        assert!(err.contains("min_free") && err.contains("150%"), "{err}");
        let err = FileConfig::parse("warm_blender = \"yes\"").unwrap_err();
        assert!(
            err.contains("warm_blender") || err.contains("boolean"),
            "{err}"
        );
        let err = FileConfig::parse("warm_blender = 1").unwrap_err();
        assert!(err.contains("boolean"), "{err}");
        let ok = FileConfig::parse("warm_blender = false").unwrap();
        assert_eq!(ok.warm_blender, Some(false));
        let ok = FileConfig::parse("max_cache = \"2G\"\nmin_free = \"5%\"").unwrap();
        assert_eq!(ok.min_free.as_deref(), Some("5%"));
        for bad in [
            "max_parallel = 0",
            "max_parallel = -2",
            "max_parallel = \"two\"",
        ] {
            let err = FileConfig::parse(bad).unwrap_err();
            assert!(err.contains("max_parallel"), "{bad}: {err}");
        }
        let err = FileConfig::parse("render_memory = \"plenty\"").unwrap_err();
        assert!(
            err.contains("render_memory") && err.contains("plenty"),
            "{err}"
        );
        let ok = FileConfig::parse("max_parallel = 3\nrender_memory = \"6G\"").unwrap();
        assert_eq!(ok.max_parallel, Some(3));
        let err = FileConfig::parse("token = ").unwrap_err();
        assert!(!err.is_empty());
        let err = FileConfig::load(Path::new("/nonexistent/agent.toml")).unwrap_err();
        assert!(err.contains("/nonexistent/agent.toml"), "{err}");
    }
}
