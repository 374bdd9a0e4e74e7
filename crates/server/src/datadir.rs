//! The data directory: its creation, the key-encryption key file and the node's name.
//!
//! The key file is the one thing that must never be silently replaced: a new key would
//! orphan every secret sealed under the old one. So it is created only for a database
//! that has never sealed anything, and its absence otherwise stops start-up.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use wardgate_core::secrets::{Keyring, SecretError};

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("cannot create data directory {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error(
        "key file {path} is missing, but the database was set up with one (first key id {kek}) and its secrets cannot be opened without it; restore the key file from backup (nothing was changed)"
    )]
    MissingKeyFile { path: PathBuf, kek: String },
    #[error("key file {path} is readable by other users (mode {mode:o}); run chmod 600 on it")]
    KeyFileExposed { path: PathBuf, mode: u32 },
    #[error("key file {path}: {source}")]
    KeyFile { path: PathBuf, source: SecretError },
    #[error("no Wardgate installation at {0}: start `wardgate serve` once to create it")]
    NotInstalled(PathBuf),
}

pub fn ensure_dir(path: &Path) -> Result<(), DataDirError> {
    if path.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(path).map_err(|source| DataDirError::Create { path: path.to_owned(), source })?;
    set_mode(path, 0o700).map_err(|source| DataDirError::Create { path: path.to_owned(), source })
}

/// Reads the key file, refusing one that others can read.
pub fn read_keyring(path: &Path) -> Result<Keyring, DataDirError> {
    let meta = std::fs::metadata(path).map_err(|source| DataDirError::Read { path: path.to_owned(), source })?;
    let mode = file_mode(&meta);
    if mode & 0o077 != 0 {
        return Err(DataDirError::KeyFileExposed { path: path.to_owned(), mode: mode & 0o777 });
    }
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).map_err(|source| DataDirError::Read { path: path.to_owned(), source })?,
    );
    Keyring::from_file_text(&text).map_err(|source| DataDirError::KeyFile { path: path.to_owned(), source })
}

/// Writes the key file atomically (temporary file at 0600, fsync, rename, fsync directory),
/// so a crash leaves either the old or the new file, never half of one.
pub fn write_keyring(path: &Path, ring: &Keyring) -> Result<(), DataDirError> {
    let err = |source| DataDirError::Write { path: path.to_owned(), source };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("master.key")));
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp).map_err(err)?;
    f.write_all(ring.to_file_text().as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    // Keep the owner of the file being replaced: rotation is often run by root for a
    // service account, which must still be able to read the new file.
    #[cfg(unix)]
    if let Ok(old) = std::fs::metadata(path) {
        use std::os::unix::fs::MetadataExt as _;
        let _ = std::os::unix::fs::chown(&tmp, Some(old.uid()), Some(old.gid()));
    }
    std::fs::rename(&tmp, path).map_err(err)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// This node's name: configured, or generated once and kept in the data directory.
pub fn node_id(data_dir: &Path, configured: Option<&str>) -> Result<String, DataDirError> {
    if let Some(n) = configured {
        return Ok(n.to_owned());
    }
    let path = data_dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(DataDirError::Read { path, source }),
    }
    let mut b = [0u8; 4];
    getrandom::fill(&mut b)
        .map_err(|e| DataDirError::Write { path: path.clone(), source: std::io::Error::other(e) })?;
    let id = format!("node-{}", hex::encode(b));
    std::fs::write(&path, format!("{id}\n")).map_err(|source| DataDirError::Write { path, source })?;
    Ok(id)
}

#[cfg(unix)]
fn file_mode(meta: &std::fs::Metadata) -> u32 {
    std::os::unix::fs::PermissionsExt::mode(&meta.permissions())
}
#[cfg(not(unix))]
fn file_mode(_: &std::fs::Metadata) -> u32 {
    0o600
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
}
#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_written_0600_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let ring = Keyring::generate().unwrap();
        write_keyring(&path, &ring).unwrap();
        assert_eq!(file_mode(&std::fs::metadata(&path).unwrap()) & 0o777, 0o600);
        assert_eq!(read_keyring(&path).unwrap().ids(), ring.ids());
        set_mode(&path, 0o644).unwrap();
        assert!(matches!(read_keyring(&path), Err(DataDirError::KeyFileExposed { .. })));
    }

    #[test]
    fn node_id_is_generated_once() {
        let dir = tempfile::tempdir().unwrap();
        let a = node_id(dir.path(), None).unwrap();
        assert_eq!(node_id(dir.path(), None).unwrap(), a);
        assert_eq!(node_id(dir.path(), Some("n1")).unwrap(), "n1");
    }
}
