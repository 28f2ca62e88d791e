//! The dev-mode signing secret, kept in the data directory (`dev-secret`, next to the SQLite
//! file) so that tokens, and with them identities, stay valid across restarts.
//!
//! It is made once from the OS random generator and written readable by the owner only. If
//! the generator fails the server does not start: a fixed or all-zero fallback would let anyone
//! forge tokens. A file others can read is refused for the same reason.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// The file's name inside the data directory.
pub const FILE_NAME: &str = "dev-secret";
/// Random bytes in a new secret (written as hex).
const SECRET_BYTES: usize = 32;

#[derive(Debug, Error)]
pub enum DevSecretError {
    #[error("the OS random generator failed, so no dev secret can be made: {0}")]
    Rng(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}: not a dev secret (expected at least {SECRET_BYTES} bytes as hex); delete it to make a new one")]
    Malformed(PathBuf),
    #[error("{0}: readable by group or others; `chmod 600` it (or delete it to make a new one)")]
    TooOpen(PathBuf),
}

/// The secret in `dir/dev-secret`, made (and `dir` created) if there is none yet.
pub fn load_or_create(dir: &Path) -> Result<Vec<u8>, DevSecretError> {
    let path = dir.join(FILE_NAME);
    let io = |source| DevSecretError::Io { path: path.clone(), source };
    match fs::metadata(&path) {
        Ok(_) => return read(&path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let mut secret = [0u8; SECRET_BYTES];
    getrandom::fill(&mut secret).map_err(|e| DevSecretError::Rng(e.to_string()))?;
    fs::create_dir_all(dir).map_err(|e| DevSecretError::Io { path: dir.to_path_buf(), source: e })?;
    // Written in full under a private name, then linked into place: another server starting on
    // the same directory at once either wins the link or reads the winner's complete file.
    let staging = dir.join(format!(".{FILE_NAME}.{}", std::process::id()));
    let written = write_private(&staging, &hex(&secret));
    let linked = written.and_then(|()| fs::hard_link(&staging, &path));
    let _ = fs::remove_file(&staging);
    match linked {
        Ok(()) => Ok(secret.to_vec()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(&path),
        Err(e) => Err(io(e)),
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

fn read(path: &Path) -> Result<Vec<u8>, DevSecretError> {
    let io = |source| DevSecretError::Io { path: path.to_path_buf(), source };
    let meta = fs::metadata(path).map_err(io)?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(DevSecretError::TooOpen(path.to_path_buf()));
    }
    let text = fs::read_to_string(path).map_err(io)?;
    match unhex(text.trim()) {
        Some(secret) if secret.len() >= SECRET_BYTES => Ok(secret),
        _ => Err(DevSecretError::Malformed(path.to_path_buf())),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_is_made_once_private_and_read_back_unchanged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let first = load_or_create(&data).expect("made");
        assert_eq!(first.len(), SECRET_BYTES);
        assert_ne!(first, vec![0u8; SECRET_BYTES]);
        let mode = fs::metadata(data.join(FILE_NAME)).expect("the file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_create(&data).expect("read back"), first);
        assert_eq!(fs::read_dir(&data).expect("dir").count(), 1, "no staging file left behind");
    }

    #[test]
    fn a_malformed_or_readable_secret_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE_NAME);
        write_private(&path, "00ff").expect("write");
        assert!(matches!(load_or_create(dir.path()), Err(DevSecretError::Malformed(_))), "too short");
        fs::remove_file(&path).expect("remove");
        write_private(&path, &"zz".repeat(SECRET_BYTES)).expect("write");
        assert!(matches!(load_or_create(dir.path()), Err(DevSecretError::Malformed(_))), "not hex");
        fs::remove_file(&path).expect("remove");
        write_private(&path, &"ab".repeat(SECRET_BYTES)).expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(load_or_create(dir.path()), Err(DevSecretError::TooOpen(_))));
    }
}
