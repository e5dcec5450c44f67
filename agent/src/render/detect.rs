//! Which renderers this PC has, and their versions, for enrolment.

use std::path::Path;
use std::time::Duration;

use idlefarm_protocol::{Renderer, RendererInfo};
use tokio::process::Command;

use super::RenderEnv;

/// The renderers installed here and their versions, for enrolment. Missing ones are left out.
pub async fn detect(env: &RenderEnv) -> Vec<RendererInfo> {
    let mut found = Vec::new();
    for (renderer, program) in [
        (Renderer::Blender, &env.blender),
        (Renderer::Povray, &env.povray),
    ] {
        match version(renderer, program).await {
            Some(version) => {
                tracing::info!(renderer = renderer.as_str(), %version, "renderer found");
                found.push(RendererInfo { renderer, version });
            }
            None => tracing::warn!(
                renderer = renderer.as_str(),
                "{} does not run; jobs for it cannot be rendered here",
                program.display()
            ),
        }
    }
    found
}

/// Runs `program --version` and picks the version out of what it prints.
async fn version(renderer: Renderer, program: &Path) -> Option<String> {
    let mut command = Command::new(program);
    command
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .ok()?
        .ok()?;
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    parse_version(renderer, &text)
}

/// `Blender 3.4.1` → `3.4.1`; `POV-Ray 3.7.0.10.unofficial` → `3.7.0.10.unofficial`.
fn parse_version(renderer: Renderer, text: &str) -> Option<String> {
    let prefix = match renderer {
        Renderer::Blender => "Blender ",
        Renderer::Povray => "POV-Ray ",
    };
    text.lines()
        .find_map(|line| line.trim().strip_prefix(prefix))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_version_output() {
        assert_eq!(
            parse_version(
                Renderer::Blender,
                "Blender 3.4.1\n\tbuild date: 2023-01-01\n"
            )
            .as_deref(),
            Some("3.4.1")
        );
        let pov = "povray: cannot open the user configuration file\nPOV-Ray 3.7.0.10.unofficial\n";
        assert_eq!(
            parse_version(Renderer::Povray, pov).as_deref(),
            Some("3.7.0.10.unofficial")
        );
        assert_eq!(parse_version(Renderer::Povray, "nothing"), None);
    }
}
