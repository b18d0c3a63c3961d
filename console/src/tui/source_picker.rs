//! The `o` picker: the cameras this machine has (`/dev/video*`, the Pi camera when
//! `rpicam-vid` is installed), the test pattern, recent sources, and free text. A choice is
//! checked before it is used: a file must open as a video, a V4L2 device must exist, the Pi
//! camera needs its tool; camera URLs are checked when the session opens them.

use std::path::Path;

use rollcall_edge::source::{open_source, SourceOptions, SourceSpec};

/// One line of the picker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    /// The source spec (`v4l2:/dev/video0`).
    pub spec: String,
    /// What it is (`camera`, `recent`, ...).
    pub what: &'static str,
}

/// The picker's state while open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourcePicker {
    /// Detected and recent sources.
    pub choices: Vec<Choice>,
    /// The highlighted line; `choices.len()` is the free-text line.
    pub selected: usize,
    /// Free text typed by the operator.
    pub text: String,
    /// Why the last choice was refused.
    pub error: Option<String>,
}

impl SourcePicker {
    /// A picker over this machine's cameras and `recent` sources (newest first), the current
    /// source highlighted when listed.
    pub fn open(current: &str, recent: &[String]) -> SourcePicker {
        let mut choices: Vec<Choice> = Vec::new();
        let mut add = |spec: String, what: &'static str| {
            if !choices.iter().any(|c| c.spec == spec) {
                choices.push(Choice { spec, what });
            }
        };
        for device in video_devices(Path::new("/dev")) {
            add(format!("v4l2:{}", device.display()), "camera");
        }
        if rpicam_tool().is_some() {
            add("rpicam".to_string(), "Pi camera");
        }
        for spec in recent {
            add(spec.clone(), "recent");
        }
        add("test".to_string(), "test pattern");
        let selected = choices.iter().position(|c| c.spec == current).unwrap_or(0);
        SourcePicker {
            choices,
            selected,
            text: String::new(),
            error: None,
        }
    }

    /// Move the highlight (the free-text line is the last one).
    pub fn move_by(&mut self, delta: isize) {
        let lines = self.choices.len() + 1;
        self.selected = (self.selected as isize + delta).rem_euclid(lines as isize) as usize;
    }

    /// A typed character goes to the free-text line.
    pub fn type_char(&mut self, c: char) {
        self.text.push(c);
        self.selected = self.choices.len();
        self.error = None;
    }

    /// Backspace on the free-text line.
    pub fn backspace(&mut self) {
        self.text.pop();
        self.selected = self.choices.len();
    }

    /// The spec on the highlighted line.
    pub fn chosen(&self) -> &str {
        self.choices
            .get(self.selected)
            .map_or(self.text.trim(), |c| c.spec.as_str())
    }
}

/// `/dev/video*` character devices, sorted.
fn video_devices(dev: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dev) else {
        return Vec::new();
    };
    let mut found: Vec<_> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("video"))
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// `rpicam-vid` or `libcamera-vid` on PATH, if either is.
fn rpicam_tool() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["rpicam-vid", "libcamera-vid"].map(|tool| dir.join(tool)))
        .find(|candidate| candidate.is_file())
}

/// Parse and check `spec` before a session uses it; the error says what is wrong with it.
pub fn validate(spec: &str) -> Result<SourceSpec, String> {
    let source = SourceSpec::parse(spec).map_err(|e| e.to_string())?;
    match &source {
        SourceSpec::File(path) => {
            // Opening it reads the container's header: a file that is no video fails here.
            open_source(&source, &SourceOptions::default())
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        SourceSpec::V4l2(device) => {
            if !device.exists() {
                return Err(format!("{}: no such camera device", device.display()));
            }
        }
        SourceSpec::Rpicam => {
            if rpicam_tool().is_none() {
                return Err("rpicam: neither rpicam-vid nor libcamera-vid is installed".into());
            }
        }
        SourceSpec::TestPattern | SourceSpec::Network(_) => {}
    }
    Ok(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_are_checked_before_use() {
        let dir = tempfile::tempdir().unwrap();
        let not_video = dir.path().join("notes.mp4");
        std::fs::write(&not_video, b"not a video at all").unwrap();
        let err = validate(&format!("file:{}", not_video.display())).unwrap_err();
        assert!(err.contains("notes.mp4"), "{err}");
        let err = validate("file:/no/such/file.mp4").unwrap_err();
        assert!(err.contains("/no/such/file.mp4"), "{err}");
        let err = validate("v4l2:/dev/video-none-here").unwrap_err();
        assert!(err.contains("no such camera device"), "{err}");
        assert!(validate("bogus").is_err());
        assert_eq!(validate("test").unwrap(), SourceSpec::TestPattern);
    }

    #[test]
    fn the_picker_lists_recent_sources_and_takes_free_text() {
        let recent = vec!["file:/videos/a.mp4".to_string()];
        let mut picker = SourcePicker::open("test", &recent);
        assert!(picker
            .choices
            .iter()
            .any(|c| c.spec == "file:/videos/a.mp4" && c.what == "recent"));
        assert_eq!(picker.chosen(), "test");
        picker.type_char('r');
        picker.type_char('p');
        assert_eq!(picker.chosen(), "rp");
        picker.move_by(1);
        assert_eq!(picker.selected, 0);
    }

    #[test]
    fn video_devices_are_found_by_name() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["video1", "video0", "null"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let found = video_devices(dir.path());
        assert_eq!(
            found,
            vec![dir.path().join("video0"), dir.path().join("video1")]
        );
    }
}
