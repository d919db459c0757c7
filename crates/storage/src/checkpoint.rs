//! Strata's own small state files (log state, leader epochs, the broker's metadata): written whole, atomically, with a
//! checksum, so a crash leaves either the old or the new file and never a torn one.
//!
//! Layout: `b"STCK"`, format version `u32`, payload length `u32`, payload, then a CRC-32 (IEEE,
//! `crc32fast`) of everything before it. All integers are big-endian.

use crate::error::{Result, StorageError};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

const MAGIC: &[u8; 4] = b"STCK";
const FORMAT_VERSION: u32 = 1;
const HEADER_BYTES: usize = 12;

/// Writes `payload` to `path` via a temporary file, fsync and rename, then fsyncs the directory so
/// the rename itself is durable.
pub fn write(path: &Path, payload: &[u8]) -> Result<()> {
    let mut bytes = Vec::with_capacity(HEADER_BYTES + payload.len() + 4);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    bytes.extend_from_slice(payload);
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());

    let temporary = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temporary)
        .map_err(StorageError::io("create", &temporary))?;
    file.write_all(&bytes)
        .map_err(StorageError::io("write", &temporary))?;
    file.sync_all()
        .map_err(StorageError::io("fsync", &temporary))?;
    fs::rename(&temporary, path).map_err(StorageError::io("rename", path))?;
    sync_directory(path.parent().unwrap_or(Path::new(".")))
}

/// Reads a checkpoint; `Ok(None)` when the file does not exist.
pub fn read(path: &Path) -> Result<Option<Vec<u8>>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(StorageError::Io {
                operation: "read",
                path: path.into(),
                source: error,
            });
        }
    };
    let corrupt = |reason: String| StorageError::Corrupt {
        path: path.into(),
        reason,
    };
    if bytes.len() < HEADER_BYTES + 4 || &bytes[..4] != MAGIC {
        return Err(corrupt("not a Strata checkpoint file".to_string()));
    }
    let version = u32::from_be_bytes(bytes[4..8].try_into().expect("four bytes"));
    if version != FORMAT_VERSION {
        return Err(corrupt(format!(
            "format version {version} is not supported"
        )));
    }
    let length = u32::from_be_bytes(bytes[8..12].try_into().expect("four bytes")) as usize;
    if bytes.len() != HEADER_BYTES + length + 4 {
        return Err(corrupt(format!(
            "payload length {length} disagrees with file size {}",
            bytes.len()
        )));
    }
    let (body, stored) = bytes.split_at(HEADER_BYTES + length);
    let stored = u32::from_be_bytes(stored.try_into().expect("four bytes"));
    if crc32fast::hash(body) != stored {
        return Err(corrupt("checksum mismatch".to_string()));
    }
    Ok(Some(body[HEADER_BYTES..].to_vec()))
}

pub(crate) fn sync_directory(directory: &Path) -> Result<()> {
    File::open(directory)
        .and_then(|handle| handle.sync_all())
        .map_err(StorageError::io("fsync directory", directory))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_corruption() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("state");
        assert!(read(&path).unwrap().is_none());
        write(&path, b"hello").unwrap();
        assert_eq!(read(&path).unwrap().unwrap(), b"hello");
        let mut bytes = fs::read(&path).unwrap();
        bytes[13] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(read(&path), Err(StorageError::Corrupt { .. })));
        fs::write(&path, b"STCK").unwrap();
        assert!(matches!(read(&path), Err(StorageError::Corrupt { .. })));
    }
}
