//! Known fatal renderer messages: lines that mean a frame is probably wrong (black, partly
//! drawn) even though the renderer went on and exited successfully, as Cycles does when a GPU
//! runs out of memory. A frame saved after such a line is reported with it, and the
//! coordinator has the frame rendered on another PC as well. Only faults of the PC belong
//! here, not faults of the scene (a missing texture is missing on every PC, and a second
//! render would only double the cost).

use idlefarm_protocol::{MAX_RENDERER_ERROR, Renderer};

/// Lower-case fragments of Blender's (mostly Cycles') device and memory errors.
const BLENDER: &[&str] = &[
    "cuda error",
    "optix error",
    "hip error",
    "metal error",
    "oneapi error",
    "out of gpu memory",
    "out of memory",
    "illegal address",
    "failed to create cuda context",
    "malloc returns null",
];

/// Lower-case starts of POV-Ray's fatal messages (`Fatal error in renderer: Out of memory.`).
/// Starts, not fragments: its warnings say "Future versions of POV-Ray may consider this a
/// fatal error".
const POVRAY: &[&str] = &["fatal error", "render failed", "out of memory"];

/// `line` trimmed and cut to what the coordinator accepts, when it is a known fatal message of
/// `renderer`.
pub fn fatal_line(renderer: Renderer, line: &str) -> Option<String> {
    let lower = line.trim().to_ascii_lowercase();
    let known = match renderer {
        Renderer::Blender => BLENDER.iter().any(|k| lower.contains(k)),
        Renderer::Povray => POVRAY.iter().any(|k| lower.starts_with(k)),
    };
    if !known {
        return None;
    }
    // Printable ASCII only: it travels in an HTTP header.
    let mut text: String = (line.trim().chars())
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    text.truncate(MAX_RENDERER_ERROR);
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_and_memory_errors_are_fatal_but_scene_warnings_are_not() {
        let cycles = "Error: CUDA error: Out of memory in cuMemAlloc(&device_pointer, size)";
        assert_eq!(
            fatal_line(Renderer::Blender, cycles).as_deref(),
            Some(cycles)
        );
        assert!(fatal_line(Renderer::Blender, "System is out of GPU memory").is_some());
        assert!(
            fatal_line(
                Renderer::Blender,
                "Fra:1 Mem:12.00M | Rendering 1 / 64 samples"
            )
            .is_none()
        );
        assert!(fatal_line(Renderer::Blender, "Warning: Path 'tex.png' not found").is_none());
        assert!(fatal_line(Renderer::Povray, "Fatal error in renderer: Out of memory.").is_some());
        assert!(fatal_line(Renderer::Povray, "Possible Parse Error: Singular matrix").is_none());
        // POV-Ray's own words in a warning about #version, and its option listing.
        let warning = "scene. Future versions of POV-Ray may consider this a fatal error. To avoid";
        assert!(fatal_line(Renderer::Povray, warning).is_none());
        assert!(fatal_line(Renderer::Povray, "  Fatal Stream to console.........On").is_none());
        // The Blender list is not POV-Ray's.
        assert!(fatal_line(Renderer::Povray, "CUDA error").is_none());
    }

    #[test]
    fn a_reported_line_is_printable_and_bounded() {
        let long = format!("Fatal error \u{1b}[31m{}", "x".repeat(2000));
        let line = fatal_line(Renderer::Povray, &long).unwrap();
        assert_eq!(line.len(), MAX_RENDERER_ERROR);
        assert!(
            line.chars().all(|c| c.is_ascii_graphic() || c == ' '),
            "{line}"
        );
    }
}
