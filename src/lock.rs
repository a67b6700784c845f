//! The single-instance lock shared by `run` and `daemon`: an advisory lock on a file next
//! to the database, released by the OS when the process dies (even on kill -9).

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Held for as long as it lives.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    path: PathBuf,
}

impl InstanceLock {
    /// Takes the lock or fails at once with [`Error::Locked`] naming the holder's pid.
    pub fn acquire(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(Error::Locked {
                    path: path.to_path_buf(),
                    pid: if pid.is_empty() { "unknown".into() } else { pid.to_string() },
                });
            }
            Err(TryLockError::Error(e)) => return Err(Error::io(path, e)),
        }
        file.set_len(0).map_err(|e| Error::io(path, e))?;
        file.seek(SeekFrom::Start(0)).map_err(|e| Error::io(path, e))?;
        write!(file, "{}", std::process::id()).map_err(|e| Error::io(path, e))?;
        Ok(InstanceLock { _file: file, path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_while_the_first_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.lock");
        let first = InstanceLock::acquire(&path).unwrap();
        let err = InstanceLock::acquire(&path).unwrap_err();
        assert!(err.to_string().contains(&std::process::id().to_string()), "{err}");
        assert_eq!(err.exit_code(), crate::error::exit::TEMPFAIL);
        drop(first);
        InstanceLock::acquire(&path).unwrap();
    }
}
