//! Runs the OpenCV DNN oracle scripts with the workspace's Python venv.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The venv interpreter that has opencv-python-headless (scripts/python-peers.sh).
pub(crate) fn interpreter() -> PathBuf {
    let python = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../.venv/bin/python"
    ));
    assert!(
        python.is_file(),
        "{} is missing: run scripts/python-peers.sh",
        python.display()
    );
    python
}

/// `tests/oracle/NAME` (the oracle scripts) or `benches/NAME`.
pub(crate) fn script(folder: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(folder)
        .join(name)
}

/// Runs `python SCRIPT ARGS...`; panics with its stderr when it fails. Returns stdout.
pub(crate) fn run<I, S>(script: &Path, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let output = Command::new(interpreter())
        // No __pycache__ inside the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("spawning {}: {e}", script.display()));
    assert!(
        output.status.success(),
        "{} failed ({}):\n{}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("script output is UTF-8")
}

/// A fresh, empty scratch folder under the system temp dir, removed on drop.
pub(crate) struct ScratchDir(PathBuf);

impl ScratchDir {
    /// `$TMPDIR/safecity-yolo-LABEL-PID`, emptied first.
    pub(crate) fn new(label: &str) -> ScratchDir {
        let path =
            std::env::temp_dir().join(format!("safecity-yolo-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        ScratchDir(path)
    }

    /// The folder.
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside the folder.
    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
