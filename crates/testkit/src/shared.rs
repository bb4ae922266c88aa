//! Paths into the project's shared data folder, which sits beside the workspace root and contains
//! provider payload examples and field-failure cases.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Environment variable that replaces the shared data folder, for checkouts where it does not
/// sit beside the workspace root.
pub const SHARED_DIR_VAR: &str = "NUDGE_SHARED_DIR";

/// Resolves `relative` under the shared data folder.
///
/// The folder is `$NUDGE_SHARED_DIR` when that variable is set and not empty, and otherwise
/// `../shared` from the workspace root (two levels above this crate's manifest).
pub fn shared_data(relative: &str) -> PathBuf {
    shared_dir(std::env::var_os(SHARED_DIR_VAR)).join(relative)
}

/// Reads and parses a JSON file under the shared data folder.
///
/// # Panics
///
/// Panics with the path when the file is missing or is not valid JSON.
pub fn shared_json(relative: &str) -> serde_json::Value {
    let path = shared_data(relative);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) => panic!("failed to read {}: {error}", path.display()),
    };
    match serde_json::from_str(&text) {
        Ok(value) => value,
        Err(error) => panic!("invalid JSON in {}: {error}", path.display()),
    }
}

fn shared_dir(override_dir: Option<OsString>) -> PathBuf {
    match override_dir {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => default_shared_dir(),
    }
}

fn default_shared_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The manifest is `<root>/crates/testkit`, so the third ancestor is the folder that
    // contains the workspace root.
    match manifest.ancestors().nth(3) {
        Some(parent_of_root) => parent_of_root.join("shared"),
        None => manifest.join("shared"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn default_folder_sits_beside_workspace_root() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .and_then(Path::parent)
            .unwrap();
        let expected = root.parent().unwrap().join("shared");
        assert_eq!(default_shared_dir(), expected);
    }

    #[test]
    fn override_variable_replaces_folder() {
        let dir = shared_dir(Some(OsString::from("/tmp/elsewhere")));
        assert_eq!(dir, PathBuf::from("/tmp/elsewhere"));
    }

    #[test]
    fn empty_override_is_ignored() {
        assert_eq!(shared_dir(Some(OsString::new())), default_shared_dir());
    }

    #[test]
    fn relative_path_is_joined_under_folder() {
        let path = shared_data("providers/README.md");
        assert!(path.ends_with("providers/README.md"));
    }
}
